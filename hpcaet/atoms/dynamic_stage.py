"""Stage layer of the dynamic refinement: atoms.nc and processed.nc in, atoms_dynamic.nc out.

``hpcaet dynamic --run DIR [--atoms I,J]`` reads the atom model (``atoms.nc``) and the
processed series (``processed.nc``: the ``linear_images`` with the vibration kernels of
each tilt, its Euler angles, voltage, convergence and detector angles), selects the
outlier atoms of ``dynamic.species`` (:func:`~hpcaet.atoms.dynamic_grid.select_outliers`
with ``atoms.min_distance``, ``atoms.off_layer_distance`` and ``atoms.layer_smoothing``),
leaves out those the model flags in the field's edge band (``dynamic.skip_edge``, unless
``dynamic.atoms`` names them), scans each on the ``dynamic`` grid by multislice with the numerics of
``imaging.multislice`` (:func:`~hpcaet.atoms.dynamic.refine_outliers`) and writes
``atoms_dynamic.nc``: the AtomModel with the scanned atoms moved, and the R1 of every
grid point of every scanned atom (``dynamic_r1``). Every task is checkpointed under
``checkpoints/dynamic/``; a killed scan resumes where it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.atoms.dynamic import refine_outliers
from hpcaet.atoms.dynamic_grid import ScanGrid, check_atom_indices, select_outliers
from hpcaet.atoms.inputs import select_images
from hpcaet.atoms.stage import read_input
from hpcaet.config import Config
from hpcaet.errors import InputError
from hpcaet.forward.adf import ADFOptics, check_adf
from hpcaet.io import FLAG_EDGE, read_dataset
from hpcaet.parallel.tasks import executor_for

__all__ = ["run_dynamic", "dynamic_inputs"]

log = logging.getLogger(__name__)


def dynamic_inputs(config: Config, model: xr.Dataset, series: xr.Dataset) -> dict:
    """Everything :func:`refine_outliers` needs, checked before any work starts.

    Returns
    -------
    dict
        Keyword arguments of :func:`~hpcaet.atoms.dynamic.refine_outliers` (and
        ``outliers``, every flagged site, and ``skipped``, the flagged sites left out
        because the atom model's ``flag`` marks them in the field's edge band, with
        ``dynamic.skip_edge`` and no ``dynamic.atoms`` list).

    Raises
    ------
    InputError
        An atom index that is not a flagged outlier, a crop larger than the images, a
        detector angle beyond the sampling's limit.
    """
    cfg, acfg = config.dynamic, config.atoms
    position = model["position"].values.astype(float)
    species = model["species"].values.astype(str)
    outliers = select_outliers(
        position,
        species,
        scan_species=cfg.species,
        min_distance=acfg.min_distance,
        off_layer=acfg.off_layer_distance,
        smoothing=acfg.layer_smoothing,
    )
    edge = np.zeros(len(position), bool)
    if "flag" in model:
        edge = (model["flag"].values.astype(int) & FLAG_EDGE) != 0
    if cfg.atoms:  # an explicit list wins over dynamic.skip_edge
        atoms, skipped = check_atom_indices(cfg.atoms, outliers, len(position)), np.zeros(0, int)
    else:
        skipped = outliers[edge[outliers]] if cfg.skip_edge else np.zeros(0, int)
        atoms = np.setdiff1d(outliers, skipped)
    pixel = float(series.attrs["pixel_size"])
    if "images" not in series:
        raise InputError("processed.nc has no 'images'; run 'hpcaet preprocess' first.")
    images, kernels = select_images(series, series["images"].values, pixel, "auto")
    m, ny, nx = images.shape
    if cfg.crop > min(ny, nx):
        raise InputError(
            f"dynamic.crop = {cfg.crop} pixels does not fit the {ny} × {nx} images of "
            f"processed.nc; set it to at most {min(ny, nx)}."
        )
    optics = ADFOptics(
        voltage=float(series.attrs["voltage"]),
        convergence_angle=float(series.attrs["convergence_angle"]),
        detector=(
            float(series.attrs["detector_inner_angle"]),
            float(series.attrs["detector_outer_angle"]),
        ),
    )
    settings = config.imaging.multislice.settings()
    check_adf(optics, settings, step=pixel)
    shift = model.attrs.get("image_shift")
    shifts = None
    if shift is not None and np.size(shift) == 2 * m:
        shifts = np.asarray(shift, float).reshape(m, 2)
    else:
        log.warning("dynamic: atoms.nc records no image shifts; the crops assume none")
    return {
        "images": images,
        "euler": series["euler"].values.astype(float),
        "position": position,
        "species": species,
        "atoms": atoms,
        "outliers": outliers,
        "skipped": skipped,
        "pixel_size": pixel,
        "optics": optics,
        "settings": settings,
        "grid": ScanGrid(tuple(cfg.half_width), tuple(cfg.step)),
        "crop": int(cfg.crop),
        "patch_radius": float(cfg.patch_radius),
        "patch_padding": float(cfg.patch_padding),
        "incoherent_sigma": float(config.imaging.multislice.incoherent_sigma),
        "shifts": shifts,
        "kernels": kernels,
    }


def run_dynamic(config: Config, run, client=None) -> dict[str, xr.Dataset]:
    """Run the dynamic refinement in a run directory.

    Parameters
    ----------
    config : Config
        Uses ``dynamic``, ``atoms`` (outlier thresholds) and ``imaging.multislice``.
        With ``dynamic.enabled`` false (the default: hours per atom) the model is
        written unchanged, so a pipeline of every stage stays fast.
    run : RunDirectory
        Reads ``atoms.nc`` and ``processed.nc``; checkpoints under
        ``checkpoints/dynamic/``.
    client : distributed.Client, optional
        Spread the scan points over this cluster.

    Returns
    -------
    dict
        ``{"atoms_dynamic.nc": AtomModel}`` with the variables ``dynamic_atom``
        (scanned sites), ``dynamic_offset`` (grid displacements [Å]), ``dynamic_r1``
        (R1 per scanned atom and grid point), ``dynamic_shift`` (the move [Å]) and
        ``dynamic_at_edge``.
    """
    model = read_input(run, "atoms.nc", "AtomModel", "atoms", reader="dynamic")
    if not config.dynamic.enabled:
        log.info(
            "dynamic: off (dynamic.enabled: false; 'hpcaet dynamic' turns it on): "
            "atoms_dynamic.nc is atoms.nc unchanged"
        )
        out = model.copy(deep=True)
        out.attrs["dynamic_grid"] = "off"
        return {"atoms_dynamic.nc": out}
    series = read_input(run, "processed.nc", "TiltSeries", "preprocess", reader="dynamic")
    inputs = dynamic_inputs(config, model, series)
    outliers = inputs.pop("outliers")
    skipped = inputs.pop("skipped")
    log.info(
        "dynamic: %d flagged outliers of %s, %d skipped in the edge band %s "
        "(dynamic.skip_edge); scanning %s on a %s grid",
        len(outliers),
        "/".join(config.dynamic.species),
        len(skipped),
        skipped.tolist(),
        inputs["atoms"].tolist(),
        "x".join(str(n) for n in inputs["grid"].shape),
    )
    result = refine_outliers(
        **inputs,
        executor=executor_for(client, label="dynamic"),
        store_dir=Path(run.checkpoints) / "dynamic",
    )
    out = model.copy(deep=True)
    out["position"].values[:] = result.position
    out["dynamic_atom"] = ("scanned", result.atoms.astype(np.int32), {"long_name": "scanned site"})
    out["dynamic_offset"] = (
        ("point", "xyz"),
        result.offsets,
        {"units": "Å", "long_name": "grid displacement (x slowest, z fastest)"},
    )
    out["dynamic_r1"] = (
        ("scanned", "point"),
        result.r1,
        {"long_name": "R1 of the crops of all images at each grid point"},
    )
    moved = result.offsets[result.best] if len(result.best) else np.zeros((0, 3))
    out["dynamic_shift"] = (
        ("scanned", "xyz"),
        moved,
        {"units": "Å", "long_name": "displacement applied to the scanned atom"},
    )
    out["dynamic_at_edge"] = (
        "scanned",
        result.at_edge.astype(np.int8),
        {"long_name": "1 where the least R1 is on the grid's boundary"},
    )
    out.attrs["dynamic_grid"] = "x".join(str(n) for n in inputs["grid"].shape)
    truth_path = Path(run.root) / "truth_atoms.nc"
    if truth_path.exists() and len(result.atoms):
        truth = read_dataset(truth_path, kind="AtomModel")
        _log_truth(model, out, truth, result.atoms)
    return {"atoms_dynamic.nc": out}


def _log_truth(before: xr.Dataset, after: xr.Dataset, truth: xr.Dataset, atoms) -> None:
    """Distance of each scanned atom to the nearest true atom of its species, before/after."""
    t_pos, t_sp = truth["position"].values, truth["species"].values.astype(str)
    for a in atoms:
        sp = str(before["species"].values[a])
        same = t_pos[t_sp == sp]
        if not len(same):
            continue
        d0 = np.linalg.norm(same - before["position"].values[a], axis=1).min()
        d1 = np.linalg.norm(same - after["position"].values[a], axis=1).min()
        log.info("dynamic: atom %d (%s): %.3f Å from the truth before, %.3f Å after", a, sp, d0, d1)
