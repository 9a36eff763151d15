"""Command line: ``hpcaet demo | simulate | info``.

Every command has ``--help``. Long work logs progress lines; ``-v`` shows more.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from hpcaet.errors import HpcaetError

log = logging.getLogger("hpcaet")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    bar = _setup_logging(args.verbose, quiet=args.quiet)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    if getattr(args, "deprecated_out", False):
        log.warning("--out is deprecated for the run directory; write --run %s", args.out)
    try:
        return args.func(args) or 0
    except HpcaetError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; run the same command again to resume")
        return 130
    except BrokenPipeError:  # output piped into a reader that closed early (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if bar is not None:
            from hpcaet.parallel.progress import remove_display

            bar.clear()
            remove_display(bar)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hpcaet",
        description="Scanning atomic electron tomography of 2D heterostructures.",
    )
    _verbosity_options(p, default=0)
    p.set_defaults(quiet=False)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run every available stage on a small phantom (local Dask cluster)",
        description="Simulate a small MoS2–WSe2 heterojunction and run every available "
        "stage on it with a local Dask cluster; prints where the outputs are.",
    )
    _run_option(
        demo, required=False, default="runs/demo", help="run directory (default: runs/demo)"
    )
    _cluster_options(demo)
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser(
        "run",
        help="run the pipeline (all stages, or those named) for a config",
        description="Run pipeline stages for a config into a run directory; stages whose "
        "outputs exist for the same config are skipped, so an interrupted run "
        "resumes. With parallel.scheduler: slurm the work runs on SLURM jobs.",
    )
    run.add_argument(
        "--config",
        default=None,
        help="YAML config, or a packaged one by name (demo, paper); default: the run "
        "directory's config.yaml",
    )
    _run_option(run, help="run directory, e.g. runs/paper")
    run.add_argument(
        "--stages", default=None, help="comma-separated stages to run (default: all, in order)"
    )
    _cluster_options(run)
    run.set_defaults(func=_cmd_run)

    sim = sub.add_parser(
        "simulate",
        help="build a phantom and simulate its raw tilt series",
        description="Build the heterojunction phantom of a config and simulate its tilt "
        "series; writes RUN/truth_atoms.nc and RUN/tilt_series.nc.",
    )
    sim.add_argument(
        "--config", required=True, help="YAML config (e.g. configs/demo.yaml, configs/paper.yaml)"
    )
    _run_option(sim, help="run directory, e.g. runs/demo")
    _cluster_options(sim)
    sim.set_defaults(func=_cmd_simulate)

    from hpcaet.cli_import import import_parser
    from hpcaet.cli_precision import precision_parser
    from hpcaet.cli_scaling import scaling_parser

    import_parser(sub)
    scaling_parser(sub)
    precision_parser(sub)
    report = sub.add_parser(
        "report",
        help="write RUN/report.html: the figures and numbers of every stage that ran",
        description="Write the run directory's report.html again (hpcaet run writes it at "
        "the end of every run): one page with each stage's figures and numbers, the "
        "scores when a truth file is there, and the config.",
    )
    report.add_argument("--run", required=True, help="run directory")
    report.set_defaults(func=_cmd_report)
    from hpcaet.cli_tools import tools_parser

    tools_parser(sub)  # hpcaet config, hpcaet jobs

    from hpcaet.pipeline import STAGES

    for name, stage in STAGES.items():
        if name in ("simulate", "eels"):  # eels has its own parser (_eels_parser)
            continue
        sp = sub.add_parser(
            name,
            help=stage.help,
            description=f"{stage.help}. Reads the run directory's config.yaml and "
            f"{', '.join(stage.inputs) or 'nothing'}; writes "
            f"{', '.join(stage.outputs)}.",
        )
        _run_option(sp, help="run directory made by 'hpcaet simulate' or 'hpcaet run'")
        sp.add_argument(
            "--config",
            default=None,
            help="config to use instead of the run directory's config.yaml",
        )
        _cluster_options(sp)
        if name == "dynamic":
            sp.add_argument(
                "--atoms",
                default=None,
                help="comma-separated sites to scan, each a flagged outlier (sets "
                "dynamic.atoms; default: every flagged outlier off the edge band, "
                "dynamic.skip_edge)",
            )
        sp.set_defaults(func=_cmd_stage, stage=name)

    _eels_parser(sub)
    from hpcaet.phonons.command import phonons_parser

    phonons_parser(sub)

    info = sub.add_parser(
        "info",
        help="describe an hpcaet netCDF file: sizes, variables, every attribute",
        description="Print the kind, sizes and variables of an hpcaet netCDF file, after "
        "validating it, and every attribute in full (the file's and each variable's).",
    )
    info.add_argument("file", help="a .nc file written by hpcaet")
    info.set_defaults(func=_cmd_info)
    for command in sub.choices.values():  # -v / -q after the command as well as before
        _verbosity_options(command, default=argparse.SUPPRESS)
    return p


class _DeprecatedOut(argparse.Action):
    """``--out DIR``: the run directory's old option name, kept as an alias of --run."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.out = values
        namespace.deprecated_out = True


