"""Power-law background of vibrational spectra, fitted to two energy windows.

The tail of the zero-loss peak under the phonon losses is modelled as ``A · E^-r`` and
fitted, spectrum by spectrum, to the channels of two windows that bracket the phonon
peaks (16–20 meV and 60–70 meV in the paper's Methods, "Spatially resolved vibrational
EELS", and its Fig. S5): first a straight line in log-log, then (optionally) a
Poisson-weighted least-squares refinement in counts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from hpcaet.eels._checks import check_spectra, window_mask
from hpcaet.errors import InputError

__all__ = ["PowerLawBackground", "fit_power_law", "power_law", "PAPER_WINDOWS"]

log = logging.getLogger(__name__)

#: Background fitting windows of the paper [meV].
PAPER_WINDOWS = ((16.0, 20.0), (60.0, 70.0))


@dataclass(frozen=True)
class PowerLawBackground:
    """A power-law background per spectrum.

    Attributes
    ----------
    background : ndarray of shape (n_position, n_energy)
        ``A · E^-r`` [counts] at and above ``start``; below ``start`` (where the power law
        does not describe the zero-loss peak) it equals the spectrum, so that the
        subtracted signal is zero there.
    amplitude : ndarray of shape (n_position,)
        ``A`` [counts · meV^r].
    exponent : ndarray of shape (n_position,)
        ``r`` (dimensionless).
    start : float
        Lowest window edge [meV].
    """

    background: np.ndarray
    amplitude: np.ndarray
    exponent: np.ndarray
    start: float

    def subtract(self, spectra: ArrayLike) -> np.ndarray:
        """``spectra - background`` [counts], shape (n_position, n_energy)."""
        return np.asarray(spectra, dtype=float) - self.background


def power_law(energy: ArrayLike, amplitude: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """``amplitude · energy^-exponent`` broadcast to (n_position, n_energy) [counts].

    ``energy`` [meV] must be positive; ``amplitude`` and ``exponent`` have shape
    (n_position,) or are scalars.
    """
    energy = np.asarray(energy, dtype=float)
    amplitude = np.atleast_1d(np.asarray(amplitude, dtype=float))[:, None]
    exponent = np.atleast_1d(np.asarray(exponent, dtype=float))[:, None]
    return amplitude * energy[None, :] ** -exponent


def fit_power_law(
    spectra: ArrayLike,
    energy: ArrayLike,
    *,
    windows: Sequence[tuple[float, float]] = PAPER_WINDOWS,
    refine: bool = True,
) -> PowerLawBackground:
    """Fit ``A · E^-r`` to the channels of ``windows`` in each spectrum.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy) or (n_energy,)
        Zero-loss aligned spectra [counts].
    energy : array_like of shape (n_energy,)
        Energy loss [meV], strictly increasing.
    windows : sequence of (float, float)
        Fitting windows [meV], at positive energies, each covered by the axis with at
        least two channels; default the paper's 16–20 and 60–70 meV.
    refine : bool
        After the log-log line, minimise ``sum((A E^-r - y)^2 / max(y, 1))`` over the
        window channels (Levenberg–Marquardt), which weighs channels by their Poisson
        variance instead of by ``1/y^2`` as the log-log fit does.

    Returns
    -------
    PowerLawBackground

    Raises
    ------
    InputError
        A window outside the axis or at E <= 0, NaN/inf or all-zero spectra, or fewer
        than two positive channels in a window of some spectrum.
    """
    spectra, energy = check_spectra(spectra, energy)
    windows = [tuple(float(v) for v in w) for w in windows]
    if not windows:
        raise InputError("windows is empty; give at least one [low, high] window in meV.")
    if min(w[0] for w in windows) <= 0:
        raise InputError(
            f"background windows must lie at positive energy loss; got {windows} meV. "
            "The power law E^-r is undefined at E <= 0."
        )
    masks = [
        window_mask(energy, w, name=f"background window {i + 1}") for i, w in enumerate(windows)
    ]
    inside = np.any(masks, axis=0)
    logx = np.log(energy[inside])
    y = spectra[:, inside]
    positive = y > 0
    for i, m in enumerate(masks):
        count = (spectra[:, m] > 0).sum(axis=1)
        if np.any(count < 2):
            bad = np.flatnonzero(count < 2)
            raise InputError(
                f"spectra at position index {bad[:10].tolist()} have fewer than 2 positive "
                f"channels in background window {i + 1} {windows[i]} meV; a power law "
                "needs positive counts there. Sum more frames or widen the window."
            )
    # Weighted straight line log y = log A - r log E over the positive channels.
    w = positive.astype(float)
    logy = np.log(np.where(positive, y, 1.0))
    sw, sx, sy = w.sum(1), (w * logx).sum(1), (w * logy).sum(1)
    sxx, sxy = (w * logx**2).sum(1), (w * logx * logy).sum(1)
    slope = (sw * sxy - sx * sy) / (sw * sxx - sx**2)
    log_amp = (sy - slope * sx) / sw
    exponent, amplitude = -slope, np.exp(log_amp)
    if refine:
        e = energy[inside]
        for i in range(len(spectra)):
            sigma = np.sqrt(np.maximum(y[i], 1.0))

            def resid(p, yi=y[i], sigma=sigma):
                return (np.exp(p[0] - p[1] * np.log(e)) - yi) / sigma

            res = least_squares(resid, [log_amp[i], exponent[i]], method="lm")
            if res.success and np.all(np.isfinite(res.x)):
                amplitude[i], exponent[i] = np.exp(res.x[0]), res.x[1]
            else:
                log.warning(
                    "background refinement of spectrum %d failed (%s); kept the log-log fit",
                    i,
                    res.message,
                )
    start = min(w[0] for w in windows)
    above = energy >= start
    background = spectra.copy()
    background[:, above] = power_law(energy[above], amplitude, exponent)
    return PowerLawBackground(
        background=background, amplitude=amplitude, exponent=exponent, start=start
    )
