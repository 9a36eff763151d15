"""Vibration kernel estimation and Lucy–Richardson deconvolution on a known blur."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from hpcaet.errors import InputError
from hpcaet.forward.kernels import vibration_kernel
from hpcaet.geometry import euler_to_matrix
from hpcaet.preprocess import (
    VibrationEstimate,
    deconvolve,
    estimate_membrane_vibration,
    estimate_vibration,
    find_metal_columns,
    reference_image,
)

PIXEL = 0.32


def _blurred(mos2, euler, direction, amplitude, m=48):
    fine = reference_image(
        mos2, euler, shape=(2 * m, 2 * m), pixel_size=PIXEL / 2, offset=(0.4, -0.3)
    )
    k = vibration_kernel(direction, amplitude, 0.05, pixel_size=PIXEL / 2)
    return 3000 * signal.fftconvolve(fine, k, mode="same")[::2, ::2]


@pytest.mark.parametrize("along_normal", [True, False])
def test_kernel_of_an_ideal_lattice_is_recovered(mos2, rng, along_normal):
    euler = (0.2, 19.5, -18.4)
    crop = _blurred(mos2, euler, 47.0, 0.35)
    crop = crop + rng.normal(0, 0.02 * crop.max(), crop.shape)
    cols = find_metal_columns(crop, lattice_constant=3.16 / PIXEL).position
    est = estimate_vibration(
        crop, mos2, euler, pixel_size=PIXEL, columns=cols, along_normal=along_normal
    )
    # The model is exact here (ideal lattice, known probe and B-factors), so the
    # issue's targets (5 deg, 10 %) hold with a 2 % noise. With along_normal=True the
    # direction is the projected sample normal at these angles, 45.1 deg, 1.9 deg from
    # the 47 deg blur drawn here (a near-normal vibration), and the amplitude is fitted
    # along it.
    assert abs((est.direction - 47.0 + 90) % 180 - 90) < 5
    assert abs(est.amplitude / 0.35 - 1) < 0.1


def test_deconvolution_sharpens_towards_the_unblurred_image(mos2):
    sharp = _blurred(mos2, (0, 10, 0), 0.0, 0.0, m=64)
    blurred = _blurred(mos2, (0, 10, 0), 30.0, 0.6, m=64)
    out = deconvolve(
        blurred, VibrationEstimate(30.0, 0.6, 0.05, 0.0), pixel_size=PIXEL, iterations=30
    )
    inner = (slice(8, -8), slice(8, -8))
    before = np.linalg.norm((blurred - sharp)[inner])
    after = np.linalg.norm((out - sharp)[inner])
    assert after < 0.8 * before


def test_one_membrane_amplitude_is_recovered_from_every_tilt(mos2, rng):
    # the membrane vibrates along its normal with A = 0.5 Å; each image sees A |R[:2, 2]|
    eulers = np.array([(0.3, 1.1, -2.0), (0.2, -14.5, 15.9), (-0.6, 19.5, -18.4), (0.0, 26.5, 7.8)])
    crops, truth = [], []
    for e in eulers:
        R = euler_to_matrix(e)
        direction = np.rad2deg(np.arctan2(R[1, 2], R[0, 2]))
        truth.append(0.5 * np.hypot(R[0, 2], R[1, 2]))
        crop = _blurred(mos2, e, direction, truth[-1])
        crops.append(crop + rng.normal(0, 0.05 * crop.max(), crop.shape))
    columns = [find_metal_columns(c, lattice_constant=3.16 / PIXEL).position for c in crops]
    est, amplitude = estimate_membrane_vibration(
        crops, mos2, eulers, pixel_size=PIXEL, columns=columns
    )
    # exact model (ideal lattice), 5 % noise: the one amplitude is pinned by all tilts;
    # 5 % is half the 10 % target
    assert abs(amplitude / 0.5 - 1) < 0.05
    assert np.allclose([e.amplitude for e in est], amplitude / 0.5 * np.array(truth))
    assert abs(est[0].width - 0.05) < 0.05
    with pytest.raises(InputError, match=r"one row per crop \(4 crops\)"):
        estimate_membrane_vibration(crops, mos2, eulers[:3], pixel_size=PIXEL)
