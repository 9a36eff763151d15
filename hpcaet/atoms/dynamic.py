"""Dynamic refinement of outlier atoms by multislice R1 scans.

At 60 kV with a 50 mrad inner angle, dynamical scattering near W moves the apparent
position of neighbouring S atoms, so the linear model places some of them too close to
a neighbour or off their layer. Following the Methods of Tian et al. ("Dynamic
refinement of the S atoms near the W atoms"), each such outlier
(:func:`~hpcaet.atoms.dynamic_grid.select_outliers`) is moved over a grid of trial
positions (:class:`~hpcaet.atoms.dynamic_grid.ScanGrid`, the paper's 5 × 5 × 9), the
crops of all images around it are calculated by multislice at every point, and the
atom goes to the point of least R1 against the measured crops. The outliers are
refined one after the other, each with the earlier ones already moved.

Per atom, three maps of the task layer (:func:`hpcaet.parallel.tasks.map_tasks`), each
checkpointed task by task so a killed scan resumes without losing finished points and
spread over Dask when an executor is given:

1. the baseline of every image's crop without the atom, tile by tile
   (:func:`hpcaet.forward.adf.adf_tile`);
2. every image's patch cell: the other atoms' potential and the patch signal without
   the atom (:func:`~hpcaet.atoms.dynamic_patch.patch_setup`);
3. the grid points, one task each computing all images
   (:func:`~hpcaet.atoms.dynamic_patch.scan_point`); the baselines and potentials go
   to every worker once.

:mod:`hpcaet.atoms.dynamic_patch` explains the calculated image of a crop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpcaet.atoms.dynamic_grid import ScanGrid, projected_reach
from hpcaet.atoms.dynamic_patch import patch_setup, scan_point
from hpcaet.errors import InputError
from hpcaet.forward.adf import ADFOptics, ADFSettings, adf_tile, check_adf
from hpcaet.geometry import euler_to_matrix
from hpcaet.parallel.tasks import ARRAY, ARRAYS, Executor, TaskStore, content_key, map_tasks

__all__ = [
    "DynamicResult",
    "refine_outliers",
    "scan_context",
    "plan_atom",
    "assemble_scan",
    "crop_margin",
]

log = logging.getLogger(__name__)

#: Vacuum above and below the atoms of a patch cell [Å] (beyond the scanned range).
_Z_PAD = 1.0


@dataclass(frozen=True)
class DynamicResult:
    """Output of :func:`refine_outliers`.

    Attributes
    ----------
    position : ndarray of shape (n, 3)
        The model with every scanned atom at its least-R1 grid point [Å].
    atoms : ndarray of int, shape (k,)
        The scanned sites, in the order they were refined.
    offsets : ndarray of shape (p, 3)
        The grid's displacements [Å] (x slowest, z fastest).
    r1 : ndarray of shape (k, p)
        R1 of every grid point of every scanned atom.
    best : ndarray of int, shape (k,)
        Grid point of least R1 of each atom.
    at_edge : ndarray of bool, shape (k,)
        The least R1 is on the grid's boundary (the atom may lie farther out).
    computed, loaded : int
        Tasks computed here and loaded from checkpoints.
    """

    position: np.ndarray
    atoms: np.ndarray
    offsets: np.ndarray
    r1: np.ndarray
    best: np.ndarray
    at_edge: np.ndarray
    computed: int = 0
    loaded: int = 0


def crop_margin(sigma: float, kernels: np.ndarray) -> int:
    """Pixels simulated around a crop so that its blur sees no edge: 4 σ plus the kernel's
    half size [pixel]."""
    return int(np.ceil(4.0 * sigma)) + kernels.shape[-1] // 2


def _pack_kernels(kernels, m: int) -> np.ndarray:
    """Kernels (or None) as one (m, q, q) array, zero padded; a delta where None."""
    kernels = [None] * m if kernels is None else list(kernels)
    if len(kernels) != m:
        raise InputError(f"need one blur kernel per image ({m}); got {len(kernels)}.")
    q = max([1] + [np.shape(k)[0] for k in kernels if k is not None])
    out = np.zeros((m, q, q))
    for j, k in enumerate(kernels):
        if k is None:
            out[j, q // 2, q // 2] = 1.0
        else:
            k = np.asarray(k, float)
            a, b = (q - k.shape[0]) // 2, (q - k.shape[1]) // 2
            out[j, a : a + k.shape[0], b : b + k.shape[1]] = k
    return out


def scan_context(
    shape: tuple[int, int, int],
    euler: np.ndarray,
    *,
    pixel_size: float,
    optics: ADFOptics,
    settings: ADFSettings,
    grid: ScanGrid,
    crop: int,
    patch_radius: float,
    incoherent_sigma: float,
    shifts: np.ndarray | None,
    kernels,
    patch_padding: float | None = None,
) -> dict:
    """The settings of a scan, checked, as one dict (see :func:`refine_outliers`).

    Raises
    ------
    InputError
        Before any work: a crop larger than the images, a detector angle beyond the
        sampling's limit, mismatched inputs.
    """
    m, ny, nx = shape
    euler = np.atleast_2d(np.asarray(euler, float))
    if len(euler) != m:
        raise InputError(f"one Euler triple per image is needed; got {len(euler)} for {m}.")
    if int(crop) != crop or not 1 <= crop <= min(ny, nx):
        raise InputError(
            f"the dynamic refinement crop of {crop} pixels does not fit the {ny} × {nx} "
            f"images; set dynamic.crop to at most {min(ny, nx)}."
        )
    if not patch_radius > 0:
        raise InputError(f"patch_radius must be positive [Å]; got {patch_radius}.")
    patch_padding = settings.padding if patch_padding is None else float(patch_padding)
    if not patch_padding > 0:
        raise InputError(f"patch_padding must be positive [Å]; got {patch_padding}.")
    check_adf(optics, settings, step=pixel_size)
    shifts = np.zeros((m, 2)) if shifts is None else np.asarray(shifts, float).reshape(m, 2)
    packed = _pack_kernels(kernels, m)
    sigma = float(incoherent_sigma) / pixel_size
    return {
        "pixel": float(pixel_size),
        "crop": int(crop),
        "margin": crop_margin(sigma, packed),
        "sigma": sigma,
        "patch_radius": float(patch_radius),
        "patch_padding": patch_padding,
        "grid": grid,
        "rotation": np.array([euler_to_matrix(e) for e in euler]),
        "shifts": shifts,
        "kernels": packed,
        "reach": projected_reach(grid, euler),
        "optics": optics,
        "settings": settings,
    }


def refine_outliers(
    images: np.ndarray,
    euler: np.ndarray,
    position: np.ndarray,
    species: np.ndarray,
    *,
    atoms: np.ndarray,
    pixel_size: float,
    optics: ADFOptics,
    settings: ADFSettings,
    grid: ScanGrid,
    crop: int = 60,
    patch_radius: float = 3.0,
    patch_padding: float | None = None,
    incoherent_sigma: float = 0.0,
    shifts: np.ndarray | None = None,
    kernels=None,
    executor: Executor | None = None,
    store_dir: str | Path | None = None,
) -> DynamicResult:
    """Move each outlier atom to the grid point whose multislice crops fit best (least R1).

    Parameters
    ----------
    images : ndarray of shape (m, ny, nx)
        Measured images with the contrast of an ADF signal (not deconvolved): the
        processed ``linear_images`` [counts].
    euler : ndarray of shape (m, 3)
        Their Euler angles [deg].
    position : ndarray of shape (n, 3)
        The atom model [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols; vacancy sites are left out of the simulation.
    atoms : ndarray of int
        Sites to scan, refined in this order.
    pixel_size : float
        [Å].
    optics, settings
        The microscope and the multislice numerics (:mod:`hpcaet.forward.adf`).
    grid : ScanGrid
        Trial displacements.
    crop : int, default 60
        Side of the crop compared per image [pixel] (the paper's 60 × 60).
    patch_radius : float, default 3.0
        Probe positions within this distance of the atom's projection at any grid
        point are simulated at every point [Å].
    patch_padding : float, optional
        The patch cell is the patch plus this on every side [Å]; default
        ``settings.padding`` (the baseline tiles' padding). The cell's errors cancel
        to first order in the patch's change ``S_g - S_0``, so it can be smaller.
    incoherent_sigma : float, default 0
        Gaussian blur of the multislice images (probe size and other incoherent
        effects) [Å].
    shifts : ndarray of shape (m, 2), optional
        Per-image shift of the projections ``(x, y)`` [Å] (the atoms refinement's).
    kernels : sequence of m ndarrays or None, optional
        Vibration blur of each calculated image (:func:`hpcaet.atoms.vibration_kernels`).
    executor : Executor, optional
        Where the tasks run (default: here, in turn).
    store_dir : path, optional
        Folder of the task checkpoints; None keeps none.

    Returns
    -------
    DynamicResult

    Raises
    ------
    InputError
        A crop larger than the images, settings the multislice cannot honour (e.g. a
        detector angle beyond the sampling's limit), or mismatched inputs; all before
        any work starts.
    """
    images = np.asarray(images, float)
    euler = np.atleast_2d(np.asarray(euler, float))
    position = np.asarray(position, float).copy()
    species = np.asarray(species).astype(str)
    context = scan_context(
        images.shape,
        euler,
        pixel_size=pixel_size,
        optics=optics,
        settings=settings,
        grid=grid,
        crop=crop,
        patch_radius=patch_radius,
        patch_padding=patch_padding,
        incoherent_sigma=incoherent_sigma,
        shifts=shifts,
        kernels=kernels,
    )
    offsets = grid.offsets()
    r1, best, edge, counts = [], [], [], {"computed": 0, "loaded": 0}
    for a in np.asarray(atoms, int):
        if species[a] == "vac":
            raise InputError(f"site {a} is a vacancy; only atoms can be scanned.")
        grid_r1 = _scan_atom(
            images, euler, position, species, int(a), context, executor, store_dir, counts
        )
        k = int(np.argmin(grid_r1))
        index = np.unravel_index(k, grid.shape)
        at_edge = any(i in (0, n - 1) for i, n in zip(index, grid.shape, strict=True) if n > 1)
        log.info(
            "dynamic: atom %d (%s) moved by (%+.2f, %+.2f, %+.2f) Å, R1 %.5f -> %.5f%s",
            a,
            species[a],
            *offsets[k],
            grid_r1[len(offsets) // 2],
            grid_r1[k],
            " (on the grid's edge)" if at_edge else "",
        )
        position[a] += offsets[k]
        r1.append(grid_r1)
        best.append(k)
        edge.append(at_edge)
    return DynamicResult(
        position=position,
        atoms=np.asarray(atoms, int),
        offsets=offsets,
        r1=np.asarray(r1).reshape(-1, len(offsets)),
        best=np.asarray(best, int),
        at_edge=np.asarray(edge, bool),
        **counts,
    )


def plan_atom(images, euler, position, species, a: int, ctx: dict) -> dict:
    """The jobs of one atom's scan: baseline tiles, patch cells, and the crop geometry.

    Parameters
    ----------
    images, euler, position, species
        As in :func:`refine_outliers`.
    a : int
        The scanned site.
    ctx : dict
        :func:`scan_context`.

    Returns
    -------
    dict
        ``tile_jobs`` (of :func:`~hpcaet.forward.adf.adf_tile`), ``patch_jobs`` (of
        :func:`~hpcaet.atoms.dynamic_patch.patch_setup`), ``patch_pixels`` (flat
        indices in each window), ``starts``, ``depths``, ``measured`` crops,
        ``extent`` of the patch cells [Å], window side ``w`` [pixel], ``salt`` (the
        hash of everything a result depends on).
    """
    m, ny, nx = images.shape
    pixel, crop, margin = ctx["pixel"], ctx["crop"], ctx["margin"]
    settings: ADFSettings = ctx["settings"]
    keep = (species != "vac") & (np.arange(len(species)) != a)
    w = crop + 2 * margin
    half = ctx["patch_radius"] + float(ctx["reach"].max()) + ctx["patch_padding"]
    extent = 2.0 * half
    windows, measured, tile_jobs, patch_jobs, patch_pixels = [], [], [], [], []
    starts, depths = [], []
    for j in range(m):
        rotated = position @ ctx["rotation"][j].T
        rotated[:, :2] += ctx["shifts"][j]
        p0 = rotated[a]
        centre = np.round(p0[:2] / pixel).astype(int) + [nx // 2, ny // 2]
        c0 = int(np.clip(centre[0] - crop // 2, 0, nx - crop))
        r0 = int(np.clip(centre[1] - crop // 2, 0, ny - crop))
        measured.append(images[j, r0 : r0 + crop, c0 : c0 + crop])
        # the simulated window: the crop and a margin for the blur
        x = (c0 - margin + np.arange(w) - nx // 2) * pixel
        y = (r0 - margin + np.arange(w) - ny // 2) * pixel
        windows.append((x[0], y[0]))
        others, symbols = rotated[keep], species[keep]
        near = np.all(
            (others[:, :2] > [x[0] - settings.padding - pixel, y[0] - settings.padding - pixel])
            & (
                others[:, :2] < [x[-1] + settings.padding + pixel, y[-1] + settings.padding + pixel]
            ),
            axis=1,
        )
        for r in range(0, w, settings.tile):
            for c in range(0, w, settings.tile):
                tile_jobs.append(
                    {
                        "positions": others[near],
                        "symbols": symbols[near].astype("U3"),
                        "origin": (float(x[c]), float(y[r])),
                        "shape": (min(settings.tile, w - r), min(settings.tile, w - c)),
                    }
                )
        # the patch: window pixels near the atom's projection at any grid point
        xx, yy = np.meshgrid(x, y)
        inside = np.hypot(xx - p0[0], yy - p0[1]) <= ctx["patch_radius"] + ctx["reach"][j]
        corner = p0[:2] - half
        in_cell = np.all((others[:, :2] >= corner) & (others[:, :2] < corner + extent), axis=1)
        z_top = min(others[in_cell, 2].min(initial=p0[2]), p0[2] - ctx["grid"].half_width[2])
        z_bottom = max(others[in_cell, 2].max(initial=p0[2]), p0[2] + ctx["grid"].half_width[2])
        z_top -= _Z_PAD + settings.slice_thickness
        depth = z_bottom + _Z_PAD + settings.slice_thickness - z_top
        local = others[in_cell] - [corner[0], corner[1], z_top]
        probes = np.stack([xx[inside] - corner[0], yy[inside] - corner[1]], axis=1)
        patch_jobs.append(
            {
                "symbols": symbols[in_cell].astype("U3"),
                "positions": local,
                "probes": probes,
                "depth": float(depth),
            }
        )
        patch_pixels.append(np.flatnonzero(inside.ravel()))
        starts.append(p0 - [corner[0], corner[1], z_top])
        depths.append(depth)
    salt = content_key(
        {
            "position": position,
            "species": species.astype("U3"),
            "atom": a,
            "euler": euler,
            "shifts": ctx["shifts"],
            "kernels": ctx["kernels"],
            "pixel": pixel,
            "crop": crop,
            "margin": margin,
            "sigma": ctx["sigma"],
            "radius": ctx["patch_radius"],
            "patch_padding": ctx["patch_padding"],
            "grid": ctx["grid"].offsets(),
            "measured": np.asarray(measured),
        },
        repr(ctx["optics"]) + repr(settings),
    )
    return {
        "tile_jobs": tile_jobs,
        "patch_jobs": patch_jobs,
        "patch_pixels": patch_pixels,
        "starts": np.asarray(starts),
        "depths": np.asarray(depths),
        "measured": np.asarray(measured),
        "extent": extent,
        "w": w,
        "salt": salt,
    }


def assemble_scan(plan: dict, tiles: list, patches: list, ctx: dict, symbol: str) -> dict:
    """The shared inputs of :func:`~hpcaet.atoms.dynamic_patch.scan_point` from the
    finished baseline tiles and patch cells of :func:`plan_atom`."""
    settings: ADFSettings = ctx["settings"]
    tile_jobs, w = plan["tile_jobs"], plan["w"]
    m = len(plan["patch_jobs"])
    baselines = np.zeros((m, w, w))
    per_image = len(tile_jobs) // m
    for t, (job, tile) in enumerate(zip(tile_jobs, tiles, strict=True)):
        j, k = divmod(t, per_image)
        r, c = divmod(k, -(-w // settings.tile))
        r, c = r * settings.tile, c * settings.tile
        baselines[j, r : r + job["shape"][0], c : c + job["shape"][1]] = tile
    n_slices = np.array([len(p["potential"]) for p in patches])
    g = patches[0]["potential"].shape[-1]
    potentials = np.zeros((m, n_slices.max(), g, g), np.float32)
    for j, p in enumerate(patches):
        potentials[j, : n_slices[j]] = p["potential"]
    shared = {
        "symbol": str(symbol),
        "start": plan["starts"],
        "rotation": ctx["rotation"],
        "potentials": potentials,
        "n_slices": n_slices,
        "depth": plan["depths"],
        "extent": plan["extent"],
        "probes": np.concatenate([job["probes"] for job in plan["patch_jobs"]]),
        "patch_index": np.concatenate(plan["patch_pixels"]),
        "patch_count": np.array([len(p) for p in plan["patch_pixels"]]),
        "without": np.concatenate([p["without"] for p in patches]),
        "baselines": baselines,
        "measured": plan["measured"],
        "kernels": ctx["kernels"],
        "sigma": ctx["sigma"],
        "margin": ctx["margin"],
        "optics": ctx["optics"],
        "settings": settings,
    }
    return shared


def _scan_atom(images, euler, position, species, a, ctx, executor, store_dir, counts):
    """R1 of every grid point of atom ``a`` (the three maps of the module docstring)."""
    plan = plan_atom(images, euler, position, species, a, ctx)
    salt, settings, optics = plan["salt"], ctx["settings"], ctx["optics"]
    m = len(plan["patch_jobs"])

    def run(func, jobs, shared, name, codec):
        report: dict = {}
        out = map_tasks(
            func,
            jobs,
            keys=[content_key(job, salt) for job in jobs],
            shared=shared,
            executor=executor,
            store=None if store_dir is None else TaskStore(store_dir, f"dynamic-{name}", codec),
            label=f"dynamic atom {a}: {name}",
            report=report,
        )
        counts["computed"] += len(report["computed"])
        counts["loaded"] += len(report["loaded"])
        return out

    tiles = run(
        adf_tile,
        plan["tile_jobs"],
        {"step": ctx["pixel"], "optics": optics, "settings": settings},
        "baseline",
        ARRAY,
    )
    patches = run(
        patch_setup,
        plan["patch_jobs"],
        {"extent": plan["extent"], "optics": optics, "settings": settings},
        "patch",
        ARRAYS,
    )
    shared = assemble_scan(plan, tiles, patches, ctx, str(species[a]))
    log.info(
        "dynamic: atom %d: %d images, %d patch probe positions per point, cells of %.1f Å "
        "with %d slices at most",
        a,
        m,
        int(shared["patch_count"].sum()),
        plan["extent"],
        int(shared["n_slices"].max()),
    )
    points = run(scan_point, [{"offset": o} for o in ctx["grid"].offsets()], shared, "scan", ARRAYS)
    return np.array([p["residual"].sum() / max(p["measured"].sum(), 1e-300) for p in points])
