"""The DFT option (GPAW, LCAO PBE): offline with the PAW setups of gpaw-data, symmetric.

Slow (minutes on two cores for a 3-atom cell); skips where gpaw is absent.
"""

import socket

import numpy as np
import pytest

from hpcaet.phonons import CalculatorSpec, make_calculator


@pytest.mark.slow
def test_gpaw_forces_keep_the_symmetry_of_the_monolayer(monkeypatch):
    """2H MoS2 at its ideal sites: C3 leaves no in-plane force, the mirror σh pairs the S."""
    pytest.importorskip("gpaw")
    from ase.build import mx2

    def refuse(*args, **kwargs):
        raise OSError("network use in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    atoms = mx2("MoS2", kind="2H", a=3.18, thickness=3.13, vacuum=7.5)
    atoms.calc = make_calculator(CalculatorSpec("gpaw", {"kpts": (3, 3, 1)}), ["Mo", "S"])
    forces = atoms.get_forces()
    # converged SCF: symmetric to ~1e-4 eV/Å
    np.testing.assert_allclose(forces[:, :2], 0.0, atol=2e-3)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=2e-3)
    metal, top, bottom = np.argsort(atoms.positions[:, 2])[[1, 2, 0]]
    assert abs(forces[metal, 2]) < 2e-3
    assert forces[top, 2] == pytest.approx(-forces[bottom, 2], abs=2e-3)
    # and not trivially zero: the chalcogens feel the sheet's thickness off the minimum
    assert abs(forces[top, 2]) > 0.05
