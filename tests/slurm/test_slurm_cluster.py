"""Dask workers as real SLURM jobs: the task layer and a field reconstruction on them."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.forward import project_atoms
from hpcaet.parallel import DaskExecutor, TaskStore, dask_client, map_tasks
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED
from hpcaet.reconstruct import plan_windows, reconstruct_field

# Each test starts its worker jobs, which take a few seconds; a lost cluster fails fast.
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]

TEST_PROFILE = Path(__file__).resolve().parents[2] / "configs" / "cluster" / "test-slurm.yaml"
PIXEL = 0.32  # [Å]
OPTIONS = {"iterations": 200}  # GENFIRE: ~0.6 s per 24-voxel window, so a kill lands mid-run


def _config(workers: int, adapt: dict | None = None):
    return load_config(
        overrides={
            "parallel": {
                "scheduler": "slurm",
                "workers": workers,
                "adapt": adapt,
                "slurm": {"profile": str(TEST_PROFILE)},
            }
        }
    )


def _square_where(*, x: float, offset: float) -> dict[str, np.ndarray]:
    return {
        "value": np.array((x + offset) ** 2),
        "job": np.array(int(os.environ.get("SLURM_JOB_ID", "-1"))),
    }


def test_map_tasks_runs_inside_slurm_worker_jobs(slurm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the worker jobs' slurm-<id>.out files land here
    # Worker jobs inherit this environment (sbatch --export=ALL): let them import this
    # module, whose function the tasks run (Dask sends functions by reference).
    here = str(Path(__file__).parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )
    jobs = [{"x": float(k)} for k in range(8)]
    keys = [f"x{k}" for k in range(8)]
    store = TaskStore(tmp_path / "checkpoints", "squares")
    with dask_client(_config(workers=2).parallel) as client:
        client.wait_for_workers(2, timeout=60)
        worker_jobs = set(client.run(lambda: os.environ.get("SLURM_JOB_ID")).values())
        results = map_tasks(
            _square_where,
            jobs,
            keys=keys,
            shared={"offset": 1.0},
            executor=DaskExecutor(client, "squares"),
            store=store,
        )
        running = slurm.running()
    assert [float(r["value"]) for r in results] == [(k + 1.0) ** 2 for k in range(8)]
    used = {str(int(r["job"])) for r in results}
    # Every task ran in a worker whose SLURM job was running: no task ran here (-1).
    assert len(worker_jobs) == 2 and None not in worker_jobs
    assert used <= worker_jobs <= running, (used, worker_jobs, running)
    names = {slurm.jobs()[j]["JobName"] for j in worker_jobs}
    assert names == {"dask-worker"}
    assert len(list((tmp_path / "checkpoints").glob("squares-*.npz"))) == 8
    # The cluster closed with the client: its worker jobs are gone.
    deadline = time.monotonic() + 30
    while worker_jobs & slurm.running():
        assert time.monotonic() < deadline, "worker jobs outlived their cluster"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def field():
    """A 56-pixel field of a rippled lattice sheet, its window plan and the serial result."""
    rng = np.random.default_rng(5)
    a = 3.16  # [Å]
    i, j = np.meshgrid(np.arange(-6, 7), np.arange(-6, 7), indexing="ij")
    xy = i.ravel()[:, None] * [a, 0.0] + j.ravel()[:, None] * [a / 2, a * np.sqrt(3) / 2]
    xy = xy[np.all(np.abs(xy) <= 12.0, axis=1)]
    positions = np.column_stack([xy, 0.5 * np.sin(xy[:, 0] / 4.0)])
    positions += rng.normal(0.0, 0.03, positions.shape)
    euler = TABLE_S2_CALIBRATED.copy()
    n = len(positions)
    images = project_atoms(
        positions,
        np.full(n, 10.0),
        np.full(n, 10.0),
        euler,
        shape=(56, 56),
        pixel_size=PIXEL,
        dtype=np.float32,
    )
    plan = plan_windows((56, 56), euler, pixel_size=PIXEL, window=24, step=12, support_z=21)
    reference = reconstruct_field(images, euler, plan, options=OPTIONS, seed=3)
    return images, euler, plan, reference


def _checkpoints(folder):
    # A write in progress is a hidden temporary file (hpcaet.io.atomic_path).
    return [p for p in folder.glob("*.npz") if not p.name.startswith(".")]


def test_a_cancelled_worker_job_does_not_change_the_volume(slurm, field, tmp_path, monkeypatch):
    images, euler, plan, reference = field
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "checkpoints"
    killed = {}
    # Two worker jobs kept by adapt (parallel.adapt); a lost worker's job is forgotten
    # after 1 s (default 15 s), so that adapt submits a replacement while the windows
    # still run.
    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}),
        dask_client(_config(workers=2, adapt={"minimum": 2, "maximum": 2}).parallel) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        victim = min(client.run(lambda: os.environ["SLURM_JOB_ID"]).values())

        def cancel_when_one_window_is_done():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = _checkpoints(store) if store.exists() else []
                if done:
                    subprocess.run(["scancel", victim], check=True)
                    killed["after"] = len(_checkpoints(store))  # finished when it was cancelled
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=cancel_when_one_window_is_done)
        watcher.start()
        result = reconstruct_field(
            images, euler, plan, options=OPTIONS, seed=3, client=client, checkpoint_dir=store
        )
        watcher.join()
        assert victim not in slurm.running()
        assert slurm.jobs()[victim]["JobState"] == "CANCELLED"
    assert 1 <= killed["after"] < 9, "the job must be cancelled while windows remain"
    assert len(result.computed) == 9 and result.loaded == ()
    # One algorithm, single-threaded FFTs; only BLAS thread counts may differ between
    # this process and the workers, which changes the last bits of float32 sums.
    np.testing.assert_allclose(
        result.volume, reference.volume, rtol=0, atol=1e-5 * np.abs(reference.volume).max()
    )
    finished = {p: p.stat().st_mtime_ns for p in _checkpoints(store)}
    assert len(finished) == 9

    again = reconstruct_field(images, euler, plan, options=OPTIONS, seed=3, checkpoint_dir=store)
    assert again.computed == () and len(again.loaded) == 9
    assert {p: p.stat().st_mtime_ns for p in _checkpoints(store)} == finished
    np.testing.assert_array_equal(again.volume, result.volume)
