"""Multi-start search of the sum-of-Gaussians fit: model, Jacobian, starts, local search.

The deterministic parts of :func:`~hpcaet.eels.peaks.fit_gaussians`: starting centres
(second derivative, greedy residual), fixed Halton perturbations, Levenberg–Marquardt runs,
swap moves, and the choice of the best plausible run. No random numbers anywhere.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import least_squares
from scipy.stats import qmc

__all__ = ["initial_centres", "significance", "width_tie"]


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


def quantile_centres(signal: ArrayLike, energy: ArrayLike, *, n_peaks: int) -> np.ndarray:
    """Starting centres that split the signal into ``n_peaks`` equal shares: the
    (k + ½)/n quantiles of its positive part's cumulative sum, highest first.

    Where the greedy start puts every centre on the strongest features (and two close
    peaks share one), these spread over the whole signal. On the benchmark's interface
    spectra at SNR 7 (docs/eels.md) they start the one arrangement within each peak's
    tolerance that the greedy start and its perturbations missed. A signal with nothing
    positive gives evenly spaced centres.
    """
    signal = np.clip(np.asarray(signal, dtype=float), 0.0, None)
    energy = np.asarray(energy, dtype=float)
    share = np.cumsum(signal)
    if not share[-1] > 0:
        share = np.arange(1.0, energy.size + 1.0)
    share = share / share[-1]
    return np.interp((np.arange(n_peaks)[::-1] + 0.5) / n_peaks, share, energy)


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


def width_tie(n_peaks: int, joint: bool) -> np.ndarray:
    """Matrix ``M`` with ``p = M θ``: one σ shared by all peaks.

    ``p`` holds (centre, σ, height) per peak and then the power law's (log A, r);
    ``θ`` holds (centre, height) per peak, the shared σ, then the power law.
    """
    n_full, n_free = 3 * n_peaks + 2 * joint, 2 * n_peaks + 1 + 2 * joint
    tie = np.zeros((n_full, n_free))
    for k in range(n_peaks):
        tie[3 * k, 2 * k] = tie[3 * k + 2, 2 * k + 1] = tie[3 * k + 1, 2 * n_peaks] = 1.0
    for j in range(2 * joint):
        tie[3 * n_peaks + j, 2 * n_peaks + 1 + j] = 1.0
    return tie


def to_free(p: np.ndarray, tie: np.ndarray | None, n_peaks: int) -> np.ndarray:
    """The free parameters ``θ`` closest to ``p`` (tied σ: their mean magnitude)."""
    if tie is None:
        return p
    p = p.copy()
    p[1 : 3 * n_peaks : 3] = np.abs(p[1 : 3 * n_peaks : 3])
    return np.linalg.lstsq(tie, p, rcond=None)[0]


def _lm(e, y, p, *, n_peaks, joint, weight, max_evaluations, tie=None):
    """LM from ``p``; with ``tie``, over ``θ`` (``p = tie θ``), ``res.x`` then the full ``p``
    and ``res.jac`` (weighted) with respect to ``θ``."""

    def full(t):
        return t if tie is None else tie @ t

    def fun(t):
        return (_model(full(t), e, n_peaks, joint) - y) * weight

    def jac(t):
        j = _jacobian(full(t), e, n_peaks, joint) * np.reshape(weight, (-1, 1))
        return j if tie is None else j @ tie

    res = least_squares(
        fun, to_free(p, tie, n_peaks), jac=jac, method="lm", max_nfev=max_evaluations
    )
    res.theta = res.x
    res.x = full(res.x)
    return res


def _swap_moves(
    e,
    y,
    best,
    *,
    n_peaks,
    joint,
    width,
    weight,
    max_evaluations,
    minima,
    plausible,
    rounds=3,
    tie=None,
):
    """Move each peak in turn to the largest residual of the others and refit; keep gains.

    A deterministic local search over arrangements of the peaks: it escapes minima where
    one Gaussian sits on a spurious feature while a real shoulder is left unfitted. From
    an implausible ``best`` (a collapsed or negative peak), the first plausible result is
    kept whatever its χ², and the search goes on from it.
    """
    step = float(np.median(np.diff(e)))
    smooth = max(0.5 * width / step, 0.5)
    accept = plausible
    plausible = accept(best[1])
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
                tie=tie,
            )
            if not accept(res):
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


def significance(res, n_peaks, tie, *, dof, poisson) -> float:
    """The smallest height over its standard error ``s (JᵀJ)⁺ᐟ²`` (``s² = χ²/dof``, at
    least 1 with Poisson weights; ``⁺`` the pseudo-inverse); 0 where a height's variance
    is not positive. A Gaussian that the noise alone could make has a height within
    about one error of zero.

    Gaussians whose centres lie within half the smaller σ of each other count as one
    feature, judged by their summed height and its error: two Gaussians on one centre
    are one Gaussian of the summed height (where the data cannot place a fifth peak the
    fit may put it there), and each height alone is undetermined while the sum is not.
    """
    s2 = float(np.sum(res.fun**2)) / dof
    s2 = max(s2, 1.0) if poisson else s2
    full = np.eye(res.x.size) if tie is None else tie
    cov = np.linalg.pinv(res.jac.T @ res.jac) * s2
    q = res.x[: 3 * n_peaks].reshape(n_peaks, 3)
    order = np.argsort(q[:, 0])
    c, w = q[order, 0], np.abs(q[order, 1])
    apart = np.diff(c) >= 0.5 * np.minimum(w[:-1], w[1:])  # neighbours in centre order
    smallest = np.inf
    for members in np.split(order, np.flatnonzero(apart) + 1):
        pick = np.zeros(res.x.size)
        pick[3 * members + 2] = 1.0  # the group's summed height
        grad = pick @ full  # d(sum of heights) / d(fitted parameters)
        var = float(grad @ cov @ grad)
        if not var > 0:
            return 0.0
        smallest = min(smallest, float(pick @ res.x) / np.sqrt(var))
    return smallest


def _best_run(
    e,
    y,
    p0s,
    *,
    n_peaks,
    joint,
    starts,
    jitter,
    max_evaluations,
    weight=1.0,
    width,
    grade,
    threshold=0.0,
    tie=None,
    rounds=1,
):
    """Run LM from each start of ``p0s``, then from fixed perturbations of them in turn
    (``starts`` runs in all, at least one per start), then swap moves from the best.

    With ``rounds`` > 1 the search goes on by another ``starts`` runs (the same Halton
    sequence, continued) while a round still lowers the best plausible χ² by more than
    one ``s²`` (χ²/dof), or none is plausible yet, up to ``rounds`` × ``starts`` runs.

    ``grade(res)`` is -1 for an implausible run (a peak not positive, outside the range
    or narrower than the width floor), else the smallest height over its error. Kept:
    the lowest-χ² run graded at least ``threshold``; failing that, at least 3/4, 1/2,
    1/4 of it, then 0 (the most significant arrangement the data offer); else the best
    with positive heights in range; else the best. Also returns every local minimum of
    the level kept as (cost, centres highest first)."""
    best, best_plausible, best_any, positive, graded = None, None, None, None, []
    n_runs = max(starts, len(p0s))
    limit = n_runs + max(int(rounds) - 1, 0) * starts
    shifts = _perturbations(limit - len(p0s), n_peaks)
    dof = max(np.size(y) - (len(p0s[0]) if tie is None else tie.shape[1]), 1)
    round_start = None
    for run in range(limit):
        if run >= n_runs and (run - n_runs) % starts == 0:
            # a round ends: go on only while it still lowered the best plausible χ²
            now = None if best_any is None else best_any[0]
            if now is not None and round_start is not None and round_start - now <= now / dof:
                break
            round_start = now
        # first the given starts; then, in turn, a perturbed given start (global) and a
        # perturbed best plausible run so far, significant or not (local: basin hopping;
        # the significance only ranks the runs found)
        local = run >= len(p0s) and run % 2 == 1 and best_any is not None
        p = (best_any[1].x if local else p0s[run % len(p0s)]).copy()
        if run >= len(p0s):
            d = shifts[run - len(p0s)]
            q = p[: 3 * n_peaks].reshape(n_peaks, 3)
            q[:, 0] += (0.5 if local else 1.0) * jitter * d[:n_peaks]
            q[:, 1] = np.abs(q[:, 1]) * 1.6 ** d[n_peaks:]
        res = _lm(
            e,
            y,
            p,
            n_peaks=n_peaks,
            joint=joint,
            weight=weight,
            max_evaluations=max_evaluations,
            tie=tie,
        )
        if res.status < 0 or not np.all(np.isfinite(res.x)):
            continue
        cost = float(np.sum(res.fun**2))
        if best is None or cost < best[0]:
            best = (cost, res)
        if _acceptable(res, e, n_peaks) and (positive is None or cost < positive[0]):
            positive = (cost, res)  # positive peaks in range, whatever their width
        g = grade(res)
        if g < 0:
            continue
        graded.append((cost, g, res))
        if best_any is None or cost < best_any[0]:
            best_any = (cost, res)  # the search hops from here whatever the significance
    level = 0.0
    for level in (threshold, 0.75 * threshold, 0.5 * threshold, 0.25 * threshold, 0.0):
        kept = [(c, r) for c, g, r in graded if g >= level]
        if kept:
            best_plausible = min(kept, key=lambda item: item[0])
            break
    minima = [(c, _sorted_centres(r.x, n_peaks)) for c, g, r in graded if g >= level]
    if best_plausible is not None or best is not None:
        found, ok = _swap_moves(
            e,
            y,
            best_plausible or best,
            n_peaks=n_peaks,
            joint=joint,
            width=width,
            weight=weight,
            max_evaluations=max_evaluations,
            minima=minima,
            plausible=lambda r: grade(r) >= level,
            tie=tie,
        )
        if ok:
            best_plausible = found
    chosen = best_plausible or positive or best
    return (None if chosen is None else chosen[1]), minima
