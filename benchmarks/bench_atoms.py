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
from pathlib import Path

import numpy as np

from hpcaet.atoms import format_scores
from hpcaet.atoms.build import build_model
from hpcaet.atoms.stage import field_of_view, score_model
from hpcaet.atoms.synthetic import ideal_inputs, probe_b_factor
from hpcaet.config import load_config, packaged_config
from hpcaet.io import read_dataset
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default="paper", help="packaged config name (demo, paper) or a YAML path"
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log the steps")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    path = args.config if Path(args.config).exists() else packaged_config(args.config)
    config = load_config(path)
    start = time.perf_counter()
    volume, series, truth, source = _inputs(args, config)
    t_inputs = time.perf_counter() - start

    client = None
    if args.workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0")
        client = Client(cluster)
    try:
        start = time.perf_counter()
        model, history = build_model(volume, series, config, client=client)
        total = time.perf_counter() - start
    finally:
        if client is not None:
            client.close()
            cluster.close()
    scores = score_model(
        model, truth, max_distance=config.atoms.match_distance, field=field_of_view(volume)
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
