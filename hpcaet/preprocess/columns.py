"""Atomic columns of an ADF image: peaks, 2D Gaussian fits, and which ones are metals.

:func:`find_peaks` takes the local maxima of a lightly smoothed image;
:func:`fit_gaussians` refines every peak with an isotropic 2D Gaussian plus a constant
(all peaks at once, a batched Levenberg–Marquardt on small circular patches);
:func:`select_metals` keeps the metal (Mo/W) columns of a honeycomb lattice: each
metal is brighter than every column near it (in 2H-MX2 those are the chalcogen pairs,
Mo 0.056 vs S2 0.025 Å², W 0.109 vs Se2 0.080 Å²; Se sits only between W atoms), while
each chalcogen column is fainter than its metal neighbours. The rule is local, so it
holds on both sides of a lateral interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.geometry import position_to_pixel, project_points
from hpcaet.preprocess._validate import _check_image
from hpcaet.preprocess.lattice import (
    LatticeModel,
    bright_columns,
    ideal_monolayer,
    reference_image,
)

__all__ = [
    "GaussianFit",
    "find_peaks",
    "fit_gaussians",
    "select_metals",
    "find_metal_columns",
    "column_bias",
]


@dataclass(frozen=True)
class GaussianFit:
    """Isotropic 2D Gaussians fitted to columns.

    Attributes
    ----------
    position : ndarray of shape (n, 2)
        Centres ``(row, col)`` [pixel].
    amplitude : ndarray of shape (n,)
        Peak heights above the local constant [image units].
    sigma : ndarray of shape (n,)
        Standard deviations [pixel].
    offset : ndarray of shape (n,)
        Local constants [image units].
    ok : ndarray of bool, shape (n,)
        Converged inside its patch with a positive amplitude and a sensible width.
    """

    position: np.ndarray
    amplitude: np.ndarray
    sigma: np.ndarray
    offset: np.ndarray
    ok: np.ndarray

    @property
    def intensity(self) -> np.ndarray:
        """Integrated intensity ``2 pi amplitude sigma²`` [image units × pixel²]."""
        return 2 * np.pi * self.amplitude * self.sigma**2


_DIAG = np.arange(5)
_NO_COLUMNS = "it shows no atomic columns."


def find_peaks(
    image: ArrayLike, *, min_distance: float, smooth: float = 1.0, threshold: float = 0.1
) -> np.ndarray:
    """Local maxima of a smoothed image.

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        Background-subtracted image.
    min_distance : float
        Maxima closer than this are merged (the window of the maximum filter) [pixel].
    smooth : float, default 1.0
        Gaussian smoothing first [pixel].
    threshold : float, default 0.1
        Keep maxima above this fraction of the image's 99.5th percentile.

    Returns
    -------
    ndarray of shape (n, 2)
        Integer ``(row, col)`` of the maxima, at least ``min_distance / 2`` from the edge.
    """
    a = _check_image(image, if_zero=_NO_COLUMNS)
    smoothed = ndimage.gaussian_filter(a, smooth) if smooth > 0 else a
    size = max(3, int(round(min_distance)) | 1)
    peak = smoothed == ndimage.maximum_filter(smoothed, size=size, mode="nearest")
    level = threshold * float(np.percentile(smoothed, 99.5))
    peak &= smoothed > level
    edge = size // 2 + 1
    peak[:edge], peak[-edge:], peak[:, :edge], peak[:, -edge:] = False, False, False, False
    return np.argwhere(peak)


def fit_gaussians(
    image: ArrayLike, centres: ArrayLike, *, radius: float = 3.0, iterations: int = 20
) -> GaussianFit:
    """Fit an isotropic 2D Gaussian plus a constant around each centre.

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        Image [any units].
    centres : array_like of shape (n, 2)
        Starting ``(row, col)`` [pixel]; the patch is the disc of ``radius`` around
        the nearest pixel.
    radius : float, default 3.0
        Patch radius [pixel].
    iterations : int, default 20
        Levenberg–Marquardt steps (all fits advance together).

    Returns
    -------
    GaussianFit
    """
    a = _check_image(image, if_zero=_NO_COLUMNS)
    c = np.asarray(centres, dtype=float).reshape(-1, 2)
    n = len(c)
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = dy**2 + dx**2 <= radius**2
    dy, dx = dy[disc].astype(float), dx[disc].astype(float)
    base = np.round(c).astype(int)
    rows = np.clip(base[:, 0:1] + dy.astype(int), 0, a.shape[0] - 1)
    cols = np.clip(base[:, 1:2] + dx.astype(int), 0, a.shape[1] - 1)
    data = a[rows, cols]  # (n, k)
    y = rows - base[:, 0:1]  # pixel coordinates relative to the base pixel
    x = cols - base[:, 1:2]
    # parameters: amplitude, y0, x0, sigma, offset
    low = data.min(axis=1)
    p = np.column_stack(
        [
            data.max(axis=1) - low,
            c[:, 0] - base[:, 0],
            c[:, 1] - base[:, 1],
            np.full(n, radius / 2),
            low,
        ]
    )
    lam = np.full(n, 1e-2)

    def model(p):
        g = np.exp(-((y - p[:, 1:2]) ** 2 + (x - p[:, 2:3]) ** 2) / (2 * p[:, 3:4] ** 2))
        return p[:, 0:1] * g + p[:, 4:5], g

    pred, g = model(p)
    cost = ((pred - data) ** 2).sum(axis=1)
    for _ in range(int(iterations)):
        s2 = p[:, 3:4] ** 2
        ry, rx = y - p[:, 1:2], x - p[:, 2:3]
        amp_g = p[:, 0:1] * g
        jac = np.stack(
            [
                g,
                amp_g * ry / s2,
                amp_g * rx / s2,
                amp_g * (ry**2 + rx**2) / (s2 * p[:, 3:4]),
                np.ones_like(g),
            ],
            axis=-1,
        )
        jtj = np.einsum("nki,nkj->nij", jac, jac)
        jtr = np.einsum("nki,nk->ni", jac, data - pred)
        damped = jtj.copy()
        damped[:, _DIAG, _DIAG] = damped[:, _DIAG, _DIAG] * (1 + lam[:, None]) + 1e-12
        step = np.linalg.solve(damped, jtr[..., None])[..., 0]
        trial = p + step
        trial[:, 3] = np.abs(trial[:, 3]) + 1e-6
        tpred, tg = model(trial)
        tcost = ((tpred - data) ** 2).sum(axis=1)
        better = tcost < cost
        p[better], pred[better], g[better], cost[better] = (
            trial[better],
            tpred[better],
            tg[better],
            tcost[better],
        )
        lam = np.where(better, lam / 3, lam * 4)
    position = base + p[:, 1:3]
    ok = (
        (p[:, 0] > 0)
        & (np.abs(p[:, 1]) <= radius)
        & (np.abs(p[:, 2]) <= radius)
        & (p[:, 3] > 0.3)
        & (p[:, 3] < 2 * radius)
    )
    return GaussianFit(position=position, amplitude=p[:, 0], sigma=p[:, 3], offset=p[:, 4], ok=ok)


def select_metals(
    positions: ArrayLike, intensity: ArrayLike, *, bond: float, reach: float = 1.3
) -> np.ndarray:
    """Which columns of a projected 2H-MX2 honeycomb are metals.

    The columns within ``reach * bond`` of a metal are chalcogen columns (or, at
    high tilt, the split top and bottom chalcogens), all fainter than it; columns of
    the metal's own sublattice are at least ``0.8 a`` away even at 35° tilt, outside
    that reach. So a column is a metal when it is brighter than every column within
    reach, including when none is visible (the chalcogens fade at high tilt).

    Parameters
    ----------
    positions : array_like of shape (n, 2)
        Column centres [pixel].
    intensity : array_like of shape (n,)
        A brightness of each column (e.g. the smoothed image at its peak).
    bond : float
        Metal–chalcogen distance in projection at zero tilt, ``a / sqrt(3)`` [pixel].
    reach : float, default 1.3
        Neighbourhood radius [bond lengths].

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    val = np.asarray(intensity, dtype=float)
    brightest = val.copy()
    if len(pos) > 1:
        pairs = cKDTree(pos).query_pairs(reach * bond, output_type="ndarray")
        brightest = np.full(len(pos), -np.inf)
        np.maximum.at(brightest, pairs[:, 0], val[pairs[:, 1]])
        np.maximum.at(brightest, pairs[:, 1], val[pairs[:, 0]])
    return val > brightest


