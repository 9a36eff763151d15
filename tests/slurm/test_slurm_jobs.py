"""The test cluster itself, and the sbatch templates of jobs/ submitted to it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "jobs"
SLURM_SH = REPO / ".ci" / "slurm.sh"
TEST_PROFILE = REPO / "configs" / "cluster" / "test-slurm.yaml"
# A phantom small enough that the simulate stage takes a few seconds.
TINY = {
    "name": "tiny",
    "seed": 1,
    "phantom": {"field": [16.0, 16.0]},
    "imaging": {"shape": [64, 64]},
}
SMALL = ["--mem=1G", "--time=10"]  # the templates' sizes do not fit the 8000 MB test node


#: Daemons live in /usr/sbin, which a non-login PATH may lack.
PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _pids(folder: Path) -> dict[str, int]:
    lines = (folder / "pids").read_text().splitlines()
    return {name: int(pid) for name, pid in (line.split() for line in lines)}


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None


def _node(conf: Path) -> list[str]:
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cmd = ["sinfo", "-h", "-N", "-o", "%N %c %m"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.split()


def test_the_cluster_runs_its_own_three_daemons(slurm):
    pids = _pids(slurm.folder)
    assert {name: _comm(pid) for name, pid in pids.items()} == {
        "munged": "munged",
        "slurmctld": "slurmctld",
        "slurmd": "slurmd",
    }
    assert os.environ["SLURM_CONF"] == str(slurm.conf)
    assert _node(slurm.conf) == [os.uname().nodename.split(".")[0], "4", "8000"]
    assert slurm.start_seconds < 30


def test_a_second_cluster_starts_beside_and_stops_exactly_its_daemons(slurm):
    folder = Path(tempfile.mkdtemp(prefix="hpcaet-slurm-second-"))
    env = {**os.environ, "PATH": PATH}
    script = ["bash", str(SLURM_SH)]
    up = subprocess.run([*script, "up", str(folder)], capture_output=True, text=True, env=env)
    try:
        assert up.returncode == 0, up.stderr
        second = _pids(folder)
        assert set(second.values()).isdisjoint(_pids(slurm.folder).values())
        # It runs jobs on its own ports, with its own munged.
        srun = ["srun", "-n", "1", "--mem=10M", "printenv", "SLURM_CONF"]
        env2 = {**env, "SLURM_CONF": str(folder / "slurm.conf")}
        out = subprocess.run(srun, capture_output=True, text=True, env=env2, check=True)
        assert out.stdout.strip() == str(folder / "slurm.conf")
        again = subprocess.run(
            [*script, "up", str(folder)], capture_output=True, text=True, env=env
        )
        assert again.returncode == 5 and "down" in again.stderr  # one cluster per folder
    finally:
        subprocess.run([*script, "down", str(folder)], check=True, env=env)
    try:
        assert all(_comm(pid) is None for pid in second.values())
        assert not (folder / "pids").exists() and (folder / "slurm.conf").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # The session's cluster runs on.
    assert {_comm(pid) for pid in _pids(slurm.folder).values()} == {"munged", "slurmctld", "slurmd"}
    assert _node(slurm.conf)[1:] == ["4", "8000"]


def _write_config(path: Path, parallel: dict) -> Path:
    path.write_text(yaml.safe_dump({**TINY, "parallel": parallel}))
    return path


def test_pipeline_driver_job_starts_its_dask_workers_as_jobs(slurm, tmp_path):
    config = _write_config(
        tmp_path / "tiny-slurm.yaml",
        {"scheduler": "slurm", "workers": 1, "slurm": {"profile": str(TEST_PROFILE)}},
    )
    job = slurm.sbatch(
        JOBS / "pipeline.sbatch",
        str(config),
        str(tmp_path / "run"),
        "--stages",
        "simulate",
        options=[*SMALL, "--cpus-per-task=1", f"--chdir={tmp_path}", "--output=driver-%j.log"],
    )
    (record,) = slurm.wait(job)
    log = (tmp_path / f"driver-{job}.log").read_text()
    assert record["JobState"] == "COMPLETED", log
    assert (tmp_path / "run" / "tilt_series.nc").exists()
    # The driver's hpcaet run submitted the Dask worker job, from the same folder.
    workers = [
        j
        for j in slurm.jobs().values()
        if j["JobName"] == "dask-worker" and j["WorkDir"] == str(tmp_path)
    ]
    assert len(workers) == 1, log
    assert workers[0]["JobState"] in ("COMPLETED", "CANCELLED")


def test_local_workers_job_runs_a_local_cluster_of_its_cpus(slurm, tmp_path):
    config = _write_config(tmp_path / "tiny.yaml", {"scheduler": "local", "memory_limit": "1GB"})
    job = slurm.sbatch(
        JOBS / "local_workers.sbatch",
        str(config),
        str(tmp_path / "run"),
        "--stages",
        "simulate",
        # the template asks memory per CPU (sbatch takes one of --mem and --mem-per-cpu)
        options=[
            "--mem-per-cpu=500M",
            "--time=10",
            "--cpus-per-task=2",
            f"--chdir={tmp_path}",
            "--output=node-%j.log",
        ],
    )
    (record,) = slurm.wait(job)
    log = (tmp_path / f"node-{job}.log").read_text()
    assert record["JobState"] == "COMPLETED", log
    assert record["NumCPUs"] == "2"
    assert (tmp_path / "run" / "tilt_series.nc").exists()


def test_dask_mpi_job_runs_the_pipeline_on_its_ranks(slurm, tmp_path):
    # parallel.scheduler mpi: srun starts 4 ranks, a scheduler, hpcaet run and 2 workers
    pytest.importorskip("dask_mpi")
    config = _write_config(
        tmp_path / "tiny-mpi.yaml", {"scheduler": "mpi", "workers": 2, "memory_limit": "1GB"}
    )
    job = slurm.sbatch(
        JOBS / "dask_mpi.sbatch",
        str(config),
        str(tmp_path / "run"),
        "--stages",
        "simulate",
        options=["--mem-per-cpu=500M", "--time=10", f"--chdir={tmp_path}"],
    )
    (record,) = slurm.wait(job, timeout=180)
    log = (tmp_path / f"hpcaet-dask-mpi-{job}.log").read_text()
    assert record["JobState"] == "COMPLETED", log
    assert record["NumTasks"] == "4", record  # the template's parallel.workers + 2
    assert (tmp_path / "run" / "tilt_series.nc").exists()
    # only the client rank ran the stage
    assert "rank 1] INFO hpcaet.pipeline: stage simulate: running" in log, log  # [job N rank 1]
    assert log.count("stage simulate: running") == 1, log


def test_dask_mpi_job_refuses_a_config_without_the_mpi_scheduler(slurm, tmp_path):
    # every rank would run the whole pipeline: the template stops before srun
    config = _write_config(tmp_path / "tiny.yaml", {"scheduler": "local"})
    job = slurm.sbatch(
        JOBS / "dask_mpi.sbatch",
        str(config),
        str(tmp_path / "run"),
        options=["--mem-per-cpu=200M", "--time=5", f"--chdir={tmp_path}"],
    )
    (record,) = slurm.wait(job)
    log = (tmp_path / f"hpcaet-dask-mpi-{job}.log").read_text()
    assert record["JobState"] == "FAILED", log
    assert "must set parallel.scheduler: mpi" in log
    assert not (tmp_path / "run").exists()


_MPI_PAYLOAD = """
import json, sys
import numpy as np
from mpi4py import MPI
from hpcaet.parallel import MPIExecutor, TaskStore, map_tasks

