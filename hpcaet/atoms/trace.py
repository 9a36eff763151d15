"""Trace atoms in a reconstructed volume: local maxima, sub-voxel fits, layers.

Following the Methods of Tian et al. ("Initial localization of 3D atomic positions"),
the volume is interpolated onto a grid ``upsample`` times finer with cubic splines,
every local maximum above a threshold becomes a candidate, each candidate's position is
refined by a Gaussian fit (a weighted quadratic fit of the log density, Caruana's
method) to a ``fit_size``³ neighbourhood of fine-grid voxels around it, a minimum
distance between atoms is enforced (the stronger peak wins), and candidates that do
not sit on one of the three atomic layers are dropped (:mod:`hpcaet.atoms.layers`).

The fine grid is evaluated tile by tile (``tile`` original voxels in y and x, all of z,
plus a halo) as three small matrix products with the cubic B-spline weights, and tiles
whose smoothed density stays below the threshold are skipped, so the memory stays
bounded and empty vacuum costs little.

References
----------
R. A. Caruana, R. B. Searle, T. Heller, S. I. Shupack, "Fast algorithm for the
resolution of spectra", Anal. Chem. 58, 1162 (1986).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.spatial import cKDTree

from hpcaet.atoms.layers import LayerFit, fit_layers
from hpcaet.errors import InputError

__all__ = ["TracedAtoms", "trace_atoms", "find_peaks", "enforce_min_distance"]

log = logging.getLogger(__name__)

_SPLINE_MODE = "mirror"
_REFERENCE_RANK = 10  # the threshold is relative to the 10th highest local maximum


class TracedAtoms(NamedTuple):
    """Atoms traced in a volume (output of :func:`trace_atoms`).

    Attributes
    ----------
    position : ndarray of shape (n, 3)
        ``x, y, z`` in the sample frame [Å], voxel rule of :mod:`hpcaet.geometry`.
    intensity : ndarray of shape (n,)
        Density integrated over a sphere around each atom [density units × Å³].
    height : ndarray of shape (n,)
        Interpolated density at the fitted position [density units].
    layers : LayerFit or None
        Layer of each atom, its height above its layer's surface and the surfaces; None
        when traced without layers (``layers=False``).
    n_candidates : int
        Local maxima above the threshold before the distance and layer filters.
    """

    position: np.ndarray
    intensity: np.ndarray
    height: np.ndarray
    layers: LayerFit | None
    n_candidates: int


def trace_atoms(
    density: ArrayLike,
    *,
    voxel_size: float,
    upsample: int = 3,
    threshold: float = 0.08,
    fit_size: int = 5,
    min_distance: float = 1.6,
    integration_radius: float = 0.8,
    layer_smoothing: float = 6.0,
    layer_tolerance: float = 1.2,
    layer_min_distance: float = 2.4,
    tile: int = 48,
    smoothing: float = 0.0,
    layers: bool = True,
) -> TracedAtoms:
    """Trace the atoms of a reconstructed monolayer (or, ``layers=False``, of any volume).

    Parameters
    ----------
    density : array_like of shape (nz, ny, nx)
        Reconstructed density, indexed ``[z, y, x]``; voxel ``(k, i, j)`` has its centre
        at ``((j - nx//2) v, (i - ny//2) v, (k - nz//2) v)`` [Å].
    voxel_size : float
        Voxel edge ``v`` [Å].
    upsample : int, default 3
        Oversampling of the spline-interpolated grid on which maxima are sought.
    threshold : float, default 0.08
        Candidates must exceed this fraction of the 10th highest local maximum of the
        volume (a robust stand-in for the peak of the heaviest atoms).
    fit_size : int, default 5
        Edge of the cubic neighbourhood of the Gaussian fit, in voxels of the fine grid
        (odd); 5 fine voxels span 5/3 original voxels at ``upsample = 3``.
    min_distance : float, default 1.6
        Minimum distance between atoms [Å]; of two closer candidates the weaker goes.
    integration_radius : float, default 0.8
        Radius of the sphere over which the density is summed into ``intensity`` [Å].
    layer_smoothing : float, default 6.0
        Width of the local layer surfaces [Å] (see :func:`~hpcaet.atoms.fit_layers`).
    layer_tolerance : float, default 1.2
        Candidates farther than this from every layer surface are dropped [Å].
    layer_min_distance : float, default 2.4
        Minimum distance between atoms of the same layer [Å] (the lattice constant is
        3.16–3.28 Å); of two closer candidates the weaker goes. This removes noise peaks
        and side lobes next to real atoms.
    tile : int, default 48
        Tile edge in y and x [original voxels] for the fine grid (bounds the memory to
        about ``nz * (tile * upsample)**2 * 8`` bytes per tile).
    smoothing : float, default 0
        Gaussian pre-smoothing of the volume [Å] (sigma); 0: none. A noisy volume
        (a reconstruction from few or noisy projections) puts noise maxima beside
        atoms and pulls the fits; a voxel's width tames both.
    layers : bool, default True
        Keep only candidates on the three atomic layers of a monolayer (the layer
        filters). False traces any volume (an amorphous film, a particle): every
        candidate that survives ``min_distance`` is kept.

    Returns
    -------
    TracedAtoms

    Raises
    ------
    InputError
        An empty or non-finite volume, a volume without positive density, bad
        options, or no candidate left on the atomic layers.
    """
    vol = _check_volume(density, voxel_size)
    if not (np.isfinite(smoothing) and smoothing >= 0):
        raise InputError(f"smoothing must be >= 0 Å; got {smoothing!r}.")
    if smoothing > 0:
        vol = ndimage.gaussian_filter(vol, smoothing / voxel_size, mode="nearest")
    if int(upsample) != upsample or upsample < 1:
        raise InputError(f"upsample must be a positive integer; got {upsample!r}.")
    if int(fit_size) != fit_size or fit_size < 3 or fit_size % 2 == 0:
        raise InputError(f"fit_size must be an odd integer >= 3 [voxels]; got {fit_size!r}.")
    for name, value in (
        ("threshold", threshold),
        ("min_distance", min_distance),
        ("integration_radius", integration_radius),
        ("layer_tolerance", layer_tolerance),
        ("layer_min_distance", layer_min_distance),
        ("tile", tile),
    ):
        if not value > 0:
            raise InputError(f"{name} must be positive; got {value!r}.")
    coeffs = ndimage.spline_filter(vol, order=3, mode=_SPLINE_MODE)
    level = threshold * _reference_peak(vol)
    index = find_peaks(coeffs, vol, level=level, upsample=int(upsample), tile=int(tile))
    n_candidates = len(index)
    if n_candidates == 0:
        raise InputError(
            f"no local maximum above {level:.4g} (threshold {threshold} of the reference "
            "peak) in the volume; it holds no atoms. Check the reconstruction or lower "
            "atoms.threshold."
        )
    index = _fit_gaussian(
        coeffs, index, half=int(fit_size) // 2, shape=vol.shape, spacing=1.0 / int(upsample)
    )
    height = _sample(coeffs, index)
    keep = enforce_min_distance(index * voxel_size, height, min_distance=min_distance)
    index, height = index[keep], height[keep]
    intensity = _integrate(coeffs, index, radius=integration_radius / voxel_size) * voxel_size**3
    centre = np.array(vol.shape) // 2
    position = ((index - centre) * voxel_size)[:, ::-1]  # (z, y, x) indices -> x, y, z [Å]
    log.info(
        "trace: %d local maxima above %.4g, %d after the %.2f Å minimum distance",
        n_candidates,
        level,
        len(index),
        min_distance,
    )
    if not layers:
        return TracedAtoms(position, intensity, height, None, n_candidates)
    if len(position) < 4:
        raise InputError(
            f"only {len(position)} atom(s) traced in the volume; at least 4 are needed to "
            "fit the atomic layers. Check the reconstruction or lower atoms.threshold."
        )
    fit = fit_layers(position, smoothing=layer_smoothing, strength=height)
    for _ in range(3):  # drop off-layer and crowded candidates, refit the layers
        keep = np.abs(fit.distance) <= layer_tolerance  # NaN (isolated) is False
        for L in np.unique(fit.layer):
            members = np.flatnonzero((fit.layer == L) & keep)
            crowded = np.ones(len(members), dtype=bool)
            crowded[
                enforce_min_distance(
                    position[members], height[members], min_distance=layer_min_distance
                )
            ] = False
            keep[members[crowded]] = False
        if np.all(keep):
            break
        if np.sum(keep) < 4:
            raise InputError(
                f"only {int(np.sum(keep))} of the {len(position)} traced peaks lie on the "
                f"atomic layers (within {layer_tolerance} Å); the volume does not look like "
                "a monolayer."
            )
        log.info(
            "trace: dropped %d candidates off the atomic layers (> %.2f Å) or "
            "nearer than %.2f Å to a stronger one on their layer",
            int(np.sum(~keep)),
            layer_tolerance,
            layer_min_distance,
        )
        position, intensity, height = position[keep], intensity[keep], height[keep]
        fit = fit_layers(position, smoothing=layer_smoothing, strength=height)
    return TracedAtoms(position, intensity, height, fit, n_candidates)


def find_peaks(
    coeffs: np.ndarray, volume: np.ndarray, *, level: float, upsample: int, tile: int
) -> np.ndarray:
    """Local maxima of the spline-interpolated volume above ``level``.

    Parameters
    ----------
    coeffs : ndarray of shape (nz, ny, nx)
        Cubic B-spline coefficients of ``volume`` (``scipy.ndimage.spline_filter``,
        mode ``"mirror"``).
    volume : ndarray of shape (nz, ny, nx)
        The volume itself, used to skip tiles whose 3³-box mean stays below half of
        ``level`` (vacuum with noise).
    level : float
        Minimum interpolated density of a maximum.
    upsample : int
        Fine-grid oversampling.
    tile : int
        Tile edge in y and x [original voxels].

    Returns
    -------
    ndarray of shape (n, 3)
        Fractional voxel indices ``(z, y, x)`` of the maxima, on the fine grid, at
        least one voxel inside the volume's faces.
    """
    nz, ny, nx = volume.shape
    mz, my, mx = (_spline_matrix(n, upsample) for n in volume.shape)
    # A tile is skipped when even its 3³-box mean stays below half the level: an atom
    # keeps most of its peak over 3³ voxels, isolated noise voxels do not.
    smooth = ndimage.uniform_filter(volume, size=3, mode="nearest")
    step = 1.0 / upsample
    z = np.arange(mz.shape[0]) * step
    upper = np.array(volume.shape, dtype=float) - 1
    found = []
    for y0 in range(0, ny, tile):
        for x0 in range(0, nx, tile):
            y1, x1 = min(y0 + tile, ny), min(x0 + tile, nx)
            # Fine rows of the tile plus one fine sample each side for the 3³ filter,
            # and the coarse coefficients their cubic splines reach (two each side).
            fy = np.arange(max(y0 * upsample - 1, 0), min((y1 - 1) * upsample + 2, my.shape[0]))
            fx = np.arange(max(x0 * upsample - 1, 0), min((x1 - 1) * upsample + 2, mx.shape[0]))
            ya, yb = max(y0 - 2, 0), min(y1 + 2, ny)
            xa, xb = max(x0 - 2, 0), min(x1 + 2, nx)
            if smooth[:, ya:yb, xa:xb].max() < 0.5 * level:
                continue
            block = coeffs[:, ya:yb, xa:xb]
            fine = np.tensordot(mz, block, axes=(1, 0))
            fine = np.tensordot(my[fy, ya:yb], fine, axes=(1, 1))  # (fy, fz, x)
            fine = np.tensordot(fine, mx[fx, xa:xb], axes=(2, 1))  # (fy, fz, fx)
            k, i, j = _local_maxima(fine.transpose(1, 0, 2), level)
            idx = np.column_stack([z[k], fy[i] * step, fx[j] * step])
            own = (
                (idx[:, 1] >= y0 - 0.5 * step)
                & (idx[:, 1] < y1 - 0.5 * step)
                & (idx[:, 2] >= x0 - 0.5 * step)
                & (idx[:, 2] < x1 - 0.5 * step)
            )
            # A maximum on the outer voxel of the volume is a truncated slope (or an
            # edge artefact of the reconstruction's support), not a peak.
            inner = np.all((idx >= 1.0) & (idx <= upper - 1.0), axis=1)
            found.append(idx[own & inner])
    return np.concatenate(found) if found else np.zeros((0, 3))


def enforce_min_distance(
    positions: np.ndarray, strength: np.ndarray, *, min_distance: float
) -> np.ndarray:
    """Indices of the points kept when no two may be closer than ``min_distance``.

    Points are visited from the strongest down; one is kept when no kept point is
    within ``min_distance`` of it.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Points [Å or any length unit].
    strength : ndarray of shape (n,)
        Larger wins.
    min_distance : float
        In the units of ``positions``.

    Returns
    -------
    ndarray of int, shape (k,)
        Kept indices, in increasing order.
    """
    n = len(positions)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    pairs = cKDTree(positions).query_pairs(min_distance, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(n)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    order_nb = np.argsort(both[:, 0], kind="stable")
    src, dst = both[order_nb, 0], both[order_nb, 1]
    start = np.searchsorted(src, np.arange(n + 1))
    kept = np.zeros(n, dtype=bool)
    blocked = np.zeros(n, dtype=bool)
    for i in np.argsort(-np.asarray(strength), kind="stable"):
        if not blocked[i]:
            kept[i] = True
            blocked[dst[start[i] : start[i + 1]]] = True
    return np.flatnonzero(kept)


# --------------------------------------------------------------------------- helpers


def _check_volume(density: ArrayLike, voxel_size: float) -> np.ndarray:
    vol = np.asarray(density, dtype=float)
    if vol.ndim != 3 or vol.size == 0:
        raise InputError(
            f"the volume must be a 3D array [z, y, x] with every axis non-empty; got shape "
            f"{vol.shape}. Pass Volume.density of the reconstruct stage."
        )
    if min(vol.shape) < 3:
        raise InputError(f"the volume needs at least 3 voxels along each axis; got {vol.shape}.")
    if not np.all(np.isfinite(vol)):
        raise InputError("the volume holds NaN or inf values; mask or fill them first.")
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise InputError(f"voxel_size must be a positive number of Å; got {voxel_size!r}.")
    if not vol.max() > 0:
        raise InputError(
            f"the volume has no positive density (max {vol.max():.3g}), so it holds no "
            "atoms. Check that the reconstruct stage ran on the right data."
        )
    return vol


def _reference_peak(vol: np.ndarray) -> float:
    """The 10th highest local maximum (3³ neighbourhood) of the volume."""
    peaks = vol[(vol == ndimage.maximum_filter(vol, size=3, mode="nearest")) & (vol > 0)]
    rank = min(_REFERENCE_RANK, peaks.size)
    return float(np.partition(peaks, peaks.size - rank)[peaks.size - rank])


def _local_maxima(values: np.ndarray, level: float):
    """Indices of the samples above ``level`` that are the maximum of their 3³ block.

    Only the samples above ``level`` (a small fraction of a volume of atoms) are
    compared with their 26 neighbours; at the border the neighbourhood is clipped.
    """
    k, i, j = np.nonzero(values > level)
    if k.size == 0:
        return k, i, j
    here = values[k, i, j]
    is_max = np.ones(k.size, dtype=bool)
    upper = np.array(values.shape) - 1
    for dk in (-1, 0, 1):
        kk = np.clip(k + dk, 0, upper[0])
        for di in (-1, 0, 1):
            ii = np.clip(i + di, 0, upper[1])
            for dj in (-1, 0, 1):
                if dk == di == dj == 0:
                    continue
                is_max &= here >= values[kk, ii, np.clip(j + dj, 0, upper[2])]
    return k[is_max], i[is_max], j[is_max]


def _spline_matrix(n: int, upsample: int) -> np.ndarray:
    """Cubic B-spline evaluation matrix from ``n`` coefficients to the fine samples.

    Row ``a`` holds the weights of the coefficients at ``t = a / upsample`` (mirror
    boundary, as ``scipy.ndimage`` mode ``"mirror"``), shape
    ``((n - 1) * upsample + 1, n)``.
    """
    t = np.arange((n - 1) * upsample + 1) / upsample
    base = np.floor(t).astype(int)
    out = np.zeros((len(t), n))
    rows = np.arange(len(t))
    for k in range(-1, 3):
        idx = base + k
        u = np.abs(t - idx)
        w = np.where(u < 1, 2 / 3 - u**2 + u**3 / 2, np.where(u < 2, (2 - u) ** 3 / 6, 0.0))
        if n > 1:
            period = 2 * (n - 1)
            idx = np.abs(np.mod(idx, period))
            idx = np.where(idx > n - 1, period - idx, idx)
        else:
            idx = np.zeros_like(idx)
        np.add.at(out, (rows, idx), w)
    return out


def _sample(coeffs: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Spline values at fractional indices (n, 3)."""
    return ndimage.map_coordinates(coeffs, index.T, order=3, prefilter=False, mode=_SPLINE_MODE)


def _fit_gaussian(
    coeffs: np.ndarray, index: np.ndarray, *, half: int, shape, spacing: float = 1.0
) -> np.ndarray:
    """Sub-voxel centres by a weighted quadratic fit of the log density (twice).

    The neighbourhood is ``(2 half + 1)³`` samples ``spacing`` original voxels apart,
    centred on the current estimate. Samples below 10 % of the largest are left out,
    the others are weighted by their squared value (Caruana's weighting of a log fit). A fit whose
    curvature is not negative definite, or that moves the centre by more than a
    voxel, keeps the previous estimate. Centres are fractional indices ``(z, y, x)``.
    """
    grid = np.arange(-half, half + 1, dtype=float)
    off = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    design = np.column_stack(
        [
            np.ones(len(off)),
            off,
            off**2,
            off[:, 0] * off[:, 1],
            off[:, 0] * off[:, 2],
            off[:, 1] * off[:, 2],
        ]
    )  # (s, 10)
    upper = np.array(shape, dtype=float) - 1
    current = index.copy()
    for _ in range(2):
        pts = current[:, None, :] + spacing * off[None]  # (n, s, 3)
        values = _sample(coeffs, pts.reshape(-1, 3)).reshape(len(current), len(off))
        top = values.max(axis=1)
        peak = np.where(top > 0, top, 1.0)
        use = values > 0.1 * peak[:, None]
        w = np.where(use, (values / peak[:, None]) ** 2, 0.0)
        logv = np.log(np.where(use, values / peak[:, None], 1.0))
        A = np.einsum("ns,sa,sb->nab", w, design, design)
        b = np.einsum("ns,sa,ns->na", w, design, logv)
        A += 1e-9 * np.eye(10)
        coef = np.linalg.solve(A, b[:, :, None])[:, :, 0]
        g = coef[:, 1:4]
        H = np.empty((len(coef), 3, 3))
        H[:, [0, 1, 2], [0, 1, 2]] = 2 * coef[:, 4:7]
        H[:, 0, 1] = H[:, 1, 0] = coef[:, 7]
        H[:, 0, 2] = H[:, 2, 0] = coef[:, 8]
        H[:, 1, 2] = H[:, 2, 1] = coef[:, 9]
        ok = (use.sum(axis=1) >= 10) & (top > 0) & np.all(np.isfinite(H), axis=(1, 2))
        ok[ok] = np.all(np.linalg.eigvalsh(H[ok]) < 0, axis=1)
        step = np.zeros_like(g)
        step[ok] = -spacing * np.linalg.solve(H[ok], g[ok][:, :, None])[:, :, 0]
        ok &= np.all(np.abs(step) <= 1.0, axis=1)
        current[ok] = np.clip(current[ok] + step[ok], 0.0, upper)
    return current


def _integrate(coeffs: np.ndarray, index: np.ndarray, *, radius: float) -> np.ndarray:
    """Sum of the spline over a sphere of ``radius`` voxels, sampled on a half-voxel grid."""
    r = int(np.ceil(2 * radius))
    grid = np.arange(-r, r + 1) * 0.5
    off = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    off = off[np.sum(off**2, axis=1) <= radius**2]
    out = np.empty(len(index))
    for start in range(0, len(index), 4096):
        pts = index[start : start + 4096, None, :] + off[None]
        values = _sample(coeffs, pts.reshape(-1, 3)).reshape(-1, len(off))
        out[start : start + 4096] = values.sum(axis=1) * 0.125  # half-voxel cells
    return out
