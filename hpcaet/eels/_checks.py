"""Input checks shared by the EELS cores (shapes, NaNs, empty spectra, energy windows)."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.errors import HpcaetWarning, InputError

#: Lowest energy [meV] of an axis that cannot hold a zero-loss peak: above 1 eV the data
#: are core-loss (or valence-loss) spectra, whatever their shape.
CORE_LOSS_ONSET = 1000.0


class EelsWarning(HpcaetWarning):
    """A questionable but usable EELS input or result (1-channel window, loose peak)."""


def axis_kind(energy: np.ndarray) -> str:
    """``"core-loss"`` for an axis that starts above :data:`CORE_LOSS_ONSET` or ends below
    0 meV (no zero-loss peak can be on it), else ``"low-loss"``."""
    return "core-loss" if energy[0] > CORE_LOSS_ONSET or energy[-1] < 0 else "low-loss"


def check_low_loss(energy: np.ndarray) -> None:
    """Raise :class:`InputError` for an axis without 0 meV (core-loss data), any shape."""
    if axis_kind(energy) == "core-loss":
        raise InputError(
            f"the energy axis runs from {energy[0]:g} to {energy[-1]:g} meV "
            f"({energy[0] / 1e3:g} to {energy[-1] / 1e3:g} eV) and holds no zero-loss peak "
            "near 0 meV: this is core-loss data. The vibrational analysis needs low-loss "
            "spectra that include the zero-loss peak; check the file (or its energy "
            "calibration and units)."
        )


def _axis_hint(energy: np.ndarray) -> str:
    if axis_kind(energy) == "core-loss":
        return (
            f" This axis ({energy[0] / 1e3:g} to {energy[-1] / 1e3:g} eV) holds no zero-loss "
            "peak: it is core-loss data, which the vibrational analysis cannot use."
        )
    return ""


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
            + _axis_hint(energy)
        )
    mask = (energy >= low) & (energy <= high)
    dispersion = float(np.median(np.diff(energy)))
    if mask.sum() == 0:
        raise InputError(
            f"{name} {low:g}–{high:g} meV holds no channel at a dispersion of {dispersion:g} "
            "meV/channel; expected at least 1 (better several). Widen it."
        )
    if mask.sum() == 1:
        warnings.warn(
            f"{name} {low:g}–{high:g} meV holds 1 channel at a dispersion of {dispersion:g} "
            "meV/channel: its one count carries the noise of a single channel. Widen it for a "
            "steadier fit.",
            EelsWarning,
            stacklevel=3,
        )
    return mask
