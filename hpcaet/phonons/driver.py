"""Forces on many snapshots of one cell, spread over processes and checkpointed.

The (displacement, force) data that the force constants are fitted to come from two
kinds of tasks, both pure functions of their inputs and run through
:func:`hpcaet.parallel.map_tasks`:

* :func:`compute_forces` — forces on given snapshots (displaced copies of the
  unrelaxed measured cell), in batches: one task per batch;
* :func:`run_md` — Langevin molecular dynamics from the unrelaxed measured
  coordinates, one task per independent replica (its own seed), sampling the
  displacements from the start and the forces every ``interval`` steps.

Every process builds its own calculator from a :class:`~hpcaet.phonons.CalculatorSpec`
(LAMMPS on ``MPI.COMM_SELF``); with an :class:`~hpcaet.parallel.MPIExecutor` rank ``r``
computes the tasks ``i % size == r`` and every rank gets all results. With a
:class:`~hpcaet.parallel.TaskStore` each finished task is saved at once, so a killed
job resumes where it stopped; the keys hash what a result depends on (positions,
cell, species, calculator, MD settings), never the number of ranks.

Notes
-----
Molecular dynamics from unrelaxed coordinates drifts towards the potential's minimum
(at 300 K by as much as the thermal rms, ~0.1 Å, in a few ps), so "around the measured
coordinates" holds only for low temperatures and short runs: the defaults are 20 K and
a few hundred 1-fs steps per replica, and the fit subtracts the residual forces of the
unrelaxed reference (docs/phonons.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from hpcaet.errors import InputError
from hpcaet.parallel.tasks import Executor, TaskStore, content_key, map_tasks
from hpcaet.phonons.calculators import CalculatorSpec, check_elements, make_calculator

__all__ = ["compute_forces", "run_md", "time_force_calls", "executor_for_comm"]

log = logging.getLogger(__name__)

_CACHE: dict[tuple, object] = {}  # one calculator per process, spec and elements


def executor_for_comm(comm=None) -> Executor | None:
    """An :class:`~hpcaet.parallel.MPIExecutor` over ``comm``; None (serial) without one."""
    if comm is None or comm.Get_size() == 1:
        return None
    from hpcaet.parallel.tasks import MPIExecutor

    return MPIExecutor(comm)


def _calculator(spec: CalculatorSpec, symbols: tuple[str, ...]):
    elements = tuple(dict.fromkeys(symbols))
    key = (repr(spec), elements)
    if key not in _CACHE:
        _CACHE[key] = make_calculator(spec, elements)
    return _CACHE[key]


def _atoms(symbols, cell, positions) -> Atoms:
    return Atoms(symbols=list(symbols), cell=np.asarray(cell), positions=positions, pbc=True)


def _force_batch(*, positions, symbols, cell, spec) -> dict[str, np.ndarray]:
    calc = _calculator(spec, symbols)
    forces = np.empty_like(positions)
    for k, pos in enumerate(positions):
        atoms = _atoms(symbols, cell, pos)
        atoms.calc = calc
        forces[k] = atoms.get_forces()
    return {"forces": forces}


def compute_forces(
    positions: np.ndarray,
    *,
    symbols: Sequence[str],
    cell: np.ndarray,
    spec: CalculatorSpec,
    batch: int = 32,
    executor: Executor | None = None,
    store: TaskStore | None = None,
) -> np.ndarray:
    """Forces on every snapshot of a cell.

    Parameters
    ----------
    positions : ndarray of shape (n_snapshot, n_atom, 3)
        Cartesian positions of each snapshot [Å].
    symbols : sequence of str, length n_atom
        Chemical symbols.
    cell : ndarray of shape (3, 3)
        Cell vectors (rows) [Å]; periodic in all three directions.
    spec : CalculatorSpec
        The calculator every process builds (checked against ``symbols`` first).
    batch : int, default 32
        Snapshots per task.
    executor : Executor, optional
        Serial by default; an MPIExecutor spreads the batches over ranks.
    store : TaskStore, optional
        Saves every finished batch; a rerun loads it.

    Returns
    -------
    ndarray of shape (n_snapshot, n_atom, 3)
        Forces [eV/Å].
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 3 or positions.shape[1:] != (len(symbols), 3):
        raise InputError(
            f"positions must have shape (n_snapshot, {len(symbols)}, 3); got {positions.shape}."
        )
    symbols = tuple(str(s) for s in symbols)
    check_elements(spec, symbols)
    if batch < 1:
        raise InputError(f"batch must be >= 1 snapshot per task; got {batch}.")
    starts = range(0, len(positions), batch)
    jobs = [{"positions": positions[s : s + batch]} for s in starts]
    common = content_key({"symbols": symbols, "cell": np.asarray(cell), "spec": _spec_key(spec)})
    keys = [content_key(job, common) for job in jobs]
    shared = {"symbols": symbols, "cell": np.asarray(cell, dtype=float), "spec": spec}
    out = map_tasks(
        _force_batch,
        jobs,
        keys=keys,
        shared=shared,
        executor=executor,
        store=store,
        label="phonons: force batches",
    )
    return np.concatenate([r["forces"] for r in out])


