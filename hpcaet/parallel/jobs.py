"""SLURM job scripts of ``hpcaet run``, rendered from a config: sizes that fit by construction.

Three scripts run the pipeline under SLURM (docs/cluster.md):

* ``local_workers.sbatch``: one allocation, a LocalCluster of one Dask worker per
  ``parallel.threads_per_worker`` allocated CPUs. Its memory is asked *per CPU*
  (``--mem-per-cpu``) from the worker's ``parallel.memory_limit`` plus a margin for
  the main process, so any ``sbatch --cpus-per-task=N`` gets the memory its
  ``N / threads_per_worker`` workers need.
* ``pipeline.sbatch``: a small driver job; the workers are further SLURM jobs sized by
  ``parallel.slurm`` (dask-jobqueue).
* ``dask_mpi.sbatch``: one MPI program of ``parallel.workers + 2`` tasks started by
  ``srun`` (``parallel.scheduler: mpi``, dask-mpi): a scheduler, the driver and one
  worker of ``threads_per_worker`` CPUs per further task, in one allocation.

Both activate the Python environment first: the lines of ``job_script_prologue`` of
the config's cluster profile when it has them (the same lines its worker jobs run),
else the environment this process runs in (a virtual environment's ``activate``, a
conda environment, or its ``bin`` folder on ``PATH``). The templates in ``jobs/`` are
:func:`render_job` of the defaults with ``environment=None`` (activation by
``HPCAET_ENV``); ``hpcaet jobs --config CONFIG --out DIR`` writes them for a config.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from hpcaet.errors import ConfigError

__all__ = ["JOB_TEMPLATES", "render_job", "write_jobs", "environment_lines", "memory_per_cpu"]

#: The job scripts :func:`render_job` writes.
JOB_TEMPLATES = ("local_workers.sbatch", "pipeline.sbatch", "dask_mpi.sbatch")

#: Memory of the main process (scheduler, stitching, the atoms fit) beside the workers.
_MAIN_PROCESS_GB = 2

_GENERIC_ENVIRONMENT = [
    "# The Python environment hpcaet is installed in: set HPCAET_ENV to a virtual",
    "# environment (sbatch --export=ALL,HPCAET_ENV=$HOME/venvs/hpcaet ...), or render this",
    "# script for yours: hpcaet jobs --config CONFIG --out DIR.",
    'if [[ -n ${HPCAET_ENV:-} ]]; then source "$HPCAET_ENV/bin/activate"; fi',
]

_CHECK = (
    'python -c "import hpcaet" || { echo "$0: hpcaet is not importable by $(command -v '
    'python); activate its environment (HPCAET_ENV)" >&2; exit 2; }'
)


def memory_per_cpu(parallel) -> int:
    """``--mem-per-cpu`` of ``local_workers.sbatch`` [GB]: one worker's memory limit and
    a share of the main process, per thread of a worker, rounded up.

    Parameters
    ----------
    parallel : hpcaet.config_sections.ParallelConfig

    Returns
    -------
    int
        Whole GB, so that ``N`` CPUs hold ``N / threads_per_worker`` workers and the
        main process.
    """
    from dask.utils import parse_bytes

    try:
        limit = parse_bytes(parallel.memory_limit) / 1e9
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"parallel.memory_limit must be a size such as '4GB'; got {parallel.memory_limit!r}."
        ) from exc
    per_worker = limit + _MAIN_PROCESS_GB / max(parallel.workers, 1)
    return max(1, math.ceil(per_worker / parallel.threads_per_worker))


def environment_lines(profile: dict | None = None) -> list[str]:
    """Shell lines that activate the Python environment hpcaet runs in.

    Parameters
    ----------
    profile : dict, optional
        A cluster profile (``parallel.slurm.profile``): its ``job_script_prologue``
        lines when it has them.

    Returns
    -------
    list of str
    """
    if profile and profile.get("job_script_prologue"):
        return ["# the cluster profile's job_script_prologue", *profile["job_script_prologue"]]
    conda = os.environ.get("CONDA_PREFIX")
    if sys.prefix != sys.base_prefix:
        return [
            "# the virtual environment this script was rendered in",
            f"source {sys.prefix}/bin/activate",
        ]
    if conda and Path(sys.executable).resolve().is_relative_to(Path(conda).resolve()):
        return [
            "# the conda environment this script was rendered in",
            'source "$(conda info --base)/etc/profile.d/conda.sh"',
            f"conda activate {conda}",
        ]
    return [
        "# the Python this script was rendered with",
        f'export PATH="{Path(sys.executable).parent}:$PATH"',
    ]


def _profile(parallel) -> dict | None:
    if parallel.slurm.profile is None:
        return None
    import yaml

    path = Path(parallel.slurm.profile)
    if not path.is_file():
        raise ConfigError(
            f"parallel.slurm.profile {path} is not a file; give the path of a YAML file "
            "of SLURMCluster options (relative to the working directory) or null."
        )
    return yaml.safe_load(path.read_text()) or {}


def render_job(name: str, config, *, environment: str | None = "here") -> str:
    """The text of one job script for ``config``.

    Parameters
    ----------
    name : {"local_workers.sbatch", "pipeline.sbatch", "dask_mpi.sbatch"}
    config : hpcaet.config.Config
    environment : {"here", None}, default "here"
        ``"here"``: activate the environment of the profile or of this process
        (:func:`environment_lines`); None: the generic lines of the templates in
        ``jobs/`` (``HPCAET_ENV``).

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        An unknown script name or a memory limit that is no size.
    """
    parallel = config.parallel
    if name not in JOB_TEMPLATES:
        raise ConfigError(f"no job script {name!r}; the scripts are {list(JOB_TEMPLATES)}.")
    env = _GENERIC_ENVIRONMENT if environment is None else environment_lines(_profile(parallel))
    usage = f"usage: sbatch jobs/{name} CONFIG RUN_DIR [hpcaet run options]"
    if name == "local_workers.sbatch":
        threads = parallel.threads_per_worker
        head = [
            "# Run a whole pipeline inside one SLURM allocation with a LocalCluster (no jobs",
            "# spawned): good for one node. One Dask worker per parallel.threads_per_worker",
            f"# ({threads}) allocated CPUs; the memory is asked per CPU (a worker's "
            f"parallel.memory_limit, {parallel.memory_limit},",
            "# and a share of the main process), so any --cpus-per-task gets what its workers",
            "# need. Rendered by `hpcaet jobs` from the parallel section of a config.",
            "#",
            "#   sbatch --cpus-per-task=32 jobs/local_workers.sbatch configs/paper.yaml runs/paper",
            "#   sbatch jobs/local_workers.sbatch CONFIG RUN_DIR --stages reconstruct",
            "#",
            "# Arguments after RUN_DIR go to `hpcaet run`. Change the memory with sbatch",
            "# --mem-per-cpu=SIZE (sbatch refuses --mem beside the --mem-per-cpu below).",
            "#SBATCH --job-name=hpcaet-node",
            "#SBATCH --ntasks=1",
            f"#SBATCH --cpus-per-task={parallel.workers * threads}",
            f"#SBATCH --mem-per-cpu={memory_per_cpu(parallel)}G",
            "#SBATCH --time=12:00:00",
            "#SBATCH --output=hpcaet-node-%j.log",
        ]
        command = [
            f"WORKERS=$(( ${{SLURM_CPUS_PER_TASK:-{threads}}} / {threads} ))",
            'python -m hpcaet.cli run --config "$CONFIG" --run "$RUN_DIR" --workers '
            '"$(( WORKERS > 0 ? WORKERS : 1 ))" "${@:3}"',
        ]
    elif name == "dask_mpi.sbatch":
        head, command = _dask_mpi(parallel)
    else:
        head = [
            "# Drive an hpcaet pipeline from a small SLURM job; the heavy work runs on Dask",
            "# workers that dask-jobqueue submits as further SLURM jobs (parallel.scheduler:",
            "# slurm), sized by parallel.slurm. Rendered by `hpcaet jobs` from a config.",
            "#",
            "#   sbatch jobs/pipeline.sbatch configs/cluster/slurm.yaml runs/paper",
            "#   sbatch jobs/pipeline.sbatch CONFIG RUN_DIR --stages simulate,preprocess",
            "#",
            "# Arguments after RUN_DIR go to `hpcaet run`. Options given to sbatch override the",
            "# #SBATCH lines below (e.g. sbatch --time=2:00:00 ...). A killed or timed-out run",
            "# resumes where it stopped when submitted again.",
            "#SBATCH --job-name=hpcaet-driver",
            "#SBATCH --ntasks=1",
            "#SBATCH --cpus-per-task=2",
            f"#SBATCH --mem={2 * _MAIN_PROCESS_GB + 4}G",
            "#SBATCH --time=12:00:00",
            "#SBATCH --output=hpcaet-driver-%j.log",
        ]
        command = ['python -m hpcaet.cli run --config "$CONFIG" --run "$RUN_DIR" "${@:3}"']
    body = [
        "set -euo pipefail",
        f"CONFIG=${{1:?{usage}}}",
        f"RUN_DIR=${{2:?{usage}}}",
        *env,
        _CHECK,
        *command,
    ]
    return "\n".join(["#!/bin/bash", *head, *body]) + "\n"


def _dask_mpi(parallel) -> tuple[list[str], list[str]]:
    """Header and command of ``dask_mpi.sbatch``."""
    threads = parallel.threads_per_worker
    head = [
        "# Run an hpcaet pipeline as one MPI program (parallel.scheduler: mpi, dask-mpi):",
        "# rank 0 is the Dask scheduler, rank 1 runs `hpcaet run`, and every further rank",
        f"# is a Dask worker of parallel.threads_per_worker ({threads}) threads: --ntasks is",
        f"# the number of workers plus 2 (parallel.workers = {parallel.workers} here). Memory",
        "# is asked per CPU, as for local_workers.sbatch. Rendered by `hpcaet jobs`.",
        "#",
        "#   sbatch --ntasks=66 jobs/dask_mpi.sbatch configs/my-mpi.yaml runs/paper",
        "#",
        "# The ranks are started by `srun --mpi=pmi2` (MPICH, Intel MPI); submit with",
        "# SRUN_MPI=pmix for an MPI built against PMIx. A launcher that does not match the",
        "# MPI starts separate one-rank programs, which stop with a ConfigError.",
        "#SBATCH --job-name=hpcaet-dask-mpi",
        f"#SBATCH --ntasks={parallel.workers + 2}",
        f"#SBATCH --cpus-per-task={threads}",
        f"#SBATCH --mem-per-cpu={memory_per_cpu(parallel)}G",
        "#SBATCH --time=12:00:00",
        "#SBATCH --output=hpcaet-dask-mpi-%j.log",
    ]
    command = [
        'python -c "import sys; from hpcaet.config import load_config; '
        'sys.exit(load_config(sys.argv[1]).parallel.scheduler != \'mpi\')" "$CONFIG" '
        '|| { echo "$0: $CONFIG must set parallel.scheduler: mpi (else every rank runs the '
        'whole pipeline)" >&2; exit 2; }',
        'srun --mpi="${SRUN_MPI:-pmi2}" python -m hpcaet.cli run --config "$CONFIG" '
        '--run "$RUN_DIR" "${@:3}"',
    ]
    return head, command


def write_jobs(config, folder: str | Path, *, environment: str | None = "here") -> list[Path]:
    """Write every job script of ``config`` into ``folder`` (made executable); their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in JOB_TEMPLATES:
        path = folder / name
        path.write_text(render_job(name, config, environment=environment))
        path.chmod(0o755)
        paths.append(path)
    return paths
