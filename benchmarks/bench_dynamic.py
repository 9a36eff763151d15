"""Dynamic refinement of one outlier S atom: cost against plain abTEM, and the R1 minimum.

Run: ``python benchmarks/bench_dynamic.py [--tilts 12] [--rows 2] [--skip-cost]``.

Times are CPU seconds of this process on one thread (``OMP_NUM_THREADS=1``), so a busy
shared machine does not inflate them. Two parts, both printed as tables:

1. **Cost at the paper's settings** (60 kV, 38 mrad, 50-210 mrad, 0.07 Å sampling,
   0.5 Å slices, 4 Å tile padding, 60 × 60 crops of 0.32 Å pixels, a 3 Å patch in a
   cell with 2 Å padding (its change checked against 4 Å), the 12
   calibrated tilts of Table S2, the 5 × 5 × 9 grid) for an S atom near the centre of
   a 36 Å flake: one grid point (all ``--tilts`` images, measured), the per-atom
   set-up (one baseline tile and one patch cell measured, times their counts), and
   the plain reference: abTEM images of the same 60 × 60 crops in one cell each, all
   atoms, no reuse, measured on ``--rows`` rows of probe positions and scaled to the
   crop (the cost is linear in the positions at a fixed cell). A full plain scan
   (2,700 crop images) would take days here, so the ratio is from these timings.
2. **Same R1 minimum** at reduced numerics (50-100 mrad, 1 Å slices, 2 tilts, 16 × 16
   crops, a 1.5 Å patch, a 5 × 1 × 9 grid; the test's phantom): the scan with reuse
   against plain abTEM crops at every grid point; both R1 minima, both times.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hpcaet.atoms.dynamic import assemble_scan, plan_atom, refine_outliers, scan_context
from hpcaet.atoms.dynamic_grid import ScanGrid
from hpcaet.atoms.dynamic_patch import (
    atom_potential,
    calculated_crops,
    patch_setup,
    patch_signal,
    scan_point,
)
from hpcaet.config import load_config
from hpcaet.forward.adf import ADFOptics, ADFSettings, adf_tile
from hpcaet.geometry import euler_to_matrix
from hpcaet.phantom.stage import make_phantom
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

PAPER_GRID = ScanGrid((0.4, 0.4, 1.2), (0.2, 0.2, 0.3))
PAPER_OPTICS = ADFOptics(voltage=60.0, convergence_angle=38.0, detector=(50.0, 210.0))
PAPER_SETTINGS = ADFSettings(sampling=0.07, slice_thickness=0.5, padding=4.0, tile=16)


def _timed(func, *args, **kwargs):
    """Result and CPU time of this process [s] (one thread: robust on a shared machine)."""
    t0 = time.process_time()
    out = func(*args, **kwargs)
    return out, time.process_time() - t0


def _flake(field: float):
    config = load_config(
        overrides={"seed": 3, "phantom": {"field": [field, field], "vacancies": 0}}
    )
    model = make_phantom(config)
    species = model["species"].values.astype(str)
    keep = species != "vac"
    position, species = model["position"].values[keep], species[keep]
    s_atoms = np.flatnonzero(species == "S")
    atom = int(s_atoms[np.argmin(np.hypot(*(position[s_atoms, :2] - 0.5).T))])
    return position, species, atom


def _plain_crop(position, species, euler, x0, y0, w, pixel, optics, settings, rows=None):
    """abTEM image of a w × w crop (or its first ``rows`` rows) in one cell, all atoms."""
    rotated = position @ euler_to_matrix(euler).T
    single = replace(settings, tile=w)
    shape = (w if rows is None else rows, w)
    return adf_tile(
        rotated,
        species,
        origin=(x0, y0),
        shape=shape,
        step=pixel,
        optics=optics,
        settings=single,
    )


def _change(plan, patch, j, offset, ctx, symbol, settings):
    """``S_g - S_0`` of image ``j``'s patch with the atom displaced by ``offset``."""
    job = plan["patch_jobs"][j]
    start = plan["starts"][j] + ctx["rotation"][j] @ offset
    atom = atom_potential(
        np.array([symbol]),
        start[None],
        extent=plan["extent"],
        depth=job["depth"],
        gpts=patch["potential"].shape[-1],
        settings=settings,
    )
    moved = patch_signal(
        patch["potential"] + atom,
        job["probes"],
        extent=plan["extent"],
        optics=PAPER_OPTICS,
        settings=settings,
    )
    return moved - patch["without"]


