"""The atom model of a volume and its images: trace, classify, pair, refine, flip.

:func:`build_model` chains the steps of :mod:`hpcaet.atoms` as the Methods of Tian et al.
do, on an xarray Volume and TiltSeries (no files but the optional step checkpoints):

1. trace the volume, assign species and regions, drop weak peaks, pair the chalcogens
   (vacancy sites for missing partners and empty columns);
2. refine against the images; then ``flip_cycles`` times: flip the chalcogen pairs and
   refine again, until no pair changes. After each refinement, vacancy sites are moved
   to the mirror image of their partner through the metal sheet, and a chalcogen that
   the refinement pulled closer than ``min_distance`` to another atom is reset to a
   vacancy, for the next flipping to decide at a sensible position;
3. drop vacancy pairs that sit on no chalcogen column (spurious peaks made vacant) and
   flag the atoms for the dynamic refinement (too close, off their layer).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from hpcaet.atoms.classify import classify_species
from hpcaet.atoms.distributed import DaskMapper
from hpcaet.atoms.flip import flip_pairs
from hpcaet.atoms.layers import fit_layers
from hpcaet.atoms.pairs import VACANCY, drop_stray_pairs, pair_chalcogens
from hpcaet.atoms.refine import RefineResult, refine_atoms
from hpcaet.atoms.trace import trace_atoms
from hpcaet.config import Config
from hpcaet.errors import InputError
from hpcaet.io import make_atom_model

__all__ = ["build_model", "atom_flags"]

log = logging.getLogger(__name__)

_VOXEL_TOLERANCE = 1e-3  # relative mismatch allowed between voxel and pixel size


def build_model(
    volume: xr.Dataset,
    series: xr.Dataset,
    config: Config,
    *,
    client=None,
    checkpoints: Path | None = None,
    key: str = "",
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
    images, euler, pixel = _check_inputs(volume, series)
    store = StepCheckpoints(checkpoints, key)
    times: dict[str, float] = {}
    start = time.perf_counter()

    sites = store.load("trace")
    if sites is None:
        sites = _trace(volume, config)
        store.save("trace", sites)
    times["trace"] = time.perf_counter() - start

    weights = {**config.species.cross_section}
    b_factors = {**config.species.b_factor}
    refine_options = {
        "pixel_size": pixel,
        "iterations": cfg.refine_iterations,
        "tolerance": cfg.refine_tolerance,
        "fit_shifts": cfg.fit_shifts,
        "margin": cfg.margin,
        "noise": cfg.noise,
        "chunk": cfg.chunk_images,
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

    species = sites["species"]
    refined: RefineResult | None = None
    shifts = None
    pending = False  # chalcogens reset to vacancies that no flipping has decided yet
    for cycle in range(cfg.flip_cycles + 1):
        t0 = time.perf_counter()
        name = f"cycle-{cycle}"
        saved = store.load(name)
        if saved is None:
            flips = np.zeros(0, dtype=int)
            if cycle > 0:
                flipped = _flip(
                    images,
                    euler,
                    sites,
                    species,
                    pixel,
                    weights,
                    b_factors,
                    refined,
                    cfg,
                    seed=[config.seed, cycle],
                )
                species, flips = flipped.species, flipped.changes
            mapper = DaskMapper(client, f"refine{cycle}") if client is not None else None
            refined = refine(sites["position"], species, mapper=mapper)
            saved = _result_arrays(refined, species, flips)
            store.save(name, saved)
        refined, species = _result_from_arrays(saved)
        weights.update(refined.weights)
        b_factors.update(refined.b_factors)
        shifts = refined.shifts
        history["refine"].append(refined.history)
        history["flips"].append(saved["flips"])
        position = _mirror_vacancies(
            refined.position, species, sites["pair"], smoothing=cfg.layer_smoothing
        )
        reset = _reset_collapsed(position, species, sites["pair"], min_distance=cfg.min_distance)
        pending = bool(np.any(reset != species))
        species = reset
        sites = {
            **sites,
            "position": _mirror_vacancies(
                position, species, sites["pair"], smoothing=cfg.layer_smoothing
            ),
        }
        times[name] = time.perf_counter() - t0
        if cycle > 0 and not pending and len(saved["flips"]) and saved["flips"][0] == 0:
            break  # nothing changed: the next cycles would repeat this one
    if pending:  # decide the reset sites; their positions stay the mirror images
        t0 = time.perf_counter()
        flipped = _flip(
            images,
            euler,
            sites,
            species,
            pixel,
            weights,
            b_factors,
            refined,
            cfg,
            seed=[config.seed, cfg.flip_cycles + 1],
        )
        species = flipped.species
        history["flips"].append(flipped.changes)
        refined = refine(sites["position"], species, iterations=0)
        times["final flip"] = time.perf_counter() - t0
    n_atoms = int(np.sum(species != VACANCY))
    sites, species = _drop_stray(sites, species, cfg)
    if int(np.sum(species != VACANCY)) != n_atoms:  # the R factors of the final model
        refined = refine(sites["position"], species, iterations=0)
    log.info(
        "atoms: R1 %.4f, R %.4f; weights %s; B-factors %s",
        refined.R1,
        refined.R,
        {k: round(v, 5) for k, v in weights.items()},
        {k: round(v, 2) for k, v in b_factors.items()},
    )
    model = _to_model(sites, species, refined, weights, b_factors, series, cfg)
    return model, history


def atom_flags(
    position: np.ndarray,
    species: np.ndarray,
    *,
    min_distance: float,
    off_layer: float,
    smoothing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Quality bits of every site and the layer of the atoms, for dynamic refinement.

    Returns
    -------
    flag : ndarray of int8, shape (n,)
        Bit 1: an atom nearer than ``min_distance`` to another atom; bit 2: more than
        ``off_layer`` from its layer's surface (fitted without it). Vacancy sites get 0.
    layer : ndarray of int8, shape (n,)
        The layer of every atom refitted on the final positions (vacancy sites -2, to be
        replaced by the caller).
    """
    flag = np.zeros(len(position), dtype=np.int8)
    layer = np.full(len(position), -2, dtype=np.int8)
    atom = np.flatnonzero(species != VACANCY)
    if len(atom) < 4:
        return flag, layer
    pairs = cKDTree(position[atom]).query_pairs(min_distance, output_type="ndarray")
    flag[atom[pairs.ravel()]] |= 1
    fit = fit_layers(position[atom], smoothing=smoothing)
    far = ~(np.abs(fit.distance) <= off_layer)
    flag[atom[far]] |= 2
    layer[atom] = fit.layer
    return flag, layer


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
    )
    classes = classify_species(
        traced.position,
        traced.intensity,
        traced.layers.layer,
        cross_section=config.species.cross_section,
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
    return {
        "position": paired.position,
        "species": paired.species,
        "layer": paired.layer,
        "region": paired.region,
        "pair": paired.pair,
    }


def _flip(images, euler, sites, species, pixel, weights, b_factors, refined, cfg, *, seed):
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
        rng=np.random.SeedSequence(seed),
    )


