"""Score a recovered atom model against the truth.

Sites are matched one to one (nearest pairs first, within ``max_distance``), vacancy
sites included (a vacancy site left over is matched by column: in-plane within
``max_distance``, since its height is only an estimate); with ``align`` the model is
first fitted onto the truth by the rotation and translation of its matched metals (a
reconstruction sits in the frame of the angle calibration, which may be turned and
shifted from the phantom's: not an error of the atoms).
Per true species the score gives the number of atoms, the detection rate (a model
atom, of any species, on the site), the species accuracy (the right species on the
site) and the RMSD of the detected atoms [pm], as Tian et al. report precision (S 15 pm,
Mo 4 pm, Se 15 pm, W 6 pm). Vacancies and substitutions (a chalcogen other than the
host of its region: Se in MoS2, S in WSe2) are counted as true, found and false.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.materials import PAPER, VACANCY, Materials

__all__ = ["match_sites", "score_atoms", "aligned_positions", "format_scores"]


def match_sites(position: ArrayLike, truth: ArrayLike, *, max_distance: float = 0.8) -> np.ndarray:
    """One-to-one matching of model sites to true sites, nearest pairs first.

    Parameters
    ----------
    position : array_like of shape (n, 3)
        Model sites [Å].
    truth : array_like of shape (k, 3)
        True sites [Å].
    max_distance : float, default 0.8
        Largest distance of a match [Å] (half the 1.6 Å minimum distance).

    Returns
    -------
    ndarray of int, shape (n,)
        Index of the matched true site, -1 for none.
    """
    p, q = np.asarray(position, float).reshape(-1, 3), np.asarray(truth, float).reshape(-1, 3)
    out = np.full(len(p), -1)
    if len(p) == 0 or len(q) == 0:
        return out
    pairs = cKDTree(p).sparse_distance_matrix(cKDTree(q), max_distance, output_type="ndarray")
    order = np.argsort(pairs["v"], kind="stable")
    taken = np.zeros(len(q), dtype=bool)
    for i, j in zip(pairs["i"][order], pairs["j"][order], strict=True):
        if out[i] < 0 and not taken[j]:
            out[i], taken[j] = j, True
    return out


def score_atoms(
    position: ArrayLike,
    species: ArrayLike,
    truth_position: ArrayLike,
    truth_species: ArrayLike,
    *,
    truth_region: ArrayLike | None = None,
    materials: Materials = PAPER,
    max_distance: float = 0.8,
    align: str | bool = "rigid",
    field: tuple[float, float, float, float] | None = None,
    return_match: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], np.ndarray]:
    """Compare a model with the truth: RMSD, detection, species, vacancies, substitutions.

    Parameters
    ----------
    position : array_like of shape (n, 3)
        Model sites [Å].
    species : array_like of str, shape (n,)
        Model species, ``"vac"`` for vacancy sites.
    truth_position : array_like of shape (k, 3)
    truth_species : array_like of str, shape (k,)
        The truth, vacancies as explicit ``"vac"`` sites.
    truth_region : array_like of int, shape (k,), optional
        True region (index into ``materials.regions``: 0 MoS2, 1 WSe2); needed to count
        substitutions.
    materials : Materials, default the paper's MoS2–WSe2
        The sheet (:mod:`hpcaet.materials`): its elements are scored, and a chalcogen
        other than its region's own is a substitution.
    max_distance : float, default 0.8
        Matching radius [Å].
    align : {"rigid", "translation", False}, default "rigid"
        Fit the model onto the truth first, by the rotation and translation (Kabsch) or
        the translation (median) that best map its matched metals onto theirs. The
        absolute orientation of a reconstruction is a convention of the angle
        calibration (e.g. the sheet's own frame), not a property of the atoms.
    field : (x_min, x_max, y_min, y_max), optional
        Score only the true sites inside this in-plane box [Å] of the model's own frame
        (the field of view of the reconstruction): the truth is moved into that frame by
        the inverse of the alignment before the test. Model sites outside the box that
        match no true site are ignored.
    return_match : bool, default False
        Also return the index of the true site matched to each model site (-1 none).

    Returns
    -------
    dict
        ``species``: per true species ``n_true``, ``detected``, ``detection_rate``,
        ``species_correct``, ``species_accuracy``, ``rmsd_pm`` (3D) and ``rmsd_xyz_pm``;
        ``vacancies`` and ``substitutions``: ``true``, ``found``, ``false``;
        ``extra_atoms`` (model atoms on no true site), ``missing_atoms``, ``rotation``
        (3 x 3) and ``shift`` [Å] of the alignment (aligned = ``position @ rotation.T +
        shift``), ``rotation_deg``, ``n_model``, ``n_truth`` and ``all_correct``
        (every true atom detected with its species, every vacancy and substitution
        found, none false). With ``return_match``, a tuple ``(scores, match)``.

    Raises
    ------
    InputError
        On inconsistent shapes.
    """
    p = np.asarray(position, dtype=float)
    s = np.asarray(species).astype(str)
    q = np.asarray(truth_position, dtype=float)
    t = np.asarray(truth_species).astype(str)
    if (
        p.ndim != 2
        or p.shape[1:] != (3,)
        or s.shape != (len(p),)
        or q.ndim != 2
        or (q.shape[1:] != (3,))
        or t.shape != (len(q),)
    ):
        raise InputError(
            f"position (n, 3) / species (n,) and truth_position (k, 3) / truth_species (k,) "
            f"must agree; got {p.shape}, {s.shape}, {q.shape}, {t.shape}."
        )
    rotation, shift = _align(p, s, q, t, materials, align, max_distance)
    frame = p  # model sites in the volume's frame, where ``field`` is given
    truth_index = np.arange(len(q))
    if field is not None:
        # The box is the volume's: the truth is taken into the volume's frame to test it.
        x0, x1, y0, y1 = field
        local = (q - shift) @ rotation
        inside = (local[:, 0] >= x0) & (local[:, 0] <= x1)
        inside &= (local[:, 1] >= y0) & (local[:, 1] <= y1)
        truth_index, q, t = truth_index[inside], q[inside], t[inside]
        if truth_region is not None:
            truth_region = np.asarray(truth_region)[inside]
    p = p @ rotation.T + shift
    match = match_sites(p, q, max_distance=max_distance)
    match = _match_vacancies(p, s, q, t, match, max_distance)
    back = np.full(len(q), -1)  # model site on each true site
    back[match[match >= 0]] = np.flatnonzero(match >= 0)
    model_on = np.where(back >= 0, s[np.maximum(back, 0)], "")  # "" = nothing there
    on_atom = (back >= 0) & (model_on != VACANCY)
    per_species = {}
    for name in materials.elements:
        sel = t == name
        det = sel & on_atom
        err = p[back[det]] - q[det]
        per_species[name] = {
            "n_true": int(sel.sum()),
            "detected": int(det.sum()),
            "detection_rate": float(det.sum() / sel.sum()) if sel.any() else float("nan"),
            "species_correct": int(np.sum(sel & (model_on == name))),
            "species_accuracy": (
                float(np.sum(sel & (model_on == name)) / sel.sum()) if sel.any() else float("nan")
            ),
            "rmsd_pm": float(100 * np.sqrt(np.mean(np.sum(err**2, axis=1))))
            if det.any()
            else float("nan"),
            "rmsd_xyz_pm": (100 * np.sqrt(np.mean(err**2, axis=0))).tolist()
            if det.any()
            else [float("nan")] * 3,
        }
    true_vac = t == VACANCY
    model_vac = s == VACANCY
    # Model sites outside the scored field count only when they match a true site.
    outside_ok = np.ones(len(p), dtype=bool)
    if field is not None:
        x0, x1, y0, y1 = field
        outside_ok = (match >= 0) | (
            (frame[:, 0] >= x0) & (frame[:, 0] <= x1) & (frame[:, 1] >= y0) & (frame[:, 1] <= y1)
        )
    vac_found = int(np.sum(true_vac & (model_on == VACANCY)))
    # A false vacancy: a model vacancy on a true atom, or on no true site at all.
    vac_false = int(
        np.sum(
            model_vac
            & outside_ok
            & (
                (match < 0)
                | ~np.isin(np.where(match >= 0, t[np.maximum(match, 0)], ""), (VACANCY,))
            )
        )
    )
    out: dict[str, Any] = {
        "species": per_species,
        "vacancies": {"true": int(true_vac.sum()), "found": vac_found, "false": vac_false},
        "extra_atoms": int(
            np.sum(
                ~model_vac
                & outside_ok
                & ((match < 0) | (np.where(match >= 0, t[np.maximum(match, 0)], "") == VACANCY))
            )
        ),
        "missing_atoms": int(np.sum(~true_vac & ~on_atom)),
        "shift": shift.tolist(),
        "rotation": rotation.tolist(),
        "rotation_deg": float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))),
        "n_model": int(len(p)),
        "n_truth": int(len(q)),
        "field": None if field is None else [float(x) for x in field],
    }
    if truth_region is not None:
        reg = np.asarray(truth_region).astype(int)
        if reg.shape != (len(q),):
            raise InputError(f"truth_region must have shape ({len(q)},); got {reg.shape}.")
        names = np.array(materials.chalcogens)
        chal = np.isin(t, names)
        host = names[np.clip(reg, 0, len(names) - 1)]
        true_sub = chal & (t != host)
        host_site = chal & (t == host)
        other = names[::-1][np.clip(reg, 0, len(names) - 1)]  # the other region's
        if len(names) == 1:  # one chalcogen: nothing to substitute ("-" matches no site)
            other = np.full(len(t), "-")
        out["substitutions"] = {
            "true": int(true_sub.sum()),
            "found": int(np.sum(true_sub & (model_on == t))),
            "false": int(np.sum(host_site & (model_on == other))),
        }
    sub = out.get("substitutions", {"true": 0, "found": 0, "false": 0})
    out["all_correct"] = bool(
        all(v["species_correct"] == v["n_true"] for v in per_species.values())
        and vac_found == out["vacancies"]["true"]
        and vac_false == 0
        and sub["found"] == sub["true"]
        and sub["false"] == 0
        and out["extra_atoms"] == 0
    )
    if return_match:
        return out, np.where(match >= 0, truth_index[np.maximum(match, 0)], -1)
    return out


def _align(p, s, q, t, materials: Materials, align, max_distance: float):
    """Rotation and shift that lay the model's matched metals on the true ones."""
    rotation, shift = np.eye(3), np.zeros(3)
    if not align:
        return rotation, shift
    # The reconstruction's origin is a gauge (the tracked columns' centroid): first the
    # in-plane shift that lays most model metals on true ones, then the matches. Shifts
    # are sought within 0.8 lattice constants, where none is a lattice vector.
    shift = _coarse_shift(
        p[np.isin(s, materials.metals)],
        q[np.isin(t, materials.metals)],
        reach=0.8 * min(materials.lattice_constants),
    )
    moved = p + shift
    # Metals are 3.2 Å apart, so a first match within 1.5 Å is safe even when the model
    # is turned by a few degrees; then refit on the final matches.
    for radius in (max(1.5, max_distance), max_distance, max_distance):
        match = match_sites(moved, q, max_distance=radius)
        metal = (match >= 0) & np.isin(s, materials.metals)
        metal[metal] &= np.isin(t[match[metal]], materials.metals)
        if metal.sum() < 4:
            break
        if align == "translation":
            rotation, shift = np.eye(3), np.median(q[match[metal]] - p[metal], axis=0)
        else:
            rotation, shift = _kabsch(p[metal], q[match[metal]])
        moved = p @ rotation.T + shift
    return rotation, shift


def aligned_positions(position: ArrayLike, scores: dict[str, Any]) -> np.ndarray:
    """Model positions moved by the alignment of :func:`score_atoms` [Å]."""
    rotation = np.asarray(scores.get("rotation", np.eye(3)), dtype=float)
    return np.asarray(position, dtype=float) @ rotation.T + np.asarray(scores["shift"])


def _coarse_shift(model: np.ndarray, truth: np.ndarray, *, reach: float) -> np.ndarray:
    """Shift (x, y, z) [Å] within ``reach`` in-plane that matches most model metals.

    A grid search over the disc of radius ``reach`` (0.1 Å steps) for the most model
    metals within 0.5 Å of a true one (ties: the smallest shift), then the median z
    offset of those pairs. Zero when either side has fewer than 4 metals.
    """
    if len(model) < 4 or len(truth) < 4:
        return np.zeros(3)
    tree = cKDTree(truth[:, :2])
    steps = np.arange(-reach, reach + 1e-9, 0.1)
    dx, dy = (g.ravel() for g in np.meshgrid(steps, steps))
    radius = np.hypot(dx, dy)
    order = [k for k in np.argsort(radius, kind="stable") if radius[k] <= reach]
    best, shift = -1, np.zeros(2)
    for k in order:
        d, _ = tree.query(model[:, :2] + [dx[k], dy[k]], distance_upper_bound=0.5)
        count = int(np.isfinite(d).sum())
        if count > best:
            best, shift = count, np.array([dx[k], dy[k]])
    d, i = tree.query(model[:, :2] + shift, distance_upper_bound=0.5)
    ok = np.isfinite(d)
    dz = float(np.median(truth[i[ok], 2] - model[ok, 2])) if ok.any() else 0.0
    return np.array([shift[0], shift[1], dz])


def _kabsch(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising ``sum |R p + t - q|²`` (Kabsch)."""
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, qc - rotation @ pc


def _match_vacancies(p, s, q, t, match, max_distance):
    """Match left-over vacancy sites by column: in-plane within ``max_distance``.

    A vacancy has no density, so its height is only the mirror estimate of its partner;
    a model vacancy on the right column counts even when it is up to ``2 max_distance``
    off in z (still closer than the opposite site of the column, 3 Å away).
    """
    taken = np.zeros(len(q), dtype=bool)
    taken[match[match >= 0]] = True
    free_true = np.flatnonzero((t == VACANCY) & ~taken)
    free_model = np.flatnonzero((s == VACANCY) & (match < 0))
    if len(free_true) == 0 or len(free_model) == 0:
        return match
    pairs = cKDTree(p[free_model, :2]).sparse_distance_matrix(
        cKDTree(q[free_true, :2]), max_distance, output_type="ndarray"
    )
    order = np.argsort(pairs["v"], kind="stable")
    out = match.copy()
    for i, j in zip(free_model[pairs["i"][order]], free_true[pairs["j"][order]], strict=True):
        if out[i] < 0 and not taken[j] and abs(p[i, 2] - q[j, 2]) <= 2 * max_distance:
            out[i], taken[j] = j, True
    return out


def format_scores(scores: dict[str, Any]) -> str:
    """A plain-text table of :func:`score_atoms` output (for logs and benchmarks)."""
    lines = [
        f"{'species':<8}{'n_true':>8}{'detected':>10}{'species ok':>12}{'RMSD [pm]':>11}"
        f"{'x/y/z [pm]':>20}"
    ]
    for name, row in scores["species"].items():
        if row["n_true"] == 0:
            continue
        xyz = "/".join(f"{v:.1f}" for v in row["rmsd_xyz_pm"])
        lines.append(
            f"{name:<8}{row['n_true']:>8}{row['detection_rate']:>9.1%} "
            f"{row['species_accuracy']:>11.1%} {row['rmsd_pm']:>10.1f}{xyz:>20}"
        )
    v = scores["vacancies"]
    lines.append(f"vacancies: {v['found']}/{v['true']} found, {v['false']} false")
    if "substitutions" in scores:
        u = scores["substitutions"]
        lines.append(f"substitutions: {u['found']}/{u['true']} found, {u['false']} false")
    lines.append(
        f"extra atoms: {scores['extra_atoms']}, missing atoms: {scores['missing_atoms']}; "
        f"alignment: rotation {scores.get('rotation_deg', 0.0):.2f} deg, shift [Å] "
        + ", ".join(f"{x:+.3f}" for x in scores["shift"])
    )
    return "\n".join(lines)
