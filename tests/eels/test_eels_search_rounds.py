"""The peak fit's search: rounds while a round still lowers χ², the start that spreads the
centres over the signal."""

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
    spread_start=False,  # the greedy start alone: the case the rounds were made for
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


def test_the_spread_start_finds_what_the_greedy_start_misses():
    # Seed 11 again: with the centres that split the signal into five equal shares as a
    # second start, the first 8 runs already reach the truth's arrangement (χ² 132.6
    # against 135.0, measured once; asserted as in the rounds test above)
    counts, noise = _spectrum(11)
    greedy = fit_gaussians(counts, ENERGY, noise=noise, **OPTIONS)
    spread = fit_gaussians(counts, ENERGY, noise=noise, **(OPTIONS | dict(spread_start=True)))
    assert _chi2(spread, counts, noise) < _chi2(greedy, counts, noise) - 1.0
    assert np.abs(spread.centre - TRUTH).max() < 0.6, spread.centre


def test_quantile_centres_split_the_signal_into_equal_shares():
    from hpcaet.eels._search import quantile_centres

    # a flat signal on 20–70 meV (zero elsewhere): shares of 10 meV, centres at their middles
    energy = np.arange(0.0, 80.0, 0.01)
    flat = np.where((energy >= 20.0) & (energy < 70.0), 3.0, -1.0)  # negatives do not count
    centres = quantile_centres(flat, energy, n_peaks=5)
    np.testing.assert_allclose(centres, [65.0, 55.0, 45.0, 35.0, 25.0], atol=0.02)
    # nothing positive: evenly spread over the axis
    even = quantile_centres(-np.ones_like(energy), energy, n_peaks=4)
    np.testing.assert_allclose(even, [70.0, 50.0, 30.0, 10.0], atol=0.02)
