"""Smooth background of an ADF image from the empty centres of the lattice's hexagons.

In projection a MoS2 or WSe2 monolayer is a honeycomb of metal and chalcogen columns
whose hexagon centres hold no atom, so the image there is the background (plus the
far tails of the six neighbouring columns). :func:`estimate_background` takes the local
minimum of every hexagon (the minima of a lightly smoothed image, at most one per
window of about ``0.6 a``; in vacuum, where there is no lattice, such minima sample the
background directly), and interpolates that sparse map with a thin-plate-spline radial
basis function (:class:`scipy.interpolate.RBFInterpolator`), evaluated on a coarse grid
and spline-interpolated to every pixel since the background is smooth.

References
----------
Tian et al., Methods, "Drift correction, denoising and background subtraction".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.interpolate import RBFInterpolator

from hpcaet.errors import InputError
from hpcaet.preprocess._validate import _check_image

__all__ = ["BackgroundEstimate", "estimate_background", "hexagon_minima", "hollow_fraction"]


@dataclass(frozen=True)
class BackgroundEstimate:
    """Result of :func:`estimate_background`.

    Attributes
    ----------
    background : ndarray of shape (ny, nx)
        Interpolated background [image units].
    points : ndarray of shape (n, 2)
        ``(row, col)`` of the local minima used [pixel].
    values : ndarray of shape (n,)
        Image value at each minimum [image units].
    """

    background: np.ndarray
    points: np.ndarray
    values: np.ndarray


def hexagon_minima(
    image: ArrayLike, *, spacing: float, smooth: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Local minima of an image, at most one per ``0.6 * spacing`` window.

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        Image [any units].
    spacing : float
        Distance between hexagon centres, the lattice constant [pixel].
    smooth : float, default 0.5
        Gaussian smoothing applied first [pixel].

    Returns
    -------
    points : ndarray of shape (n, 2)
        ``(row, col)`` of the minima [pixel].
    values : ndarray of shape (n,)
        Smoothed image at the minima.
    """
    a = np.asarray(image, dtype=float)
    if not spacing > 2:
        raise InputError(f"spacing must exceed 2 pixels; got {spacing!r}.")
    smoothed = ndimage.gaussian_filter(a, smooth, mode="nearest") if smooth > 0 else a
    size = max(3, int(round(0.6 * spacing)) | 1)
    low = ndimage.minimum_filter(smoothed, size=size, mode="nearest")
    half = size // 2
    mask = smoothed == low
    mask[:half], mask[-half:], mask[:, :half], mask[:, -half:] = False, False, False, False
    rows, cols = np.nonzero(mask)
    return np.column_stack([rows, cols]).astype(float), smoothed[rows, cols]


def hollow_fraction(reference: ArrayLike, *, spacing: float, smooth: float = 0.5) -> float:
    """Signal at the hexagon minima of a background-free lattice image, per mean signal.

    Parameters
    ----------
    reference : array_like of shape (ny, nx)
        Image of an ideal lattice filling the field, without background (e.g.
        :func:`hpcaet.preprocess.lattice.reference_image` at the image's angles).
    spacing, smooth
        As in :func:`hexagon_minima`.

    Returns
    -------
    float
        ``rho = median(minima) / mean(reference)``, in [0, 1).
    """
    ref = np.asarray(reference, dtype=float)
    _, values = hexagon_minima(ref, spacing=spacing, smooth=smooth)
    mean = float(ref.mean())
    if not mean > 0 or len(values) == 0:
        raise InputError("the reference lattice image is empty; check the lattice model.")
    return float(np.clip(np.median(values) / mean, 0.0, 0.95))


def estimate_background(
    image: ArrayLike,
    *,
    spacing: float,
    hollow: float = 0.0,
    smooth: float = 0.5,
    window: float = 1.5,
    smoothing: float = 1.0,
    grid_step: int = 4,
) -> BackgroundEstimate:
    """Background of an image from the minima of its lattice hexagons.

    A minimum at ``x`` holds the background ``B(x)`` plus the tails of the
    neighbouring columns, a fraction ``hollow`` of the local mean specimen signal:
    ``h = B + hollow * (L - B)`` with ``L`` the local mean of the image over
    ``window`` lattice constants, so ``B = (h - hollow * L) / (1 - hollow)``. With
    ``hollow = 0`` this is the plain local-minimum map of the paper.

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        Denoised image [counts].
    spacing : float
        Lattice constant (distance between hexagon centres) [pixel], e.g.
        ``3.16 Å / pixel_size`` for MoS2.
    hollow : float, default 0
        Fraction of the mean specimen signal found at the hexagon minima, from
        :func:`hollow_fraction` of a reference lattice image at the same angles.
    smooth : float, default 0.5
        Gaussian smoothing before the minima are taken [pixel].
    window : float, default 1.5
        Width of the local mean [lattice constants].
    smoothing : float, default 1.0
        Smoothing of the thin-plate-spline RBF (scipy's ``smoothing``, with the
        points in units of ``spacing``); 0 interpolates the minima exactly.
    grid_step : int, default 4
        The RBF is evaluated every ``grid_step`` pixels and interpolated between.

    Returns
    -------
    BackgroundEstimate

    Raises
    ------
    InputError
        Not a 2D finite image, an all-zero image, or too few minima to interpolate.
    """
    a = _check_image(image, if_zero="there is no background to estimate.")
    if not 0 <= hollow < 1:
        raise InputError(f"hollow must be a fraction in [0, 1); got {hollow!r}.")
    points, minima = hexagon_minima(a, spacing=spacing, smooth=smooth)
    if len(points) < 10:
        raise InputError(
            f"found only {len(points)} local minima with a lattice spacing of {spacing:.2f} "
            "px; expected one per hexagon. Check the pixel size and the lattice constant."
        )
    size = max(3, int(round(window * spacing)))
    local = ndimage.uniform_filter(a, size=size, mode="nearest")
    at = tuple(points.astype(int).T)
    values = (minima - hollow * local[at]) / (1.0 - hollow)
    rbf = RBFInterpolator(
        points / spacing, values, kernel="thin_plate_spline", smoothing=float(smoothing)
    )
    ny, nx = a.shape
    step = max(1, int(grid_step))
    gr = np.arange(0, ny + step, step, dtype=float)
    gc = np.arange(0, nx + step, step, dtype=float)
    grid = np.stack(np.meshgrid(gr, gc, indexing="ij"), -1).reshape(-1, 2) / spacing
    coarse = rbf(grid).reshape(len(gr), len(gc))
    rows, cols = np.mgrid[0:ny, 0:nx].astype(float)
    background = ndimage.map_coordinates(
        coarse, [rows / step, cols / step], order=3, mode="nearest"
    )
    return BackgroundEstimate(background=background, points=points, values=values)
