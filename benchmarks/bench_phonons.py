"""Accuracy and speed of the phonon stage with one calculator (default Stillinger–Weber).

Prints

1. the PDOS peaks of bulk monolayer MoS2 and WSe2 (the calculator's own minimum,
   ± displacements in a 6 x 6 supercell, a 48 x 48 q mesh, Gaussian broadening of
   0.5, 1.0 and 1.5 meV; the stage uses 1.0) beside the DFT values of Tian et al.,
   Table S3, with the difference to the nearest computed peak, and the Γ energies;
2. the time of one force call on the paper-sized stitched cell (144 sites, cut from the
   paper phantom's zigzag interface) and on its force-constant supercell, and of one
   Langevin MD step on the cell;
3. the wall time of the force map (the cell's ± displacement snapshots, and MD replicas)
   under ``mpiexec -n 1`` and ``-n 2``, and the speed-up.

Example::

    nice -n 10 python benchmarks/bench_phonons.py            # everything (~3 min)
    python benchmarks/bench_phonons.py --skip-mpi            # without the MPI runs
    python benchmarks/bench_phonons.py --calculator 7net-l3i5 --skip-mpi   # ~10 min
    python benchmarks/bench_phonons.py --calculator chgnet --skip-bulk --skip-mpi  # timings

Every calculator of :data:`hpcaet.phonons.CALCULATORS` but ``gpaw`` can be named; the
machine-learned ones need ``pip install 'hpcaet[ml]'`` and are timed on fewer calls.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hpcaet.materials import PAPER
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.phonons import (
    CALCULATORS,
    CalculatorSpec,
    bulk_phonons,
    compute_forces,
    dos_peaks,
    gamma_energies,
    make_phonopy,
    run_md,
    snapshot_positions,
    stitch_supercell,
    time_force_calls,
)
from hpcaet.phonons.dos import density_of_states
from hpcaet.phonons.driver import executor_for_comm
from hpcaet.phonons.force_constants import THZ_TO_MEV

#: Tian et al. (2024), Table S3: PDOS peaks of bulk monolayers from DFT [meV].
TABLE_S3 = {"MoS2": (47.16, 39.38, 26.56, 20.27, 13.19), "WSe2": (31.17, 25.21, 13.17, 8.24)}
#: The optical peaks the issue asks to match within 2 meV.
OPTICAL = {"MoS2": (47.16, 39.38), "WSe2": (31.17, 25.21)}
#: What each calculator is, for the title line.
_TITLES = {
    "sw": "Stillinger–Weber (tmd.sw.mod, LAMMPS)",
    "chgnet": "CHGNet 0.3.0 (weights in the chgnet wheel)",
    "7net-0": "SevenNet-0 (weights in the sevenn wheel)",
    "7net-l3i5": "SevenNet-l3i5 (weights in the sevenn wheel)",
}
#: Γ optical modes of MoS2 from GPAW PBE, as measured for issue 16 of the tracker [meV].
GPAW_GAMMA_MOS2 = (34.3, 46.4, 49.1, 57.0)


def stitched_cell():
    atoms = build_heterojunction(HeterojunctionSpec(), rng=0)
    species = np.array(["vac" if s == "X" else s for s in atoms.get_chemical_symbols()])
    return stitch_supercell(atoms.positions, species, rows=16, width=3)


def bulk_table(spec: CalculatorSpec) -> None:
    grid = np.arange(-5.0, 70.0, 0.05)
    print("\n1. Bulk monolayers, PDOS peaks [meV] vs Tian et al. Table S3 (DFT)")
    for material in PAPER.regions:
        bulk = bulk_phonons(material, spec, energy=grid, sigma=1.0, mesh=48)
        mesh = bulk.phonon.mesh  # one set of force constants, broadened three ways
        rows = {}
        for sigma in (0.5, 1.0, 1.5):
            dos, _ = density_of_states(
                mesh.frequencies * THZ_TO_MEV, grid, sigma=sigma, q_weights=mesh.weights
            )
            rows[sigma] = dos_peaks(grid, dos)
        gamma = gamma_energies(bulk.phonon)[3:]
        a = bulk.atoms.cell.cellpar()[0]
        print(f"\n  {material.name}: relaxed a = {a:.4f} Å; Γ optical = {np.round(gamma, 1)}")
        if material.name == "MoS2":
            print(f"  (GPAW PBE Γ optical, tracker issue 16: {list(GPAW_GAMMA_MOS2)})")
        for sigma, peaks in rows.items():
            print(f"  σ = {sigma} meV: peaks {np.round(peaks, 2).tolist()}")
        peaks = rows[1.0]
        print(f"  {'Table S3':>9} {'computed':>9} {'diff':>7}   (σ = 1.0 meV, nearest peak)")
        misses = []
        for ref in TABLE_S3[material.name]:
            near = peaks[np.argmin(np.abs(peaks - ref))]
            mark = " optical" if ref in OPTICAL[material.name] else ""
            ok = " (within 2 meV)" if mark and abs(near - ref) <= 2.0 else ""
            print(f"  {ref:9.2f} {near:9.2f} {near - ref:+7.2f}{mark}{ok}")
            if mark:
                misses.append(abs(near - ref))
        print(f"  largest optical miss: {max(misses):.2f} meV (target 2)")


def _calls(spec: CalculatorSpec) -> tuple[int, int]:
    """Force calls and MD steps to time: fewer for the slow, machine-learned potentials."""
    return (200, 200) if spec.name == "sw" else (5, 10)


def timing_table(spec: CalculatorSpec) -> None:
    cell = stitched_cell()
    phonon = make_phonopy(cell.atoms, repeat=(2, 1, 1))
    sc = phonon.supercell
    from ase import Atoms

    big = Atoms(sc.symbols, cell=sc.cell, positions=sc.positions, pbc=True)
    calls, steps = _calls(spec)
    t_cell = time_force_calls(cell.atoms, spec, calls=calls)
    t_super = time_force_calls(big, spec, calls=calls)
    start = time.perf_counter()
    run_md(
        cell.atoms.positions,
        symbols=cell.atoms.get_chemical_symbols(),
        cell=cell.atoms.cell,
        spec=spec,
        replicas=1,
        steps=steps,
        interval=steps,
        equilibrate=0,
        temperature=20.0,
    )
    t_md = (time.perf_counter() - start) / steps
    print(f"\n2. Time of one call ({calls} force calls, {steps} MD steps timed)")
    print(f"  force call, stitched cell ({len(cell.atoms)} atoms):        {1e3 * t_cell:7.2f} ms")
    print(f"  force call, force-constant supercell ({len(big)} atoms): {1e3 * t_super:7.2f} ms")
    print(
        f"  Langevin MD step, stitched cell ({spec.name}):{'':>{14 - len(spec.name)}}"
        f"{1e3 * t_md:7.2f} ms"
    )


def _worker(out: str, name: str) -> None:
    """One MPI program: the cell's ± displacement forces and 4 MD replicas, timed."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    spec = CalculatorSpec(name)
    cell = stitched_cell()
    phonon = make_phonopy(cell.atoms, repeat=(2, 1, 1))
    positions = snapshot_positions(phonon, method="finite", distance=0.01)
    sc = phonon.supercell
    executor = executor_for_comm(comm)
    compute_forces(positions[:2], symbols=sc.symbols, cell=sc.cell, spec=spec)  # warm up
    comm.Barrier()
    start = time.perf_counter()
    compute_forces(
        positions, symbols=sc.symbols, cell=sc.cell, spec=spec, batch=64, executor=executor
    )
    comm.Barrier()
    t_forces = time.perf_counter() - start
    start = time.perf_counter()
    run_md(
        cell.atoms.positions,
        symbols=cell.atoms.get_chemical_symbols(),
        cell=cell.atoms.cell,
        spec=spec,
        replicas=4,
        steps=400,
        interval=10,
        equilibrate=50,
        executor=executor,
    )
    comm.Barrier()
    t_md = time.perf_counter() - start
    if comm.Get_rank() == 0:
        Path(out).write_text(json.dumps({"forces": t_forces, "md": t_md, "n": len(positions)}))


