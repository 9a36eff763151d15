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


@pytest.mark.parametrize("estimator", ["poisson", "loglog", "two_area", "least_squares"])
def test_every_estimator_recovers_an_exact_power_law(estimator):
    # noise-free counts: every estimator must return the law that made them
    spectra = power_law(E[E > 1], [2e8, 5e7], [3.0, 2.4])
    fit = fit_power_law(spectra, E[E > 1], estimator=estimator)
    np.testing.assert_allclose(fit.exponent, [3.0, 2.4], rtol=1e-6)
    np.testing.assert_allclose(fit.amplitude, [2e8, 5e7], rtol=1e-5)


def test_poisson_estimator_is_unbiased_where_loglog_is_not():
    # ~10 counts per channel in the 60-70 meV window: E[log y] < log E[y] biases the
    # log-log line (exponent too high); the Poisson likelihood is unbiased. 400 spectra:
    # the standard error of the mean exponent is ~0.05 / 20 = 0.0025.
    e = E[E > 1]
    rng = np.random.default_rng(4)
    counts = rng.poisson(np.tile(3e6 * e**-3.0, (400, 1))).astype(float)
    poisson = fit_power_law(counts, e, estimator="poisson").exponent.mean()
    loglog = fit_power_law(counts, e, estimator="loglog").exponent.mean()
    assert abs(poisson - 3.0) < 0.01
    assert loglog - 3.0 > 0.02


def test_unknown_estimator():
    with pytest.raises(InputError, match="unknown background estimator 'median'"):
        fit_power_law(np.ones(E.size), E, estimator="median")


def test_one_channel_window_warns_and_fits():
    from hpcaet.eels import EelsWarning

    e = np.arange(-20, 130, 0.5)
    spectra = np.where(e > 1, 1e6 * np.maximum(e, 1) ** -2.0, 1e4)
    with pytest.warns(EelsWarning, match=r"8.5–8.9 meV holds 1 channel at a dispersion of 0.5"):
        fit = fit_power_law(spectra, e, windows=[(8.5, 8.9), (72, 78), (105, 120)])
    np.testing.assert_allclose(fit.exponent, 2.0, rtol=1e-6)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_core_loss_axis_is_named_for_every_shape(shape):
    from hpcaet.eels import analyse_spectra

    # 350-860 eV at 0.25 eV/channel (the real STO file): no zero-loss peak can be on it,
    # even though its Ti-L edge makes a maximum inside the axis
    e = 350e3 + 250.0 * np.arange(2048)
    edge = 1e3 * np.exp(-0.5 * ((e - 459e3) / 2e3) ** 2) + 1e4 * (e / 350e3) ** -3
    spectra = np.broadcast_to(edge, (*shape, e.size)).reshape(-1, e.size)
    with pytest.raises(InputError, match=r"350000 to 861750 meV.*core-loss data"):
        align_zero_loss(spectra, e)
    scan_shape = shape if len(shape) == 2 else None
    with pytest.raises(InputError, match=r"core-loss data"):
        analyse_spectra(spectra, e, clusters=1, zero_loss="none", scan_shape=scan_shape)
