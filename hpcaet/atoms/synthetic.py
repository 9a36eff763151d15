"""Ideal inputs of the atoms stage, made from known atoms (for tests and benchmarks).

:func:`ideal_volume` renders atoms as a band-limited, noisy density (what a perfect
reconstruction would give) and :func:`ideal_images` projects them into noisy images in
counts at known angles (what a perfect preprocessing would give). Both use the linear
model of :mod:`hpcaet.forward`. They let the tracing, refinement and flipping be
measured against a known truth independently of the preprocess and reconstruct stages.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike
from scipy import ndimage

from hpcaet.errors import InputError
from hpcaet.forward import project_atoms, render_volume, species_table
from hpcaet.forward.kernels import probe_b_factor
from hpcaet.io import make_tilt_series, make_volume
from hpcaet.materials import VACANCY

__all__ = ["probe_b_factor", "ideal_volume", "ideal_images", "ideal_inputs"]


def _atoms(positions, species, cross_section, b_factor, extra_b):
    labels = np.asarray(species, dtype=str)
    atom = labels != VACANCY
    weights = species_table(labels[atom], cross_section)
    b = species_table(labels[atom], b_factor) + float(extra_b)
    return np.asarray(positions, float)[atom], weights, b


def ideal_volume(
    positions: ArrayLike,
    species: ArrayLike,
    *,
    cross_section: Mapping[str, float],
    b_factor: Mapping[str, float],
    voxel_size: float,
    shape: tuple[int, int, int],
    extra_b: float = 0.0,
    blur: tuple[float, float] = (0.0, 0.0),
    noise: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Density of known atoms, blurred anisotropically, with Gaussian noise.

    Parameters
    ----------
    positions : array_like of shape (n, 3)
        ``x, y, z`` [Å]; sites of species ``"vac"`` are skipped.
    species : array_like of str, shape (n,)
    cross_section, b_factor : mapping of str to float
        Per-species weight [Å²] and B-factor [Å²].
    voxel_size : float
        [Å].
    shape : tuple of int
        ``(nz, ny, nx)``; voxel rule of :mod:`hpcaet.geometry`.
    extra_b : float, default 0
        Added to every B-factor [Å²] (e.g. :func:`probe_b_factor`).
    blur : (float, float), default (0, 0)
        Extra Gaussian blur ``(sigma_z, sigma_xy)`` [Å], e.g. a longer one along z for
        the elongation of a limited tilt range.
    noise : float, default 0
        Standard deviation of the added white noise, as a fraction of the maximum.
    rng : numpy.random.Generator or int or None
        Source of the noise.

    Returns
    -------
    ndarray of shape (nz, ny, nx)
        Density [1/Å].
    """
    r, w, b = _atoms(positions, species, cross_section, b_factor, extra_b)
    vol = render_volume(r, w, b, shape=shape, voxel_size=voxel_size)
    sz, sxy = blur
    if sz < 0 or sxy < 0 or noise < 0:
        raise InputError(f"blur and noise must be >= 0; got blur={blur}, noise={noise}.")
    if sz > 0 or sxy > 0:
        vol = ndimage.gaussian_filter(vol, (sz / voxel_size, sxy / voxel_size, sxy / voxel_size))
    if noise > 0:
        vol = vol + np.random.default_rng(rng).normal(0.0, noise * vol.max(), vol.shape)
    return vol


