"""Phonons of a perfect ("bulk") monolayer: the reference of every interface calculation.

The monolayer (:class:`~hpcaet.materials.Material`: metal, chalcogen, lattice constant,
chalcogen height) is relaxed with the calculator first (in-plane lattice constant and
positions: the calculator's own minimum, as the crystallographic reference of the paper
is), then its force constants are computed from ± displacements in an ``n x n``
supercell and its DOS on a q mesh. Tian et al. (2024), Table S3, list the PDOS peaks of
bulk MoS2 (47.16, 39.38, 26.56, 20.27, 13.19 meV) and WSe2 (31.17, 25.21, 13.17,
8.24 meV) from DFT; ``benchmarks/bench_phonons.py`` compares.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from hpcaet.errors import ConvergenceError
from hpcaet.materials import Material
from hpcaet.phonons.calculators import CalculatorSpec
from hpcaet.phonons.dos import density_of_states
from hpcaet.phonons.driver import _calculator, compute_forces
from hpcaet.phonons.force_constants import (
    THZ_TO_MEV,
    fit_force_constants,
    make_phonopy,
    snapshot_positions,
)

__all__ = ["BulkPhonons", "relaxed_monolayer", "bulk_phonons", "gamma_energies"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BulkPhonons:
    """Phonons of a perfect monolayer.

    Attributes
    ----------
    material : Material
    atoms : ase.Atoms
        The relaxed primitive cell [Å].
    phonon : phonopy.Phonopy
        With force constants.
    energy, dos : ndarray of shape (n_energy,)
        Grid [meV] and DOS per atom [1/meV].
    pdos : dict of str to ndarray
        Partial DOS of the metal and the chalcogen [1/meV].
    """

    material: Material
    atoms: Atoms
    phonon: object
    energy: np.ndarray
    dos: np.ndarray
    pdos: dict


def relaxed_monolayer(
    material: Material, spec: CalculatorSpec, *, vacuum: float = 20.0, fmax: float = 1e-4
) -> Atoms:
    """The 2H monolayer's primitive cell at the calculator's minimum.

    Parameters
    ----------
    material : Material
        Starting lattice constant and chalcogen height [Å].
    spec : CalculatorSpec
    vacuum : float, default 20
        Vacuum across the sheet [Å].
    fmax : float, default 1e-4
        Force and stress tolerance [eV/Å].
    """
    from ase.build import mx2
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = mx2(
        f"{material.metal}{material.chalcogen}2",
        kind="2H",
        a=material.lattice_constant,
        thickness=2 * material.chalcogen_height,
        vacuum=vacuum / 2,
    )
    atoms.calc = _calculator(spec, tuple(atoms.get_chemical_symbols()))
    relax = BFGS(FrechetCellFilter(atoms, mask=[1, 1, 0, 0, 0, 1]), logfile=None)
    if not relax.run(fmax=fmax, steps=500):
        raise ConvergenceError(
            f"the {material.name} monolayer did not relax to {fmax} eV/Å in 500 steps with "
            f"calculator {spec.name!r}; check the calculator."
        )
    atoms.calc = None
    log.info(
        "phonons: %s relaxed with %s: a = %.4f Å, chalcogen height %.3f Å",
        material.name,
        spec.name,
        atoms.cell.cellpar()[0],
        atoms.positions[1, 2] - atoms.positions[0, 2],
    )
    return atoms


def bulk_phonons(
    material: Material,
    spec: CalculatorSpec,
    *,
    energy: np.ndarray,
    sigma: float,
    supercell: int = 6,
    mesh: int = 36,
    distance: float = 0.01,
    executor=None,
    store=None,
) -> BulkPhonons:
    """Relax a monolayer and compute its force constants and DOS.

    Parameters
    ----------
    material : Material
    spec : CalculatorSpec
    energy : ndarray of shape (n_energy,)
        Grid of the DOS [meV].
    sigma : float
        Gaussian broadening of the DOS [meV].
    supercell : int, default 6
        In-plane size of the force-constant supercell, in primitive cells.
    mesh : int, default 36
        q mesh ``mesh x mesh x 1`` of the DOS.
    distance : float, default 0.01
        Displacement of the finite differences [Å].
    executor, store
        Of the force driver (:func:`~hpcaet.phonons.driver.compute_forces`).

    Returns
    -------
    BulkPhonons
    """
    atoms = relaxed_monolayer(material, spec)
    phonon = make_phonopy(atoms, repeat=(supercell, supercell, 1))
    positions = snapshot_positions(phonon, method="finite", distance=distance)
    sc = phonon.supercell
    forces = compute_forces(
        positions, symbols=sc.symbols, cell=sc.cell, spec=spec, executor=executor, store=store
    )
    fit_force_constants(phonon, forces)
    phonon.run_mesh([mesh, mesh, 1], with_eigenvectors=True, is_mesh_symmetry=False)
    result = phonon.mesh
    symbols = np.array(atoms.get_chemical_symbols())
    groups = {s: np.flatnonzero(symbols == s) for s in dict.fromkeys(symbols)}
    dos, pdos = density_of_states(
        result.frequencies * THZ_TO_MEV,
        energy,
        sigma=sigma,
        q_weights=result.weights,
        eigenvectors=result.eigenvectors,
        groups=groups,
    )
    return BulkPhonons(material, atoms, phonon, np.asarray(energy), dos, pdos)


def gamma_energies(phonon) -> np.ndarray:
    """Mode energies at Γ, ascending [meV]."""
    phonon.run_qpoints([[0.0, 0.0, 0.0]])
    return np.sort(np.asarray(phonon.qpoints.frequencies[0])) * THZ_TO_MEV
