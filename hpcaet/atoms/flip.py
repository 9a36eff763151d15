"""Atom pair flipping: S, Se or vacancy for every top/bottom chalcogen pair.

Following the Methods of Tian et al. ("Refinement of chemical species and
identification of S/Se vacancies"): for a randomly chosen top/bottom pair, the images
of the nine cases S/S, vac/vac, Se/Se, S/Se, Se/S, S/vac, vac/S, Se/vac and vac/Se are
computed at the measured angles, the case with the smallest R1 is kept, and sweeps
over all pairs repeat until no species changes. The chalcogens are those of the
materials (:func:`flip_cases`): the nine cases of any two, the four of a single
material's one (X/X, vac/vac, X/vac, vac/X).

Only the pixels near the pair change between the cases, so the change of R1 is
computed on a patch around the pair in each image (exact, since the patch covers the
truncated Gaussians completely): with ``C`` the current calculated images and ``g`` the
unit images of one site with one species' B-factor,
``C' = C + s_j (w' g' - w g)`` on the patch, and the case minimising
``sum |I - C'|`` over the patches has the smallest R1 (the denominator ``sum |I|``
does not change). The calculated images are updated after every accepted change, so
neighbouring pairs see each other's current species, as in a sequential sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.atoms.blur import blur_images, check_kernels
from hpcaet.errors import InputError
from hpcaet.forward import project_atoms, species_table
from hpcaet.geometry import position_to_pixel, project_points
from hpcaet.materials import VACANCY

__all__ = ["CASES", "FlipResult", "flip_cases", "flip_pairs"]

log = logging.getLogger(__name__)


def flip_cases(chalcogens: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The (top, bottom) cases of a pair, in the order of the Methods.

    Parameters
    ----------
    chalcogens : sequence of str
        One chalcogen (a single material: four cases) or two (nine cases).

    Examples
    --------
    >>> flip_cases(["S"])
    (('S', 'S'), ('vac', 'vac'), ('S', 'vac'), ('vac', 'S'))
    """
    names = tuple(chalcogens)
    if len(names) not in (1, 2) or len(set(names)) != len(names) or VACANCY in names:
        raise InputError(f"chalcogens must be one or two distinct symbols; got {names!r}.")
    a, v = names[0], VACANCY
    if len(names) == 1:
        return ((a, a), (v, v), (a, v), (v, a))
    b = names[1]
    return ((a, a), (v, v), (b, b), (a, b), (b, a), (a, v), (v, a), (b, v), (v, b))


#: The paper's nine (top, bottom) cases.
CASES = flip_cases(("S", "Se"))
_CUTOFF = 4.0  # Gaussian truncation of project_atoms [standard deviations]


class FlipResult(NamedTuple):
    """Output of :func:`flip_pairs`.

    Attributes
    ----------
    species : ndarray of str, shape (n,)
        Species after flipping (metals unchanged).
    changes : ndarray of int, shape (n_sweeps,)
        Species changes in each sweep; the last is 0 when the sweeps converged.
    r1_before, r1_after : float
        R1 over the whole images before and after flipping.
    margin : ndarray of float, shape (n,), or None
        With ``margins=True``: for every paired site, how much the L1 cost over its
        pair's patch rises, relative to the chosen case's, in the best case that gives
        the site another species (NaN for unpaired sites and pairs no compared pixel
        sees). Small values mark species the images barely tell apart.
    """

    species: np.ndarray
    changes: np.ndarray
    r1_before: float
    r1_after: float
    margin: np.ndarray | None = None


