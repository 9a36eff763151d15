"""Scaling studies: the time of a stage's task map against the number of workers.

:func:`scaling_study` runs the same work on clusters of each size (built from the
config's ``parallel`` section, so a LocalCluster on a laptop and SLURM worker jobs on a
cluster) and returns a table: wall time, speed-up ``T1 / Tn`` and parallel efficiency
``T1 / (n Tn)`` (strong scaling: the same work on more workers), or for weak scaling
(work grown with the workers) ``T1 / Tn`` as the efficiency. Each run writes Dask's
performance report (an HTML page of the task stream, worker profiles and bandwidth).

The work is the reconstruction's window map (:func:`hpcaet.reconstruct.reconstruct_window`
over the run's plan, through :func:`hpcaet.parallel.map_tasks`, no checkpoints): the
largest task map of the pipeline. ``time_per_task`` measures the task layer's own
overhead (a map of no-op tasks).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.config import Config
from hpcaet.errors import InputError
from hpcaet.parallel.tasks import SerialExecutor, executor_for, map_tasks

__all__ = ["ScalingTable", "scaling_study", "reconstruct_work", "time_per_task", "write_table"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ScalingTable:
    """Result of :func:`scaling_study`.

    Attributes
    ----------
    workers : ndarray of int, shape (k,)
    tasks : ndarray of int, shape (k,)
        Tasks run at each size.
    seconds : ndarray of shape (k,)
        Wall time of the map (best of the repeats) [s].
    speedup, efficiency : ndarray of shape (k,)
        Relative to the first size (normalised to one worker's share of the work).
    mode : str
        ``"strong"`` or ``"weak"``.
    cluster : str
        The scheduler kind (``local``, ``slurm``, ``address``).
    """

    workers: np.ndarray
    tasks: np.ndarray
    seconds: np.ndarray
    speedup: np.ndarray
    efficiency: np.ndarray
    mode: str
    cluster: str

    def to_dataset(self) -> xr.Dataset:
        """The table with labelled coordinates and units."""
        return xr.Dataset(
            {
                "tasks": ("workers", self.tasks, {"long_name": "tasks run"}),
                "seconds": ("workers", self.seconds, {"units": "s", "long_name": "wall time"}),
                "speedup": ("workers", self.speedup, {"units": "1"}),
                "efficiency": ("workers", self.efficiency, {"units": "1"}),
            },
            coords={"workers": ("workers", self.workers, {"long_name": "Dask workers"})},
            attrs={"mode": self.mode, "cluster": self.cluster},
        )


def reconstruct_work(images, euler, plan, *, algorithm: str, options: dict, seed: int):
    """The window map of a reconstruction as ``(func, jobs, shared)`` for a study."""
    from hpcaet.reconstruct.distributed import reconstruct_window
    from hpcaet.reconstruct.windows import spline_coefficients

    shared = {
        "coefficients": spline_coefficients(np.asarray(images, np.float32)),
        "euler": np.asarray(euler, float),
        "plan": plan,
        "algorithm": algorithm,
        "options": options,
        "seed": seed,
    }
    return reconstruct_window, [{"window": w} for w in plan.windows()], shared


def scaling_study(
    func: Callable,
    jobs: Sequence,
    shared: dict,
    config: Config,
    *,
    workers: Sequence[int],
    mode: str = "strong",
    repeats: int = 1,
    reports: str | Path | None = None,
) -> ScalingTable:
    """Time a task map on clusters of each size.

    Parameters
    ----------
    func, jobs, shared
        The map (:func:`reconstruct_work`). For ``mode="weak"`` the first
        ``len(jobs) // max(workers) * n`` jobs run on ``n`` workers.
    config : Config
        Its ``parallel`` section builds each cluster (``workers`` replaced).
    workers : sequence of int
        Cluster sizes, e.g. ``[1, 2]``.
    mode : {"strong", "weak"}
    repeats : int, default 1
        Runs per size; the fastest counts.
    reports : path, optional
        Folder for Dask's performance report of each size (``dask-report-<n>.html``).

    Returns
    -------
    ScalingTable
    """
    from hpcaet.parallel.cluster import dask_client

    sizes = [int(n) for n in workers]
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise InputError(f"workers must be distinct counts >= 1, e.g. 1,2,4; got {workers!r}.")
    if mode not in ("strong", "weak"):
        raise InputError(f"mode must be 'strong' or 'weak'; got {mode!r}.")
    if mode == "weak" and len(jobs) < max(sizes):
        raise InputError(
            f"weak scaling needs at least one job per worker: {len(jobs)} jobs for up to "
            f"{max(sizes)} workers. Use a larger field or fewer workers."
        )
    per_worker = len(jobs) // max(sizes)
    seconds, tasks = [], []
    for n in sizes:
        subset = list(jobs) if mode == "strong" else list(jobs)[: per_worker * n]
        parallel = dataclasses.replace(config.parallel, workers=n)
        with dask_client(parallel) as client:
            client.wait_for_workers(n, timeout=600)
            client.run(lambda: None)  # workers started and importable before timing
            best = np.inf
            for r in range(max(1, int(repeats))):
                report = None
                if reports is not None and r == 0:
                    Path(reports).mkdir(parents=True, exist_ok=True)
                    report = Path(reports) / f"dask-report-{n}.html"
                best = min(best, _timed_map(client, func, subset, shared, n, report))
        log.info("scaling: %d workers, %d tasks: %.2f s", n, len(subset), best)
        seconds.append(best)
        tasks.append(len(subset))
    t = np.asarray(seconds)
    k = np.asarray(tasks, float)
    w = np.asarray(sizes, float)
    # time per unit of work, relative to the first size's
    rate = (t[0] / k[0]) / (t / k)
    speedup = rate * (w[0])
    efficiency = rate * w[0] / w
    return ScalingTable(
        workers=np.asarray(sizes),
        tasks=np.asarray(tasks),
        seconds=t,
        speedup=speedup,
        efficiency=efficiency,
        mode=mode,
        cluster=config.parallel.scheduler,
    )


def _timed_map(client, func, jobs, shared, n, report) -> float:
    from contextlib import nullcontext

    from distributed import performance_report

    if report is not None and importlib.util.find_spec("bokeh") is None:
        log.warning("scaling: no Dask performance report without bokeh; pip install bokeh")
        report = None
    context = performance_report(filename=str(report)) if report else nullcontext()
    with context:
        start = time.perf_counter()
        map_tasks(
            func,
            jobs,
            keys=[f"job{k}-{time.monotonic_ns()}" for k in range(len(jobs))],
            shared=shared,
            executor=executor_for(client, label=f"scaling-{n}"),
            label=f"scaling, {n} workers",
        )
        return time.perf_counter() - start


def _noop(*, k):
    return k


def time_per_task(client=None, *, tasks: int = 200) -> float:
    """Mean overhead of the task layer per task [s]: a map of no-op tasks, after one
    map of a single task (what a process pays once: imports, finding its BLAS)."""
    executor = SerialExecutor() if client is None else executor_for(client, label="noop")
    for n in (1, tasks):
        start = time.perf_counter()
        map_tasks(
            _noop,
            [{"k": k} for k in range(n)],
            keys=[f"noop{k}-{time.monotonic_ns()}" for k in range(n)],
            executor=executor,
            label="task overhead",
            verbose=False,
        )
    return (time.perf_counter() - start) / tasks


def write_table(table: ScalingTable, folder: str | Path) -> list[Path]:
    """``scaling.nc``, ``scaling.csv`` and ``scaling.png`` in a folder; their paths."""
    from matplotlib.figure import Figure

    from hpcaet.io.atomic import atomic_path
    from hpcaet.plotting import save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nc, csv = folder / "scaling.nc", folder / "scaling.csv"
    with atomic_path(nc) as tmp:
        table.to_dataset().to_netcdf(tmp)
    lines = ["workers,tasks,seconds,speedup,efficiency"] + [
        f"{w},{k},{s:.4f},{p:.4f},{e:.4f}"
        for w, k, s, p, e in zip(
            table.workers,
            table.tasks,
            table.seconds,
            table.speedup,
            table.efficiency,
            strict=True,
        )
    ]
    with atomic_path(csv) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    ax_t, ax_s, ax_e = fig.subplots(1, 3)
    ax_t.plot(table.workers, table.seconds, "o-")
    ax_t.set(xlabel="workers", ylabel="wall time [s]", title=f"{table.mode} scaling")
    ax_s.plot(table.workers, table.speedup, "o-", label="measured")
    ax_s.plot(table.workers, table.workers / table.workers[0], "k--", label="ideal")
    ax_s.set(xlabel="workers", ylabel="speed-up", title="speed-up")
    ax_s.legend()
    ax_e.plot(table.workers, 100 * table.efficiency, "o-")
    ax_e.axhline(100, color="k", ls="--")
    ax_e.set(xlabel="workers", ylabel="efficiency [%]", ylim=(0, 110), title="efficiency")
    png = save_figure(fig, folder / "scaling.png")
    return [nc, csv, png]
