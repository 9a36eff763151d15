"""Shared synthetic inputs of the preprocess tests (all small, built from known truths)."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.preprocess import LatticeModel

PIXEL = 0.32  # [Å]


@pytest.fixture(scope="session")
def mos2() -> LatticeModel:
    """Ideal MoS2 with the phantom's default species table and probe (defaults.yaml)."""
    species = load_config().species
    return LatticeModel(
        lattice_constant=3.16,
        chalcogen_height=1.56,
        metal_weight=species.cross_section["Mo"],
        chalcogen_weight=species.cross_section["S"],
        metal_b=species.b_factor["Mo"],
        chalcogen_b=species.b_factor["S"],
        probe_fwhm=0.8,
    )


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
