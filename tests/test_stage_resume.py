"""Killed runs of the simulate, atoms and structure stages resume without losing work.

For each stage two kills, on small inputs:

* the driver (the process running the stage) is killed with SIGKILL once some of the
  stage's checkpoints are saved; the rerun loads them, rewrites none of them (their
  modification times stay) and writes the same output files, bit for bit, as a run
  that was never interrupted;
* one of two Dask worker processes is killed with SIGKILL while the stage's tasks run;
  the nanny starts a new one, the lost tasks run again and the outputs are those of a
  serial run.

The reconstruct stage has the same two tests in ``tests/reconstruct/``, the preprocess
stage its driver kill in ``tests/preprocess/test_preprocess_stage.py`` and its worker
kill here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hpcaet.config import load_config, packaged_config
from hpcaet.io import read_dataset, write_dataset
from hpcaet.pipeline import RunDirectory, run_stages

#: The background run of one stage into a run directory: argv = config path (or ""),
#: overrides as JSON, run directory, stage.
_DRIVER = """
import json, sys
from hpcaet.config import load_config
from hpcaet.pipeline import run_stages
config = load_config(sys.argv[1] or None, overrides=json.loads(sys.argv[2]))
run_stages(config, sys.argv[3], stages=(sys.argv[4],))
"""

#: Small runs: 12 tilts of 256 x 256 pixels (about 0.1 s each); the 40 x 40 Å demo
#: phantom on a 0.5 Å strain grid (4 tiles); a 20 x 20 Å field for the atoms, and one
#: of 96 x 96 pixels with one frame per tilt for the preprocessing.
SIMULATE = {
    "seed": 3,
    "phantom": {"field": [20.0, 20.0], "vacancies": 2, "substitutions": 0},
    "imaging": {"shape": [256, 256], "frames": 4},
}
STRUCTURE = {"structure": {"grid_spacing": 0.5}}
ATOMS = {"seed": 1, "atoms": {"refine_iterations": 30, "flip_cycles": 2}}
PREPROCESS = {
    "seed": 7,
    "phantom": {"field": [20.0, 20.0], "vacancies": 2, "substitutions": 1},
    "imaging": {"shape": [96, 96], "frames": 1},
}


def _finished(folder: Path) -> dict[Path, int]:
    """Finished checkpoints and their modification times; a write in progress is a
    hidden temporary file (``hpcaet.io.atomic_path``) and does not count."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("[!.]*.npz")}


def _kill_driver(run: Path, config_path: str, overrides: dict, stage: str, *, after: int):
    """Start the stage in a subprocess and SIGKILL it once ``after`` checkpoints exist.

    Returns the finished checkpoints (path -> mtime) at the kill.
    """
    args = [config_path, json.dumps(overrides), str(run), stage]
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, *args])
    deadline = time.monotonic() + 300
    while len(_finished(run / "checkpoints")) < after and proc.poll() is None:
        assert time.monotonic() < deadline, f"the {stage} run wrote no checkpoints"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the {stage} run ended before the kill"
    return _finished(run / "checkpoints")


class _WorkerKiller(threading.Thread):
    """Kills, with SIGKILL, a worker process of a client that is running a task of the
    stage (its key starts with ``prefix``), once ``folder`` (if given) holds a finished
    checkpoint: the worker dies mid-map, after some of the map's results were saved."""

    def __init__(self, client, prefix: str, folder: Path | None = None) -> None:
        super().__init__(daemon=True)
        self.client = client
        client.wait_for_workers(2, timeout=60)  # (the nanny's replacement of a killed one)
        self.pids = client.run(os.getpid)
        self.prefix, self.folder = prefix, folder
        self.victim: int | None = None
        self.finished: dict[Path, int] = {}

    def _busy_worker(self) -> str | None:
        if self.folder is not None and not (self.folder.exists() and _finished(self.folder)):
            return None
        for worker, keys in self.client.processing().items():
            if worker in self.pids and any(str(k).startswith(self.prefix) for k in keys):
                return worker
        return None

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            worker = self._busy_worker()
            if worker is not None:
                self.finished = _finished(self.folder) if self.folder else {}
                self.victim = self.pids[worker]
                os.kill(self.victim, signal.SIGKILL)
                return
            time.sleep(0.005)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _same_files(a: Path, b: Path, names) -> None:
    for name in names:
        x, y = read_dataset(a / name), read_dataset(b / name)
        assert sorted(x.data_vars) == sorted(y.data_vars), name
        for var in x.data_vars:
            np.testing.assert_array_equal(x[var].values, y[var].values, err_msg=f"{name}:{var}")


