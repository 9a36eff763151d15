"""Participation ratios against their analytic values."""

import numpy as np
import pytest

from hpcaet.phonons import (
    THZ_TO_MEV,
    interface_participation,
    interface_weights,
    participation_ratio,
    virtual_lattice,
)

Phonopy = pytest.importorskip("phonopy").Phonopy


def test_uniform_translations_have_participation_one(perfect_mos2):
    _, phonon = perfect_mos2
    phonon.run_qpoints([[0.0, 0.0, 0.0]], with_eigenvectors=True)
    energy = phonon.qpoints.frequencies[0] * THZ_TO_MEV
    vec = phonon.qpoints.eigenvectors[0]
    acoustic = np.abs(energy) < 0.01
    assert acoustic.sum() == 3
    pr = participation_ratio(vec[:, acoustic], phonon.unitcell.masses)
    # every atom moves alike in a rigid translation: exactly 1
    np.testing.assert_allclose(pr, 1.0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Warning. Point group symmetries:UserWarning")
def test_plane_wave_modes_match_the_primitive_eigenvector(perfect_mos2):
    cell, phonon = perfect_mos2
    smat = virtual_lattice(cell).supercell_matrix
    prim = Phonopy(
        phonon.unitcell,
        supercell_matrix=phonon.supercell_matrix,
        primitive_matrix=np.linalg.inv(smat),
    )
    prim.force_constants = phonon.force_constants
    k = np.array([0.13, 0.07, 0.0])  # a general wave vector of the primitive cell
    prim.run_qpoints([k], with_eigenvectors=True)
    bands = prim.qpoints.frequencies[0] * THZ_TO_MEV
    eps = prim.qpoints.eigenvectors[0]
    m = np.asarray(prim.primitive.masses)
    amp = (np.abs(eps) ** 2).reshape(3, 3, 9).sum(axis=1) / m[:, None]  # |u_b|^2 per site
    analytic = amp.sum(0) ** 2 / (3 * (amp**2).sum(0))

    phonon.run_qpoints([k @ smat], with_eigenvectors=True)  # the same k in the cell's zone
    energy = phonon.qpoints.frequencies[0] * THZ_TO_MEV
    vec = phonon.qpoints.eigenvectors[0]
    pr = participation_ratio(vec, phonon.unitcell.masses)
    checked = 0
    for band, expected in zip(bands, analytic, strict=True):
        gaps = np.abs(energy - band)
        j = int(np.argmin(gaps))
        alone = np.sort(gaps)[1] > 0.05  # not mixed with another mode of the cell
        if gaps[j] < 1e-4 and alone:
            # a Bloch wave: each sublattice moves with one amplitude everywhere
            assert pr[j] == pytest.approx(expected, abs=1e-8)
            checked += 1
    assert checked >= 6


def test_mode_on_one_atom_and_even_average():
    n = 12
    masses = np.linspace(30.0, 180.0, n)
    vec = np.eye(3 * n)  # every mode on one atom, one direction
    np.testing.assert_allclose(participation_ratio(vec, masses), 1.0 / n)
    distance = np.abs(np.linspace(-10.0, 10.0, n))
    w = interface_weights(distance, width=3.0)
    assert w.sum() == pytest.approx(1.0)
    p = interface_participation(vec, w)
    np.testing.assert_allclose(p, np.repeat(w, 3))
    # any orthonormal set of modes: the interface participation averages 1/N
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3 * n, 3 * n)))
    assert interface_participation(q, w).mean() == pytest.approx(1.0 / n, rel=1e-12)


def test_bad_eigenvector_shape_is_refused():
    from hpcaet.errors import InputError

    with pytest.raises(InputError, match="3 \\* n_atom"):
        participation_ratio(np.ones((4, 2)), np.ones(1))
    with pytest.raises(InputError, match="width"):
        interface_weights(np.ones(3), width=0.0)
