"""The three atomic layers of a rippled monolayer, fitted locally.

A monolayer MX2 has its metals on a middle sheet and its chalcogens on a top and a
bottom sheet about 1.6 Å above and below it. The sheet ripples (±1.5 Å over tens of Å
in the heterojunction of the paper), so flat planes do not separate the layers; here
each layer is a smooth surface ``z = f_L(x, y)``, the Gaussian-weighted local
quadratic regression of the heights of the atoms assigned to it (a LOESS of degree 2,
Cleveland & Devlin 1988), and atoms are assigned to the nearest surface. The
assignment and the surfaces are refined together for a few rounds, starting from one
surface through all atoms (the middle one, as top and bottom balance).

:func:`fit_layers` returns the assignment, the height of every atom above its own
surface and a :class:`LayerSurfaces` object that evaluates the three surfaces, their
normals and the local half thickness anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from hpcaet.errors import InputError

__all__ = ["LAYER_BOTTOM", "LAYER_METAL", "LAYER_TOP", "LayerSurfaces", "LayerFit", "fit_layers"]

#: Layer labels, as in :mod:`hpcaet.phantom` and the AtomModel schema.
LAYER_BOTTOM, LAYER_METAL, LAYER_TOP = -1, 0, 1
_LAYERS = (LAYER_BOTTOM, LAYER_METAL, LAYER_TOP)
#: Neighbours are taken out to this many smoothing widths.
_REACH = 3.0
#: A surface needs this much Gaussian weight (in atoms at the query point) to exist.
_MIN_WEIGHT = 1.5


@dataclass(frozen=True)
class LayerSurfaces:
    """Smooth surfaces of the bottom, middle and top layers.

    Attributes
    ----------
    points : dict of int to ndarray of shape (n_L, 3)
        Atoms ``x, y, z`` [Å] that define each layer's surface, keyed by layer label.
    smoothing : float
        Standard deviation of the Gaussian weights of the local regression [Å].
    weights : dict of int to ndarray of shape (n_L,), optional
        Robustness weight of each defining atom in [0, 1] (1 when omitted).
    """

    points: dict[int, np.ndarray]
    smoothing: float
    weights: dict[int, np.ndarray] | None = None

    def height(self, xy: ArrayLike, layer: int, *, exclude: np.ndarray | None = None):
        """Height and slope of one layer's surface at in-plane points.

        Parameters
        ----------
        xy : array_like of shape (q, 2)
            Query points ``x, y`` [Å].
        layer : int
            -1 bottom, 0 middle, 1 top.
        exclude : ndarray of int, shape (q,), optional
            For each query, the index of a defining point of this layer to leave out
            (a leave-one-out fit), or -1.

        Returns
        -------
        z : ndarray of shape (q,)
            Surface height [Å]; NaN where the layer has too few atoms nearby.
        slope : ndarray of shape (q, 2)
            ``dz/dx, dz/dy`` [1]; NaN likewise.
        """
        pts = self.points[layer]
        weight = None if self.weights is None else self.weights.get(layer)
        return _local_quadratic(
            pts[:, :2],
            pts[:, 2],
            np.asarray(xy, float).reshape(-1, 2),
            self.smoothing,
            exclude=exclude,
            point_weight=weight,
        )

    def middle(self, xy: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Height [Å] and unit normal (q, 3) of the middle (metal) surface."""
        z, slope = self.height(xy, LAYER_METAL)
        normal = np.column_stack([-slope, np.ones(len(z))])
        return z, normal / np.linalg.norm(normal, axis=1, keepdims=True)

    def half_thickness(self, xy: ArrayLike) -> np.ndarray:
        """Half the top-to-bottom distance, ``(z_top - z_bottom) / 2`` [Å], at points."""
        top, _ = self.height(xy, LAYER_TOP)
        bottom, _ = self.height(xy, LAYER_BOTTOM)
        return 0.5 * (top - bottom)


class LayerFit(NamedTuple):
    """Result of :func:`fit_layers`.

    Attributes
    ----------
    layer : ndarray of int8, shape (n,)
        -1 bottom, 0 middle, 1 top.
    distance : ndarray of shape (n,)
        Height of each atom above its own layer's surface, fitted without that atom
        [Å]; NaN where the surface is undefined (too few atoms of the layer nearby).
    surfaces : LayerSurfaces
        The fitted surfaces.
    """

    layer: np.ndarray
    distance: np.ndarray
    surfaces: LayerSurfaces


