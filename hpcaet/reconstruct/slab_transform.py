"""GENFIRE's pruned 3D DFT between a support slab and the grid points that hold data.

The grid is that of :mod:`hpcaet.reconstruct.fourier`: the DFT grid of an ``n x n x n``
array, indexed ``[kz, ky, kx]`` with ``kx >= 0`` (the half-space of a real-to-complex
transform), the window centre at the origin of real space. Only the support slab
(``nz x m x m`` voxels round the centre) is non-zero, so the transform is pruned: FFTs of
the slab's lines along x and y, and along z either a sparse DFT evaluated at the points
(thin slabs) or zero-padded FFTs of the columns read at the points (thick slabs).
Nothing of size ``n^3`` is formed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.fft as sfft
from scipy import sparse

from hpcaet.errors import InputError

__all__ = ["SlabTransform", "Z_TRANSFORMS"]

#: Accepted values of ``SlabTransform(z_transform=...)``.
Z_TRANSFORMS = ("auto", "sparse", "fft")

# "auto" takes the FFT along z when the sparse z-DFT has more than this many entries per
# element of the zero-padded (n, n // 2 + 1, n) column array. Measured (one core, n = 120
# to 180, forward + inverse): at 0.97 (the demo window) the sparse DFT is 1.6x faster, at
# 2.1 the FFT 1.25x, at 8 the FFT 4x; memory also favours the FFT (the sparse DFT keeps
# 24 bytes per entry, the FFT path a fixed ~16 MB chunk).
_FFT_ABOVE = 1.5
# Bytes of one chunk of z-FFT columns (a few rows of ky): bounds the FFT path's scratch.
_CHUNK_BYTES = 16 * 2**20


class SlabTransform:
    """Pruned 3D DFT between a support slab and chosen points of the ``n^3`` grid.

    ``forward(slab)`` equals ``numpy.fft.rfftn`` of the ``n^3`` array that holds the
    slab round the origin (zeros elsewhere), read at the points; ``inverse(values)``
    equals ``numpy.fft.irfftn`` of the half-space grid that holds ``values`` at the
    points (zeros elsewhere), read on the slab. ``slab + inverse(c * (M - forward(slab)))``
    is therefore GENFIRE's update restricted to the support.

    Along x and y: FFTs of length ``n`` for the slab's ``nz m`` lines and its
    ``nz (n / 2 + 1)`` columns. Along z, one of two exact transforms:

    ``"sparse"``
        A sparse DFT with ``nz`` terms per point (points sorted by ``(gy, gx)``, as
        :func:`grid_projections` returns them, read ``nz`` contiguous values). Cost and
        memory grow as ``points x nz``: 24 bytes per entry for the matrix and its
        transpose, 16 GB for a 128³ volume with full support at oversampling 3.
    ``"fft"``
        The ``(n, n / 2 + 1, nz)`` columns zero-padded to length ``n`` along z, FFT'd,
        and read at the points' flat indices (forward); values scattered into zeros,
        inverse FFT along z and the ``nz`` slab rows read back (inverse). Done a few
        ``ky`` rows at a time, each block only up to the largest ``kx`` it holds (the
        Nyquist circle: ~80 % of the columns), so the scratch is ~16 MB; cost about
        ``0.8 n^2 (n / 2 + 1)`` FFT elements per call, whatever the number of points.
    ``"auto"`` (default)
        ``"fft"`` when ``points x nz > 1.5 n (n / 2 + 1) n``, where the two break even
        (a thick slab densely covered by data: a 128³ volume with full support and 60
        tilts has 9x more entries than padded elements), ``"sparse"`` otherwise (the
        paper's 33-voxel slab in 60-voxel windows with 12 tilts: 0.97, and the sparse
        DFT is 1.6x faster).

    Parameters
    ----------
    m : int
        Window edge [voxels]; the slab spans ``m`` voxels along x and y.
    nz : int
        Slab thickness [voxels], ``nz <= n``.
    n : int
        Edge of the oversampled grid [voxels].
    gz, gy, gx : ndarray of shape (p,)
        Signed grid frequencies of distinct points, ``0 <= gx <= n // 2``,
        ``|gz|, |gy| < n / 2``.
    workers : int, default 1
        Threads of the FFTs.
    z_transform : {"auto", "sparse", "fft"}, default "auto"
        The transform along z, see above.

    Raises
    ------
    InputError
        An unknown ``z_transform``, a slab thicker than the grid, or repeated points.
    """

    def __init__(
        self, m: int, nz: int, n: int, gz, gy, gx, *, workers: int = 1, z_transform="auto"
    ):
        if z_transform not in Z_TRANSFORMS:
            raise InputError(f"z_transform must be one of {Z_TRANSFORMS}; got {z_transform!r}.")
        if not 1 <= nz <= n:
            raise InputError(
                f"slab of nz={nz} voxels does not fit the oversampled grid n={n}; "
                "use n >= nz (oversampling of the larger of window and support)."
            )
        self.m, self.nz, self.n, self.workers = int(m), int(nz), int(n), int(workers)
        nh = n // 2 + 1
        self._c = m // 2
        gz, gy, gx = (np.asarray(g, dtype=np.int64) for g in (gz, gy, gx))
        flat = flat_index(gz, gy, gx, n)
        self._order = None if np.all(flat[1:] > flat[:-1]) else np.argsort(flat, kind="stable")
        ordered = flat if self._order is None else flat[self._order]
        if np.any(ordered[1:] == ordered[:-1]):
            k = int(np.flatnonzero(ordered[1:] == ordered[:-1])[0])
            raise InputError(
                f"grid point with flat index {int(ordered[k])} is given twice; SlabTransform "
                "needs distinct points (merge them, as grid_projections does)."
            )
        self._size = len(flat)
        if z_transform == "auto":
            z_transform = "fft" if len(flat) * nz > _FFT_ABOVE * n * nh * n else "sparse"
        self.z_transform = z_transform
        if z_transform == "sparse":
            self._zdft, self._zidft = _sparse_zdft(gz, gy, gx, nz, n)
        else:
            self._chunks = _fft_chunks(ordered, n)
            rows = max(1, _CHUNK_BYTES // (nh * n * 8))
            self._zbuf = np.zeros((rows, nh, n), dtype=np.complex64)
            self._zcolumns = np.empty((n, nh, nz), dtype=np.complex64)
        self._xbuf = np.zeros((nz, m, n), dtype=np.float32)
        self._ybuf = np.zeros((n, nh, nz), dtype=np.complex64)
        self._half = np.empty((nz, m, nh), dtype=np.complex64)
        self._slab = np.empty((nz, m, m), dtype=np.float32)

    @property
    def size(self) -> int:
        """Number of grid points."""
        return self._size

    def forward(self, slab: np.ndarray) -> np.ndarray:
        """Fourier values at the points of a slab of shape (nz, m, m); complex64 (p,)."""
        c, m, n = self._c, self.m, self.n
        xb, yb = self._xbuf, self._ybuf
        xb[:, :, : m - c] = slab[:, :, c:]
        xb[:, :, n - c :] = slab[:, :, :c]
        lines = sfft.rfft(xb, axis=2, workers=self.workers).transpose(1, 2, 0)  # (m, nh, nz)
        yb[: m - c] = lines[c:]
        yb[n - c :] = lines[:c]
        columns = sfft.fft(yb, axis=0, workers=self.workers)  # (n, nh, nz)
        if self.z_transform == "sparse":
            return self._zdft @ columns.reshape(-1)
        return self._zfft_forward(columns)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Inverse transform of point values, read on the slab; float32 (nz, m, m).

        The returned array is reused by the next call; copy it to keep it.
        """
        c, m, n = self._c, self.m, self.n
        if self.z_transform == "sparse":
            columns = (self._zidft @ values).reshape(n, n // 2 + 1, self.nz)
        else:
            columns = self._zfft_inverse(values)
        rows = sfft.ifft(columns, axis=0, workers=self.workers, overwrite_x=True)
        half = self._half  # (nz, m, nh)
        half[:, :c] = rows[n - c :].transpose(2, 0, 1)
        half[:, c:] = rows[: m - c].transpose(2, 0, 1)
        lines = sfft.irfft(half, n=n, axis=2, workers=self.workers)  # (nz, m, n)
        out = self._slab
        out[:, :, :c] = lines[:, :, n - c :]
        out[:, :, c:] = lines[:, :, : m - c]
        return out

    def _zfft_forward(self, columns: np.ndarray) -> np.ndarray:
        """Zero-padded FFT along z of ``(n, nh, nz)`` columns, read at the points."""
        n, nz = self.n, self.nz
        h = nz // 2  # slab row h is z = 0; rows below h wrap to the top of the padding
        buf = self._zbuf  # zeros between the slab's rows, never overwritten
        out = np.empty(self._size, dtype=np.complex64)
        for chunk in self._chunks:
            a, b, kx = chunk.rows.start, chunk.rows.stop, chunk.kx
            block = buf[: b - a, :kx]
            block[:, :, : nz - h] = columns[a:b, :kx, h:]
            block[:, :, n - h :] = columns[a:b, :kx, :h]
            spectra = sfft.fft(block, axis=2, workers=self.workers)
            out[chunk.points] = spectra.reshape(-1)[chunk.index]
        if self._order is None:
            return out
        unsorted = np.empty_like(out)
        unsorted[self._order] = out
        return unsorted

    def _zfft_inverse(self, values: np.ndarray) -> np.ndarray:
        """Inverse FFT along z of the points' values, read on the slab rows; (n, nh, nz)."""
        n, nz = self.n, self.nz
        h = nz // 2
        values = np.asarray(values, dtype=np.complex64)
        if self._order is not None:
            values = values[self._order]
        columns = self._zcolumns
        columns[:] = 0
        for chunk in self._chunks:
            a, b, kx = chunk.rows.start, chunk.rows.stop, chunk.kx
            scratch = np.zeros((b - a, kx, n), dtype=np.complex64)
            scratch.reshape(-1)[chunk.index] = values[chunk.points]
            rows = sfft.ifft(scratch, axis=2, workers=self.workers, overwrite_x=True)
            columns[a:b, :kx, h:] = rows[:, :, : nz - h]
            columns[a:b, :kx, :h] = rows[:, :, n - h :]
        return columns


class _Chunk(NamedTuple):
    """A block of ky rows of the z-FFT path and the points in it."""

    rows: range  # ky rows (grid index gy % n)
    kx: int  # columns 0 <= gx < kx hold every point of the block
    points: slice  # the block's points in sorted order
    index: np.ndarray  # their flat index in the (rows, kx, n) block


def _fft_chunks(flat: np.ndarray, n: int) -> list[_Chunk]:
    """Blocks of ~_CHUNK_BYTES of ky rows that hold points, from sorted flat indices."""
    nh = n // 2 + 1
    per_row = nh * n
    size = max(1, _CHUNK_BYTES // (per_row * 8))
    starts = np.arange(0, n + size, size).clip(max=n)
    bounds = np.searchsorted(flat, starts * per_row)
    chunks = []
    for a, b, lo, hi in zip(starts[:-1], starts[1:], bounds[:-1], bounds[1:], strict=True):
        if hi == lo:
            continue
        local = flat[lo:hi] - a * per_row
        row, rest = local // per_row, local % per_row  # rest = gx n + gz
        kx = int(rest.max()) // n + 1  # beyond the Nyquist circle a block needs fewer kx
        chunks.append(
            _Chunk(range(int(a), int(b)), kx, slice(int(lo), int(hi)), row * kx * n + rest)
        )
    return chunks


def _sparse_zdft(gz, gy, gx, nz: int, n: int):
    """The z-DFT at the points as a CSR matrix (columns laid out ``[ky, kx, z]``) and its
    inverse part, the adjoint over ``n``."""
    nh = n // 2 + 1
    dz = np.arange(nz) - nz // 2
    column = (gy % n) * nh + gx
    phase = np.exp(-2j * np.pi * np.outer(gz, dz) / n).astype(np.complex64)
    rows = np.repeat(np.arange(len(gz)), nz)
    cols = (column[:, None] * nz + np.arange(nz)[None, :]).ravel()
    zdft = sparse.csr_matrix((phase.ravel(), (rows, cols)), shape=(len(gz), n * nh * nz))
    return zdft, (zdft.conj().T / np.float32(n)).tocsr()


def flat_index(gz, gy, gx, n: int) -> np.ndarray:
    """Flat index ordered by (gy, gx, gz): sorting by it groups the points by column."""
    return ((gy % n) * (n // 2 + 1) + gx) * n + gz % n


def unflat_index(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nh = n // 2 + 1
    gz = flat % n
    gx = (flat // n) % nh
    gy = flat // (n * nh)
    signed = lambda g: np.where(g > n // 2, g - n, g)  # noqa: E731
    return signed(gz), signed(gy), gx
