"""Build a Dask client from the ``parallel`` config section.

``scheduler: local`` starts a :class:`distributed.LocalCluster` (the default: a
laptop or one node), ``address`` connects to a running scheduler, and ``slurm``
starts workers as SLURM jobs through dask-jobqueue (``pip install hpcaet[cluster]``).
Every stage that spreads work asks this one function for its client.

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
    if config.scheduler == "local":
        cluster = LocalCluster(
            n_workers=config.workers,
            threads_per_worker=config.threads_per_worker,
            memory_limit=config.memory_limit,
            processes=True,
            dashboard_address=":0",
        )
        client = Client(cluster)
    elif config.scheduler == "address":
        client = Client(config.address, timeout="30s")
    else:
        cluster = _slurm_cluster(config)
        cluster.scale(jobs=config.workers)
        client = Client(cluster)
    log.info("Dask scheduler %s (dashboard %s)", client.scheduler.address, client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


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