def part_cost(tilts: int, rows: int, patch_padding: float, engine: ADFSettings) -> dict:
    position, species, atom = _flake(36.0)
    euler = np.asarray(TABLE_S2_CALIBRATED, float)[:tilts]
    pixel, shape = 0.32, (len(euler), 100, 100)
    ctx = scan_context(
        shape,
        euler,
        pixel_size=pixel,
        optics=PAPER_OPTICS,
        settings=engine,
        grid=PAPER_GRID,
        crop=60,
        patch_radius=3.0,
        incoherent_sigma=0.35,
        shifts=None,
        kernels=None,
        patch_padding=patch_padding,
    )
    images = np.zeros(shape)  # the cost does not depend on the measured values
    plan = plan_atom(images, euler, position, species, atom, ctx)
    per_image = len(plan["tile_jobs"]) // len(euler)
    job = plan["tile_jobs"][0]
    _, t_tile = _timed(adf_tile, **job, step=pixel, optics=PAPER_OPTICS, settings=engine)
    patches, t_patch = [], []
    for pj in plan["patch_jobs"]:
        p, t = _timed(
            patch_setup, **pj, extent=plan["extent"], optics=PAPER_OPTICS, settings=engine
        )
        patches.append(p)
        t_patch.append(t)
    tiles = [np.zeros(j["shape"]) for j in plan["tile_jobs"]]
    shared = assemble_scan(plan, tiles, patches, ctx, species[atom])
    offset = np.array([0.2, -0.2, 0.3])
    _, t_point = _timed(scan_point, offset, **shared)
    # the patch cell's padding: the change of image 0 in a cell with the tiles' 4 Å
    ctx4 = {**ctx, "patch_padding": PAPER_SETTINGS.padding}
    plan4 = plan_atom(images, euler[:1], position, species, atom, ctx4)
    patch4 = patch_setup(
        **plan4["patch_jobs"][0],
        extent=plan4["extent"],
        optics=PAPER_OPTICS,
        settings=engine,
    )
    small = _change(plan, patches[0], 0, offset, ctx, species[atom], engine)
    large = _change(plan4, patch4, 0, offset, ctx4, species[atom], engine)
    # plain abTEM: the 60 x 60 crop of the first image in one cell, measured on `rows` rows
    x0 = float((np.round((position[atom] @ euler_to_matrix(euler[0]).T)[0] / pixel) - 30) * pixel)
    y0 = float((np.round((position[atom] @ euler_to_matrix(euler[0]).T)[1] / pixel) - 30) * pixel)
    _, t_rows = _timed(
        _plain_crop,
        position,
        species,
        euler[0],
        x0,
        y0,
        60,
        pixel,
        PAPER_OPTICS,
        PAPER_SETTINGS,
        rows=rows,
    )
    plain_crop = t_rows * 60 / rows
    n_points = len(PAPER_GRID.offsets())
    scale = 12 / len(euler)  # to the paper's 12 images
    point12 = t_point * scale
    setup12 = (t_tile * per_image + np.mean(t_patch)) * 12
    ours = setup12 + n_points * point12
    plain = n_points * 12 * plain_crop
    return {
        "tilts measured": len(euler),
        "patch probes per point (all measured tilts)": int(shared["patch_count"].sum()),
        "patch cell [Å]": plan["extent"],
        "one grid point, 12 images [s]": point12,
        "set-up per atom (baselines + patch cells), 12 images [s]": setup12,
        "225-point scan per atom [s]": ours,
        "plain abTEM: one 60x60 crop [s]": plain_crop,
        "plain abTEM: one grid point, 12 crops [s]": 12 * plain_crop,
        "plain abTEM: 225-point scan [s]": plain,
        "ratio per grid point": 12 * plain_crop / point12,
        "ratio per atom (225 points, set-up included)": plain / ours,
        f"patch change, {patch_padding} vs 4 Å cell padding (rms rel. diff.)": float(
            np.linalg.norm(small - large) / np.linalg.norm(large)
        ),
    }


