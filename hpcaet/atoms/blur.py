"""Per-image blur of the calculated images, and its adjoint.

The processed images that keep the linear contrast of the ADF model (``linear_images``
of the preprocess stage: drift-corrected, background-subtracted and aligned, but not
denoised or deconvolved) still carry the vibration blur of each tilt: the sheet's
oscillation along its normal smears every atom along the projected normal with the
harmonic-oscillator kernel of :func:`hpcaet.forward.kernels.vibration_kernel`. The
refinement and the pair flipping compare such images with the linear model blurred by
the same kernel, ``C_j = K_j * A_j``; the gradient needs the adjoint, the correlation
with ``K_j``.

Both are ``"same"``-size linear convolutions with zero padding outside the image
(:func:`scipy.signal.fftconvolve`); for odd kernels, the convolution with the mirrored
kernel is the exact adjoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal

from hpcaet.errors import InputError
from hpcaet.forward.kernels import vibration_kernel

__all__ = ["vibration_kernels", "check_kernels", "blur_images", "blur_images_adjoint"]

Kernels = Sequence[np.ndarray | None]


def vibration_kernels(
    direction: ArrayLike, amplitude: ArrayLike, width: ArrayLike, *, pixel_size: float
) -> list[np.ndarray | None]:
    """The vibration kernel of every image, sampled on the image grid.

    Parameters
    ----------
    direction : array_like of shape (m,)
        Direction of the motion in each image [deg from +x towards +y].
    amplitude, width : array_like of shape (m,)
        Amplitude and Gaussian width of each kernel [Å] (see
        :func:`~hpcaet.forward.kernels.vibration_kernel`).
    pixel_size : float
        [Å].

    Returns
    -------
    list of ndarray of shape (k, k), or None
        One odd-sized kernel per image summing to one; None where the amplitude and
        width are both zero or not finite (no blur).
    """
    d, a, w = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (direction, amplitude, width))
    if not (d.shape == a.shape == w.shape and d.ndim == 1):
        raise InputError(
            "direction, amplitude and width need one value per image; got shapes "
            f"{d.shape}, {a.shape} and {w.shape}."
        )
    out: list[np.ndarray | None] = []
    for dj, aj, wj in zip(d, a, w, strict=True):
        if not (np.isfinite(dj) and np.isfinite(aj) and np.isfinite(wj)) or (aj <= 0 and wj <= 0):
            out.append(None)
        else:
            out.append(vibration_kernel(dj, aj, wj, pixel_size=pixel_size))
    return out


def check_kernels(kernels: Kernels | None, m: int) -> list[np.ndarray | None] | None:
    """``kernels`` as float arrays, checked: one per image, each 2D of odd size, or None.

    Raises
    ------
    InputError
        On a number of kernels other than ``m`` or a kernel that is not 2D of odd size.
    """
    if kernels is None:
        return None
    if len(kernels) != m:
        raise InputError(f"need one kernel per image ({m} images); got {len(kernels)} kernels.")
    out: list[np.ndarray | None] = []
    for k in kernels:
        k = None if k is None else np.asarray(k, dtype=float)
        if k is not None and (k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0):
            raise InputError(
                f"blur kernels must be 2D of odd size (centred); got shape {k.shape}. Build "
                "them with vibration_kernels."
            )
        out.append(k)
    return out


def blur_images(images: np.ndarray, kernels: Kernels | None) -> np.ndarray:
    """Convolve image ``j`` with ``kernels[j]`` (``"same"`` size, zero outside).

    Parameters
    ----------
    images : ndarray of shape (m, ny, nx)
    kernels : sequence of m ndarrays of odd shape (k, k) or None, or None
        None (or a None entry) leaves the image(s) as they are.

    Returns
    -------
    ndarray of shape (m, ny, nx)
    """
    return _apply(images, kernels, adjoint=False)


def blur_images_adjoint(images: np.ndarray, kernels: Kernels | None) -> np.ndarray:
    """The adjoint of :func:`blur_images`: correlate image ``j`` with ``kernels[j]``."""
    return _apply(images, kernels, adjoint=True)


def _apply(images: np.ndarray, kernels: Kernels | None, *, adjoint: bool) -> np.ndarray:
    if kernels is None:
        return images
    x = np.asarray(images, dtype=float)
    if x.ndim != 3:
        raise InputError(f"images must have shape (m, ny, nx); got {x.shape}.")
    out = np.empty_like(x)
    for j, k in enumerate(check_kernels(kernels, len(x))):
        if k is None:
            out[j] = x[j]
            continue
        out[j] = signal.fftconvolve(x[j], k[::-1, ::-1] if adjoint else k, mode="same")
    return out
