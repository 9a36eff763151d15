"""k-means clustering of spectra with the correlation distance, and the regions it implies.

Following the paper's Methods ("Spatially resolved vibrational EELS", after MATLAB's
``kmeans(..., 'Distance', 'correlation')``): every background-subtracted spectrum is
centred and scaled to zero mean and unit standard deviation; the distance between a
spectrum and a centroid is one minus their correlation; each centroid is the
component-wise mean of its normalised members. Several restarts (k-means++ seeding
with this distance) keep the assignment with the smallest total distance. Clusters are
numbered in the order in which they occur along the scan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.errors import InputError

__all__ = [
    "KMeansResult",
    "Regions",
    "correlation_kmeans",
    "contiguous_regions",
    "normalise_spectra",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KMeansResult:
    """The best of several k-means runs.

    Attributes
    ----------
    labels : ndarray of int, shape (n_position,)
        Cluster of each spectrum, 0 .. k-1, numbered by mean position along the scan.
    centroids : ndarray of shape (k, n_energy)
        Mean of the normalised members of each cluster.
    distance : ndarray of shape (n_position,)
        One minus the correlation of each spectrum with its centroid.
    total_distance : float
        Sum of ``distance``, the quantity k-means minimises.
    iterations : int
        Iterations of the best run.
    """

    labels: np.ndarray
    centroids: np.ndarray
    distance: np.ndarray
    total_distance: float
    iterations: int


@dataclass(frozen=True)
class Regions:
    """Contiguous regions along a scan that best agree with cluster labels.

    Attributes
    ----------
    region : ndarray of int, shape (n_position,)
        Region of each point, non-decreasing along the scan.
    starts : ndarray of int, shape (k,)
        Index of the first point of each region (``starts[0] == 0``).
    misassigned : int
        Points whose cluster label differs from their region.
    """

    region: np.ndarray
    starts: np.ndarray
    misassigned: int


def normalise_spectra(spectra: ArrayLike) -> np.ndarray:
    """Centre each row to zero mean and scale it to unit standard deviation.

    Raises
    ------
    InputError
        A row without variation (constant, e.g. all zero after background subtraction),
        NaN or inf.
    """
    x = np.asarray(spectra, dtype=float)
    if x.ndim != 2:
        raise InputError(f"spectra must have shape (n_position, n_energy); got {x.shape}.")
    if not np.all(np.isfinite(x)):
        rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise InputError(
            f"spectra hold NaN or inf at position index {rows[:10].tolist()}; expected "
            "finite background-subtracted counts. Repair or drop those spectra."
        )
    centred = x - x.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    flat = std[:, 0] <= 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    if flat.any():
        rows = np.flatnonzero(flat)
        raise InputError(
            f"the spectrum at position index {rows[:10].tolist()} is constant over the "
            "clustering range (e.g. all zeros), so its correlation is undefined. Drop it "
            "or widen eels.cluster_range."
        )
    return centred / std


def _distance(z: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """1 - correlation between normalised rows ``z`` (n, m) and ``centroids`` (k, m)."""
    c = centroids - centroids.mean(axis=1, keepdims=True)
    norm = np.sqrt((c**2).mean(axis=1))
    norm = np.where(norm > 0, norm, np.inf)
    return 1.0 - (z @ c.T) / (z.shape[1] * norm[None, :])


def _seed(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with the correlation distance."""
    chosen = [int(rng.integers(len(z)))]
    for _ in range(1, k):
        d = _distance(z, z[chosen]).min(axis=1).clip(min=0.0)
        p = d**2
        total = p.sum()
        if total <= 0:
            remaining = np.setdiff1d(np.arange(len(z)), chosen)
            chosen.append(int(rng.choice(remaining)))
        else:
            chosen.append(int(rng.choice(len(z), p=p / total)))
    return z[chosen].copy()


def _run(z: np.ndarray, k: int, max_iterations: int, rng: np.random.Generator):
    centroids = _seed(z, k, rng)
    labels = np.full(len(z), -1)
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (returned below)
        d = _distance(z, centroids)
        new = np.argmin(d, axis=1)
        for j in range(k):  # an empty cluster takes the point farthest from its centroid
            if not np.any(new == j):
                own = d[np.arange(len(z)), new]
                counts = np.bincount(new, minlength=k)
                own[counts[new] <= 1] = -np.inf
                far = int(np.argmax(own))
                new[far] = j
        if np.array_equal(new, labels):
            break
        labels = new
        centroids = np.stack([z[labels == j].mean(axis=0) for j in range(k)])
    d = _distance(z, centroids)[np.arange(len(z)), labels]
    return labels, centroids, d, float(d.sum()), iteration


