"""Fourier gridding of window projections and the pruned slab transform of GENFIRE.

Fourier slice theorem in the convention of :mod:`hpcaet.geometry`: an image is the
integral of the density along the microscope z axis after the rotation ``r_mic = R
r_sample``, so its 2D transform at ``(kx, ky)`` is the 3D transform of the density at
``k = R^T (kx, ky, 0) = kx R[0] + ky R[1]`` (rows of ``R``).

The 3D grid is the discrete Fourier grid of an ``n x n x n`` array (``n`` = oversampling
× window size), indexed ``[kz, ky, kx]`` with ``kx >= 0`` only (the half-space of a
real-to-complex transform); the window centre is the origin of real space. Only the
*support slab* (``nz x m x m`` voxels round the centre) is ever non-zero, so the
transforms are pruned: along x and y short FFTs of the slab's lines, along z an exact
DFT evaluated only at the grid points that hold data (a sparse matrix with ``nz``
entries per point). Nothing of size ``n^3`` is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import sparse

from hpcaet.errors import InputError

__all__ = ["GriddedData", "grid_projections", "SlabTransform"]


@dataclass(frozen=True)
class GriddedData:
    """Measured values on the 3D Fourier grid (half-space ``gx >= 0``).

    Attributes
    ----------
    gz, gy, gx : ndarray of shape (p,), int
        Signed grid frequencies of the points [1 / (n voxels)], ``|g| < n / 2``.
    values : ndarray of shape (p,), complex64
        Weighted mean of the projection samples gridded onto each point.
    confidence : ndarray of shape (p,), float32
        Sum of the interpolation weights, capped at 1: 1 where a sample lies on the point.
    n : int
        Edge of the oversampled grid [voxels].
    """

    gz: np.ndarray
    gy: np.ndarray
    gx: np.ndarray
    values: np.ndarray
    confidence: np.ndarray
    n: int

    @property
    def resolution(self) -> np.ndarray:
        """``|g| / (n / 2)`` of each point: 0 at the origin, 1 at the Nyquist sphere."""
        return np.sqrt(self.gz**2.0 + self.gy**2 + self.gx**2) / (self.n / 2)


def grid_projections(
    images: np.ndarray,
    rotations: np.ndarray,
    *,
    n: int,
    radius: float,
    workers: int = 1,
) -> GriddedData:
    """Grid the 2D transforms of window projections onto the 3D Fourier grid.

    Each crop is zero-padded to ``n x n`` with its centre pixel ``(m // 2, m // 2)`` at
    the origin and transformed; every sample ``(kx, ky)`` inside the Nyquist circle is
    rotated to ``k = R^T (kx, ky, 0)`` and given to the nearest grid point ``g`` if
    ``|k - g| <= radius`` (with ``radius < 0.5`` at most one point qualifies), with the
    weight ``w = 1 - (|k - g| / radius)^2``. A point's value is the weighted mean of
    its samples, its *confidence* ``min(1, sum w)``. Samples whose point falls in the
    ``gx < 0`` half are stored conjugated at ``-g``; points on the ``gx = 0`` plane
    receive both, so the gridded data are exactly Hermitian there.

    Parameters
    ----------
    images : ndarray of shape (p, m, m), float32
        Window projections [image units].
    rotations : ndarray of shape (p, 3, 3)
        Rotation matrices of the projections (:func:`hpcaet.geometry.euler_to_matrix`).
    n : int
        Edge of the oversampled grid, ``n >= m`` [voxels].
    radius : float
        Interpolation radius, ``0 < radius < 0.5`` [grid units].
    workers : int, default 1
        Threads of the 2D FFTs.

    Returns
    -------
    GriddedData
    """
    p, m, _ = images.shape
    if n < m:
        raise InputError(f"oversampled grid n={n} is smaller than the window m={m}.")
    if not 0 < radius < 0.5:
        raise InputError(
            f"interpolation radius must be in (0, 0.5) grid units; got {radius!r}. "
            "GENFIRE's usual value is 0.3."
        )
    spectra = sfft.fft2(_pad_centred(images, n), workers=workers)  # (p, n, n) complex64
    freq = np.rint(sfft.fftfreq(n) * n)
    ky, kx = np.meshgrid(freq, freq, indexing="ij")
    inside = kx**2 + ky**2 < (n / 2) ** 2
    kx, ky = kx[inside], ky[inside]
    flats, vals, weights = [], [], []
    for j in range(p):
        k3 = kx[:, None] * rotations[j, 0] + ky[:, None] * rotations[j, 1]  # (s, 3) x,y,z
        g = np.rint(k3)
        dist = np.sqrt(((k3 - g) ** 2).sum(axis=1))
        keep = (dist <= radius) & ((g**2).sum(axis=1) < (n / 2) ** 2)
        g, dist, v = g[keep].astype(np.int64), dist[keep], spectra[j][inside][keep]
        w = 1.0 - (dist / radius) ** 2
        flip = g[:, 0] < 0
        g[flip] *= -1
        v = np.where(flip, np.conj(v), v)
        plane = g[:, 0] == 0  # both g and -g belong to the stored half-space
        g = np.concatenate([g, -g[plane]])
        v = np.concatenate([v, np.conj(v[plane])])
        w = np.concatenate([w, w[plane]])
        flats.append(_flat(g[:, 2], g[:, 1], g[:, 0], n))
        vals.append(v)
        weights.append(w)
    flat = np.concatenate(flats)
    v = np.concatenate(vals)
    w = np.concatenate(weights)
    points, inverse = np.unique(flat, return_inverse=True)
    total = np.bincount(inverse, weights=w)
    mean = (np.bincount(inverse, weights=w * v.real)
            + 1j * np.bincount(inverse, weights=w * v.imag)) / total
    gz, gy, gx = _unflat(points, n)
    return GriddedData(
        gz=gz, gy=gy, gx=gx,
        values=mean.astype(np.complex64),
        confidence=np.minimum(total, 1.0).astype(np.float32),
        n=int(n),
    )


class SlabTransform:
    """Pruned 3D DFT between a support slab and chosen points of the ``n^3`` grid.

    ``forward(slab)`` equals ``numpy.fft.rfftn`` of the ``n^3`` array that holds the
    slab round the origin (zeros elsewhere), read at the points; ``inverse(values)``
    equals ``numpy.fft.irfftn`` of the half-space grid that holds ``values`` at the
    points (zeros elsewhere), read on the slab. ``inverse(forward(.))`` is therefore
    one step of GENFIRE's update restricted to the support.

    Parameters
    ----------
    m : int
        Window edge [voxels]; the slab spans ``m`` voxels along x and y.
    nz : int
        Slab thickness [voxels].
    n : int
        Edge of the oversampled grid [voxels].
    gz, gy, gx : ndarray of shape (p,)
        Signed grid frequencies of the points, ``0 <= gx <= n // 2``, ``|gz|, |gy| < n / 2``.
    workers : int, default 1
        Threads of the FFTs.
    """

    def __init__(self, m: int, nz: int, n: int, gz, gy, gx, *, workers: int = 1):
        self.m, self.nz, self.n, self.workers = int(m), int(nz), int(n), int(workers)
        nh = n // 2 + 1
        self._c = m // 2
        dz = np.arange(nz) - nz // 2
        gz = np.asarray(gz)
        column = (np.asarray(gy) % n) * nh + np.asarray(gx)
        phase = np.exp(-2j * np.pi * np.outer(gz, dz) / n).astype(np.complex64)
        rows = np.repeat(np.arange(len(gz)), nz)
        cols = (np.arange(nz)[None, :] * (n * nh) + column[:, None]).ravel()
        self._zdft = sparse.csr_matrix(
            (phase.ravel(), (rows, cols)), shape=(len(gz), nz * n * nh))
        # Adjoint of the z-DFT scaled by 1/n (the z part of the inverse): CSC, no copy.
        self._zidft = (self._zdft.conj() / np.float32(n)).T
        self._xbuf = np.zeros((nz, m, n), dtype=np.float32)
        self._ybuf = np.zeros((nz, n, nh), dtype=np.complex64)
        self._slab = np.empty((nz, m, m), dtype=np.float32)
        self._half = np.empty((nz, m, nh), dtype=np.complex64)

    def forward(self, slab: np.ndarray) -> np.ndarray:
        """Fourier values at the points of a slab of shape (nz, m, m); complex64 (p,)."""
        c, m, n = self._c, self.m, self.n
        xb, yb = self._xbuf, self._ybuf
        xb[:, :, : m - c] = slab[:, :, c:]
        xb[:, :, n - c :] = slab[:, :, :c]
        lines = sfft.rfft(xb, axis=2, workers=self.workers)  # (nz, m, nh)
        yb[:, : m - c] = lines[:, c:]
        yb[:, n - c :] = lines[:, :c]
        columns = sfft.fft(yb, axis=1, workers=self.workers)  # (nz, n, nh)
        return self._zdft @ columns.ravel()

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Inverse transform of point values, read on the slab; float32 (nz, m, m).

        The returned array is reused by the next call; copy it to keep it.
        """
        c, m, n, nz = self._c, self.m, self.n, self.nz
        columns = (self._zidft @ values).reshape(nz, n, n // 2 + 1)
        rows = sfft.ifft(columns, axis=1, workers=self.workers, overwrite_x=True)
        half = self._half
        half[:, :c] = rows[:, n - c :]
        half[:, c:] = rows[:, : m - c]
        lines = sfft.irfft(half, n=n, axis=2, workers=self.workers)  # (nz, m, n)
        out = self._slab
        out[:, :, :c] = lines[:, :, n - c :]
        out[:, :, c:] = lines[:, :, : m - c]
        return out


def _pad_centred(images: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad crops to (p, n, n) with pixel (m//2, m//2) moved to index (0, 0)."""
    p, m, _ = images.shape
    c = m // 2
    out = np.zeros((p, n, n), dtype=np.float32)
    lo, hi = slice(0, m - c), slice(n - c, n)
    out[:, lo, lo] = images[:, c:, c:]
    out[:, lo, hi] = images[:, c:, :c]
    out[:, hi, lo] = images[:, :c, c:]
    out[:, hi, hi] = images[:, :c, :c]
    return out


def _flat(gz, gy, gx, n: int) -> np.ndarray:
    return ((gz % n) * n + gy % n) * (n // 2 + 1) + gx


def _unflat(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nh = n // 2 + 1
    gx = flat % nh
    gy = (flat // nh) % n
    gz = flat // (nh * n)
    signed = lambda g: np.where(g > n // 2, g - n, g)  # noqa: E731
    return signed(gz), signed(gy), gx
