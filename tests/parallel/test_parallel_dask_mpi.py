"""``parallel.scheduler: mpi``: a Dask cluster made of the ranks of a real ``mpiexec``."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from hpcaet.config import load_config
from hpcaet.errors import ConfigError
from hpcaet.parallel.jobs import render_job

#: Under mpiexec -n 4: rank 0 the scheduler, rank 1 this program, ranks 2 and 3 workers.
SCRIPT = """
import os
import time

import numpy as np
from mpi4py import MPI

from hpcaet.config import load_config
from hpcaet.parallel import DaskExecutor, dask_client, map_tasks


def work(*, base, x):
    time.sleep(0.2)  # long enough that both workers get tasks
    rank = MPI.COMM_WORLD.Get_rank()
    return {"value": np.sqrt(base + x) * np.arange(1.0, 4.0), "rank": np.array(rank)}


config = load_config(overrides={"parallel": {"scheduler": "mpi", "workers": 2,
                                             "memory_limit": "1GB"}})
jobs = [{"x": float(k)} for k in range(12)]
keys = [f"j{k}" for k in range(12)]
with dask_client(config.parallel) as client:
    world = MPI.COMM_WORLD
    worker_ranks = sorted(client.run(lambda: MPI.COMM_WORLD.Get_rank()).values())
    sizes = set(client.run(lambda: MPI.COMM_WORLD.Get_size()).values())
    out = map_tasks(work, jobs, keys=keys, shared={"base": 1.0},
                    executor=DaskExecutor(client, "mpi"))
serial = map_tasks(work, jobs, keys=keys, shared={"base": 1.0})
same = all(np.array_equal(a["value"], b["value"]) for a, b in zip(out, serial))
ran_on = sorted({int(r["rank"]) for r in out})
print(f"client rank {world.Get_rank()} of {world.Get_size()}; workers {worker_ranks} "
      f"(sizes {sorted(sizes)}); tasks ran on {ran_on}; same as serial: {same}", flush=True)
"""


@pytest.mark.mpi
@pytest.mark.timeout(240)
def test_dask_mpi_cluster_under_mpiexec(tmp_path):
    # The tasks run on the worker ranks 2 and 3 of one 4-rank MPI program and give the
    # serial result; only the client rank gets past dask_client (the others exit there).
    pytest.importorskip("dask_mpi")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec on PATH (pip install mpich)")
    script = tmp_path / "dask_mpi_job.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        [mpiexec, "-n", "4", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("client rank")]
    assert lines == [
        "client rank 1 of 4; workers [2, 3] (sizes [4]); tasks ran on [2, 3]; same as serial: True"
    ], run.stdout


SMALL_WORLD = """
from hpcaet.config import load_config
from hpcaet.errors import ConfigError
from hpcaet.parallel import dask_client
config = load_config(overrides={"parallel": {"scheduler": "mpi"}})
try:
    with dask_client(config.parallel):
        pass
except ConfigError as exc:
    print("refused:", exc)
"""


@pytest.mark.mpi
def test_too_few_ranks_is_a_clear_error(tmp_path):
    # one rank (no mpiexec, or srun --mpi=none): no cluster can start, and the error says why
    pytest.importorskip("dask_mpi")
    pytest.importorskip("mpi4py")
    run = subprocess.run(
        [sys.executable, "-c", SMALL_WORLD], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "refused:" in run.stdout and "has 1 MPI rank(s)" in run.stdout, run.stdout
    assert "mpiexec -n N" in run.stdout


def test_unknown_scheduler_names_the_choices():
    with pytest.raises(ConfigError, match=r"'local', 'address', 'slurm' or 'mpi'; got 'mpl'"):
        load_config(overrides={"parallel": {"scheduler": "mpl"}})


def test_dask_mpi_job_script():
    config = load_config(
        overrides={"parallel": {"scheduler": "mpi", "workers": 6, "threads_per_worker": 2}}
    )
    text = render_job("dask_mpi.sbatch", config, environment=None)
    assert "#SBATCH --ntasks=8\n" in text  # the workers, the scheduler and the driver
    assert "#SBATCH --cpus-per-task=2\n" in text
    assert 'srun --mpi="${SRUN_MPI:-pmi2}" python -m hpcaet.cli run' in text
