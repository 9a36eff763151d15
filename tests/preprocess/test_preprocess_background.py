"""Background from the hexagon minima of a lattice image."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.preprocess import estimate_background, hollow_fraction, reference_image

PIXEL = 0.32


@pytest.mark.parametrize("euler", [(0.0, 0.0, 0.0), (0.5, 15.0, -10.0)])
def test_smooth_background_under_an_ideal_lattice(mos2, euler):
    shape = (128, 128)
    lattice = 3000.0 * reference_image(mos2, euler, shape=shape, pixel_size=PIXEL)
    y, x = np.mgrid[0:128, 0:128] / 128.0
    truth = 0.3 * lattice.mean() * (1.0 + 0.5 * x + 0.3 * np.sin(2 * y))
    spacing = 3.16 / PIXEL
    rho = hollow_fraction(
        reference_image(mos2, euler, shape=(96, 96), pixel_size=PIXEL), spacing=spacing
    )
    est = estimate_background(lattice + truth, spacing=spacing, hollow=rho)
    plain = estimate_background(lattice + truth, spacing=spacing)
    inner = (slice(8, -8), slice(8, -8))
    left = np.sqrt(np.mean((est.background - truth)[inner] ** 2)) / truth.mean()
    left_plain = np.sqrt(np.mean((plain.background - truth)[inner] ** 2)) / truth.mean()
    # On an ideal lattice the tail correction is nearly exact (< 5 % left); the plain
    # minima of the paper keep the atom tails at the hollows (tens of per cent here).
    assert left < 0.05
    assert left_plain > left


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="all zero"):
        estimate_background(np.zeros((64, 64)), spacing=9.9)
    with pytest.raises(InputError, match="hollow"):
        estimate_background(np.ones((64, 64)), spacing=9.9, hollow=1.5)


def test_vacuum_around_a_flake_pins_the_background(mos2):
    # A tilted lattice disc (radius 20 Å) in a 51 Å field, the rest vacuum, over a smooth
    # background of 0.3 of the mean specimen signal with a 30 % slope across the field.
    shape, euler = (160, 160), (0.5, 20.0, -10.0)
    lattice = 3000.0 * reference_image(mos2, euler, shape=shape, pixel_size=PIXEL)
    y, x = (np.mgrid[0:160, 0:160] - 80) * PIXEL
    lattice = lattice * (np.hypot(x, y) < 20.0)
    yy, xx = np.mgrid[0:160, 0:160] / 160.0
    truth = 0.3 * lattice.mean() * (1.0 + 0.3 * xx - 0.2 * yy**2)
    spacing = 3.16 / PIXEL
    rng = np.random.default_rng(3)
    image = lattice + truth + rng.normal(0.0, 0.05 * truth.mean(), shape)
    est = estimate_background(image, spacing=spacing)
    plain = estimate_background(image, spacing=spacing, vacuum=0)
    left = np.sqrt(np.mean((est.background - truth) ** 2)) / truth.mean()
    left_plain = np.sqrt(np.mean((plain.background - truth) ** 2)) / truth.mean()
    # The vacuum means are the background itself and the fitted tail fraction absorbs
    # the tilt's tails at the hollows: a few per cent left (5 % pixel noise, averaged);
    # the hexagon minima alone keep the tails (tens of per cent). Measured over noise
    # seeds 3-5: 4.1-5.1 % with the defaults' species table (3.0-4.0 % with the earlier
    # S/Mo ratio of 0.26 instead of 0.225), against 67-68 % for the minima alone.
    assert left < 0.06, left
    assert left_plain > 2 * left
