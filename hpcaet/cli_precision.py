"""The ``hpcaet precision`` command: the paper's multislice precision estimate of a run.

See :mod:`hpcaet.precision` for the work and ``docs/multislice.md`` for the settings.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path

import yaml

from hpcaet.errors import HpcaetError

__all__ = ["precision_parser", "cmd_precision"]

log = logging.getLogger("hpcaet")


def precision_parser(sub) -> None:
    """Add ``hpcaet precision`` to the command line's subparsers."""
    p = sub.add_parser(
        "precision",
        help="precision of a run's atom model: multislice images of it, the chain again",
        description="Draw the run's final atom model (atoms.nc) by multislice at the run's "
        "calibrated angles, with its pixel size, frames, dose and the detector noise "
        "fitted from its frames; run preprocess, reconstruct and atoms on it in "
        "RUN/precision/, and print and write (RUN/precision.json) the per-species RMSD "
        "and the species and vacancy accuracy of the new model against the run's.",
    )
    p.add_argument("--run", required=True, help="run directory with atoms.nc")
    p.add_argument(
        "--set",
        default=None,
        metavar="YAML",
        help="settings for the precision run, as a YAML file of config sections (e.g. "
        "imaging: {multislice: {engine: prism, prism_interpolation: 2}})",
    )
    p.add_argument("--engine", choices=("multislice", "prism"), default=None)
    p.add_argument("--interpolation", type=int, default=None, help="PRISM interpolation")
    p.add_argument("--tile", type=int, default=None, help="probe positions per tile side")
    p.add_argument("--workers", type=int, default=None, help="Dask workers")
    p.add_argument("--no-cluster", action="store_true", help="run in this process")
    p.add_argument("--force", action="store_true", help="recompute the precision run")
    p.set_defaults(func=cmd_precision)


def _overrides(args) -> dict:
    data: dict = {}
    if args.set is not None:
        path = Path(args.set)
        if not path.is_file():
            raise HpcaetError(f"--set {args.set}: no such file; give a YAML file of settings.")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise HpcaetError(f"--set {args.set} must hold a mapping of config sections.")
    multislice = dict(data.get("imaging", {}).get("multislice", {}))
    for option, key in (
        ("engine", "engine"),
        ("interpolation", "prism_interpolation"),
        ("tile", "tile"),
    ):
        if getattr(args, option) is not None:
            multislice[key] = getattr(args, option)
    if multislice:
        data["imaging"] = {**data.get("imaging", {}), "multislice": multislice}
    if args.workers is not None:
        data["parallel"] = {**data.get("parallel", {}), "workers": args.workers}
    return data


def cmd_precision(args) -> int:
    from hpcaet.atoms.score import format_scores
    from hpcaet.config import load_config
    from hpcaet.parallel import dask_client
    from hpcaet.precision import run_precision

    run = Path(args.run)
    if not (run / "config.yaml").exists():
        raise HpcaetError(f"{run} is not a run directory (no config.yaml); give --run RUN.")
    overrides = _overrides(args)
    parallel = load_config(run / "config.yaml", overrides=overrides).parallel
    start = time.perf_counter()
    context = nullcontext(None) if args.no_cluster else dask_client(parallel)
    with context as client:
        table = run_precision(run, overrides=overrides, client=client, force=args.force)
    elapsed = time.perf_counter() - start
    engine = table["engine"] + (
        f" (interpolation {table['prism_interpolation']})" if table["engine"] == "prism" else ""
    )
    print(f"\nPrecision of {run}/atoms.nc from {engine} images of it ({elapsed / 60:.1f} min):")
    print(format_scores(table["scores"]))
    print(f"\nWritten: {(run / 'precision.json').resolve()}")
    print(f"The precision run (its report, figures and files): {table['precision_run']}")
    return 0
