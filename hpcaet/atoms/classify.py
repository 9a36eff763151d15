"""Chemical species and material region of traced atoms, from their intensities.

Following the Methods of Tian et al. ("We then assigned the initial chemical species
based on the MoS2 and WSe2 region and the intensity of the atoms"), with the region
found from the data rather than given:

1. The metals (middle layer) split into a bright and a dim class by two-means on the
   log of their integrated intensity (solved exactly in 1D); the bright ones are W, the
   dim ones Mo (W scatters about twice as strongly).
2. The region of every atom is the Gaussian-weighted fraction of W among the metals
   around it (width ``region_smoothing``): WSe2 where it exceeds one half.
3. The chalcogens of each of the top and bottom layers split into S and Se by
   two-means on the log intensity, started from the median of each region (the S
   level from the MoS2 side, the Se level from the WSe2 side), so that a handful of
   Se substitutions in MoS2, or S at the interface, does not move the levels.

Where a layer holds one species only (the field is all one material), the two-means
split is meaningless; the separation of the two class levels is then smaller than
half the expected one (from the relative cross-sections), and the atoms take the
species of their region instead, the region being named by comparing the
metal-to-chalcogen intensity ratio with the expected Mo/S and W/Se ratios.

The element names, and which is bright, come from the materials
(:class:`hpcaet.materials.Materials`) and the cross-sections: for WS2–MoSe2 the bright
metal W is region 0's and the bright chalcogen Se region 1's. A single-material sheet
has one metal and one chalcogen, and every atom is region 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from hpcaet.atoms.layers import LAYER_METAL
from hpcaet.errors import InputError
from hpcaet.materials import PAPER, Materials

__all__ = ["REGION_MOS2", "REGION_WSE2", "Classification", "classify_species", "two_means"]

log = logging.getLogger(__name__)

#: Region labels, as in :mod:`hpcaet.phantom` and the AtomModel schema: indices into
#: ``materials.regions`` (the paper's MoS2 and WSe2).
REGION_MOS2, REGION_WSE2 = 0, 1
_MIN_REGION = 5  # atoms a region needs for its median to set a class level


class Classification(NamedTuple):
    """Result of :func:`classify_species`.

    Attributes
    ----------
    species : ndarray of str, shape (n,)
        An element of the materials (``"Mo"``, ``"W"``, ``"S"`` or ``"Se"``).
    region : ndarray of int8, shape (n,)
        Index into ``materials.regions`` (0 MoS2, 1 WSe2).
    keep : ndarray of bool, shape (n,)
        False for candidates too weak to be an atom (below ``min_intensity`` of the
        dimmest class level of their layer).
    levels : dict of str to float
        Intensity level (geometric class centre) of each species, in the input units.
    """

    species: np.ndarray
    region: np.ndarray
    keep: np.ndarray
    levels: dict[str, float]


def classify_species(
    position: ArrayLike,
    intensity: ArrayLike,
    layer: ArrayLike,
    *,
    cross_section: Mapping[str, float],
    materials: Materials = PAPER,
    region_smoothing: float = 5.0,
    min_intensity: float = 0.4,
) -> Classification:
    """Assign the species and the region (e.g. Mo/W/S/Se, MoS2/WSe2) from intensities.

    Parameters
    ----------
    position : array_like of shape (n, 3)
        Atom positions ``x, y, z`` [Å].
    intensity : array_like of shape (n,)
        Integrated intensity of each atom in the volume (any units, > 0 for atoms).
    layer : array_like of int, shape (n,)
        -1 bottom, 0 metal, 1 top (see :func:`~hpcaet.atoms.fit_layers`).
    cross_section : mapping of str to float
        Expected relative scattering strength of every element of ``materials``; only
        ratios are used, to name the classes and to recognise a one-species layer.
    materials : Materials, default the paper's MoS2–WSe2
        The sheet (:mod:`hpcaet.materials`). A single material: every metal and every
        chalcogen is its own, region 0.
    region_smoothing : float, default 5.0
        Width of the Gaussian that smooths the region-1 metal fraction into the region
        map [Å].
    min_intensity : float, default 0.4
        Candidates dimmer than this fraction of their layer's dimmest class level are
        marked ``keep = False`` (noise peaks).

    Returns
    -------
    Classification

    Raises
    ------
    InputError
        On inconsistent shapes, a missing species in ``cross_section``, no metal or no
        chalcogen atom, or a non-positive smoothing.
    """
    r = np.asarray(position, dtype=float)
    inten = np.asarray(intensity, dtype=float)
    lay = np.asarray(layer)
    n = len(r)
    if r.shape != (n, 3) or inten.shape != (n,) or lay.shape != (n,):
        raise InputError(
            f"position (n, 3), intensity (n,) and layer (n,) must agree; got shapes "
            f"{r.shape}, {inten.shape}, {lay.shape}."
        )
    missing = [s for s in materials.elements if not cross_section.get(s, 0) > 0]
    if missing:
        raise InputError(
            f"cross_section needs positive values for {missing}; got {dict(cross_section)}."
        )
    if not region_smoothing > 0:
        raise InputError(f"region_smoothing must be positive [Å]; got {region_smoothing!r}.")
    metal = lay == LAYER_METAL
    if not metal.any() or metal.all():
        raise InputError(
            f"need atoms on the metal layer and on the chalcogen layers; got {int(metal.sum())} "
            f"metal and {int((~metal).sum())} chalcogen candidates. Check the layer fit."
        )
    cs = {k: float(v) for k, v in cross_section.items()}
    if not materials.pair:
        return _one_material(inten, metal, materials.regions[0], min_intensity)
    dark, bright = materials.by_brightness(cs)
    r_bright = materials.regions.index(bright)
    ch_lo, ch_hi = sorted(materials.chalcogens, key=lambda e: cs[e])
    r_lo = materials.chalcogens.index(ch_lo)  # region whose host is the dim chalcogen
    # Noise peaks have intensities near zero (or below); leave them out of the levels.
    floor = np.empty(n)
    floor[metal] = np.median(inten[metal]) * cs[dark.metal] / cs[bright.metal]
    floor[~metal] = np.median(inten[~metal]) * cs[ch_lo] / cs[ch_hi]
    strong = inten >= min_intensity * floor
    if not (strong & metal).any() or not (strong & ~metal).any():
        raise InputError("the traced intensities are not positive; check the volume.")
    logi = np.log(np.maximum(inten, min_intensity * floor))

    # 1. Metals: bright (W) and dim (Mo).
    lo, hi, split = two_means(logi[metal & strong])
    one_metal = hi - lo < 0.5 * np.log(cs[bright.metal] / cs[dark.metal])
    if one_metal:
        ratio = np.median(logi[metal]) - np.median(logi[~metal])
        misfit = [abs(ratio - np.log(cs[m.metal] / cs[m.chalcogen])) for m in (dark, bright)]
        found = dark if misfit[0] <= misfit[1] else bright
        is_bright = np.full(int(metal.sum()), found is bright)
        levels = {found.metal: float(np.exp(np.median(logi[metal])))}
    else:
        is_bright = logi[metal] > split
        levels = {dark.metal: float(np.exp(lo)), bright.metal: float(np.exp(hi))}

    # 2. Region: smoothed fraction of region 1's metal among the metals.
    in_r1 = is_bright if r_bright == 1 else ~is_bright
    region = _region_map(r[metal, :2], in_r1.astype(float), r[:, :2], region_smoothing)

    # 3. Chalcogens: dim (S) and bright (Se), levels seeded from the region medians.
    chal = ~metal
    species = np.empty(n, dtype=f"<U{max(len(e) for e in materials.elements)}")
    species[metal] = np.where(is_bright, bright.metal, dark.metal)
    expected = np.log(cs[ch_hi] / cs[ch_lo])
    c_lo_all, c_hi_all = _chalcogen_levels(logi[chal], region[chal] == r_lo, expected)
    c_lo_min = np.inf
    for L in np.unique(lay[chal]):
        sel = lay == L
        if sel.sum() >= 2 * _MIN_REGION:  # levels of this layer alone
            c_lo, c_hi = _chalcogen_levels(logi[sel], region[sel] == r_lo, expected)
        else:
            c_lo, c_hi = c_lo_all, c_hi_all
        species[sel] = np.where(logi[sel] > 0.5 * (c_lo + c_hi), ch_hi, ch_lo)
        c_lo_min = min(c_lo_min, c_lo)
    levels.update({ch_lo: float(np.exp(c_lo_all)), ch_hi: float(np.exp(c_hi_all))})

    keep = np.ones(n, dtype=bool)
    keep[metal] = logi[metal] >= np.log(min_intensity) + min(
        np.log(v) for k, v in levels.items() if k in materials.metals
    )
    keep[chal] = logi[chal] >= np.log(min_intensity) + c_lo_min
    counts = {s: int(np.sum(species[keep] == s)) for s in materials.elements}
    log.info(
        "classify: %s; %d weak candidates dropped; the %s region holds %d of %d atoms",
        counts,
        int(np.sum(~keep)),
        materials.regions[1].name,
        int(np.sum(region == 1)),
        n,
    )
    return Classification(species, region.astype(np.int8), keep, levels)


def _one_material(inten, metal, material, min_intensity) -> Classification:
    """Every metal and chalcogen of a single-material sheet; weak candidates dropped."""
    species = np.where(metal, material.metal, material.chalcogen)
    if not (inten[metal] > 0).any() or not (inten[~metal] > 0).any():
        raise InputError("the traced intensities are not positive; check the volume.")
    levels = {
        material.metal: float(np.median(inten[metal])),
        material.chalcogen: float(np.median(inten[~metal])),
    }
    keep = inten >= min_intensity * np.where(
        metal, levels[material.metal], levels[material.chalcogen]
    )
    log.info(
        "classify: %s alone: %d metals, %d chalcogens; %d weak candidates dropped",
        material.name,
        int((metal & keep).sum()),
        int((~metal & keep).sum()),
        int((~keep).sum()),
    )
    return Classification(species, np.zeros(len(inten), np.int8), keep, levels)


def two_means(values: ArrayLike) -> tuple[float, float, float]:
    """Exact two-means clustering of 1D values.

    Parameters
    ----------
    values : array_like of shape (n,)
        At least two values.

    Returns
    -------
    low, high : float
        Means of the two clusters.
    split : float
        Midpoint between the largest value of the low cluster and the smallest of the
        high one; values above it belong to the high cluster.

    Examples
    --------
    >>> two_means([1.0, 1.2, 0.9, 5.0, 5.3])[:2]
    (1.0333333333333332, 5.15)
    """
    v = np.sort(np.asarray(values, dtype=float).ravel())
    if v.size == 0:
        raise InputError("two_means needs at least one value; got an empty array.")
    if v.size == 1:
        return float(v[0]), float(v[0]), float(v[0])
    csum, csq = np.cumsum(v), np.cumsum(v**2)
    k = np.arange(1, v.size)  # size of the low cluster
    low_sse = csq[k - 1] - csum[k - 1] ** 2 / k
    high_n = v.size - k
    high_sum = csum[-1] - csum[k - 1]
    high_sse = (csq[-1] - csq[k - 1]) - high_sum**2 / high_n
    best = int(np.argmin(low_sse + high_sse))
    kb = best + 1
    return (
        float(csum[kb - 1] / kb),
        float(high_sum[best] / high_n[best]),
        float(0.5 * (v[kb - 1] + v[kb])),
    )


def _chalcogen_levels(lc: np.ndarray, in_mos2: np.ndarray, expected: float):
    """Log levels of the dim (S) and bright (Se) chalcogen from log intensities.

    ``in_mos2`` marks the atoms of the region whose host is the dim chalcogen.
    """
    if in_mos2.sum() >= _MIN_REGION and (~in_mos2).sum() >= _MIN_REGION:
        c_s, c_se = _lloyd(lc, float(np.median(lc[in_mos2])), float(np.median(lc[~in_mos2])))
        if c_se - c_s >= 0.5 * expected:
            return c_s, c_se
        # No contrast between the regions: one species; name it by the majority.
    if in_mos2.sum() >= (~in_mos2).sum():
        c_s = float(np.median(lc))
        return c_s, c_s + expected
    c_se = float(np.median(lc))
    return c_se - expected, c_se


def _lloyd(values: np.ndarray, low: float, high: float, iterations: int = 30):
    """Lloyd iterations of two-means in 1D from given centres."""
    for _ in range(iterations):
        split = 0.5 * (low + high)
        a, b = values[values <= split], values[values > split]
        if a.size == 0 or b.size == 0:
            break
        new = (float(a.mean()), float(b.mean()))
        if new == (low, high):
            break
        low, high = new
    return low, high


def _region_map(points: np.ndarray, is_w: np.ndarray, query: np.ndarray, sigma: float):
    """1 where the Gaussian-weighted fraction of region-1 metals (W) exceeds one half."""
    pairs = cKDTree(query).sparse_distance_matrix(cKDTree(points), 3 * sigma, output_type="ndarray")
    i, j = pairs["i"].astype(np.intp), pairs["j"].astype(np.intp)
    w = np.exp(-0.5 * (pairs["v"] / sigma) ** 2)
    total = np.bincount(i, w, minlength=len(query))
    frac = np.bincount(i, w * is_w[j], minlength=len(query))
    # Far from every metal: take the nearest metal's class.
    lonely = total < 1e-6
    if np.any(lonely):
        _, nearest = cKDTree(points).query(query[lonely])
        frac[lonely], total[lonely] = is_w[nearest], 1.0
    return np.where(frac / total > 0.5, 1, 0)