def _run_option(parser, *, required: bool = True, default=None, help: str) -> None:
    """``--run RUN`` (``args.out``), the run directory of every command; ``--out`` is
    its deprecated alias."""
    group = parser.add_mutually_exclusive_group(required=required)
    help = f"{help}; --out RUN is its deprecated alias"
    group.add_argument("--run", dest="out", metavar="RUN", default=default, help=help)
    group.add_argument(
        "--out",
        dest="out",
        metavar="RUN",
        action=_DeprecatedOut,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def _verbosity_options(parser, *, default) -> None:
    parser.add_argument(
        "-v", "--verbose", action="count", default=default, help="more log output (-vv: Dask's)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="warnings and errors only"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hpcaet")
    except PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "unknown"


def _eels_parser(sub) -> None:
    eels = sub.add_parser(
        "eels",
        help="vibrational EELS: background, k-means regions, Gaussian peak table",
        description="Analyse vibrational EELS spectra (zero-loss alignment, two-window "
        "power-law background, k-means with the correlation distance, sum-of-Gaussians "
        "fit of each group). Give SPECTRA_FILE (.nc EELS Dataset, .dm3/.dm4 or another "
        "RosettaSciIO format) and --out; writes OUT/eels.nc and OUT/figures/eels_*.png. "
        "Or give --run RUN to run the pipeline stage on the synthetic line scan of the "
        "run's config.",
    )
    eels.add_argument(
        "spectra_file",
        nargs="?",
        default=None,
        metavar="SPECTRA_FILE",
        help="spectra to analyse (.nc, .dm3, .dm4, ...)",
    )
    eels.add_argument("--out", default=None, help="output directory, e.g. runs/eels")
    eels.add_argument("--run", default=None, help="run directory: run the pipeline stage")
    eels.add_argument(
        "--config",
        default=None,
        help="config whose eels section is used (default: hpcaet defaults, "
        "or the run directory's config.yaml with --run)",
    )
    eels.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the k-means starts (default: the config's seed); the peak fit is "
        "deterministic",
    )
    eels.add_argument(
        "--background",
        default=None,
        choices=("poisson", "loglog", "two_area", "least_squares"),
        help="power-law estimator (default: poisson maximum likelihood, or loglog with "
        "eels.refine_background: false); docs/eels.md compares them",
    )
    _cluster_options(eels)
    eels.set_defaults(func=_cmd_eels, stage="eels")


def _cmd_eels(args) -> int:
    if args.run is not None:
        if args.spectra_file is not None:
            raise HpcaetError("give either SPECTRA_FILE with --out, or --run RUN; not both.")
        args.out = args.run
        return _cmd_stage(args)
    if args.spectra_file is None or args.out is None:
        raise HpcaetError(
            "hpcaet eels needs SPECTRA_FILE and --out (e.g. 'hpcaet eels scan.dm4 --out "
            "runs/eels'), or --run RUN for the pipeline stage."
        )
    from hpcaet.config import load_config
    from hpcaet.eels import analyse_eels, read_spectra, write_eels_figures
    from hpcaet.io import write_dataset

    config = load_config(args.config)
    seed = config.seed if args.seed is None else args.seed
    spectra = read_spectra(args.spectra_file)
    result = analyse_eels(spectra, config.eels, background_estimator=args.background, rng=seed)
    result.attrs["stage"] = "eels"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_dataset(result, out / "eels.nc")
    figures = write_eels_figures(result, out / "figures")
    _print_outputs(args.out, {"eels.nc": path})
    names = [str(n) for n in result["group_name"].values]
    print("\nPeak centres [meV] (± standard error), highest first:")
    lo, hi = (float(v) for v in result.attrs["fit_range"])
    loose = False
    for g, name in enumerate(names):
        pairs = zip(result.peak_centre.values[g], result.peak_centre_error.values[g], strict=True)
        cells = []
        for c, e in pairs:
            wide = not e <= hi - lo
            loose |= wide
            cells.append(f"{c:.1f} ± {e:.1f}" + (" (!)" if wide else ""))
        print(f"  {name:<12} {', '.join(cells)}")
    if loose:
        print(f"  (!) error bar wider than the fit range {lo:g}-{hi:g} meV: not determined")
    log.info("wrote %d figures", len(figures))
    return 0


def _cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Dask workers (default: parallel.workers of the config)",
    )
    p.add_argument("--no-cluster", action="store_true", help="run in this process, without Dask")
    p.add_argument("--force", action="store_true", help="re-run finished stages")


