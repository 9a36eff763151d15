"""The phonon analysis of a stitched cell in one call: forces, force constants, spectra.

Tian et al. (2024), Fig. 3 and S4: the unrelaxed cell's force constants (residual
forces subtracted), its modes at Γ with their participation ratios and interface
participation, its DOS and PDOS per species on a q mesh, its dispersion unfolded onto
the primitive hexagonal cell, and the non-negative least-squares fit of its DOS by the
bulk DOS of the two materials, with the peaks that the fit misses.

Every force goes through :mod:`hpcaet.phonons.driver` (serial, or MPI ranks, with
checkpoints); the calculator is checked against the cell's elements first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from hpcaet.errors import InputError
from hpcaet.phonons.bulk import BulkPhonons
from hpcaet.phonons.calculators import CalculatorSpec, check_elements
from hpcaet.phonons.dos import density_of_states, nnls_decomposition
from hpcaet.phonons.driver import compute_forces, run_md
from hpcaet.phonons.force_constants import (
    THZ_TO_MEV,
    fit_force_constants,
    make_phonopy,
    snapshot_positions,
)
from hpcaet.phonons.participation import (
    interface_participation,
    interface_weights,
    participation_ratio,
)
from hpcaet.phonons.supercell import StitchedCell, interface_distances, virtual_lattice
from hpcaet.phonons.unfold import hexagonal_path, spectral_function, unfold

__all__ = ["PhononSettings", "PhononAnalysis", "analyse_cell"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhononSettings:
    """What a phonon analysis depends on (the ``phonons`` config section's science part).

    Attributes
    ----------
    method : {"finite", "md"}
        ± single-atom displacements fitted by phonopy's solver, or MD snapshots fitted
        by symfc.
    distance : float
        Finite-displacement length [Å].
    repeat : tuple of 3 int
        Force-constant supercell, in cells.
    cutoff : float or None
        symfc cutoff [Å] (``"md"``).
    md : dict
        ``replicas``, ``temperature`` [K], ``steps``, ``interval``, ``equilibrate``,
        ``timestep`` [fs] of :func:`~hpcaet.phonons.driver.run_md`.
    energy : tuple of 3 float
        Energy grid: first, last, step [meV].
    sigma : float
        Gaussian broadening of DOS and spectral function [meV].
    mesh : tuple of 3 int
        q mesh of the cell's DOS.
    path_points : int
        q-points on Γ–M–K–Γ.
    interface_width : float
        Standard deviation of the interface weights [Å].
    batch : int
        Snapshots per task.
    seed : int
    """

    method: str = "finite"
    distance: float = 0.01
    repeat: tuple[int, int, int] = (2, 1, 1)
    cutoff: float | None = 5.0
    md: dict = field(default_factory=dict)
    energy: tuple[float, float, float] = (-50.0, 80.0, 0.1)
    sigma: float = 1.0
    mesh: tuple[int, int, int] = (6, 2, 1)
    path_points: int = 60
    interface_width: float = 3.0
    batch: int = 64
    seed: int = 0

    @property
    def grid(self) -> np.ndarray:
        lo, hi, step = self.energy
        return np.arange(lo, hi + step / 2, step)


@dataclass
class PhononAnalysis:
    """Results of :func:`analyse_cell` (energies in meV, DOS per atom in 1/meV)."""

    energy: np.ndarray
    dos: np.ndarray
    pdos: dict
    frequency: np.ndarray
    participation: np.ndarray
    interface: np.ndarray
    q_distance: np.ndarray
    q_labels: dict
    spectral: np.ndarray
    residual_force: float
    n_force_calls: int
    phonon: object = None
    decomposition: dict | None = None
    extra: dict = field(default_factory=dict)


def analyse_cell(
    cell: StitchedCell,
    spec: CalculatorSpec,
    settings: PhononSettings,
    *,
    bulk: dict[str, BulkPhonons] | None = None,
    executor=None,
    store=None,
) -> PhononAnalysis:
    """Phonons of a periodic cell at its given (unrelaxed) coordinates.

    Parameters
    ----------
    cell : StitchedCell
        From :func:`~hpcaet.phonons.supercell.stitch_supercell` (or an ideal strip).
    spec : CalculatorSpec
    settings : PhononSettings
    bulk : dict of str to BulkPhonons, optional
        Bulk references (material name -> phonons) for the NNLS decomposition of the
        cell's DOS; their energy grid must be ``settings.grid``.
    executor, store
        Of the force driver.

    Returns
    -------
    PhononAnalysis
    """
    symbols = cell.atoms.get_chemical_symbols()
    check_elements(spec, symbols)  # before any force
    phonon = make_phonopy(cell.atoms, repeat=settings.repeat)
    sc = phonon.supercell
    reference = compute_forces(
        sc.positions[None], symbols=sc.symbols, cell=sc.cell, spec=spec, store=store
    )[0]
    residual = float(np.linalg.norm(reference, axis=1).max())
    log.info("phonons: largest residual force of the unrelaxed cell %.3f eV/Å", residual)
    if settings.method == "finite":
        positions = snapshot_positions(phonon, method="finite", distance=settings.distance)
        forces = compute_forces(
            positions,
            symbols=sc.symbols,
            cell=sc.cell,
            spec=spec,
            batch=settings.batch,
            executor=executor,
            store=store,
        )
        fit_force_constants(phonon, forces, reference_forces=reference)
        calls = len(positions) + 1
    elif settings.method == "md":
        disp, forces = run_md(
            sc.positions,
            symbols=sc.symbols,
            cell=sc.cell,
            spec=spec,
            seed=settings.seed,
            executor=executor,
            store=store,
            **settings.md,
        )
        fit_force_constants(
            phonon,
            forces,
            reference_forces=reference,
            displacements=disp,
            cutoff=settings.cutoff,
        )
        calls = len(forces) + 1
    else:
        raise InputError(f"phonons.method must be 'finite' or 'md'; got {settings.method!r}.")

    phonon.run_qpoints([[0.0, 0.0, 0.0]], with_eigenvectors=True)
    freq = np.asarray(phonon.qpoints.frequencies[0]) * THZ_TO_MEV
    vec = np.asarray(phonon.qpoints.eigenvectors[0])
    masses = np.asarray(phonon.unitcell.masses)
    weights = interface_weights(interface_distances(cell), width=settings.interface_width)
    pr = participation_ratio(vec, masses)
    ip = interface_participation(vec, weights)

    grid = settings.grid
    phonon.run_mesh(list(settings.mesh), with_eigenvectors=True, is_mesh_symmetry=False)
    mesh = phonon.mesh
    species = np.array(symbols)
    groups = {s: np.flatnonzero(species == s) for s in dict.fromkeys(symbols)}
    dos, pdos = density_of_states(
        mesh.frequencies * THZ_TO_MEV,
        grid,
        sigma=settings.sigma,
        q_weights=mesh.weights,
        eigenvectors=mesh.eigenvectors,
        groups=groups,
    )

    outside = 3.0 - float(np.trapezoid(dos, grid))
    if outside > 0.01:
        log.warning(
            "phonons: %.1f %% of the modes lie outside the energy grid [%g, %g] meV; widen "
            "phonons.energy",
            100 * outside / 3.0,
            grid[0],
            grid[-1],
        )
    lattice = virtual_lattice(cell)
    qpoints, distance, labels = hexagonal_path(lattice.primitive, points=settings.path_points)
    energies, unfold_weights = unfold(phonon, lattice, qpoints)
    spectral = spectral_function(energies, unfold_weights, grid, sigma=settings.sigma)

    decomposition = None
    if bulk:
        decomposition = nnls_decomposition(grid, dos, {k: b.dos for k, b in bulk.items()})
        log.info(
            "phonons: NNLS weights %s; peaks the bulk combination misses: %s meV",
            {k: round(v, 3) for k, v in decomposition["weights"].items()},
            np.round(decomposition["residual_peaks"], 1).tolist(),
        )
    n_soft = int(np.sum(freq < -0.5))
    log.info(
        "phonons: %d modes at Γ, %d imaginary (lowest %.1f meV); mean PR %.2f; %d modes with "
        "interface participation above 1/N",
        len(freq),
        n_soft,
        freq.min(),
        pr.mean(),
        int(np.sum(ip > 1.0 / len(symbols))),
    )
    return PhononAnalysis(
        energy=grid,
        dos=dos,
        pdos=pdos,
        frequency=freq,
        participation=pr,
        interface=ip,
        q_distance=distance,
        q_labels=labels,
        spectral=spectral,
        residual_force=residual,
        n_force_calls=calls,
        phonon=phonon,
        decomposition=decomposition,
    )
