"""The one seam that builds Dask clients: local, by address, and SLURM job scripts."""

from pathlib import Path

import pytest

from hpcaet.config import load_config
from hpcaet.errors import ConfigError
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


REPO = Path(__file__).resolve().parents[2]


def _slurm_config(**slurm):
    return load_config(overrides={"parallel": {"scheduler": "slurm", "slurm": slurm}}).parallel


def test_the_shipped_cluster_configs_still_give_job_scripts():
    script = slurm_job_script(load_config(REPO / "configs" / "cluster" / "slurm.yaml").parallel)
    assert "#SBATCH -p compute" in script and "--nworkers 16" in script
    test = slurm_job_script(_slurm_config(profile=str(REPO / "configs/cluster/test-slurm.yaml")))
    for expected in (
        "#SBATCH -p debug",
        "#SBATCH -t 00:10:00",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=954M",  # 1GB as dask-jobqueue rounds it
        "--interface lo",
        "--death-timeout 30",
    ):
        assert expected in test, test
    assert "--nworkers" not in test  # one worker per job


def test_a_profile_applies_any_slurmcluster_option_over_the_config(tmp_path):
    profile = tmp_path / "site.yaml"
    profile.write_text(
        "queue: short\n"
        "account: mat123\n"
        "cores: 4\n"
        "memory: 8GB\n"
        "job_extra_directives: ['--constraint=cpu']\n"
        "job_script_prologue: ['module load python/3.11', 'source ~/venvs/hpcaet/bin/activate']\n"
        "worker_extra_args: ['--lifetime', '55m', '--lifetime-stagger', '4m']\n"
        "interface: lo\n"
        "scheduler_options: {dashboard_address: ':0'}\n"
    )
    script = slurm_job_script(
        _slurm_config(queue="compute", cores=16, memory="64GB", profile=str(profile))
    )
    for expected in (
        "#SBATCH -p short",
        "#SBATCH -A mat123",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --constraint=cpu",
        "module load python/3.11",
        "--lifetime 55m --lifetime-stagger 4m",
        "--nworkers 4",  # processes follow the profile's cores, one thread each
        "--nthreads 1",
        "--interface lo",
    ):
        assert expected in script, script
    assert "compute" not in script and "--cpus-per-task=16" not in script


def test_the_interface_setting_reaches_the_workers():
    assert "--interface lo" in slurm_job_script(_slurm_config(interface="lo", cores=1))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "queue: debug\nnot_an_option: 3\n",
            r"rejected the options of the cluster profile .*bad\.yaml.*not_an_option",
        ),
        ("- queue\n- debug\n", r"bad\.yaml' must hold a mapping of SLURMCluster keyword arguments"),
        ("queue: [debug\n", r"bad\.yaml' is not valid YAML"),
        (
            "scheduler_options: 8787\n",
            r"scheduler_options in the cluster profile .* must be a mapping",
        ),
    ],
)
def test_a_bad_profile_is_a_config_error_naming_the_file(tmp_path, text, match):
    pytest.importorskip("dask_jobqueue")
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        slurm_job_script(_slurm_config(profile=str(tmp_path / "bad.yaml")))


def test_a_missing_profile_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"'site\.yaml' .* does not exist .*working directory"):
        slurm_job_script(_slurm_config(profile="site.yaml"))


@pytest.mark.parametrize(
    ("slurm", "match"),
    [
        ({"profile": " "}, "parallel.slurm.profile is an empty string"),
        ({"cores": 0}, r"parallel.slurm.cores \(cores per SLURM job\) must be at least 1; got 0"),
        ({"interface": 3}, "parallel.slurm.interface"),
    ],
)
def test_bad_slurm_settings_are_config_errors(slurm, match):
    with pytest.raises(ConfigError, match=match):
        _slurm_config(**slurm)
