"""Input checks shared by the forward operators of :mod:`hpcaet.forward`.

Each helper turns an argument into a float64 array (or a plain value) of the expected
shape, or raises :class:`~hpcaet.errors.InputError` with a message that names the value
received, what was expected and the fix.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from hpcaet.errors import InputError


def _check_atoms(
    positions: ArrayLike,
    *per_atom: ArrayLike,
    names: tuple[str, ...] = ("weights", "b_factors"),
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validate positions (n, 3) and per-atom arrays (n,) named ``names``."""
    r = np.asarray(positions, dtype=float)
    if r.size == 0 and r.ndim <= 2:
        r = r.reshape(0, 3)
    if r.ndim != 2 or r.shape[1] != 3:
        raise InputError(
            f"positions must have shape (n, 3) (x, y, z in Å); got shape {r.shape}. "
            "Stack one row per atom."
        )
    bad = np.flatnonzero(~np.all(np.isfinite(r), axis=1))
    if bad.size:
        raise InputError(
            f"positions must be finite; atoms {bad[:10].tolist()} have "
            f"{r[bad[:3]].tolist()}. Remove or fix those atoms."
        )
    n = len(r)
    arrays = []
    for name, value in zip(names, per_atom, strict=True):
        a = np.asarray(value, dtype=float)
        if a.ndim == 0:
            a = np.full(n, float(a))
        if a.shape != (n,):
            raise InputError(
                f"{name} must have shape ({n},), one value per atom of positions; got "
                f"shape {a.shape}. Pass one value per atom (or a scalar for all)."
            )
        if not np.all(np.isfinite(a)):
            raise InputError(
                f"{name} must be finite; got non-finite values at atoms "
                f"{np.flatnonzero(~np.isfinite(a))[:10].tolist()}."
            )
        if name == "b_factors" and np.any(a <= 0):
            bad = np.flatnonzero(a <= 0)
            raise InputError(
                f"b_factors must be > 0 Å² (the Gaussian width is sqrt(B / 8π²)); got "
                f"{a[bad[:5]].tolist()} at atoms {bad[:5].tolist()}. Use a small positive "
                "B-factor (e.g. 0.5 Å²) for a nearly static atom."
            )
        arrays.append(a)
    return r, arrays


def _check_orientations(
    euler: ArrayLike, offsets: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate Euler angles (m, 3) or (3,) and offsets (m, 2) or None."""
    angles = np.asarray(euler, dtype=float)
    if angles.ndim == 1:
        angles = angles[None, :]
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise InputError(
            f"euler must have shape (m, 3) or (3,) (phi, theta, psi in degrees); got shape "
            f"{np.shape(euler)}. Pass one triple per image."
        )
    if not np.all(np.isfinite(angles)):
        raise InputError(f"euler angles must be finite; got {angles.tolist()[:5]}.")
    m = len(angles)
    if offsets is None:
        return angles, np.zeros((m, 2))
    shifts = np.asarray(offsets, dtype=float)
    if shifts.ndim == 1:
        shifts = shifts[None, :]
    if shifts.shape != (m, 2):
        raise InputError(
            f"offsets must have shape ({m}, 2), one (x, y) shift in Å per Euler triple; got "
            f"shape {np.shape(offsets)}. Give as many offsets as images, or None."
        )
    if not np.all(np.isfinite(shifts)):
        raise InputError(f"offsets must be finite; got {shifts.tolist()[:5]}.")
    return angles, shifts


def _check_images(images: ArrayLike, m: int, name: str) -> np.ndarray:
    """Validate an image stack (m, ny, nx); (ny, nx) is accepted when m = 1."""
    y = np.asarray(images, dtype=float)
    if y.ndim == 2 and m == 1:
        y = y[None]
    if y.ndim != 3 or len(y) != m or y.shape[1] == 0 or y.shape[2] == 0:
        raise InputError(
            f"{name} must have shape (m, ny, nx) with m = {m}, the number of Euler "
            f"triples; got shape {np.shape(images)}. Pass one image per orientation."
        )
    if not np.all(np.isfinite(y)):
        raise InputError(f"{name} must be finite; found NaN or inf values. Mask them first.")
    return y


def _check_shape(shape: tuple[int, ...], *, ndim: int) -> tuple[int, ...]:
    """Validate a grid shape of ``ndim`` positive integers."""
    try:
        dims = tuple(int(d) for d in shape)
        ok = len(dims) == ndim and all(d >= 1 and d == s for d, s in zip(dims, shape, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(
            f"shape must be {ndim} positive integers; got {shape!r}. Pass e.g. {(64,) * ndim}."
        )
    return dims


def _check_positive(name: str, value: float, unit: str) -> None:
    """Validate a finite, strictly positive scalar."""
    try:
        ok = bool(np.isfinite(value) and value > 0)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{name} must be a positive number of {unit}; got {value!r}.")


def _check_dtype(dtype: DTypeLike) -> np.dtype:
    """Validate an output dtype: it must be a floating type."""
    out = np.dtype(dtype)
    if out.kind != "f":
        raise InputError(f"dtype must be a floating type such as float32; got {out}.")
    return out


def _check_volume(volume: ArrayLike) -> np.ndarray:
    """Validate a finite volume (nz, ny, nx) with every axis non-empty."""
    v = np.asarray(volume, dtype=float)
    if v.ndim != 3 or v.size == 0:
        raise InputError(
            f"volume must have shape (nz, ny, nx) with every axis non-empty; got shape "
            f"{v.shape}. Pass a 3D array indexed [z, y, x]."
        )
    if not np.all(np.isfinite(v)):
        raise InputError("volume must be finite; found NaN or inf values. Mask them first.")
    return v
