"""The sbatch templates in jobs/ and .ci/slurm.sh as text and as bash, without SLURM.

Submitting them to a real SLURM is in test_slurm_jobs.py (marked ``slurm``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcaet.config import load_config
from hpcaet.parallel.jobs import JOB_TEMPLATES, render_job, write_jobs

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "jobs"
TEMPLATES = ["pipeline.sbatch", "local_workers.sbatch", "mpi.sbatch", "scaling.sbatch"]


def _directives(path: Path) -> dict[str, str]:
    """The ``#SBATCH --name=value`` lines of a script, before its first command."""
    out = {}
    for line in path.read_text().splitlines()[1:]:
        if line.startswith("#SBATCH"):
            option = line.split(None, 1)[1]
            name, _, value = option.partition("=")
            out[name] = value
        elif line.strip() and not line.startswith("#"):
            break  # sbatch reads no #SBATCH line after the first command
    return out


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_are_bash_with_their_directives_first(name):
    path = JOBS / name
    text = path.read_text()
    assert text.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n", str(path)], check=True)
    directives = _directives(path)
    # Every #SBATCH line is read: none follows a command.
    assert len(directives) == text.count("\n#SBATCH")
    assert directives["--job-name"].startswith("hpcaet-")
    assert {"--time", "--output", "--ntasks"} <= set(directives)
    assert "set -euo pipefail" in text


def test_template_resources():
    assert _directives(JOBS / "pipeline.sbatch")["--cpus-per-task"] == "2"
    assert _directives(JOBS / "local_workers.sbatch")["--mem-per-cpu"] == "5G"  # 4 GB + 1
    mpi = _directives(JOBS / "mpi.sbatch")
    assert mpi["--ntasks"] == "4" and mpi["--output"] == "hpcaet-mpi-%j.log"
    scaling = _directives(JOBS / "scaling.sbatch")
    assert scaling["--array"] == "1,2,4,8,16,32"
    assert scaling["--output"] == "hpcaet-scaling-%A_%a.log"  # one log per array task


def test_mpi_template_launches_with_pmi_and_checks_the_communicator_size():
    text = (JOBS / "mpi.sbatch").read_text()
    assert 'srun --mpi="$MPI" -n "$NTASKS" "$@"' in text
    assert "MPI=${SRUN_MPI:-pmi2}" in text
    # The size check comes before the command it protects.
    assert text.index("Get_size()") < text.index('srun --mpi="$MPI" -n "$NTASKS" "$@"')


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("pipeline.sbatch", []),
        ("pipeline.sbatch", ["config.yaml"]),
        ("local_workers.sbatch", []),
        ("mpi.sbatch", []),
        ("scaling.sbatch", []),
    ],
)
def test_templates_say_how_to_call_them(name, args, tmp_path):
    done = subprocess.run(
        ["bash", str(JOBS / name), *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode != 0
    assert "usage: sbatch" in done.stderr


def test_scaling_task_runs_the_command_for_its_worker_count(tmp_path):
    # One array task, run by hand as SLURM would run it: {workers} -> the array index.
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "41"}
    env["SLURM_JOB_ID"] = "44"
    code = "import os, sys; open(f'out-{sys.argv[1]}.txt', 'w').write(os.environ['WORKERS'])"
    subprocess.run(
        ["bash", str(JOBS / "scaling.sbatch"), sys.executable, "-c", code, "w{workers}"],
        check=True,
        cwd=tmp_path,
        env=env,
    )
    assert (tmp_path / "out-w3.txt").read_text() == "3"
    workers, seconds, status, job = (tmp_path / "scaling-41.tsv").read_text().split()
    assert (workers, status, job) == ("3", "0", "44") and float(seconds) >= 0


def test_scaling_task_records_a_failing_run(tmp_path):
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_JOB_ID": "9"}
    env["SCALING_TABLE"] = str(tmp_path / "table.tsv")
    done = subprocess.run(
        ["bash", str(JOBS / "scaling.sbatch"), sys.executable, "-c", "raise SystemExit(7)"],
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 7
    assert (tmp_path / "table.tsv").read_text().split()[2] == "7"


def test_slurm_script_usage(tmp_path):
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "slurm.sh"), "start", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "usage:" in done.stderr


def test_slurm_script_without_slurm_says_how_to_install(tmp_path):
    # A PATH without SLURM: `up` stops before it writes anything.
    done = subprocess.run(
        ["/bin/bash", str(REPO / ".ci" / "slurm.sh"), "up", str(tmp_path / "cluster")],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path)},
    )
    assert done.returncode == 3, done.stderr
    assert "apt-get install slurm-wlm munge" in done.stderr
    assert not (tmp_path / "cluster").exists()


