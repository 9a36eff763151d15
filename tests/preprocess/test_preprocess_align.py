"""Centre-of-mass alignment."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.preprocess import alignment_shifts, centre_of_mass, register_translation, shift_image


def test_centre_of_mass_uses_columns_seen_everywhere():
    p = np.array([[[1.0, 1.0], [3.0, 3.0], [np.nan, np.nan]], [[2.0, 0.0], [4.0, 2.0], [9.0, 9.0]]])
    np.testing.assert_allclose(centre_of_mass(p), [[2.0, 2.0], [3.0, 1.0]])
    with pytest.raises(InputError, match="no column is seen in every image"):
        centre_of_mass(np.full((2, 3, 2), np.nan))


def test_shift_moves_a_blob_onto_the_centre():
    y, x = np.mgrid[0:64, 0:64]
    blob = np.exp(-((y - 20.3) ** 2 + (x - 40.7) ** 2) / 8.0)
    shift = alignment_shifts([[20.3, 40.7]], (64, 64))[0]
    out = shift_image(blob, shift)
    target = np.exp(-((y - 32) ** 2 + (x - 32) ** 2) / 8.0)
    # the spline shift is accurate to well under the 0.1 px target
    assert np.hypot(*register_translation(target, out, window=0)) < 0.02
