"""Alignment: move each image so the tracked metals' centre of mass sits at the centre.

The centre of mass of the projections of a fixed set of atoms is the projection of their
3D centre of mass, so after this shift one 3D point (the common rotation centre) lands on
pixel ``(ny // 2, nx // 2)`` of every image, the projection centre of
:mod:`hpcaet.geometry`. Shifts are sub-pixel (cubic-spline interpolation; the image is
taken as zero outside its edges, as a background-subtracted image is).

References
----------
Tian et al., Methods, "Image alignment".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from hpcaet.errors import InputError

__all__ = ["centre_of_mass", "alignment_shifts", "shift_image"]


def centre_of_mass(positions: ArrayLike) -> np.ndarray:
    """Centre of mass of the columns seen in every image.

    Parameters
    ----------
    positions : array_like of shape (n_tilt, n_track, 2)
        Column positions per image (any units, any ordering of the last axis); NaN
        where a column was not seen.

    Returns
    -------
    ndarray of shape (n_tilt, 2)
        Mean position of the columns seen in all images, per image.

    Raises
    ------
    InputError
        Wrong shape, or no column seen in every image.
    """
    p = np.asarray(positions, dtype=float)
    if p.ndim != 3 or p.shape[2] != 2:
        raise InputError(f"positions must have shape (n_tilt, n_track, 2); got {p.shape}.")
    everywhere = np.isfinite(p).all(axis=(0, 2))
    if not everywhere.any():
        raise InputError(
            "no column is seen in every image, so no common centre of mass exists; track "
            "more columns (a larger field or a lower tracking threshold)."
        )
    return p[:, everywhere].mean(axis=1)


def alignment_shifts(centres: ArrayLike, shape: tuple[int, int]) -> np.ndarray:
    """Shifts ``(row, col)`` [pixel] that move ``centres`` (row, col) to ``(ny//2, nx//2)``."""
    c = np.asarray(centres, dtype=float)
    if c.ndim != 2 or c.shape[1] != 2 or not np.all(np.isfinite(c)):
        raise InputError(f"centres must be finite (row, col) pairs, shape (n, 2); got {c.shape}.")
    return np.array([shape[0] // 2, shape[1] // 2], dtype=float) - c


def shift_image(image: ArrayLike, shift: ArrayLike, *, order: int = 3) -> np.ndarray:
    """Move the content of ``image`` by ``shift = (d_row, d_col)`` [pixel], zero outside."""
    a = np.asarray(image, dtype=float)
    if a.ndim != 2:
        raise InputError(f"image must be 2D; got shape {a.shape}.")
    return ndimage.shift(a, np.asarray(shift, dtype=float), order=order, mode="constant", cval=0.0)