def _config_path(value):
    """A config file, or the name of a packaged one (``demo``, ``paper``)."""
    if value is None or Path(value).is_file() or Path(value).suffix:
        return value
    from hpcaet.config import packaged_config

    return packaged_config(str(value))


def _load(config_path, args):
    from hpcaet.config import load_config

    config_path = _config_path(config_path)
    overrides = {}
    if getattr(args, "workers", None) is not None:
        overrides["parallel"] = {"workers": args.workers}
    if getattr(args, "stage", None) == "dynamic":  # asked for by name: it runs
        overrides["dynamic"] = {"enabled": True}
        if args.atoms:
            overrides["dynamic"]["atoms"] = _atom_list(args.atoms)
    return load_config(config_path, overrides=overrides)


def _atom_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise HpcaetError(
            f"--atoms must be comma-separated site indices, e.g. 12,40; got {text!r}."
        ) from None


def _run(config, args, stages):
    from hpcaet.parallel import dask_client
    from hpcaet.pipeline import check_stages, run_stages

    check_stages(args.out, stages, config)  # before a cluster starts or a file is written
    start = time.perf_counter()
    context = nullcontext(None) if args.no_cluster else dask_client(config.parallel)
    with context as client:
        outputs = run_stages(config, args.out, stages=stages, client=client, force=args.force)
    log.info("finished in %.1f s", time.perf_counter() - start)
    return outputs


def _cmd_report(args) -> int:
    from hpcaet.report import write_report

    if not Path(args.run).is_dir():
        raise HpcaetError(f"{args.run} is not a run directory; give the folder of a run.")
    print(write_report(args.run).resolve())
    return 0


def _cmd_simulate(args) -> int:
    config = _load(args.config, args)
    outputs = _run(config, args, ("simulate",))
    _print_outputs(args.out, outputs)
    return 0


def _cmd_stage(args) -> int:
    config_path = args.config or Path(args.out) / "config.yaml"
    if args.config is None and not Path(config_path).exists():
        raise HpcaetError(
            f"{config_path} not found; make the run directory first with "
            f"'hpcaet simulate --config CONFIG --run {args.out}' or pass --config."
        )
    config = _load(config_path, args)
    outputs = _run(config, args, (args.stage,))
    _print_outputs(args.out, outputs)
    return 0


