"""Variance stabilisation and denoising of Poisson–Gaussian counts."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import ConfigError, InputError
from hpcaet.preprocess import (
    anscombe,
    bm3d_available,
    denoise_image,
    estimate_noise,
    inverse_anscombe,
    reference_image,
)


def test_anscombe_stabilises_and_inverts_without_bias(rng):
    for lam in (3.0, 20.0, 200.0):
        z = rng.poisson(lam, 200_000) + rng.normal(0, 1.0, 200_000)
        t = anscombe(z, read_noise=1.0)
        # unit variance to a few per cent for counts >= 3 (Mäkinen & Foi, fig. 1)
        assert abs(t.std() - 1.0) < 0.06
        # the exact-unbiased-inverse approximation returns the mean count (< 2 %)
        assert abs(inverse_anscombe(np.full(1, t.mean()), read_noise=1.0)[0] / lam - 1) < 0.02


def test_noise_estimate_of_white_noise(rng):
    assert abs(estimate_noise(rng.normal(0, 2.5, (256, 256))) / 2.5 - 1) < 0.03


@pytest.mark.parametrize(
    "method",
    [
        "wiener",
        pytest.param(
            "bm3d",
            marks=pytest.mark.skipif(
                not bm3d_available(), reason="bm3d not installed (pip install 'hpcaet[denoise]')"
            ),
        ),
    ],
)
def test_denoising_raises_psnr_of_a_lattice_image(mos2, rng, method):
    clean = 2000.0 * reference_image(mos2, (0, 0, 0), shape=(96, 96), pixel_size=0.32) + 1.0
    noisy = rng.poisson(clean) + rng.normal(0, 1.0, clean.shape)
    out = denoise_image(noisy, read_noise=1.0, method=method)

    def psnr(a):
        return 10 * np.log10(clean.max() ** 2 / np.mean((a - clean) ** 2))

    # at ~10 counts per metal peak both filters gain well over 5 dB on a lattice
    assert psnr(out) - psnr(noisy) > 5.0


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="all zero"):
        denoise_image(np.zeros((32, 32)))
    with pytest.raises(ConfigError, match="one of"):
        denoise_image(np.ones((32, 32)), method="tv")
