"""Cramér–Rao bound of peak centres: analytic limit and the scatter of a Poisson fit."""

import numpy as np
import pytest

from hpcaet.eels import centre_crlb, fit_gaussians, gaussian
from hpcaet.errors import InputError

E = np.arange(0.0, 80.0, 0.44)


def test_isolated_peak_matches_the_analytic_bound():
    # A weak Gaussian on a flat background B: the centre is orthogonal to width and height
    # (odd vs even derivatives), so its bound is sqrt(B · 2σΔ/√π) / h. The peak adds up to
    # h/B = 1 % to λ: 1 % tolerance.
    b, h, s = 1e4, 100.0, 2.4
    lam = b + gaussian(E, 40.0, s, h)
    bound = centre_crlb(E, lam, [40.0], [s], [h], fit_range=(10, 70))
    analytic = np.sqrt(b * 2 * s * 0.44 / np.sqrt(np.pi)) / h
    np.testing.assert_allclose(bound, analytic, rtol=0.01)


def test_bound_matches_the_scatter_of_a_weighted_fit():
    # Two peaks 1.2 FWHM apart on a power-law tail, Poisson counts, 150 draws: the
    # Poisson-weighted least-squares fit is efficient, so its centre scatter is the
    # bound; the standard deviation of 150 draws is good to ~6 % (1σ), hence 20 %.
    centres, widths, heights = np.array([44.0, 37.3]), np.array([2.4, 2.4]), [400.0, 300.0]
    tail = 2e7 * E.clip(1) ** -3.0
    lam = tail + sum(gaussian(E, c, w, h) for c, w, h in zip(centres, widths, heights, strict=True))
    bound = centre_crlb(E, lam, centres, widths, heights, power_law=(2e7, 3.0), fit_range=(20, 70))
    rng = np.random.default_rng(5)
    found = []
    for _ in range(150):
        y = rng.poisson(lam).astype(float)
        fit = fit_gaussians(
            y,
            E,
            n_peaks=2,
            fit_range=(20, 70),
            initial=centres,
            initial_width=2.4,
            power_law=(2e7, 3.0),
            noise=np.sqrt(np.maximum(y, 1)),
        )
        found.append(fit.centre)
    scatter = np.std(found, axis=0, ddof=1)
    np.testing.assert_allclose(scatter, bound, rtol=0.2)


def test_close_peaks_have_a_larger_bound():
    # Half a FWHM apart the two centres are nearly degenerate: the bound grows > 10x.
    lam = 1e3 + gaussian(E, 40, 2.4, 500) + gaussian(E, 34, 2.4, 500)
    far = centre_crlb(E, lam, [40, 34], [2.4, 2.4], [500, 500], fit_range=(10, 70))
    lam = 1e3 + gaussian(E, 40, 2.4, 500) + gaussian(E, 37.2, 2.4, 500)
    near = centre_crlb(E, lam, [40, 37.2], [2.4, 2.4], [500, 500], fit_range=(10, 70))
    assert np.all(near > 10 * far)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(expected=np.zeros(E.size)), "expected counts must be positive"),
        (dict(width=[0.0]), "widths must be positive"),
        (dict(expected=np.ones(3)), "shape of energy"),
        (dict(height=[1.0, 2.0]), "one length"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(expected=np.ones(E.size), centre=[40.0], width=[2.4], height=[1.0])
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        centre_crlb(E, **args, fit_range=(10, 70))