def fit_layers(
    positions: ArrayLike,
    *,
    smoothing: float = 6.0,
    spacing: float | None = None,
    rounds: int = 3,
    strength: ArrayLike | None = None,
) -> LayerFit:
    """Assign atoms to the bottom, middle and top layers of a rippled monolayer.

    Parameters
    ----------
    positions : array_like of shape (n, 3)
        Atom positions ``x, y, z`` [Å], sheet roughly normal to z.
    smoothing : float, default 6.0
        Standard deviation of the Gaussian weights of the local quadratic surfaces [Å];
        a few lattice constants, well below the ripple wavelength.
    spacing : float, optional
        Expected height of a chalcogen layer over the metal layer [Å] for the first
        assignment; by default it is estimated from the data (median ``|z - z_mid|``
        of the atoms between 0.8 and 2.6 Å off the middle surface).
    rounds : int, default 3
        Rounds of (fit surfaces, reassign atoms).
    strength : array_like of shape (n,), optional
        Peak height or intensity of each atom. When given, the first middle surface is
        the local median height of the strongest third of the atoms only (the metals
        scatter most), so that weak noise peaks above and below the sheet do not bend
        it; otherwise of all atoms.

    Returns
    -------
    LayerFit

    Raises
    ------
    InputError
        When ``positions`` is not (n, 3) and finite, has fewer than 4 atoms, or a
        width is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> xy = np.random.default_rng(0).uniform(-10, 10, (300, 2))
    >>> z = np.repeat([-1.6, 0.0, 1.6], 100)
    >>> fit = fit_layers(np.column_stack([xy, z]), smoothing=5.0)
    >>> np.bincount(fit.layer + 1).tolist()
    [100, 100, 100]
    """
    r = np.asarray(positions, dtype=float)
    if r.ndim != 2 or r.shape[1] != 3 or not np.all(np.isfinite(r)):
        raise InputError(
            f"positions must be a finite array of shape (n, 3) (x, y, z in Å); got shape {r.shape}."
        )
    if len(r) < 4:
        raise InputError(f"need at least 4 atoms to fit layers; got {len(r)}.")
    if not smoothing > 0:
        raise InputError(f"smoothing must be a positive length in Å; got {smoothing!r}.")
    if spacing is not None and not spacing > 0:
        raise InputError(f"spacing must be a positive height in Å; got {spacing!r}.")
    xy, z = r[:, :2], r[:, 2]
    every = np.arange(len(r))
    seed = np.ones(len(r), dtype=bool)
    if strength is not None:
        power = np.asarray(strength, dtype=float).reshape(len(r))
        if np.sum(power >= np.quantile(power, 2 / 3)) >= 4:
            seed = power >= np.quantile(power, 2 / 3)
    # First middle surface: the local median height of the seeds (robust to noise peaks
    # and, with top and bottom balanced, at the metal sheet).
    mid = _local_median(xy[seed], z[seed], xy, smoothing)
    mid = np.where(np.isnan(mid), np.nanmedian(mid) if np.any(~np.isnan(mid)) else 0.0, mid)
    dz = z - mid
    if spacing is None:
        band = np.abs(dz)[(np.abs(dz) > 0.8) & (np.abs(dz) < 2.6)]
        spacing = float(np.median(band)) if band.size >= 3 else 1.6
    layer = np.where(
        dz > spacing / 2, LAYER_TOP, np.where(dz < -spacing / 2, LAYER_BOTTOM, LAYER_METAL)
    )
    # Peaks far above or below the sheet (reconstruction artefacts) do not shape the
    # chalcogen surfaces; they are assigned at the end and are far from every layer.
    inlier = np.abs(dz) <= 1.75 * spacing
    robust = inlier.astype(float)
    distance = np.full(len(r), np.nan)
    surfaces = LayerSurfaces({}, float(smoothing))
    for _ in range(max(1, int(rounds))):
        surfaces = _surfaces(r, layer, robust, smoothing)
        own = np.full((len(r), 3), np.nan)  # height above each surface, own point left out
        for k, L in enumerate(_LAYERS):
            members = np.flatnonzero(layer == L)
            exclude = np.full(len(r), -1)
            exclude[members] = np.arange(len(members))
            if len(members):
                own[:, k] = z - surfaces.height(xy, L, exclude=exclude)[0]
        new = np.full(len(r), LAYER_METAL)
        known = ~np.all(np.isnan(own), axis=1)
        new[known] = np.asarray(_LAYERS)[np.nanargmin(np.abs(own[known]), axis=1)]
        new[~known] = layer[~known]
        distance = own[every, new + 1]
        robust = _bisquare(distance, new, inlier)
        if np.array_equal(new, layer):
            break
        layer = new
    return LayerFit(layer.astype(np.int8), distance, _surfaces(r, layer, robust, smoothing))


