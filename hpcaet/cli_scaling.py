"""The ``hpcaet scaling`` command: a strong or weak scaling study of a run's reconstruction.

See :mod:`hpcaet.parallel.scaling` for the work and ``docs/cluster.md`` for a tutorial.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hpcaet.errors import HpcaetError

__all__ = ["scaling_parser", "cmd_scaling"]

log = logging.getLogger("hpcaet")


def scaling_parser(sub) -> None:
    """Add ``hpcaet scaling`` to the command line's subparsers."""
    p = sub.add_parser(
        "scaling",
        help="time the reconstruction on 1, 2, ... workers (strong or weak scaling)",
        description="Run the reconstruction's window map of a run directory (its "
        "processed.nc and config.yaml) on clusters of each size from the config's "
        "parallel section (a LocalCluster, or SLURM worker jobs), and write the table "
        "(scaling.nc, scaling.csv), a plot of time, speed-up and efficiency, and Dask's "
        "performance report of each size.",
    )
    p.add_argument("--run", required=True, help="run directory with processed.nc")
    p.add_argument("--stage", default="reconstruct", choices=("reconstruct",))
    p.add_argument("--workers", default="1,2", help="comma-separated sizes (default 1,2)")
    p.add_argument("--mode", default="strong", choices=("strong", "weak"))
    p.add_argument("--repeats", type=int, default=1, help="runs per size; the best counts")
    p.add_argument("--iterations", type=int, default=None, help="iterations per window")
    p.add_argument("--config", default=None, help="config instead of the run's config.yaml")
    p.add_argument("--out", default=None, help="folder of the results (default RUN/scaling)")
    p.set_defaults(func=cmd_scaling)


def cmd_scaling(args) -> int:
    from hpcaet.config import load_config
    from hpcaet.parallel.scaling import reconstruct_work, scaling_study, write_table
    from hpcaet.pipeline import RunDirectory
    from hpcaet.reconstruct.stage import algorithm_options, field_inputs

    run = RunDirectory(Path(args.run))
    config_path = Path(args.config) if args.config else run.file("config.yaml")
    if not config_path.exists():
        raise HpcaetError(f"{config_path} not found; give --config or run the pipeline first.")
    try:
        workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        raise HpcaetError(
            f"--workers must be comma-separated integers, e.g. 1,2,4; got {args.workers!r}."
        ) from None
    config = load_config(config_path)
    rc = config.reconstruct
    images, euler, _, _, plan = field_inputs(config, run)
    options = algorithm_options(rc)
    if args.iterations is not None:
        options["iterations"] = args.iterations
    func, jobs, shared = reconstruct_work(
        images, euler, plan, algorithm=rc.algorithm, options=options, seed=config.seed
    )
    out = Path(args.out) if args.out else run.root / "scaling"
    table = scaling_study(
        func,
        jobs,
        shared,
        config,
        workers=workers,
        mode=args.mode,
        repeats=args.repeats,
        reports=out,
    )
    paths = write_table(table, out)
    print(
        f"{args.mode} scaling of {len(jobs)} reconstruction windows ({rc.algorithm}, "
        f"{options['iterations']} iterations), {table.cluster} cluster:"
    )
    print(f"{'workers':>8} {'tasks':>6} {'time [s]':>9} {'speed-up':>9} {'efficiency':>11}")
    for w, k, s, p, e in zip(
        table.workers, table.tasks, table.seconds, table.speedup, table.efficiency, strict=True
    ):
        print(f"{w:>8} {k:>6} {s:>9.2f} {p:>9.2f} {100 * e:>10.0f}%")
    for path in [*paths, *sorted(out.glob("dask-report-*.html"))]:
        print(f"  {path}")
    return 0
