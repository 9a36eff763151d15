"""Power-law background, zero-loss alignment and bad input."""

import numpy as np
import pytest

from hpcaet.eels import align_zero_loss, fit_power_law, power_law
from hpcaet.errors import InputError

E = np.arange(-30, 100, 0.44)


def test_power_law_recovered_from_poisson_counts():
    rng = np.random.default_rng(1)
    amplitude, exponent = np.array([2e8, 5e8]), np.array([3.0, 2.6])
    pos = E > 5
    expected = np.zeros((2, E.size))
    expected[:, pos] = power_law(E[pos], amplitude, exponent)
    counts = rng.poisson(expected).astype(float) + (~pos) * 1e3
    fit = fit_power_law(counts, E)
    # ~300-3000 counts per window channel, 20 channels: the exponent is known to ~0.01.
    np.testing.assert_allclose(fit.exponent, exponent, atol=0.03)
    sel = (E >= 16) & (E <= 70)
    np.testing.assert_allclose(fit.background[:, sel], expected[:, sel], rtol=0.03)
    # below the first window the background equals the spectrum (signal 0 there)
    assert np.all(fit.subtract(counts)[:, E < 16] == 0)


def test_alignment_recovers_known_shifts():
    shifts = np.array([-1.3, 0.0, 0.77, 2.1])
    sigma = 8.3 / 2.355
    spectra = 1e6 * np.exp(-0.5 * ((E - shifts[:, None]) / sigma) ** 2) + 50
    out = align_zero_loss(spectra, E)
    # a Gaussian ZLP is exactly a parabola in log: only the +50 offset biases it
    np.testing.assert_allclose(out.shift, shifts, atol=0.02)
    peak = out.energy[np.argmax(out.spectra, axis=1)]
    assert np.all(np.abs(peak) <= 0.44)


@pytest.mark.parametrize(
    "windows, match",
    [
        (((16, 20), (60, 120)), "not covered by the energy axis"),
        (((-5, 5), (60, 70)), "positive energies|positive energy"),
        (((16, 16.2), (60, 70)), "holds no channel"),
    ],
)
def test_bad_windows(windows, match):
    spectra = np.ones((2, E.size))
    with pytest.raises(InputError, match=match):
        fit_power_law(spectra, E, windows=windows)


def test_zeros_and_nans_are_rejected():
    spectra = np.ones((3, E.size))
    spectra[1] = 0
    with pytest.raises(InputError, match=r"position index \[1\].*all zeros"):
        fit_power_law(spectra, E)
    spectra[1] = 1
    spectra[2, 5] = np.nan
    with pytest.raises(InputError, match=r"NaN or inf at position index \[2\]"):
        fit_power_law(spectra, E)


def test_no_zero_loss_peak_is_an_error():
    core_loss = np.exp(-np.arange(E.size) / 50.0)[None, :] * 1e4
    with pytest.raises(InputError, match="no zero-loss peak"):
        align_zero_loss(core_loss, E)
