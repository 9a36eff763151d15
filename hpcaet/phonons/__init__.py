"""Phonons from measured 3D atomic coordinates, without relaxation (Tian et al., Fig. 3, S4).

One module per step:

* :mod:`~hpcaet.phonons.supercell` — the periodic cell stitched across a zigzag
  interface of an atom model, its distance check, the virtual lattice for unfolding;
* :mod:`~hpcaet.phonons.calculators` — calculators by name (Stillinger–Weber through
  LAMMPS by default, GPAW), built in every process;
* :mod:`~hpcaet.phonons.driver` — forces on snapshots and MD replicas through the task
  layer (serial or MPI ranks, checkpointed);
* :mod:`~hpcaet.phonons.force_constants` — displaced snapshots and the phonopy / symfc
  least-squares fit;
* :mod:`~hpcaet.phonons.bulk` and :mod:`~hpcaet.phonons.reference` — bulk monolayers and
  the relaxed crystallographic interface;
* :mod:`~hpcaet.phonons.unfold`, :mod:`~hpcaet.phonons.dos`,
  :mod:`~hpcaet.phonons.participation` — unfolded spectral function, DOS / PDOS / NNLS,
  participation ratios;
* :mod:`~hpcaet.phonons.analysis` — all of it for one cell;
* :mod:`~hpcaet.phonons.stage`, :mod:`~hpcaet.phonons.figures`,
  :mod:`~hpcaet.phonons.command` — ``hpcaet phonons --run``.
"""

from hpcaet.phonons.analysis import PhononAnalysis, PhononSettings, analyse_cell
from hpcaet.phonons.bulk import BulkPhonons, bulk_phonons, gamma_energies, relaxed_monolayer
from hpcaet.phonons.calculators import (
    CALCULATORS,
    CalculatorSpec,
    check_elements,
    make_calculator,
)
from hpcaet.phonons.dos import density_of_states, dos_peaks, nnls_decomposition
from hpcaet.phonons.driver import compute_forces, executor_for_comm, run_md, time_force_calls
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
from hpcaet.phonons.reference import crystallographic_cell, ideal_strip
from hpcaet.phonons.supercell import (
    StitchedCell,
    VirtualLattice,
    check_distances,
    interface_distances,
    stitch_supercell,
    virtual_lattice,
)
from hpcaet.phonons.unfold import hexagonal_path, spectral_function, unfold

__all__ = [
    "CALCULATORS",
    "THZ_TO_MEV",
    "BulkPhonons",
    "CalculatorSpec",
    "PhononAnalysis",
    "PhononSettings",
    "StitchedCell",
    "VirtualLattice",
    "analyse_cell",
    "bulk_phonons",
    "check_distances",
    "check_elements",
    "compute_forces",
    "crystallographic_cell",
    "density_of_states",
    "dos_peaks",
    "executor_for_comm",
    "fit_force_constants",
    "gamma_energies",
    "hexagonal_path",
    "ideal_strip",
    "interface_distances",
    "interface_participation",
    "interface_weights",
    "make_calculator",
    "make_phonopy",
    "nnls_decomposition",
    "participation_ratio",
    "relaxed_monolayer",
    "run_md",
    "snapshot_positions",
    "spectral_function",
    "stitch_supercell",
    "time_force_calls",
    "unfold",
    "virtual_lattice",
]