def ideal_images(
    positions: ArrayLike,
    species: ArrayLike,
    euler: ArrayLike,
    *,
    cross_section: Mapping[str, float],
    b_factor: Mapping[str, float],
    shape: tuple[int, int],
    pixel_size: float,
    dose: float,
    extra_b: float = 0.0,
    read_noise: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Noisy images [counts] of known atoms at known angles.

    Parameters
    ----------
    positions, species, cross_section, b_factor, extra_b
        As in :func:`ideal_volume`.
    euler : array_like of shape (m, 3)
        Euler angles [deg], convention of :mod:`hpcaet.geometry`.
    shape : tuple of int
        ``(ny, nx)`` [pixels].
    pixel_size : float
        [Å].
    dose : float
        Dose per image [e/Å²]: the expected counts are ``dose * pixel_size**2`` times the
        dimensionless model image.
    read_noise : float, default 0
        Gaussian noise per pixel [counts] added to the Poisson counts.
    rng : numpy.random.Generator or int or None

    Returns
    -------
    ndarray of shape (m, ny, nx)
        Counts (Poisson, plus read noise).
    """
    if not dose > 0:
        raise InputError(f"dose must be a positive number of e/Å² per image; got {dose!r}.")
    r, w, b = _atoms(positions, species, cross_section, b_factor, extra_b)
    clean = project_atoms(r, w, b, euler, shape=shape, pixel_size=pixel_size)
    expected = dose * pixel_size**2 * clean
    rng = np.random.default_rng(rng)
    return rng.poisson(expected) + rng.normal(0.0, read_noise, expected.shape)


def ideal_inputs(
    truth: xr.Dataset,
    euler: ArrayLike,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    dose: float,
    b_factor: Mapping[str, float],
    extra_b: float = 0.0,
    read_noise: float = 0.0,
    blur: tuple[float, float] = (0.5, 0.1),
    noise: float = 0.02,
    rng: np.random.Generator | int | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """The Volume and processed TiltSeries a perfect upstream chain would give.

    Parameters
    ----------
    truth : xarray.Dataset
        AtomModel with ``cross_section`` (e.g. ``truth_atoms.nc`` of the simulate stage).
    euler : array_like of shape (m, 3)
        Angles of the images [deg] (also stored as the calibrated angles).
    shape : tuple of int
        ``(ny, nx)`` of the images; the volume has the same y and x grid, and enough z
        slices for the sheet plus 4 Å each side.
    pixel_size : float
        Pixel and voxel size [Å].
    dose : float
        Dose per image [e/Å²].
    b_factor : mapping of str to float
        B-factor of each species [Å²] (``truth``'s own per-atom values are not used, so
        that e.g. the probe can be added by ``extra_b``).
    extra_b, read_noise, blur, noise
        As in :func:`ideal_images` and :func:`ideal_volume`.
    rng : numpy.random.Generator or int or None

    Returns
    -------
    volume : xarray.Dataset
        Volume (algorithm ``"ideal"``).
    series : xarray.Dataset
        TiltSeries with ``images`` [counts] and ``euler``; ``dose`` is the total.
    """
    rng = np.random.default_rng(rng)
    pos = truth["position"].values
    species = truth["species"].values.astype(str)
    cross = dict(
        zip(
            truth["element"].values.astype(str), truth["cross_section"].values.tolist(), strict=True
        )
    )
    angles = np.asarray(euler, dtype=float).reshape(-1, 3)
    images = ideal_images(
        pos,
        species,
        angles,
        cross_section=cross,
        b_factor=b_factor,
        shape=shape,
        pixel_size=pixel_size,
        dose=dose,
        extra_b=extra_b,
        read_noise=read_noise,
        rng=rng,
    )
    nz = 2 * int(np.ceil((np.abs(pos[:, 2]).max() + 4.0) / pixel_size)) + 1
    density = ideal_volume(
        pos,
        species,
        cross_section=cross,
        b_factor=b_factor,
        voxel_size=pixel_size,
        shape=(nz, *shape),
        extra_b=extra_b,
        blur=blur,
        noise=noise,
        rng=rng,
    )
    volume = make_volume(density.astype(np.float32), voxel_size=pixel_size, algorithm="ideal")
    series = make_tilt_series(
        images=images.astype(np.float32),
        euler=angles,
        pixel_size=pixel_size,
        dose=dose * len(angles),
    )
    return volume, series
