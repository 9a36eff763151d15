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
from scipy import ndimage

from hpcaet.errors import InputError
from hpcaet.geometry import euler_to_matrix

__all__ = ["WindowResult", "check_projections", "slab_offsets", "sheet_support", "SheetSupport"]


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
        Thickness of the support slab [voxels], ``>= 1``; independent of the window, so a
        film thicker than a window can be reconstructed.

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
    if int(support_z) != support_z or not support_z >= 1:
        raise InputError(f"support_z must be a positive integer [voxels]; got {support_z!r}.")
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


@dataclass(frozen=True)
class SheetSupport:
    """A support that follows the (rippled) sheet instead of the flat slab.

    After ``start`` of the iterations on the flat slab, the sheet's local height is
    measured from the density (:func:`sheet_support`) and the support shrinks to the
    voxels within ``thickness / 2`` of that surface for the remaining iterations.

    Attributes
    ----------
    thickness : float
        Full thickness of the support along z [voxels] (18 at 0.32 Å: ±2.9 Å round the
        metal plane, which holds the chalcogens at ±1.6 Å with their blur).
    smoothing : float
        Lateral Gaussian width (standard deviation) of the height map [voxels].
    start : float
        Fraction of the iterations run on the flat slab before the height is measured,
        in (0, 1).
    """

    thickness: float
    smoothing: float
    start: float

    def __post_init__(self):
        if not (np.isfinite(self.thickness) and self.thickness >= 1):
            raise InputError(f"sheet support thickness must be >= 1 voxel; got {self.thickness!r}.")
        if not (np.isfinite(self.smoothing) and self.smoothing > 0):
            raise InputError(f"sheet support smoothing must be > 0 voxels; got {self.smoothing!r}.")
        if not (np.isfinite(self.start) and 0 < self.start < 1):
            raise InputError(
                f"sheet support start must be a fraction in (0, 1) of the iterations; "
                f"got {self.start!r}."
            )

    @staticmethod
    def check(sheet) -> None:
        """Raise unless ``sheet`` is None or a SheetSupport (the solvers' argument)."""
        if sheet is not None and not isinstance(sheet, SheetSupport):
            raise InputError(
                f"sheet must be a SheetSupport(thickness, smoothing, start) or None; got {sheet!r}."
            )

    def switch_iteration(self, iterations: int) -> int:
        """Iteration at which the sheet support replaces the slab (``iterations`` if never)."""
        return max(1, int(round(self.start * iterations))) if iterations > 1 else iterations


def sheet_support(volume: np.ndarray, *, thickness: float, smoothing: float) -> np.ndarray:
    """Voxels of a slab within ``thickness / 2`` of the sheet's local height.

    The height of column ``(y, x)`` is the density-weighted mean z of the columns round
    it: ``h = G * (sum_z z rho) / G * (sum_z rho)`` with ``G`` a Gaussian of width
    ``smoothing`` (both sums smoothed before the ratio, so empty columns take the height
    of their neighbours). The limited tilt range stretches each atom along the mean
    beam direction, symmetrically about the atom (the point-spread function of any
    linear reconstruction is centro-symmetric), so the column means are not biased by
    that stretch as long as the flat slab holds it.

    Parameters
    ----------
    volume : ndarray of shape (nz, m, m)
        The slab ``[z, y, x]`` after some iterations on the flat support [any units];
        negative values are ignored.
    thickness : float
        Full thickness of the returned support along z [voxels].
    smoothing : float
        Lateral Gaussian standard deviation of the height map [voxels].

    Returns
    -------
    ndarray of shape (nz, m, m), bool
        True inside the support; the whole slab when the volume holds no density.
    """
    v = np.clip(np.asarray(volume, dtype=np.float64), 0.0, None)
    if v.ndim != 3:
        raise InputError(f"volume must be a 3D slab (nz, m, m); got shape {v.shape}.")
    SheetSupport(thickness, smoothing, 0.5)  # the same checks on thickness and smoothing
    nz = v.shape[0]
    z = (np.arange(nz) - nz // 2)[:, None, None]
    mass = ndimage.gaussian_filter(v.sum(axis=0), smoothing, mode="nearest")
    moment = ndimage.gaussian_filter((v * z).sum(axis=0), smoothing, mode="nearest")
    top = float(mass.max(initial=0.0))
    if not top > 0:
        return np.ones(v.shape, dtype=bool)
    height = moment / np.maximum(mass, 1e-3 * top)
    return np.abs(z - height[None]) <= thickness / 2
