"""Accuracy and speed of the atoms step (trace, species, refine, flip) against a truth.

Two sources of inputs:

* ``--run DIR`` with ``volume.nc``, ``processed.nc`` and ``truth_atoms.nc`` (a run
  directory after ``hpcaet simulate``, ``preprocess`` and ``reconstruct``): the full
  chain from raw frames.
* otherwise ideal inputs made from the config's phantom: a band-limited volume
  (the atoms blurred by the probe, ``--blur-z`` more along z, ``--volume-noise`` white
  noise) and images from the linear model at the calibrated angles of the config, at
  the simulator's dose per image, with Poisson counts and the read noise of the
  summed frames. These measure this step alone, independent of the upstream stages.

It prints, per species, the RMSD [pm] (3D and per axis), the detection rate and the
species accuracy, the vacancies and substitutions found against the true ones, the
time of each step and the peak memory of the process. Example::

    python benchmarks/bench_atoms.py --config paper            # ideal inputs
    python benchmarks/bench_atoms.py --run runs/paper          # full chain
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hpcaet.atoms import format_scores, score_atoms
from hpcaet.atoms.build import build_model
from hpcaet.atoms.stage import field_of_view, score_model
from hpcaet.atoms.synthetic import ideal_images, ideal_inputs, probe_b_factor
from hpcaet.config import load_config, packaged_config
from hpcaet.io import read_dataset, write_dataset
from hpcaet.phantom.stage import make_phantom, true_angles

TARGETS_PM = {"Mo": 4.0, "W": 6.0, "S": 15.0, "Se": 15.0}  # Tian et al., precision


def _inputs(args, config):
    if args.run:
        run = Path(args.run)
        names = ("volume.nc", "processed.nc", "truth_atoms.nc")
        missing = [n for n in names if not (run / n).exists()]
        if missing:
            raise SystemExit(f"{run} lacks {missing}; run the stages that write them first.")
        return (
            read_dataset(run / "volume.nc", kind="Volume"),
            read_dataset(run / "processed.nc", kind="TiltSeries"),
            read_dataset(run / "truth_atoms.nc", kind="AtomModel"),
            "full chain",
        )
    truth = make_phantom(config)
    im = config.imaging
    euler, _ = true_angles(config)
    volume, series = ideal_inputs(
        truth,
        euler,
        shape=tuple(im.shape),
        pixel_size=im.pixel_size,
        dose=im.dose / len(euler),
        b_factor=config.species.b_factor,
        extra_b=probe_b_factor(im.probe_fwhm),
        read_noise=im.read_noise * np.sqrt(im.frames),
        blur=(args.blur_z, 0.1),
        noise=args.volume_noise,
        rng=args.seed,
    )
    return (
        volume,
        series,
        truth,
        (
            f"ideal inputs (volume blur z {args.blur_z} Å, noise "
            f"{args.volume_noise:.0%}; images at {im.dose / len(euler):.3g}"
            f" e/Å² per image, Poisson + read noise)"
        ),
    )


def _ideal_series(series, truth, config):
    """The run's series with ideal images of the truth at its calibrated angles."""
    im = config.imaging
    images = ideal_images(
        truth["position"].values,
        truth["species"].values.astype(str),
        series["euler"].values,
        cross_section=config.species.cross_section,
        b_factor=config.species.b_factor,
        shape=tuple(series["images"].shape[1:]),
        pixel_size=im.pixel_size,
        dose=im.dose / series.sizes["tilt"],
        extra_b=probe_b_factor(im.probe_fwhm),
        read_noise=im.read_noise * np.sqrt(im.frames),
        rng=0,
    )
    out = series.drop_vars(["linear_images"], errors="ignore")
    out["images"] = (("tilt", "y", "x"), images.astype(np.float32))
    return out


