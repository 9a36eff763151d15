"""Profile-likelihood interval of a fitted peak centre (used by `fit_gaussians`)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from hpcaet.eels._search import _jacobian, _model


def _profile_halfwidth(
    e, y, p_best, k, *, n_peaks, joint, weight, s2, rss, step, max_evaluations, tie=None
):
    """Half-width of the Δχ² = 1 (units of s²) profile-likelihood interval of centre k.

    The centre is stepped away from its best value on each side (steps growing by 1.6),
    every other parameter refitted (LM, warm-started) at each step, until χ² has risen by
    s²; the crossing is interpolated linearly. Near-degenerate peaks, whose χ² surface is
    far from quadratic, get the wide interval the Hessian misses. With ``tie``
    (``p = tie θ``), ``p_best`` is ``θ`` and the profile runs over the free parameters.
    """
    m = np.eye(p_best.size) if tie is None else tie
    idx = int(np.argmax(m[3 * k]))
    free = np.ones(p_best.size, bool)
    free[idx] = False
    w = np.reshape(weight, (-1, 1)) if np.ndim(weight) else weight

    def fit_at(c, start):
        def full(q):
            p = np.empty(p_best.size)
            p[free], p[idx] = q, c
            return p

        res = least_squares(
            lambda q: (_model(m @ full(q), e, n_peaks, joint) - y) * weight,
            start,
            jac=lambda q: ((_jacobian(m @ full(q), e, n_peaks, joint) * w) @ m)[:, free],
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
