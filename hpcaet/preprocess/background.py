"""Smooth background of an ADF image from the empty centres of the lattice's hexagons.

In projection a MoS2 or WSe2 monolayer is a honeycomb of metal and chalcogen columns
whose hexagon centres hold no atom, so the image there is the background (plus the
far tails of the six neighbouring columns). :func:`estimate_background` takes the local
minimum of every hexagon (the minima of a lightly smoothed image, at most one per
window of about ``0.6 a``; in vacuum, where there is no lattice, such minima sample the
background directly), and interpolates that sparse map with a thin-plate-spline radial
basis function (:class:`scipy.interpolate.RBFInterpolator`), evaluated on a coarse grid
and spline-interpolated to every pixel since the background is smooth.

Where the field also shows vacuum (regions without lattice contrast, e.g. around a flake),
the local mean there *is* the background; the background is then a low-order weighted
least-squares polynomial through the vacuum means and the tail-corrected minima, with
the tail fraction chosen by the fit (the default, see :func:`estimate_background`).

References
----------
Tian et al., Methods, "Drift correction, denoising and background subtraction".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
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
        ``(row, col)`` of the samples used [pixel]: the vacuum samples first (if any),
        then the hexagon minima.
    values : ndarray of shape (n,)
        Background sample at each point [image units]: the local mean in vacuum, the
        tail-corrected minimum on the lattice.
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
    vacuum: float = 0.5,
    vacuum_weight: float = 1.0,
    hexagon_weight: float = 1.0,
    degree: int = 3,
    fit_hollow: bool = True,
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
    vacuum : float, default 0.5
        Vacuum detection: pixels whose local standard deviation (over ``window``
        lattice constants) is below ``vacuum`` times its 90th percentile, eroded by 3
        pixels, hold no lattice, and their local mean is the background itself. When
        at least 20 such samples (one every ``grid_step`` pixels) are found, the
        background is a weighted least-squares polynomial of total ``degree`` through
        the vacuum means and the tail-corrected hexagon minima instead of the RBF.
        0 turns the vacuum samples off (the RBF of the minima alone).
    vacuum_weight, hexagon_weight : float, default 1.0 and 1.0
        Least-squares weights of one vacuum sample and one tail-corrected hexagon
        minimum.
    degree : int, default 3
        Total degree of the Legendre polynomial surface of the vacuum-aware fit.
    fit_hollow : bool, default True
        In the vacuum-aware fit, choose the tail fraction itself (0 to 0.78, step
        0.02) by least squares instead of using ``hollow``: the vacuum samples pin
        the background, so the minima tell how much tail they carry (the local ripple
        tilt changes it from the flat-lattice value).

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
    step = max(1, int(grid_step))
    if vacuum > 0:
        vac = _vacuum_samples(a, local, size, vacuum, step)
        if len(vac) >= 20:
            weights = np.concatenate(
                [np.full(len(vac), float(vacuum_weight)), np.full(len(values), hexagon_weight)]
            )
            best = None
            for rho in np.arange(0.0, 0.8, 0.02) if fit_hollow else [hollow]:
                vals = (minima - rho * local[at]) / (1.0 - rho)
                scale = (1.0 - rho) ** 2  # residuals in units of the minima
                surface, cost = _polynomial_surface(
                    np.vstack([vac, points]),
                    np.concatenate([local[tuple(vac.T)], vals]),
                    weights * np.concatenate([np.ones(len(vac)), np.full(len(vals), scale)]),
                    a.shape,
                    int(degree),
                )
                if best is None or cost < best[1]:
                    best = (surface, cost, vals, rho)
            surface, _, values, _ = best
            return BackgroundEstimate(
                background=surface,
                points=np.vstack([vac.astype(float), points]),
                values=np.concatenate([local[tuple(vac.T)], values]),
            )
    rbf = RBFInterpolator(
        points / spacing, values, kernel="thin_plate_spline", smoothing=float(smoothing)
    )
    ny, nx = a.shape
    gr = np.arange(0, ny + step, step, dtype=float)
    gc = np.arange(0, nx + step, step, dtype=float)
    grid = np.stack(np.meshgrid(gr, gc, indexing="ij"), -1).reshape(-1, 2) / spacing
    coarse = rbf(grid).reshape(len(gr), len(gc))
    rows, cols = np.mgrid[0:ny, 0:nx].astype(float)
    background = ndimage.map_coordinates(
        coarse, [rows / step, cols / step], order=3, mode="nearest"
    )
    return BackgroundEstimate(background=background, points=points, values=values)


def _vacuum_samples(image, local, size, fraction, step) -> np.ndarray:
    """``(row, col)`` every ``step`` pixels of the regions without lattice contrast."""
    var = ndimage.uniform_filter(image**2, size=size, mode="nearest") - local**2
    sd = np.sqrt(np.maximum(var, 0.0))
    mask = ndimage.binary_erosion(sd < fraction * np.percentile(sd, 90), iterations=3)
    rows, cols = np.nonzero(mask[::step, ::step])
    return np.column_stack([rows * step, cols * step])


def _polynomial_surface(points, values, weights, shape, degree) -> np.ndarray:
    """Weighted least-squares Legendre polynomial of total ``degree`` on the image."""
    ny, nx = shape

    def design(r, c):
        u = legendre.legvander(2 * r / max(ny - 1, 1) - 1, degree)
        v = legendre.legvander(2 * c / max(nx - 1, 1) - 1, degree)
        return np.column_stack(
            [u[:, i] * v[:, k] for i in range(degree + 1) for k in range(degree + 1 - i)]
        )

    w = np.sqrt(np.asarray(weights, float))
    a = design(*points.T) * w[:, None]
    coef, *_ = np.linalg.lstsq(a, values * w, rcond=None)
    cost = float(np.sum((a @ coef - values * w) ** 2))
    rows, cols = np.mgrid[0:ny, 0:nx].astype(float)
    return (design(rows.ravel(), cols.ravel()) @ coef).reshape(ny, nx), cost
