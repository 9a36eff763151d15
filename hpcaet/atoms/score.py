"""Score a recovered atom model against the truth.

Sites are matched one to one (nearest pairs first, within ``max_distance``), vacancy
sites included (a vacancy site left over is matched by column: in-plane within
``max_distance``, since its height is only an estimate); with ``align`` the model is
first shifted by the median displacement of its matched metals (a reconstruction may
sit a fraction of an Å off the phantom's origin, which is not an error of the atoms).
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

__all__ = ["match_sites", "score_atoms", "format_scores"]

_SPECIES = ("Mo", "W", "S", "Se")
_HOST = {0: "S", 1: "Se"}  # chalcogen host of the MoS2 (0) and WSe2 (1) regions


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
    max_distance: float = 0.8,
    align: bool = True,
) -> dict[str, Any]:
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
        True region (0 MoS2, 1 WSe2); needed to count substitutions.
    max_distance : float, default 0.8
        Matching radius [Å].
    align : bool, default True
        Remove the median displacement of the matched metals first.

    Returns
    -------
    dict
        ``species``: per true species ``n_true``, ``detected``, ``detection_rate``,
        ``species_correct``, ``species_accuracy``, ``rmsd_pm`` (3D) and ``rmsd_xyz_pm``;
        ``vacancies`` and ``substitutions``: ``true``, ``found``, ``false``;
        ``extra_atoms`` (model atoms on no true site), ``missing_atoms``, ``shift``
        (the alignment removed [Å]), ``n_model``, ``n_truth`` and ``all_correct``
        (every true atom detected with its species, every vacancy and substitution
        found, none false).

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
    shift = np.zeros(3)
    match = match_sites(p, q, max_distance=max_distance)
    if align:
        metal = (match >= 0) & np.isin(s, ("Mo", "W"))
        metal[metal] &= np.isin(t[match[metal]], ("Mo", "W"))
        if metal.sum() >= 3:
            shift = np.median(p[metal] - q[match[metal]], axis=0)
            match = match_sites(p - shift, q, max_distance=max_distance)
    p = p - shift
    match = _match_vacancies(p, s, q, t, match, max_distance)
    back = np.full(len(q), -1)  # model site on each true site
    back[match[match >= 0]] = np.flatnonzero(match >= 0)
    model_on = np.where(back >= 0, s[np.maximum(back, 0)], "")  # "" = nothing there
    on_atom = (back >= 0) & (model_on != "vac")
    per_species = {}
    for name in _SPECIES:
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
    true_vac = t == "vac"
    model_vac = s == "vac"
    vac_found = int(np.sum(true_vac & (model_on == "vac")))
    # A false vacancy: a model vacancy on a true atom, or on no true site at all.
    vac_false = int(
        np.sum(
            model_vac
            & ((match < 0) | ~np.isin(np.where(match >= 0, t[np.maximum(match, 0)], ""), ("vac",)))
        )
    )
    out: dict[str, Any] = {
        "species": per_species,
        "vacancies": {"true": int(true_vac.sum()), "found": vac_found, "false": vac_false},
        "extra_atoms": int(
            np.sum(
                ~model_vac
                & ((match < 0) | (np.where(match >= 0, t[np.maximum(match, 0)], "") == "vac"))
            )
        ),
        "missing_atoms": int(np.sum(~true_vac & ~on_atom)),
        "shift": shift.tolist(),
        "n_model": int(len(p)),
        "n_truth": int(len(q)),
    }
    if truth_region is not None:
        reg = np.asarray(truth_region).astype(int)
        if reg.shape != (len(q),):
            raise InputError(f"truth_region must have shape ({len(q)},); got {reg.shape}.")
        chal = np.isin(t, ("S", "Se"))
        host = np.where(reg == 1, _HOST[1], _HOST[0])
        true_sub = chal & (t != host)
        host_site = chal & (t == host)
        other = np.where(host == "S", "Se", "S")
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
    return out


def _match_vacancies(p, s, q, t, match, max_distance):
    """Match left-over vacancy sites by column: in-plane within ``max_distance``.

    A vacancy has no density, so its height is only the mirror estimate of its partner;
    a model vacancy on the right column counts even when it is up to ``2 max_distance``
    off in z (still closer than the opposite site of the column, 3 Å away).
    """
    taken = np.zeros(len(q), dtype=bool)
    taken[match[match >= 0]] = True
    free_true = np.flatnonzero((t == "vac") & ~taken)
    free_model = np.flatnonzero((s == "vac") & (match < 0))
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
        f"extra atoms: {scores['extra_atoms']}, missing atoms: "
        f"{scores['missing_atoms']}, alignment shift [Å]: "
        + ", ".join(f"{x:+.3f}" for x in scores["shift"])
    )
    return "\n".join(lines)
