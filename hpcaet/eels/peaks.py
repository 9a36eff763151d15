"""Sum-of-Gaussians fit of a vibrational spectrum (Levenberg–Marquardt, no bounds).

Following the paper's Methods ("Spatially resolved vibrational EELS", Fig. S7 and
Table S3): the summed spectrum of a region is fitted by five Gaussian peaks, every
parameter free, with the Levenberg–Marquardt algorithm. Standard errors come from the
Jacobian at the optimum and the residual variance, ``cov = s² (JᵀJ)⁻¹`` with
``s² = RSS / (m - p)``. Optionally a power law ``A · E^-r`` is fitted together with the
peaks, on the spectrum before background subtraction, which removes the bias that
phonon signal inside the background windows gives the two-window background.
Optionally all peaks share one σ (resolution-limited peaks), and arrangements with a
peak not significantly above zero are set aside. The search lives in ``_search.py``,
the profile-likelihood errors in ``_profile.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.eels._checks import check_spectra, window_mask
from hpcaet.eels._profile import _profile_halfwidth
from hpcaet.eels._search import (
    _acceptable,
    _best_run,
    _greedy_centres,
    initial_centres,
    quantile_centres,
    significance,
    width_tie,
)
from hpcaet.errors import ConvergenceError, InputError

__all__ = ["GaussianFit", "gaussian", "initial_centres", "fit_gaussians", "FWHM_PER_SIGMA"]

log = logging.getLogger(__name__)

#: FWHM of a Gaussian over its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class GaussianFit:
    """Fitted peaks, highest energy first (peak 1 of Table S3 is the highest).

    Attributes
    ----------
    centre, centre_error : ndarray of shape (n_peaks,)
        Peak centre and its standard error [meV]: the larger of ``s (JᵀJ)⁻¹ᐟ²`` (``s²``
        at least 1 when the noise is given) and the distance to the same peak of any
        other local minimum found within Δχ² ≤ 1 (in units of ``s²``), which lies inside
        the 1σ confidence region too, and (``profile``) the half-width of the centre's
        profile-likelihood interval.
    width, width_error : ndarray of shape (n_peaks,)
        Standard deviation σ of each Gaussian and its error [meV] (FWHM = 2.355 σ).
    height, height_error : ndarray of shape (n_peaks,)
        Peak height and its error [counts].
    energy : ndarray of shape (n_fit,)
        Channels of the fit range [meV].
    model : ndarray of shape (n_fit,)
        The fitted sum (peaks plus power law, if fitted) [counts].
    components : ndarray of shape (n_peaks, n_fit)
        Each fitted Gaussian [counts].
    background : ndarray of shape (n_fit,)
        The power law fitted with the peaks, zeros without one [counts].
    power_law : tuple of float or None
        ``(A, r)`` of the jointly fitted power law.
    residual_std : float
        ``sqrt(RSS / (m - p))`` [counts].
    evaluations : int
        Model evaluations used.
    """

    centre: np.ndarray
    centre_error: np.ndarray
    width: np.ndarray
    width_error: np.ndarray
    height: np.ndarray
    height_error: np.ndarray
    energy: np.ndarray
    model: np.ndarray
    components: np.ndarray
    background: np.ndarray
    power_law: tuple[float, float] | None
    residual_std: float
    evaluations: int


def gaussian(energy: ArrayLike, centre: float, width: float, height: float) -> np.ndarray:
    """``height · exp(-(E - centre)² / (2 width²))``; ``width`` is σ [meV]."""
    energy = np.asarray(energy, dtype=float)
    return height * np.exp(-0.5 * ((energy - centre) / width) ** 2)


def fit_gaussians(
    signal: ArrayLike,
    energy: ArrayLike,
    *,
    n_peaks: int = 5,
    fit_range: tuple[float, float] = (17.0, 70.0),
    initial: ArrayLike | None = None,
    initial_width: float = 3.0,
    power_law: tuple[float, float] | None = None,
    starts: int = 1,
    jitter: float = 2.0,
    max_evaluations: int = 2000,
    noise: ArrayLike | None = None,
    second_derivative_start: bool = False,
    spread_start: bool = True,
    profile: bool = True,
    min_width: float | None = None,
    shared_width: bool = False,
    min_significance: float = 0.0,
    rounds: int = 1,
) -> GaussianFit:
    """Fit a sum of ``n_peaks`` Gaussians (and optionally a power law) by Levenberg–Marquardt.

    Parameters
    ----------
    signal : array_like of shape (n_energy,)
        A summed or averaged spectrum [counts]: background-subtracted, or raw when
        ``power_law`` is given.
    energy : array_like of shape (n_energy,)
        Energy loss [meV].
    n_peaks : int
        Number of Gaussians (the paper: five).
    fit_range : (float, float)
        Channels fitted [meV].
    initial : array_like of shape (n_peaks,), optional
        Starting centres [meV]; default :func:`initial_centres`.
    initial_width : float
        Starting σ of every peak [meV].
    power_law : (float, float), optional
        Starting ``(A, r)`` of a power law fitted together with the peaks (positive
        energies only); None fits the peaks alone.
    starts : int
        Levenberg–Marquardt runs: the first from ``initial`` (by default the greedy
        centres, see below), the others from its centres moved by up to ±``jitter`` and
        its widths scaled by 1/1.6–1.6, following a fixed Halton sequence (no random
        numbers: the result depends on the data alone). The best run is then improved by
        swap moves (each peak in turn moved to the largest residual of the others and
        all refitted, kept when χ² drops). The kept run has the smallest residual among
        those whose peaks all have positive heights, centres inside the fit range and σ
        of at least ``min_width`` (and heights of ``min_significance`` errors, see
        there), else among those with positive heights and centres in range, else
        overall. The fit itself stays unbounded.
    jitter : float
        Largest move of a starting centre [meV].
    max_evaluations : int
        Limit of model evaluations per run.
    noise : array_like of shape (n_energy,), optional
        Standard deviation of ``signal`` in each channel [counts] (for a sum of Poisson
        spectra: the square root of the summed counts). Given, the residuals are weighted
        by its inverse (the maximum-likelihood fit for Gaussian noise, whose centre errors
        reach the Cramér–Rao bound); None weights every channel alike.
    second_derivative_start : bool
        Without ``initial``, also start from the minima of the smoothed second derivative
        (:func:`initial_centres`, smoothing σ = ``initial_width`` / 2) besides the greedy
        centres; the perturbed starts then alternate between the two.
    spread_start : bool
        Without ``initial``, also start from centres that split the signal (less the
        power law) into ``n_peaks`` equal shares (:func:`quantile_centres`); the
        perturbed starts then alternate between the starts. On the benchmark's
        interface spectra at SNR 7 it mended the fits whose greedy start had two true
        peaks share one Gaussian (docs/eels.md).
    min_width : float, optional
        Smallest σ of a plausible peak [meV]; default two channels. A Gaussian narrower
        than that fits noise in a channel or two, not a phonon (whose width is at least
        the energy resolution); runs with one are kept only if no run is plausible.
    shared_width : bool
        One σ for all peaks (fitted; every centre and height free). Right where the
        peaks' widths are the energy resolution's, as for phonon lines far narrower than
        it; it lifts much of the near-degeneracy of two peaks within one FWHM (their
        widths no longer trade against their separation). False: every σ free (the paper).
    min_significance : float
        A run is kept first only if every height is at least this many standard errors
        (``s (JᵀJ)⁻¹ᐟ²``) above zero; where no run is, the lowest-χ² run at 3/4, 1/2,
        1/4 of it, then at any positive height (the most significant arrangement the data
        offer). 0 accepts any positive height (the paper). A Gaussian that fits a noise
        feature elsewhere while two true peaks share one has a height within about one
        error of zero; 2 sets such arrangements aside.
    rounds : int
        Go on searching, ``starts`` runs at a time (the Halton sequence continued), while
        a round still lowers the best plausible χ² by more than one ``s²``, up to
        ``rounds`` × ``starts`` runs; 1 stops after ``starts``. It finds lower minima
        on single spectra (tests), but did not mend the benchmark's failed interface
        fits at SNR 7, where the power law's start mattered more (docs/eels.md).
    profile : bool
        Widen each centre's error to the half-width of its profile-likelihood interval
        (Δχ² = 1 in units of ``s²``, every other parameter refitted), which holds its
        stated coverage where the χ² surface is not quadratic (overlapping peaks).

    Returns
    -------
    GaussianFit
        Peaks sorted by centre, highest first; errors NaN where the covariance is
        singular (e.g. two peaks that merged).

    Raises
    ------
    InputError
        Bad shapes, NaN, a fit range outside the axis, too few channels for the
        parameters, or a wrong number of initial centres.
    ConvergenceError
        The fit did not converge within ``max_evaluations``.
    """
    signal, energy = check_spectra(signal, energy, allow_zero=True)
    if signal.shape[0] != 1:
        raise InputError(f"fit_gaussians fits one spectrum; got {signal.shape[0]} spectra.")
    signal = signal[0]
    if not (isinstance(n_peaks, (int, np.integer)) and n_peaks >= 1):
        raise InputError(f"n_peaks must be a positive integer; got {n_peaks!r}.")
    mask = window_mask(energy, fit_range, name="peak fit range")
    e, y = energy[mask], signal[mask]
    joint = power_law is not None
    if joint and e[0] <= 0:
        raise InputError(
            f"a power law needs a fit range at positive energies; got {list(fit_range)} meV."
        )
    tie = width_tie(n_peaks, joint) if shared_width else None
    n_par = 3 * n_peaks + 2 * joint if tie is None else tie.shape[1]
    if e.size <= n_par:
        raise InputError(
            f"the fit range {list(fit_range)} meV holds {e.size} channels for {n_par} "
            "parameters; widen it or fit fewer peaks."
        )
    if not initial_width > 0:
        raise InputError(f"initial_width must be positive; got {initial_width} meV.")
    base = power_law[0] * e ** -power_law[1] if joint else np.zeros_like(e)
    if initial is None:
        candidates = [
            _greedy_centres(
                e,
                y - base,
                n_peaks=n_peaks,
                width=float(initial_width),
                max_evaluations=max_evaluations,
            )
        ]
        if second_derivative_start:
            candidates.append(
                initial_centres(y - base, e, n_peaks=n_peaks, smooth=0.5 * initial_width)
            )
        if spread_start:
            candidates.append(quantile_centres(y - base, e, n_peaks=n_peaks))
    else:
        candidates = [np.asarray(initial, dtype=float).ravel()]
        if candidates[0].size != n_peaks:
            raise InputError(
                f"initial has {candidates[0].size} centres for n_peaks = {n_peaks}; give one each."
            )
    p0s = []
    for centres in candidates:
        heights = np.maximum(np.interp(centres, e, y - base), 0.05 * np.ptp(y - base) + 1e-12)
        p0 = np.column_stack([centres, np.full(n_peaks, float(initial_width)), heights]).ravel()
        p0s.append(np.r_[p0, np.log(power_law[0]), power_law[1]] if joint else p0)
    if starts < 1:
        raise InputError(f"starts must be >= 1; got {starts}.")
    if not (isinstance(rounds, (int, np.integer)) and rounds >= 1):
        raise InputError(f"rounds must be a positive integer; got {rounds!r}.")
    weight = 1.0
    if noise is not None:
        noise = np.asarray(noise, dtype=float)
        if noise.shape != energy.shape or not np.all(np.isfinite(noise[mask]) & (noise[mask] > 0)):
            raise InputError(
                f"noise must be finite and positive with the shape of energy {energy.shape}; "
                f"got shape {noise.shape}. Pass the square root of the summed counts."
            )
        weight = 1.0 / noise[mask]
    floor = 2.0 * float(np.median(np.diff(e))) if min_width is None else float(min_width)

    def grade(res):
        if not _acceptable(res, e, n_peaks, floor):
            return -1.0
        if min_significance <= 0:
            return np.inf
        return significance(res, n_peaks, tie, dof=e.size - n_par, poisson=noise is not None)

    res, minima = _best_run(
        e,
        y,
        p0s,
        n_peaks=n_peaks,
        joint=joint,
        starts=starts,
        jitter=jitter,
        max_evaluations=max_evaluations,
        weight=weight,
        width=float(initial_width),
        grade=grade,
        threshold=float(min_significance),
        tie=tie,
        rounds=int(rounds),
    )
    if res is None:
        raise ConvergenceError(
            f"the {n_peaks}-Gaussian fit over {list(fit_range)} meV did not converge in "
            f"{starts} run(s) of at most {max_evaluations} evaluations. Give initial centres "
            "near the peaks, more starts, fewer peaks, or a narrower fit range."
        )
    dof = e.size - n_par
    rss = float(np.sum(res.fun**2))
    s2 = rss / dof
    if noise is not None:
        # With the Poisson noise given, χ²/dof below 1 means channels whose noise was
        # smoothed (the sub-channel shifts of the ZLP alignment interpolate neighbours)
        # and made correlated, not a better measurement: never claim less than Poisson.
        s2 = max(s2, 1.0)
    jtj = res.jac.T @ res.jac
    try:
        cov = np.linalg.inv(jtj) * s2
        var = np.diag(cov if tie is None else tie @ cov @ tie.T)
    except np.linalg.LinAlgError:
        var = np.full(res.x.size, np.nan)
    err = np.sqrt(np.where(var >= 0, var, np.nan))
    q = res.x[: 3 * n_peaks].reshape(n_peaks, 3)
    qe = err[: 3 * n_peaks].reshape(n_peaks, 3)
    order = np.argsort(q[:, 0])[::-1]
    q, qe = q[order], qe[order]
    # Local minima within Δχ² <= 1 (χ² in units of s²) of the best lie inside its 1σ
    # confidence region: a centre's error is at least its distance to theirs.
    spread = np.zeros(n_peaks)
    for cost, centres in minima:
        if (cost - rss) / s2 <= 1.0:
            spread = np.maximum(spread, np.abs(centres - q[:, 0]))
    qe[:, 0] = np.fmax(qe[:, 0], np.where(spread > 0, spread, np.nan))
    if profile:
        for rank, k in enumerate(order):
            se = qe[rank, 0]
            step = float(se) if np.isfinite(se) and se > 0 else 0.5
            half = _profile_halfwidth(
                e,
                y,
                res.x if tie is None else res.theta,
                int(k),
                n_peaks=n_peaks,
                joint=joint,
                weight=weight,
                s2=s2,
                rss=rss,
                step=min(step, 0.25 * float(e[-1] - e[0])),
                max_evaluations=max_evaluations,
                tie=tie,
            )
            qe[rank, 0] = np.fmax(qe[rank, 0], half)
    q[:, 1] = np.abs(q[:, 1])
    components = np.stack([gaussian(e, *row) for row in q])
    fitted_law = (float(np.exp(res.x[-2])), float(res.x[-1])) if joint else None
    background = fitted_law[0] * e ** -fitted_law[1] if joint else np.zeros_like(e)
    log.debug("Gaussian fit: %d evaluations, residual std %.3g", res.nfev, np.sqrt(s2))
    return GaussianFit(
        centre=q[:, 0],
        centre_error=qe[:, 0],
        width=q[:, 1],
        width_error=qe[:, 1],
        height=q[:, 2],
        height_error=qe[:, 2],
        energy=e,
        model=components.sum(0) + background,
        components=components,
        background=background,
        power_law=fitted_law,
        residual_std=float(np.sqrt(s2)),
        evaluations=int(res.nfev),
    )
