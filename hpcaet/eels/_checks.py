"""Input checks shared by the EELS cores (shapes, NaNs, empty spectra, energy windows)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.errors import InputError


def _indices(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(int(i)) for i in rows[:10])
    return f"[{shown}{', ...' if len(rows) > 10 else ''}] ({len(rows)} in all)"


def check_spectra(
    spectra: ArrayLike, energy: ArrayLike, *, allow_zero: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``spectra`` as float (n_position, n_energy) and ``energy`` as float (n_energy,).

    A single spectrum of shape (n_energy,) is promoted to (1, n_energy).

    Raises
    ------
    InputError
        Wrong shapes, an energy axis that is not strictly increasing, NaN or inf values,
        or (unless ``allow_zero``) a spectrum whose values are all zero.
    """
    spectra = np.asarray(spectra, dtype=float)
    energy = np.asarray(energy, dtype=float)
    if spectra.ndim == 1:
        spectra = spectra[None, :]
    if energy.ndim != 1 or spectra.ndim != 2 or spectra.shape[1] != energy.size:
        raise InputError(
            f"spectra must have shape (n_position, n_energy) matching energy (n_energy,); "
            f"got spectra {spectra.shape} and energy {energy.shape}. Pass one spectrum per "
            "row and its energy axis [meV]."
        )
    if energy.size < 3 or not np.all(np.isfinite(energy)) or np.any(np.diff(energy) <= 0):
        raise InputError(
            f"the energy axis must be finite and strictly increasing with at least 3 channels; "
            f"got {energy.size} channels from {energy[:1]} to {energy[-1:]} meV. Sort the "
            "channels or fix the calibration."
        )
    bad = ~np.isfinite(spectra)
    if bad.any():
        raise InputError(
            f"spectra hold NaN or inf at position index {_indices(bad.any(axis=1))}; expected "
            "finite counts. Drop or repair those spectra (e.g. dead pixels) first."
        )
    if not allow_zero:
        zero = np.all(spectra == 0, axis=1)
        if zero.any():
            raise InputError(
                f"the spectrum at position index {_indices(zero)} is all zeros; expected "
                "measured counts. Drop those positions (a blanked beam or a missing frame)."
            )
    return spectra, energy


def window_mask(energy: np.ndarray, window: tuple[float, float], *, name: str) -> np.ndarray:
    """Channels of ``energy`` inside ``window`` [meV]; error if the axis does not cover it."""
    low, high = (float(w) for w in window)
    if not low < high:
        raise InputError(f"{name} must be [low, high] with low < high; got {list(window)} meV.")
    if low < energy[0] or high > energy[-1]:
        raise InputError(
            f"{name} {low:g}–{high:g} meV is not covered by the energy axis, which runs "
            f"from {energy[0]:g} to {energy[-1]:g} meV. Choose a window inside the axis "
            "(e.g. the eels.windows setting) or check the energy calibration and its units."
        )
    mask = (energy >= low) & (energy <= high)
    if mask.sum() < 2:
        raise InputError(
            f"{name} {low:g}–{high:g} meV holds {int(mask.sum())} channel(s) at a dispersion "
            f"of {np.median(np.diff(energy)):g} meV/channel; expected at least 2. Widen it."
        )
    return mask
