"""Fourier gridding of window projections for GENFIRE.

Fourier slice theorem in the convention of :mod:`hpcaet.geometry`: an image is the
integral of the density along the microscope z axis after the rotation ``r_mic = R
r_sample``, so its 2D transform at ``(kx, ky)`` is the 3D transform of the density at
``k = R^T (kx, ky, 0) = kx R[0] + ky R[1]`` (rows of ``R``).

The 3D grid is the discrete Fourier grid of an ``n x n x n`` array (``n`` = oversampling
× window size), indexed ``[kz, ky, kx]`` with ``kx >= 0`` only (the half-space of a
real-to-complex transform); the window centre is the origin of real space. Only the
*support slab* (``nz x m x m`` voxels round the centre) is ever non-zero, and only the
grid points near the projections' central planes hold data, so the transforms between
the two are pruned (:class:`~hpcaet.reconstruct.slab_transform.SlabTransform`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from hpcaet.errors import InputError
from hpcaet.reconstruct.slab_transform import flat_index, unflat_index

__all__ = ["GriddedData", "grid_projections"]

# Elements of the per-block phase matrices of the exact-DFT gridding (8 MB complex64).
_DFT_BLOCK = 2**20


@dataclass(frozen=True)
class GriddedData:
    """Measured values on the 3D Fourier grid (half-space ``gx >= 0``).

    Attributes
    ----------
    gz, gy, gx : ndarray of shape (p,), int
        Signed grid frequencies of the points [1 / (n voxels)], ``|g| < n / 2``,
        sorted by ``(gy, gx, gz)`` (grid order of
        :class:`~hpcaet.reconstruct.slab_transform.SlabTransform`'s columns).
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
    method: str = "dft",
    workers: int = 1,
) -> GriddedData:
    """Grid the 2D transforms of window projections onto the 3D Fourier grid.

    The crops' centre pixel ``(m // 2, m // 2)`` is the origin of their transform, and
    frequencies are in units of ``1 / n`` per voxel. Two methods:

    ``"dft"`` (default)
        Every grid point ``g`` of the half-space within ``radius`` of a projection's
        central plane (``|g . R[2]| <= radius``, inside the Nyquist sphere) gets the
        exact 2D DFT of that projection at its in-plane coordinates ``(g . R[0],
        g . R[1])``, with weight ``w = 1 - (d / radius)^2``, ``d`` the distance to the
        plane. In-plane interpolation error is nil; what remains is the offset
        ``d`` across the plane, along which a thin sheet's transform varies slowly.
    ``"fft"``
        The crops are zero-padded to ``n x n`` and FFT'd; each sample ``(kx, ky)``
        inside the Nyquist circle goes to ``k = R^T (kx, ky, 0)`` and to the nearest
        grid point ``g`` if ``|k - g| <= radius`` (at most one qualifies for
        ``radius < 0.5``), with weight ``1 - (|k - g| / radius)^2`` (the scheme of the
        original GENFIRE, with another weight). Cheaper, but a point takes the value
        of a sample up to ``radius`` away in any direction, an error that grows with
        the distance of the density from the window centre.

    A point's value is the weighted mean of what it received, its *confidence*
    ``min(1, sum w)``. Data for the ``gx < 0`` half are stored conjugated at ``-g``;
    points of the ``gx = 0`` plane get both members of each pair, so the gridded data
    are Hermitian there.

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
    method : {"dft", "fft"}, default "dft"
        Gridding method, see above.
    workers : int, default 1
        Threads of the 2D FFTs (``"fft"``).

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
    if method == "dft":
        parts = [_dft_samples(images[j], rotations[j], n, radius) for j in range(p)]
    elif method == "fft":
        parts = _fft_samples(images, rotations, n, radius, workers)
    else:
        raise InputError(f"gridding method must be 'dft' or 'fft'; got {method!r}.")
    g = np.concatenate([q[0] for q in parts])
    v = np.concatenate([q[1] for q in parts])
    w = np.concatenate([q[2] for q in parts])
    flip = g[:, 0] < 0
    g[flip] *= -1
    v = np.where(flip, np.conj(v), v)
    plane = g[:, 0] == 0  # both g and -g belong to the stored half-space
    g = np.concatenate([g, -g[plane]])
    v = np.concatenate([v, np.conj(v[plane])])
    w = np.concatenate([w, w[plane]])
    points, inverse = np.unique(flat_index(g[:, 2], g[:, 1], g[:, 0], n), return_inverse=True)
    total = np.bincount(inverse, weights=w)
    mean = (
        np.bincount(inverse, weights=w * v.real) + 1j * np.bincount(inverse, weights=w * v.imag)
    ) / total
    gz, gy, gx = unflat_index(points, n)
    return GriddedData(
        gz=gz,
        gy=gy,
        gx=gx,
        values=mean.astype(np.complex64),
        confidence=np.minimum(total, 1.0).astype(np.float32),
        n=int(n),
    )


def _dft_samples(image, rotation, n, radius):
    """Grid points near one projection's plane, their exact DFT values and weights.

    The DFT runs over blocks of points, so its ``(m, block)`` phase matrices stay near
    ``_DFT_BLOCK`` elements (8 MB) whatever the number of points near the plane.
    """
    normal = rotation[2]
    g = _near_plane(normal, n, radius)  # (s, 3) x, y, z, |g| < n/2, gx >= 0
    if not len(g):
        return g, np.zeros(0, np.complex64), np.zeros(0)
    dist = np.abs(g @ normal)
    uv = g @ rotation[:2].T  # in-plane frequencies (s, 2) [1/n]
    m = image.shape[0]
    img = np.asarray(image, dtype=np.float32)
    values = np.empty(len(g), dtype=np.complex64)
    block = max(256, _DFT_BLOCK // m)
    for lo in range(0, len(g), block):
        part = uv[lo : lo + block]
        ex = _phases(part[:, 0], m, n)  # (m, b) complex64
        # one real GEMM on the interleaved (re, im) columns: sum over columns of the image
        rows = (img @ ex.view(np.float32)).view(np.complex64)  # (m, b)
        values[lo : lo + block] = np.einsum("rs,rs->s", _phases(part[:, 1], m, n), rows)
    return g, values, 1.0 - (dist / radius) ** 2


def _phases(freq: np.ndarray, m: int, n: int, step: int = 16) -> np.ndarray:
    """``exp(-2 pi i (r - m // 2) freq / n)`` for pixels ``r < m``: (m, len(freq)) complex64.

    The pixel offset is split into a multiple of ``step`` and a remainder; both factors
    are powers of ``exp(-2 pi i freq / n)`` (cumulative products in complex128, accurate
    to ~1e-15), so each point costs two exponentials instead of ``m``.
    """
    k = -2j * np.pi / n
    unit = np.exp(k * freq)  # (b,)
    fine = np.empty((step, len(freq)), dtype=np.complex128)
    fine[0], fine[1:] = 1.0, unit
    np.cumprod(fine, axis=0, out=fine)  # unit^0 ... unit^(step - 1)
    coarse = np.empty((-(-m // step), len(freq)), dtype=np.complex128)
    coarse[0], coarse[1:] = np.exp(k * -(m // 2) * freq), fine[-1] * unit
    np.cumprod(coarse, axis=0, out=coarse)  # unit^(j step - m // 2)
    out = coarse.astype(np.complex64)[:, None, :] * fine.astype(np.complex64)[None, :, :]
    return out.reshape(-1, len(freq))[:m]


def _near_plane(normal, n, radius):
    """Integer points g (x, y, z) with |g . normal| <= radius, |g| < n/2, gx >= 0."""
    axis = int(np.argmax(np.abs(normal)))
    others = [a for a in range(3) if a != axis]
    half = (n - 1) // 2
    a1, a2 = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij")
    a1, a2 = a1.ravel(), a2.ravel()
    rest = a1 * normal[others[0]] + a2 * normal[others[1]]
    lo = np.ceil(
        (-radius - rest) / normal[axis] if normal[axis] > 0 else (radius - rest) / normal[axis]
    )
    hi = np.floor(
        (radius - rest) / normal[axis] if normal[axis] > 0 else (-radius - rest) / normal[axis]
    )
    chunks = []
    for k in range(int(np.max(hi - lo, initial=-1)) + 1):
        val = lo + k
        ok = val <= hi
        g = np.zeros((int(ok.sum()), 3), dtype=np.int64)
        g[:, axis] = val[ok]
        g[:, others[0]] = a1[ok]
        g[:, others[1]] = a2[ok]
        chunks.append(g)
    g = np.concatenate(chunks) if chunks else np.zeros((0, 3), np.int64)
    keep = ((g**2).sum(axis=1) < (n / 2) ** 2) & (g[:, 0] >= 0)
    return g[keep]


def _fft_samples(images, rotations, n, radius, workers):
    """Nearest-grid-point gridding of the padded projections' FFT samples."""
    spectra = sfft.fft2(_pad_centred(images, n), workers=workers)  # (p, n, n) complex64
    freq = np.rint(sfft.fftfreq(n) * n)
    ky, kx = np.meshgrid(freq, freq, indexing="ij")
    inside = kx**2 + ky**2 < (n / 2) ** 2
    kx, ky = kx[inside], ky[inside]
    parts = []
    for j in range(len(images)):
        k3 = kx[:, None] * rotations[j, 0] + ky[:, None] * rotations[j, 1]  # (s, 3) x,y,z
        g = np.rint(k3)
        dist = np.sqrt(((k3 - g) ** 2).sum(axis=1))
        keep = (dist <= radius) & ((g**2).sum(axis=1) < (n / 2) ** 2)
        parts.append(
            (g[keep].astype(np.int64), spectra[j][inside][keep], 1.0 - (dist[keep] / radius) ** 2)
        )
    return parts


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
