"""The task layer: map_tasks over the serial, Dask and MPI executors, with checkpoints."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.parallel import (
    ARRAYS,
    DaskExecutor,
    SerialExecutor,
    TaskMapper,
    TaskStore,
    content_key,
    map_tasks,
    serial_map,
)


def _square(*, base, x, scale=1.0):
    return {"value": scale * (base + x) ** 2}


JOBS = [{"x": np.full(3, float(k))} for k in range(7)]
KEYS = [f"job{k}" for k in range(7)]
SHARED = {"base": np.arange(3.0)}
WANT = [(np.arange(3.0) + k) ** 2 for k in range(7)]


class Counting(SerialExecutor):
    """The serial executor, counting the jobs it runs and failing at a chosen one."""

    def __init__(self, fail_at=None):
        self.ran, self.fail_at = [], fail_at

    def run(self, func, jobs, shared, *, keys):
        for i, (job, key) in enumerate(zip(jobs, keys, strict=True)):
            if key == self.fail_at:
                raise RuntimeError(f"worker killed at {key}")
            self.ran.append(key)
            yield i, func(**shared, **job)


def test_serial_results_in_order_and_checkpoints_resume(tmp_path):
    store = TaskStore(tmp_path, "test", ARRAYS)
    first = Counting(fail_at="job4")
    with pytest.raises(RuntimeError, match="killed at job4"):
        map_tasks(_square, JOBS, keys=KEYS, shared=SHARED, executor=first, store=store)
    assert first.ran == KEYS[:4]
    assert len(list(tmp_path.glob("test-*.npz"))) == 4  # each saved as it finished
    again = Counting()
    out = map_tasks(_square, JOBS, keys=KEYS, shared=SHARED, executor=again, store=store)
    assert again.ran == KEYS[4:]  # nothing finished is recomputed
    for got, want in zip(out, WANT, strict=True):
        np.testing.assert_array_equal(got["value"], want)
    third = Counting()
    map_tasks(_square, JOBS, keys=KEYS, shared=SHARED, executor=third, store=store)
    assert third.ran == []


def test_damaged_and_invalid_checkpoints_are_recomputed(tmp_path, caplog):
    store = TaskStore(tmp_path, "test", ARRAYS)
    map_tasks(_square, JOBS, keys=KEYS, shared=SHARED, store=store)
    store.path("job1").write_bytes(b"half a file")
    store.save("job2", {"value": np.array([np.nan])})
    runner = Counting()
    with caplog.at_level(logging.WARNING, logger="hpcaet.parallel.tasks"):
        out = map_tasks(_square, JOBS, keys=KEYS, shared=SHARED, executor=runner, store=store)
    assert runner.ran == ["job1", "job2"]
    assert "is unreadable" in caplog.text and "non-finite" in caplog.text
    np.testing.assert_array_equal(out[2]["value"], WANT[2])


def test_keys_must_be_one_per_job():
    with pytest.raises(InputError, match="one unique key per job"):
        map_tasks(_square, JOBS, keys=KEYS[:-1] + KEYS[:1], shared=SHARED)
    with pytest.raises(InputError, match="one unique key per job"):
        map_tasks(_square, JOBS, keys=KEYS[:3], shared=SHARED)


def test_dask_executor_matches_serial(tmp_path):
    distributed = pytest.importorskip("distributed")
    serial = map_tasks(_square, JOBS, keys=KEYS, shared=SHARED)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        store = TaskStore(tmp_path, "dask", ARRAYS)
        spread = map_tasks(
            _square,
            JOBS,
            keys=KEYS,
            shared={"base": np.arange(3.0), "scale": 1.0},
            executor=DaskExecutor(client, "test"),
            store=store,
        )
        workers = {w["id"] for w in client.scheduler_info()["workers"].values()}
    assert len(workers) == 2
    assert len(list(tmp_path.glob("dask-*.npz"))) == len(JOBS)
    for a, b in zip(serial, spread, strict=True):
        np.testing.assert_array_equal(a["value"], b["value"])


def test_task_mapper_keys_follow_the_inputs(tmp_path):
    mapper = TaskMapper(store=TaskStore(tmp_path, "map", ARRAYS))
    jobs = [{"x": np.array([1.0])}, {"x": np.array([2.0])}]
    first = mapper(_square, jobs, {"base": np.zeros(1)})
    assert first == serial_map(_square, jobs, {"base": np.zeros(1)})
    mapper(_square, jobs, {"base": np.ones(1)})  # other shared inputs: other keys
    assert len(list(tmp_path.glob("map-*.npz"))) == 4
    assert content_key({"a": np.zeros(2)}) != content_key({"a": np.zeros(3)})
    assert content_key({"a": np.zeros(2)}) != content_key({"a": np.zeros(2, np.float32)})
    assert content_key((1, 2)) == content_key((1, 2))


MPI_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from hpcaet.parallel import ARRAYS, MPIExecutor, TaskStore, map_tasks

    def work(*, base, x):
        return {"value": (base + x) ** 2, "rank": np.array(MPI.COMM_WORLD.Get_rank())}

    comm = MPI.COMM_WORLD
    assert comm.Get_size() == 2, f"expected 2 ranks, got {comm.Get_size()}"
    jobs = [{"x": float(k)} for k in range(5)]
    out = map_tasks(work, jobs, keys=[f"j{k}" for k in range(5)], shared={"base": 1.0},
                    executor=MPIExecutor(comm), store=TaskStore(sys.argv[1], "mpi", ARRAYS))
    values = [float(r["value"]) for r in out]
    assert values == [(1.0 + k) ** 2 for k in range(5)], values
    ranks = [int(r["rank"]) for r in out]
    assert ranks == [0, 1, 0, 1, 0], ranks  # round robin over the two ranks
    print(f"rank {comm.Get_rank()} ok", flush=True)
    """
)


@pytest.mark.mpi
def test_mpi_executor_under_mpiexec(tmp_path):
    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec on PATH (pip install mpich)")
    script = tmp_path / "mpi_job.py"
    script.write_text(MPI_SCRIPT)
    run = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # (the two ranks' lines may come out merged: look for each, not for lines)
    assert "rank 0 ok" in run.stdout and "rank 1 ok" in run.stdout, run.stdout
    assert len(list((tmp_path / "store").glob("mpi-*.npz"))) == 5  # each rank saved its own
