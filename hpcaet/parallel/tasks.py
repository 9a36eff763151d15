"""One task layer: map a function over jobs, checkpointed, on any executor.

Every stage that spreads work over tilts, windows, tiles or image chunks goes through
:func:`map_tasks` (checkpointed, keyed) or an executor's :meth:`Executor.run` directly
(the refinement's inner map, which changes with every iteration and is not saved):

* a *job* is a mapping of keyword arguments (or a tuple of positional ones); the
  *shared* inputs (the same for every job: an image stack, the angles) are handed to
  the executor once — a Dask executor scatters their arrays to every worker once;
* a job's *key* is deterministic and given by the caller from what its result depends
  on (science settings and inputs), never from execution settings (threads, chunk
  sizes, workers): changing a thread count keeps every finished result;
* with a :class:`TaskStore` each result is saved as it completes, atomically (written
  whole or not at all), and loaded by key on the next run; a file that cannot be read,
  or that fails the codec's check, is recomputed with a warning;
* progress is reported as results arrive, with the time left (:mod:`.progress`);
* every task runs with one BLAS / OpenMP thread (:mod:`hpcaet.parallel.threads`), here
  as in a Dask worker or an MPI rank, and results come back in the order of the jobs
  (not of completion): a result is the same whatever the executor and its workers.

Executors (one protocol, :class:`Executor`): :class:`SerialExecutor` (here, in turn),
:class:`DaskExecutor` (a ``distributed.Client``: LocalCluster, a scheduler address,
SLURM workers through dask-jobqueue) and :class:`MPIExecutor` (an mpi4py
communicator, every rank running the same program: rank ``r`` computes the jobs ``i``
with ``i % size == r``, saves them, and every rank gets all results).
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hpcaet.errors import InputError
from hpcaet.io.atomic import atomic_path
from hpcaet.parallel.progress import Progress
from hpcaet.parallel.threads import call_pinned

__all__ = [
    "Codec",
    "ARRAYS",
    "ARRAY",
    "record_codec",
    "TaskStore",
    "Executor",
    "SerialExecutor",
    "DaskExecutor",
    "MPIExecutor",
    "executor_for",
    "map_tasks",
    "Mapper",
    "TaskMapper",
    "serial_map",
    "content_key",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Codec:
    """How a result is saved: to a dict of arrays (one ``.npz``) and back.

    Attributes
    ----------
    encode : callable
        ``result -> dict[str, ndarray]``.
    decode : callable
        ``dict[str, ndarray] -> result``.
    valid : callable, optional
        ``result -> bool``; a loaded result that fails it is recomputed.
    """

    encode: Callable[[Any], Mapping[str, np.ndarray]]
    decode: Callable[[Mapping[str, np.ndarray]], Any]
    valid: Callable[[Any], bool] | None = None


def _all_finite(result: Mapping[str, np.ndarray]) -> bool:
    return all(np.all(np.isfinite(v)) for v in result.values() if np.issubdtype(v.dtype, np.number))


#: A result that is a dict of numeric arrays; non-finite values make it invalid.
ARRAYS = Codec(encode=dict, decode=dict, valid=_all_finite)
#: A result that is one array.
ARRAY = Codec(encode=lambda a: {"value": np.asarray(a)}, decode=lambda d: d["value"])


def record_codec(record: type) -> Codec:
    """The codec of a record class with ``arrays()`` and ``from_arrays(dict)``."""
    return Codec(encode=lambda r: r.arrays(), decode=record.from_arrays)


class TaskStore:
    """One ``.npz`` file per finished task, in a folder.

    Parameters
    ----------
    directory : path or None
        Where the files go (created); None keeps nothing (every load misses).
    prefix : str
        Start of every file name (e.g. the stage and the hash of its inputs).
    codec : Codec, default ARRAYS
    """

    def __init__(self, directory: str | Path | None, prefix: str, codec: Codec = ARRAYS):
        self.directory = None if directory is None else Path(directory)
        self.prefix = prefix
        self.codec = codec
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path | None:
        """File of a task, None without a folder."""
        if self.directory is None:
            return None
        return self.directory / f"{self.prefix}-{key}.npz"

    def load(self, key: str) -> Any | None:
        """The saved result of ``key``; None when absent, unreadable or invalid."""
        path = self.path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as data:
                result = self.codec.decode({name: data[name] for name in data.files})
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("checkpoint %s is unreadable (%s); recomputing it", path, exc)
            return None
        if self.codec.valid is not None and not self.codec.valid(result):
            log.warning("checkpoint %s fails its check (non-finite values); recomputing it", path)
            return None
        return result

    def save(self, key: str, result: Any) -> None:
        """Write a result whole or not at all (no-op without a folder)."""
        path = self.path(key)
        if path is None:
            return
        with atomic_path(path) as tmp:
            np.savez(tmp, **self.codec.encode(result))


class Executor(Protocol):
    """Runs jobs somewhere and reports each result as it completes."""

    def run(
        self,
        func: Callable,
        jobs: Sequence[Mapping | tuple],
        shared: Mapping[str, Any],
        *,
        keys: Sequence[str],
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, result)`` of the jobs this process computes, as they finish."""
        ...

    def share(self, results: dict[int, Any]) -> dict[int, Any]:
        """Every job's result, from what each process computed (MPI: an allgather)."""
        ...

    def agree(self, todo: list[int]) -> list[int]:
        """The jobs left to compute, as every process will see them (MPI: rank 0's)."""
        ...


