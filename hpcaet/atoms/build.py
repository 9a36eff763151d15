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

The steps are small functions over two records: :class:`FitInputs` (the images, angles,
blur, compared pixels and settings: fixed for the whole build) and :class:`FitState`
(the species' cross-sections and B-factors and the last refinement: each step returns
a new one, nothing is changed in place), so each step can be checkpointed, tested or
rerun on its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hpcaet.atoms.assemble import initial_sites, to_model
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
from hpcaet.atoms.quality import check_material, edge_flags, field_of_view
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

    sites = store.load("trace") if initial is None else initial_sites(initial)
    if sites is None:
        sites = _trace(volume, config)
        store.save("trace", sites)
    times["trace"] = time.perf_counter() - start

    materials = config.materials
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
    fit = FitInputs(
        images=images,
        euler=euler,
        pixel=pixel,
        kernels=kernels,
        footprint=footprint,
        chalcogens=materials.chalcogens,
        heights=materials.heights,
        cfg=cfg,
    )
    state = FitState(
        weights={e: config.species.cross_section[e] for e in materials.elements},
        b_factors={e: config.species.b_factor[e] for e in materials.elements},
    )
    history: dict = {"refine": [], "flips": [], "times": times}
    species = sites["species"]
    pending = False  # chalcogens reset to vacancies that no flipping has decided yet
    for cycle in range(cfg.flip_cycles + 1):
        t0 = time.perf_counter()
        name = f"cycle-{cycle}"
        saved = store.load(name)
        if saved is None:
            saved = _flip_and_refine(
                fit, state, sites, species, seed=[config.seed, cycle], client=client, cycle=cycle
            )
            store.save(name, saved)
        refined, species = result_from_arrays(saved)
        state = state.after(refined)
        history["refine"].append(refined.history)
        history["flips"].append(saved["flips"])
        sites, settled = _settle(fit, state, sites, species)
        pending = bool(np.any(settled != species))
        species = settled
        times[name] = time.perf_counter() - t0
        if cycle > 0 and not pending and len(saved["flips"]) and saved["flips"][0] == 0:
            break  # nothing changed: the next cycles would repeat this one
    if pending:  # decide the reset sites; their positions stay the mirror images
        t0 = time.perf_counter()
        flipped = _flip(fit, state, sites, species, seed=[config.seed, cfg.flip_cycles + 1])
        species = flipped.species
        history["flips"].append(flipped.changes)
        state = state.with_refined(_refine(fit, state, sites["position"], species, iterations=0))
        times["final flip"] = time.perf_counter() - t0
    n_atoms = int(np.sum(species != VACANCY))
    sites, species = drop_stray(sites, species, cfg)
    if int(np.sum(species != VACANCY)) != n_atoms:  # the R factors of the final model
        state = state.with_refined(_refine(fit, state, sites["position"], species, iterations=0))
    refined = state.refined
    log.info(
        "atoms: R1 %.4f, R %.4f; weights %s; B-factors %s",
        refined.R1,
        refined.R,
        {k: round(v, 5) for k, v in state.weights.items()},
        {k: round(v, 2) for k, v in state.b_factors.items()},
    )
    # How clearly the images tell each chalcogen's species (no sweep: measured only).
    margin = _flip(fit, state, sites, species, seed=0, sweeps=0).margin
    model = to_model(
        sites, species, refined, state.weights, state.b_factors, series, cfg, materials, margin
    )
    model["flag"].values[:] |= edge_flags(
        model["position"].values, volume, distance=cfg.edge_distance
    )
    return model, history


@dataclass(frozen=True)
class FitInputs:
    """What every refinement and flipping of one model fits: fixed for the whole build.

    Attributes
    ----------
    images : ndarray of shape (m, ny, nx)
        The images fitted [counts].
    euler : ndarray of shape (m, 3)
        Calibrated angles [deg].
    pixel : float
        [Å].
    kernels : list of ndarray or None
        Blur of the calculated images per tilt (vibration), or None.
    footprint : ndarray of bool, shape (m, ny, nx)
        Pixels compared.
    chalcogens : tuple of str
        The materials' chalcogens (flipping's candidates).
    heights : tuple of float
        The materials' chalcogen heights [Å] (lattice sites of changed pairs).
    cfg : AtomsConfig
    """

    images: np.ndarray
    euler: np.ndarray
    pixel: float
    kernels: Any
    footprint: np.ndarray
    chalcogens: tuple[str, ...]
    heights: tuple[float, ...]
    cfg: Any


