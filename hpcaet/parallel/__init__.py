"""Where Dask work runs: one seam that builds the client from config, plus progress."""

from hpcaet.parallel.cluster import dask_client, slurm_job_script
from hpcaet.parallel.progress import gather_with_progress

__all__ = ["dask_client", "gather_with_progress", "slurm_job_script"]
