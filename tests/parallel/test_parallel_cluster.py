"""The one seam that builds Dask clients: local, by address, and SLURM job scripts."""

import pytest

from hpcaet.config import load_config
from hpcaet.parallel import dask_client, slurm_job_script


def _inc(x):
    return x + 1


def test_local_cluster_runs_tasks_on_worker_processes():
    cfg = load_config(overrides={"parallel": {"workers": 2, "memory_limit": "1GB"}})
    with dask_client(cfg.parallel) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.gather(client.map(_inc, range(4))) == [1, 2, 3, 4]


def test_connect_by_address_to_a_running_scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        cfg = load_config(
            overrides={"parallel": {"scheduler": "address", "address": cluster.scheduler_address}}
        )
        with dask_client(cfg.parallel) as client:
            assert client.submit(_inc, 41).result() == 42


def test_slurm_job_script_carries_the_config():
    pytest.importorskip("dask_jobqueue")
    cfg = load_config(
        overrides={
            "parallel": {
                "scheduler": "slurm",
                "slurm": {
                    "queue": "compute",
                    "account": "mat123",
                    "walltime": "02:30:00",
                    "cores": 16,
                    "memory": "64GB",
                    "job_extra_directives": ["--exclusive"],
                },
            }
        }
    )
    script = slurm_job_script(cfg.parallel)
    for expected in (
        "#SBATCH -p compute",
        "#SBATCH -A mat123",
        "#SBATCH -t 02:30:00",
        "#SBATCH --exclusive",
        "--nthreads 1",
        "--nworkers 16",
    ):
        assert expected in script, script