comm = MPI.COMM_WORLD
assert comm.Get_size() == 2, f"{comm.Get_size()} ranks, expected 2"

def work(*, base, x):
    return {"value": np.array((base + x) ** 2), "rank": np.array(comm.Get_rank())}

out = map_tasks(work, [{"x": float(k)} for k in range(5)], keys=[f"j{k}" for k in range(5)],
                shared={"base": 1.0}, executor=MPIExecutor(comm),
                store=TaskStore("checkpoints", "squares"))
if comm.Get_rank() == 0:
    with open(sys.argv[1], "w") as f:
        json.dump({"value": [float(r["value"]) for r in out],
                   "rank": [int(r["rank"]) for r in out]}, f)
"""


def test_mpi_job_maps_tasks_over_two_ranks(slurm, tmp_path):
    pytest.importorskip("mpi4py")
    job = slurm.sbatch(
        JOBS / "mpi.sbatch",
        sys.executable,
        "-c",
        _MPI_PAYLOAD,
        "result.json",
        options=["--ntasks=2", "--mem-per-cpu=500M", "--time=5", f"--chdir={tmp_path}"],
    )
    (record,) = slurm.wait(job)
    log = (tmp_path / f"hpcaet-mpi-{job}.log").read_text()
    assert record["JobState"] == "COMPLETED", log
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {"value": [1.0, 4.0, 9.0, 16.0, 25.0], "rank": [0, 1, 0, 1, 0]}
    assert len(list((tmp_path / "checkpoints").glob("squares-*.npz"))) == 5


def test_mpi_job_stops_when_srun_does_not_wire_mpi(slurm, tmp_path):
    # srun --mpi=none starts two programs of one rank each: the template's check fails.
    pytest.importorskip("mpi4py")
    job = slurm.sbatch(
        JOBS / "mpi.sbatch",
        "touch",
        "ran",
        options=[
            "--ntasks=2",
            "--mem-per-cpu=200M",
            "--time=5",
            f"--chdir={tmp_path}",
            "--export=ALL,SRUN_MPI=none",
        ],
    )
    (record,) = slurm.wait(job)
    log = (tmp_path / f"hpcaet-mpi-{job}.log").read_text()
    assert record["JobState"] == "FAILED", log
    assert "MPI communicator has 1 ranks, expected 2" in log
    assert not (tmp_path / "ran").exists()


def test_scaling_array_runs_one_task_per_worker_count(slurm, tmp_path):
    code = "import os, sys; open(f'out-{sys.argv[1]}.txt', 'w').write(os.environ['WORKERS'])"
    start = time.monotonic()
    job = slurm.sbatch(
        JOBS / "scaling.sbatch",
        sys.executable,
        "-c",
        code,
        "{workers}",
        options=[
            "--array=1,2,3",
            "--cpus-per-task=1",
            "--mem=200M",
            "--time=5",
            f"--chdir={tmp_path}",
        ],
    )
    records = slurm.wait(job)
    assert sorted(r["ArrayTaskId"] for r in records) == ["1", "2", "3"]
    assert all(r["JobState"] == "COMPLETED" for r in records), records
    for n in (1, 2, 3):
        assert (tmp_path / f"out-{n}.txt").read_text() == str(n)
        assert (tmp_path / f"hpcaet-scaling-{job}_{n}.log").exists()
    rows = [line.split("\t") for line in (tmp_path / f"scaling-{job}.tsv").read_text().splitlines()]
    assert sorted(int(r[0]) for r in rows) == [1, 2, 3]
    assert all(r[2] == "0" and float(r[1]) <= time.monotonic() - start for r in rows)
