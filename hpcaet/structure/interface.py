"""The MoS2–WSe2 interface of an atom model: where it runs, its edge types, what sits on it.

The interface is the zero line of a smoothed *material indicator*: every metal atom
carries +1 (W) or -1 (Mo), and the indicator at a point is the Gaussian-weighted mean
of the labels of the metals around it. Its zero contour, traced on a fine grid inside
the sample, is simplified to straight segments (Ramer–Douglas–Peucker); a segment is
*zigzag* when it runs within 15° of a metal–metal bond direction, *armchair*
otherwise (the armchair directions lie 30° off the zigzag ones). The bond directions
come from the data (:func:`~hpcaet.structure.lattice.lattice_orientation`), never from
the frame axes.

Distances to the interface are signed, > 0 on the WSe2 side, as in the phantom's
``interface_distance``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import contourpy  # a dependency of matplotlib
import numpy as np
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.materials import VACANCY
from hpcaet.structure.lattice import CHALCOGENS, METALS, lattice_orientation

__all__ = [
    "Interface",
    "find_interface",
    "interface_distance",
    "interface_chalcogens",
    "vacancy_profile",
]

log = logging.getLogger(__name__)

_GRID_FRACTION = 0.25  # contour grid step, in metal spacings
_NEIGHBOURS = 16  # metals entering the indicator at a point


@dataclass(frozen=True)
class Interface:
    """A traced MoS2–WSe2 interface.

    Attributes
    ----------
    polylines : list of ndarray of shape (m_i, 2)
        The simplified interface lines, vertices in order [Å].
    segments : ndarray of shape (n_seg, 2, 2)
        Their straight pieces, ``segments[k] = (start, end)`` [Å], in the order of the
        polylines.
    kind : ndarray of str, shape (n_seg,)
        ``"zigzag"`` or ``"armchair"`` for each segment.
    deviation : ndarray of shape (n_seg,)
        Angle of each segment from the nearest zigzag direction, in [0, 30] [deg].
    polyline_index : ndarray of int, shape (n_seg,)
        The polyline each segment belongs to.
    zigzag_angle : float
        Direction of the metal–metal bonds from +x, in [0, 60) [deg].
    spacing : float
        Metal–metal spacing found in the data [Å].
    smoothing : float
        Width of the Gaussian of the material indicator [Å].
    """

    polylines: list
    segments: np.ndarray
    kind: np.ndarray
    deviation: np.ndarray
    polyline_index: np.ndarray
    zigzag_angle: float
    spacing: float
    smoothing: float
    _metal_xy: np.ndarray = field(repr=False)
    _is_w: np.ndarray = field(repr=False)

    @property
    def length(self) -> dict[str, float]:
        """Total length of the zigzag and armchair segments [Å]."""
        lengths = np.linalg.norm(self.segments[:, 1] - self.segments[:, 0], axis=1)
        return {k: float(lengths[self.kind == k].sum()) for k in ("zigzag", "armchair")}


def _metal_labels(species: np.ndarray, inside: str) -> tuple[np.ndarray, np.ndarray]:
    species = np.asarray(species).astype(str)
    is_metal = np.isin(species, METALS)
    return is_metal, species == inside


def find_interface(
    positions: np.ndarray,
    species: np.ndarray,
    *,
    smoothing: float | None = None,
    simplify: float | None = None,
    zigzag_tolerance: float = 15.0,
    min_length: float | None = None,
    inside: str = "W",
) -> Interface:
    """Trace the boundary between the two materials (MoS2–WSe2) from the metal species.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions [Å]; only the metals (Mo, W) are used.
    species : ndarray of str, shape (n,)
        Chemical symbols (``"vac"`` for vacancy sites).
    smoothing : float, optional
        Gaussian width of the material indicator [Å]. Default: the metal spacing.
    simplify : float, optional
        Largest distance of the traced contour from its straight-segment
        simplification [Å]. Default: half the metal spacing.
    zigzag_tolerance : float
        A segment within this angle of a zigzag direction is zigzag [deg], in (0, 30).
    min_length : float, optional
        Contour pieces shorter than this are dropped [Å]. Default: two metal spacings.
    inside : str, default "W"
        Metal of region 1 (the side of positive distances); any other metal is region
        0's.

    Returns
    -------
    Interface

    Raises
    ------
    InputError
        Fewer than six metals, only one metal species (no interface), or no boundary
        longer than ``min_length`` inside the sample.

    Examples
    --------
    >>> from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
    >>> atoms = build_heterojunction(HeterojunctionSpec(), rng=0)
    >>> found = find_interface(atoms.positions, atoms.get_chemical_symbols())
    >>> sorted(str(k) for k in set(found.kind))
    ['armchair', 'zigzag']
    """
    pos = np.asarray(positions, dtype=float)
    species = np.asarray(species).astype(str)
    if pos.ndim != 2 or pos.shape[1] != 3 or species.shape != (len(pos),):
        raise InputError(
            f"find_interface needs positions (n, 3) and species (n,); got {pos.shape} and "
            f"{species.shape}."
        )
    if not 0 < zigzag_tolerance < 30:
        raise InputError(f"zigzag_tolerance must be in (0, 30) degrees; got {zigzag_tolerance}.")
    is_metal, is_w = _metal_labels(species, inside)
    n_w, n_mo = int(is_w.sum()), int((is_metal & ~is_w).sum())
    if n_w == 0 or n_mo == 0:
        raise InputError(
            f"the model has {n_w} {inside} and {n_mo} other metal atoms: only one material, "
            "so there is no interface. Skip the interface analysis for single-material "
            "models."
        )
    xy = pos[is_metal, :2]
    theta, spacing = lattice_orientation(xy)
    sigma = spacing if smoothing is None else float(smoothing)
    tol = 0.5 * spacing if simplify is None else float(simplify)
    min_len = 2 * spacing if min_length is None else float(min_length)
    if not (sigma > 0 and tol > 0 and min_len >= 0):
        raise InputError(
            f"smoothing and simplify must be positive and min_length >= 0; got {sigma}, "
            f"{tol}, {min_len}."
        )
    labels = np.where(is_w[is_metal], 1.0, -1.0)

    step = _GRID_FRACTION * spacing
    lo, hi = xy.min(0), xy.max(0)
    gx = np.arange(lo[0], hi[0] + step, step)
    gy = np.arange(lo[1], hi[1] + step, step)
    gxx, gyy = np.meshgrid(gx, gy)
    grid = np.column_stack([gxx.ravel(), gyy.ravel()])
    value = _indicator(grid, xy, labels, sigma)
    near, _ = cKDTree(xy).query(grid)
    value[near > spacing] = np.nan  # outside the sample
    gen = contourpy.contour_generator(gx, gy, value.reshape(gxx.shape), line_type="Separate")
    lines = [np.asarray(line) for line in gen.lines(0.0)]
    lines = [line for line in lines if _path_length(line) >= min_len]
    if not lines:
        raise InputError(
            f"no Mo/W boundary longer than {min_len:.3g} Å inside the sample ({n_mo} Mo, "
            f"{n_w} W atoms); the materials may be mixed at random. Lower min_length."
        )
    polylines = [_straighten(line, tol, sigma, min_len) for line in lines]
    segments, owner = [], []
    for i, line in enumerate(polylines):
        segments.extend(np.stack([line[:-1], line[1:]], axis=1))
        owner.extend([i] * (len(line) - 1))
    segments = np.asarray(segments).reshape(-1, 2, 2)
    d = segments[:, 1] - segments[:, 0]
    phi = np.arctan2(d[:, 1], d[:, 0])
    dev = np.degrees(np.mod(phi - theta, np.pi / 3))
    dev = np.minimum(dev, 60.0 - dev)
    kind = np.where(dev <= zigzag_tolerance, "zigzag", "armchair")
    found = Interface(
        polylines=polylines,
        segments=segments,
        kind=kind,
        deviation=dev,
        polyline_index=np.asarray(owner, dtype=int),
        zigzag_angle=float(np.degrees(theta)),
        spacing=spacing,
        smoothing=sigma,
        _metal_xy=xy,
        _is_w=is_w[is_metal],
    )
    log.info(
        "interface: %d polyline(s), %d segments, zigzag %.1f Å, armchair %.1f Å",
        len(polylines),
        len(segments),
        found.length["zigzag"],
        found.length["armchair"],
    )
    return found


def interface_distance(points: np.ndarray, interface: Interface) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the interface and arc length of the nearest interface point.

    Parameters
    ----------
    points : ndarray of shape (n, 2) or (n, 3)
        Positions [Å]; only x and y are used.
    interface : Interface

    Returns
    -------
    distance : ndarray of shape (n,)
        In-plane distance to the nearest segment [Å], > 0 on the WSe2 side (the sign of
        the material indicator at the point).
    arc : ndarray of shape (n,)
        Arc length along the nearest polyline, from its first vertex, of the nearest
        interface point [Å].
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise InputError(f"points must have shape (n, 2) or (n, 3); got {pts.shape}.")
    xy = pts[:, :2]
    seg = interface.segments
    p0, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    length = np.linalg.norm(d, axis=1)
    start = np.zeros(len(seg))
    for i in np.unique(interface.polyline_index):
        sel = np.flatnonzero(interface.polyline_index == i)
        start[sel] = np.concatenate([[0.0], np.cumsum(length[sel])[:-1]])
    dist = np.empty(len(xy))
    arc = np.empty(len(xy))
    for lo in range(0, len(xy), 4096):  # bounded memory: chunk x segments
        chunk = xy[lo : lo + 4096]
        rel = chunk[:, None, :] - p0[None]
        t = np.clip(np.einsum("nsk,sk->ns", rel, d) / length**2, 0.0, 1.0)
        foot = p0[None] + t[..., None] * d[None]
        dd = np.linalg.norm(chunk[:, None, :] - foot, axis=2)
        k = np.argmin(dd, axis=1)
        rows = np.arange(len(chunk))
        dist[lo : lo + 4096] = dd[rows, k]
        arc[lo : lo + 4096] = start[k] + t[rows, k] * length[k]
    labels = np.where(interface._is_w, 1.0, -1.0)
    side = _indicator(xy, interface._metal_xy, labels, interface.smoothing)
    return np.where(side >= 0, dist, -dist), arc


def interface_chalcogens(
    positions: np.ndarray,
    species: np.ndarray,
    distance: np.ndarray,
    *,
    cutoff: float,
    bond_cutoff: float | None = None,
) -> dict[str, dict[str, int]]:
    """Count the chalcogen sites at the interface, by species.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols, ``"vac"`` for vacancy sites.
    distance : ndarray of shape (n,)
        Signed distance of each atom to the interface [Å] (:func:`interface_distance`).
    cutoff : float
        Chalcogen sites with ``|distance| <= cutoff`` are *near* the interface [Å].
    bond_cutoff : float, optional
        In-plane metal–chalcogen distance below which they are bonded [Å]. Default:
        0.75 metal spacings (the ideal value is ``a / sqrt(3) = 0.58 a``).

    Returns
    -------
    dict
        ``{"near": {"S": .., "Se": .., "vac": ..}, "bridging": {...}}`` (the chalcogens
        present, and vacancies): sites within ``cutoff``, and sites bonded to metals
        of both kinds, e.g. a Mo and a W atom (the chalcogens that make the interface
        bonds, as counted in the paper: 38 S and 8 Se).
    """
    pos = np.asarray(positions, dtype=float)
    species = np.asarray(species).astype(str)
    distance = np.asarray(distance, dtype=float)
    if not cutoff >= 0:
        raise InputError(f"cutoff must be >= 0 Å; got {cutoff}.")
    is_metal = np.isin(species, METALS)
    present = [c for c in CHALCOGENS if np.any(species == c)]
    names = (*present, VACANCY)
    chalc = np.isin(species, names)
    near = {s: int(np.sum(chalc & (species == s) & (np.abs(distance) <= cutoff))) for s in names}
    _, spacing = lattice_orientation(pos[is_metal, :2])
    bond = 0.75 * spacing if bond_cutoff is None else float(bond_cutoff)
    tree = cKDTree(pos[is_metal, :2])
    metal_species = species[is_metal]
    bridging = dict.fromkeys(names, 0)
    for i, neighbours in zip(
        np.flatnonzero(chalc), tree.query_ball_point(pos[chalc, :2], bond), strict=True
    ):
        if len(set(metal_species[neighbours].tolist())) > 1:
            bridging[species[i]] += 1
    return {"near": near, "bridging": bridging}


def vacancy_profile(
    distance: np.ndarray,
    species: np.ndarray,
    *,
    bin_width: float,
    max_distance: float | None = None,
) -> dict[str, np.ndarray]:
    """Vacancies against signed distance to the interface.

    Parameters
    ----------
    distance : ndarray of shape (n,)
        Signed distance of each atom to the interface [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols, ``"vac"`` for vacancy sites.
    bin_width : float
        Width of the distance bins [Å].
    max_distance : float, optional
        Bins cover ``[-max_distance, max_distance]`` [Å]; default: all sites.

    Returns
    -------
    dict
        ``centre`` (bin centres [Å]), ``vacancies`` and ``sites`` (chalcogen sites,
        vacancies included) per bin, and ``fraction`` (vacancies / sites, NaN for an
        empty bin).
    """
    distance = np.asarray(distance, dtype=float)
    species = np.asarray(species).astype(str)
    if not bin_width > 0:
        raise InputError(f"bin_width must be positive; got {bin_width} Å.")
    sites = np.isin(species, CHALCOGENS + (VACANCY,))
    if not sites.any():
        raise InputError("the model has no chalcogen or vacancy sites; nothing to count.")
    reach = np.abs(distance[sites]).max() if max_distance is None else float(max_distance)
    n_half = max(1, int(np.ceil(reach / bin_width - 0.5)))
    edges = (np.arange(-n_half, n_half + 2) - 0.5) * bin_width
    vac, _ = np.histogram(distance[species == VACANCY], edges)
    tot, _ = np.histogram(distance[sites], edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(tot > 0, vac / np.maximum(tot, 1), np.nan)
    return {
        "centre": 0.5 * (edges[1:] + edges[:-1]),
        "vacancies": vac,
        "sites": tot,
        "fraction": fraction,
    }


def _indicator(
    points: np.ndarray, metal_xy: np.ndarray, labels: np.ndarray, sigma: float
) -> np.ndarray:
    """Gaussian-weighted mean label of the metals near each point (nearest label far out)."""
    k = min(_NEIGHBOURS, len(metal_xy))
    dist, idx = cKDTree(metal_xy).query(points, k=k)
    dist, idx = dist.reshape(len(points), k), idx.reshape(len(points), k)
    # Weights relative to the nearest metal keep far points finite.
    w = np.exp(-(dist**2 - dist[:, :1] ** 2) / (2 * sigma**2))
    return np.sum(w * labels[idx], axis=1) / np.sum(w, axis=1)


def _path_length(line: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(line, axis=0), axis=1)))


def _straighten(line: np.ndarray, tol: float, trim: float, min_segment: float) -> np.ndarray:
    """Straight-segment version of a traced contour.

    The contour is split at its Ramer–Douglas–Peucker vertices; segments shorter than
    ``min_segment`` are merged into their neighbours (they are the rounding of a corner
    by the smoothing); a line is fitted (total least squares) to each piece, leaving
    out ``trim`` of arc length at both ends, and the vertices are the intersections of
    neighbouring lines.
    """
    idx = list(np.flatnonzero(_simplify(line, tol)))
    while len(idx) > 2:
        lengths = np.linalg.norm(line[idx[1:]] - line[idx[:-1]], axis=1)
        k = int(np.argmin(lengths))
        if lengths[k] >= min_segment:
            break
        if k == 0:
            del idx[1]
        elif k == len(lengths) - 1:
            del idx[-2]
        else:
            idx[k : k + 2] = [(idx[k] + idx[k + 1]) // 2]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    lines = []
    for i, j in zip(idx[:-1], idx[1:], strict=True):
        sel = np.arange(i, j + 1)
        inner = sel[(arc[sel] - arc[i] >= trim) & (arc[j] - arc[sel] >= trim)]
        pts = line[inner] if len(inner) >= 3 else line[sel]
        centre = pts.mean(0)
        direction = np.linalg.svd(pts - centre, full_matrices=False)[2][0]
        lines.append((centre, direction))

    def project(point, which):
        c, d = lines[which]
        return c + np.dot(point - c, d) * d

    vertices = [project(line[0], 0)]
    for k in range(len(lines) - 1):
        (c1, d1), (c2, d2) = lines[k], lines[k + 1]
        cross = d1[0] * d2[1] - d1[1] * d2[0]
        corner = line[idx[k + 1]]
        if abs(cross) > np.sin(np.radians(10)):
            t = ((c2 - c1)[0] * d2[1] - (c2 - c1)[1] * d2[0]) / cross
            point = c1 + t * d1
            if np.linalg.norm(point - corner) <= min_segment:
                vertices.append(point)
                continue
        vertices.append(0.5 * (project(corner, k) + project(corner, k + 1)))
    vertices.append(project(line[-1], len(lines) - 1))
    return np.asarray(vertices)


def _simplify(line: np.ndarray, tol: float) -> np.ndarray:
    """Ramer–Douglas–Peucker simplification: mask of the vertices kept, in order."""
    keep = np.zeros(len(line), bool)
    keep[[0, -1]] = True
    stack = [(0, len(line) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = line[i], line[j]
        ab = b - a
        rel = line[i + 1 : j] - a
        norm = np.linalg.norm(ab)
        if norm == 0:
            dist = np.linalg.norm(rel, axis=1)
        else:
            dist = np.abs(ab[0] * rel[:, 1] - ab[1] * rel[:, 0]) / norm
        k = int(np.argmax(dist))
        if dist[k] > tol:
            m = i + 1 + k
            keep[m] = True
            stack.extend([(i, m), (m, j)])
    return keep
