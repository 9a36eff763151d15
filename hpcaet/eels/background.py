"""Power-law background of vibrational spectra, fitted to two (or more) energy windows.

The tail of the zero-loss peak under the phonon losses is modelled as ``A · E^-r`` and
fitted, spectrum by spectrum, to the channels of windows that bracket the phonon peaks
(16–20 meV and 60–70 meV in the paper's Methods, "Spatially resolved vibrational EELS",
and its Fig. S5). Four estimators of ``(A, r)`` on the same window channels:

``poisson`` (default)
    Maximum likelihood for Poisson counts: minimises ``Σ λ - y log λ``, ``λ = A E^-r``
    (Newton's method; the negative log-likelihood is convex in ``(log A, r)``). Unbiased
    at low counts and of least variance; equivalent to a nonlinear least-squares fit
    weighted by ``1 / λ`` (iteratively reweighted).
``loglog``
    A straight line through ``log y`` against ``log E`` (least squares). Weighs channels by
    ``y²`` instead of ``y`` and is biased low where counts are few (``E[log y] < log E[y]``).
``two_area``
    Egerton's two-area method: the power law whose sums over two areas (the two windows;
    the two halves of a single window; the lowest window and the rest of more than two)
    equal the measured ones. Uses only the two integrals.
``least_squares``
    Unweighted nonlinear least squares (``Σ (y - λ)²``), as a plain curve fit: dominated
    by the brightest (lowest-energy) channels.

``docs/eels.md`` compares them on synthetic spectra with a known background and, on a
real spectrum image, with an independent implementation (HyperSpy's ``PowerLaw``).
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

__all__ = [
    "PowerLawBackground",
    "fit_power_law",
    "power_law",
    "PAPER_WINDOWS",
    "BACKGROUND_ESTIMATORS",
]

log = logging.getLogger(__name__)

#: Background fitting windows of the paper [meV].
PAPER_WINDOWS = ((16.0, 20.0), (60.0, 70.0))

#: Estimators of the power law, see the module docstring.
BACKGROUND_ESTIMATORS = ("poisson", "loglog", "two_area", "least_squares")


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
    estimator : str
        How ``(A, r)`` were estimated (:data:`BACKGROUND_ESTIMATORS`).
    """

    background: np.ndarray
    amplitude: np.ndarray
    exponent: np.ndarray
    start: float
    estimator: str = "poisson"

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


