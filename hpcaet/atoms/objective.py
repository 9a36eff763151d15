"""The misfit between measured images and the linear model, image by image.

The pieces the refinement (:mod:`hpcaet.atoms.refine`) is made of, each a pure
function of numpy arrays: the support of the fit (:func:`support_mask`), the pixel
weights (:func:`pixel_weights`), the closed-form per-image scale and offset
(:func:`fit_scale_offset`), the loss and gradients of a chunk of images
(:func:`chunk_objective`, one Dask task) and the R factors (:func:`r_factors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from hpcaet.atoms.blur import blur_images, blur_images_adjoint
from hpcaet.forward import project_atoms, project_atoms_vjp
from hpcaet.geometry import euler_to_matrix, pixel_to_position

__all__ = [
    "ImageChunk",
    "ChunkTerms",
    "support_mask",
    "footprint_mask",
    "pixel_weights",
    "split_images",
    "fit_scale_offset",
    "chunk_objective",
    "r_factors",
    "r_sums",
]


class ImageChunk(NamedTuple):
    """A group of images that one task fits: data, angles and support masks.

    Attributes
    ----------
    index : ndarray of int, shape (k,)
        Image numbers in the full series.
    images : ndarray of shape (k, ny, nx)
        Measured images [counts].
    euler : ndarray of shape (k, 3)
        Calibrated Euler angles [deg].
    weight : ndarray of shape (k, ny, nx)
        Weight of each pixel in the loss (the inverse noise variance [1/counts²]);
        zero outside the support.
    kernels : tuple of k ndarrays (odd size) or None, or None
        Blur of each calculated image (:func:`~hpcaet.atoms.blur.blur_images`), e.g.
        the vibration kernel of images that were not deconvolved; None for none.
    """

    index: np.ndarray
    images: np.ndarray
    euler: np.ndarray
    weight: np.ndarray
    kernels: tuple | None = None


class ChunkTerms(NamedTuple):
    """Loss, gradients and R-factor sums of one chunk (output of :func:`chunk_objective`).

    Attributes
    ----------
    loss : float
        ``0.5 * sum(residual**2)`` over the support [counts²].
    d_positions : ndarray of shape (n, 3)
    d_weights, d_b_factors : ndarray of shape (n,)
        Per-atom gradients of ``loss``.
    d_shifts : ndarray of shape (k, 2)
        Gradient with respect to each image's shift ``(x, y)`` [counts²/Å].
    scale, offset : ndarray of shape (k,)
        Fitted scale [counts] and offset [counts] of each image.
    abs_residual, abs_measured : float
        ``sum |residual|`` and ``sum |measured|`` over the support (R1 sums).
    """

    loss: float
    d_positions: np.ndarray
    d_weights: np.ndarray
    d_b_factors: np.ndarray
    d_shifts: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    abs_residual: float
    abs_measured: float


def support_mask(
    position: ArrayLike,
    euler: ArrayLike,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    margin: float = 3.0,
    shifts: ArrayLike | None = None,
) -> np.ndarray:
    """Pixels within about ``margin`` of any projected site, per image.

    Parameters
    ----------
    position : array_like of shape (n, 3)
        Sites [Å] (vacancy sites included: their pixels matter for flipping).
    euler : array_like of shape (m, 3)
        Euler angles [deg].
    shape : tuple of int
        ``(ny, nx)``.
    pixel_size : float
        [Å].
    margin : float, default 3.0
        Distance from the nearest projected site [Å].
    shifts : array_like of shape (m, 2), optional
        Per-image shifts ``(x, y)`` [Å].

    Returns
    -------
    ndarray of bool, shape (m, ny, nx)
    """
    sigma = margin / 2.0
    b = 8.0 * np.pi**2 * sigma**2
    cover = project_atoms(
        position, 1.0, b, euler, shape=shape, pixel_size=pixel_size, offsets=shifts, cutoff=2.5
    )
    level = np.exp(-0.5 * (margin / sigma) ** 2) / (2.0 * np.pi * sigma**2)
    return cover >= level


def footprint_mask(
    euler: ArrayLike,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    box: tuple[float, float, float, float],
    depth: float,
    shifts: ArrayLike | None = None,
) -> np.ndarray:
    """Pixels whose line of sight crosses the sheet inside an in-plane box, per image.

    The model holds only the atoms of the reconstructed volume, but a specimen that runs
    beyond the volume puts atoms into the images that the model does not have: a pixel
    whose ray meets the sheet (``|z| <= depth``) outside the box may see them. Only the
    pixels inside the box's footprint at every height are compared.

    Parameters
    ----------
    euler : array_like of shape (m, 3)
        Euler angles [deg].
    shape : tuple of int
        ``(ny, nx)``.
    pixel_size : float
        [Å].
    box : tuple of float
        ``(x0, x1, y0, y1)`` [Å] in the sample frame.
    depth : float
        Half thickness of the sheet's slab [Å].
    shifts : array_like of shape (m, 2), optional
        Per-image shifts ``(x, y)`` [Å] of the projections.

    Returns
    -------
    ndarray of bool, shape (m, ny, nx)
    """
    rotations = euler_to_matrix(np.atleast_2d(np.asarray(euler, float)))
    m = len(rotations)
    t = np.zeros((m, 2)) if shifts is None else np.asarray(shifts, float).reshape(m, 2)
    ny, nx = shape
    rows, cols = np.mgrid[0:ny, 0:nx]
    xy = pixel_to_position(np.stack([rows, cols], -1).astype(float), shape, pixel_size)
    x0, x1, y0, y1 = box
    out = np.zeros((m, ny, nx), dtype=bool)
    for j, R in enumerate(rotations):
        u, v = xy[..., 0] - t[j, 0], xy[..., 1] - t[j, 1]
        if abs(R[2, 2]) < 1e-6:
            continue
        # the ray R^T (u, v, s); its height R[0,2] u + R[1,2] v + R[2,2] s
        a = R[0, 2] * u + R[1, 2] * v
        inside = np.ones((ny, nx), dtype=bool)
        for s in ((depth - a) / R[2, 2], (-depth - a) / R[2, 2]):
            px = R[0, 0] * u + R[1, 0] * v + R[2, 0] * s
            py = R[0, 1] * u + R[1, 1] * v + R[2, 1] * s
            inside &= (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
        out[j] = inside
    return out


def split_images(
    images: np.ndarray,
    euler: np.ndarray,
    weight: np.ndarray,
    *,
    chunk: int,
    kernels: Sequence[np.ndarray | None] | None = None,
) -> list[ImageChunk]:
    """Split a series (and its per-image blur kernels) into chunks of at most ``chunk``."""
    m = len(images)
    chunk = max(1, int(chunk))
    return [
        ImageChunk(
            np.arange(a, min(a + chunk, m)),
            images[a : a + chunk],
            euler[a : a + chunk],
            weight[a : a + chunk],
            None if kernels is None else tuple(kernels[a : a + chunk]),
        )
        for a in range(0, m, chunk)
    ]


def fit_scale_offset(
    model: np.ndarray, measured: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image weighted least-squares ``scale * model + offset ≈ measured``.

    Parameters
    ----------
    model, measured : ndarray of shape (k, ny, nx)
    weight : ndarray of shape (k, ny, nx)
        Non-negative pixel weights (a boolean mask works too).

    Returns
    -------
    scale, offset : ndarray of shape (k,)
        The scale is kept positive (a model with no signal gets scale 0).
    """
    w = np.asarray(weight, dtype=float)
    n = w.sum(axis=(1, 2))
    sm = (w * model).sum(axis=(1, 2))
    smm = (w * model**2).sum(axis=(1, 2))
    si = (w * measured).sum(axis=(1, 2))
    smi = (w * model * measured).sum(axis=(1, 2))
    det = n * smm - sm**2
    ok = det > 1e-12 * np.maximum(n * smm, 1e-300)
    scale = np.where(ok, (n * smi - sm * si) / np.where(ok, det, 1.0), 0.0)
    scale = np.maximum(scale, 0.0)
    offset = (si - scale * sm) / np.where(n > 0, n, 1.0)
    return scale, offset