def correlation_kmeans(
    spectra: ArrayLike,
    *,
    k: int = 3,
    restarts: int = 10,
    max_iterations: int = 100,
    rng: np.random.Generator | int | None = None,
) -> KMeansResult:
    """k-means with distance ``1 - corr(spectrum, centroid)``.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy)
        Background-subtracted spectra [counts] over the clustering range.
    k : int
        Number of clusters (the paper: 3, for MoS2, interface and WSe2).
    restarts : int
        Independent runs from different k-means++ seeds; the one with the smallest
        total distance is kept.
    max_iterations : int
        Iterations per run (assignment and centroid update); a run stops earlier when
        the assignment no longer changes.
    rng : numpy.random.Generator, int or None
        Randomness of the seeding.

    Returns
    -------
    KMeansResult
        Labels numbered by the mean index of their members along the scan.

    Raises
    ------
    InputError
        ``k`` < 1, fewer spectra than clusters, or spectra without variation or with
        NaN (see :func:`normalise_spectra`).
    """
    z = normalise_spectra(spectra)
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise InputError(f"k must be a positive integer; got {k!r}.")
    if len(z) < k:
        raise InputError(
            f"got {len(z)} spectra for k = {k} clusters; expected at least k spectra. "
            "Lower eels.clusters or scan more points."
        )
    if restarts < 1 or max_iterations < 1:
        raise InputError(
            f"restarts and max_iterations must be >= 1; got {restarts} and {max_iterations}."
        )
    rng = np.random.default_rng(rng)
    best = None
    for _ in range(restarts):
        result = _run(z, k, max_iterations, rng)
        if best is None or result[3] < best[3] - 1e-12:
            best = result
    labels, centroids, distance, total, iterations = best
    order = np.argsort([np.mean(np.flatnonzero(labels == j)) for j in range(k)])
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    log.debug("k-means: k=%d, total distance %.4f after %d iterations", k, total, iterations)
    return KMeansResult(
        labels=rank[labels],
        centroids=centroids[order],
        distance=distance,
        total_distance=total,
        iterations=iterations,
    )


def contiguous_regions(labels: ArrayLike, *, k: int | None = None) -> Regions:
    """Split a scan into ``k`` contiguous regions that best agree with cluster labels.

    Region ``s`` is the run of points assigned to cluster ``s``; the boundaries are
    chosen to minimise the number of points whose label differs from their region
    (dynamic programming, O(k n)). Labels must be numbered along the scan, as
    :func:`correlation_kmeans` returns them.

    Parameters
    ----------
    labels : array_like of int, shape (n_position,)
        Cluster labels 0 .. k-1 in scan order.
    k : int, optional
        Number of regions; default ``max(labels) + 1``.

    Returns
    -------
    Regions

    Examples
    --------
    >>> contiguous_regions([0, 0, 1, 0, 1, 1, 2, 2]).starts.tolist()
    [0, 2, 6]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu":
        raise InputError(f"labels must be a non-empty 1D integer array; got {labels!r}.")
    k = int(labels.max()) + 1 if k is None else int(k)
    n = labels.size
    if k > n or labels.min() < 0 or labels.max() >= k:
        raise InputError(
            f"labels must lie in 0 .. {k - 1} with at least {k} points; got values "
            f"{labels.min()} .. {labels.max()} over {n} points."
        )
    # hits[s][i] = number of points before i labelled s.
    hits = np.zeros((k, n + 1), int)
    for s in range(k):
        hits[s, 1:] = np.cumsum(labels == s)
    inf = n + 1
    # cost[s][b]: fewest mismatches when regions 0..s cover points 0..b-1.
    cost = np.full((k, n + 1), inf)
    arg = np.zeros((k, n + 1), int)
    cost[0, 1:] = np.arange(1, n + 1) - hits[0, 1:]
    for s in range(1, k):
        # cost[s][b] = min_{a<b} cost[s-1][a] + (b - a) - (hits[s][b] - hits[s][a])
        term = cost[s - 1] - np.arange(n + 1) + hits[s]
        best, where = inf, 0
        for b in range(1, n + 1):
            if term[b - 1] < best:
                best, where = term[b - 1], b - 1
            cost[s, b] = best + b - hits[s, b]
            arg[s, b] = where
    starts = np.zeros(k, int)
    b = n
    for s in range(k - 1, 0, -1):
        b = arg[s, b]
        starts[s] = b
    region = np.searchsorted(starts, np.arange(n), side="right") - 1
    return Regions(region=region, starts=starts, misassigned=int(np.sum(region != labels)))
