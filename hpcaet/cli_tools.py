"""The ``hpcaet config`` and ``hpcaet jobs`` commands: what a run uses, and its job scripts.

``hpcaet config`` prints the resolved config (every setting, the defaults filled in) of a
run directory or of a config file; ``hpcaet jobs`` writes the SLURM job scripts of a
config (:mod:`hpcaet.parallel.jobs`, docs/cluster.md).
"""

from __future__ import annotations

from pathlib import Path

from hpcaet.errors import HpcaetError

__all__ = ["tools_parser", "cmd_config", "cmd_jobs"]

_CONFIG_HELP = "YAML config, or a packaged one by name (demo, paper)"


def tools_parser(sub) -> None:
    """Add ``hpcaet config`` and ``hpcaet jobs`` to the command line's subparsers."""
    config = sub.add_parser(
        "config",
        help="print the resolved config of a run directory (or of --config), every setting",
        description="Print the config a command would use, as YAML with every setting "
        "(the defaults filled in): the run directory's config.yaml, or --config.",
    )
    config.add_argument("--run", default=None, help="run directory (its config.yaml)")
    config.add_argument("--config", default=None, help=_CONFIG_HELP)
    config.set_defaults(func=cmd_config)
    jobs = sub.add_parser(
        "jobs",
        help="write the SLURM job scripts of a config (sizes from its parallel section)",
        description="Write local_workers.sbatch and pipeline.sbatch for a config: CPUs and "
        "memory from its parallel section (workers, threads_per_worker, memory_limit), "
        "and the activation of this Python environment (or of the cluster profile's "
        "job_script_prologue). See docs/cluster.md.",
    )
    jobs.add_argument("--config", required=True, help=_CONFIG_HELP)
    jobs.add_argument("--out", required=True, help="folder of the job scripts, e.g. jobs/mine")
    jobs.set_defaults(func=cmd_jobs)


def cmd_jobs(args) -> int:
    """Write the job scripts and print their paths."""
    from hpcaet.cli import _load
    from hpcaet.parallel.jobs import write_jobs

    for path in write_jobs(_load(args.config, args), args.out):
        print(path)
    return 0


def cmd_config(args) -> int:
    """Print the resolved config as YAML."""
    import yaml

    from hpcaet.cli import _load
    from hpcaet.config import config_to_dict

    if args.config is None and args.run is None:
        raise HpcaetError("hpcaet config needs --run RUN or --config CONFIG; got neither.")
    path = args.config or Path(args.run) / "config.yaml"
    if args.config is None and not Path(path).exists():
        raise HpcaetError(
            f"{path} not found: {args.run} is not a run directory (no config.yaml); give "
            "the folder of a run, or --config CONFIG."
        )
    config = _load(path, args)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
    print(text, end="")
    return 0