def _start(args, truth, volume, config):
    """The true sites in the frame of the volume, chalcogens all S (``--start truth``).

    The angle calibration puts the volume and the calibrated angles in the sheet's own
    frame, turned and shifted from the phantom's; the truth is moved into it by the
    rigid fit of the traced metals onto the true ones.
    """
    if args.start != "truth":
        return None
    from hpcaet.atoms.build import _trace

    sites = _trace(volume, config)
    scores = score_atoms(
        sites["position"],
        sites["species"],
        truth["position"].values,
        truth["species"].values,
        max_distance=config.atoms.match_distance,
    )
    rotation, shift = np.asarray(scores["rotation"]), np.asarray(scores["shift"])
    start = truth.copy()
    start["position"] = (("atom", "xyz"), (truth["position"].values - shift) @ rotation)
    species = truth["species"].values.astype("<U3").copy()
    species[truth["pair"].values >= 0] = "S"  # the flipping decides every chalcogen site
    start["species"] = ("atom", species)
    return start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        default=None,
        help="packaged config name (demo, paper) or a YAML path (default: the run "
        "directory's config.yaml with --run, else paper)",
    )
    parser.add_argument("--run", default=None, help="run directory with the real inputs")
    parser.add_argument("--blur-z", type=float, default=0.5, help="extra z blur [Å]")
    parser.add_argument(
        "--volume-noise", type=float, default=0.02, help="volume noise, fraction of its maximum"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="Dask workers for the refinement (0: in this process)",
    )
    parser.add_argument("--seed", type=int, default=5, help="seed of the ideal inputs' noise")
    parser.add_argument(
        "--images",
        choices=("run", "ideal"),
        default="run",
        help="with --run: the run's processed images, or ideal images of the truth at the "
        "run's calibrated angles (isolates the volume's part of the errors)",
    )
    parser.add_argument("--out", default=None, help="write the model to this netCDF file")
    parser.add_argument(
        "--vibration",
        choices=("estimated", "true"),
        default="estimated",
        help="with --run: blur the model by the preprocess stage's estimated vibration "
        "kernels, or by the simulator's true ones (isolates the estimate's part)",
    )
    parser.add_argument(
        "--start",
        choices=("trace", "truth"),
        default="trace",
        help="trace the volume, or refine and flip the true sites (all chalcogens S: "
        "isolates the images' part of the errors)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the steps")
    args = parser.parse_args()
    if not args.run and (args.images != "run" or args.vibration != "estimated"):
        parser.error("--images and --vibration choose among a run's inputs; give --run DIR")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.config is None and args.run and (Path(args.run) / "config.yaml").exists():
        path = Path(args.run) / "config.yaml"
    else:
        name = args.config or "paper"
        path = name if Path(name).exists() else packaged_config(name)
    config = load_config(path)
    if not args.run:  # ideal images are sharp linear-model images: fit them without blur
        config = replace(config, atoms=replace(config.atoms, image_source="processed"))
    start = time.perf_counter()
    volume, series, truth, source = _inputs(args, config)
    if args.run and args.images == "ideal":
        series = _ideal_series(series, truth, config)
        source += ", ideal images of the truth at the calibrated angles"
    if args.run and args.vibration == "true":
        for name in ("direction", "amplitude", "width"):
            series[f"vibration_{name}"] = series[f"true_vibration_{name}"]
        source += ", true vibration kernels"
    initial = _start(args, truth, volume, config)
    if args.start == "truth":
        source += ", started from the true sites (chalcogens all S)"
    t_inputs = time.perf_counter() - start

    client = None
    if args.workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0")
        client = Client(cluster)
    try:
        start = time.perf_counter()
        model, history = build_model(volume, series, config, client=client, initial=initial)
        total = time.perf_counter() - start
    finally:
        if client is not None:
            client.close()
            cluster.close()
    if args.out:
        write_dataset(model, args.out)
    scores = score_model(
        model,
        truth,
        max_distance=config.atoms.match_distance,
        field=field_of_view(volume, margin=config.atoms.edge_distance),
    )

    print(f"atoms benchmark: config {config.name}, {source}")
    print(
        f"volume {tuple(volume['density'].shape)} voxels, images "
        f"{tuple(series['images'].shape)}, {model.sizes['atom']} sites in the model, "
        f"{truth.sizes['atom']} true sites"
    )
    print()
    print(format_scores(scores))
    print()
    print(f"{'species':<8}{'RMSD [pm]':>10}{'target':>8}")
    for name, target in TARGETS_PM.items():
        row = scores["species"][name]
        if row["n_true"]:
            mark = "ok" if row["rmsd_pm"] <= target else "over"
            print(f"{name:<8}{row['rmsd_pm']:>10.1f}{target:>8.1f}  {mark}")
    print(f"all species, vacancies and substitutions right: {scores['all_correct']}")
    print(f"R1 {model.attrs['R1']:.4f}, R {model.attrs['R']:.4f}")
    print()
    mode = f"Dask, {args.workers} workers" if args.workers else "serial"
    print(f"times [s] ({mode}; making the inputs {t_inputs:.1f}):")
    for name, seconds in history["times"].items():
        print(f"  {name:<12}{seconds:8.1f}")
    print(f"  {'total':<12}{total:8.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
