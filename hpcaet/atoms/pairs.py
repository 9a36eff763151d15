"""Top/bottom chalcogen pairs, with explicit vacancy sites where a partner is missing.

In 2H-MX2 every chalcogen column holds one atom above and one below the metal sheet.
The pair flipping of Tian et al. works on these columns, so every column must be a
pair of sites, and a missing atom an explicit vacancy site:

1. Each top and bottom chalcogen is projected along the normal of the middle surface
   onto it; top and bottom atoms whose feet are mutual nearest neighbours within
   ``pair_radius`` form a pair.
2. An unpaired chalcogen gets a vacancy partner at its mirror image through the
   middle surface (along the local normal).
3. Columns where both atoms are missing are found from the metal lattice: the
   centres of the metal triangles (Delaunay triangles with sides near the lattice
   constant) of the orientation that the occupied columns take, with no chalcogen
   foot within ``pair_radius``, get two vacancy sites at the local layer heights.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import Delaunay, cKDTree

from hpcaet.atoms.layers import LAYER_BOTTOM, LAYER_METAL, LAYER_TOP, LayerSurfaces
from hpcaet.errors import InputError
from hpcaet.materials import VACANCY

__all__ = [
    "VACANCY",
    "PairedSites",
    "pair_chalcogens",
    "lattice_columns",
    "drop_stray_pairs",
    "merge_split_columns",
    "snap_chalcogens",
]

log = logging.getLogger(__name__)


class PairedSites(NamedTuple):
    """Sites after pairing (output of :func:`pair_chalcogens`).

    Attributes
    ----------
    position : ndarray of shape (n_site, 3)
        ``x, y, z`` [Å]; the input atoms first, in their order, then the new vacancies.
    species : ndarray of str, shape (n_site,)
        Input species, ``"vac"`` for the new sites.
    layer, region : ndarray of int8, shape (n_site,)
    pair : ndarray of int, shape (n_site,)
        Index of the partner site; -1 for metals.
    origin : ndarray of int, shape (n_site,)
        Index of the input atom, -1 for an added vacancy.
    """

    position: np.ndarray
    species: np.ndarray
    layer: np.ndarray
    region: np.ndarray
    pair: np.ndarray
    origin: np.ndarray


def pair_chalcogens(
    position: ArrayLike,
    species: ArrayLike,
    layer: ArrayLike,
    region: ArrayLike,
    *,
    surfaces: LayerSurfaces,
    pair_radius: float = 1.2,
    fill_columns: bool = True,
) -> PairedSites:
    """Pair top and bottom chalcogens and add vacancy sites for missing partners.

    Parameters
    ----------
    position : array_like of shape (n, 3)
        Atom positions [Å].
    species : array_like of str, shape (n,)
    layer, region : array_like of int, shape (n,)
        Layer (-1, 0, 1) and region (0, 1) of each atom.
    surfaces : LayerSurfaces
        The layer surfaces (from :func:`~hpcaet.atoms.fit_layers`), for the normal and
        the mirror images.
    pair_radius : float, default 1.2
        Largest in-plane distance between the feet of a pair [Å].
    fill_columns : bool, default True
        Add vacancy pairs on empty chalcogen columns of the metal lattice (step 3).

    Returns
    -------
    PairedSites

    Raises
    ------
    InputError
        On inconsistent shapes or a non-positive radius.
    """
    r = np.asarray(position, dtype=float)
    n = len(r)
    spec = np.asarray(species).astype("<U3")
    lay = np.asarray(layer).astype(np.int8)
    reg = np.asarray(region).astype(np.int8)
    if r.shape != (n, 3) or spec.shape != (n,) or lay.shape != (n,) or reg.shape != (n,):
        raise InputError(
            f"position (n, 3), species, layer and region (n,) must agree; got shapes "
            f"{r.shape}, {spec.shape}, {lay.shape}, {reg.shape}."
        )
    if not pair_radius > 0:
        raise InputError(f"pair_radius must be positive [Å]; got {pair_radius!r}.")
    foot, normal, depth = _feet(r, surfaces)
    top, bottom = np.flatnonzero(lay == LAYER_TOP), np.flatnonzero(lay == LAYER_BOTTOM)
    pair = np.full(n, -1)
    if len(top) and len(bottom):
        d_tb, j_tb = cKDTree(foot[bottom]).query(foot[top])
        _, j_bt = cKDTree(foot[top]).query(foot[bottom])
        mutual = (j_bt[j_tb] == np.arange(len(top))) & (d_tb <= pair_radius)
        pair[top[mutual]] = bottom[j_tb[mutual]]
        pair[bottom[j_tb[mutual]]] = top[mutual]

    new_pos, new_layer, new_region, partner = [], [], [], []
    lonely = np.flatnonzero((lay != LAYER_METAL) & (pair < 0))
    if len(lonely):
        new_pos.append(r[lonely] - 2 * depth[lonely, None] * normal[lonely])
        new_layer.append(-lay[lonely])
        new_region.append(reg[lonely])
        partner.append(lonely)
    n_lonely = len(lonely)

    n_empty = 0
    if fill_columns:
        chalc_feet = foot[lay != LAYER_METAL]
        centres = _empty_columns(r[lay == LAYER_METAL, :2], chalc_feet, pair_radius)
        if len(centres):
            z_mid, n_mid = surfaces.middle(centres)
            h = surfaces.half_thickness(centres)
            fallback_h = float(np.nanmedian(np.abs(depth[lay != LAYER_METAL])))
            h = np.where(np.isfinite(h), h, fallback_h)
            good = np.isfinite(z_mid)
            centres, z_mid, n_mid, h = centres[good], z_mid[good], n_mid[good], h[good]
            mid = np.column_stack([centres, z_mid])
            _, near = cKDTree(r[:, :2]).query(centres)
            n_empty = len(centres)
            k = np.arange(n_empty)
            first = n + n_lonely
            for sign, L in ((1, LAYER_TOP), (-1, LAYER_BOTTOM)):
                new_pos.append(mid + sign * h[:, None] * n_mid)
                new_layer.append(np.full(n_empty, L))
                new_region.append(reg[near])
                partner.append(first + k + (n_empty if sign == 1 else 0))

    if new_pos:
        added = np.concatenate(new_pos)
        m = len(added)
        pair_new = np.concatenate(partner)
        pair[lonely] = n + np.arange(n_lonely)
        r = np.concatenate([r, added])
        spec = np.concatenate([spec, np.full(m, VACANCY)])
        lay = np.concatenate([lay, np.concatenate(new_layer)]).astype(np.int8)
        reg = np.concatenate([reg, np.concatenate(new_region)]).astype(np.int8)
        pair = np.concatenate([pair, pair_new])
    origin = np.concatenate([np.arange(n), np.full(len(r) - n, -1)])
    log.info(
        "pairs: %d top/bottom pairs, %d vacancy partners, %d empty columns",
        int(np.sum((pair >= 0) & (lay == LAYER_TOP))) - n_empty,
        n_lonely,
        n_empty,
    )
    return PairedSites(r, spec, lay, reg, pair, origin)


def drop_stray_pairs(
    position: ArrayLike,
    species: ArrayLike,
    layer: ArrayLike,
    pair: ArrayLike,
    *,
    surfaces: LayerSurfaces,
    pair_radius: float = 1.2,
    min_separation: float = 1.6,
) -> np.ndarray:
    """Sites to keep: all but the pairs that are no chalcogen column.

    Two kinds of vacancy sites came from spurious peaks (noise, or the tail of a heavy
    atom at the field edge), not from the sample: the sites of a pair that flipping
    made vacant on both sites and whose foot is farther than ``pair_radius`` from every
    chalcogen column of the metal lattice (see :func:`lattice_columns`) or nearer than
    ``min_separation / 2`` to the foot of a chalcogen atom (a second pair on an
    occupied column), and the
    vacancy sites of a pair whose two sites are nearer than ``min_separation`` to each
    other (it does not span the sheet: a real top/bottom pair is about 3.2 Å apart;
    the atoms of such a pair stay, and the caller unpairs them).

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    r = np.asarray(position, dtype=float)
    spec = np.asarray(species).astype(str)
    lay = np.asarray(layer)
    partner = np.asarray(pair)
    keep = np.ones(len(r), dtype=bool)
    linked = np.flatnonzero(partner >= 0)
    flat = linked[np.linalg.norm(r[linked] - r[partner[linked]], axis=1) < min_separation]
    keep[flat[spec[flat] == VACANCY]] = False  # the atoms of such pairs stay, unpaired
    both = (spec == VACANCY) & (partner >= 0)
    both[both] &= spec[partner[both]] == VACANCY
    if not both.any():
        return keep
    foot, _, _ = _feet(r, surfaces)
    chalc = (lay != LAYER_METAL) & (spec != VACANCY)
    if chalc.any():
        # A second, empty pair on a column that holds atoms (a spurious peak between
        # the layers): columns are 1.8 Å apart, so feet nearer than half the minimum
        # separation are the same column.
        near, _ = cKDTree(foot[chalc]).query(foot[both])
        keep[np.flatnonzero(both)[near < 0.5 * min_separation]] = False
    centre, _ = lattice_columns(r[lay == LAYER_METAL, :2], foot[chalc], pair_radius)
    if len(centre) == 0:
        return keep
    dist, _ = cKDTree(centre).query(foot[both])
    keep[np.flatnonzero(both)[dist > pair_radius]] = False
    return keep


