"""Where work runs: the Dask client from config, and one checkpointed task layer.

:mod:`hpcaet.parallel.tasks` maps a function over jobs on a serial, Dask or MPI
executor with per-task checkpoints; :mod:`hpcaet.parallel.cluster` builds the Dask
client from the ``parallel`` config section; :mod:`hpcaet.parallel.threads` keeps
BLAS and OpenMP at one thread, so results do not depend on where tasks run.
"""

from hpcaet.parallel.cluster import dask_client, slurm_job_script
from hpcaet.parallel.tasks import (
    ARRAY,
    ARRAYS,
    Codec,
    DaskExecutor,
    Executor,
    Mapper,
    MPIExecutor,
    SerialExecutor,
    TaskMapper,
    TaskStore,
    content_key,
    executor_for,
    map_tasks,
    record_codec,
    serial_map,
)
from hpcaet.parallel.threads import pinned_threads

__all__ = [
    "ARRAY",
    "ARRAYS",
    "Codec",
    "DaskExecutor",
    "Executor",
    "MPIExecutor",
    "Mapper",
    "SerialExecutor",
    "TaskMapper",
    "TaskStore",
    "content_key",
    "dask_client",
    "executor_for",
    "map_tasks",
    "pinned_threads",
    "record_codec",
    "serial_map",
    "slurm_job_script",
]
