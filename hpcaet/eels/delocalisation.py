"""Delocalised signal of neighbouring regions in a line scan, estimated and removed.

The paper's Table S3 notes that each region's mean spectrum also holds the phonon modes
of its neighbours, "delocalised" by the long-range dipole scattering, with an intensity
that decays exponentially with the distance to the neighbour. Fitting five Gaussians to
such a mean shifts the centres of peaks next to a delocalised mode (e.g. the interface
45.5 meV peak next to the MoS2 49.4 meV mode). Here every background-subtracted
spectrum ``x_i`` of a scan split into contiguous regions is modelled as

    x_i(E) = sum_j w_ij(L) s_j(E),   w_ij = 1 inside region j, exp(-d_ij / L) outside,

``d_ij`` the distance (in scan steps) from point i to the nearest edge of region j (edges
half-way between points), ``s_j`` the region's own spectrum. For a given decay length L
the ``s_j`` are a linear least-squares solution channel by channel (weighted by the
inverse Poisson variance); L is the one that minimises the weighted residual. The
neighbours' share of each group mean, ``mean_{i in g} sum_{j != g} w_ij s_j``, is the
"leak" that :func:`~hpcaet.eels.analysis.analyse_spectra` subtracts from the group mean
before fitting the peaks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

from hpcaet.errors import InputError

__all__ = [
    "Delocalisation",
    "region_weights",
    "line_distances",
    "image_distances",
    "estimate_delocalisation",
    "unmix_regions",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delocalisation:
    """Decay length, mixing weights and the neighbours' share of each group mean.

    Attributes
    ----------
    length : float
        Decay length L of a region's signal beyond its edge, in the unit of the distances
        (scan steps for a line scan by its starts, nm for a spectrum image).
    weights : ndarray of shape (n_position, n_region)
        ``w_ij``: share of region j's own spectrum in spectrum i.
    pure : ndarray of shape (n_region, n_energy)
        Own spectrum ``s_j`` of every region [counts per spectrum].
    leak : ndarray of shape (n_region, n_energy)
        Mean signal of the other regions inside each region's spectra [counts].
    cost : float
        Weighted residual sum of squares of the mixing model at ``length``.
    cost_local : float
        The same for L = 0 (no delocalisation), for comparison.
    """

    length: float
    weights: np.ndarray
    pure: np.ndarray
    leak: np.ndarray
    cost: float
    cost_local: float


def line_distances(starts: ArrayLike, n_position: int) -> np.ndarray:
    """Distance of every point of a line scan to each contiguous region [scan steps].

    Parameters
    ----------
    starts : array_like of int, shape (n_region,)
        First point of each region, increasing from 0.
    n_position : int
        Points in the scan.

    Returns
    -------
    ndarray of shape (n_position, n_region)
        0 inside region j, else the distance to its nearest edge (edges half-way between
        points) [scan steps].
    """
    starts = np.asarray(starts, dtype=int)
    if (
        starts.ndim != 1
        or starts.size == 0
        or starts[0] != 0
        or np.any(np.diff(starts) <= 0)
        or starts[-1] >= n_position
    ):
        raise InputError(
            f"starts must increase from 0 and stay below n_position = {n_position}; got "
            f"{np.asarray(starts).tolist()}."
        )
    edges = np.r_[starts - 0.5, n_position - 0.5]
    edges[0] = -np.inf
    edges[-1] = np.inf
    i = np.arange(n_position)[:, None]
    return np.maximum(edges[None, :-1] - i, 0) + np.maximum(i - edges[None, 1:], 0)


def image_distances(
    group_map: ArrayLike, pixel_size: tuple[float, float], *, n_group: int | None = None
) -> np.ndarray:
    """Distance of every pixel of a spectrum image to each group, along the boundary normal.

    The distance of a pixel outside group j is measured from its centre to the edge of
    the nearest pixel of j (the foot of the normal to j's boundary), pixels being
    rectangles of ``pixel_size``: so an edge lies half-way between pixel centres, as in
    :func:`line_distances`, along any direction.

    Parameters
    ----------
    group_map : array_like of int, shape (ny, nx)
        Group (cluster) of each pixel, 0 .. n_group-1.
    pixel_size : (float, float)
        Pixel size along y and x [nm] (from the file's calibration).
    n_group : int, optional
        Number of groups; default ``max(group_map) + 1``.

    Returns
    -------
    ndarray of shape (ny * nx, n_group)
        Row-major distances [nm]; 0 inside a group, inf for a group without pixels.
    """
    from scipy.ndimage import distance_transform_edt

    g = np.asarray(group_map)
    if g.ndim != 2 or g.dtype.kind not in "iu":
        raise InputError(f"group_map must be a 2D integer array; got {g.dtype} {g.shape}.")
    dy, dx = (float(v) for v in pixel_size)
    if not (dy > 0 and dx > 0):
        raise InputError(f"pixel_size must be positive [nm]; got {list(pixel_size)}.")
    n_group = int(g.max()) + 1 if n_group is None else int(n_group)
    out = np.full((g.size, n_group), np.inf)
    yy, xx = np.indices(g.shape)
    for j in range(n_group):
        inside = g == j
        if not inside.any():
            continue
        _, (iy, ix) = distance_transform_edt(~inside, sampling=(dy, dx), return_indices=True)
        vy, vx = (yy - iy) * dy, (xx - ix) * dx
        d = np.hypot(vy, vx)
        with np.errstate(divide="ignore", invalid="ignore"):
            # leave the nearest pixel's rectangle along the normal: half a pixel of travel
            exit_ = np.fmin(0.5 * dx * d / np.abs(vx), 0.5 * dy * d / np.abs(vy))
        out[:, j] = np.where(inside, 0.0, d - exit_).ravel()
    return out


def region_weights(starts: ArrayLike, n_position: int, length: float) -> np.ndarray:
    """Mixing weights of contiguous regions with exponentially delocalised signal.

    Parameters
    ----------
    starts : array_like of int, shape (n_region,)
        First point of each region, increasing from 0.
    n_position : int
        Points in the scan.
    length : float
        Decay length [scan steps]; 0 gives 1 inside a region and 0 outside.

    Returns
    -------
    ndarray of shape (n_position, n_region)
        ``w_ij``: 1 inside region j, ``exp(-d / length)`` outside, ``d`` the distance of
        point i to the region's nearest edge (edges half-way between points) [1].

    Examples
    --------
    >>> region_weights([0, 2], 4, 0.0).tolist()
    [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """
    return _weights(line_distances(starts, n_position), length)


def _weights(distance: np.ndarray, length: float) -> np.ndarray:
    if not length >= 0:
        raise InputError(f"length must be >= 0; got {length!r}.")
    if length == 0:
        return (distance == 0).astype(float)
    return np.exp(-distance / length)


def _unmix(x: np.ndarray, inv_var: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least-squares own spectra (n_region, n_energy) and the residual cost."""
    # normal equations per channel: (W^T D W) s = W^T D x, D = diag(inv_var[:, e])
    a = np.einsum("ij,ie,ik->ejk", w, inv_var, w)
    b = np.einsum("ij,ie,ie->ej", w, inv_var, x)
    s = np.linalg.solve(a, b[..., None])[..., 0].T
    r = x - w @ s
    return s, float(np.sum(r**2 * inv_var))


def _geometry(starts, n, distance, region):
    """(distance (n, k), region (n,)) from line-scan starts or given directly."""
    if distance is None:
        if starts is None:
            raise InputError("give either starts (a line scan) or distance and region.")
        starts = np.asarray(starts, dtype=int)
        distance = line_distances(starts, n)
        region = np.searchsorted(starts, np.arange(n), side="right") - 1
    else:
        distance = np.asarray(distance, dtype=float)
        region = np.asarray(region, dtype=int)
        if distance.ndim != 2 or distance.shape[0] != n or region.shape != (n,):
            raise InputError(
                f"distance must have shape (n_position={n}, n_region) and region ({n},); got "
                f"{distance.shape} and {region.shape}."
            )
    sizes = np.bincount(region, minlength=distance.shape[1])
    if np.any(sizes < 2):
        raise InputError(
            f"every region needs at least two points to separate its own signal from its "
            f"neighbours'; got region sizes {sizes.tolist()}. Do not correct delocalisation "
            "for such a scan."
        )
    return distance, region


def _check_signal(signal, variance):
    x = np.asarray(signal, dtype=float)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise InputError(
            f"signal must be a finite (n_position, n_energy) array; got shape {x.shape}"
            f"{' with NaN/inf' if x.ndim == 2 else ''}."
        )
    if variance is None:
        return x, np.ones_like(x)
    v = np.asarray(variance, dtype=float)
    if v.shape != x.shape or not np.all(np.isfinite(v) & (v > 0)):
        raise InputError(
            f"variance must be finite, positive and of shape {x.shape}; got shape {v.shape}."
        )
    return x, 1.0 / v


def estimate_delocalisation(
    signal: ArrayLike,
    starts: ArrayLike | None = None,
    *,
    variance: ArrayLike | None = None,
    max_length: float = 5.0,
    distance: ArrayLike | None = None,
    region: ArrayLike | None = None,
) -> Delocalisation:
    """Estimate the decay length and the neighbours' share of each region's mean.

    Parameters
    ----------
    signal : array_like of shape (n_position, n_energy)
        Background-subtracted spectra, restricted to the channels that hold phonon
        signal [counts].
    starts : array_like of int, shape (n_region,), optional
        First point of each contiguous region of a line scan
        (:func:`~hpcaet.eels.cluster.contiguous_regions`); distances in scan steps.
    variance : array_like of shape (n_position, n_energy), optional
        Noise variance of each channel (Poisson: the raw counts); default 1.
    max_length : float
        Largest decay length tried, in the unit of the distances.
    distance, region : array_like, optional
        Instead of ``starts``: the distance of every point to each region, shape
        (n_position, n_region) (e.g. :func:`image_distances` [nm]), and the region of
        every point, shape (n_position,).

    Returns
    -------
    Delocalisation

    Raises
    ------
    InputError
        Wrong shapes, NaN, non-positive variances, bad ``starts``, or a region of
        fewer than two points.
    """
    x, inv_var = _check_signal(signal, variance)
    distance, region = _geometry(starts, x.shape[0], distance, region)
    if not max_length > 0:
        raise InputError(f"max_length must be positive; got {max_length!r}.")

    def cost(length: float) -> float:
        return _unmix(x, inv_var, _weights(distance, length))[1]

    # coarse grid, then a bounded 1D refinement around its best point
    grid = np.linspace(0.0, max_length, 26)
    costs = [cost(g) for g in grid]
    k = int(np.argmin(costs))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    length = float(grid[k])
    if hi > lo:
        res = minimize_scalar(
            cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3 * max_length}
        )
        if res.fun <= costs[k]:
            length = float(res.x)
    w = _weights(distance, length)
    pure, leak, best = _pure_and_leak(x, inv_var, region, w)
    log.debug("delocalisation: L = %.3f (cost %.4g, local %.4g)", length, best, costs[0])
    return Delocalisation(
        length=length, weights=w, pure=pure, leak=leak, cost=best, cost_local=float(costs[0])
    )


def _pure_and_leak(x, inv_var, region, w):
    pure, best = _unmix(x, inv_var, w)
    leak = np.empty_like(pure)
    for g in range(w.shape[1]):
        members = w[region == g].copy()
        members[:, g] = 0.0
        leak[g] = (members @ pure).mean(axis=0)
    return pure, leak, best


def unmix_regions(
    signal: ArrayLike,
    starts: ArrayLike | None,
    length: float,
    *,
    variance: ArrayLike | None = None,
    distance: ArrayLike | None = None,
    region: ArrayLike | None = None,
) -> Delocalisation:
    """Own spectrum and neighbours' share of each region for a known decay length.

    Parameters
    ----------
    signal : array_like of shape (n_position, n_energy)
        Background-subtracted spectra [counts].
    starts : array_like of int, shape (n_region,) or None
        First point of each contiguous region of a line scan (or None with
        ``distance`` and ``region``, see :func:`estimate_delocalisation`).
    length : float
        Decay length, in the unit of the distances (e.g. from
        :func:`estimate_delocalisation` on the channels with phonon signal).
    variance : array_like of shape (n_position, n_energy), optional
        Noise variance of each channel; default 1.
    distance, region : array_like, optional
        As in :func:`estimate_delocalisation`.

    Returns
    -------
    Delocalisation
        With ``cost_local`` NaN (not computed).
    """
    x, inv_var = _check_signal(signal, variance)
    distance, region = _geometry(starts, x.shape[0], distance, region)
    w = _weights(distance, length)
    pure, leak, best = _pure_and_leak(x, inv_var, region, w)
    return Delocalisation(
        length=float(length), weights=w, pure=pure, leak=leak, cost=best, cost_local=np.nan
    )