def part_agreement(engine: str, interpolation: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "atoms"))
    import test_dynamic as t  # the test's phantom, images and numerics

    position, species, atom = t._phantom()
    images, kernels = t._measured(position, species)
    model = position.copy()
    model[atom] += t.DISPLACEMENT
    grid = ScanGrid((0.4, 0.0, 1.2), (0.2, 0.2, 0.3))
    scan = replace(t.SETTINGS, engine=engine, prism_interpolation=interpolation)
    options = {**t.OPTIONS, "settings": scan}  # the plain crops keep t.SETTINGS
    ours, t_ours = _timed(
        refine_outliers,
        images,
        t.EULER,
        model,
        species,
        atoms=[atom],
        grid=grid,
        kernels=kernels,
        store_dir=None,
        **options,
    )
    ctx = scan_context(
        images.shape,
        t.EULER,
        grid=grid,
        shifts=None,
        kernels=kernels,
        **options,
    )
    plan = plan_atom(images, t.EULER, model, species, atom, ctx)
    w, margin, pixel = plan["w"], ctx["margin"], t.PIXEL
    r1 = []
    t0 = time.process_time()
    for offset in grid.offsets():
        trial = model.copy()
        trial[atom] += offset
        crops = []
        for j, e in enumerate(t.EULER):
            x0, y0 = plan["tile_jobs"][j * (len(plan["tile_jobs"]) // len(t.EULER))]["origin"]
            crops.append(_plain_crop(trial, species, e, x0, y0, w, pixel, t.OPTICS, t.SETTINGS))
        calc = calculated_crops(
            np.asarray(crops),
            [np.zeros(0)] * len(crops),
            [np.zeros(0, int)] * len(crops),
            sigma=ctx["sigma"],
            kernels=ctx["kernels"],
            margin=margin,
        )
        num = den = 0.0
        for meas, c in zip(plan["measured"], calc, strict=True):
            a = np.stack([c.ravel(), np.ones(c.size)], axis=1)
            coef, *_ = np.linalg.lstsq(a, meas.ravel(), rcond=None)
            num += np.abs(meas.ravel() - a @ coef).sum()
            den += np.abs(meas).sum()
        r1.append(num / den)
    t_plain = time.process_time() - t0
    offsets = grid.offsets()
    best_plain = int(np.argmin(r1))
    return {
        "grid": "x".join(map(str, grid.shape)),
        "true offset from the start [Å]": (-t.DISPLACEMENT).tolist(),
        "R1 minimum with reuse at [Å]": offsets[ours.best[0]].round(2).tolist(),
        "R1 minimum plain abTEM at [Å]": offsets[best_plain].round(2).tolist(),
        "same grid point": bool(best_plain == ours.best[0]),
        "scan with reuse [s]": t_ours,
        "plain abTEM scan [s]": t_plain,
        "ratio": t_plain / t_ours,
        "R1 at minimum (reuse, plain)": (float(ours.r1[0].min()), float(min(r1))),
    }


def _print(title: str, table: dict) -> None:
    print(f"\n{title}")
    for key, value in table.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"  {key:<58}{text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tilts", type=int, default=12, help="images timed at paper settings")
    parser.add_argument("--rows", type=int, default=2, help="rows of the plain crop timed")
    parser.add_argument("--patch-padding", type=float, default=2.0, help="patch cell padding [Å]")
    parser.add_argument("--engine", default="multislice", help="engine of the scan (not plain)")
    parser.add_argument("--interpolation", type=int, default=1, help="PRISM interpolation")
    parser.add_argument("--skip-cost", action="store_true", help="only the R1 agreement")
    parser.add_argument("--skip-agreement", action="store_true", help="only the cost")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.skip_agreement:
        _print(
            "Same R1 minimum (reduced numerics, the test's phantom):",
            part_agreement(args.engine, args.interpolation),
        )
    if not args.skip_cost:
        _print(
            "Cost of one atom at the paper's settings (CPU s, one thread; 12-image figures "
            "scaled from the images timed):",
            part_cost(
                args.tilts,
                args.rows,
                args.patch_padding,
                replace(PAPER_SETTINGS, engine=args.engine, prism_interpolation=args.interpolation),
            ),
        )


if __name__ == "__main__":
    main()
