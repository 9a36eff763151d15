"""Delocalised signal of neighbouring regions: decay length, own spectra, peak bias."""

import warnings

import numpy as np
import pytest

from hpcaet.eels import (
    EelsWarning,
    analyse_spectra,
    estimate_delocalisation,
    region_weights,
    synthetic_line_scan,
)
from hpcaet.errors import InputError


def test_region_weights_decay_from_the_edge():
    w = region_weights([0, 3], 6, 2.0)
    # point 3 is half a step inside region 1: distance to region 0's edge (2.5) is 0.5
    np.testing.assert_allclose(w[:, 0], [1, 1, 1, np.exp(-0.25), np.exp(-0.75), np.exp(-1.25)])
    np.testing.assert_allclose(w[:, 1], [np.exp(-1.25), np.exp(-0.75), np.exp(-0.25), 1, 1, 1])


def test_exact_mixture_is_unmixed():
    # Spectra built exactly from the model: the decay length (to the optimiser's 1e-3
    # steps tolerance, 2e-3) and the own spectra (1e-6 relative) come back.
    rng = np.random.default_rng(3)
    starts = [0, 12, 20]
    pure = rng.uniform(1, 2, (3, 50))
    x = region_weights(starts, 32, 1.3) @ pure
    d = estimate_delocalisation(x, starts)
    assert abs(d.length - 1.3) < 2e-3
    np.testing.assert_allclose(d.pure, pure, rtol=1e-4)
    assert d.cost < 1e-6 * d.cost_local


def test_decay_length_of_the_synthetic_scan():
    # Truth: 1.6 nm decay at 1.6 nm steps = 1 step. Measured 0.98-1.06 over seeds at SNR
    # 30 (the two-window background of each spectrum is slightly biased): 0.1 tolerance.
    scan = synthetic_line_scan(snr=30.0, rng=4)
    result = analyse_spectra(
        scan.spectra,
        scan.energy,
        peak_background="joint",
        fit_starts=1,
        initial_width=2.4,
        correct_delocalisation=True,
        rng=4,
    )
    assert abs(result.delocalisation.length - 1.0) < 0.1


def test_correction_removes_the_bias_of_the_interface_peaks():
    # Noise-free scan (expected counts). Without the correction the delocalised MoS2 49.4
    # meV mode inside the interface mean pulls the interface 45.5 meV peak by -1.6 meV;
    # with it, the interface peaks 45.5/41.1/36.0 are within 0.3 meV (what is left comes
    # from overlapping peaks and the power-law model of the summed tails).
    scan = synthetic_line_scan(rng=0)
    expected = scan.background + scan.signal
    err = {}
    for correct in (False, True):
        # uncorrected, the MoS2 mean holds the interface's signal too, and a fit from a
        # single start may leave one of its five peaks undetermined (EelsWarning): only
        # the interface centres count here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if not correct else "error", EelsWarning)
            result = analyse_spectra(
                expected,
                scan.energy,
                peak_background="joint",
                fit_starts=1,
                initial_width=2.4,
                correct_delocalisation=correct,
                rng=0,
            )
        err[correct] = result.fits[1].centre[:3] - scan.peak_centre[1, :3]
    assert abs(err[False][0]) > 1.0
    assert np.all(np.abs(err[True]) < 0.3), err[True]


def test_too_small_region_is_rejected():
    with pytest.raises(InputError, match="at least two points"):
        estimate_delocalisation(np.ones((10, 5)), [0, 5, 9])
