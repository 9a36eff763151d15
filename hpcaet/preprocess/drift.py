"""Drift and scan-distortion correction of the frames of one tilt.

Every frame of a tilt is a raster scan taken while the specimen drifts at a constant
velocity ``v = (vx, vy)`` [pixel / frame]. With time in frames, pixel ``(row, col)`` of
frame ``f`` is taken at ``t = f + (row + col / nx) / ny`` and shows the specimen at
``(col, row) - v t``: frame ``f`` is frame 0 translated by ``v f``, and within a frame
the drift is spread along the slow-scan direction (a shear, the scan distortion).

:func:`estimate_drift` registers the frames to the first one with sub-pixel
cross-correlation (:func:`~hpcaet.preprocess.registration.register_translation`) and
fits the linear trajectory ``shift_f = v f``; :func:`correct_frames` then resamples each
frame at the pixel positions where the specimen's ``t = 0`` grid was seen, which removes
drift and scan distortion together, and sums the frames.

Registration runs in three passes: consecutive frames (small shifts, no lattice-period
ambiguity) give a first velocity; each frame registered to frame 0 within a small
radius of that prediction refines it; finally each frame is registered to the sum of
all other frames moved onto frame 0 (a reference with nine times the dose), and the
linear fit of those shifts is the result.

References
----------
Tian et al., Methods, "Drift correction, denoising and background subtraction"; the
scan-time model is that of :mod:`hpcaet.phantom.simulate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from hpcaet.errors import InputError
from hpcaet.preprocess.registration import register_translation

__all__ = ["DriftEstimate", "estimate_drift", "correct_frames", "scan_coordinates"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftEstimate:
    """Result of :func:`estimate_drift`.

    Attributes
    ----------
    velocity : ndarray of shape (2,)
        Drift ``(vx, vy)`` of the specimen [pixel / frame].
    measured : ndarray of shape (n_frame, 2)
        Registered shift of each frame relative to frame 0, ``(x, y)`` [pixel].
    drift : ndarray of shape (n_frame, 2)
        Fitted drift at the start of each frame, ``velocity * f`` [pixel].
    residual : float
        RMS of ``measured - drift`` [pixel], a check of the linear model.
    """

    velocity: np.ndarray
    measured: np.ndarray
    drift: np.ndarray
    residual: float


def estimate_drift(
    frames: ArrayLike,
    *,
    max_step: float = 3.0,
    lowpass: float = 1.0,
    upsample_factor: int = 50,
    refine: int = 2,
) -> DriftEstimate:
    """Linear drift of the specimen over the frames of one tilt.

    Parameters
    ----------
    frames : array_like of shape (n_frame, ny, nx)
        Raw frames [counts], in acquisition order.
    max_step : float, default 3.0
        Largest drift between consecutive frames [pixel]; bounds the first search.
    lowpass : float, default 1.0
        Gaussian low-pass of the cross-correlation [pixel], against counting noise.
    upsample_factor : int, default 50
        Sub-pixel refinement factor of the registration.
    refine : int, default 2
        Passes of registration against the sum of the other frames.

    Returns
    -------
    DriftEstimate

    Raises
    ------
    InputError
        Not a stack of at least two frames, or a frame without contrast.
    """
    stack = check_frames(frames)
    n = len(stack)
    options = dict(upsample_factor=upsample_factor, lowpass=lowpass)
    f = np.arange(n, dtype=float)
    # 1. consecutive frames: small shifts, so no ambiguity with the lattice period.
    steps = np.array(
        [
            register_translation(stack[k - 1], stack[k], search_radius=max_step, **options)
            for k in range(1, n)
        ]
    )
    measured = np.vstack([np.zeros(2), np.cumsum(steps, axis=0)])[:, ::-1]  # (x, y)
    velocity = _fit_velocity(f, measured)
    # 2. every frame against frame 0, near the predicted shift.
    radius = max(1.0, 0.25 * max_step)
    measured = np.array(
        [np.zeros(2)]
        + [
            register_translation(
                stack[0], stack[k], expected=(velocity * k)[::-1], search_radius=radius, **options
            )[::-1]
            for k in range(1, n)
        ]
    )
    velocity = _fit_velocity(f, measured)
    # 3. every frame against the sum of the others moved onto frame 0.
    for _ in range(int(refine)):
        moved = np.stack([_translate(stack[k], -velocity * k) for k in range(n)])
        total = moved.sum(axis=0)
        shifts = np.array(
            [
                register_translation(
                    total - moved[k],
                    stack[k],
                    expected=(velocity * k)[::-1],
                    search_radius=radius,
                    **options,
                )[::-1]
                for k in range(n)
            ]
        )
        # The reference sits where frame 0 is, up to a common offset: fit it too.
        design = np.column_stack([f, np.ones(n)])
        (velocity, offset), *_ = np.linalg.lstsq(design, shifts, rcond=None)
        measured = shifts - offset
    residual = float(np.sqrt(np.mean((measured - velocity[None, :] * f[:, None]) ** 2)))
    velocity = _true_velocity(velocity, stack.shape[1:])
    drift = velocity[None, :] * f[:, None]
    log.debug(
        "drift: velocity (%.3f, %.3f) px/frame, linear-fit residual %.3f px", *velocity, residual
    )
    return DriftEstimate(velocity=velocity, measured=measured, drift=drift, residual=residual)


def scan_coordinates(
    shape: tuple[int, int], frame: int, velocity: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Where in frame ``frame`` the specimen's ``t = 0`` pixel grid was seen.

    Solving ``col - vx t = X``, ``row - vy t = Y`` with
    ``t = frame + (row + col / nx) / ny`` for the frame pixel of every output pixel
    ``(Y, X)`` gives ``t = (frame + (Y + X / nx) / ny) / (1 - (vy + vx / nx) / ny)``.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` [pixel].
    frame : int
        Frame index (time origin at the start of frame 0).
    velocity : array_like of shape (2,)
        ``(vx, vy)`` [pixel / frame].

    Returns
    -------
    rows, cols : ndarray of shape (ny, nx)
        Fractional frame coordinates of each output pixel.
    """
    ny, nx = shape
    vx, vy = np.asarray(velocity, dtype=float)
    denom = 1.0 - (vy + vx / nx) / ny
    if denom <= 0:
        raise InputError(
            f"drift velocity {velocity!r} px/frame is faster than the scan; expected well "
            "under one image height per frame."
        )
    Y, X = np.mgrid[0:ny, 0:nx].astype(float)
    t = (frame + (Y + X / nx) / ny) / denom
    return Y + vy * t, X + vx * t