def merge_split_columns(
    position: ArrayLike,
    species: ArrayLike,
    layer: ArrayLike,
    pair: ArrayLike,
    *,
    surfaces: LayerSurfaces,
    pair_radius: float = 1.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Join pairs that share one chalcogen column of the metal lattice.

    A column whose traced top and bottom atoms sit farther apart in-plane than the
    pairing radius (a weak or elongated peak) becomes two pairs, each of an atom and a
    vacancy partner at its mirror image, and a spurious peak beside a column adds a
    second pair to it. Left so, the flipping fills one pair and keeps the other as a
    false vacancy or a second, spurious atom. Every pair is assigned to the nearest
    chalcogen column of the metal lattice (:func:`lattice_columns`) within
    ``pair_radius``; where several pairs share a column, the one with the most atoms
    (the first by index on a tie) stays, its vacant sites taken over by the other
    pairs' atoms on that layer, and the rest of their sites go.

    Parameters
    ----------
    position : array_like of shape (n, 3)
        All sites [Å].
    species : array_like of str, shape (n,)
        ``"vac"`` for vacancy sites.
    layer, pair : array_like of int, shape (n,)
        Layer (-1, 0, 1) and partner (-1 for metals).
    surfaces : LayerSurfaces
        The fitted layers.
    pair_radius : float, default 1.2
        Largest in-plane distance from a pair's foot to its column [Å].

    Returns
    -------
    keep : ndarray of bool, shape (n,)
        Sites to keep.
    pair : ndarray of int, shape (n,)
        Partners, with the sites of a joined column paired with each other (indices
        into the input; re-index after removing the other sites).
    """
    r = np.asarray(position, dtype=float)
    spec = np.asarray(species).astype(str)
    lay = np.asarray(layer)
    partner = np.array(pair, dtype=int)
    _check_sites(r, pair_radius, species=spec, layer=lay, pair=partner)
    keep = np.ones(len(r), dtype=bool)
    top, bottom, xy = _pair_feet(r, lay, partner, surfaces)
    if len(top) < 2:
        return keep, partner
    centre, _ = lattice_columns(r[lay == LAYER_METAL, :2], xy, pair_radius)
    if len(centre) == 0:
        return keep, partner
    dist, column = cKDTree(centre).query(xy)
    column[dist > pair_radius] = -1
    count = np.bincount(column[column >= 0], minlength=len(centre))
    atoms = (spec[top] != VACANCY).astype(int) + (spec[bottom] != VACANCY)
    shared = np.flatnonzero(count > 1)
    for c in shared:
        members = np.flatnonzero(column == c)
        first = np.minimum(top[members], bottom[members])
        members = members[np.lexsort((first, -atoms[members]))]  # most atoms, then index
        t, b = top[members[0]], bottom[members[0]]
        if spec[t] == VACANCY:
            t = _first_atom(top[members], spec, default=t)
        if spec[b] == VACANCY:
            b = _first_atom(bottom[members], spec, default=b)
        keep[top[members]] = keep[bottom[members]] = False
        keep[[t, b]] = True
        partner[t], partner[b] = b, t
    if len(shared):
        log.info(
            "pairs: %d chalcogen columns held more than one pair; joined (%d sites, "
            "%d of them atoms, removed)",
            len(shared),
            int((~keep).sum()),
            int(np.sum(~keep & (spec != VACANCY))),
        )
    return keep, partner


def _first_atom(sites: np.ndarray, species: np.ndarray, *, default: int) -> int:
    """The first site (by index) that holds an atom, else ``default``."""
    atoms = np.sort(sites[species[sites] != VACANCY])
    return int(atoms[0]) if len(atoms) else int(default)


def snap_chalcogens(
    position: ArrayLike,
    layer: ArrayLike,
    region: ArrayLike,
    pair: ArrayLike,
    *,
    surfaces: LayerSurfaces,
    heights: tuple[float, float],
    tolerance: float,
    pair_radius: float = 1.2,
) -> np.ndarray:
    """Move chalcogen sites that are far from their lattice site onto it.

    In 2H-MX2 the chalcogens of a column sit at the centre of a metal triangle, at a
    known height above and below the metal sheet (along its local normal). A volume
    whose chalcogen layers are weak or elongated (a limited tilt range) can put a
    traced chalcogen, or the mirror image of its partner, a good part of an ångström
    off; the refinement against the images then stays in a wrong local minimum (z is
    the weakly constrained axis). Each paired site farther than ``tolerance`` from its
    ideal site — the nearest chalcogen column of the metal lattice (or the pair's foot
    where no column is near), at ``heights[region]`` above or below the metal surface —
    is moved there; the refinement starts from it.

    Parameters
    ----------
    position : array_like of shape (n, 3)
        All sites [Å] (atoms and vacancy sites).
    layer, region, pair : array_like of int, shape (n,)
        Layer (-1, 0, 1), region (index into the materials) and partner (-1 for metals).
    surfaces : LayerSurfaces
        The fitted layers (the metal surface and its normal).
    heights : tuple of float
        Chalcogen height above the metal sheet in each region (0, then 1 if any) [Å]
        (:attr:`hpcaet.materials.Materials.heights`).
    tolerance : float
        Sites within this distance of their ideal site stay where they are [Å].
    pair_radius : float, default 1.2
        Largest in-plane distance from the pair's foot to a lattice column [Å].

    Returns
    -------
    ndarray of shape (n, 3)
        The positions, with the far chalcogen sites moved.
    """
    r = np.array(position, dtype=float)
    lay = np.asarray(layer)
    reg = np.asarray(region)
    partner = np.asarray(pair)
    _check_sites(r, pair_radius, layer=lay, region=reg, pair=partner)
    h = np.asarray(heights, dtype=float)
    if h.shape not in ((1,), (2,)) or not np.all(h > 0) or not tolerance >= 0:
        raise InputError(
            f"heights must be one positive height [Å] per region (one or two) and tolerance "
            f">= 0; got {heights!r} and {tolerance!r}."
        )
    top, bottom, xy = _pair_feet(r, lay, partner, surfaces)
    if len(top) == 0:
        return r
    metal = lay == LAYER_METAL
    centre, _ = lattice_columns(r[metal, :2], xy, pair_radius)
    if len(centre):
        dist, near = cKDTree(centre).query(xy)
        xy = np.where((dist <= pair_radius)[:, None], centre[near], xy)
    z_mid, normal = surfaces.middle(xy)
    ok = np.isfinite(z_mid)
    height = h[np.clip(reg[top], 0, len(h) - 1)]
    mid = np.column_stack([xy, z_mid])
    moved = 0
    for sites, sign in ((top, 1.0), (bottom, -1.0)):
        ideal = mid + sign * height[:, None] * normal
        far = ok & (np.linalg.norm(r[sites] - ideal, axis=1) > tolerance)
        r[sites[far]] = ideal[far]
        moved += int(far.sum())
    log.debug(
        "pairs: %d of %d chalcogen sites farther than %.2f Å from their lattice site moved onto it",
        moved,
        2 * len(top),
        tolerance,
    )
    return r


def _feet(r: np.ndarray, surfaces: LayerSurfaces):
    """Foot of each atom on the middle surface along its normal, the normal and depth."""
    z_mid, normal = surfaces.middle(r[:, :2])
    missing = ~np.isfinite(z_mid)
    if np.any(missing):  # no metal nearby: a flat sheet at the median height
        z_mid[missing] = np.nanmedian(z_mid) if np.any(~missing) else np.median(r[:, 2])
        normal[missing] = (0.0, 0.0, 1.0)
    depth = (r[:, 2] - z_mid) * normal[:, 2]
    foot = r[:, :2] - depth[:, None] * normal[:, :2]
    return foot, normal, depth


def _check_sites(r: np.ndarray, pair_radius: float, **per_site: np.ndarray) -> None:
    """Raise unless ``r`` is (n, 3), every array of ``per_site`` is (n,) and the radius > 0."""
    n = len(r)
    shapes = {name: np.shape(a) for name, a in per_site.items()}
    if r.shape != (n, 3) or any(shape != (n,) for shape in shapes.values()):
        raise InputError(
            f"position (n, 3) and {', '.join(shapes)} (n,) must agree; got shapes {r.shape}, "
            f"{', '.join(str(v) for v in shapes.values())}."
        )
    if not pair_radius > 0:
        raise InputError(f"pair_radius must be positive [Å]; got {pair_radius!r}.")


def _pair_feet(r, lay, partner, surfaces):
    """Top and bottom site of every top/bottom pair, and the mean foot of each pair."""
    top = np.flatnonzero((lay == LAYER_TOP) & (partner >= 0))
    top = top[lay[partner[top]] == LAYER_BOTTOM]
    bottom = partner[top]
    if len(top) == 0:
        return top, bottom, np.zeros((0, 2))
    foot, _, _ = _feet(r, surfaces)
    return top, bottom, 0.5 * (foot[top] + foot[bottom])


def _empty_columns(metal_xy: np.ndarray, chalc_xy: np.ndarray, radius: float) -> np.ndarray:
    """In-plane centres (k, 2) of chalcogen columns of the metal lattice with no atom."""
    centre, occupied = lattice_columns(metal_xy, chalc_xy, radius)
    return centre[~occupied]


def lattice_columns(
    metal_xy: ArrayLike, chalc_xy: ArrayLike, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Chalcogen columns of the metal lattice and whether a chalcogen sits on each.

    The columns are the centres of the metal triangles (Delaunay triangles with all
    sides within 25 % of the median metal spacing) of the orientation that the
    chalcogens take (the other orientation holds the hollow sites of 2H-MX2).

    Parameters
    ----------
    metal_xy : array_like of shape (n_metal, 2)
        In-plane metal positions [Å].
    chalc_xy : array_like of shape (n_chalc, 2)
        In-plane positions of chalcogen columns (atoms or feet) [Å].
    radius : float
        A column is occupied when a chalcogen is within this distance [Å].

    Returns
    -------
    centre : ndarray of shape (k, 2)
        Column centres [Å].
    occupied : ndarray of bool, shape (k,)
    """
    metal_xy = np.asarray(metal_xy, dtype=float).reshape(-1, 2)
    chalc_xy = np.asarray(chalc_xy, dtype=float).reshape(-1, 2)
    empty = (np.zeros((0, 2)), np.zeros(0, dtype=bool))
    if len(metal_xy) < 3 or len(chalc_xy) == 0:
        return empty
    try:
        tri = Delaunay(metal_xy)
    except Exception:  # degenerate (collinear) metals: no triangles  # noqa: BLE001
        return empty
    v = metal_xy[tri.simplices]  # (t, 3, 2)
    sides = np.linalg.norm(v - np.roll(v, 1, axis=1), axis=2)
    a = np.median(cKDTree(metal_xy).query(metal_xy, k=2)[0][:, 1])
    v = v[np.all((sides > 0.75 * a) & (sides < 1.25 * a), axis=1)]
    if len(v) == 0:
        return empty
    centre = v.mean(axis=1)
    rel = v[:, 0] - centre
    turn = np.exp(3j * np.arctan2(rel[:, 1], rel[:, 0]))  # same for all three vertices
    dist, _ = cKDTree(chalc_xy).query(centre)
    occupied = dist <= radius
    if not occupied.any():
        return empty
    column = np.real(turn * np.conj(turn[occupied].mean())) > 0
    return centre[column], occupied[column]
