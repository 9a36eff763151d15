"""The 2H lattice seen in an atom model: orientation, indexing and a least-squares fit.

A monolayer transition-metal dichalcogenide is a triangular lattice of metal sites
``n1 a1 + n2 a2`` (``a1 = a (1, 0)``, ``a2 = a (1/2, sqrt(3)/2)``), with the two
chalcogens of a formula unit stacked above and below one of the two triangle centres,
``(n + s (1/3, 1/3)) B`` at heights ``+h`` (top) and ``-h`` (bottom), where
``s = 1`` or ``2`` is the chalcogen sublattice. Metal–metal nearest-neighbour bonds run
along the *zigzag* directions; the *armchair* directions lie 30° off them.

:func:`lattice_orientation` finds the zigzag direction and the metal spacing from the
data; :func:`fit_ideal_lattice` gives every site integer lattice indices by walking
the nearest-neighbour graph (so smooth strain of any size that stays below ~15 % per
bond is followed) and fits the rigid-body transform of the ideal lattice to the sites
by least squares (Kabsch), optionally with the lattice constant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.materials import CHALCOGENS, METALS

__all__ = [
    "METALS",
    "CHALCOGENS",
    "LatticeFit",
    "lattice_orientation",
    "fit_ideal_lattice",
]

log = logging.getLogger(__name__)

_BOND_TOLERANCE = 1.25  # neighbours are nearer than this many metal spacings
_MIN_METALS = 6


def _basis(a: float) -> np.ndarray:
    """Columns a1, a2 of the unrotated triangular lattice, shape (2, 2) [Å]."""
    return a * np.array([[1.0, 0.5], [0.0, np.sqrt(3.0) / 2.0]])


def _rotation_2d(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def lattice_orientation(metal_xy: np.ndarray) -> tuple[float, float]:
    """Zigzag direction and metal spacing of a triangular lattice of metal sites.

    Parameters
    ----------
    metal_xy : ndarray of shape (n, 2)
        In-plane positions of the metal atoms [Å]; ``n >= 6``.

    Returns
    -------
    theta : float
        Angle of the zigzag (metal–metal bond) direction from +x, in ``[0, pi/3)`` [rad].
        The lattice has 6-fold symmetry in projection, so ``theta + k pi/3`` are the
        other zigzag directions and ``theta + pi/6 + k pi/3`` the armchair ones.
    spacing : float
        Median nearest-neighbour metal distance, i.e. the lattice constant [Å].

    Raises
    ------
    InputError
        Fewer than six metals, or no pair of them near enough to be bonded.

    Notes
    -----
    The angle is the 6-fold circular mean ``arg(sum exp(6 i phi)) / 6`` over the
    directions ``phi`` of all nearest-neighbour bonds, which is insensitive to which
    of the six bond directions each bond is.
    """
    xy = np.asarray(metal_xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) < _MIN_METALS:
        raise InputError(
            f"lattice_orientation needs at least {_MIN_METALS} metal positions of shape "
            f"(n, 2); got shape {xy.shape}. Pass the x, y of the Mo/W atoms."
        )
    tree = cKDTree(xy)
    dist, idx = tree.query(xy, k=min(7, len(xy)))
    spacing = float(np.median(dist[:, 1]))
    bonded = dist[:, 1:] < _BOND_TOLERANCE * spacing
    if not bonded.any() or spacing <= 0:
        raise InputError(
            f"no bonded metal pairs among {len(xy)} metals (median nearest distance "
            f"{spacing:.3g} Å); the metals do not form a lattice."
        )
    vec = xy[idx[:, 1:]] - xy[:, None, :]
    phi = np.arctan2(vec[..., 1], vec[..., 0])[bonded]
    theta = np.angle(np.mean(np.exp(6j * phi))) / 6.0
    return float(np.mod(theta, np.pi / 3)), spacing


@dataclass(frozen=True)
class LatticeFit:
    """Result of :func:`fit_ideal_lattice`.

    Attributes
    ----------
    lattice_constant : float
        Lattice constant of the ideal lattice [Å] (the one given, or the fitted one).
    height : float
        Chalcogen height above/below the metal plane of the ideal lattice [Å].
    sublattice : int
        Chalcogen sublattice, 1 or 2 (centre at ``s (a1 + a2) / 3``).
    rotation : ndarray of shape (3, 3)
        Rotation taking ideal-lattice coordinates to the sample frame.
    translation : ndarray of shape (3,)
        Translation of the same transform [Å].
    indices : ndarray of int, shape (n, 2)
        Lattice indices ``(n1, n2)`` of every site given.
    ideal : ndarray of shape (n, 3)
        The fitted ideal position of every site, in the sample frame [Å].
    rms : float
        Root-mean-square distance of the fitted sites from their ideal positions [Å].
    """

    lattice_constant: float
    height: float
    sublattice: int
    rotation: np.ndarray
    translation: np.ndarray
    indices: np.ndarray
    ideal: np.ndarray
    rms: float


def fit_ideal_lattice(
    positions: np.ndarray,
    *,
    is_metal: np.ndarray,
    layer: np.ndarray,
    lattice_constant: float,
    height: float,
    fit_lattice_constant: bool = False,
    weights: np.ndarray | None = None,
    iterations: int = 5,
) -> LatticeFit:
    """Index the sites of one material and fit its ideal 2H lattice by least squares.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Sites of one material (x, y, z) [Å]: metals, chalcogens and vacancy sites.
    is_metal : ndarray of bool, shape (n,)
        True for Mo/W sites.
    layer : ndarray of int, shape (n,)
        -1 bottom chalcogen, 0 metal, 1 top chalcogen.
    lattice_constant : float
        Lattice constant of the material [Å]; the starting value when
        ``fit_lattice_constant`` is set.
    height : float
        Chalcogen height above/below the metal plane [Å] of the ideal lattice.
    fit_lattice_constant : bool
        Also fit the (in-plane) lattice constant; otherwise the material's own constant
        is kept, so that the displacements carry the strain relative to the bulk
        material.
    weights : ndarray of shape (n,), optional
        Weight of each site in the fit (e.g. 0 for vacancy sites, whose positions are
        not measured). Default: 1 for every site.
    iterations : int
        Alternations of the rigid fit and the lattice-constant fit.

    Returns
    -------
    LatticeFit

    Raises
    ------
    InputError
        Too few metals to define a lattice, inconsistent shapes, or a non-positive
        lattice constant or height.

    Notes
    -----
    Indices are assigned by a breadth-first walk over the metal nearest-neighbour
    graph from the metal nearest the centroid: each step rounds the bond vector in the
    lattice basis, so smooth strain accumulates without breaking the indexing. Metals
    off the largest connected piece are indexed by rounding on the fitted lattice.
    Each chalcogen (or vacancy) site is indexed from its nearest metal; the sublattice
    is the majority vote. The transform is the 3D Kabsch fit of the ideal sites
    (z = layer * height) onto the measured ones.
    """
    pos = np.asarray(positions, dtype=float)
    is_metal = np.asarray(is_metal, dtype=bool)
    layer = np.asarray(layer)
    n = len(pos)
    if pos.ndim != 2 or pos.shape[1] != 3 or is_metal.shape != (n,) or layer.shape != (n,):
        raise InputError(
            f"fit_ideal_lattice needs positions (n, 3) with is_metal and layer (n,); got "
            f"{pos.shape}, {is_metal.shape}, {layer.shape}."
        )
    if not (lattice_constant > 0 and height > 0):
        raise InputError(
            f"lattice_constant and height must be positive; got {lattice_constant} and {height} Å."
        )
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    metals = np.flatnonzero(is_metal)
    if len(metals) < _MIN_METALS:
        raise InputError(
            f"a lattice fit needs at least {_MIN_METALS} metal atoms; got {len(metals)}. "
            "The region is too small to analyse."
        )
    theta, spacing = lattice_orientation(pos[metals, :2])
    basis = _rotation_2d(theta) @ _basis(spacing)
    metal_idx = _walk_indices(pos[metals, :2], basis, spacing)

    # Chalcogen (and vacancy) sites: index from the nearest metal, then the sublattice.
    others = np.flatnonzero(~is_metal)
    indices = np.zeros((n, 2), dtype=np.int64)
    frac_off = np.zeros((n, 2))
    known = ~np.isnan(metal_idx[:, 0])
    indices[metals[known]] = metal_idx[known].astype(np.int64)
    sublattice = 1
    if len(others):
        tree = cKDTree(pos[metals[known], :2])
        _, near = tree.query(pos[others, :2])
        frac = np.linalg.solve(basis, (pos[others, :2] - pos[metals[known][near], :2]).T).T
        votes = np.array([_sublattice_distance(frac, s) for s in (1, 2)])
        sublattice = 1 + int(np.argmin(np.median(votes, axis=1)))
        shift = sublattice / 3.0
        indices[others] = np.rint(frac - shift).astype(np.int64) + indices[metals[known][near]]
        frac_off[others] = shift

    fit = _fit_transform(
        pos,
        indices,
        frac_off,
        layer,
        w,
        basis_angle=theta,
        a=lattice_constant,
        height=height,
        fit_a=fit_lattice_constant,
        iterations=iterations,
        use=np.isin(np.arange(n), metals[~known], invert=True),
    )
    if not known.all():
        # Metals off the main piece: round on the fitted lattice, then refit.
        lost = metals[~known]
        log.warning(
            "lattice fit: %d metal(s) not connected to the main lattice; indexed "
            "by rounding on the fitted lattice",
            len(lost),
        )
        local = (pos[lost] - fit[1]) @ fit[0]
        b = _basis(fit[2])
        indices[lost] = np.rint(np.linalg.solve(b, local[:, :2].T).T).astype(np.int64)
        fit = _fit_transform(
            pos,
            indices,
            frac_off,
            layer,
            w,
            basis_angle=theta,
            a=fit[2],
            height=height,
            fit_a=fit_lattice_constant,
            iterations=iterations,
            use=np.ones(n, bool),
        )
    rotation, translation, a, ideal = fit
    resid = np.linalg.norm(pos - ideal, axis=1)
    rms = float(np.sqrt(np.average(resid**2, weights=w))) if w.sum() > 0 else float("nan")
    log.debug(
        "lattice fit: a = %.4f Å, theta = %.3f deg, sublattice %d, rms %.3f Å",
        a,
        np.degrees(theta),
        sublattice,
        rms,
    )
    return LatticeFit(
        lattice_constant=float(a),
        height=float(height),
        sublattice=sublattice,
        rotation=rotation,
        translation=translation,
        indices=indices,
        ideal=ideal,
        rms=rms,
    )


def _sublattice_distance(frac: np.ndarray, s: int) -> np.ndarray:
    """In-plane distance (in lattice units) of fractional offsets from sublattice ``s``."""
    d = frac - s / 3.0
    d -= np.rint(d)
    return np.linalg.norm(d, axis=1)


def _walk_indices(xy: np.ndarray, basis: np.ndarray, spacing: float) -> np.ndarray:
    """Lattice indices of metals by a breadth-first walk; NaN off the largest piece."""
    n = len(xy)
    pairs = cKDTree(xy).query_pairs(_BOND_TOLERANCE * spacing, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_comp, labels = connected_components(graph, directed=False)
    main = np.argmax(np.bincount(labels))
    members = np.flatnonzero(labels == main)
    seed = members[np.argmin(np.linalg.norm(xy[members] - xy[members].mean(0), axis=1))]
    order, pred = breadth_first_order(graph, seed, directed=False)
    inv = np.linalg.inv(basis)
    out = np.full((n, 2), np.nan)
    out[seed] = 0.0
    for node in order[1:]:
        p = pred[node]
        out[node] = out[p] + np.rint(inv @ (xy[node] - xy[p]))
    return out


def _fit_transform(
    pos, indices, frac_off, layer, w, *, basis_angle, a, height, fit_a, iterations, use
):
    """Kabsch fit of the ideal lattice (and optionally its constant) to the sites."""
    unit = (indices + frac_off) @ _basis(1.0).T  # in-plane ideal sites for a = 1, (n, 2)
    # Start the rigid fit from the measured zigzag orientation.
    r2 = _rotation_2d(basis_angle)
    unit = unit @ r2.T
    zed = layer.astype(float) * height
    ww = w * use
    for _ in range(iterations if fit_a else 1):
        ideal_local = np.column_stack([a * unit, zed])
        rotation, translation = _kabsch(ideal_local, pos, ww)
        if not fit_a:
            break
        # Lattice constant and translation for the fixed rotation: linear least squares.
        pu = np.column_stack([unit, np.zeros(len(unit))]) @ rotation.T
        rest = pos - np.column_stack([np.zeros((len(zed), 2)), zed]) @ rotation.T
        pu = pu - (ww[:, None] * pu).sum(0) / ww.sum()
        rest = rest - (ww[:, None] * rest).sum(0) / ww.sum()
        a = float(np.sum(ww[:, None] * pu * rest) / np.sum(ww[:, None] * pu * pu))
    ideal_local = np.column_stack([a * unit, zed])
    if fit_a:
        rotation, translation = _kabsch(ideal_local, pos, ww)
    ideal = ideal_local @ rotation.T + translation
    # Express the returned rotation from the unrotated ideal frame.
    r3 = np.eye(3)
    r3[:2, :2] = r2
    return rotation @ r3, translation, a, ideal


def _kabsch(p: np.ndarray, q: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising sum w |R p + t - q|^2."""
    wsum = w.sum()
    pc = (w[:, None] * p).sum(0) / wsum
    qc = (w[:, None] * q).sum(0) / wsum
    h = ((p - pc) * w[:, None]).T @ (q - qc)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, qc - rot @ pc
