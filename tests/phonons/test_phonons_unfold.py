"""Unfolding: a perfect supercell gives back the primitive bands; phonopy agrees."""

import numpy as np
import pytest
from phonon_cells import MOS2, WSE2, phonons_of, row_spacing

from hpcaet.phonons import (
    THZ_TO_MEV,
    StitchedCell,
    hexagonal_path,
    ideal_strip,
    spectral_function,
    unfold,
    virtual_lattice,
)

Phonopy = pytest.importorskip("phonopy").Phonopy


@pytest.mark.filterwarnings("ignore:Warning. Point group symmetries:UserWarning")
def test_perfect_supercell_unfolds_onto_primitive_bands(perfect_mos2):
    cell, phonon = perfect_mos2
    lattice = virtual_lattice(cell)
    assert all(m is not None for m in lattice.atom_mapping)
    q, _, labels = hexagonal_path(lattice.primitive, points=13)
    energies, weights = unfold(phonon, lattice, q)
    # the primitive cell's bands from the same force constants
    prim = Phonopy(
        phonon.unitcell,
        supercell_matrix=phonon.supercell_matrix,
        primitive_matrix=np.linalg.inv(lattice.supercell_matrix),
    )
    prim.force_constants = phonon.force_constants
    prim.run_qpoints(q)
    bands = np.asarray(prim.qpoints.frequencies) * THZ_TO_MEV
    assert bands.shape == (13, 9)
    for k in range(len(q)):
        # all weight on the primitive bands: 9 bands of weight 1 each, the rest zero
        assert weights[k].sum() == pytest.approx(9.0, abs=1e-8)
        carried = weights[k] > 1e-6
        assert carried.sum() == 9
        np.testing.assert_allclose(weights[k][carried], 1.0, atol=1e-8)
        # (energies to 1e-4 meV: both diagonalise the same dynamical matrix)
        np.testing.assert_allclose(np.sort(energies[k][carried]), np.sort(bands[k]), atol=1e-4)
    assert set(labels) == {"Γ", "M", "K", "Γ'"}


def test_spectral_function_integrates_to_the_weights(perfect_mos2):
    cell, phonon = perfect_mos2
    lattice = virtual_lattice(cell)
    q, _, _ = hexagonal_path(lattice.primitive, points=5)
    energies, weights = unfold(phonon, lattice, q)
    grid = np.arange(-20.0, 80.0, 0.05)
    spec = spectral_function(energies, weights, grid, sigma=1.0)
    # a Gaussian of 1 meV on a 0.05 meV grid integrates to 1 within 1e-6
    np.testing.assert_allclose(np.trapezoid(spec, grid, axis=1), 9.0, atol=1e-5)


def test_matches_phonopy_unfolding_on_a_distorted_cell_with_a_vacancy(spec):
    from phonopy.unfolding.core import Unfolding

    (a1, t1), (a2, t2) = MOS2, WSE2
    parts = [("Mo", "S", row_spacing(a1), t1, 2), ("W", "Se", row_spacing(a2), t2, 2)]
    ideal = ideal_strip(parts, lattice_constant=0.5 * (a1 + a2), width=2)
    atoms = ideal.atoms.copy()
    rng = np.random.default_rng(3)
    atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
    keep = np.arange(len(atoms)) != 4  # a chalcogen vacancy
    cell = StitchedCell(
        atoms=atoms[keep],
        source_index=np.flatnonzero(keep),
        row=ideal.row[keep],
        interfaces=ideal.interfaces,
        width=2,
        rows=4,
        lattice_constant=ideal.lattice_constant,
    )
    phonon = phonons_of(cell, spec, (1, 1, 1))
    lattice = virtual_lattice(cell)
    assert sum(m is None for m in lattice.atom_mapping) == 1
    q, _, _ = hexagonal_path(lattice.primitive, points=7)
    energies, weights = unfold(phonon, lattice, q)
    reference = Unfolding(
        phonon, lattice.supercell_matrix, lattice.ideal_positions, lattice.atom_mapping, q
    )
    reference.run()
    # same formula, same eigenvectors: equal to round-off
    np.testing.assert_allclose(weights, reference.unfolding_weights, atol=1e-8)
    np.testing.assert_allclose(energies, reference.frequencies * THZ_TO_MEV, atol=1e-6)
    # a vacancy takes its share away: the weights sum to 3 x (occupied sites) / cells
    assert 0.0 < weights.sum(axis=1).min() <= 9.0
