"""Per-pixel results of a spectrum image: connected regions and peak maps.

A spectrum image keeps its two scan axes: the k-means clusters form a map, whose
connected components (4-connectivity, :func:`image_regions`) are the regions; every
pixel's background-subtracted spectrum is fitted with its group's Gaussians
(:func:`fit_pixel_peaks`, started from the group fit) to give maps of each peak's
centre, width, height and intensity, kept only where the pixel's signal determines them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import label
from scipy.optimize import least_squares

from hpcaet.eels._search import _jacobian, _model
from hpcaet.eels.peaks import GaussianFit
from hpcaet.errors import InputError

__all__ = ["PixelPeaks", "image_regions", "fit_pixel_peaks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PixelPeaks:
    """Peaks fitted to every spectrum, NaN where the signal does not determine them.

    Attributes
    ----------
    centre, centre_error, width, height, intensity : ndarray of shape (n_position, n_peaks)
        Centre and its standard error [meV], σ [meV], height [counts] and area
        ``height · σ · √(2π)`` [counts · meV] of peak k of the pixel's group.
    determined : ndarray of bool, shape (n_position, n_peaks)
        The fit converged, the centre lies in the fit range, its error is below σ and the
        height is above twice its error.
    """

    centre: np.ndarray
    centre_error: np.ndarray
    width: np.ndarray
    height: np.ndarray
    intensity: np.ndarray
    determined: np.ndarray


def image_regions(cluster_map: ArrayLike) -> np.ndarray:
    """Connected components (4-connectivity) of each cluster of a 2D cluster map.

    Parameters
    ----------
    cluster_map : array_like of int, shape (ny, nx)
        Cluster label of each pixel.

    Returns
    -------
    ndarray of int, shape (ny, nx)
        Region index 0 .. n_region-1, numbered in raster order of their first pixel.

    Examples
    --------
    >>> image_regions([[0, 1, 0], [0, 1, 0]]).tolist()
    [[0, 1, 2], [0, 1, 2]]
    """
    c = np.asarray(cluster_map)
    if c.ndim != 2 or c.dtype.kind not in "iu":
        raise InputError(f"cluster_map must be a 2D integer array; got {c.dtype} {c.shape}.")
    out = np.full(c.shape, -1, dtype=int)
    n = 0
    for j in np.unique(c):
        lab, count = label(c == j)
        out[lab > 0] = lab[lab > 0] - 1 + n
        n += count
    first = {}
    for idx, r in enumerate(out.ravel()):
        first.setdefault(int(r), idx)
    order = sorted(first, key=first.get)
    rank = np.empty(n, int)
    rank[order] = np.arange(n)
    return rank[out]


def fit_pixel_peaks(
    signal: ArrayLike,
    energy: ArrayLike,
    group: ArrayLike,
    fits: list[GaussianFit],
    *,
    counts: ArrayLike | None = None,
    max_evaluations: int = 400,
) -> PixelPeaks:
    """Fit every spectrum with the Gaussians of its group, started from the group fit.

    Parameters
    ----------
    signal : array_like of shape (n_position, n_energy)
        Background-subtracted spectra [counts].
    energy : array_like of shape (n_energy,)
        Energy loss [meV].
    group : array_like of int, shape (n_position,)
        Group of each spectrum (index into ``fits``).
    fits : list of GaussianFit
        The group fits; their ``energy`` is the fit range used per pixel.
    counts : array_like of shape (n_position, n_energy), optional
        Raw counts; the residuals are weighted by ``1 / sqrt(max(counts, 1))``.
    max_evaluations : int
        Limit of model evaluations per pixel.

    Returns
    -------
    PixelPeaks
    """
    x = np.asarray(signal, dtype=float)
    energy = np.asarray(energy, dtype=float)
    group = np.asarray(group, dtype=int)
    if x.ndim != 2 or x.shape[1] != energy.size or group.shape != (x.shape[0],):
        raise InputError(
            f"signal (n_position, n_energy), energy (n_energy,) and group (n_position,) "
            f"disagree: got {x.shape}, {energy.shape}, {group.shape}."
        )
    n_peaks = max(f.centre.size for f in fits)
    shape = (x.shape[0], n_peaks)
    out = {k: np.full(shape, np.nan) for k in ("centre", "centre_error", "width", "height")}
    determined = np.zeros(shape, bool)
    sigma = np.ones_like(x) if counts is None else np.sqrt(np.maximum(counts, 1.0))
    for i in range(x.shape[0]):
        f = fits[group[i]]
        sel = np.searchsorted(energy, f.energy)
        e, y, w = f.energy, x[i, sel], 1.0 / sigma[i, sel]
        m = f.centre.size
        p0 = np.column_stack([f.centre, f.width, f.height]).ravel()

        def resid(p, e=e, y=y, w=w, m=m):
            return (_model(p, e, m, False) - y) * w

        def jac(p, e=e, w=w, m=m):
            return _jacobian(p, e, m, False) * w[:, None]

        res = least_squares(resid, p0, jac=jac, method="lm", max_nfev=max_evaluations)
        if res.status <= 0 or not np.all(np.isfinite(res.x)):
            continue
        dof = max(e.size - p0.size, 1)
        try:
            cov = np.linalg.inv(res.jac.T @ res.jac) * float(np.sum(res.fun**2)) / dof
            err = np.sqrt(np.clip(np.diag(cov), 0, None)).reshape(m, 3)
        except np.linalg.LinAlgError:
            continue
        q = res.x.reshape(m, 3)
        q[:, 1] = np.abs(q[:, 1])
        ok = (
            (q[:, 0] > e[0]) & (q[:, 0] < e[-1]) & (err[:, 0] < q[:, 1]) & (q[:, 2] > 2 * err[:, 2])
        )
        out["centre"][i, :m], out["centre_error"][i, :m] = q[:, 0], err[:, 0]
        out["width"][i, :m], out["height"][i, :m] = q[:, 1], q[:, 2]
        determined[i, :m] = ok
    for key in out:
        out[key][~determined] = np.nan
    intensity = out["height"] * out["width"] * np.sqrt(2 * np.pi)
    log.debug("pixel peaks: %d of %d determined", int(determined.sum()), determined.size)
    return PixelPeaks(intensity=intensity, determined=determined, **out)
