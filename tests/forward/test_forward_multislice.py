"""ADF cross-sections by a real abTEM multislice: the config's values, and bad input."""

from __future__ import annotations

import pytest

from hpcaet.config import load_config, packaged_config
from hpcaet.errors import InputError
from hpcaet.forward.multislice import adf_cross_section, electron_wavelength

pytest.importorskip("abtem")

PAPER = {"voltage": 60.0, "convergence_angle": 38.0, "detector": (50.0, 210.0)}


def test_wavelength_at_60_kv():
    # relativistic: 0.04866 Å at 60 kV (0.05 Å without the correction)
    assert electron_wavelength(60.0) == pytest.approx(0.048661, rel=1e-4)


def test_sulfur_cross_section_is_the_configs():
    # The default cross-sections are multislice values at the paper's settings
    # (sampling 0.05 Å, 0.1 Å slices, 0.25 Å probe steps); the coarser grid here gives
    # 0.0120 Å² against the defaults' 0.0126 Å².
    coarse = {"sampling": 0.065, "scan_step": 0.25, "cell": 8.0, "slice_thickness": 0.25}
    sigma = adf_cross_section("S", **PAPER, **coarse)
    config = load_config(packaged_config("paper"))
    assert sigma == pytest.approx(config.species.cross_section["S"], rel=0.06)


def test_a_higher_inner_angle_collects_less():
    rough = {"sampling": 0.065, "scan_step": 0.5, "cell": 6.0, "slice_thickness": 0.5}
    sigma = [
        adf_cross_section("Se", **{**PAPER, "detector": (a, 210.0)}, **rough) for a in (50, 80)
    ]
    assert sigma[1] < 0.8 * sigma[0]


def test_bad_input():
    with pytest.raises(InputError, match="chemical symbol"):
        adf_cross_section("Xx", **PAPER)
    with pytest.raises(InputError, match="detector must be"):
        adf_cross_section("S", **{**PAPER, "detector": (50.0,)})
    with pytest.raises(InputError, match="inner angle"):
        adf_cross_section("S", **{**PAPER, "detector": (30.0, 210.0)})
    with pytest.raises(InputError, match="must be positive"):
        adf_cross_section("S", **PAPER, sampling=0.0)
    with pytest.raises(InputError, match="sampling <="):
        adf_cross_section("S", **PAPER, sampling=0.1)
    with pytest.raises(InputError, match="positive"):
        electron_wavelength(0.0)
