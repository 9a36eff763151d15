"""Build a Dask client from the ``parallel`` config section.

``scheduler: local`` starts a :class:`distributed.LocalCluster` (the default: a
laptop or one node), ``address`` connects to a running scheduler, ``slurm``
starts workers as SLURM jobs through dask-jobqueue (``pip install hpcaet[cluster]``),
and ``mpi`` makes the ranks of an MPI program the cluster, through dask-mpi
(``pip install hpcaet[mpi]``): under ``mpiexec -n N`` or ``srun``, rank 0 runs the
scheduler, rank 1 the program (the client) and ranks 2 to N - 1 one worker each.
Every stage that spreads work asks this one function for its client.

With ``parallel.adapt: {minimum, maximum}`` a LocalCluster or the SLURM worker jobs
are adaptive (:meth:`distributed.deploy.Cluster.adapt`): workers (SLURM: jobs) are
added while a map's tasks wait, up to ``maximum``, and retired when idle, down to
``minimum``: between a stage's maps (stitching, fitting, figures in the main process)
a SLURM run holds only ``minimum`` jobs, and a worker job that dies is replaced.

The SLURM jobs are described by ``parallel.slurm``: queue, account, walltime, cores,
memory, extra ``#SBATCH`` lines and the network interface, and then by a *profile*
(``parallel.slurm.profile``), a YAML file of any further keyword arguments of
:class:`dask_jobqueue.SLURMCluster` (``job_script_prologue``, ``worker_extra_args``,
``local_directory``, ``log_directory``, ...), like the ``jobqueue.slurm`` section of
dask-jobqueue's own ``jobqueue.yaml``. The profile's keys replace the same options of
the config; a key SLURMCluster does not take is reported as a
:class:`~hpcaet.errors.ConfigError` naming the profile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from hpcaet.config import ParallelConfig
from hpcaet.errors import ConfigError

__all__ = ["dask_client", "slurm_job_script"]

log = logging.getLogger(__name__)


@contextmanager
def dask_client(config: ParallelConfig) -> Iterator[object]:
    """A :class:`distributed.Client` for the configured cluster, closed on exit.

    Parameters
    ----------
    config : ParallelConfig
        The ``parallel`` section of the run's config.

    Yields
    ------
    distributed.Client
    """
    from distributed import Client, LocalCluster

    cluster = None
    adapt = config.adapt
    if config.scheduler == "local":
        cluster = LocalCluster(
            n_workers=config.workers if adapt is None else adapt.minimum,
            threads_per_worker=config.threads_per_worker,
            memory_limit=config.memory_limit,
            processes=True,
            dashboard_address=":0",
        )
        if adapt is not None:
            cluster.adapt(minimum=adapt.minimum, maximum=adapt.maximum)
        client = Client(cluster)
    elif config.scheduler == "address":
        client = Client(config.address, timeout="30s")
    elif config.scheduler == "mpi":
        client = _mpi_client(config)
    else:
        cluster = _slurm_cluster(config)
        if adapt is None:
            cluster.scale(jobs=config.workers)
        else:
            cluster.adapt(minimum_jobs=adapt.minimum, maximum_jobs=adapt.maximum)
        client = Client(cluster)
    if adapt is not None:
        client.wait_for_workers(1, timeout=600)  # a map's shared inputs need a worker
        log.info(
            "adaptive cluster: %d to %d %s",
            adapt.minimum,
            adapt.maximum,
            "worker jobs" if config.scheduler == "slurm" else "workers",
        )
    log.info("Dask scheduler %s (dashboard %s)", client.scheduler.address, client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if config.scheduler == "mpi":
            from dask_mpi import send_close_signal

            send_close_signal()  # the scheduler and worker ranks stop and exit


def _mpi_client(config: ParallelConfig):
    """The client of a Dask cluster made of this MPI program's ranks (dask-mpi).

    Rank 1 returns the client; ranks 0 (the scheduler) and 2, 3, ... (workers with
    ``threads_per_worker`` threads and ``memory_limit`` each) serve until the client
    rank leaves :func:`dask_client`, then exit here (``SystemExit(0)``): none of them
    runs the code after it.
    """
    try:
        from dask_mpi import initialize
        from dask_mpi.exceptions import WorldTooSmallException
        from mpi4py import MPI
    except ImportError:
        raise ConfigError(
            "parallel.scheduler is 'mpi' but dask-mpi or mpi4py is not installed; install "
            "them with: pip install 'hpcaet[mpi]'"
        ) from None
    from distributed import Client

    size = MPI.COMM_WORLD.Get_size()
    try:
        is_client = initialize(
            nthreads=config.threads_per_worker,
            memory_limit=config.memory_limit,
            dashboard_address=":0",
            exit=False,
        )
    except WorldTooSmallException:
        raise ConfigError(
            f"parallel.scheduler is 'mpi' but this program has {size} MPI rank(s); it needs "
            "at least 3 (a scheduler, this program and one worker). Start it with "
            "'mpiexec -n N' or 'srun -n N --mpi=pmi2' (jobs/dask_mpi.sbatch), N = workers + 2; "
            "a launcher that does not match the MPI starts N programs of one rank each."
        ) from None
    if not is_client:
        raise SystemExit(0)
    if size - 2 != config.workers:
        log.info(
            "parallel.scheduler mpi: %d worker ranks (the MPI size less 2), not "
            "parallel.workers = %d",
            size - 2,
            config.workers,
        )
    client = Client()  # the scheduler's address, set by initialize
    client.wait_for_workers(size - 2, timeout=120)
    return client


def _slurm_cluster(config: ParallelConfig):
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ConfigError(
            "parallel.scheduler is 'slurm' but dask-jobqueue is not installed; "
            "install it with: pip install 'hpcaet[cluster]'"
        ) from None
    options = _slurm_options(config)
    profile = config.slurm.profile
    log.info(
        "SLURM worker jobs: %s cores, %s, %s on %s%s",
        options.get("cores"),
        options.get("memory"),
        options.get("walltime"),
        options.get("queue") or "the default partition",
        f" (profile {profile})" if profile else "",
    )
    try:
        return SLURMCluster(**options)
    except (TypeError, ValueError) as exc:
        where = f"the cluster profile {profile!r}" if profile else "parallel.slurm"
        raise ConfigError(
            f"dask_jobqueue.SLURMCluster rejected the options of {where}: {exc} "
            "Fix or remove that key; SLURMCluster's keyword arguments are listed at "
            "https://jobqueue.dask.org/en/latest/generated/dask_jobqueue.SLURMCluster.html"
        ) from exc


def _slurm_options(config: ParallelConfig) -> dict[str, Any]:
    """The keyword arguments of :class:`dask_jobqueue.SLURMCluster` for a config.

    The options of ``parallel.slurm`` (queue, account, walltime, cores, memory,
    job_extra_directives, interface), ``processes`` = cores / threads_per_worker, a
    dashboard on a free port, then the profile file's keys over them. A profile that
    sets ``cores`` but not ``processes`` gets ``processes`` from its own ``cores``; its
    ``scheduler_options`` are added to the default ones.

    Parameters
    ----------
    config : ParallelConfig
        The ``parallel`` section of the run's config.

    Returns
    -------
    dict
        Nothing is checked here beyond the profile being a mapping: SLURMCluster
        itself rejects what it does not take.

    Raises
    ------
    ConfigError
        When the profile file is missing, is not YAML, or is not a mapping.
    """
    s = config.slurm
    options: dict[str, Any] = {
        "queue": s.queue,
        "account": s.account,
        "walltime": s.walltime,
        "cores": s.cores,
        "memory": s.memory,
        "job_extra_directives": list(s.job_extra_directives),
        "scheduler_options": {"dashboard_address": ":0"},
    }
    if s.interface is not None:
        options["interface"] = s.interface
    profile = {} if s.profile is None else _read_profile(s.profile)
    scheduler_options = {**options["scheduler_options"], **profile.pop("scheduler_options", {})}
    options.update(profile, scheduler_options=scheduler_options)
    if "processes" not in profile and isinstance(options["cores"], int):
        options["processes"] = max(1, options["cores"] // config.threads_per_worker)
    return options


def _read_profile(path: str | Path) -> dict[str, Any]:
    """A cluster profile: a YAML mapping of SLURMCluster keyword arguments.

    Parameters
    ----------
    path : str or Path
        The YAML file; a relative path is read from the working directory.

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        When the file is missing, is not valid YAML, or does not hold a mapping with
        string keys (and a mapping under ``scheduler_options``).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"the cluster profile {str(path)!r} (parallel.slurm.profile) does not exist "
            f"(relative paths are read from the working directory, {Path.cwd()}); give the "
            "path of a YAML file of SLURMCluster options, e.g. configs/cluster/test-slurm.yaml."
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"the cluster profile {str(path)!r} is not valid YAML: {exc}") from None
    data = {} if data is None else data
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(
            f"the cluster profile {str(path)!r} must hold a mapping of SLURMCluster keyword "
            f"arguments (e.g. 'queue: debug'); got {data!r}."
        )
    if not isinstance(data.get("scheduler_options", {}), dict):
        raise ConfigError(
            f"scheduler_options in the cluster profile {str(path)!r} must be a mapping "
            f"(e.g. {{dashboard_address: ':8787'}}); got {data['scheduler_options']!r}."
        )
    return data


def slurm_job_script(config: ParallelConfig) -> str:
    """The sbatch script dask-jobqueue would submit for one worker job (nothing is submitted)."""
    cluster = _slurm_cluster(config)
    try:
        return cluster.job_script()
    finally:
        cluster.close()