def chunk_objective(
    chunk: ImageChunk,
    *,
    position: np.ndarray,
    weight: np.ndarray,
    b_factor: np.ndarray,
    shifts: np.ndarray,
    pixel_size: float,
) -> ChunkTerms:
    """Loss and gradients of one chunk of images (a pure function: one Dask task).

    Parameters
    ----------
    chunk : ImageChunk
    position : ndarray of shape (n, 3)
        Atom positions [Å].
    weight, b_factor : ndarray of shape (n,)
        Per-atom cross-sections [Å²] and B-factors [Å²].
    shifts : ndarray of shape (m, 2)
        Shifts of *all* images of the series [Å]; the chunk takes its own rows.
    pixel_size : float
        [Å].

    Returns
    -------
    ChunkTerms
    """
    own = shifts[chunk.index]
    shape = chunk.images.shape[1:]
    model = project_atoms(
        position, weight, b_factor, chunk.euler, shape=shape, pixel_size=pixel_size, offsets=own
    )
    model = blur_images(model, chunk.kernels)
    scale, offset = fit_scale_offset(model, chunk.images, chunk.weight)
    mask = chunk.weight > 0
    residual = np.where(
        mask, scale[:, None, None] * model + offset[:, None, None] - chunk.images, 0.0
    )
    weighted = chunk.weight * residual
    grads = project_atoms_vjp(
        blur_images_adjoint(scale[:, None, None] * weighted, chunk.kernels),
        position,
        weight,
        b_factor,
        chunk.euler,
        pixel_size=pixel_size,
        offsets=own,
    )
    return ChunkTerms(
        loss=0.5 * float(np.vdot(residual, weighted)),
        d_positions=grads.positions,
        d_weights=grads.weights,
        d_b_factors=grads.b_factors,
        d_shifts=grads.offsets,
        scale=scale,
        offset=offset,
        abs_residual=float(np.abs(residual).sum()),
        abs_measured=float(np.abs(np.where(mask, chunk.images, 0.0)).sum()),
    )


