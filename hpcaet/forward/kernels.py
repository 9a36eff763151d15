"""Blur kernels shared by the simulator and the image-processing stage."""

from __future__ import annotations

import numpy as np

from hpcaet.errors import InputError

__all__ = ["vibration_kernel", "gaussian_sigma_from_fwhm"]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def gaussian_sigma_from_fwhm(fwhm: float) -> float:
    """Standard deviation of a Gaussian of the given full width at half maximum."""
    return float(fwhm) / _FWHM_PER_SIGMA


def vibration_kernel(
    direction: float,
    amplitude: float,
    width: float,
    *,
    pixel_size: float,
    n_samples: int = 65,
) -> np.ndarray:
    """Motion-blur kernel of a harmonic oscillation seen in projection.

    A sheet oscillating as ``u(t) = amplitude * sin(w t)`` spends time at ``u`` with the
    arcsine density ``1 / (pi sqrt(amplitude**2 - u**2))``; blurred by a Gaussian of
    standard deviation ``width`` (damping, amplitude jitter) this is the kernel.

    Parameters
    ----------
    direction : float
        Direction of the motion in the image, from +x towards +y [degrees].
    amplitude : float
        Half the peak-to-peak excursion in the image plane [Å].
    width : float
        Gaussian width of the kernel [Å]; at least a quarter pixel is used so the
        kernel stays well sampled.
    pixel_size : float
        Sampling of the kernel [Å].
    n_samples : int, optional
        Points along the arcsine used to integrate it.

    Returns
    -------
    ndarray of shape (k, k)
        Non-negative kernel of odd size summing to one, centred on ``k // 2``.
    """
    if not (np.isfinite(amplitude) and amplitude >= 0):
        raise InputError(f"vibration amplitude must be >= 0 Å; got {amplitude!r}.")
    if not (np.isfinite(width) and width >= 0):
        raise InputError(f"vibration width must be >= 0 Å; got {width!r}.")
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"pixel size must be positive; got {pixel_size!r}.")
    sigma = max(float(width), 0.25 * pixel_size)
    # Arcsine density integrated exactly over equal-width bins of u.
    edges = np.linspace(-1.0, 1.0, n_samples + 1)
    weights = np.diff(np.arcsin(edges)) / np.pi
    u = amplitude * 0.5 * (edges[1:] + edges[:-1])
    theta = np.deg2rad(direction)
    half = int(np.ceil((amplitude + 4 * sigma) / pixel_size))
    grid = np.arange(-half, half + 1) * pixel_size
    gx = np.exp(-((grid[None, :] - u[:, None] * np.cos(theta)) ** 2) / (2 * sigma**2))
    gy = np.exp(-((grid[None, :] - u[:, None] * np.sin(theta)) ** 2) / (2 * sigma**2))
    kernel = np.einsum("s,sy,sx->yx", weights, gy, gx)
    return kernel / kernel.sum()
