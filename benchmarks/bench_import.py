"""The chain on a measured-format series against the native chain, side by side.

A config's phantom is simulated (``hpcaet simulate``); its frames are written as one
calibrated TIFF per tilt with an angle table (``hpcaet.io.export.export_frames``, as a
detector's counts: ``--gain`` counts per electron plus an ``--offset``), and nothing of
the truth travels. ``hpcaet import`` reads them back with the noise, gain and dose
estimated from the frames (unless ``--known-detector``), and preprocess -> reconstruct ->
atoms -> structure run on both the native and the imported series, ``--repeats`` times
each in fresh directories (the spread between repeats is the run-to-run spread). Each
model is then scored against the truth kept aside. Example::

    python benchmarks/bench_import.py --config demo --out /tmp/bench_import
    python benchmarks/bench_import.py --config paper --out /tmp/bench_import_paper
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from hpcaet.atoms.stage import field_of_view, score_model
from hpcaet.cli import main
from hpcaet.config import load_config, packaged_config
from hpcaet.io import read_dataset
from hpcaet.io.export import export_frames

CHAIN = "preprocess,reconstruct,atoms,structure"


def _score(run: Path, truth, config) -> dict:
    model = read_dataset(run / "atoms.nc", kind="AtomModel")
    volume = read_dataset(run / "volume.nc", kind="Volume", load=False)
    try:
        field = field_of_view(volume, margin=config.atoms.edge_distance)
    finally:
        volume.close()
    return score_model(model, truth, max_distance=config.atoms.match_distance, field=field)


def _chain(run: Path, config_path: Path) -> float:
    start = time.perf_counter()
    code = main(["run", "--config", str(config_path), "--out", str(run), "--stages", CHAIN])
    if code:
        raise SystemExit(f"the chain failed in {run} (exit {code})")
    return time.perf_counter() - start


def main_bench(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="demo", help="demo, paper or a YAML file")
    p.add_argument("--out", required=True, help="working folder (replaced)")
    p.add_argument("--repeats", type=int, default=1, help="chains per path")
    p.add_argument("--gain", type=float, default=2.5, help="counts per electron in the files")
    p.add_argument("--offset", type=float, default=10.0, help="dark level in the files")
    p.add_argument(
        "--known-detector",
        action="store_true",
        help="import with the true gain, read noise and dose instead of estimating them",
    )
    args = p.parse_args(argv)
    config_path = (
        packaged_config(args.config) if args.config in ("demo", "paper") else Path(args.config)
    )
    config = load_config(config_path)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    source = out / "simulated"
    if main(["simulate", "--config", str(config_path), "--out", str(source), "--no-cluster"]):
        raise SystemExit("simulation failed")
    series = read_dataset(source / "tilt_series.nc")
    truth = read_dataset(source / "truth_atoms.nc", kind="AtomModel")
    files, table = export_frames(series, out / "files", gain=args.gain, offset=args.offset)
    im = config.imaging
    base = [
        "import",
        "--angles",
        str(table),
        "--config",
        str(config_path),
        "--voltage",
        str(im.voltage),
        "--convergence-angle",
        str(im.convergence_angle),
        "--detector-angles",
        str(im.detector_inner_angle),
        str(im.detector_outer_angle),
        "--offset",
        str(args.offset),
    ]
    if args.known_detector:
        base += [
            "--gain",
            str(args.gain),
            "--read-noise",
            str(args.gain * series.attrs["read_noise"]),
            "--dose",
            str(series.attrs["dose"]),
        ]
    columns = {}
    for k in range(args.repeats):
        native = out / f"native{k}"
        native.mkdir(parents=True)
        for name in ("tilt_series.nc", "config.yaml"):
            shutil.copy(source / name, native / name)
        seconds = _chain(native, config_path)
        columns[f"native {k}"] = (_score(native, truth, config), seconds, None)
        imported = out / f"imported{k}"
        if main(base + ["--run", str(imported)]):
            raise SystemExit("import failed")
        seconds = _chain(imported, imported / "config.yaml")
        attrs = read_dataset(imported / "tilt_series.nc", load=False).attrs
        columns[f"imported {k}"] = (_score(imported, truth, config), seconds, attrs)
    _print(columns, series.attrs, args)


def _print(columns: dict, true_attrs, args) -> None:
    names = list(columns)
    width = max(12, *(len(n) + 2 for n in names))
    print("\n| figure | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    species = ("Mo", "W", "S", "Se")
    rows = []
    for s in species:
        rows.append(
            (f"{s} RMSD [pm]", [f"{c[0]['species'][s]['rmsd_pm']:.1f}" for c in columns.values()])
        )
        rows.append(
            (
                f"{s} detected / species right",
                [
                    f"{c[0]['species'][s]['detected']}/{c[0]['species'][s]['species_correct']}"
                    f" of {c[0]['species'][s]['n_true']}"
                    for c in columns.values()
                ],
            )
        )
    rows.append(
        (
            "vacancies found / false",
            [
                f"{c[0]['vacancies']['found']}/{c[0]['vacancies']['false']} of "
                f"{c[0]['vacancies']['true']}"
                for c in columns.values()
            ],
        )
    )
    rows.append(
        (
            "extra / missing atoms",
            [f"{c[0]['extra_atoms']}/{c[0]['missing_atoms']}" for c in columns.values()],
        )
    )
    rows.append(("chain wall time [s]", [f"{c[1]:.0f}" for c in columns.values()]))
    rows.append(
        (
            "dose [e/Å²] (true {:.3g})".format(true_attrs["dose"]),
            ["-" if c[2] is None else f"{c[2]['dose']:.3g}" for c in columns.values()],
        )
    )
    rows.append(
        (
            f"gain (true {args.gain})",
            ["-" if c[2] is None else f"{c[2]['detector_gain']:.4f}" for c in columns.values()],
        )
    )
    rows.append(
        (
            "read noise [e] (true {:.3g})".format(true_attrs["read_noise"]),
            ["-" if c[2] is None else f"{c[2]['read_noise']:.3f}" for c in columns.values()],
        )
    )
    for label, values in rows:
        print(f"| {label} | " + " | ".join(v.rjust(width - 2) for v in values) + " |")


if __name__ == "__main__":
    main_bench()
