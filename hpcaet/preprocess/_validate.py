"""Input checks shared by the per-image steps of :mod:`hpcaet.preprocess`.

Each helper turns an argument into a float64 array of the expected shape, or raises
:class:`~hpcaet.errors.InputError` with a message that names the value received, what
was expected and the fix.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.errors import InputError


def _check_image(image: ArrayLike, *, if_zero: str) -> np.ndarray:
    """Validate a finite, not all-zero 2D image of at least 8 x 8 pixels.

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        The image [counts].
    if_zero : str
        Why an all-zero image cannot be used by the caller; it completes the message
        ``"image is all zero: ..."``.

    Returns
    -------
    ndarray of shape (ny, nx), float64
    """
    a = np.asarray(image, dtype=float)
    if a.ndim != 2 or min(a.shape) < 8:
        raise InputError(f"image must be 2D, at least 8 x 8 pixels; got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise InputError("image holds non-finite values (NaN or inf); repair them first.")
    if not np.any(a):
        raise InputError(f"image is all zero: {if_zero}")
    return a
