"""Precision of a run's atom model, estimated from dynamical images of that model.

A measured run has no truth to score against. The paper estimated its precision by
drawing 12 multislice images of its final model at the experimental angles, blurring
them, adding the noise measured on the experimental images, and running the whole
chain again: the new model's distance to the one it was drawn from is the precision
(Mo 4, S 15, W 6, Se 15 pm). :func:`run_precision` does that for a run directory:

1. the run's final model (``atoms.nc``) is the truth of a new run, ``RUN/precision/``;
2. its tilt series is drawn by multislice (:mod:`hpcaet.phantom.dynamical`) at the
   run's calibrated angles (``processed.nc``), recorded with the run's nominal angles,
   pixel size, frames and dose, and the detector noise fitted from the run's own raw
   frames (:func:`hpcaet.io.noise.fit_noise_model`) when they allow it;
3. preprocess → reconstruct → atoms run on it with the run's settings, and the atoms
   stage scores the new model against the old one (per-species RMSD, species and
   vacancy accuracy inside the reconstructed field);
4. the table is written to ``RUN/precision.json`` and returned.

Everything is checkpointed like any run (multislice tiles included), so an interrupted
estimate resumes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.config import Config, config_to_dict, load_config
from hpcaet.errors import InputError
from hpcaet.io import read_dataset, write_dataset
from hpcaet.io.atomic import atomic_path
from hpcaet.materials import VACANCY

__all__ = ["precision_config", "run_precision", "PRECISION_STAGES"]

log = logging.getLogger(__name__)

#: The stages run again on the dynamical series.
PRECISION_STAGES = ("preprocess", "reconstruct", "atoms")


def precision_config(
    config: Config, series: xr.Dataset, processed: xr.Dataset, *, overrides: dict | None = None
) -> Config:
    """The config of the precision run: the run's, imaging as the run recorded it.

    Parameters
    ----------
    config : Config
        The run's resolved config (``RUN/config.yaml``).
    series : xarray.Dataset
        The run's raw TiltSeries (``tilt_series.nc``): shape, frames, pixel size,
        optics, dose and, where the frames allow, the fitted detector noise.
    processed : xarray.Dataset
        The run's processed TiltSeries: the calibrated angles the model belongs to.
    overrides : dict, optional
        Settings applied last (e.g. ``{"imaging": {"multislice": {"engine": "prism"}}}``).

    Returns
    -------
    Config
        With ``imaging.model: multislice`` and ``imaging.angles`` the calibrated angles.
    """
    data = config_to_dict(config)
    frames = series["frames"] if "frames" in series else None
    n_frame = int(frames.sizes["frame"]) if frames is not None else 1
    imaging = {
        "model": "multislice",
        "angles": processed["euler"].values.astype(float).tolist(),
        "nominal_error": 0.0,
        "shape": [int(series.sizes["y"]), int(series.sizes["x"])],
        "frames": n_frame,
        "pixel_size": float(series.attrs["pixel_size"]),
        "dose": float(series.attrs["dose"]),
    }
    for name in ("voltage", "convergence_angle", "detector_inner_angle", "detector_outer_angle"):
        if name in series.attrs:
            imaging[name] = float(series.attrs[name])
    read_noise = _read_noise(series)
    if read_noise is not None:
        imaging["read_noise"] = read_noise
    data["imaging"] = {**data["imaging"], **imaging}
    data["name"] = f"{config.name}-precision"
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            merged = {**data[section]}
            for key, value in values.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            data[section] = merged
        else:
            data[section] = values
    return load_config(overrides=data)


def _read_noise(series: xr.Dataset) -> float | None:
    """Read noise [detected electrons] fitted from the frames, None when they do not allow it.

    The simulator's counts are detected electrons; a detector with gain ``g`` [counts/e]
    and read noise ``s`` [counts] has ``s / g`` electrons of read noise.
    """
    from hpcaet.io.noise import fit_noise_model

    if "frames" not in series:
        return None
    try:
        noise = fit_noise_model(series["frames"].values)
    except InputError as exc:
        log.warning(
            "precision: the run's noise could not be fitted (%s); the config's is kept", exc
        )
        return None
    log.info(
        "precision: detector noise fitted from the run's frames (%s): gain %.3g counts/e, "
        "read noise %.3g counts",
        noise.method,
        noise.gain,
        noise.read_noise,
    )
    return float(noise.read_noise / noise.gain)


def _truth(model: xr.Dataset) -> xr.Dataset:
    """The run's model as the truth of the precision run (no scoring variables)."""
    drop = [v for v in ("true_index",) if v in model]
    truth = model.drop_vars(drop)
    truth.attrs = {k: v for k, v in model.attrs.items() if k not in ("config_hash", "stage")}
    return truth


