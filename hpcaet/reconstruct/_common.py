"""What every window reconstructor shares: the result type and the input checks.

A *window* is a cube of ``m`` voxels a side centred on a point of the sample; its
*projections* are ``m x m`` crops of the tilted images in which that point projects to
pixel ``(m // 2, m // 2)`` (see :func:`hpcaet.reconstruct.crop_window`). Voxel ``(k,
j, i)`` of the *support slab* (``nz`` voxels along z, centred on the window) sits at the
offset ``(i - m // 2, j - m // 2, k - nz // 2)`` voxels ``(x, y, z)`` from the centre,
the rule of :mod:`hpcaet.geometry`. Cores work in voxel units: a reconstructed volume
``v`` reproduces the images as sums along the beam, ``image ≈ sum_z v``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.errors import InputError
from hpcaet.geometry import euler_to_matrix

__all__ = ["WindowResult", "check_projections", "slab_offsets"]


@dataclass(frozen=True)
class WindowResult:
    """Output of a window reconstructor.

    Attributes
    ----------
    volume : ndarray of shape (nz, m, m), float32
        The support slab, ``[z, y, x]``, in image units per voxel (``image ≈ volume.sum(0)``
        at zero tilt).
    error : ndarray of shape (iterations,)
        Relative misfit to the enforced data at each iteration [1] (GENFIRE: Fourier
        values; RESIRE: image pixels), measured before that iteration's update.
    rfree : ndarray of shape (iterations,)
        The same misfit on the withheld data (NaN when nothing is withheld) [1].
    setup_seconds, iteration_seconds : float
        Wall time of the set-up (gridding or projector) and of all iterations [s].
    """

    volume: np.ndarray
    error: np.ndarray
    rfree: np.ndarray
    setup_seconds: float = 0.0
    iteration_seconds: float = 0.0


def check_projections(
    images: ArrayLike, euler: ArrayLike, *, support_z: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate window projections and angles; return float32 images and rotations.

    Parameters
    ----------
    images : array_like of shape (n, m, m)
        Window crops [image units].
    euler : array_like of shape (n, 3)
        Euler angles (Z, Y, X) of each crop [deg].
    support_z : int
        Thickness of the support slab [voxels], ``1 <= support_z <= m``.

    Returns
    -------
    images : ndarray of shape (n, m, m), float32
    rotations : ndarray of shape (n, 3, 3)

    Raises
    ------
    InputError
        Wrong shapes, non-square crops, counts that disagree, NaN pixels, bad support.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2] or imgs.shape[1] < 4:
        raise InputError(
            f"window projections must have shape (n, m, m) with m >= 4; got {imgs.shape}. "
            "Crop square windows with hpcaet.reconstruct.crop_window."
        )
    angles = np.asarray(euler, dtype=float)
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise InputError(f"euler must have shape (n, 3) (Z, Y, X in degrees); got {angles.shape}.")
    if len(angles) != len(imgs):
        raise InputError(
            f"{len(angles)} Euler angle triples for {len(imgs)} projections; give one "
            "triple per projection."
        )
    bad = ~np.isfinite(imgs)
    if bad.any():
        j, r, c = np.argwhere(bad)[0]
        raise InputError(
            f"projection {j} has a non-finite pixel ({float(imgs[j, r, c])!r} at row {r}, col {c}) "
            f"and {int(bad.sum())} in all; fill or mask them before reconstructing."
        )
    m = imgs.shape[1]
    if int(support_z) != support_z or not 1 <= support_z <= m:
        raise InputError(
            f"support_z must be an integer from 1 to the window size {m}; got {support_z!r}."
        )
    return np.ascontiguousarray(imgs, dtype=np.float32), euler_to_matrix(angles)


def slab_offsets(m: int, nz: int) -> tuple[np.ndarray, np.ndarray]:
    """Voxel offsets from the window centre: ``(x or y along m, z along nz)``."""
    return np.arange(m) - m // 2, np.arange(nz) - nz // 2


def check_iterations(iterations: int) -> int:
    if int(iterations) != iterations or iterations < 0:
        raise InputError(f"iterations must be a non-negative integer; got {iterations!r}.")
    return int(iterations)


def check_fraction(name: str, value: float, *, upper: float = 1.0, closed: bool = False) -> float:
    ok = 0.0 <= value <= upper if closed else 0.0 <= value < upper
    if not (np.isfinite(value) and ok):
        bracket = "]" if closed else ")"
        raise InputError(f"{name} must be in [0, {upper:g}{bracket}; got {value!r}.")
    return float(value)