def _loglog(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line ``log y = a - r x`` over the positive channels of each row."""
    w = (y > 0).astype(float)
    logy = np.log(np.where(y > 0, y, 1.0))
    sw, sx, sy = w.sum(1), (w * x).sum(1), (w * logy).sum(1)
    sxx, sxy = (w * x**2).sum(1), (w * x * logy).sum(1)
    slope = (sw * sxy - sx * sy) / (sw * sxx - sx**2)
    return (sy - slope * sx) / sw, -slope


def _poisson(x, y, a, r, *, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method on the Poisson negative log-likelihood, all rows at once."""

    def nll(a, r):
        lam = np.exp(a[:, None] - r[:, None] * x[None, :])
        return np.sum(lam - y * np.log(lam), axis=1)

    current = nll(a, r)
    for _ in range(iterations):
        lam = np.exp(a[:, None] - r[:, None] * x[None, :])
        d = lam - y
        g = np.stack([d.sum(1), -(d * x).sum(1)], axis=1)
        haa, har, hrr = lam.sum(1), -(lam * x).sum(1), (lam * x**2).sum(1)
        det = haa * hrr - har**2
        da = -(hrr * g[:, 0] - har * g[:, 1]) / det
        dr = -(-har * g[:, 0] + haa * g[:, 1]) / det
        step = np.ones_like(a)
        for _ in range(30):  # halve the step where the likelihood does not improve
            trial = nll(a + step * da, r + step * dr)
            worse = ~(trial <= current)
            if not worse.any():
                break
            step = np.where(worse, 0.5 * step, step)
        a, r, current = a + step * da, r + step * dr, nll(a + step * da, r + step * dr)
        if np.all(np.abs(step * da) < 1e-12) and np.all(np.abs(step * dr) < 1e-12):
            break
    return a, r


def _two_area(e: np.ndarray, y: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power law whose sums over the channels ``first`` and ``~first`` match the data's."""
    s1, s2 = y[:, first].sum(1), y[:, ~first].sum(1)
    if np.any(s1 <= 0) or np.any(s2 <= 0):
        bad = np.flatnonzero((s1 <= 0) | (s2 <= 0))
        raise InputError(
            f"spectra at position index {bad[:10].tolist()} have no positive counts in one of "
            "the two areas; the two-area method needs both. Use estimator 'poisson'."
        )
    target = np.log(s1 / s2)
    x = np.log(e)

    def ratio(r):  # log(Σ_1 E^-r / Σ_2 E^-r), increasing in r when area 1 lies lower
        w = np.exp(-r[:, None] * (x[None, :] - x.mean()))
        return np.log(w[:, first].sum(1) / w[:, ~first].sum(1))

    lo, hi = np.full(s1.shape, -20.0), np.full(s1.shape, 40.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        low_side = ratio(mid) < target
        lo, hi = np.where(low_side, mid, lo), np.where(low_side, hi, mid)
    r = 0.5 * (lo + hi)
    a = np.log((s1 + s2) / np.sum(e[None, :] ** -r[:, None], axis=1))
    return a, r


def _least_squares(x, y, a, r) -> tuple[np.ndarray, np.ndarray]:
    scale = np.maximum(y.max(axis=1), 1.0)
    for i in range(len(y)):

        def resid(p, yi=y[i] / scale[i]):
            return np.exp(p[0] - p[1] * x) - yi

        res = least_squares(resid, [a[i] - np.log(scale[i]), r[i]], method="lm")
        if res.success and np.all(np.isfinite(res.x)):
            a[i], r[i] = res.x[0] + np.log(scale[i]), res.x[1]
        else:
            log.warning("least-squares background of spectrum %d failed (%s)", i, res.message)
    return a, r


def fit_power_law(
    spectra: ArrayLike,
    energy: ArrayLike,
    *,
    windows: Sequence[tuple[float, float]] = PAPER_WINDOWS,
    estimator: str = "poisson",
) -> PowerLawBackground:
    """Fit ``A · E^-r`` to the channels of ``windows`` in each spectrum.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy) or (n_energy,)
        Zero-loss aligned spectra [counts].
    energy : array_like of shape (n_energy,)
        Energy loss [meV], strictly increasing.
    windows : sequence of (float, float)
        Fitting windows [meV], at positive energies, each covered by the axis; default
        the paper's 16–20 and 60–70 meV. A window of one channel is accepted with an
        :class:`~hpcaet.eels._checks.EelsWarning`.
    estimator : {"poisson", "loglog", "two_area", "least_squares"}
        How ``(A, r)`` are estimated; see the module docstring.

    Returns
    -------
    PowerLawBackground

    Raises
    ------
    InputError
        A window outside the axis, without channels or at E <= 0, an unknown estimator,
        NaN/inf or all-zero spectra, or fewer than two positive window channels in a
        spectrum.

    Examples
    --------
    >>> e = np.arange(1.0, 100.0, 0.5)
    >>> fit = fit_power_law(1e6 * e**-2.5, e, windows=[(10, 12), (60, 70)])
    >>> float(np.round(fit.exponent[0], 6))
    2.5
    """
    spectra, energy = check_spectra(spectra, energy)
    if estimator not in BACKGROUND_ESTIMATORS:
        raise InputError(
            f"unknown background estimator {estimator!r}; expected one of {BACKGROUND_ESTIMATORS}."
        )
    windows = sorted(tuple(float(v) for v in w) for w in windows)
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
    if inside.sum() < 2:
        raise InputError(
            f"the background windows {windows} meV hold {int(inside.sum())} channel(s) in all; "
            "a power law needs at least 2. Widen them."
        )
    e = energy[inside]
    x = np.log(e)
    y = spectra[:, inside]
    count = (y > 0).sum(axis=1)
    if np.any(count < 2):
        bad = np.flatnonzero(count < 2)
        raise InputError(
            f"spectra at position index {bad[:10].tolist()} have fewer than 2 positive "
            f"channels in the background windows {windows} meV; a power law needs positive "
            "counts there. Sum more frames or widen the windows."
        )
    log_amp, exponent = _loglog(x, y)
    if estimator == "poisson":
        log_amp, exponent = _poisson(x, y, log_amp, exponent)
    elif estimator == "least_squares":
        log_amp, exponent = _least_squares(x, y, log_amp, exponent)
    elif estimator == "two_area":
        if len(windows) == 1:
            first = np.arange(e.size) < e.size // 2
        else:
            first = masks[0][inside]
        log_amp, exponent = _two_area(e, y, first)
    bad = ~(np.isfinite(log_amp) & np.isfinite(exponent))
    if bad.any():
        raise InputError(
            f"the {estimator} background of spectra at position index "
            f"{np.flatnonzero(bad)[:10].tolist()} is not finite; check their counts in the "
            f"windows {windows} meV."
        )
    amplitude = np.exp(log_amp)
    start = windows[0][0]
    above = energy >= start
    background = spectra.copy()
    background[:, above] = power_law(energy[above], amplitude, exponent)
    return PowerLawBackground(
        background=background,
        amplitude=amplitude,
        exponent=exponent,
        start=start,
        estimator=estimator,
    )
