"""Roughness in strips and the ripple fit (hpcaet.structure.ripples)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.structure import (
    detrend_plane,
    find_interface,
    fit_ripple,
    interface_distance,
    strip_roughness,
)

# A straight zigzag interface across the field (y = 3.7 Å) with a ripple along it.
STRAIGHT = ((-1, -1), (-1, 0.05), (1, 0.05), (1, -1))


@pytest.mark.parametrize(("amplitude", "wavelength", "seed"), [(1.5, 50.0, 0), (0.8, 30.0, 1)])
def test_ripple_amplitude_and_wavelength_within_10_percent(amplitude, wavelength, seed):
    spec = HeterojunctionSpec(
        field=(90.0, 60.0),
        region_polygon=STRAIGHT,
        ripple_amplitude=amplitude,
        ripple_wavelength=wavelength,
    )
    atoms = build_heterojunction(spec, rng=seed)
    species = np.array(["vac" if s == "X" else s for s in atoms.get_chemical_symbols()])
    metals = np.isin(species, ("Mo", "W"))
    found = find_interface(atoms.positions, species)
    d, arc = interface_distance(atoms.positions, found)
    height = detrend_plane(atoms.positions, mask=metals)
    band = metals & (np.abs(d) <= 3.2)
    fit = fit_ripple(arc[band], height[band])
    # The metal rows next to the interface lie 1.37 Å from it, where the phantom's
    # envelope 0.3 + 0.7 exp(-d / 25 Å) is 0.96, plus 0.05 Å thermal noise: the fitted
    # amplitude is ~4 % low. Target of issue 6: 10 %.
    assert fit.amplitude == pytest.approx(amplitude, rel=0.10)
    assert fit.wavelength == pytest.approx(wavelength, rel=0.10)
    # The residual: 0.05 Å noise on three rows 0.3-2.7 Å from the interface whose
    # envelopes differ by up to 7 % (0.1 Å at a crest of 1.5 Å).
    assert fit.rms < 0.25


def test_fit_recovers_an_exact_sinusoid():
    t = np.linspace(0.0, 80.0, 60)
    z = 0.2 + 1.1 * np.cos(2 * np.pi * t / 37.0 + 0.4)
    fit = fit_ripple(t, z)
    assert fit.amplitude == pytest.approx(1.1, rel=1e-6)
    assert fit.wavelength == pytest.approx(37.0, rel=1e-6)
    assert fit.phase == pytest.approx(0.4, abs=1e-6)
    np.testing.assert_allclose(fit(t), z, atol=1e-6)


def test_strip_roughness_is_the_std_per_strip(caplog):
    # Heights +-s alternate in each strip, so the std of strip k is exactly s_k.
    distance = np.repeat(np.arange(9) - 4.0, 6) * 3.0 + 0.1
    s = np.linspace(0.2, 1.0, 9)
    height = np.tile([1.0, -1.0], 27) * np.repeat(s, 6)
    out = strip_roughness(height, distance, n_strips=9)
    np.testing.assert_allclose(out["roughness"], s, rtol=1e-12)
    np.testing.assert_array_equal(out["count"], 6)
    # A strip with too few atoms is reported as NaN with a warning, not dropped.
    with caplog.at_level(logging.WARNING):
        thin = strip_roughness(
            height[6:], distance[6:], n_strips=9, extent=(-13.5, 13.5), min_atoms=3
        )
    assert np.isnan(thin["roughness"][0]) and thin["count"][0] == 0
    assert "fewer than 3 atoms" in caplog.text


def test_detrend_removes_a_tilt():
    rng = np.random.default_rng(0)
    pos = rng.uniform(-20, 20, (200, 3))
    pos[:, 2] = 0.3 + 0.02 * pos[:, 0] - 0.05 * pos[:, 1]
    np.testing.assert_allclose(detrend_plane(pos), 0.0, atol=1e-12)


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match="no strip has 3 atoms"):
        strip_roughness(np.zeros(4), np.arange(4.0), n_strips=9, min_atoms=3)
    with pytest.raises(InputError, match=">= 6 atoms"):
        fit_ripple(np.arange(3.0), np.zeros(3))
    with pytest.raises(InputError, match="at least 3 atoms"):
        detrend_plane(np.zeros((2, 3)))
