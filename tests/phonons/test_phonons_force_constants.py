"""Force constants from every kind of snapshot agree on a perfect monolayer."""

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.materials import PAPER
from hpcaet.phonons import (
    compute_forces,
    fit_force_constants,
    gamma_energies,
    make_phonopy,
    relaxed_monolayer,
    run_md,
    snapshot_positions,
)


@pytest.fixture(scope="module")
def mos2(spec):
    atoms = relaxed_monolayer(PAPER.regions[0], spec)
    reference = make_phonopy(atoms, repeat=(4, 4, 1))
    positions = snapshot_positions(reference, method="finite", distance=0.01)
    sc = reference.supercell
    forces = compute_forces(positions, symbols=sc.symbols, cell=sc.cell, spec=spec)
    fit_force_constants(reference, forces)
    return atoms, reference


def test_relaxed_monolayer_is_at_rest_with_three_zero_modes(mos2):
    atoms, reference = mos2
    energies = gamma_energies(reference)
    np.testing.assert_allclose(energies[:3], 0.0, atol=0.01)  # acoustic modes at Γ [meV]
    assert energies[3] > 20.0  # the lowest optical mode of MoS2 (E'') is ~33 meV


def test_random_snapshots_with_symfc_match_finite_displacements(mos2, spec):
    atoms, reference = mos2
    phonon = make_phonopy(atoms, repeat=(4, 4, 1))
    positions = snapshot_positions(phonon, method="random", distance=0.01, n_snapshots=16, rng=1)
    sc = phonon.supercell
    forces = compute_forces(positions, symbols=sc.symbols, cell=sc.cell, spec=spec)
    fit_force_constants(phonon, forces)
    # ± pairs cancel the cubic term of the forces, random displacements do not: at
    # 0.01 Å it shifts the energies by ~0.3 % (measured 0.16 meV at 52 meV): 0.5 %
    np.testing.assert_allclose(
        gamma_energies(phonon), gamma_energies(reference), rtol=5e-3, atol=0.05
    )


def test_md_snapshots_with_symfc_match_finite_displacements(mos2, spec):
    atoms, reference = mos2
    phonon = make_phonopy(atoms, repeat=(4, 4, 1))
    sc = phonon.supercell
    disp, forces = run_md(
        sc.positions,
        symbols=sc.symbols,
        cell=sc.cell,
        spec=spec,
        replicas=4,
        temperature=5.0,
        steps=800,
        interval=40,
        equilibrate=50,
        seed=2,
    )
    fit_force_constants(phonon, forces, displacements=disp)
    # at 5 K the rms displacement is ~0.01 Å; the fit absorbs some anharmonicity
    # (measured: at most 0.4 meV, on the A1' mode): 1 meV
    np.testing.assert_allclose(gamma_energies(phonon), gamma_energies(reference), atol=1.0)


def test_fit_checks_its_input(mos2):
    atoms, _ = mos2
    phonon = make_phonopy(atoms, repeat=(2, 2, 1))
    with pytest.raises(InputError, match="snapshot_positions first"):
        fit_force_constants(phonon, np.zeros((1, len(phonon.supercell), 3)))
    with pytest.raises(InputError, match="shape"):
        fit_force_constants(phonon, np.zeros((1, 2, 3)))
    with pytest.raises(InputError, match="'finite' or 'random'"):
        snapshot_positions(phonon, method="md")