def _unchanged(finished: dict[Path, int]) -> None:
    changed = [p.name for p, stamp in finished.items() if p.stat().st_mtime_ns != stamp]
    assert not changed, f"finished checkpoints were written again: {changed}"


# -- simulate -------------------------------------------------------------------------


def test_killed_simulate_driver_resumes_without_recomputing(tmp_path):
    config = load_config(overrides=SIMULATE)
    finished = _kill_driver(tmp_path / "run", "", SIMULATE, "simulate", after=3)
    assert 3 <= len(finished) < 12, "the run must be stopped half way through the tilts"
    run_stages(config, tmp_path / "run", stages=("simulate",))
    _unchanged(finished)
    assert len(_finished(tmp_path / "run" / "checkpoints")) == 12
    run_stages(config, tmp_path / "clean", stages=("simulate",))
    _same_files(tmp_path / "run", tmp_path / "clean", ("tilt_series.nc", "truth_atoms.nc"))


def test_killed_simulate_worker_changes_nothing(tmp_path, client):
    config = load_config(overrides=SIMULATE)
    killer = _WorkerKiller(client, "simulate-", tmp_path / "run" / "checkpoints")
    killer.start()
    run_stages(config, tmp_path / "run", stages=("simulate",), client=client)
    killer.join()
    assert killer.victim is not None, "no worker was killed"
    assert 1 <= len(killer.finished) < 12
    assert killer.victim not in client.run(os.getpid).values()  # a new worker took over
    _unchanged(killer.finished)
    run_stages(config, tmp_path / "serial", stages=("simulate",))
    _same_files(tmp_path / "run", tmp_path / "serial", ("tilt_series.nc",))


# -- structure ------------------------------------------------------------------------


def _structure_run(root: Path) -> RunDirectory:
    from hpcaet.phantom.stage import make_phantom

    run = RunDirectory(root)
    run.root.mkdir(parents=True)
    write_dataset(make_phantom(load_config(packaged_config("demo"))), run.file("truth_atoms.nc"))
    return run


def test_killed_structure_driver_resumes_without_recomputing(tmp_path):
    config = load_config(packaged_config("demo"), overrides=STRUCTURE)
    run = _structure_run(tmp_path / "run")
    demo = str(packaged_config("demo"))
    finished = _kill_driver(run.root, demo, STRUCTURE, "structure", after=1)
    assert finished and not run.file("strain.nc").exists(), "the run must be stopped mid-stage"
    run_stages(config, run.root, stages=("structure",))
    _unchanged(finished)
    clean = _structure_run(tmp_path / "clean")
    run_stages(config, clean.root, stages=("structure",))
    _same_files(run.root, clean.root, ("strain.nc",))
    numbers = [json.loads(r.file("structure_results.json").read_text()) for r in (run, clean)]
    for n in numbers:
        n.pop("timings")  # [s] of each step: the one thing that may differ
    assert numbers[0] == numbers[1]


def test_killed_structure_worker_changes_nothing(tmp_path, client):
    config = load_config(packaged_config("demo"), overrides=STRUCTURE)
    run = _structure_run(tmp_path / "run")
    killer = _WorkerKiller(client, "structure-", run.checkpoints / "structure")
    killer.start()
    run_stages(config, run.root, stages=("structure",), client=client)
    killer.join()
    assert killer.victim is not None, "no worker was killed"
    assert killer.victim not in client.run(os.getpid).values()
    _unchanged(killer.finished)
    serial = _structure_run(tmp_path / "serial")
    run_stages(config, serial.root, stages=("structure",))
    _same_files(run.root, serial.root, ("strain.nc",))


