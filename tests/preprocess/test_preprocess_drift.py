"""Drift and scan-distortion correction against the simulator's time model."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.forward import species_table
from hpcaet.phantom.simulate import TiltDistortions, simulate_tilt
from hpcaet.preprocess import correct_frames, estimate_drift, ideal_monolayer, register_translation

PIXEL = 0.32


def _tilt(mos2, velocity, *, dose=2e5, frames=10, shape=(96, 96)):
    positions, weights, b, _ = ideal_monolayer(mos2, 12.0)  # a flake inside the field
    species = np.where(weights > 0.005, "Mo", "S")
    d = TiltDistortions(
        velocity=np.asarray(velocity, float),
        offset=np.zeros(2),
        vibration_direction=0.0,
        vibration_amplitude=0.0,
        vibration_width=0.0,
        background_seed=1,
    )
    return simulate_tilt(
        positions,
        species_table(species, {"Mo": 0.01, "S": 0.0026}),
        np.full(len(positions), 13.0),
        np.zeros(3),
        d,
        shape=shape,
        pixel_size=PIXEL,
        frames=frames,
        dose_per_frame=dose / frames,
        read_noise=0.3,
        probe_fwhm=0.8,
        background_level=0.1,
        background_scale=40.0,
        rng=5,
    )


@pytest.mark.parametrize("velocity", [(0.55, -0.3), (-0.2, 0.7)])
def test_drift_per_frame_within_target(mos2, velocity):
    result = _tilt(mos2, velocity)
    est = estimate_drift(result.frames)
    error = est.drift - result.drift
    # Target of issue 3: 0.05 px RMS per frame (measured ~0.01-0.02 here at 2e5 e/Å²).
    assert np.sqrt(np.mean(error**2)) < 0.05
    np.testing.assert_allclose(est.velocity, velocity, atol=0.01)


def test_corrected_sum_sits_in_the_t0_frame(mos2):
    result = _tilt(mos2, (0.6, 0.4))
    summed = correct_frames(result.frames, (0.6, 0.4))
    truth = result.clean + result.background
    # The plain sum is smeared and displaced by about half the total drift; the
    # corrected one registers onto the t = 0 truth to a few hundredths of a pixel.
    assert np.hypot(*register_translation(truth, summed, window=0)) < 0.05
    assert np.hypot(*register_translation(truth, result.frames.sum(0), window=0)) > 1.0


def test_bad_frames_are_refused(mos2):
    frames = _tilt(mos2, (0.3, 0.1), frames=3).frames
    with pytest.raises(InputError, match=r"stack \(n_frame, ny, nx\)"):
        estimate_drift(frames[0])
    frames[1] = 0.0
    with pytest.raises(InputError, match=r"frame\(s\) \[1\] are constant"):
        estimate_drift(frames)