def _call(func: Callable, job: Mapping | tuple, shared: Mapping[str, Any]):
    # one BLAS thread, here as in a Dask worker: the same bits wherever a task runs
    if isinstance(job, tuple):
        return call_pinned(func, job, shared)
    return call_pinned(func, (), {**shared, **job})


class SerialExecutor:
    """Runs every job here, in turn."""

    def run(self, func, jobs, shared, *, keys):
        for i, job in enumerate(jobs):
            yield i, _call(func, job, shared)

    def share(self, results):
        return results

    def agree(self, todo):
        return todo

    def scatter(self, items: Sequence) -> list:
        """Items to hand to jobs (here: themselves)."""
        return list(items)


def _kept(value):
    return value


class DaskExecutor:
    """Runs jobs as Dask tasks; the shared arrays are scattered to every worker once.

    Parameters
    ----------
    client : distributed.Client
    label : str
        Prefix of the task keys (``<label>-<key>``), as the dashboard shows them.
    """

    def __init__(self, client, label: str = "task") -> None:
        self.client = client
        self.label = label

    def scatter(self, items: Sequence) -> list:
        """Handles (futures) of items, to pass in jobs and reuse across calls.

        Each item goes to the cluster once, as the argument of a task that returns it,
        and stays in one worker's memory while its handle lives. Unlike data scattered
        with ``client.scatter``, which dies with the worker holding it (every task that
        needs it is then cancelled), the scheduler runs that task again on another
        worker when its worker is lost (the scheduler keeps the task, and so a copy of
        the item, while the handle lives).
        """
        return [self.client.submit(_kept, item, pure=False) for item in items]

    def run(self, func, jobs, shared, *, keys):
        from distributed import as_completed

        big = [k for k, v in shared.items() if isinstance(v, np.ndarray) and v.nbytes > 2**16]
        scattered = dict(shared)
        if big:
            handles = self.client.scatter([shared[k] for k in big], broadcast=True, hash=False)
            scattered.update(zip(big, handles, strict=True))
        futures = {}
        for i, (job, key) in enumerate(zip(jobs, keys, strict=True)):
            args, kwargs = (
                (job, scattered) if isinstance(job, tuple) else ((), {**scattered, **job})
            )
            future = self.client.submit(
                call_pinned, func, args, kwargs, key=f"{self.label}-{key}", pure=False
            )
            futures[future.key] = (future, i)
        for future in as_completed([f for f, _ in futures.values()]):
            result = future.result()
            future.release()
            yield futures[future.key][1], result

    def share(self, results):
        return results

    def agree(self, todo):
        return todo


