"""Cost of a dynamical (multislice) tilt series: per tile, per series, and at paper scale.

Prints, for the demo config's phantom and angles:

1. one interior tile (``tile × tile`` probe positions at the demo's 0.32 Å) at its most
   tilted angle, for each engine setting: time, time per probe position, peak memory of
   the task (a fresh process), and its error against a converged reference tile (plain
   multislice, 0.25 Å slices, 8 Å padding): the mean (bias) and the rest (rms of the
   difference less its mean, over the tile's contrast);
2. the tiles of the series: how many hold atoms (vacuum tiles cost nothing), and the
   time of ``--tilts`` tilts on a LocalCluster of 1 and 2 workers with ``--engine``
   (speed-up and efficiency), extrapolated to the whole demo series;
3. the extrapolation to the paper config's field (tiles with atoms × time per tile).

    python benchmarks/bench_multislice.py --tilts 2 --engine prism --interpolation 2

The load average is printed: on a shared machine every number moves with what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

_TILE = """
import json, resource, sys, time
import numpy as np
from hpcaet.forward.adf import ADFOptics, ADFSettings, adf_tile
d = json.loads(sys.argv[1])
pos = np.load(d["positions"]); sym = np.load(d["symbols"])
settings = ADFSettings(**d["settings"])
optics = ADFOptics(**d["optics"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if d["warm"]:  # a first call makes the FFT plans and compiles abTEM's kernels
    adf_tile(pos, sym, origin=d["origin"], shape=d["shape"], step=d["step"], optics=optics,
             settings=settings)
t, c = time.perf_counter(), time.process_time()
img = adf_tile(pos, sym, origin=d["origin"], shape=d["shape"], step=d["step"],
               optics=optics, settings=settings)
dt, cpu = time.perf_counter() - t, time.process_time() - c
np.save(d["out"], img)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "cpu": cpu, "peak_mb": peak / 1024, "import_mb": base / 1024}))
"""


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _setup(name: str):
    from hpcaet.config import load_config, packaged_config
    from hpcaet.materials import VACANCY
    from hpcaet.phantom.stage import make_phantom, true_angles

    config = load_config(packaged_config(name))
    model = make_phantom(config)
    species = model["species"].values.astype(str)
    keep = species != VACANCY
    euler, _ = true_angles(config)
    return config, model["position"].values[keep], species[keep], euler


def _tile_run(
    work: Path, positions, symbols, euler, settings: dict, tile: int, optics, *, warm: bool = True
) -> dict:
    from hpcaet.geometry import euler_to_matrix

    rotated = positions @ euler_to_matrix(euler).T
    np.save(work / "pos.npy", rotated)
    np.save(work / "sym.npy", symbols)
    out = work / f"tile-{len(list(work.glob('tile-*.npy')))}.npy"
    if not warm:  # the reference: computed once, kept in the work folder
        out = work / f"reference-{tile}.npy"
        if out.exists():
            return {"seconds": np.nan, "cpu": np.nan, "peak_mb": np.nan, "image": np.load(out)}
    step = 0.32
    data = {
        "positions": str(work / "pos.npy"),
        "symbols": str(work / "sym.npy"),
        "settings": {**settings, "tile": tile},
        "optics": {
            "voltage": optics.voltage,
            "convergence_angle": optics.convergence_angle,
            "detector": list(optics.detector),
        },
        "origin": [-tile * step / 2, -tile * step / 2],
        "shape": [tile, tile],
        "step": step,
        "out": str(out),
        "warm": warm,
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _TILE, json.dumps(data)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["image"] = np.load(out)
    return result


def _tiles_with_atoms(config, positions, euler) -> tuple[int, int]:
    from hpcaet.phantom.dynamical import plan_tiles
    from hpcaet.phantom.simulate import draw_distortions, tilt_canvas

    im = config.imaging
    distortions = draw_distortions(
        euler,
        drift_max=im.drift_max,
        offset_max=im.offset_max,
        pixel_size=im.pixel_size,
        vibration_amplitude=im.vibration_amplitude,
        vibration_width=im.vibration_width,
        rng=0,
    )
    canvases = [
        tilt_canvas(d, shape=im.shape, pixel_size=im.pixel_size, frames=im.frames)
        for d in distortions
    ]
    from hpcaet.geometry import euler_to_matrix

    pad = im.multislice.padding
    busy = 0
    jobs = plan_tiles(canvases, im.multislice.tile)
    for job in jobs:
        xy = (positions @ euler_to_matrix(euler[job.tilt]).T)[:, :2]
        lo = np.asarray(job.origin) - pad
        hi = lo + im.multislice.tile * im.pixel_size + 2 * pad
        busy += bool(np.any(np.all((xy >= lo) & (xy < hi), axis=1)))
    return len(jobs), busy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tilts", type=int, default=2, help="tilts of the demo series to time")
    p.add_argument("--engine", default="prism", choices=("multislice", "prism"))
    p.add_argument("--interpolation", type=int, default=2)
    p.add_argument("--tile", type=int, default=16)
    p.add_argument("--skip-series", action="store_true", help="tiles only")
    p.add_argument("--work", default="/tmp/bench_multislice")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(_load())
    config, positions, symbols, euler = _setup("demo")
    optics = config.imaging.optics()
    steepest = int(np.argmax(np.abs(euler[:, 1])))
    base = {"sampling": 0.07, "padding": 4.0, "projection": "finite"}
    settings = {
        "reference (multislice, 0.25 Å slices, 8 Å padding)": {
            **base,
            "engine": "multislice",
            "slice_thickness": 0.25,
            "padding": 8.0,
        },
        "multislice, 0.5 Å slices (default)": {**base, "engine": "multislice"},
        "multislice, 0.5 Å slices, 8 Å padding": {
            **base,
            "engine": "multislice",
            "padding": 8.0,
        },
        "multislice, 2 Å slices": {**base, "engine": "multislice", "slice_thickness": 2.0},
        "PRISM interpolation 1": {**base, "engine": "prism", "prism_interpolation": 1},
        "PRISM interpolation 2": {**base, "engine": "prism", "prism_interpolation": 2},
    }
    print(
        f"\n== one {args.tile} x {args.tile} tile of the demo at tilt {steepest} "
        f"({euler[steepest].round(1).tolist()} deg), one core =="
    )
    print(
        f"{'setting':<52} {'wall [s]':>9} {'CPU [s]':>8} {'CPU ms/pos':>10} {'peak MB':>8} "
        f"{'bias':>7} {'rest':>7}"
    )
    reference = None
    per_tile = {}
    for name, s in settings.items():
        warm = not name.startswith("reference")  # its time is not the point: run it once
        r = _tile_run(work, positions, symbols, euler[steepest], s, args.tile, optics, warm=warm)
        if reference is None:
            reference = r["image"]
        d = r["image"] - reference
        bias = d.mean() / reference.mean()
        rest = np.sqrt(np.mean((d - d.mean()) ** 2)) / reference.std()
        per_tile[name] = r["cpu"]
        print(
            f"{name:<52} {r['seconds']:>9.2f} {r['cpu']:>8.2f} "
            f"{1e3 * r['cpu'] / args.tile**2:>10.1f} {r['peak_mb']:>8.0f} "
            f"{100 * bias:>6.1f}% {100 * rest:>6.1f}%"
        )
    total, busy = _tiles_with_atoms(config, positions, euler)
    print(f"\ndemo series: {total} tiles of {args.tile}^2 positions, {busy} with atoms")
    if not args.skip_series:
        _series(config, args, busy, total)
    paper, ppos, _, peuler = _setup("paper")
    ptotal, pbusy = _tiles_with_atoms(paper, ppos, peuler)
    print(f"\n== paper config: {ptotal} tiles, {pbusy} with atoms (one core per tile) ==")
    for name, seconds in per_tile.items():
        if name.startswith("reference"):
            continue
        hours = pbusy * seconds / 3600
        print(f"{name:<52} {hours:>8.1f} core-hours ({hours / 64:.2f} h on 64 cores)")


def _series(config, args, busy: int, total: int) -> None:
    from distributed import Client, LocalCluster

    from hpcaet.config import load_config, packaged_config
    from hpcaet.phantom.stage import make_phantom, simulate_tilt_series

    overrides = {
        "imaging": {
            "model": "multislice",
            "angles": [list(map(float, e)) for e in _setup("demo")[3][: args.tilts]],
            "multislice": {
                "engine": args.engine,
                "prism_interpolation": args.interpolation,
                "tile": args.tile,
            },
        }
    }
    cfg = load_config(packaged_config("demo"), overrides=overrides)
    model = make_phantom(cfg)
    times = {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            start = time.perf_counter()
            simulate_tilt_series(model, cfg, client=client)
            times[workers] = time.perf_counter() - start
    print(
        f"\n== {args.tilts} tilts of the demo by {args.engine}"
        f"{f' (interpolation {args.interpolation})' if args.engine == 'prism' else ''} =="
    )
    print(f"{'workers':>8} {'time [s]':>9} {'speed-up':>9} {'efficiency':>11}")
    for w, t in times.items():
        print(f"{w:>8} {t:>9.1f} {times[1] / t:>9.2f} {100 * times[1] / (w * t):>10.1f}%")
    scale = len(_setup("demo")[3]) / args.tilts
    print(
        f"whole demo series (12 tilts), extrapolated: {times[1] * scale / 60:.1f} min on 1 "
        f"worker, {times[2] * scale / 60:.1f} min on 2"
    )
    print(_load())


if __name__ == "__main__":
    main()