# -- atoms ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def atoms_inputs():
    """(truth, Volume, processed TiltSeries) of a 20 x 20 Å heterojunction."""
    from hpcaet.atoms.synthetic import ideal_inputs, probe_b_factor
    from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
    from hpcaet.phantom.stage import atoms_to_model
    from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

    species = load_config().species
    spec = HeterojunctionSpec(field=(20.0, 20.0), vacancies=2, substitutions=0)
    truth = atoms_to_model(
        build_heterojunction(spec, rng=0),
        b_factor=species.b_factor,
        cross_section=species.cross_section,
    )
    volume, series = ideal_inputs(
        truth,
        TABLE_S2_CALIBRATED,
        shape=(80, 80),
        pixel_size=0.32,
        dose=3.8e5 / 12,
        b_factor=species.b_factor,
        extra_b=probe_b_factor(0.8),
        read_noise=1.0,
        rng=3,
    )
    return truth, volume, series


def _atoms_run(root: Path, inputs) -> RunDirectory:
    run = RunDirectory(root)
    run.root.mkdir(parents=True)
    for name, ds in zip(("truth_atoms.nc", "volume.nc", "processed.nc"), inputs, strict=True):
        write_dataset(ds, run.file(name))
    return run


def test_killed_atoms_driver_resumes_without_recomputing(tmp_path, atoms_inputs):
    config = load_config(overrides=ATOMS)
    run = _atoms_run(tmp_path / "run", atoms_inputs)
    # the trace and the first flip-and-refine cycle are saved, later cycles are not
    finished = _kill_driver(run.root, "", ATOMS, "atoms", after=2)
    assert len(finished) >= 2 and not run.file("atoms.nc").exists(), "killed too late"
    run_stages(config, run.root, stages=("atoms",))
    _unchanged(finished)
    clean = _atoms_run(tmp_path / "clean", atoms_inputs)
    run_stages(config, clean.root, stages=("atoms",))
    _same_files(run.root, clean.root, ("atoms.nc",))


def test_killed_atoms_worker_changes_nothing(tmp_path, client, atoms_inputs):
    # the refinement maps image chunks (scattered once) over the workers; one worker
    # dies while it runs a refinement task of the first cycle
    config = load_config(overrides=ATOMS)
    run = _atoms_run(tmp_path / "run", atoms_inputs)
    killer = _WorkerKiller(client, "atoms-refine0")
    killer.start()
    run_stages(config, run.root, stages=("atoms",), client=client)
    killer.join()
    assert killer.victim is not None, "no worker was killed"
    assert killer.victim not in client.run(os.getpid).values()
    serial = _atoms_run(tmp_path / "serial", atoms_inputs)
    run_stages(config, serial.root, stages=("atoms",))
    a = read_dataset(run.file("atoms.nc"))
    b = read_dataset(serial.file("atoms.nc"))
    np.testing.assert_array_equal(a["species"].values, b["species"].values)
    # the chunked loss is summed in the same order, on one BLAS thread everywhere; the
    # refinement's positions agree to rounding (as in tests/atoms/test_atoms_stage.py)
    np.testing.assert_allclose(a["position"].values, b["position"].values, rtol=0, atol=1e-9)


# -- preprocess -----------------------------------------------------------------------


@pytest.mark.slow  # 105 s on 2 busy cores: two preprocessing runs of 2 x 12 tilt tasks
def test_killed_preprocess_worker_changes_nothing(tmp_path, client):
    # a 20 x 20 Å field, 96 x 96 pixels, one frame per tilt: 2 x 12 tilt tasks
    from hpcaet.io import make_tilt_series
    from hpcaet.phantom.stage import make_phantom, simulate_tilt_series
    from hpcaet.preprocess.stage import preprocess_series

    config = load_config(overrides=PREPROCESS)
    simulated = simulate_tilt_series(make_phantom(config), config)
    series = make_tilt_series(
        frames=simulated["frames"].values,
        euler=simulated["euler"].values,
        pixel_size=simulated.attrs["pixel_size"],
        dose=simulated.attrs["dose"],
        read_noise=simulated.attrs["read_noise"],
    )
    store = tmp_path / "checkpoints"
    killer = _WorkerKiller(client, "preprocess-", store)
    killer.start()
    resumed, _ = preprocess_series(series, config, client=client, checkpoint_dir=store)
    killer.join()
    assert killer.victim is not None, "no worker was killed"
    assert killer.victim not in client.run(os.getpid).values()
    _unchanged(killer.finished)
    serial, _ = preprocess_series(series, config)
    for name in ("images", "euler", "drift"):
        np.testing.assert_array_equal(resumed[name].values, serial[name].values, err_msg=name)
