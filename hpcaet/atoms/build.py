"""The atom model of a volume and its images: trace, classify, pair, refine, flip.

:func:`build_model` chains the steps of :mod:`hpcaet.atoms` as the Methods of Tian et al.
do, on an xarray Volume and TiltSeries (no files but the optional step checkpoints):

1. trace the volume, assign species and regions, drop weak peaks, pair the chalcogens
   (vacancy sites for missing partners and empty columns), start the chalcogen
   sites far from their lattice site on it (:func:`~hpcaet.atoms.pairs.snap_chalcogens`)
   and join pairs that share a column (:func:`~hpcaet.atoms.pairs.merge_split_columns`);
2. ``flip_cycles + 1`` times: flip the chalcogen pairs (the pairs that change restart
   on their lattice sites) and refine against the images, until no pair changes. The
   images are ``linear_images`` with the model blurred by each tilt's vibration kernel
   when the series has them (:mod:`hpcaet.atoms.inputs`). After each refinement,
   vacancy sites are moved to the mirror image of their partner through the metal
   sheet, and a chalcogen that the refinement pulled closer than ``min_distance`` to
   another atom is reset to a vacancy, for the next flipping to decide at a sensible
   position;
3. join pairs that the refinement brought onto one column, drop vacancy pairs that
   sit on no chalcogen column (spurious peaks made vacant) and flag the atoms for the
   dynamic refinement (too close, off their layer).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.atoms.checkpoints import StepCheckpoints, result_arrays, result_from_arrays
from hpcaet.atoms.classify import classify_species
from hpcaet.atoms.flip import flip_pairs
from hpcaet.atoms.inputs import check_inputs, select_images
from hpcaet.atoms.layers import fit_layers
from hpcaet.atoms.objective import footprint_mask
from hpcaet.atoms.pairs import (
    VACANCY,
    merge_split_columns,
    pair_chalcogens,
    snap_chalcogens,
)
from hpcaet.atoms.quality import atom_flags, check_material, edge_flags, field_of_view
from hpcaet.atoms.refine import RefineResult, refine_atoms
from hpcaet.atoms.sites import (
    drop_stray,
    mirror_vacancies,
    reset_collapsed,
    resnap_changed,
    subset_sites,
)
from hpcaet.atoms.trace import trace_atoms
from hpcaet.config import Config
from hpcaet.errors import InputError
from hpcaet.io import make_atom_model
from hpcaet.parallel.tasks import DaskExecutor, TaskMapper

__all__ = ["build_model"]

log = logging.getLogger(__name__)


def build_model(
    volume: xr.Dataset,
    series: xr.Dataset,
    config: Config,
    *,
    client=None,
    checkpoints: Path | None = None,
    key: str = "",
    initial: xr.Dataset | None = None,
) -> tuple[xr.Dataset, dict]:
    """Trace, classify, pair, refine and flip: the atom model of a volume and its images.

    Parameters
    ----------
    volume : xarray.Dataset
        Volume (``density``, ``voxel_size``).
    series : xarray.Dataset
        TiltSeries with ``images`` [counts] and calibrated ``euler`` [deg].
    config : Config
    client : distributed.Client, optional
    checkpoints : Path, optional
        Folder of the step checkpoints; none are written without it.
    key : str
        Checkpoint key; checkpoints with another key are ignored.
    initial : xarray.Dataset, optional
        An AtomModel with ``pair``, ``layer`` and ``region`` (e.g. a phantom's truth) to
        refine and flip instead of the traced sites: for diagnosis, it separates what
        the images decide from what the tracing of the volume misses.

    Returns
    -------
    model : xarray.Dataset
        The AtomModel.
    history : dict
        ``refine`` (list of (n_iter, 2) loss and R1 histories, one per refinement),
        ``flips`` (list of change counts per sweep, one per flipping) and ``times``
        (seconds per step).
    """
    cfg = config.atoms
    images, euler, pixel = check_inputs(volume, series)
    images, kernels = select_images(series, images, pixel, cfg.image_source)
    # checkpoints belong to a traced run: a run from ``initial`` neither reads nor writes them
    store = StepCheckpoints(checkpoints if initial is None else None, key)
    times: dict[str, float] = {}
    start = time.perf_counter()

    sites = store.load("trace") if initial is None else _initial_sites(initial)
    if sites is None:
        sites = _trace(volume, config)
        store.save("trace", sites)
    times["trace"] = time.perf_counter() - start

    materials = config.materials
    weights = {e: config.species.cross_section[e] for e in materials.elements}
    b_factors = {e: config.species.b_factor[e] for e in materials.elements}
    # only pixels that see no atom beyond the volume (which the model lacks) are compared
    depth = float(np.max(np.abs(sites["position"][:, 2]))) + 0.5
    footprint = footprint_mask(
        euler,
        shape=images.shape[1:],
        pixel_size=pixel,
        box=field_of_view(volume, margin=cfg.image_margin),
        depth=depth,
    )
    log.info(
        "atoms: %.0f %% of the image pixels see only the volume (less %.3g Å) and are fitted",
        100 * footprint.mean(),
        cfg.image_margin,
    )
    refine_options = {
        "pixel_size": pixel,
        "iterations": cfg.refine_iterations,
        "tolerance": cfg.refine_tolerance,
        "fit_shifts": cfg.fit_shifts,
        "margin": cfg.margin,
        "noise": cfg.noise,
        "chunk": cfg.chunk_images,
        "kernels": kernels,
        "footprint": footprint,
    }
    history: dict = {"refine": [], "flips": [], "times": times}

    def refine(position, species, **changes):
        # weights, b_factors and shifts are read as they stand at each call.
        return refine_atoms(
            images,
            euler,
            position,
            species,
            weights=weights,
            b_factors=b_factors,
            shifts=shifts,
            **{**refine_options, **changes},
        )

    def flip(sites, species, *, seed):
        # weights, b_factors and the last refinement are read as they stand at each call.
        return _flip(
            images,
            euler,
            sites,
            species,
            pixel,
            weights,
            b_factors,
            refined,
            cfg,
            chalcogens=materials.chalcogens,
            seed=seed,
            kernels=kernels,
            footprint=footprint,
        )

    species = sites["species"]
    refined: RefineResult | None = None
    shifts = None
    pending = False  # chalcogens reset to vacancies that no flipping has decided yet
    for cycle in range(cfg.flip_cycles + 1):
        t0 = time.perf_counter()
        name = f"cycle-{cycle}"
        saved = store.load(name)
        if saved is None:
            # Flipping comes first, also before the first refinement: a refinement with
            # wrong species pulls the sites of a column apart or together to make up
            # for the wrong weights, and a later flipping at those positions keeps the
            # wrong pair (e.g. Se/S with the Se moved towards the middle for Se/Se).
            if refined is None:
                refined = refine(sites["position"], species, iterations=0)
            flipped = flip(sites, species, seed=[config.seed, cycle])
            changed = flipped.species != species
            species, flips = flipped.species, flipped.changes
            if cfg.snap_distance > 0 and changed.any():
                # Pairs that changed start again from their lattice sites.
                moved = resnap_changed(sites, species, changed, cfg, heights=materials.heights)
                sites = {**sites, "position": moved}
            mapper = None
            if client is not None:  # the image chunks go to the workers once per refinement
                executor = DaskExecutor(client, f"atoms-refine{cycle}")
                mapper = TaskMapper(executor, label="atoms: refine", keep_jobs=True)
            refined = refine(sites["position"], species, mapper=mapper)
            saved = result_arrays(refined, species, flips)
            store.save(name, saved)
        refined, species = result_from_arrays(saved)
        weights.update(refined.weights)
        b_factors.update(refined.b_factors)
        shifts = refined.shifts
        history["refine"].append(refined.history)
        history["flips"].append(saved["flips"])
        position = mirror_vacancies(
            refined.position, species, sites["pair"], smoothing=cfg.layer_smoothing
        )
        reset = reset_collapsed(
            position,
            species,
            sites["pair"],
            min_distance=cfg.min_distance,
            weights=weights,
            chalcogens=materials.chalcogens,
        )
        pending = bool(np.any(reset != species))
        species = reset
        sites = {
            **sites,
            "position": mirror_vacancies(
                position, species, sites["pair"], smoothing=cfg.layer_smoothing
            ),
        }
        times[name] = time.perf_counter() - t0
        if cycle > 0 and not pending and len(saved["flips"]) and saved["flips"][0] == 0:
            break  # nothing changed: the next cycles would repeat this one
    if pending:  # decide the reset sites; their positions stay the mirror images
        t0 = time.perf_counter()
        flipped = flip(sites, species, seed=[config.seed, cfg.flip_cycles + 1])
        species = flipped.species
        history["flips"].append(flipped.changes)
        refined = refine(sites["position"], species, iterations=0)
        times["final flip"] = time.perf_counter() - t0
    n_atoms = int(np.sum(species != VACANCY))
    sites, species = drop_stray(sites, species, cfg)
    if int(np.sum(species != VACANCY)) != n_atoms:  # the R factors of the final model
        refined = refine(sites["position"], species, iterations=0)
    log.info(
        "atoms: R1 %.4f, R %.4f; weights %s; B-factors %s",
        refined.R1,
        refined.R,
        {k: round(v, 5) for k, v in weights.items()},
        {k: round(v, 2) for k, v in b_factors.items()},
    )
    model = _to_model(sites, species, refined, weights, b_factors, series, cfg, materials)
    model["flag"].values[:] |= edge_flags(
        model["position"].values, volume, distance=cfg.edge_distance
    )
    return model, history


def _trace(volume: xr.Dataset, config: Config) -> dict[str, np.ndarray]:
    cfg = config.atoms
    traced = trace_atoms(
        volume["density"].values,
        voxel_size=float(volume.attrs["voxel_size"]),
        upsample=cfg.upsample,
        threshold=cfg.threshold,
        fit_size=cfg.fit_size,
        min_distance=cfg.min_distance,
        integration_radius=cfg.integration_radius,
        layer_smoothing=cfg.layer_smoothing,
        layer_tolerance=cfg.layer_tolerance,
        layer_min_distance=cfg.layer_min_distance,
        tile=cfg.tile,
        smoothing=cfg.trace_smoothing,
    )
    materials = config.materials
    check_material(
        traced.position,
        traced.layers.layer,
        lattice=materials.lattice_constants,
        heights=materials.heights,
        names=materials.names,
    )
    classes = classify_species(
        traced.position,
        traced.intensity,
        traced.layers.layer,
        cross_section=config.species.cross_section,
        materials=materials,
        region_smoothing=cfg.region_smoothing,
        min_intensity=cfg.min_intensity,
    )
    keep = classes.keep
    layers = fit_layers(
        traced.position[keep], smoothing=cfg.layer_smoothing, strength=traced.height[keep]
    )
    paired = pair_chalcogens(
        traced.position[keep],
        classes.species[keep],
        layers.layer,
        classes.region[keep],
        surfaces=layers.surfaces,
        pair_radius=cfg.pair_radius,
        fill_columns=cfg.fill_columns,
    )
    position = paired.position
    if cfg.snap_distance > 0:
        position = snap_chalcogens(
            position,
            paired.layer,
            paired.region,
            paired.pair,
            surfaces=layers.surfaces,
            heights=materials.heights,
            tolerance=cfg.snap_distance,
            pair_radius=cfg.pair_radius,
        )
        moved = np.linalg.norm(position - paired.position, axis=1) > 0
        log.info(
            "atoms: %d chalcogen sites farther than %.2f Å from their lattice site start on it",
            int(moved.sum()),
            cfg.snap_distance,
        )
    sites = {
        "position": position,
        "species": paired.species,
        "layer": paired.layer,
        "region": paired.region,
        "pair": paired.pair,
    }
    keep, pair = merge_split_columns(
        position,
        paired.species,
        paired.layer,
        paired.pair,
        surfaces=layers.surfaces,
        pair_radius=cfg.pair_radius,
    )
    return subset_sites({**sites, "pair": pair}, keep)


def _initial_sites(model: xr.Dataset) -> dict[str, np.ndarray]:
    missing = [v for v in ("position", "species", "layer", "region", "pair") if v not in model]
    if missing:
        raise InputError(
            f"the initial model lacks {missing}; it needs an AtomModel with pair, layer and "
            "region (e.g. the phantom's truth_atoms.nc)."
        )
    return {
        "position": model["position"].values.astype(float),
        "species": model["species"].values.astype("<U3"),
        "layer": model["layer"].values.astype(np.int8),
        "region": model["region"].values.astype(np.int8),
        "pair": model["pair"].values.astype(int),
    }


def _flip(
    images,
    euler,
    sites,
    species,
    pixel,
    weights,
    b_factors,
    refined,
    cfg,
    *,
    chalcogens,
    seed,
    kernels,
    footprint,
):
    return flip_pairs(
        images,
        euler,
        sites["position"],
        species,
        sites["pair"],
        pixel_size=pixel,
        weights=weights,
        b_factors=b_factors,
        scale=refined.scale,
        offset=refined.offset,
        shifts=refined.shifts,
        max_sweeps=cfg.flip_sweeps,
        kernels=kernels,
        footprint=footprint,
        chalcogens=chalcogens,
        rng=np.random.SeedSequence(seed),
    )


def _to_model(sites, species, refined: RefineResult, weights, b_factors, series, cfg, materials):
    position = sites["position"]
    flag, layer = atom_flags(
        position,
        species,
        min_distance=cfg.min_distance,
        off_layer=cfg.off_layer_distance,
        smoothing=cfg.layer_smoothing,
    )
    layer = np.where(layer == -2, sites["layer"], layer).astype(np.int8)
    # a vacancy site keeps the B-factor of its region's chalcogen (as the phantom's do)
    host = np.array(materials.chalcogens)[np.clip(sites["region"], 0, len(materials.regions) - 1)]
    b = np.array([b_factors[h if s == VACANCY else s] for s, h in zip(species, host, strict=True)])
    # Cross-sections in Å²: the model weights times the fitted counts per unit model,
    # over the counts per pixel the dose gives (dose per image times the pixel area).
    n_img = series.sizes["tilt"]
    pixel = float(series.attrs["pixel_size"])
    dose = float(series.attrs.get("dose", np.nan))
    calibration = float(np.mean(refined.scale)) / (dose / n_img * pixel**2)
    cross = {k: float(v) * calibration for k, v in weights.items() if k != VACANCY}
    cross[VACANCY] = 0.0
    return make_atom_model(
        position=position,
        species=species,
        b_factor=b,
        layer=layer,
        region=sites["region"],
        pair=sites["pair"],
        flag=flag,
        cross_section=cross if np.isfinite(calibration) else None,
        R1=float(refined.R1),
        materials=" ".join(materials.names),
        R=float(refined.R),
        image_scale=np.asarray(refined.scale, dtype=float),
        image_offset=np.asarray(refined.offset, dtype=float),
        # per-image shift (x, y) [Å] of the projections, flattened: the dynamic stage
        # puts the crops where the refinement saw the atoms
        image_shift=np.asarray(refined.shifts, dtype=float).ravel(),
    )
