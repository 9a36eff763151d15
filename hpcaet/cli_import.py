"""The ``hpcaet import`` command: a measured tilt series into a run directory.

See :mod:`hpcaet.io.importer` for the work and ``docs/real-data.md`` for a tutorial.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hpcaet.errors import HpcaetError

__all__ = ["import_parser", "cmd_import"]

log = logging.getLogger("hpcaet")


def import_parser(sub) -> None:
    """Add ``hpcaet import`` to the command line's subparsers."""
    imp = sub.add_parser(
        "import",
        help="make a run directory from a measured tilt series (frames + angle table)",
        description="Read the frames of a measured tilt series (DM3/DM4, Velox EMD, TIFF, "
        "MRC or netCDF; one file per tilt or one stack) and its nominal angles (a CSV or "
        "YAML table of stage alpha/beta or Euler triples), fit the detector noise, and "
        "write RUN/tilt_series.nc and RUN/config.yaml; then run 'hpcaet run --run RUN' "
        "(or the stages one by one). Microscope settings come "
        "from the files unless given here or in --config. See docs/real-data.md.",
    )
    imp.add_argument("files", nargs="*", metavar="FILE", help="frame files, in tilt order")
    imp.add_argument("--angles", required=True, help="angle table (.csv or .yaml)")
    imp.add_argument(
        "--run", required=True, dest="out", metavar="RUN", help="run directory to make"
    )
    imp.add_argument(
        "--convention",
        default=None,
        choices=("hpcaet", "genfire", "resire"),
        help="convention of Euler triples in the table (default: hpcaet's Z,Y,X)",
    )
    imp.add_argument(
        "--config",
        default=None,
        help="YAML config or a packaged one by name (demo, paper, demo_sheet) for the later "
        "stages; its imaging values count for the import",
    )
    imp.add_argument("--pixel-size", type=float, default=None, help="[Å] (overrides the files)")
    imp.add_argument("--voltage", type=float, default=None, help="[kV]")
    imp.add_argument("--convergence-angle", type=float, default=None, help="semi-angle [mrad]")
    imp.add_argument(
        "--detector-angles",
        type=float,
        nargs=2,
        default=None,
        metavar=("INNER", "OUTER"),
        help="ADF collection semi-angles [mrad]",
    )
    imp.add_argument("--dwell-time", type=float, default=None, help="per pixel [µs]")
    imp.add_argument(
        "--dose",
        type=float,
        default=None,
        help="total dose over the series [e/Å²] (default: estimated from the frames)",
    )
    imp.add_argument(
        "--gain",
        type=float,
        default=None,
        help="detector counts per electron (with --read-noise; default: fitted from the frames)",
    )
    imp.add_argument("--read-noise", type=float, default=None, help="per pixel per frame [counts]")
    imp.add_argument("--offset", type=float, default=0.0, help="detector dark level [counts]")
    imp.add_argument(
        "--truth",
        default=None,
        help="an AtomModel .nc to score the atoms stage against (kept as RUN/truth_atoms.nc)",
    )
    imp.add_argument("--force", action="store_true", help="replace an existing tilt_series.nc")
    imp.set_defaults(func=cmd_import)


def cmd_import(args) -> int:
    """``hpcaet import``: read the files, fit the noise, write the run directory."""
    from hpcaet.cli import _load, _print_outputs
    from hpcaet.io import read_dataset, write_dataset
    from hpcaet.io.importer import import_tilt_series, read_angle_table
    from hpcaet.pipeline import RunDirectory

    run = RunDirectory(Path(args.out))
    target = run.file("tilt_series.nc")
    if target.exists() and not args.force:
        raise HpcaetError(
            f"{target} exists; pass --force to replace it, or import into another --run."
        )
    config = _load(args.config, args)
    written = _config_imaging(args.config)
    table = read_angle_table(args.angles, convention=args.convention)
    files = [Path(f) for f in args.files] or list(table.files or [])
    if not files:
        raise HpcaetError(
            f"no frame files: give them after 'import', or name them in a 'file' column of "
            f"{args.angles}."
        )
    if args.files and table.files:
        raise HpcaetError(
            f"{args.angles} names the frame files (column 'file') and files were given on the "
            "command line too; use one of them."
        )
    inner, outer = args.detector_angles or (None, None)
    given = {
        "voltage": args.voltage,
        "convergence_angle": args.convergence_angle,
        "detector_inner_angle": inner,
        "detector_outer_angle": outer,
        "dwell_time": args.dwell_time,
    }
    settings = {k: v if v is not None else written.get(k) for k, v in given.items()}
    truth = None
    if args.truth is not None:
        truth = read_dataset(args.truth, kind="AtomModel")
    series, report = import_tilt_series(
        files,
        table,
        pixel_size=args.pixel_size if args.pixel_size is not None else written.get("pixel_size"),
        settings={k: v for k, v in settings.items() if v is not None},
        dose=args.dose if args.dose is not None else written.get("dose"),
        gain=args.gain,
        offset=args.offset,
        read_noise=args.read_noise,
        areal_cross_section=_areal_cross_section(config),
    )
    run.prepare(config)
    series.attrs["stage"] = "import"
    outputs = {"tilt_series.nc": write_dataset(series, target)}
    if truth is not None:
        outputs["truth_atoms.nc"] = write_dataset(truth, run.file("truth_atoms.nc"))
    for name, source in sorted(report.settings.items()):
        log.info("import: %s = %s (%s)", name, series.attrs[name], source)
    if report.dose_estimated:
        log.warning(
            "import: no dose given; estimated %.4g e/Å² from the frames and the config's "
            "cross-sections (docs/real-data.md says how good that is). Give --dose if known.",
            series.attrs["dose"],
        )
    _print_outputs(args.out, outputs)
    print(f"Next: hpcaet run --run {args.out}")
    return 0


def _config_imaging(path) -> dict:
    """The imaging values a user's config file writes out (not the defaults)."""
    if path is None:
        return {}
    import yaml

    from hpcaet.cli import _config_path
    from hpcaet.config import YamlLoader

    data = yaml.load(Path(_config_path(path)).read_text(), Loader=YamlLoader) or {}
    imaging = data.get("imaging") or {}
    keys = (
        "pixel_size",
        "voltage",
        "convergence_angle",
        "detector_inner_angle",
        "detector_outer_angle",
        "dose",
    )
    return {k: float(imaging[k]) for k in keys if k in imaging}


def _areal_cross_section(config) -> float:
    """Mean ADF cross-section per Å² of the configured materials (their mean, if two)."""
    cs = config.species.cross_section
    cell = 3.0**0.5 / 2.0  # area of a unit cell over a²
    per_area = [
        (cs[m.metal] + 2 * cs[m.chalcogen]) / (cell * m.lattice_constant**2)
        for m in config.materials.regions
    ]
    return float(sum(per_area) / len(per_area))
