"""Build a Dask client from the ``parallel`` config section.

``scheduler: local`` starts a :class:`distributed.LocalCluster` (the default: a
laptop or one node), ``address`` connects to a running scheduler, and ``slurm``
starts workers as SLURM jobs through dask-jobqueue (``pip install hpcaet[cluster]``).
Every stage that spreads work asks this one function for its client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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
    s = config.slurm
    return SLURMCluster(
        queue=s.queue,
        account=s.account,
        walltime=s.walltime,
        cores=s.cores,
        processes=max(1, s.cores // config.threads_per_worker),
        memory=s.memory,
        job_extra_directives=list(s.job_extra_directives),
    )


def slurm_job_script(config: ParallelConfig) -> str:
    """The sbatch script dask-jobqueue would submit for one worker job (nothing is submitted)."""
    cluster = _slurm_cluster(config)
    try:
        return cluster.job_script()
    finally:
        cluster.close()
