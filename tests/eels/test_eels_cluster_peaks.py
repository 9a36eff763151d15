"""k-means with the correlation distance, contiguous regions and Gaussian fits."""

import warnings

import numpy as np
import pytest

from hpcaet.eels import (
    TABLE_S3_EELS,
    GaussianFit,
    contiguous_regions,
    correlation_kmeans,
    fit_gaussians,
    gaussian,
)
from hpcaet.errors import InputError

E = np.arange(16, 70, 0.44)


def test_kmeans_groups_by_shape_not_scale():
    rng = np.random.default_rng(3)
    shapes = [
        gaussian(E, 30, 3, 1) + gaussian(E, 45, 3, 0.5),
        gaussian(E, 30, 3, 0.3) + gaussian(E, 45, 3, 1),
    ]
    truth = np.repeat([0, 1], 10)
    scale = rng.uniform(0.2, 5.0, truth.size)  # correlation ignores intensity
    x = scale[:, None] * np.stack([shapes[t] for t in truth])
    x += rng.normal(0, 0.02, x.shape) * scale[:, None]
    result = correlation_kmeans(x, k=2, rng=0)
    np.testing.assert_array_equal(result.labels, truth)
    assert np.all(result.distance < 0.05)


def test_contiguous_regions_minimise_misassignment():
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 2, 1, 2, 2, 2])
    regions = contiguous_regions(labels)
    assert regions.starts.tolist() in ([0, 3, 7], [0, 5, 7], [0, 3, 9], [0, 5, 9])
    assert regions.misassigned == 2


def test_fewer_spectra_than_clusters():
    with pytest.raises(InputError, match="2 spectra for k = 3"):
        correlation_kmeans(np.random.default_rng(0).random((2, 20)), k=3)


def test_constant_spectrum_is_rejected():
    x = np.random.default_rng(0).random((5, 20))
    x[2] = 0.0
    with pytest.raises(InputError, match=r"position index \[2\] is constant"):
        correlation_kmeans(x, k=2)


def test_five_gaussians_noise_free_are_recovered_from_automatic_starts():
    centres = np.array(TABLE_S3_EELS["MoS2"])
    heights = np.array([1.0, 0.8, 0.35, 0.5, 0.45]) * 1e3
    y = sum(gaussian(E, c, 2.42, h) for c, h in zip(centres, heights, strict=False))
    fit = fit_gaussians(y, E, fit_range=(16, 69), initial_width=3.0, starts=3)
    # exact data: the least-squares optimum is the truth; 1e-3 meV allows for tolerances
    np.testing.assert_allclose(fit.centre, centres, atol=1e-3)
    np.testing.assert_allclose(fit.width, 2.42, atol=1e-3)


def test_centre_error_matches_scatter():
    # One Gaussian with Gaussian noise: the reported standard error must match the
    # scatter of the centre over repeated draws (within 25 %, ~60 draws).
    rng = np.random.default_rng(5)
    truth = gaussian(E, 35.0, 3.0, 100.0)
    centres, errors = [], []
    for _ in range(60):
        fit = fit_gaussians(
            truth + rng.normal(0, 5.0, E.size), E, n_peaks=1, fit_range=(16, 69), initial=[34.0]
        )
        centres.append(fit.centre[0])
        errors.append(fit.centre_error[0])
    assert np.std(centres) == pytest.approx(np.mean(errors), rel=0.25)
    assert abs(np.mean(centres) - 35.0) < 3 * np.std(centres) / np.sqrt(60)


def test_fit_range_outside_axis():
    with pytest.raises(InputError, match="peak fit range 10–70 meV is not covered"):
        fit_gaussians(np.ones(E.size), E, fit_range=(10, 70))


def test_poisson_weighted_fit_errors_match_scatter_on_a_steep_tail():
    # Two peaks on a power-law tail 100x their height at 16 meV (Poisson counts), fitted
    # with weights 1/sqrt(counts): the centres must be unbiased (mean error within 3
    # standard errors of the mean) and the reported standard error must match their
    # scatter over 30 draws (within 35 %: the spread of an RMS from 30 draws is ~13 %).
    rng = np.random.default_rng(8)
    tail = 1e6 * (E / 16.0) ** -3.0
    truth = tail + gaussian(E, 24.0, 2.42, 1e4) + gaussian(E, 31.0, 2.42, 7.5e3)
    errors, ses = [], []
    for _ in range(30):
        y = rng.poisson(truth).astype(float)
        fit = fit_gaussians(
            y,
            E,
            n_peaks=2,
            fit_range=(16, 69),
            initial=[31.0, 24.0],
            initial_width=2.4,
            power_law=(1e6 * 16.0**3, 3.0),
            noise=np.sqrt(np.maximum(y, 1.0)),
        )
        errors.append(fit.centre - [31.0, 24.0])
        ses.append(fit.centre_error)
    errors, se = np.array(errors), np.mean(ses, axis=0)
    np.testing.assert_allclose(np.sqrt(np.mean(errors**2, axis=0)), se, rtol=0.35)
    assert np.all(np.abs(errors.mean(axis=0)) < 3 * se / np.sqrt(30))


def test_bad_noise_is_rejected():
    y = gaussian(E, 35.0, 3.0, 100.0)
    with pytest.raises(InputError, match="noise must be finite and positive"):
        fit_gaussians(y, E, n_peaks=1, fit_range=(16, 69), initial=[35.0], noise=np.zeros(E.size))


def test_a_centre_with_an_error_bar_wider_than_the_fit_range_warns():
    from hpcaet.eels import EelsWarning
    from hpcaet.eels.analysis import _warn_loose_peaks

    def fit(errors):
        n = len(errors)
        empty = np.zeros(0)
        return GaussianFit(
            centre=np.array([45.0, 30.0][:n]),
            centre_error=np.array(errors, float),
            width=np.ones(n),
            width_error=np.ones(n),
            height=np.ones(n),
            height_error=np.ones(n),
            energy=empty,
            model=empty,
            components=np.zeros((n, 0)),
            background=empty,
            power_law=None,
            residual_std=1.0,
            evaluations=1,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_loose_peaks([fit([0.2, 53.9])], (16.0, 70.0))  # within the 54-meV range
    with pytest.warns(EelsWarning, match=r"group 1 peak 2: 30.0 ± 123.2 meV"):
        _warn_loose_peaks([fit([0.2, 0.3]), fit([0.2, 123.2])], (16.0, 70.0))
    with pytest.warns(EelsWarning, match=r"group 0 peak 1: 45.0 ± nan meV"):
        _warn_loose_peaks([fit([np.nan])], (16.0, 70.0))
