"""The peak fit's search goes on in rounds while a round still lowers χ²."""

import numpy as np
import pytest

from hpcaet.eels.peaks import fit_gaussians, gaussian
from hpcaet.errors import InputError

# Table S3's interface peaks (the hardest group: 45.5 and 41.1 within one FWHM), σ 2.4 meV,
# on a flat background of 30 counts, Poisson noise
TRUTH = np.array([45.5, 41.1, 36.0, 27.9, 22.9])
HEIGHTS = np.array([60.0, 45.0, 20.0, 40.0, 25.0])
ENERGY = np.arange(10.0, 80.0, 0.44)
OPTIONS = dict(
    n_peaks=5,
    fit_range=(16.0, 70.0),
    initial_width=2.4,
    shared_width=True,
    min_significance=2.0,
    profile=False,
    starts=8,
)


def _spectrum(seed: int):
    mean = sum(gaussian(ENERGY, c, 2.4, h) for c, h in zip(TRUTH, HEIGHTS, strict=True)) + 30.0
    counts = np.random.default_rng(seed).poisson(mean).astype(float) - 30.0
    return counts, np.sqrt(mean)


def _chi2(fit, counts, noise) -> float:
    inside = np.isin(ENERGY, fit.energy)
    return float(np.sum(((fit.model - counts[inside]) / noise[inside]) ** 2))


def test_more_rounds_find_the_lower_minimum():
    # Seed 11: 8 runs end with two Gaussians on 29.6 meV and none near 41 (χ² 135.0);
    # rounds of 8 more find the arrangement of the truth, every centre within 0.5 meV,
    # at χ² 132.6 (measured once; asserted: lower by more than 1, centres within 0.6).
    counts, noise = _spectrum(11)
    one = fit_gaussians(counts, ENERGY, noise=noise, rounds=1, **OPTIONS)
    more = fit_gaussians(counts, ENERGY, noise=noise, rounds=6, **OPTIONS)
    assert _chi2(more, counts, noise) < _chi2(one, counts, noise) - 1.0
    assert np.abs(more.centre - TRUTH).max() < 0.6, more.centre
    assert np.abs(one.centre - TRUTH).max() > 3.0, one.centre


def test_one_round_is_the_plain_search():
    # rounds only add runs; the kept run's χ² may still rise where the added runs reach a
    # higher significance level (min_significance), which these seeds do not
    for seed in (1, 3, 11):
        counts, noise = _spectrum(seed)
        plain = fit_gaussians(counts, ENERGY, noise=noise, **OPTIONS)
        one = fit_gaussians(counts, ENERGY, noise=noise, rounds=1, **OPTIONS)
        np.testing.assert_array_equal(plain.centre, one.centre)
        more = fit_gaussians(counts, ENERGY, noise=noise, rounds=4, **OPTIONS)
        assert _chi2(more, counts, noise) <= _chi2(one, counts, noise) + 1e-9


@pytest.mark.parametrize("rounds", [0, 2.5, -1])
def test_bad_rounds_are_refused(rounds):
    counts, noise = _spectrum(0)
    with pytest.raises(InputError, match=r"rounds must be a positive integer"):
        fit_gaussians(counts, ENERGY, noise=noise, **(OPTIONS | {"rounds": rounds}))