def flip_pairs(
    images: ArrayLike,
    euler: ArrayLike,
    position: ArrayLike,
    species: ArrayLike,
    pair: ArrayLike,
    *,
    pixel_size: float,
    weights: Mapping[str, float],
    b_factors: Mapping[str, float],
    scale: ArrayLike,
    offset: ArrayLike,
    shifts: ArrayLike | None = None,
    max_sweeps: int = 10,
    kernels: Sequence[np.ndarray | None] | None = None,
    footprint: np.ndarray | None = None,
    chalcogens: Sequence[str] = ("S", "Se"),
    rng: np.random.Generator | int | None = None,
    margins: bool = False,
) -> FlipResult:
    """Choose S, Se or vacancy for every chalcogen pair by the lowest R1.

    Parameters
    ----------
    images : array_like of shape (m, ny, nx)
        Measured images [counts].
    euler : array_like of shape (m, 3)
        Calibrated Euler angles [deg].
    position : array_like of shape (n, 3)
        All sites [Å], vacancy sites included.
    species : array_like of str, shape (n,)
    pair : array_like of int, shape (n,)
        Partner site of each chalcogen site, -1 for metals; pairs must be mutual.
    pixel_size : float
        [Å].
    weights, b_factors : mapping of str to float
        Cross-section [Å²] and B-factor [Å²] of every species present and of each of
        ``chalcogens``.
    scale, offset : array_like of shape (m,)
        Per-image scale [counts per unit model] and offset [counts] (from
        :func:`~hpcaet.atoms.refine_atoms`).
    shifts : array_like of shape (m, 2), optional
        Per-image shifts ``(x, y)`` [Å].
    max_sweeps : int, default 10
        Largest number of sweeps over all pairs; 0 changes nothing (with ``margins``,
        only measures).
    kernels : sequence of m ndarrays of odd shape (k, k) or None, optional
        Blur of each calculated image (:func:`~hpcaet.atoms.blur.blur_images`); the
        patches grow by the kernel's half size.
    footprint : ndarray of bool, shape (m, ny, nx), optional
        Pixels compared (:func:`~hpcaet.atoms.objective.footprint_mask`); R1 is summed
        over them only. None: every pixel.
    chalcogens : sequence of str, default ("S", "Se")
        The chalcogens a site may hold (:func:`flip_cases`); the materials' own.
    rng : numpy.random.Generator or int or None
        Order of the pairs in each sweep.
    margins : bool, default False
        Also measure every paired site's species margin (:class:`FlipResult`) after
        the last sweep.

    Returns
    -------
    FlipResult

    Raises
    ------
    InputError
        On inconsistent shapes, pairs that are not mutual or link a metal, or missing
        species parameters.
    """
    y = np.asarray(images, dtype=float)
    angles = np.asarray(euler, dtype=float)
    r = np.asarray(position, dtype=float)
    spec = np.asarray(species).astype("<U3").copy()
    partner = np.asarray(pair, dtype=int)
    m, n = len(y), len(r)
    if (
        y.ndim != 3
        or angles.shape != (m, 3)
        or r.shape != (n, 3)
        or spec.shape != (n,)
        or (partner.shape != (n,))
    ):
        raise InputError(
            f"images (m, ny, nx), euler (m, 3), position (n, 3), species and pair (n,) must "
            f"agree; got {y.shape}, {angles.shape}, {r.shape}, {spec.shape}, {partner.shape}."
        )
    s = np.asarray(scale, dtype=float).reshape(m)
    c = np.asarray(offset, dtype=float).reshape(m)
    t = np.zeros((m, 2)) if shifts is None else np.asarray(shifts, float).reshape(m, 2)
    linked = np.flatnonzero(partner >= 0)
    if np.any(partner >= n) or np.any(partner[partner[linked]] != linked):
        raise InputError(
            "pair must be mutual: pair[pair[i]] == i for every paired site, and index a "
            f"site (< {n}). Build the pairs with pair_chalcogens."
        )
    first = np.flatnonzero(partner > np.arange(n))
    second = partner[first]
    paired = np.concatenate([first, second])
    cases = flip_cases(chalcogens)
    choices = (*chalcogens, VACANCY)
    bad = [x for x in set(spec[paired]) if x not in choices]
    if bad:
        raise InputError(f"paired sites must be one of {list(choices)}; got species {sorted(bad)}.")
    table_w = {VACANCY: 0.0, **{k: float(v) for k, v in weights.items()}}
    table_b = {VACANCY: 1.0, **{k: float(v) for k, v in b_factors.items()}}
    for name in chalcogens:
        if name not in table_w or name not in table_b:
            raise InputError(f"weights and b_factors need a value for {name!r}.")
    kernels = check_kernels(kernels, m)
    seen = np.ones(y.shape, bool) if footprint is None else np.asarray(footprint, bool)
    if seen.shape != y.shape:
        raise InputError(f"footprint must have the images' shape {y.shape}; got {seen.shape}.")

    atom = spec != VACANCY
    model = project_atoms(
        r[atom],
        species_table(spec[atom], table_w),
        species_table(spec[atom], table_b),
        angles,
        shape=y.shape[1:],
        pixel_size=pixel_size,
        offsets=t,
    )
    model = blur_images(model, kernels)
    calc = s[:, None, None] * model + c[:, None, None]
    total = max(float(np.abs(y[seen]).sum()), 1e-300)
    r1_before = float(np.abs(y - calc)[seen].sum()) / total
    if len(first) == 0:
        return FlipResult(spec, np.zeros(0, dtype=int), r1_before, r1_before, None)

    # Patch size: covers both Gaussians of the widest chalcogen of any pair.
    sigma = np.sqrt(max(table_b[name] for name in chalcogens) / (8 * np.pi**2))
    xy = project_points(r, angles) + t[:, None, :]  # (m, n, 2)
    spread = np.abs(xy[:, first] - xy[:, second]).max() / 2
    half = int(np.ceil((spread + _CUTOFF * sigma) / pixel_size)) + 1
    if kernels is not None:  # the blur spreads the patch by the kernel's half size
        half += max((max(k.shape) // 2 for k in kernels if k is not None), default=0)
    cases_w = np.array([[table_w[a], table_w[b]] for a, b in cases])
    context = (angles, t, s, half, pixel_size, table_w, table_b, cases, cases_w, kernels, seen)
    rng = np.random.default_rng(rng)
    changes = []
    for _ in range(max(0, int(max_sweeps))):
        changed = 0
        for k in rng.permutation(len(first)):
            # The cases are all pairs of {S, Se, vac}, so which site is called the top
            # one does not matter.
            i, j = first[k], second[k]
            case = _best_case(y, calc, r[[i, j]], (spec[i], spec[j]), *context)
            if case is not None:
                spec[i], spec[j] = cases[case]
                changed += 1
        changes.append(changed)
        if changed == 0:
            break
    r1_after = float(np.abs(y - calc)[seen].sum()) / total
    log.info(
        "flip: %d pairs, changes per sweep %s, R1 %.4f -> %.4f",
        len(first),
        changes,
        r1_before,
        r1_after,
    )
    margin = None
    if margins:
        margin = np.full(n, np.nan)
        for i, j in zip(first, second, strict=True):
            costs = _case_costs(y, calc, r[[i, j]], (spec[i], spec[j]), *context)
            if costs is None:
                continue
            cost, now = costs[0], costs[0][costs[-1]]
            for a, site in ((0, i), (1, j)):
                other = [k for k, case in enumerate(cases) if case[a] != spec[site]]
                margin[site] = (cost[other].min() - now) / max(now, 1e-300)
    return FlipResult(spec, np.asarray(changes), r1_before, r1_after, margin)


def _best_case(y, calc, sites, current, *context):
    """Index of the best case if it beats the current one (updating ``calc``), else None.

    ``calc`` is changed in place on the patch when a better case is found.
    """
    costs = _case_costs(y, calc, sites, current, *context)
    if costs is None:
        return None  # the pair is seen by no compared pixel: keep it as it is
    cost, trial, valid, index, now_case = costs
    best = int(np.argmin(cost))
    if cost[best] >= cost[now_case] * (1 - 1e-12) or best == now_case:
        return None
    full = np.broadcast_arrays(*index)
    calc[full[0][valid], full[1][valid], full[2][valid]] = trial[best][valid]
    return best


def _case_costs(
    y,
    calc,
    sites,
    current,
    angles,
    shifts,
    scale,
    half,
    pixel_size,
    table_w,
    table_b,
    cases,
    cases_w,
    kernels,
    seen,
):
    """L1 cost of every case on the pair's patch, the trial patches, the compared
    pixels, the patch's index into the images and the current case's index; None if no
    compared pixel sees the pair."""
    m, ny, nx = y.shape
    centre = project_points(sites.mean(axis=0, keepdims=True), angles)[:, 0] + shifts
    rc = np.rint(position_to_pixel(centre, (ny, nx), pixel_size)).astype(int)  # (m, 2)
    p = 2 * half + 1
    rows = rc[:, 0, None] - half + np.arange(p)  # (m, p)
    cols = rc[:, 1, None] - half + np.arange(p)
    valid = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
    rows_c, cols_c = np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1)
    img = np.arange(m)[:, None, None]
    index = (img, rows_c[:, :, None], cols_c[:, None, :])
    meas, cur = y[index], calc[index]
    valid = valid & seen[index]
    if not valid.any():
        return None
    # Patch pixel (a, b) of image j sits at full-image pixel (rows[j, a], cols[j, b]);
    # shift the projections so project_atoms on a p x p grid lands there.
    origin = np.column_stack(
        [(cols[:, 0] + half - nx // 2) * pixel_size, (rows[:, 0] + half - ny // 2) * pixel_size]
    )
    offsets = shifts - origin
    names = tuple(dict.fromkeys(name for case in cases for name in case if name != VACANCY))
    basis = {}
    for a in (0, 1):
        for name in names:
            basis[a, name] = project_atoms(
                sites[a : a + 1],
                1.0,
                table_b[name],
                angles,
                shape=(p, p),
                pixel_size=pixel_size,
                offsets=offsets,
            )
            basis[a, name] = blur_images(basis[a, name], kernels)
    gt = np.stack([np.zeros((m, p, p)), *(basis[0, name] for name in names)])  # vac, S, Se
    gb = np.stack([np.zeros((m, p, p)), *(basis[1, name] for name in names)])
    pick = {VACANCY: 0, **{name: k + 1 for k, name in enumerate(names)}}
    now = table_w[current[0]] * gt[pick[current[0]]] + table_w[current[1]] * gb[pick[current[1]]]
    base = cur - scale[:, None, None] * now
    top_idx = np.array([pick[a] for a, _ in cases])
    bot_idx = np.array([pick[b] for _, b in cases])
    model = (
        cases_w[:, 0, None, None, None] * gt[top_idx]
        + cases_w[:, 1, None, None, None] * gb[bot_idx]
    )
    trial = base[None] + scale[None, :, None, None] * model  # (9, m, p, p)
    cost = np.where(valid[None], np.abs(meas[None] - trial), 0.0).sum(axis=(1, 2, 3))
    return cost, trial, valid, index, cases.index(tuple(current))
