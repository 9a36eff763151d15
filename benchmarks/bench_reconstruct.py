"""Speed of the sAET reconstruction: one window, a whole field, and a 128³ volume.

Run ``python benchmarks/bench_reconstruct.py`` (add ``--quick`` for fewer iterations).
It prints

1. for one 60³ window of the demo phantom (12 Table S2 tilts, oversampling 3, radius
   0.3): GENFIRE's setup, its time per iteration, the time of its transforms alone (the
   floor: pruned FFTs along x and y plus the sparse DFT along z, forward and inverse)
   and the ratio, also with the sheet-following support; for context a plain ``rfftn``
   + ``irfftn`` pair of the 180³ padded array; RESIRE's setup and time per iteration;
   and, if the reference GENFIRE-Python (pip ``genfire==1.1.11``, GPL; install it in a
   scratch environment, it is not a dependency) imports, its time per iteration on the
   same window in the same run;
2. for the demo field (16 windows): wall time on a LocalCluster of 1 and of 2 workers
   and the parallel efficiency ``T1 / (2 T2)`` (``--no-field`` skips it);
3. for a ``--volume-size`` cube (128 by default; ``--no-volume`` skips it) of random
   atoms, 60 tilts from -70° to +70° about y, full support (``support_z`` = the cube):
   our GENFIRE and RESIRE and, if it imports, the reference GENFIRE (its gridding and
   its iterations), each in its own child process. Per method: setup time, time per
   iteration, the child's peak resident memory (``VmHWM`` at its end: everything it
   allocated, numpy and scipy included, and the ~0.1-0.2 GB of the interpreter and
   imports, printed as "idle child"), and the Pearson correlation with the true volume
   after the same number of iterations. The atoms fill a cylinder about the tilt axis,
   so they project inside the images at every tilt.

   Run it where the reference imports, e.g.::

       python -m venv --system-site-packages /tmp/genfire-env
       /tmp/genfire-env/bin/pip install genfire==1.1.11
       /tmp/genfire-env/bin/python benchmarks/bench_reconstruct.py --no-window --no-field

The machine's load average is printed before and after: on a shared machine every
number here moves with what others run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types

import numpy as np
import scipy.fft as sfft

PIXEL = 0.32


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _window(config):
    """Projections of a 60³ window of the demo phantom and the Table S2 angles."""
    from hpcaet.forward import project_atoms, species_table
    from hpcaet.forward.kernels import gaussian_sigma_from_fwhm
    from hpcaet.geometry import project_points
    from hpcaet.phantom.stage import make_phantom
    from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

    model = make_phantom(config)
    species = model["species"].values.astype(str)
    cross = dict(
        zip(model["element"].values.astype(str), model["cross_section"].values, strict=True)
    )
    blur = 8 * np.pi**2 * gaussian_sigma_from_fwhm(config.imaging.probe_fwhm) ** 2
    centre = np.array([[3.0, -2.0, 0.0]])
    images = project_atoms(
        model["position"].values,
        species_table(species, cross),
        model["b_factor"].values + blur,
        TABLE_S2_CALIBRATED,
        shape=(60, 60),
        pixel_size=PIXEL,
        offsets=-project_points(centre, TABLE_S2_CALIBRATED)[:, 0],
    )
    return images.astype(np.float32), TABLE_S2_CALIBRATED


def _per_call(func, repeats: int) -> float:
    func()
    start = time.perf_counter()
    for _ in range(repeats):
        func()
    return (time.perf_counter() - start) / repeats


def bench_window(images, euler, iterations: int) -> dict:
    from hpcaet.reconstruct import SheetSupport, genfire, genfire_operator, resire

    out = {}
    start = time.perf_counter()
    data, op = genfire_operator(images, euler, support_z=33)
    out["genfire setup [s]"] = time.perf_counter() - start
    out["genfire grid points"] = op.size
    slab = np.zeros((33, 60, 60), np.float32)
    values = data.values

    def transforms():
        op.forward(slab)
        op.inverse(values)

    # Alternate the two measurements and keep the best of each: others share the CPU.
    floor, per_iteration, with_sheet = [], [], []
    sheet = SheetSupport(thickness=18.0, smoothing=6.0, start=0.5)
    for _ in range(3):
        floor.append(_per_call(transforms, iterations))
        run = genfire(images, euler, support_z=33, iterations=iterations)
        per_iteration.append(run.iteration_seconds / iterations)
        run = genfire(images, euler, support_z=33, iterations=iterations, sheet=sheet)
        with_sheet.append(run.iteration_seconds / iterations)
    out["transforms (floor) [ms/it]"] = 1e3 * min(floor)
    out["genfire [ms/it]"] = 1e3 * min(per_iteration)
    out["ratio to floor"] = out["genfire [ms/it]"] / out["transforms (floor) [ms/it]"]
    out["genfire, sheet support [ms/it]"] = 1e3 * min(with_sheet)
    out["ratio to floor, sheet support"] = (
        out["genfire, sheet support [ms/it]"] / out["transforms (floor) [ms/it]"]
    )
    tracemalloc.start()
    genfire(images, euler, support_z=33, iterations=2)
    out["genfire peak memory [MB]"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    padded = np.zeros((180, 180, 180), np.float32)
    out["plain rfftn+irfftn 180³ f32 [ms]"] = 1e3 * _per_call(
        lambda: sfft.irfftn(sfft.rfftn(padded), s=padded.shape), 3
    )

    n = max(iterations // 4, 5)
    run = resire(images, euler, support_z=33, iterations=n)
    out["resire setup [s]"] = run.setup_seconds
    out["resire [ms/it]"] = 1e3 * run.iteration_seconds / n
    tracemalloc.start()
    resire(images, euler, support_z=33, iterations=2)
    out["resire peak memory [MB]"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out


def _import_reference():
    """The reference ``genfire.reconstruct`` module, below its GUI (ImportError if absent)."""
    import matplotlib

    matplotlib.use("Agg")
    use = matplotlib.use
    matplotlib.use = lambda *a, **k: None  # its module forces the Qt5 backend
    sys.modules.setdefault("genfire.gui", types.ModuleType("genfire.gui"))
    try:
        import genfire.reconstruct as ref
    finally:
        matplotlib.use = use
    return ref


def _quiet(func, *args):
    """Call the reference with its per-iteration prints sent to /dev/null."""
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            return func(*args)
        finally:
            sys.stdout = stdout


def _reference_grid(ref, images, euler) -> np.ndarray:
    """The reference's gridding of (p, m, m) images onto its (3m, 3m, 3m / 2 + 1) grid.

    Its arrays are (X, Y, Z) with the tilt axis along Y: our images go in transposed
    (columns = x first) and our tilt about y, Euler (0, t, 0), is its (0, -t, 0)
    (checked with a lone off-centre atom). Other angles are passed unchanged: right for
    timing, not for comparing volumes.
    """
    m = images.shape[1]
    angles = np.asarray(euler, float).copy()
    if not np.any(angles[:, [0, 2]]):
        angles[:, 1] *= -1
    projections = np.pad(
        np.moveaxis(images.transpose(0, 2, 1), 0, -1).astype(float), ((m, m), (m, m), (0, 0))
    )
    measured = _quiet(ref.fillInFourierGrid, projections, angles, 0.3)
    return np.fft.ifftshift(measured)[:, :, : 3 * m // 2 + 1]


def _reference_iterate(ref, measured, m: int, support_z: int, iterations: int):
    """Its error reduction on a (3m)³ array with a support of m x m x support_z voxels.

    Returns the central (support_z, m, m) block as our [z, y, x] and the seconds taken.
    """
    n = 3 * m
    lo = n // 2 - support_z // 2
    support = np.zeros((n, n, n))
    support[m : 2 * m, m : 2 * m, lo : lo + support_z] = 1
    start = time.perf_counter()
    out = _quiet(
        ref.reconstruct,
        iterations,
        np.zeros((n, n, n)),
        np.fft.fftshift(support),
        measured,
        np.ones_like(measured, dtype=float),
        np.array([-999.0] * 4),
        [],
        [],
        ref.DisplayFigure(),
    )
    seconds = time.perf_counter() - start
    block = out["reconstruction"][m : 2 * m, m : 2 * m, lo : lo + support_z]  # (x, y, z)
    return np.ascontiguousarray(block.transpose(2, 1, 0), dtype=np.float32), seconds


def bench_reference(images, euler, iterations: int) -> dict | str:
    """The pip genfire 1.1.11 on the same window, called below its broken entry points."""
    try:
        ref = _import_reference()
    except ImportError as exc:
        return f"reference GENFIRE not importable ({exc}); pip install genfire==1.1.11"
    start = time.perf_counter()
    measured = _reference_grid(ref, images, euler)
    grid_time = time.perf_counter() - start
    tracemalloc.start()
    _, elapsed = _reference_iterate(ref, measured, images.shape[1], 33, iterations)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "reference gridding [s]": grid_time,
        "reference [ms/it]": 1e3 * elapsed / iterations,
        "reference peak memory [MB]": peak,
    }


def _field_job(workers: int, config, images, euler, plan, iterations: int) -> float:
    from hpcaet.config import load_config
    from hpcaet.parallel import dask_client
    from hpcaet.reconstruct import reconstruct_field
    from hpcaet.reconstruct.stage import algorithm_options

    cfg = load_config(overrides={"parallel": {"workers": workers, "memory_limit": "2GB"}})
    # The stage's options (demo config: sheet support, no confidence weighting).
    options = {**algorithm_options(config.reconstruct), "iterations": iterations}
    with dask_client(cfg.parallel) as client:
        client.run(lambda: None)
        start = time.perf_counter()
        reconstruct_field(images, euler, plan, options=options, client=client)
        return time.perf_counter() - start


def bench_field(config, iterations: int) -> dict:
    from scipy import ndimage

    from hpcaet.phantom.stage import make_phantom, simulate_tilt_series
    from hpcaet.reconstruct import plan_windows

    series = simulate_tilt_series(make_phantom(config), config)
    electrons = series.attrs["dose"] / series.sizes["tilt"] * PIXEL**2
    offsets = series["true_offset"].values / PIXEL
    images = (
        np.stack(
            [
                ndimage.shift(im, (-dy, -dx), order=3, mode="nearest")
                for im, (dx, dy) in zip(series["clean_images"].values, offsets, strict=True)
            ]
        )
        / electrons
    )
    euler = series["true_euler"].values
    plan = plan_windows(images.shape[1:], euler, pixel_size=PIXEL)
    t1 = _field_job(1, config, images, euler, plan, iterations)
    t2 = _field_job(2, config, images, euler, plan, iterations)
    return {
        "windows": len(plan.windows()),
        "1 worker [s]": t1,
        "2 workers [s]": t2,
        "efficiency": t1 / (2 * t2),
    }


def _volume_data(size: int, seed: int = 0):
    """Random atoms in a cylinder about y filling a size³ cube; 60 tilts about y.

    Returns the images (60, size, size), the Euler angles and the true volume (size³,
    [z, y, x], image units per voxel). ~3000 atoms for 128³ (one per 23 Å³), B = 15 Å²;
    the cylinder (radius and half-height 0.45 size) keeps every projection inside the
    images at every tilt.
    """
    from hpcaet.forward import project_atoms, render_volume

    rng = np.random.default_rng(seed)
    count = int(3000 * (size / 128) ** 3)
    reach = 0.45 * size * PIXEL
    atoms = np.zeros((0, 3))
    while len(atoms) < count:
        trial = rng.uniform(-reach, reach, (count, 3))
        atoms = np.vstack([atoms, trial[trial[:, 0] ** 2 + trial[:, 2] ** 2 < reach**2]])
    atoms = atoms[:count]
    tilt = np.linspace(-70.0, 70.0, 60)
    euler = np.column_stack([np.zeros(60), tilt, np.zeros(60)])
    images = project_atoms(
        atoms, 1.0, 15.0, euler, shape=(size, size), pixel_size=PIXEL, dtype=np.float32
    )
    truth = PIXEL * render_volume(
        atoms, 1.0, 15.0, shape=(size,) * 3, voxel_size=PIXEL, dtype=np.float32
    )
    return images, euler, truth


def _child(method: str, folder: str, iterations: int) -> None:
    """One method of the volume part, in its own process; prints one JSON line."""
    out = {}
    if method == "idle":
        import hpcaet.reconstruct  # noqa: F401  (the imports every child pays for)
    elif method == "reference-grid":
        data = np.load(os.path.join(folder, "input.npz"))
        ref = _import_reference()
        start = time.perf_counter()
        measured = _reference_grid(ref, data["images"], data["euler"])
        out["setup"] = time.perf_counter() - start
        np.save(os.path.join(folder, "grid.npy"), measured)
    elif method == "reference":
        measured = np.load(os.path.join(folder, "grid.npy"))
        size = (measured.shape[0]) // 3
        volume, seconds = _reference_iterate(_import_reference(), measured, size, size, iterations)
        out["iteration"] = seconds / iterations
    else:
        from hpcaet.reconstruct import genfire, resire

        data = np.load(os.path.join(folder, "input.npz"))
        size = data["images"].shape[1]
        solve = {"genfire": genfire, "resire": resire}[method]
        result = solve(
            data["images"],
            data["euler"],
            support_z=size,
            iterations=iterations,
            rfree_fraction=0.0,
            rng=0,
        )
        volume = result.volume
        out["setup"] = result.setup_seconds
        out["iteration"] = result.iteration_seconds / iterations
    if method in ("genfire", "resire", "reference"):
        np.save(os.path.join(folder, f"{method}.npy"), volume)
    out["peak_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _peak_rss_mb() -> float:
    """This process's peak resident memory [MB] since it started its program.

    ``VmHWM`` of ``/proc/self/status`` belongs to the address space that ``exec`` gives
    the child, whereas ``getrusage``'s ``ru_maxrss`` keeps the high-water mark across
    ``fork`` + ``exec`` and so would report at least the parent's size; off Linux that
    is the fallback.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(method: str, folder: str, iterations: int) -> dict | str:
    command = [sys.executable, os.path.abspath(__file__), "--child", method, folder]
    command += ["--volume-iterations", str(iterations)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_volume(size: int, iterations: int) -> None:
    """The volume part: one child per method, a table, correlations with the truth."""
    images, euler, truth = _volume_data(size)
    print(f"\n== {size}³ volume, full support, 60 tilts ±70° about y, {iterations} iterations ==")
    try:
        _import_reference()
        methods = ["genfire", "resire", "reference-grid", "reference"]
    except ImportError as exc:
        methods = ["genfire", "resire"]
        print(f"reference GENFIRE not importable ({exc}); pip install genfire==1.1.11")
    names = {
        "genfire": "hpcaet GENFIRE (1 FFT thread)",
        "resire": "hpcaet RESIRE",
        "reference-grid": "reference gridding",
        "reference": "reference iterations (pyFFTW)",
    }
    with tempfile.TemporaryDirectory(prefix="bench-volume-") as folder:
        np.savez(os.path.join(folder, "input.npz"), images=images, euler=euler)
        idle = _run_child("idle", folder, iterations)
        head = ("setup [s]", 10), ("s/iteration", 12), ("peak RSS [MB]", 14), ("corr", 6)
        print(f"{'method':<32} " + " ".join(f"{h:>{w}}" for h, w in head))
        for method in methods:
            row = _run_child(method, folder, iterations)
            if isinstance(row, str):
                print(f"{names[method]:<32} failed: {row}")
                continue
            path = os.path.join(folder, f"{method}.npy")
            corr = (
                f"{np.corrcoef(np.load(path).ravel(), truth.ravel())[0, 1]:6.3f}"
                if os.path.exists(path)
                else f"{'':>6}"
            )
            setup = f"{row['setup']:10.1f}" if "setup" in row else f"{'':>10}"
            per_it = f"{row['iteration']:12.2f}" if "iteration" in row else f"{'':>12}"
            print(f"{names[method]:<32} {setup} {per_it} {row['peak_mb']:14.0f} {corr}")
        if isinstance(idle, dict):
            print(f"{'idle child (imports only)':<32} {'':>10} {'':>12} {idle['peak_mb']:14.0f}")
    print(_load())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--no-window", action="store_true", help="skip the 60³ window part")
    parser.add_argument("--no-field", action="store_true", help="skip the field part")
    parser.add_argument("--no-volume", action="store_true", help="skip the volume part")
    parser.add_argument("--volume-size", type=int, default=128, help="edge of the cube [voxels]")
    parser.add_argument(
        "--volume-iterations", type=int, default=10, help="iterations of every method"
    )
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child, args.volume_iterations)
        return
    from hpcaet.config import load_config

    config = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "demo.yaml"))
    print(f"cores: {os.cpu_count()}; {_load()}; scipy.fft, 1 thread per window")
    iterations = 20 if args.quick else 100
    if not args.no_window:
        images, euler = _window(config)
        print(f"\n== one 60³ window, {len(images)} tilts, {iterations} iterations ==")
        ours = bench_window(images, euler, iterations)
        for key, value in ours.items():
            print(f"{key:<36} {value:10.2f}")
        ref = bench_reference(images, euler, max(iterations // 10, 3))
        if isinstance(ref, str):
            print(ref)
        else:
            for key, value in ref.items():
                print(f"{key:<36} {value:10.2f}")
            speedup = ref["reference [ms/it]"] / ours["genfire [ms/it]"]
            print(f"{'speed-up per iteration':<36} {speedup:10.1f}")
        print(_load())
    if not args.no_field:
        field_iterations = 20 if args.quick else 100
        print(f"\n== demo field, GENFIRE {field_iterations} iterations per window ==")
        for key, value in bench_field(config, field_iterations).items():
            print(f"{key:<36} {value:10.2f}")
        print(_load())
    if not args.no_volume:
        bench_volume(args.volume_size, args.volume_iterations)


if __name__ == "__main__":
    main()