def r_factors(measured: ArrayLike, calculated: ArrayLike, mask: ArrayLike) -> tuple[float, float]:
    """R1 (real space) and R (Fourier magnitudes) over a support.

    Parameters
    ----------
    measured, calculated : array_like of shape (m, ny, nx)
        Images in the same units.
    mask : array_like of bool, shape (m, ny, nx)
        Support; pixels outside are set to zero before the Fourier transforms.

    Returns
    -------
    R1, R : float
        See the module docstring.
    """
    s = r_sums(np.asarray(measured, float), np.asarray(calculated, float), np.asarray(mask))
    return float(s[0] / max(s[1], 1e-300)), float(s[2] / max(s[3], 1e-300))


def pixel_weights(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverse noise variance of each pixel of the support, normalised to mean 1.

    The variance is the counts smoothed over about a pixel (the expected counting
    noise) plus the variance of the pixels outside the support (detector noise and
    residual background); where there is no such vacuum, one count squared.

    Parameters
    ----------
    images : ndarray of shape (m, ny, nx)
        Measured images [counts].
    mask : ndarray of bool, shape (m, ny, nx)
        Support.

    Returns
    -------
    ndarray of shape (m, ny, nx)
        Zero outside the support.
    """
    smooth = ndimage.gaussian_filter(images, (0, 1.0, 1.0))
    vacuum = images[~mask]
    floor = float(np.var(vacuum)) if vacuum.size > 100 else 1.0
    floor = max(floor, 1e-6 * max(float(np.abs(images).max()), 1e-300))
    w = np.where(mask, 1.0 / (np.maximum(smooth, 0.0) + floor), 0.0)
    return w / max(float(w[mask].mean()), 1e-300) if mask.any() else w


def r_sums(measured: np.ndarray, calculated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The four sums of the R factors: ``sum |m - c|``, ``sum |m|``, ``sum ||M| - |C||``
    and ``sum |M|`` over the support (``M``, ``C`` their 2D Fourier transforms)."""
    meas = np.where(mask, measured, 0.0)
    calc = np.where(mask, calculated, 0.0)
    f_meas = np.abs(np.fft.rfft2(meas))
    f_calc = np.abs(np.fft.rfft2(calc))
    return np.array(
        [np.abs(meas - calc).sum(), np.abs(meas).sum(), np.abs(f_meas - f_calc).sum(), f_meas.sum()]
    )
