"""Small cells and helpers of the phonon tests."""

import numpy as np

from hpcaet.phonons import compute_forces, fit_force_constants, make_phonopy, snapshot_positions

#: Stillinger–Weber minimum of the monolayers (a [Å], chalcogen height [Å]), from
#: relaxed_monolayer: the perfect cells below are at rest.
MOS2 = (3.1175, 1.5589)
WSE2 = (3.2884, 1.6443)


def row_spacing(a):
    """Spacing of the metal rows across the zigzag direction [Å]."""
    return a * np.sqrt(3.0) / 2.0


def phonons_of(cell, spec, repeat):
    """A Phonopy object of ``cell`` with finite-displacement force constants."""
    phonon = make_phonopy(cell.atoms, repeat=repeat)
    positions = snapshot_positions(phonon, method="finite", distance=0.01)
    sc = phonon.supercell
    forces = compute_forces(positions, symbols=sc.symbols, cell=sc.cell, spec=spec)
    fit_force_constants(phonon, forces)
    return phonon
