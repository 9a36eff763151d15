"""Sub-pixel image registration by cross-correlation with upsampled refinement.

The integer peak of the (optionally phase-normalised, optionally low-passed)
cross-correlation is found with FFTs; the sub-pixel peak is then located by evaluating
the same correlation on a fine grid around it with a matrix-multiply DFT (only the
few hundred points near the peak are computed), as in Guizar-Sicairos et al., and
polished by a parabola through the fine-grid maximum.

References
----------
M. Guizar-Sicairos, S. T. Thurman and J. R. Fienup, "Efficient subpixel image
registration algorithms", Opt. Lett. 33, 156 (2008).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal

from hpcaet.errors import InputError

__all__ = ["register_translation"]


def register_translation(
    reference: ArrayLike,
    moving: ArrayLike,
    *,
    upsample_factor: int = 50,
    normalization: str | None = None,
    lowpass: float | None = None,
    expected: ArrayLike | None = None,
    search_radius: float | None = None,
    window: float = 0.2,
) -> np.ndarray:
    """Shift of ``moving`` relative to ``reference`` to sub-pixel precision.

    Parameters
    ----------
    reference, moving : array_like of shape (ny, nx)
        Two images of the same scene.
    upsample_factor : int, default 50
        Refinement grid is ``1 / upsample_factor`` pixel; a parabola through the
        fine-grid maximum refines further.
    normalization : {None, "phase"}, default None
        ``"phase"`` whitens the cross-power spectrum (phase correlation: sharp peak,
        but noise at high frequencies counts as much as signal); None is the plain
        cross-correlation, better for counting noise.
    lowpass : float, optional
        Standard deviation [pixel] of a Gaussian low-pass applied to the
        cross-power spectrum (the same as correlating smoothed images; it does not
        move the peak).
    expected : array_like of shape (2,), optional
        Prior shift ``(dy, dx)`` [pixel]; with ``search_radius`` the peak is searched
        only within that distance of it (to avoid a lattice-period ambiguity).
    search_radius : float, optional
        Radius [pixel] of the peak search around ``expected`` (or around zero).
    window : float, default 0.2
        Fraction of each axis tapered by a Tukey (cosine-edged) window after the
        means are removed, so the periodic wrap of the FFT adds no edge; 0 tapers
        nothing, 1 is a Hann window (which also down-weights most of the signal).

    Returns
    -------
    ndarray of shape (2,)
        ``(dy, dx)`` [pixel] such that ``moving(p) ≈ reference(p - shift)``: the
        content of ``moving`` sits ``shift`` further along rows and columns.

    Raises
    ------
    InputError
        Images of different or non-2D shapes, non-finite values, an image without
        contrast, or an unknown normalization.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> ref = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 2)
    >>> mov = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(ref), (1.3, -2.6))).real
    >>> np.round(register_translation(ref, mov, window=0), 1)
    array([ 1.3, -2.6])
    """
    ref = _check_image(reference, "reference")
    mov = _check_image(moving, "moving")
    if ref.shape != mov.shape:
        raise InputError(
            f"reference and moving images must have the same shape; got {ref.shape} and "
            f"{mov.shape}. Crop or pad them to a common shape."
        )
    if normalization not in (None, "phase"):
        raise InputError(f"normalization must be None or 'phase'; got {normalization!r}.")
    if int(upsample_factor) < 1:
        raise InputError(f"upsample_factor must be >= 1; got {upsample_factor!r}.")
    ny, nx = ref.shape
    if not 0 <= window <= 1:
        raise InputError(f"window must be a fraction in [0, 1]; got {window!r}.")
    taper = np.outer(signal.windows.tukey(ny, window), signal.windows.tukey(nx, window))
    f_ref = np.fft.fft2((ref - ref.mean()) * taper)
    f_mov = np.fft.fft2((mov - mov.mean()) * taper)
    cross = f_mov * np.conj(f_ref)
    if normalization == "phase":
        cross /= np.maximum(np.abs(cross), 1e-300)
    if lowpass:
        ky = np.fft.fftfreq(ny)[:, None]
        kx = np.fft.fftfreq(nx)[None, :]
        cross *= np.exp(-2.0 * np.pi**2 * float(lowpass) ** 2 * (kx**2 + ky**2))
    corr = np.fft.ifft2(cross).real
    centre = np.zeros(2) if expected is None else np.asarray(expected, dtype=float)
    if centre.shape != (2,) or not np.all(np.isfinite(centre)):
        raise InputError(f"expected must be a finite (dy, dx) pair; got {expected!r}.")
    dy = _wrapped(np.arange(ny), ny)[:, None]
    dx = _wrapped(np.arange(nx), nx)[None, :]
    if search_radius is not None:
        # Distances to the prior, taking the periodic wrap into account.
        ddy = _wrapped(dy - centre[0], ny)
        ddx = _wrapped(dx - centre[1], nx)
        outside = ddy**2 + ddx**2 > float(search_radius) ** 2
        if outside.all():
            outside[np.round(centre[0]).astype(int) % ny, np.round(centre[1]).astype(int) % nx] = (
                False
            )
        corr = np.where(outside, -np.inf, corr)
    peak = np.unravel_index(np.argmax(corr), corr.shape)
    coarse = np.array([dy[peak[0], 0], dx[0, peak[1]]], dtype=float)
    if upsample_factor == 1:
        return coarse
    return _refine(cross, coarse, int(upsample_factor))


def _refine(cross: np.ndarray, coarse: np.ndarray, factor: int) -> np.ndarray:
    """Maximum of the correlation near ``coarse`` on a grid ``1/factor`` pixel fine."""
    ny, nx = cross.shape
    half = int(np.ceil(0.75 * factor))
    offsets = np.arange(-half, half + 1) / factor
    rows = coarse[0] + offsets
    cols = coarse[1] + offsets
    ky = np.fft.fftfreq(ny)
    kx = np.fft.fftfreq(nx)
    ey = np.exp(2j * np.pi * rows[:, None] * ky[None, :])  # (u, ny)
    ex = np.exp(2j * np.pi * kx[:, None] * cols[None, :])  # (nx, u)
    fine = (ey @ cross @ ex).real
    i, j = np.unravel_index(np.argmax(fine), fine.shape)
    di = _parabola(fine[max(i - 1, 0) : i + 2, j]) if 0 < i < len(rows) - 1 else 0.0
    dj = _parabola(fine[i, max(j - 1, 0) : j + 2]) if 0 < j < len(cols) - 1 else 0.0
    return np.array([rows[i] + di / factor, cols[j] + dj / factor])


def _parabola(values: np.ndarray) -> float:
    """Offset of the vertex of the parabola through three equally spaced values."""
    a, b, c = values
    denom = a - 2 * b + c
    if denom >= 0:
        return 0.0
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))


def _wrapped(index, n: int):
    """Signed offsets of FFT indices (``n // 2`` and above are negative)."""
    return (np.asarray(index) + n // 2) % n - n // 2


def _check_image(image: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(image, dtype=float)
    if a.ndim != 2 or min(a.shape) < 4:
        raise InputError(f"{name} must be a 2D image of at least 4 x 4 pixels; got {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} holds non-finite values; replace NaN/inf before registering.")
    if np.ptp(a) == 0:
        raise InputError(
            f"{name} is constant (value {a.flat[0]!r}), e.g. an all-zero frame; it has "
            "nothing to register. Drop or replace that frame."
        )
    return a