def _drop_stray(sites: dict, species: np.ndarray, cfg) -> tuple[dict, np.ndarray]:
    """Remove spurious pairs (see :func:`~hpcaet.atoms.pairs.drop_stray_pairs`); re-index."""
    atom = species != VACANCY
    if atom.sum() < 4:
        return sites, species
    surfaces = fit_layers(sites["position"][atom], smoothing=cfg.layer_smoothing).surfaces
    keep = drop_stray_pairs(
        sites["position"],
        species,
        sites["layer"],
        sites["pair"],
        surfaces=surfaces,
        pair_radius=cfg.pair_radius,
        min_separation=cfg.min_distance,
    )
    if keep.all():
        return sites, species
    log.info(
        "atoms: removed %d vacancy sites of pairs that are no chalcogen column (%d atoms)",
        int((~keep).sum()),
        int(np.sum(~keep & atom)),
    )
    new_index = np.cumsum(keep) - 1
    pair = sites["pair"]  # a site whose partner goes is left unpaired
    pair = np.where((pair >= 0) & keep[np.maximum(pair, 0)], new_index[np.maximum(pair, 0)], -1)
    out = {k: v[keep] for k, v in sites.items()}
    out["pair"] = pair[keep]
    return out, species[keep]


def _reset_collapsed(position, species, pair, *, min_distance):
    """Turn chalcogens that the refinement pulled onto another atom into vacancies.

    A chalcogen nearer than ``min_distance`` to a metal, or the lighter of two such
    chalcogens, is set to a vacancy (and then moved to its partner's mirror image), so
    that the next flipping decides the site at a sensible position.
    """
    atom = np.flatnonzero(species != VACANCY)
    pairs = cKDTree(position[atom]).query_pairs(min_distance, output_type="ndarray")
    if len(pairs) == 0:
        return species
    rank = {"S": 0, "Se": 1, "Mo": 2, "W": 3}
    out = species.copy()
    for a, b in atom[pairs]:
        weaker = a if rank.get(species[a], 0) <= rank.get(species[b], 0) else b
        if species[weaker] in ("S", "Se") and pair[weaker] >= 0:
            out[weaker] = VACANCY
    n = int(np.sum(out != species))
    if n:
        log.info(
            "atoms: %d chalcogen(s) nearer than %.2f Å to another atom reset to "
            "vacancies before flipping",
            n,
            min_distance,
        )
    return out


