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

__all__ = ["Delocalisation", "region_weights", "estimate_delocalisation", "unmix_regions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delocalisation:
    """Decay length, mixing weights and the neighbours' share of each group mean.

    Attributes
    ----------
    length : float
        Decay length L of a region's signal beyond its edge [scan steps].
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
    if not length >= 0:
        raise InputError(f"length must be >= 0 scan steps; got {length!r}.")
    edges = np.r_[starts - 0.5, n_position - 0.5]
    edges[0] = -np.inf
    edges[-1] = np.inf
    i = np.arange(n_position)[:, None]
    d = np.maximum(edges[None, :-1] - i, 0) + np.maximum(i - edges[None, 1:], 0)
    if length == 0:
        return (d == 0).astype(float)
    return np.exp(-d / length)


def _unmix(x: np.ndarray, inv_var: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least-squares own spectra (n_region, n_energy) and the residual cost."""
    # normal equations per channel: (W^T D W) s = W^T D x, D = diag(inv_var[:, e])
    a = np.einsum("ij,ie,ik->ejk", w, inv_var, w)
    b = np.einsum("ij,ie,ie->ej", w, inv_var, x)
    s = np.linalg.solve(a, b[..., None])[..., 0].T
    r = x - w @ s
    return s, float(np.sum(r**2 * inv_var))


def estimate_delocalisation(
    signal: ArrayLike,
    starts: ArrayLike,
    *,
    variance: ArrayLike | None = None,
    max_length: float = 5.0,
) -> Delocalisation:
    """Estimate the decay length and the neighbours' share of each region's mean.

    Parameters
    ----------
    signal : array_like of shape (n_position, n_energy)
        Background-subtracted spectra in scan order, restricted to the channels that
        hold phonon signal [counts].
    starts : array_like of int, shape (n_region,)
        First point of each contiguous region
        (:func:`~hpcaet.eels.cluster.contiguous_regions`).
    variance : array_like of shape (n_position, n_energy), optional
        Noise variance of each channel (Poisson: the raw counts); default 1.
    max_length : float
        Largest decay length tried [scan steps].

    Returns
    -------
    Delocalisation

    Raises
    ------
    InputError
        Wrong shapes, NaN, non-positive variances, bad ``starts``, or a region of
        fewer than two points.
    """
    x = np.asarray(signal, dtype=float)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise InputError(
            f"signal must be a finite (n_position, n_energy) array; got shape {x.shape}"
            f"{' with NaN/inf' if x.ndim == 2 else ''}."
        )
    starts = np.asarray(starts, dtype=int)
    n = x.shape[0]
    sizes = np.diff(np.r_[starts, n])
    if starts.size and np.any(sizes < 2):
        raise InputError(
            f"every region needs at least two points to separate its own signal from its "
            f"neighbours'; got region sizes {sizes.tolist()}. Do not correct delocalisation "
            "for such a scan."
        )
    if variance is None:
        inv_var = np.ones_like(x)
    else:
        v = np.asarray(variance, dtype=float)
        if v.shape != x.shape or not np.all(np.isfinite(v) & (v > 0)):
            raise InputError(
                f"variance must be finite, positive and of shape {x.shape}; got shape {v.shape}."
            )
        inv_var = 1.0 / v
    if not max_length > 0:
        raise InputError(f"max_length must be positive; got {max_length!r} scan steps.")

    def cost(length: float) -> float:
        return _unmix(x, inv_var, region_weights(starts, n, length))[1]

    # coarse grid, then a bounded 1D refinement around its best point
    grid = np.linspace(0.0, max_length, 26)
    costs = [cost(g) for g in grid]
    k = int(np.argmin(costs))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    length = float(grid[k])
    if hi > lo:
        res = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
        if res.fun <= costs[k]:
            length = float(res.x)
    w = region_weights(starts, n, length)
    pure, leak, best = _pure_and_leak(x, inv_var, starts, w)
    log.debug("delocalisation: L = %.3f steps (cost %.4g, local %.4g)", length, best, costs[0])
    return Delocalisation(
        length=length, weights=w, pure=pure, leak=leak, cost=best, cost_local=float(costs[0])
    )


def _pure_and_leak(x, inv_var, starts, w):
    pure, best = _unmix(x, inv_var, w)
    region = np.searchsorted(starts, np.arange(x.shape[0]), side="right") - 1
    leak = np.empty_like(pure)
    for g in range(starts.size):
        members = w[region == g].copy()
        members[:, g] = 0.0
        leak[g] = (members @ pure).mean(axis=0)
    return pure, leak, best


def unmix_regions(
    signal: ArrayLike,
    starts: ArrayLike,
    length: float,
    *,
    variance: ArrayLike | None = None,
) -> Delocalisation:
    """Own spectrum and neighbours' share of each region for a known decay length.

    Parameters
    ----------
    signal : array_like of shape (n_position, n_energy)
        Background-subtracted spectra in scan order [counts].
    starts : array_like of int, shape (n_region,)
        First point of each contiguous region.
    length : float
        Decay length [scan steps] (e.g. from :func:`estimate_delocalisation` on the
        channels with phonon signal).
    variance : array_like of shape (n_position, n_energy), optional
        Noise variance of each channel; default 1.

    Returns
    -------
    Delocalisation
        With ``cost_local`` NaN (not computed).
    """
    x = np.asarray(signal, dtype=float)
    v = np.ones_like(x) if variance is None else np.asarray(variance, dtype=float)
    if x.ndim != 2 or v.shape != x.shape or not np.all(np.isfinite(x)) or np.any(~(v > 0)):
        raise InputError(
            f"signal and variance must be finite (n_position, n_energy) arrays of one shape "
            f"with positive variance; got shapes {x.shape} and {v.shape}."
        )
    starts = np.asarray(starts, dtype=int)
    w = region_weights(starts, x.shape[0], length)
    pure, leak, best = _pure_and_leak(x, 1.0 / v, starts, w)
    return Delocalisation(
        length=float(length), weights=w, pure=pure, leak=leak, cost=best, cost_local=np.nan
    )