class MPIExecutor:
    """Runs jobs on the ranks of an MPI communicator, round robin.

    Every rank runs the same program and calls :func:`map_tasks` with the same jobs;
    rank ``r`` computes the jobs ``i`` with ``i % size == r`` and :meth:`share` gives
    every rank all results.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Default ``MPI.COMM_WORLD``.
    """

    def __init__(self, comm=None) -> None:
        if comm is None:
            try:
                from mpi4py import MPI
            except ImportError:
                raise InputError(
                    "the MPI executor needs mpi4py; install it with: pip install 'hpcaet[mpi]'"
                ) from None
            comm = MPI.COMM_WORLD
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def scatter(self, items: Sequence) -> list:
        return list(items)

    def run(self, func, jobs, shared, *, keys):
        for i, job in enumerate(jobs):
            if i % self.size == self.rank:
                yield i, _call(func, job, shared)

    def share(self, results):
        merged: dict[int, Any] = {}
        for part in self.comm.allgather(results):
            merged.update(part)
        return merged

    def agree(self, todo):
        # rank 0 has looked at the checkpoints before any rank saves a new one
        return self.comm.bcast(todo, root=0)


def executor_for(client=None, *, label: str = "task") -> SerialExecutor | DaskExecutor:
    """The executor of a Dask client, or the serial one without."""
    return SerialExecutor() if client is None else DaskExecutor(client, label)


def map_tasks(
    func: Callable,
    jobs: Sequence[Mapping | tuple],
    *,
    keys: Sequence[str],
    shared: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    store: TaskStore | None = None,
    label: str = "tasks",
    every: float = 30.0,
    verbose: bool = True,
    report: dict | None = None,
) -> list:
    """``[func(**shared, **job) for job in jobs]``, checkpointed, on an executor.

    Parameters
    ----------
    func : callable
        A pure function of its arguments (must pickle for Dask).
    jobs : sequence of mapping or tuple
        Keyword (mapping) or positional (tuple) arguments of each call.
    keys : sequence of str
        A unique, deterministic key per job (file names and task keys).
    shared : mapping, optional
        Keyword arguments common to every call.
    executor : Executor, optional
        Default :class:`SerialExecutor`.
    store : TaskStore, optional
        Where finished results are saved and looked up; None saves nothing.
    label : str
        Name of the work in the progress lines.
    every : float, default 30
        Least time between two progress lines [s] (:class:`hpcaet.parallel.progress.Progress`:
        a terminal shows a bar with the time left instead).
    verbose : bool, default True
        Log the progress at INFO (else DEBUG: for maps inside an iteration).
    report : dict, optional
        Filled with the keys ``"loaded"`` from checkpoints and ``"computed"`` here.

    Returns
    -------
    list
        The results, in the order of ``jobs``.

    Raises
    ------
    InputError
        When the keys are not one unique key per job.
    """
    if len(keys) != len(jobs) or len(set(keys)) != len(keys):
        raise InputError(
            f"map_tasks needs one unique key per job; got {len(keys)} keys "
            f"({len(set(keys))} distinct) for {len(jobs)} jobs."
        )
    executor = SerialExecutor() if executor is None else executor
    shared = dict(shared or {})
    results: dict[int, Any] = {}
    if store is not None:
        for i, key in enumerate(keys):
            found = store.load(key)
            if found is not None:
                results[i] = found
    todo = executor.agree([i for i in range(len(jobs)) if i not in results])
    level = logging.INFO if verbose else logging.DEBUG
    log.log(
        level,
        "%s: %d tasks (%d from checkpoints, %d to compute)",
        label,
        len(jobs),
        len(results),
        len(todo),
    )
    computed: dict[int, Any] = {}
    progress = Progress(label, len(todo), every=every, level=level)
    runs = executor.run(func, [jobs[i] for i in todo], shared, keys=[keys[i] for i in todo])
    for k, result in runs:
        i = todo[k]
        computed[i] = result
        if store is not None:
            store.save(keys[i], result)
        progress.advance()
    progress.finish()
    results.update(executor.share(computed))
    for i in range(len(jobs)):  # found by another process (MPI rank 0) before the work
        if i not in results and store is not None:
            found = store.load(keys[i])
            if found is not None:
                results[i] = found
    missing = [keys[i] for i in range(len(jobs)) if i not in results]
    if missing:  # pragma: no cover - an executor that lost work
        raise InputError(f"{label}: no result for the tasks {missing[:5]}.")
    if report is not None:
        report["computed"] = [keys[i] for i in todo]
        report["loaded"] = [keys[i] for i in range(len(jobs)) if i not in set(todo)]
    return [results[i] for i in range(len(jobs))]