def _cmd_run(args) -> int:
    from hpcaet.pipeline import STAGES, imported_series

    if args.stages is not None:
        stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    elif imported_series(args.out):
        # a measured series: nothing to simulate, and the EELS stage is a synthetic scan
        stages = tuple(s for s in STAGES if s not in ("simulate", "eels"))
    else:
        stages = tuple(STAGES)
    config_path = args.config
    if config_path is None:
        config_path = Path(args.out) / "config.yaml"
        if not config_path.exists():
            raise HpcaetError(
                f"{config_path} not found; give --config (a YAML file, or demo or paper)."
            )
    config = _load(config_path, args)
    outputs = _run(config, args, stages)
    _print_outputs(args.out, outputs)
    return 0


def _cmd_demo(args) -> int:
    from hpcaet.config import packaged_config
    from hpcaet.phonons.command import demo_phonons
    from hpcaet.pipeline import STAGES

    config = _load(packaged_config("demo"), args)
    outputs = _run(config, args, tuple(STAGES))
    outputs.update(demo_phonons(config, args.out))
    _print_outputs(args.out, outputs)
    return 0


def _cmd_info(args) -> int:
    from hpcaet.io import read_dataset

    ds = read_dataset(args.file)
    print(f"{args.file}: {ds.attrs.get('hpcaet_kind')}")
    bare = ds.copy()
    bare.attrs = {}  # printed below in full (xarray cuts long ones)
    print(bare)
    print("Attributes (all, in full):")
    for key, value in ds.attrs.items():
        print(f"  {key}: {value}")
    for name, var in ds.variables.items():
        if var.attrs:
            text = "; ".join(f"{k}: {v}" for k, v in var.attrs.items())
            print(f"  {name} -> {text}")
    return 0


def _print_outputs(out: str, outputs: dict[str, Path]) -> None:
    print(f"\nRun directory: {Path(out).resolve()}")
    for name, path in outputs.items():
        print(f"  {name:<18} {path}")
    figures = sorted(Path(out, "figures").glob("*.png"))
    for fig in figures:
        print(f"  {'figure':<18} {fig}")
    report = Path(out, "report.html")
    if report.exists():
        print(f"Report (open in a browser): {report.resolve()}")
    print(f"Inspect a file with: hpcaet info {next(iter(outputs.values()), out)}")


class _ClearBar(logging.Filter):
    """Removes the progress bar from the terminal before a log line is written."""

    def __init__(self, bar) -> None:
        super().__init__()
        self.bar = bar

    def filter(self, record: logging.LogRecord) -> bool:
        self.bar.clear()
        return True


def _setup_logging(verbosity: int, *, quiet: bool = False):
    """Log lines to stderr; on a terminal (and not quiet) a progress bar with the time
    left (:class:`hpcaet.parallel.progress.TerminalBar`), which it returns (else None)."""
    level = logging.INFO if verbosity == 0 else logging.DEBUG
    if quiet:
        level = logging.WARNING
    tags = []
    if os.environ.get("SLURM_JOB_ID"):
        tags.append(f"job {os.environ['SLURM_JOB_ID']}")
    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if os.environ.get(var):
            tags.append(f"rank {os.environ[var]}")
            break
    tag = f"[{' '.join(tags)}] " if tags else ""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format=f"%(asctime)s {tag}%(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("hpcaet").setLevel(level)
    if verbosity < 2:
        # Dask configures its loggers when imported, in this process and in workers.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if quiet or not sys.stderr.isatty():
        return None  # a log file or a pipe: progress lines at most every 30 s, no bar
    from hpcaet.parallel.progress import TerminalBar, add_display

    bar = TerminalBar(sys.stderr)
    add_display(bar)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ClearBar(bar))
    return bar


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