def test_slurm_script_documents_slurm_conf():
    text = (REPO / ".ci" / "slurm.sh").read_text()
    assert "export SLURM_CONF=DIR/slurm.conf" in text
    assert "pkill" not in text and "killall" not in text
    assert ".ci/slurm.sh down DIR" in text


@pytest.mark.parametrize("name", JOB_TEMPLATES)
def test_the_job_templates_are_rendered_from_the_defaults(name):
    # consistent by construction: jobs/ holds what `hpcaet jobs` writes for the defaults
    assert (JOBS / name).read_text() == render_job(name, load_config(), environment=None)


@pytest.mark.parametrize(
    ("workers", "threads", "limit"), [(2, 1, "4GB"), (32, 1, "4GB"), (8, 4, "6GB"), (3, 2, "1GB")]
)
def test_a_local_workers_job_holds_the_memory_of_its_workers(workers, threads, limit, tmp_path):
    config = load_config(
        overrides={
            "parallel": {"workers": workers, "threads_per_worker": threads, "memory_limit": limit}
        }
    )
    (path,) = [p for p in write_jobs(config, tmp_path) if p.name == "local_workers.sbatch"]
    directives = _directives(path)
    cpus = int(directives["--cpus-per-task"])
    assert cpus == workers * threads
    per_cpu = float(directives["--mem-per-cpu"].removesuffix("G"))
    for asked in (cpus, 32, 64):  # also when sbatch --cpus-per-task=N changes the size
        n_workers = asked // threads
        assert asked * per_cpu >= n_workers * float(limit.removesuffix("GB")), asked
    assert f"WORKERS=$(( ${{SLURM_CPUS_PER_TASK:-{threads}}} / {threads} ))" in path.read_text()
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_rendered_jobs_activate_the_environment(monkeypatch, tmp_path):
    config = load_config()
    monkeypatch.setattr(sys, "prefix", "/opt/venvs/hpcaet")  # as in a virtual environment
    text = render_job("pipeline.sbatch", config)
    assert "source /opt/venvs/hpcaet/bin/activate" in text
    assert text.index("activate") < text.index('python -c "import hpcaet"')
    assert text.index('python -c "import hpcaet"') < text.index("python -m hpcaet.cli run")
    # a cluster profile's prologue: the driver runs what its worker jobs run
    profile = tmp_path / "site.yaml"
    profile.write_text(
        "job_script_prologue: [module load python/3.11, source ~/env/bin/activate]\n"
    )
    config = load_config(overrides={"parallel": {"slurm": {"profile": str(profile)}}})
    text = render_job("local_workers.sbatch", config)
    assert "module load python/3.11\nsource ~/env/bin/activate\n" in text


def test_jobs_command_writes_executable_scripts(tmp_path, capsys):
    from hpcaet.cli import main

    assert main(["jobs", "--config", "demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    for name in JOB_TEMPLATES:
        path = tmp_path / name
        assert str(path) in printed
        assert os.access(path, os.X_OK)
        subprocess.run(["bash", "-n", str(path)], check=True)
