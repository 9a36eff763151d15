"""Sub-pixel registration recovers known shifts (hpcaet.preprocess.registration)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hpcaet.errors import InputError
from hpcaet.preprocess import register_translation


def _scene(rng, shape=(96, 96)):
    return ndimage.gaussian_filter(rng.normal(size=shape), 2.0)


def _shifted(image, shift):
    """Exact periodic sub-pixel shift (Fourier shift theorem)."""
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), shift)).real


@pytest.mark.parametrize("normalization", [None, "phase"])
@pytest.mark.parametrize("shift", [(0.0, 0.0), (1.3, -2.6), (-4.71, 3.05)])
def test_recovers_a_known_subpixel_shift(rng, shift, normalization):
    ref = _scene(rng)
    moving = _shifted(ref, shift)
    found = register_translation(ref, moving, window=0, normalization=normalization)
    # The refinement grid is 1/50 px and the parabola polishes below it; the exact
    # Fourier shift leaves nothing else (phase correlation ~0.008 px from the
    # whitened Nyquist band).
    np.testing.assert_allclose(found, shift, atol=0.01)


def test_search_radius_picks_the_peak_near_the_prior(rng):
    # A periodic pattern correlates equally at every period; the prior decides.
    y, x = np.mgrid[0:64, 0:64]
    ref = np.cos(2 * np.pi * x / 8) + np.cos(2 * np.pi * y / 8)
    moving = _shifted(ref, (0.0, 1.5))
    found = register_translation(ref, moving, window=0, expected=(0.0, 9.0), search_radius=2.0)
    np.testing.assert_allclose(found, (0.0, 9.5), atol=0.02)


def test_bad_inputs_are_refused(rng):
    ref = _scene(rng)
    with pytest.raises(InputError, match="same shape"):
        register_translation(ref, ref[:-1])
    with pytest.raises(InputError, match="constant"):
        register_translation(ref, np.zeros_like(ref))
    with pytest.raises(InputError, match="normalization"):
        register_translation(ref, ref, normalization="cross")