#: A mapper runs ``func(*job, **shared)`` (tuple jobs) or ``func(**shared, **job)``
#: (mapping jobs) for every job and returns the results in order.
Mapper = Callable[[Callable, Sequence, Mapping], list]


def serial_map(func: Callable, jobs: Sequence, shared: Mapping | None = None) -> list:
    """The serial :data:`Mapper`: a list comprehension."""
    return [_call(func, job, dict(shared or {})) for job in jobs]


def content_key(data: Mapping | tuple, salt: str = "") -> str:
    """A 16-hex-digit hash of a job's values (arrays by their bytes, others by repr)."""
    h = hashlib.sha256(salt.encode())
    items = sorted(data.items()) if isinstance(data, Mapping) else enumerate(data)
    for name, value in items:
        h.update(str(name).encode())
        if isinstance(value, np.ndarray):
            h.update(np.ascontiguousarray(value).tobytes())
            h.update(str((value.shape, value.dtype.str)).encode())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()[:16]


class TaskMapper:
    """A :data:`Mapper` over an executor, with checkpoints when given a store.

    With a store, a job's key is :func:`content_key` of the job and the shared
    inputs, so a result is reused only for the same inputs. Without one (a map inside
    an iteration) the keys are numbered per call and nothing is saved.

    Parameters
    ----------
    executor : Executor, optional
        Default :class:`SerialExecutor`.
    store : TaskStore, optional
    label : str
        Name of the work in the progress lines.
    keep_jobs : bool, default False
        Hand the executor each distinct job element once (Dask: scatter it once) and
        reuse the handle in later calls with the same objects: for a map called many
        times over the same large inputs (the refinement's image chunks).
    """

    def __init__(
        self,
        executor: Executor | None = None,
        *,
        store: TaskStore | None = None,
        label: str = "tasks",
        keep_jobs: bool = False,
    ) -> None:
        self.executor = SerialExecutor() if executor is None else executor
        self.store = store
        self.label = label
        self.keep_jobs = keep_jobs
        self.calls = 0
        self._kept: dict[int, tuple[Any, Any]] = {}

    def _handle(self, value):
        entry = self._kept.get(id(value))
        if entry is None or entry[0] is not value:
            entry = (value, self.executor.scatter([value])[0])
            self._kept[id(value)] = entry
        return entry[1]

    def __call__(self, func: Callable, jobs: Sequence, shared: Mapping | None = None) -> list:
        shared = dict(shared or {})
        if self.store is not None:
            common = content_key(shared)
            keys = [content_key(job, common) for job in jobs]
        else:
            keys = [f"{self.calls}-{k}" for k in range(len(jobs))]
        if self.keep_jobs:
            jobs = [
                tuple(self._handle(v) for v in job)
                if isinstance(job, tuple)
                else {k: self._handle(v) for k, v in job.items()}
                for job in jobs
            ]
        self.calls += 1
        return map_tasks(
            func,
            jobs,
            keys=keys,
            shared=shared,
            executor=self.executor,
            store=self.store,
            label=self.label,
            verbose=self.store is not None,
        )