def mpi_table(spec: CalculatorSpec) -> None:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        print("\n3. MPI: no mpiexec on PATH (pip install mpich); skipped")
        return
    times = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            out = Path(tmp) / f"n{n}.json"
            cmd = [mpiexec, "-n", str(n), sys.executable, __file__, "--worker", str(out)]
            cmd += ["--calculator", spec.name]
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            times[n] = json.loads(out.read_text())
    f1, f2 = times[1]["forces"], times[2]["forces"]
    m1, m2 = times[1]["md"], times[2]["md"]
    print(f"\n3. MPI ranks ({os.cpu_count()} cores on this machine, shared)")
    print(f"  {'work':<44} {'1 rank':>8} {'2 ranks':>8} {'speed-up':>9}")
    print(
        f"  {times[1]['n']} ± displacement force calls (286 atoms) {f1:7.2f}s {f2:7.2f}s "
        f"{f1 / f2:8.2f}x"
    )
    print(f"  {'4 MD replicas x 450 steps (143 atoms)':<44} {m1:7.2f}s {m2:7.2f}s {m1 / m2:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-mpi", action="store_true", help="no mpiexec runs")
    parser.add_argument("--skip-bulk", action="store_true", help="no bulk monolayers (part 1)")
    parser.add_argument(
        "--calculator",
        default="sw",
        choices=[name for name in CALCULATORS if name != "gpaw"],
        help="force calculator (default sw: Stillinger–Weber; the others: hpcaet[ml])",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.calculator)
        return
    spec = CalculatorSpec(args.calculator)
    print(f"Phonon benchmark, calculator: {_TITLES.get(spec.name, spec.name)}")
    if not args.skip_bulk:
        bulk_table(spec)
    timing_table(spec)
    if not args.skip_mpi:
        mpi_table(spec)


if __name__ == "__main__":
    main()