def _surfaces(r, layer, robust, smoothing) -> LayerSurfaces:
    return LayerSurfaces(
        {L: r[layer == L] for L in _LAYERS},
        float(smoothing),
        {L: robust[layer == L] for L in _LAYERS},
    )


def _bisquare(distance: np.ndarray, layer: np.ndarray, inlier: np.ndarray) -> np.ndarray:
    """Tukey bisquare weights of the residuals, scale from each layer's MAD.

    A point 6 MADs (at least 1 Å) off its layer gets weight 0; an undefined residual
    (isolated point), or a point that is not an ``inlier``, too.
    """
    out = np.zeros(len(distance))
    for L in _LAYERS:
        sel = (layer == L) & np.isfinite(distance) & inlier
        if not sel.any():
            continue
        scale = max(6.0 * float(np.median(np.abs(distance[sel]))), 1.0)
        u = distance[sel] / scale
        out[sel] = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
    return out


def _local_median(points: np.ndarray, values: np.ndarray, query: np.ndarray, radius: float):
    """Median of ``values`` of the points within ``radius`` of each query (NaN if none)."""
    out = np.full(len(query), np.nan)
    if len(points) == 0:
        return out
    pairs = cKDTree(query).sparse_distance_matrix(cKDTree(points), radius, output_type="ndarray")
    i, v = pairs["i"].astype(np.intp), values[pairs["j"]]
    order = np.lexsort((v, i))
    i, v = i[order], v[order]
    start = np.searchsorted(i, np.arange(len(query)))
    count = np.bincount(i, minlength=len(query))
    has = count > 0
    lo = start[has] + (count[has] - 1) // 2
    hi = start[has] + count[has] // 2
    out[has] = 0.5 * (v[lo] + v[hi])
    return out


def _local_quadratic(
    points: np.ndarray,
    values: np.ndarray,
    query: np.ndarray,
    sigma: float,
    *,
    exclude: np.ndarray | None = None,
    point_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted local quadratic regression of ``values`` at ``query`` points.

    Returns the fitted value (q,) and gradient (q, 2) at each query point; NaN where the
    summed weight is below ``_MIN_WEIGHT``. ``exclude[i]`` is a data index left out of
    query ``i``'s fit (or -1); ``point_weight`` (n,) multiplies the Gaussian weights
    (robustness weights). A small ridge on the linear and quadratic terms keeps
    sparse neighbourhoods well posed (it pulls them towards a local mean).
    """
    q = len(query)
    value, grad = np.full(q, np.nan), np.full((q, 2), np.nan)
    if len(points) == 0 or q == 0:
        return value, grad
    pairs = cKDTree(query).sparse_distance_matrix(
        cKDTree(points), _REACH * sigma, output_type="ndarray"
    )
    i, j = pairs["i"].astype(np.intp), pairs["j"].astype(np.intp)
    if exclude is not None:
        keep = np.asarray(exclude)[i] != j
        i, j = i[keep], j[keep]
    d = (points[j] - query[i]) / sigma  # (p, 2) in smoothing units
    w = np.exp(-0.5 * np.sum(d**2, axis=1))
    if point_weight is not None:
        w = w * np.asarray(point_weight)[j]
    design = np.column_stack(
        [np.ones(len(d)), d[:, 0], d[:, 1], d[:, 0] ** 2, d[:, 0] * d[:, 1], d[:, 1] ** 2]
    )  # (p, 6)
    outer = (w[:, None, None] * design[:, :, None] * design[:, None, :]).reshape(len(d), 36)
    normal = np.stack([np.bincount(i, outer[:, k], minlength=q) for k in range(36)], -1)
    rhs = np.stack(
        [np.bincount(i, w * design[:, k] * values[j], minlength=q) for k in range(6)], -1
    )
    weight = np.bincount(i, w, minlength=q)
    ok = weight >= _MIN_WEIGHT
    if not np.any(ok):
        return value, grad
    # The ridge grows where few atoms are near (edges), so that the fit there tends to a
    # local plane instead of a wild quadratic.
    few = 1.0 / weight[ok, None]
    ridge = np.array([0.0, 1e-2, 1e-2, 5e-2, 5e-2, 5e-2]) + np.array([0, 0.5, 0.5, 2, 2, 2]) * few
    A = normal[ok].reshape(-1, 6, 6) + (weight[ok, None] * ridge)[:, :, None] * np.eye(6)
    coef = np.linalg.solve(A, rhs[ok][:, :, None])[:, :, 0]
    value[ok] = coef[:, 0]
    grad[ok] = coef[:, 1:3] / sigma
    return value, grad