def find_metal_columns(
    image: ArrayLike,
    *,
    lattice_constant: float,
    threshold: float = 0.1,
    radius: float | None = None,
) -> GaussianFit:
    """Metal columns of a background-subtracted lattice image, Gaussian-fitted.

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        Denoised, background-subtracted image.
    lattice_constant : float
        In-plane lattice constant [pixel].
    threshold : float, default 0.1
        As in :func:`find_peaks`.
    radius : float, optional
        Fit patch radius [pixel]; ``0.25 * lattice_constant`` when omitted.

    Returns
    -------
    GaussianFit
        Only the columns that are metals and whose fit converged.
    """
    bond = lattice_constant / np.sqrt(3)
    peaks = find_peaks(image, min_distance=0.5 * bond, threshold=threshold)
    smoothed = ndimage.gaussian_filter(np.asarray(image, float), 1.0)
    metal = select_metals(peaks, smoothed[tuple(peaks.T)], bond=bond)
    fit = fit_gaussians(image, peaks[metal], radius=radius or 0.25 * lattice_constant)
    keep = fit.ok
    return GaussianFit(
        *(getattr(fit, f)[keep] for f in ("position", "amplitude", "sigma", "offset", "ok"))
    )


def column_bias(
    model: LatticeModel,
    euler: ArrayLike,
    *,
    pixel_size: float,
    size: int = 96,
    threshold: float = 0.1,
    radius: float | None = None,
) -> np.ndarray:
    """Mean error of :func:`find_metal_columns` on an ideal lattice seen at ``euler``.

    A tilted honeycomb is not symmetric about its metal columns: the three
    chalcogen neighbours foreshorten unequally and their top and bottom atoms split,
    so their tails pull every fitted metal centre the same way, by up to a few tenths
    of a pixel. That shift moves the centre of mass of the metals, which the
    alignment relies on; it is measured here on the reference lattice image
    (:func:`hpcaet.preprocess.lattice.reference_image`) and subtracted.

    Parameters
    ----------
    model : LatticeModel
        The ideal monolayer.
    euler : array_like of shape (3,)
        Euler angles of the image [deg].
    pixel_size : float
        [Å].
    size : int, default 96
        Side of the reference image [pixel].
    threshold, radius
        As in :func:`find_metal_columns`.

    Returns
    -------
    ndarray of shape (2,)
        Mean ``fitted - true`` centre ``(row, col)`` [pixel].
    """
    ref = reference_image(model, euler, shape=(size, size), pixel_size=pixel_size)
    a = model.lattice_constant / pixel_size
    fit = find_metal_columns(ref, lattice_constant=a, threshold=threshold, radius=radius)
    positions, _, _, is_metal = ideal_monolayer(model, 0.75 * size * pixel_size / 0.5)
    centres = bright_columns(model, positions, is_metal)  # metals (and MoSe2's Se2 columns)
    true = position_to_pixel(project_points(centres, euler), (size, size), pixel_size)
    distance, index = cKDTree(true).query(fit.position)
    good = distance < 0.25 * a
    if good.sum() < 5:
        raise InputError(
            f"only {int(good.sum())} metal columns were found on the reference lattice at "
            f"{np.asarray(euler).tolist()} deg; check the lattice model and pixel size."
        )
    return (fit.position[good] - true[index[good]]).mean(axis=0)