def run_precision(
    run_dir: str | Path,
    *,
    overrides: dict | None = None,
    client=None,
    force: bool = False,
) -> dict:
    """Estimate the precision of a run's atom model (the paper's multislice estimate).

    Parameters
    ----------
    run_dir : path
        A run directory with ``config.yaml``, ``tilt_series.nc``, ``processed.nc`` and
        ``atoms.nc``.
    overrides : dict, optional
        Config settings for the precision run (multislice engine, tile size, ...).
    client : distributed.Client, optional
        Spread the multislice tiles and the stages' work over this cluster.
    force : bool
        Recompute the precision run's stages even where they are up to date.

    Returns
    -------
    dict
        The scores of the new model against the run's (``scores.json`` of the atoms
        stage), also written to ``RUN/precision.json``.
    """
    from hpcaet.phantom.stage import simulate_tilt_series
    from hpcaet.pipeline import STAGES, RunDirectory, run_stages, stage_hash

    root = Path(run_dir)
    needed = {
        "config.yaml": "hpcaet run",
        "tilt_series.nc": "hpcaet simulate or hpcaet import",
        "processed.nc": "hpcaet preprocess",
        "atoms.nc": "hpcaet atoms",
    }
    for name, command in needed.items():
        if not (root / name).exists():
            raise InputError(
                f"{root / name} not found: the precision estimate needs the run's {name}; "
                f"make it with '{command} --run {root}'."
            )
    config = load_config(root / "config.yaml")
    series = read_dataset(root / "tilt_series.nc", kind="TiltSeries")
    processed = read_dataset(root / "processed.nc", kind="TiltSeries")
    model = read_dataset(root / "atoms.nc", kind="AtomModel")
    if len(processed["euler"]) != len(series["euler"]):
        raise InputError(
            f"processed.nc has {len(processed['euler'])} tilts and tilt_series.nc "
            f"{len(series['euler'])}; rerun 'hpcaet preprocess --run {root}'."
        )
    sub_config = precision_config(config, series, processed, overrides=overrides)
    sub = RunDirectory(root / "precision")
    sub.prepare(sub_config)
    digest = stage_hash(sub_config, STAGES["simulate"])
    series_path = sub.file("tilt_series.nc")
    if force or not _made_with(series_path, digest):
        truth = _truth(model)
        kept = int((truth["species"].values.astype(str) != VACANCY).sum())
        log.info(
            "precision: drawing %d tilts of the run's model (%d atoms) by %s",
            len(processed["euler"]),
            kept,
            sub_config.imaging.multislice.engine,
        )
        dynamical = simulate_tilt_series(
            truth, sub_config, client=client, checkpoints=sub.checkpoints / "precision"
        )
        # recorded as the run recorded its series: its nominal angles and stage readings
        dynamical["euler"] = (
            ("tilt", "angle"),
            series["euler"].values.astype(float),
            dict(series["euler"].attrs),
        )
        if "stage_tilt" in series:
            dynamical["stage_tilt"] = series["stage_tilt"]
        for ds in (truth, dynamical):
            ds.attrs.update(config_hash=digest, stage="simulate")
        write_dataset(truth, sub.file("truth_atoms.nc"))
        write_dataset(dynamical, series_path)
    run_stages(sub_config, sub.root, stages=PRECISION_STAGES, client=client, force=force)
    scores = json.loads(sub.file("scores.json").read_text())
    table = {
        "run": str(root),
        "precision_run": str(sub.root),
        "engine": sub_config.imaging.multislice.engine,
        "prism_interpolation": sub_config.imaging.multislice.prism_interpolation,
        "read_noise": sub_config.imaging.read_noise,
        "dose": sub_config.imaging.dose,
        "scores": scores,
    }
    with atomic_path(root / "precision.json") as tmp:
        tmp.write_text(json.dumps(table, indent=2, allow_nan=True))
    return table


def _made_with(path: Path, digest: str) -> bool:
    if not path.exists():
        return False
    with xr.open_dataset(path) as ds:
        return str(ds.attrs.get("config_hash", "")) == digest and np.all(
            np.isfinite(ds["frames"].values[:1])
        )
