"""The AtomModel a build ends with, and the sites a build may start from."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hpcaet.atoms.quality import atom_flags
from hpcaet.atoms.refine import RefineResult
from hpcaet.errors import InputError
from hpcaet.io import FLAG_UNCERTAIN, make_atom_model
from hpcaet.materials import VACANCY

__all__ = ["initial_sites", "to_model"]


def initial_sites(model: xr.Dataset) -> dict[str, np.ndarray]:
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


def to_model(
    sites, species, refined: RefineResult, weights, b_factors, series, cfg, materials, margin=None
):
    """The AtomModel of the final sites; ``margin`` (per site, from
    :func:`~hpcaet.atoms.flip.flip_pairs`) below ``cfg.species_margin`` flags the site
    ``uncertain``."""
    position = sites["position"]
    flag, layer = atom_flags(
        position,
        species,
        min_distance=cfg.min_distance,
        off_layer=cfg.off_layer_distance,
        smoothing=cfg.layer_smoothing,
    )
    layer = np.where(layer == -2, sites["layer"], layer).astype(np.int8)
    if margin is not None:
        flag[np.nan_to_num(margin, nan=np.inf) < cfg.species_margin] |= FLAG_UNCERTAIN
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
    model = make_atom_model(
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
    if margin is not None:
        model["species_margin"] = ("atom", np.asarray(margin, dtype=float))
    return model