@dataclass(frozen=True)
class FitState:
    """What the fitting has learnt so far; each step returns a new one.

    Attributes
    ----------
    weights, b_factors : dict of str to float
        Cross-section [model units] and B-factor [Å²] per species.
    refined : RefineResult or None
        The last refinement (its scale, offset and shifts are the next ones' start).
    """

    weights: dict[str, float]
    b_factors: dict[str, float]
    refined: RefineResult | None = None

    @property
    def shifts(self) -> np.ndarray | None:
        return None if self.refined is None else self.refined.shifts

    def with_refined(self, refined: RefineResult) -> FitState:
        """The state with ``refined`` as the last refinement, weights unchanged."""
        return replace(self, refined=refined)

    def after(self, refined: RefineResult) -> FitState:
        """The state after a refinement that also fitted the weights and B-factors."""
        return FitState(
            weights={**self.weights, **refined.weights},
            b_factors={**self.b_factors, **refined.b_factors},
            refined=refined,
        )


def _refine(fit: FitInputs, state: FitState, position, species, **changes) -> RefineResult:
    cfg = fit.cfg
    options = {
        "pixel_size": fit.pixel,
        "iterations": cfg.refine_iterations,
        "tolerance": cfg.refine_tolerance,
        "fit_shifts": cfg.fit_shifts,
        "margin": cfg.margin,
        "noise": cfg.noise,
        "chunk": cfg.chunk_images,
        "kernels": fit.kernels,
        "footprint": fit.footprint,
    }
    return refine_atoms(
        fit.images,
        fit.euler,
        position,
        species,
        weights=state.weights,
        b_factors=state.b_factors,
        shifts=state.shifts,
        **{**options, **changes},
    )


def _flip(fit: FitInputs, state: FitState, sites, species, *, seed, sweeps=None):
    refined = state.refined
    return flip_pairs(
        fit.images,
        fit.euler,
        sites["position"],
        species,
        sites["pair"],
        pixel_size=fit.pixel,
        weights=state.weights,
        b_factors=state.b_factors,
        scale=refined.scale,
        offset=refined.offset,
        shifts=refined.shifts,
        max_sweeps=fit.cfg.flip_sweeps if sweeps is None else sweeps,
        kernels=fit.kernels,
        footprint=fit.footprint,
        chalcogens=fit.chalcogens,
        rng=np.random.SeedSequence(seed),
        margins=sweeps == 0,
    )


def _flip_and_refine(fit, state, sites, species, *, seed, client, cycle) -> dict:
    """One cycle: flip the pairs, restart the changed ones on their lattice sites,
    refine; the result as the arrays of its checkpoint."""
    cfg = fit.cfg
    # Flipping comes first, also before the first refinement: a refinement with wrong
    # species pulls the sites of a column apart or together to make up for the wrong
    # weights, and a later flipping at those positions keeps the wrong pair (e.g.
    # Se/S with the Se moved towards the middle for Se/Se).
    if state.refined is None:
        state = state.with_refined(_refine(fit, state, sites["position"], species, iterations=0))
    flipped = _flip(fit, state, sites, species, seed=seed)
    changed = flipped.species != species
    species = flipped.species
    if cfg.snap_distance > 0 and changed.any():
        # Pairs that changed start again from their lattice sites.
        moved = resnap_changed(sites, species, changed, cfg, heights=fit.heights)
        sites = {**sites, "position": moved}
    mapper = None
    if client is not None:  # the image chunks go to the workers once per refinement
        executor = DaskExecutor(client, f"atoms-refine{cycle}")
        mapper = TaskMapper(executor, label="atoms: refine", keep_jobs=True)
    refined = _refine(fit, state, sites["position"], species, mapper=mapper)
    return result_arrays(refined, species, flipped.changes)


def _settle(fit: FitInputs, state: FitState, sites, species):
    """After a refinement: vacancy sites to the mirror image of their partner, and a
    chalcogen pulled too close to another atom reset to a vacancy."""
    cfg = fit.cfg
    position = mirror_vacancies(
        state.refined.position, species, sites["pair"], smoothing=cfg.layer_smoothing
    )
    species = reset_collapsed(
        position,
        species,
        sites["pair"],
        min_distance=cfg.min_distance,
        weights=state.weights,
        chalcogens=fit.chalcogens,
    )
    position = mirror_vacancies(position, species, sites["pair"], smoothing=cfg.layer_smoothing)
    return {**sites, "position": position}, species


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
