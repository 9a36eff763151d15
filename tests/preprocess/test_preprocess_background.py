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