def _spec_key(spec: CalculatorSpec) -> str:
    if spec.factory is not None:
        name = getattr(spec.factory, "__qualname__", repr(spec.factory))
        return f"factory:{name}:{spec.elements}"
    options = {k: v for k, v in spec.options.items() if k not in _EXECUTION_OPTIONS}
    return f"{spec.name}:{sorted(options.items())}"


#: Calculator options that change how, not what, it computes: left out of the task keys.
_EXECUTION_OPTIONS = ("threads", "log_file")


def _md_replica(
    *, seed, positions, symbols, cell, spec, temperature, steps, interval, equilibrate, timestep
) -> dict[str, np.ndarray]:
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.parallel import DummyMPI

    # ASE broadcasts random numbers over its world communicator by default: under
    # mpiexec each rank runs its own replica, so every step here is rank-local.
    rng = np.random.default_rng(int(seed))
    atoms = _atoms(symbols, cell, positions)
    atoms.calc = _calculator(spec, symbols)
    atoms.set_constraint(FixCom())
    thermalize_momenta(atoms, temperature, comm=DummyMPI(), rng=rng)
    dyn = Langevin(
        atoms,
        timestep * units.fs,
        temperature_K=temperature,
        friction=0.02 / units.fs,
        fixcm=False,
        rng=rng,
        comm=DummyMPI(),
    )
    dyn.run(equilibrate)
    disp, forces = [], []
    for _ in range(steps // interval):
        dyn.run(interval)
        d = atoms.positions - positions
        frac = np.linalg.solve(np.asarray(cell).T, d.T).T
        d = (frac - np.rint(frac)) @ np.asarray(cell)  # nearest image
        disp.append(d)
        forces.append(atoms.get_forces(apply_constraint=False))  # the potential's own
    return {"displacements": np.asarray(disp), "forces": np.asarray(forces)}


def run_md(
    positions: np.ndarray,
    *,
    symbols: Sequence[str],
    cell: np.ndarray,
    spec: CalculatorSpec,
    replicas: int = 4,
    temperature: float = 20.0,
    steps: int = 400,
    interval: int = 10,
    equilibrate: int = 100,
    timestep: float = 1.0,
    seed: int = 0,
    executor: Executor | None = None,
    store: TaskStore | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Snapshots of Langevin dynamics around the unrelaxed coordinates, replica by replica.

    Parameters
    ----------
    positions : ndarray of shape (n_atom, 3)
        The unrelaxed reference (measured) positions [Å]; every replica starts there.
    symbols, cell, spec
        As in :func:`compute_forces`.
    replicas : int, default 4
        Independent trajectories (one task each; seeds ``seed + k``).
    temperature : float, default 20
        Thermostat and initial temperature [K].
    steps, interval, equilibrate : int
        Sampled steps, steps between samples, unsampled steps first.
    timestep : float, default 1
        [fs].
    seed : int, default 0
    executor, store
        As in :func:`compute_forces`.

    Returns
    -------
    displacements : ndarray of shape (n_sample, n_atom, 3)
        Positions less the reference, nearest periodic image [Å].
    forces : ndarray of shape (n_sample, n_atom, 3)
        [eV/Å], as computed (subtract the reference's residual forces before a fit).
    """
    positions = np.asarray(positions, dtype=float)
    symbols = tuple(str(s) for s in symbols)
    check_elements(spec, symbols)
    if not (replicas >= 1 and temperature > 0 and steps >= interval >= 1 and timestep > 0):
        raise InputError(
            f"MD needs replicas >= 1, temperature > 0 K, steps >= interval >= 1 and "
            f"timestep > 0 fs; got {replicas}, {temperature}, {steps}, {interval}, {timestep}."
        )
    settings = {
        "temperature": float(temperature),
        "steps": int(steps),
        "interval": int(interval),
        "equilibrate": int(equilibrate),
        "timestep": float(timestep),
    }
    shared = {
        "positions": positions,
        "symbols": symbols,
        "cell": np.asarray(cell, dtype=float),
        "spec": spec,
        **settings,
    }
    common = content_key(
        {
            "positions": positions,
            "cell": np.asarray(cell),
            "symbols": symbols,
            "spec": _spec_key(spec),
            **settings,
        }
    )
    jobs = [{"seed": seed + k} for k in range(replicas)]
    keys = [content_key(job, common) for job in jobs]
    out = map_tasks(
        _md_replica,
        jobs,
        keys=keys,
        shared=shared,
        executor=executor,
        store=store,
        label="phonons: MD replicas",
    )
    return (
        np.concatenate([r["displacements"] for r in out]),
        np.concatenate([r["forces"] for r in out]),
    )


def time_force_calls(atoms: Atoms, spec: CalculatorSpec, *, calls: int = 50) -> float:
    """Mean wall time of one force call on ``atoms`` (after a first, untimed call) [s]."""
    symbols = tuple(atoms.get_chemical_symbols())
    calc = _calculator(spec, symbols)
    work = atoms.copy()
    work.calc = calc
    work.get_forces()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(calls):
        work.positions = atoms.positions + rng.normal(0.0, 0.01, atoms.positions.shape)
        work.get_forces()
    return (time.perf_counter() - start) / calls