def _mirror_vacancies(position, species, pair, *, smoothing):
    """Move vacancy sites with an atom partner to its mirror image through the metal sheet."""
    vac = np.flatnonzero((species == VACANCY) & (pair >= 0))
    vac = vac[species[pair[vac]] != VACANCY]
    atom = species != VACANCY
    if len(vac) == 0 or atom.sum() < 4:
        return position
    surfaces = fit_layers(position[atom], smoothing=smoothing).surfaces
    partner = position[pair[vac]]
    z_mid, normal = surfaces.middle(partner[:, :2])
    ok = np.isfinite(z_mid)
    depth = (partner[ok, 2] - z_mid[ok]) * normal[ok, 2]
    out = position.copy()
    out[vac[ok]] = partner[ok] - 2 * depth[:, None] * normal[ok]
    return out


def _to_model(sites, species, refined: RefineResult, weights, b_factors, series, cfg):
    position = sites["position"]
    flag, layer = atom_flags(
        position,
        species,
        min_distance=cfg.min_distance,
        off_layer=cfg.off_layer_distance,
        smoothing=cfg.layer_smoothing,
    )
    layer = np.where(layer == -2, sites["layer"], layer).astype(np.int8)
    table_b = {**b_factors, VACANCY: b_factors.get("S", min(b_factors.values()))}
    b = np.array([table_b[s] for s in species])
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
        R=float(refined.R),
        image_scale=np.asarray(refined.scale, dtype=float),
        image_offset=np.asarray(refined.offset, dtype=float),
    )


def _check_inputs(volume: xr.Dataset, series: xr.Dataset):
    if "images" not in series:
        raise InputError(
            "processed.nc has no 'images' variable (only raw frames?); the atoms stage "
            "needs the processed images. Run 'hpcaet preprocess --run DIR' first."
        )
    voxel = float(volume.attrs["voxel_size"])
    pixel = float(series.attrs["pixel_size"])
    if abs(voxel - pixel) > _VOXEL_TOLERANCE * pixel:
        raise InputError(
            f"the volume's voxel size ({voxel} Å) differs from the images' pixel size "
            f"({pixel} Å); the atoms stage needs them equal. Reconstruct at the pixel size "
            "of processed.nc, or resample one of them."
        )
    images = series["images"].values.astype(float)
    euler = series["euler"].values.astype(float)
    return images, euler, pixel


class StepCheckpoints:
    """Step results as ``.npz`` files, valid only for the same key."""

    def __init__(self, folder: Path | None, key: str) -> None:
        self.folder = None if folder is None else Path(folder)
        self.key = key

    def load(self, name: str) -> dict | None:
        if self.folder is None:
            return None
        path = self.folder / f"{name}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != self.key:
                    return None
                out = {k: data[k] for k in data.files if k != "key"}
        except (OSError, ValueError, KeyError) as exc:
            log.warning("atoms: ignoring unreadable checkpoint %s (%s)", path, exc)
            return None
        log.info("atoms: resumed step %s from %s", name, path)
        return out

    def save(self, name: str, arrays: dict) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.npz"
        tmp = path.with_name(f".{name}.{uuid.uuid4().hex}.npz")
        try:
            np.savez(tmp, key=self.key, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _result_arrays(res: RefineResult, species: np.ndarray, flips: np.ndarray) -> dict:
    names = sorted(res.weights)
    return {
        "position": res.position,
        "species": np.asarray(species).astype("<U3"),
        "names": np.array(names, dtype="<U3"),
        "weights": np.array([res.weights[k] for k in names]),
        "b_factors": np.array([res.b_factors[k] for k in names]),
        "scale": res.scale,
        "offset": res.offset,
        "shifts": res.shifts,
        "history": res.history,
        "R": np.array([res.R1, res.R]),
        "flips": np.asarray(flips),
    }


def _result_from_arrays(a: dict) -> tuple[RefineResult, np.ndarray]:
    names = [str(k) for k in a["names"]]
    res = RefineResult(
        position=a["position"],
        weights=dict(zip(names, a["weights"].tolist(), strict=True)),
        b_factors=dict(zip(names, a["b_factors"].tolist(), strict=True)),
        scale=a["scale"],
        offset=a["offset"],
        shifts=a["shifts"],
        history=a["history"],
        R1=float(a["R"][0]),
        R=float(a["R"][1]),
    )
    return res, a["species"].astype(str)