def correct_frames(frames: ArrayLike, velocity: ArrayLike, *, order: int = 3) -> np.ndarray:
    """Drift- and scan-distortion-corrected sum of the frames of one tilt.

    Each frame is resampled (cubic spline) at :func:`scan_coordinates`; a pixel seen
    by only some frames (near the edges, where the specimen drifted out of view) is
    scaled by ``n_frame / n_seen``, so the sum keeps the units of a full sum.

    Parameters
    ----------
    frames : array_like of shape (n_frame, ny, nx)
        Raw frames [counts].
    velocity : array_like of shape (2,)
        Drift ``(vx, vy)`` [pixel / frame], e.g. from :func:`estimate_drift`.
    order : int, default 3
        Spline order of the resampling.

    Returns
    -------
    ndarray of shape (ny, nx)
        Sum of the corrected frames [counts], in the frame of the specimen at ``t = 0``.
    """
    stack = check_frames(frames, minimum=1)
    n, ny, nx = stack.shape
    total = np.zeros((ny, nx))
    seen = np.zeros((ny, nx))
    for k in range(n):
        rows, cols = scan_coordinates((ny, nx), k, velocity)
        inside = (rows >= -0.5) & (rows <= ny - 0.5) & (cols >= -0.5) & (cols <= nx - 0.5)
        values = ndimage.map_coordinates(stack[k], [rows, cols], order=order, mode="nearest")
        total += np.where(inside, values, 0.0)
        seen += inside
    return total * n / np.maximum(seen, 1)


def check_frames(frames: ArrayLike, *, minimum: int = 2) -> np.ndarray:
    """Validate a stack of frames: 3D, at least ``minimum`` frames, finite, not blank."""
    stack = np.asarray(frames, dtype=float)
    if stack.ndim != 3 or len(stack) < minimum or min(stack.shape[1:]) < 8:
        raise InputError(
            f"frames must be a stack (n_frame, ny, nx) of at least {minimum} frame(s) of at "
            f"least 8 x 8 pixels; got shape {stack.shape}. Pass all frames of one tilt."
        )
    if not np.all(np.isfinite(stack)):
        raise InputError("frames hold non-finite values (NaN or inf); repair or drop them.")
    blank = [k for k in range(len(stack)) if np.ptp(stack[k]) == 0]
    if blank:
        raise InputError(
            f"frame(s) {blank} are constant (e.g. all zero; value {stack[blank[0]].flat[0]!r}): "
            "a failed acquisition. Drop them before drift correction."
        )
    return stack


def _fit_velocity(f: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Least-squares slope through the origin of ``measured`` (n, 2) against ``f``."""
    return (f[:, None] * measured).sum(axis=0) / max(float((f**2).sum()), 1e-12)


def _true_velocity(apparent: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Specimen velocity from the apparent shift per frame between whole frames.

    Frame ``f`` is frame 0 translated by ``s = v f / (1 - kappa)`` exactly, with
    ``kappa = (vy + vx / nx) / ny`` (a shifted pixel is scanned at another time), so
    ``v = m / (1 + mu)`` with ``mu = (my + mx / nx) / ny`` for the apparent slope ``m``.
    """
    ny, nx = shape
    mu = (apparent[1] + apparent[0] / nx) / ny
    return apparent / (1.0 + mu)


def _translate(image: np.ndarray, shift_xy: np.ndarray) -> np.ndarray:
    """Move the content of ``image`` by ``shift_xy`` [pixel] (spline, edges repeated)."""
    return ndimage.shift(image, (shift_xy[1], shift_xy[0]), order=3, mode="nearest")
