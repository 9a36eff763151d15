"""3D rendering of the Gaussian atoms of :mod:`hpcaet.forward.gaussian`.

The density of atom ``i`` is ``w_i`` times a normalised isotropic Gaussian of variance
``s_i² = B_i / (8π²)`` per axis,

.. math::

    \\rho(\\mathbf{r}) = \\sum_i \\frac{w_i}{(2\\pi s_i^2)^{3/2}}
        \\exp\\left(-\\frac{|\\mathbf{r} - \\mathbf{r}_i|^2}{2 s_i^2}\\right)\\ [1/Å],

so that integrating it along the beam gives the projected image of
:func:`hpcaet.forward.project_atoms`. It is point-sampled at voxel centres
``((k - nz//2), (j - ny//2), (i - nx//2)) * voxel_size`` for index ``[k, j, i]`` (z, y,
x), the rule of :mod:`hpcaet.geometry`, truncated per axis at ``cutoff`` standard
deviations and evaluated on local separable patches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from hpcaet.forward._patches import _CHUNK_SAMPLES, _axis_window, _patch_width, _scatter_add, _sigma
from hpcaet.forward._validate import (
    _check_atoms,
    _check_dtype,
    _check_positive,
    _check_shape,
    _check_volume,
)
from hpcaet.geometry import position_to_pixel

__all__ = ["render_volume", "render_volume_adjoint"]


def render_volume(
    positions: ArrayLike,
    weights: ArrayLike,
    b_factors: ArrayLike,
    *,
    shape: tuple[int, int, int],
    voxel_size: float,
    cutoff: float = 4.0,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """Render the 3D density of Gaussian atoms on a voxel grid.

    Parameters
    ----------
    positions : array_like of shape (n, 3)
        Atom positions ``x, y, z`` in the sample frame [Å]; ``n = 0`` gives zeros.
    weights : array_like of shape (n,) or scalar
        Integrated scattering cross-sections [Å²].
    b_factors : array_like of shape (n,) or scalar
        B-factors [Å²], strictly positive; ``s = sqrt(B / (8π²))`` [Å].
    shape : tuple of int
        Volume shape ``(nz, ny, nx)`` [voxels].
    voxel_size : float
        Edge of a cubic voxel [Å].
    cutoff : float, default 4.0
        Truncation half-width of each Gaussian, per axis, in standard deviations.
    dtype : data-type, default float64
        Floating dtype of the output; the computation is always float64.

    Returns
    -------
    ndarray of shape (nz, ny, nx)
        Density [1/Å]; ``volume.sum() * voxel_size**3`` equals ``sum(w)`` [Å²] for
        atoms well inside, and ``volume.sum(axis=0) * voxel_size`` is the image of
        :func:`hpcaet.forward.project_atoms` at Euler angles ``(0, 0, 0)``.

    Raises
    ------
    InputError
        On a wrong shape, a non-finite value, or a non-positive B-factor, voxel size
        or cutoff.
    """
    r, (w, b) = _check_atoms(positions, weights, b_factors)
    dims = _check_shape(shape, ndim=3)
    _check_positive("voxel_size", voxel_size, "Å")
    _check_positive("cutoff", cutoff, "standard deviations")
    out_dtype = _check_dtype(dtype)
    out = np.zeros(int(np.prod(dims)))
    if len(r):
        sigma = _sigma(b)
        amplitude = w / (2.0 * np.pi * sigma**2) ** 1.5
        for win in _volume_windows(r, sigma, dims, voxel_size, cutoff):
            values = (
                (amplitude[win.atom, None] * win.gz)[:, :, None, None]
                * win.gy[:, None, :, None]
                * win.gx[:, None, None, :]
            )
            _scatter_add(out, win.flat_indices(dims), values)
    return out.reshape(dims).astype(out_dtype, copy=False)


def render_volume_adjoint(
    volume: ArrayLike,
    positions: ArrayLike,
    b_factors: ArrayLike,
    *,
    voxel_size: float,
    cutoff: float = 4.0,
) -> np.ndarray:
    """Adjoint of :func:`render_volume` as a linear map of the weights.

    Parameters
    ----------
    volume : array_like of shape (nz, ny, nx)
        Volume to sample back onto the atoms [1/Å or any units].
    positions : array_like of shape (n, 3)
        Atom positions ``x, y, z`` [Å].
    b_factors : array_like of shape (n,) or scalar
        B-factors [Å²], strictly positive.
    voxel_size : float
        Edge of a cubic voxel [Å].
    cutoff : float, default 4.0
        Truncation half-width in standard deviations, as in :func:`render_volume`.

    Returns
    -------
    ndarray of shape (n,)
        ``V^T v`` with ``V`` the map ``weights -> volume``, so that
        ``<V w, v> = <w, V^T v>`` to rounding [1/Å³ × volume units].

    Raises
    ------
    InputError
        As :func:`render_volume`, and when ``volume`` is not 3D or not finite.
    """
    r, (b,) = _check_atoms(positions, b_factors, names=("b_factors",))
    v = _check_volume(volume)
    _check_positive("voxel_size", voxel_size, "Å")
    _check_positive("cutoff", cutoff, "standard deviations")
    if len(r) == 0:
        return np.zeros(0)
    sigma = _sigma(b)
    result = np.zeros(len(r))
    v_flat = v.ravel()
    for win in _volume_windows(r, sigma, v.shape, voxel_size, cutoff):
        patch = v_flat[win.flat_indices(v.shape)]
        along_x = np.matmul(patch, win.gx[:, None, :, None])[..., 0]  # (c, kz, ky)
        along_y = np.matmul(along_x, win.gy[:, :, None])[..., 0]  # (c, kz)
        result[win.atom] = np.einsum("cz,cz->c", along_y, win.gz)
    return result / (2.0 * np.pi * sigma**2) ** 1.5


class _VolumeWindow(NamedTuple):
    """Separable 3D patch of a chunk of atoms (indices clipped, factors masked)."""

    atom: np.ndarray  # (c,)
    zs: np.ndarray  # (c, k) voxel indices along z
    ys: np.ndarray  # (c, k)
    xs: np.ndarray  # (c, k)
    gz: np.ndarray  # (c, k) exp(-dz²/2s²), zero outside window or volume
    gy: np.ndarray  # (c, k)
    gx: np.ndarray  # (c, k)

    def flat_indices(self, shape: tuple[int, int, int]) -> np.ndarray:
        """Flat indices into the volume, shape (c, k, k, k)."""
        _, ny, nx = shape
        return (self.zs[:, :, None, None] * ny + self.ys[:, None, :, None]) * nx + self.xs[
            :, None, None, :
        ]


def _volume_windows(
    r: np.ndarray,
    sigma: np.ndarray,
    shape: tuple[int, int, int],
    voxel_size: float,
    cutoff: float,
) -> Iterator[_VolumeWindow]:
    """Yield separable patches of the atoms in memory-bounded chunks, narrowest first."""
    nz, ny, nx = shape
    # Fractional voxel indices by the geometry rule; z goes through the x slot of
    # position_to_pixel, which applies the same rule with the size of that axis.
    yx = position_to_pixel(r[:, :2], (ny, nx), voxel_size)
    kz = position_to_pixel(r[:, [2, 1]], (ny, nz), voxel_size)[:, 1]
    centres = np.column_stack([kz, yx])  # (n, 3) z, y, x
    half = cutoff * sigma / voxel_size
    order = np.argsort(half, kind="stable")
    chunk = max(1, _CHUNK_SAMPLES // _patch_width(half.max()) ** 3)
    for start in range(0, len(r), chunk):
        atom = order[start : start + chunk]
        h = half[atom]
        width = _patch_width(h.max())
        s = sigma[atom, None]
        axes = []
        for axis, size in enumerate(shape):
            index, offset, factor = _axis_window(centres[atom, axis], h, size, width)
            factor *= np.exp(-0.5 * (offset * voxel_size / s) ** 2)
            axes.append((index, factor))
        (zs, gz), (ys, gy), (xs, gx) = axes
        yield _VolumeWindow(atom, zs, ys, xs, gz, gy, gx)
