"""One thread per BLAS / OpenMP library, wherever a task runs: the same bits on any cluster.

A floating-point sum depends on its order. A multi-threaded BLAS (OpenBLAS, MKL) splits
dot products and matrix products into per-thread partial sums, so a result depends on
how many threads the library uses: the machine's core count in this process, one in a
Dask worker (the nanny sets ``OMP_NUM_THREADS=1``), whatever a SLURM job exports. So
every task (:func:`call_pinned`) and every run of the pipeline
(:func:`hpcaet.pipeline.run_stages`) runs with one thread per library: parallelism comes
from tasks, and a result depends on the config, the seed and the inputs only, not on
the number of workers or the cores of the machine that runs it.

FFTs are not affected: scipy's ``workers=`` threads split a transform into whole
one-dimensional transforms, each computed in the same order on any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

__all__ = ["pinned_threads", "call_pinned"]


@lru_cache(maxsize=1)
def _controller():
    """The process's BLAS / OpenMP libraries, found once (finding them is most of the
    cost of a limit: about a millisecond, too much for every task)."""
    import scipy.linalg  # noqa: F401 - load scipy's own BLAS now, so that it is limited too
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def pinned_threads():
    """A context in which every BLAS and OpenMP library uses one thread.

    Returns
    -------
    threadpoolctl limiter
        Use as ``with pinned_threads(): ...``; the previous limits come back on exit.

    Examples
    --------
    >>> import numpy as np
    >>> with pinned_threads():
    ...     value = float(np.ones(4) @ np.ones(4))
    >>> value
    4.0
    """
    # Libraries loaded after the first call are not limited: those that start threads
    # of their own (BM3D) are asked for one thread where they are called.
    return _controller().limit(limits=1)


def call_pinned(func: Callable, args: tuple, kwargs: Mapping[str, Any]):
    """``func(*args, **kwargs)`` under :func:`pinned_threads` (what a Dask task runs)."""
    with pinned_threads():
        return func(*args, **kwargs)
