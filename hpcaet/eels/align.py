"""Zero-loss alignment: locate the zero-loss peak (ZLP) of each spectrum, shift it to 0 meV.

The energy of a spectrometer drifts between the spectra of a scan; each spectrum is
re-calibrated by moving its ZLP to 0 meV. The ZLP is located by a Gaussian fit
(a parabola through the logarithm of the channels above half maximum), by the centroid
of those channels, or by the brightest channel; the spectrum is then shifted by linear
interpolation and all spectra are cropped to the energy range they all cover.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.eels._checks import CORE_LOSS_ONSET, check_low_loss, check_spectra
from hpcaet.errors import InputError

__all__ = ["ZeroLossAlignment", "locate_zero_loss", "align_zero_loss", "ZERO_LOSS_METHODS"]

log = logging.getLogger(__name__)

#: Ways to locate the zero-loss peak.
ZERO_LOSS_METHODS = ("fit", "centroid", "max")


@dataclass(frozen=True)
class ZeroLossAlignment:
    """Spectra with their zero-loss peak moved to 0 meV.

    Attributes
    ----------
    spectra : ndarray of shape (n_position, n_energy_kept)
        Shifted spectra [counts], on the cropped axis.
    energy : ndarray of shape (n_energy_kept,)
        The channels of the input axis that every shifted spectrum covers [meV].
    shift : ndarray of shape (n_position,)
        Position of each ZLP before alignment [meV]; the spectrum was moved by ``-shift``.
    """

    spectra: np.ndarray
    energy: np.ndarray
    shift: np.ndarray


def _half_max_run(y: np.ndarray, peak: int) -> tuple[int, int]:
    """First and one-past-last channel of the run around ``peak`` above half its height."""
    half = 0.5 * y[peak]
    lo = peak
    while lo > 0 and y[lo - 1] > half:
        lo -= 1
    hi = peak + 1
    while hi < y.size and y[hi] > half:
        hi += 1
    return lo, hi


def locate_zero_loss(
    spectra: ArrayLike,
    energy: ArrayLike,
    *,
    method: str = "fit",
    search: tuple[float, float] | None = None,
) -> np.ndarray:
    """Energy of the zero-loss peak of each spectrum.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy) or (n_energy,)
        Spectra [counts] whose brightest feature is the ZLP.
    energy : array_like of shape (n_energy,)
        Nominal energy axis [meV].
    method : {"fit", "centroid", "max"}
        ``fit``: vertex of a parabola fitted to log(counts) over the channels above half
        maximum (exact for a Gaussian ZLP); ``centroid``: counts-weighted mean energy of
        those channels; ``max``: the brightest channel.
    search : (float, float), optional
        Look for the ZLP maximum only in this range [meV]; default within ±1 eV of 0.

    Returns
    -------
    ndarray of shape (n_position,)
        ZLP energy [meV] on the nominal axis.

    Raises
    ------
    InputError
        Unknown method, an axis without 0 meV (core-loss data), or no ZLP inside the
        search range (the maximum lies on its edge).
    """
    spectra, energy = check_spectra(spectra, energy)
    if method not in ZERO_LOSS_METHODS:
        raise InputError(f"unknown ZLP method {method!r}; expected one of {ZERO_LOSS_METHODS}.")
    check_low_loss(energy)
    if search is None:
        search = (-CORE_LOSS_ONSET, CORE_LOSS_ONSET)
    allowed = (energy >= search[0]) & (energy <= search[1])
    centres = np.empty(len(spectra))
    for i, y in enumerate(spectra):
        peak = int(np.argmax(np.where(allowed, y, -np.inf)))
        lo, hi = _half_max_run(y, peak)
        at_edge = not (allowed[max(peak - 1, 0)] and allowed[min(peak + 1, y.size - 1)])
        if lo == 0 or hi == y.size or y[peak] <= 0 or at_edge:
            raise InputError(
                f"no zero-loss peak in spectrum {i} between {max(search[0], energy[0]):g} and "
                f"{min(search[1], energy[-1]):g} meV (axis {energy[0]:g} to {energy[-1]:g} "
                f"meV): its maximum there, at {energy[peak]:g} meV, touches the edge of the "
                "axis or of the search range. Align only spectra that contain the ZLP (set "
                "eels.zero_loss: none for spectra without one), or widen the search range."
            )
        e, w = energy[lo:hi], y[lo:hi]
        if method == "max" or hi - lo < 3:
            centres[i] = energy[peak]
        elif method == "centroid":
            centres[i] = float(np.sum(e * w) / np.sum(w))
        else:
            x = e - energy[peak]
            c2, c1, _ = np.polyfit(x, np.log(w), 2, w=np.sqrt(w))
            vertex = -c1 / (2 * c2) if c2 < 0 else 0.0
            centres[i] = energy[peak] + float(np.clip(vertex, x[0], x[-1]))
    return centres


def align_zero_loss(
    spectra: ArrayLike,
    energy: ArrayLike,
    *,
    method: str = "fit",
    search: tuple[float, float] | None = None,
) -> ZeroLossAlignment:
    """Shift every spectrum so that its zero-loss peak sits at 0 meV.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy)
        Spectra [counts].
    energy : array_like of shape (n_energy,)
        Nominal energy axis [meV]; it must contain the ZLP.
    method, search
        See :func:`locate_zero_loss`.

    Returns
    -------
    ZeroLossAlignment
        Shifted spectra (linear interpolation) on the channels of ``energy`` that all of
        them cover, and the ZLP energy found in each.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.arange(-20, 60, 0.5)
    >>> y = np.exp(-0.5 * ((e - [[1.2], [-0.7]]) / 3.0) ** 2) * 1e4 + 10
    >>> np.round(align_zero_loss(y, e).shift, 3)
    array([ 1.2, -0.7])
    """
    spectra, energy = check_spectra(spectra, energy)
    shift = locate_zero_loss(spectra, energy, method=method, search=search)
    keep = (energy + shift.min() >= energy[0]) & (energy + shift.max() <= energy[-1])
    kept = energy[keep]
    aligned = np.stack(
        [np.interp(kept + s, energy, y) for s, y in zip(shift, spectra, strict=False)]
    )
    log.debug(
        "ZLP shifts from %.3f to %.3f meV; kept %d of %d channels",
        shift.min(),
        shift.max(),
        kept.size,
        energy.size,
    )
    return ZeroLossAlignment(spectra=aligned, energy=kept, shift=shift)
