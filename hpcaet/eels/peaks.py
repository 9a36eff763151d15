"""Sum-of-Gaussians fit of a vibrational spectrum (Levenberg–Marquardt, no bounds).

Following the paper's Methods ("Spatially resolved vibrational EELS", Fig. S7 and
Table S3): the summed spectrum of a region is fitted by five Gaussian peaks, every
parameter free, with the Levenberg–Marquardt algorithm. Standard errors come from the
Jacobian at the optimum and the residual variance, ``cov = s² (JᵀJ)⁻¹`` with
``s² = RSS / (m - p)``. Optionally a power law ``A · E^-r`` is fitted together with the
peaks, on the spectrum before background subtraction, which removes the bias that
phonon signal inside the background windows gives the two-window background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import least_squares
from scipy.stats import qmc

from hpcaet.eels._checks import check_spectra, window_mask
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


def initial_centres(
    signal: ArrayLike, energy: ArrayLike, *, n_peaks: int, smooth: float = 1.0
) -> np.ndarray:
    """Starting centres: the strongest minima of the smoothed second derivative.

    Peaks and shoulders both make the second derivative negative. Where fewer than
    ``n_peaks`` minima exist, the remaining centres split the widest gaps.

    Parameters
    ----------
    signal : array_like of shape (n_energy,)
        Background-subtracted spectrum [counts].
    energy : array_like of shape (n_energy,)
        Evenly spaced energy axis [meV].
    n_peaks : int
        How many centres to return.
    smooth : float
        Gaussian smoothing σ before differentiating [meV].

    Returns
    -------
    ndarray of shape (n_peaks,)
        Centres [meV], highest first.
    """
    signal = np.asarray(signal, dtype=float)
    energy = np.asarray(energy, dtype=float)
    step = float(np.median(np.diff(energy)))
    d2 = gaussian_filter1d(signal, max(smooth / step, 0.5), order=2)
    inner = np.arange(2, signal.size - 2)
    minima = inner[(d2[inner] < d2[inner - 1]) & (d2[inner] <= d2[inner + 1]) & (d2[inner] < 0)]
    chosen = list(energy[minima[np.argsort(d2[minima])][:n_peaks]])
    while len(chosen) < n_peaks:
        edges = np.sort(np.r_[energy[0], chosen, energy[-1]])
        gap = int(np.argmax(np.diff(edges)))
        chosen.append(0.5 * (edges[gap] + edges[gap + 1]))
    return np.sort(np.asarray(chosen))[::-1]


def _model(p: np.ndarray, e: np.ndarray, n_peaks: int, joint: bool) -> np.ndarray:
    q = p[: 3 * n_peaks].reshape(n_peaks, 3)
    y = np.sum(q[:, 2:3] * np.exp(-0.5 * ((e[None, :] - q[:, 0:1]) / q[:, 1:2]) ** 2), axis=0)
    if joint:
        y = y + np.exp(p[-2] - p[-1] * np.log(e))
    return y


def _jacobian(p: np.ndarray, e: np.ndarray, n_peaks: int, joint: bool) -> np.ndarray:
    """d model / d p, shape (n_energy, n_par)."""
    q = p[: 3 * n_peaks].reshape(n_peaks, 3)
    u = (e[None, :] - q[:, 0:1]) / q[:, 1:2]
    g = np.exp(-0.5 * u**2)
    hg = q[:, 2:3] * g
    cols = np.stack([hg * u / q[:, 1:2], hg * u**2 / q[:, 1:2], g], axis=1)
    jac = cols.reshape(3 * n_peaks, e.size)
    if joint:
        b = np.exp(p[-2] - p[-1] * np.log(e))
        jac = np.vstack([jac, b, -b * np.log(e)])
    return jac.T


def _greedy_centres(e, y, *, n_peaks, width, max_evaluations):
    """Starting centres by adding one Gaussian at a time where the residual is largest.

    Each step places a new peak at the maximum of the smoothed residual of the peaks
    so far and refits all of them (Levenberg–Marquardt); shoulders that the second
    derivative misses show up in the residual of the fewer-peak fit.
    """
    step = float(np.median(np.diff(e)))
    p = np.empty(0)
    for m in range(1, n_peaks + 1):
        resid = gaussian_filter1d(y - _model(p, e, m - 1, False), max(0.5 * width / step, 0.5))
        k = int(np.argmax(resid))
        p = np.r_[p, e[k], width, max(resid[k], 1e-12)]
        res = least_squares(
            lambda q, m=m: _model(q, e, m, False) - y, p, method="lm", max_nfev=max_evaluations
        )
        if np.all(np.isfinite(res.x)):
            p = res.x
    q = p.reshape(n_peaks, 3)
    inside = (q[:, 0] > e[0]) & (q[:, 0] < e[-1])
    centres = np.where(inside, q[:, 0], initial_centres(y, e, n_peaks=n_peaks))
    return np.sort(centres)[::-1]


def _perturbations(n_runs: int, n_peaks: int) -> np.ndarray:
    """Fixed, space-filling start perturbations in [-1, 1]^(2 n_peaks) (a Halton sequence).

    The same for every call, so the fit uses no random numbers and its result does not
    depend on a seed.
    """
    if n_runs <= 0:
        return np.zeros((0, 2 * n_peaks))
    return 2.0 * qmc.Halton(d=2 * n_peaks, scramble=False).random(n_runs + 1)[1:] - 1.0


def _lm(e, y, p, *, n_peaks, joint, weight, max_evaluations):
    def fun(p):
        return (_model(p, e, n_peaks, joint) - y) * weight

    def jac(p):
        return _jacobian(p, e, n_peaks, joint) * np.reshape(weight, (-1, 1))

    return least_squares(fun, p, jac=jac, method="lm", max_nfev=max_evaluations)


def _swap_moves(
    e, y, best, *, n_peaks, joint, width, weight, max_evaluations, minima, min_width, rounds=3
):
    """Move each peak in turn to the largest residual of the others and refit; keep gains.

    A deterministic local search over arrangements of the peaks: it escapes minima where
    one Gaussian sits on a spurious feature while a real shoulder is left unfitted. From
    an implausible ``best`` (a collapsed or negative peak), the first plausible result is
    kept whatever its χ², and the search goes on from it.
    """
    step = float(np.median(np.diff(e)))
    smooth = max(0.5 * width / step, 0.5)
    plausible = _acceptable(best[1], e, n_peaks, min_width)
    for _ in range(rounds):
        improved = False
        for k in range(n_peaks):
            p = best[1].x.copy()
            q = p[: 3 * n_peaks].reshape(n_peaks, 3)
            rest = np.delete(np.arange(n_peaks), k)
            others = np.r_[q[rest].ravel(), p[3 * n_peaks :]]
            resid = gaussian_filter1d(y - _model(others, e, n_peaks - 1, joint), smooth)
            j = int(np.argmax(resid))
            q[k] = (e[j], width, max(resid[j], 1e-12))
            res = _lm(
                e,
                y,
                p,
                n_peaks=n_peaks,
                joint=joint,
                weight=weight,
                max_evaluations=max_evaluations,
            )
            if not _acceptable(res, e, n_peaks, min_width):
                continue
            cost = float(np.sum(res.fun**2))
            minima.append((cost, _sorted_centres(res.x, n_peaks)))
            if not plausible or cost < best[0] * (1 - 1e-9):
                best, plausible, improved = (cost, res), True, True
        if not improved:
            break
    return best, plausible


def _sorted_centres(p: np.ndarray, n_peaks: int) -> np.ndarray:
    return np.sort(p[: 3 * n_peaks : 3])[::-1]


def _acceptable(res, e, n_peaks, min_width=0.0) -> bool:
    if res.status <= 0 or not np.all(np.isfinite(res.x)):
        return False
    q = res.x[: 3 * n_peaks].reshape(n_peaks, 3)
    return bool(
        np.all(q[:, 2] > 0)
        and np.all((q[:, 0] > e[0]) & (q[:, 0] < e[-1]))
        and np.all(np.abs(q[:, 1]) >= min_width)
    )


def _best_run(
    e, y, p0s, *, n_peaks, joint, starts, jitter, max_evaluations, weight=1.0, width, min_width
):
    """Run LM from each start of ``p0s``, then from fixed perturbations of them in turn
    (``starts`` runs in all, at least one per start), then swap moves from the best;
    keep the best plausible run (positive heights, centres inside the range, widths of
    at least ``min_width``), else the best with positive heights in range, else the best.
    Also returns every plausible local minimum as (cost, centres highest first)."""
    best, best_plausible, positive, minima = None, None, None, []
    n_runs = max(starts, len(p0s))
    shifts = _perturbations(n_runs - len(p0s), n_peaks)
    for run in range(n_runs):
        # first the given starts; then, in turn, a perturbed given start (global) and a
        # perturbed best plausible run so far (local: basin hopping)
        local = run >= len(p0s) and run % 2 == 1 and best_plausible is not None
        p = (best_plausible[1].x if local else p0s[run % len(p0s)]).copy()
        if run >= len(p0s):
            d = shifts[run - len(p0s)]
            q = p[: 3 * n_peaks].reshape(n_peaks, 3)
            q[:, 0] += (0.5 if local else 1.0) * jitter * d[:n_peaks]
            q[:, 1] = np.abs(q[:, 1]) * 1.6 ** d[n_peaks:]
        res = _lm(
            e, y, p, n_peaks=n_peaks, joint=joint, weight=weight, max_evaluations=max_evaluations
        )
        if res.status < 0 or not np.all(np.isfinite(res.x)):
            continue
        cost = float(np.sum(res.fun**2))
        if best is None or cost < best[0]:
            best = (cost, res)
        if _acceptable(res, e, n_peaks) and (positive is None or cost < positive[0]):
            positive = (cost, res)  # positive peaks in range, whatever their width
        if not _acceptable(res, e, n_peaks, min_width):
            continue
        minima.append((cost, _sorted_centres(res.x, n_peaks)))
        if best_plausible is None or cost < best_plausible[0]:
            best_plausible = (cost, res)
    if best_plausible is not None or best is not None:
        found, plausible = _swap_moves(
            e,
            y,
            best_plausible or best,
            n_peaks=n_peaks,
            joint=joint,
            width=width,
            weight=weight,
            max_evaluations=max_evaluations,
            minima=minima,
            min_width=min_width,
        )
        if plausible:
            best_plausible = found
    chosen = best_plausible or positive or best
    return (None if chosen is None else chosen[1]), minima


def _profile_halfwidth(e, y, p_best, k, *, n_peaks, joint, weight, s2, rss, step, max_evaluations):
    """Half-width of the Δχ² = 1 (units of s²) profile-likelihood interval of centre k.

    The centre is stepped away from its best value on each side (steps growing by 1.6),
    every other parameter refitted (LM, warm-started) at each step, until χ² has risen by
    s²; the crossing is interpolated linearly. Near-degenerate peaks, whose χ² surface is
    far from quadratic, get the wide interval the Hessian misses.
    """
    idx = 3 * k
    free = np.ones(p_best.size, bool)
    free[idx] = False
    w = np.reshape(weight, (-1, 1)) if np.ndim(weight) else weight

    def fit_at(c, start):
        def full(q):
            p = np.empty(p_best.size)
            p[free], p[idx] = q, c
            return p

        res = least_squares(
            lambda q: (_model(full(q), e, n_peaks, joint) - y) * weight,
            start,
            jac=lambda q: (_jacobian(full(q), e, n_peaks, joint) * w)[:, free],
            method="lm",
            max_nfev=max_evaluations,
        )
        return float(np.sum(res.fun**2)), res.x

    sides = []
    for sign in (1.0, -1.0):
        start, d, prev_d, prev_delta, found = p_best[free].copy(), step, 0.0, 0.0, None
        for _ in range(14):
            c = p_best[idx] + sign * d
            if not e[0] < c < e[-1]:
                found = abs(c - p_best[idx])
                break
            cost, start = fit_at(c, start)
            delta = max((cost - rss) / s2, 0.0)
            if delta >= 1.0:
                found = prev_d + (d - prev_d) * (1.0 - prev_delta) / (delta - prev_delta)
                break
            prev_d, prev_delta, d = d, delta, 1.6 * d
        sides.append(d if found is None else found)
    return 0.5 * (sides[0] + sides[1])


def fit_gaussians(
    signal: ArrayLike,
    energy: ArrayLike,
    *,
    n_peaks: int = 5,
    fit_range: tuple[float, float] = (16.0, 70.0),
    initial: ArrayLike | None = None,
    initial_width: float = 3.0,
    power_law: tuple[float, float] | None = None,
    starts: int = 1,
    jitter: float = 2.0,
    max_evaluations: int = 2000,
    noise: ArrayLike | None = None,
    second_derivative_start: bool = False,
    profile: bool = True,
    min_width: float | None = None,
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
        of at least ``min_width``, else among those with positive heights and centres in
        range, else overall. The fit itself stays unbounded.
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
    min_width : float, optional
        Smallest σ of a plausible peak [meV]; default two channels. A Gaussian narrower
        than that fits noise in a channel or two, not a phonon (whose width is at least
        the energy resolution); runs with one are kept only if no run is plausible.
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
    n_par = 3 * n_peaks + 2 * joint
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
    weight = 1.0
    if noise is not None:
        noise = np.asarray(noise, dtype=float)
        if noise.shape != energy.shape or not np.all(np.isfinite(noise[mask]) & (noise[mask] > 0)):
            raise InputError(
                f"noise must be finite and positive with the shape of energy {energy.shape}; "
                f"got shape {noise.shape}. Pass the square root of the summed counts."
            )
        weight = 1.0 / noise[mask]
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
        min_width=2.0 * float(np.median(np.diff(e))) if min_width is None else float(min_width),
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
        var = np.diag(cov)
    except np.linalg.LinAlgError:
        var = np.full(n_par, np.nan)
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
                res.x,
                int(k),
                n_peaks=n_peaks,
                joint=joint,
                weight=weight,
                s2=s2,
                rss=rss,
                step=min(step, 0.25 * float(e[-1] - e[0])),
                max_evaluations=max_evaluations,
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
