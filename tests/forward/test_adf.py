"""Dynamical ADF tiles (abTEM): physics the linear model lacks; settings refused early."""

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.errors import ConfigError, InputError
from hpcaet.forward.adf import ADFOptics, ADFSettings, adf_tile, cell_gpts, check_adf
from hpcaet.phantom.simulate import upsample_probe_image

pytest.importorskip("abtem")

PAPER_OPTICS = ADFOptics(voltage=60.0, convergence_angle=38.0, detector=(50.0, 210.0))


def _tile(positions, symbols, settings):
    # an 8 x 8 tile of probe positions at 0.32 Å around the origin
    return adf_tile(
        np.asarray(positions, float),
        np.asarray(symbols),
        origin=(-1.12, -1.12),
        shape=(8, 8),
        step=0.32,
        optics=PAPER_OPTICS,
        settings=settings,
    )


def test_stacked_sulfur_pair_scatters_more_than_two_atoms():
    # At 60 kV, 38 mrad, 50-210 mrad the first S of a pair along the beam focuses the
    # probe on the second (channelling): the pair gives about 1.5x the signal of two
    # separate S atoms (1.54 measured with 0.25 Å slices, 1.55 with the default 0.5 Å),
    # which the linear model, a sum over atoms, cannot draw.
    settings = ADFSettings(tile=8, engine="prism", prism_interpolation=1)
    single = _tile([[0.0, 0.0, 0.0]], ["S"], settings)
    pair = _tile([[0.0, 0.0, -1.56], [0.0, 0.0, 1.56]], ["S", "S"], settings)
    ratio = pair.sum() / (2.0 * single.sum())
    assert 1.35 < ratio < 1.75, ratio
    # and a W atom outshines an S atom by about Z^1.3 (74/16)^1.3 ~ 7 to 10
    tungsten = _tile([[0.0, 0.0, 0.0]], ["W"], settings)
    assert 6.0 < tungsten.sum() / single.sum() < 12.0
    # the signal peaks on the atom (tile centre: position index 3.5 along each axis)
    row, col = np.unravel_index(single.argmax(), single.shape)
    assert {int(row), int(col)} <= {3, 4}


def test_a_tile_without_atoms_is_vacuum():
    settings = ADFSettings(tile=8)
    far = _tile([[30.0, 30.0, 0.0]], ["W"], settings)
    assert far.shape == (8, 8) and not far.any()


def test_check_adf_refuses_what_cannot_be_right():
    with pytest.raises(InputError, match="at most 0.077"):
        check_adf(PAPER_OPTICS, ADFSettings(sampling=0.1), step=0.32)
    with pytest.raises(InputError, match="engine"):
        check_adf(PAPER_OPTICS, ADFSettings(engine="bloch"), step=0.32)
    with pytest.raises(InputError, match="inner angle"):
        check_adf(ADFOptics(60.0, 60.0, (50.0, 210.0)), ADFSettings(), step=0.32)
    with pytest.raises(InputError, match="tile"):
        check_adf(PAPER_OPTICS, ADFSettings(tile=0), step=0.32)
    # the same reaches a config before any work starts
    with pytest.raises(ConfigError, match="imaging.multislice: .*sampling"):
        load_config(overrides={"imaging": {"model": "multislice", "multislice": {"sampling": 0.1}}})


def test_cell_gpts_has_only_small_prime_factors():
    for length in (7.3, 13.12, 21.7, 64.0):
        n = cell_gpts(length, 0.07, multiple=2)
        assert n >= length / 0.07 and n % 2 == 0
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        assert m == 1, n


def test_upsampling_a_band_limited_image():
    # cosines below 0.35 cycles per probe step, evaluated at the half steps: the
    # interpolation keeps every sample and is within 0.3 % of the range 8 samples in
    rng = np.random.default_rng(0)
    freq = rng.uniform(-0.35, 0.35, (6, 2))
    phase = rng.uniform(0, 2 * np.pi, 6)

    def signal(y, x):
        return sum(
            np.cos(2 * np.pi * (a * x + b * y) + p) for (a, b), p in zip(freq, phase, strict=True)
        )

    coarse = signal(*np.mgrid[0:40, 0:40].astype(float))
    fine = upsample_probe_image(coarse)
    truth = signal(*(np.mgrid[0:80, 0:80] / 2.0))
    np.testing.assert_allclose(fine[::2, ::2], coarse, atol=1e-12)
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(fine - truth)[inner].max() < 3e-3 * np.ptp(truth)
