"""The resolution-limited peak model (one shared σ) and the significance of fitted peaks."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from hpcaet.eels import centre_crlb, fit_gaussians, gaussian

E = np.arange(12, 72, 0.44)
CENTRES = np.array([49.4, 38.6, 31.2, 26.5, 22.0])  # Table S3, MoS2
HEIGHTS = np.array([1.0, 0.8, 0.35, 0.5, 0.45])
SIGMA = 5.7 / 2.3548  # the paper's 5.7-meV FWHM


def _expected(scale, law=(2e6, 3.0), centres=CENTRES, heights=HEIGHTS):
    peaks = sum(gaussian(E, c, SIGMA, scale * h) for c, h in zip(centres, heights, strict=True))
    return law[0] * E ** -law[1] + peaks


def test_shared_width_recovers_exact_data():
    lam = _expected(400.0)
    fit = fit_gaussians(
        lam,
        E,
        fit_range=(16, 70),
        power_law=(1.5e6, 2.9),
        noise=np.sqrt(lam),
        initial_width=2.4,
        starts=8,
        shared_width=True,
    )
    # noise-free data: the optimum is the truth (1e-3 meV allows for the LM tolerances)
    np.testing.assert_allclose(fit.centre, CENTRES, atol=1e-3)
    np.testing.assert_allclose(fit.width, SIGMA, atol=1e-3)
    np.testing.assert_allclose(fit.height, 400.0 * HEIGHTS, rtol=1e-3)
    assert np.ptp(fit.width) == 0.0 and np.ptp(fit.width_error) == 0.0  # one σ, one error
    assert fit.power_law[1] == np.float64(fit.power_law[1])
    assert abs(fit.power_law[1] - 3.0) < 1e-4


def _matched(centre, truth, tolerance):
    """Fitted peaks assigned to the true ones in units of the tolerance (the benchmark's
    rule: a Gaussian may sit on a noise feature while two unresolved peaks share one)."""
    cost = ((centre[:, None] - truth[None, :]) / tolerance[None, :]) ** 2
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(truth.size, int)
    order[cols] = rows
    return order


def test_shared_width_errors_are_calibrated_and_efficient():
    """Four of the MoS2 peaks (26.5 and 22.0 meV within 0.8 FWHM), 30 Poisson draws:
    every centre within max(0.5 meV, 2 CRLB) of the truth, the truth inside ±1 reported
    error 68 ± 12 % of the time (binomial sd over 120 fits: 4.3 %), every centre's
    scatter below 1.3 × its Cramér–Rao bound with free widths (the shared σ can only
    lower it). Where three peaks lie within 9 meV (all five MoS2 peaks at this count)
    the fit can merge two: docs/eels.md."""
    centres, heights = CENTRES[[0, 1, 3, 4]], HEIGHTS[[0, 1, 3, 4]]
    lam = _expected(300.0, centres=centres, heights=heights)
    law = (2e6, 3.0)
    crlb = centre_crlb(E, lam, centres, [SIGMA] * 4, 300.0 * heights, power_law=law)
    tolerance = np.maximum(0.5, 2 * crlb)
    rng = np.random.default_rng(2024)
    fitted, inside = [], []
    for _ in range(30):
        y = rng.poisson(lam).astype(float)
        fit = fit_gaussians(
            y,
            E,
            n_peaks=4,
            fit_range=(16, 70),
            power_law=(1.5e6, 2.9),
            noise=np.sqrt(np.maximum(y, 1)),
            initial_width=2.4,
            starts=8,
            shared_width=True,
            min_significance=2.0,
        )
        order = _matched(fit.centre, centres, tolerance)
        fitted.append(fit.centre[order])
        inside.append(np.abs(fit.centre[order] - centres) <= fit.centre_error[order])
    fitted = np.array(fitted)
    coverage = np.mean(inside)
    assert 0.56 <= coverage <= 0.80, coverage
    assert np.all(np.abs(fitted - centres) <= tolerance), (
        np.abs(fitted - centres).max(0),
        crlb,
    )
    assert np.all(fitted.std(0, ddof=1) <= 1.3 * crlb), fitted.std(0, ddof=1) / crlb


@pytest.mark.parametrize("seed", [15, 24])
def test_significance_sets_aside_a_gaussian_on_noise(seed):
    """Seed 15 of the benchmark's SNR-7 scans: with one shared σ and any positive height
    accepted, the interface fit's lowest χ² puts a 10-count Gaussian at 56 meV and
    shares 22.9 meV with the power law, 10.7 meV from 45.5 (benchmark matching). With
    peaks of at least 2 errors every interface centre lies within max(0.5 meV, 2 CRLB)
    of the truth (the CRLBs of the benchmark's table: 3.49, 1.10, 4.09, 1.54, 3.25 meV).
    Seed 24: the greedy start merged 45.5 and 41.1 and the search ended with two
    Gaussians on 17.4 meV (χ² 100.6); the start that spreads the centres over the signal
    reaches every centre within 0.9 meV (χ² 78.6)."""
    import warnings

    from hpcaet.eels import EelsWarning, analyse_spectra, synthetic_line_scan

    scan = synthetic_line_scan(snr=7.0, rng=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EelsWarning)
        result = analyse_spectra(
            scan.spectra,
            scan.energy,
            peak_background="joint",
            fit_range=(16.0, 70.0),
            initial_width=2.4,
            fit_starts=160,
            correct_delocalisation=True,
            pixel_maps=False,
            shared_width=True,
            min_significance=2.0,
            rng=seed,
        )
    fit = result.fits[1]
    truth = scan.peak_centre[1]
    tolerance = np.maximum(0.5, 2 * np.array([3.49, 1.10, 4.09, 1.54, 3.25]))
    order = _matched(fit.centre, truth, tolerance)
    assert np.all(np.abs(fit.centre[order] - truth) <= tolerance), fit.centre
    assert np.all(fit.height >= 2 * fit.height_error), fit.height / fit.height_error


def test_two_gaussians_on_one_centre_count_as_one_feature():
    """Where the data cannot place a fifth peak the fit may put two Gaussians on one
    centre: each height alone is then undetermined, their sum is not. The significance
    of such a pair is that of one Gaussian with the summed height; well-separated peaks
    are judged one by one, as before."""
    from types import SimpleNamespace

    from hpcaet.eels._search import _jacobian, _lm, significance

    e = np.arange(10.0, 70.0, 0.44)
    mean = gaussian(e, 40.0, 2.4, 100.0) + gaussian(e, 55.0, 2.4, 40.0) + 30.0
    y = np.random.default_rng(3).poisson(mean) - 30.0
    weight = 1.0 / np.sqrt(mean)
    run = dict(joint=False, weight=weight, max_evaluations=2000)
    one = _lm(e, y, np.array([40.0, 2.4, 90.0, 55.0, 2.4, 30.0]), n_peaks=2, **run)
    # the same optimum with its 40-meV peak as two Gaussians of half the height each on
    # one centre: the same model, residuals and fit quality
    c, s, h = one.x[:3]
    split = np.r_[c, s, 0.5 * h, c, s, 0.5 * h, one.x[3:]]
    pair = SimpleNamespace(
        x=split, fun=one.fun, jac=_jacobian(split, e, 3, False) * weight[:, None]
    )
    dof = e.size - 6
    as_one = significance(one, 2, None, dof=dof, poisson=True)
    as_pair = significance(pair, 3, None, dof=dof, poisson=True)
    assert as_pair == pytest.approx(as_one, rel=1e-6), (as_pair, as_one)
    # separated peaks: the smaller height over its own error (the 55-meV peak)
    cov = np.linalg.inv(one.jac.T @ one.jac) * max(np.sum(one.fun**2) / dof, 1.0)
    weakest = min(one.x[2] / np.sqrt(cov[2, 2]), one.x[5] / np.sqrt(cov[5, 5]))
    assert as_one == pytest.approx(weakest, rel=1e-6)
    assert 5.0 < as_one < 20.0  # the 40-count peak over a 30-count floor: well above 2
