"""Stage layer of the tilt-series processing: tilt_series.nc in, processed.nc out.

Three phases: (1) per tilt, one Dask task each — drift and scan-distortion correction,
denoising, the hexagon-minimum background and metal-column fitting; (2) on the client,
once for the series — tracking the columns, calibrating the angles (with the
per-species column bias), fitting the membrane vibration kernel of every tilt, and
refitting each tilt's background with the sheet model where the vacuum allows
(:mod:`hpcaet.preprocess.series`); (3) per tilt again, one Dask task each — the
column-fit bias at the calibrated angles, the deconvolution and the alignment shift.
The per-tilt results of phases 1 and 3 are checkpointed under
``checkpoints/preprocess/`` (keyed by the input and the config), so a killed run
resumes where it stopped; phase 2 is recomputed on a resume. The tasks are pure
functions of their inputs, with deterministic keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.config import Config, science_settings
from hpcaet.errors import InputError
from hpcaet.geometry import position_to_pixel
from hpcaet.io import complete_coordinates, make_tilt_series, read_dataset
from hpcaet.preprocess.align import alignment_shifts, shift_image
from hpcaet.preprocess.background import estimate_background, hollow_fraction
from hpcaet.preprocess.columns import column_bias, find_metal_columns
from hpcaet.preprocess.denoise import denoise_image
from hpcaet.preprocess.drift import DriftEstimate, correct_frames, estimate_drift
from hpcaet.preprocess.lattice import reference_image
from hpcaet.preprocess.records import TiltFinish, TiltStart, map_tilts
from hpcaet.preprocess.series import (
    calibrate_series,
    lattice_model,
    model_backgrounds,
    vibration_kernels,
)
from hpcaet.preprocess.tracking import track_columns
from hpcaet.preprocess.vibration import (
    VibrationEstimate,
    deconvolve,
)

__all__ = ["preprocess_series", "run_preprocess", "lattice_model", "TiltStart", "TiltFinish"]

log = logging.getLogger(__name__)

# bump when a per-tilt result changes, so old checkpoints are not reused
_VERSION = 4


def run_preprocess(config: Config, run, client=None) -> dict[str, xr.Dataset]:
    """Pipeline entry: read ``tilt_series.nc`` of a run directory, return ``processed.nc``."""
    series = read_dataset(run.file("tilt_series.nc"), kind="TiltSeries")
    from hpcaet.preprocess.figures import plot_preprocess

    checkpoints = run.checkpoints / "preprocess"
    checkpoints.mkdir(parents=True, exist_ok=True)
    processed, steps = preprocess_series(series, config, client=client, checkpoint_dir=checkpoints)
    plot_preprocess(series, processed, steps, run.figures)
    return {"processed.nc": processed}


def preprocess_series(
    series: xr.Dataset,
    config: Config,
    *,
    client=None,
    checkpoint_dir: str | Path | None = None,
) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """Process a raw TiltSeries into aligned images with calibrated angles.

    Parameters
    ----------
    series : xarray.Dataset
        TiltSeries with ``frames`` (tilt, frame, y, x) [counts] and nominal ``euler``.
    config : Config
        Uses ``preprocess``, ``species`` and ``imaging.probe_fwhm``.
    client : distributed.Client, optional
        Spread the per-tilt work over this cluster; without one it runs here.
    checkpoint_dir : path, optional
        Folder for per-tilt checkpoints.

    Returns
    -------
    processed : xarray.Dataset
        TiltSeries with ``images`` (tilt, y, x) [counts] and calibrated ``euler``, plus
        diagnostics (``drift``, ``drift_velocity``, ``angle_residual``,
        ``nominal_euler``, ``background``, ``vibration_*``, ``alignment_shift``,
        ``column_bias``, ``metal_position``, ``denoise_psnr_gain`` where truth exists).
    steps : dict of str to ndarray
        Intermediate images for the figures: ``summed``, ``denoised``, ``subtracted``,
        ``deconvolved`` (tilt, y, x) and the tracked columns ``tracks`` (tilt, n, 2).

    Raises
    ------
    InputError
        No frames, a missing angle, a frame of the wrong shape or an all-zero frame.
    """
    if "frames" not in series:
        raise InputError(
            "the tilt series has no raw 'frames' (tilt, frame, y, x) to process; it holds "
            f"{sorted(series.data_vars)}. Read the raw data with hpcaet.io.readers first."
        )
    frames = series["frames"].values
    euler = series["euler"].values.astype(float)
    if euler.shape != (frames.shape[0], 3) or not np.all(np.isfinite(euler)):
        bad = np.unique(np.argwhere(~np.isfinite(euler))[:, 0]).tolist()
        raise InputError(
            f"every tilt needs its nominal Euler angles (z, y, x) [deg]; missing for tilt(s) "
            f"{bad} (euler shape {euler.shape}, frames {frames.shape}). Add them."
        )
    pp = config.preprocess
    px = float(series.attrs["pixel_size"])
    read_noise = float(series.attrs.get("read_noise", 0.0)) * np.sqrt(frames.shape[1])
    model = lattice_model(config)
    n_tilt = frames.shape[0]
    if frames.shape[1] == 1:
        log.info(
            "preprocess: one frame per tilt, so the drift and scan-distortion correction is "
            "skipped (it needs at least two frames)"
        )
    key = _key(series, config)
    options_a = dict(
        pixel_size=px,
        read_noise=read_noise,
        model=model,
        max_step=pp.drift_max_step,
        lowpass=pp.drift_lowpass,
        refine=pp.drift_refine,
        denoise=pp.denoise,
        hollow=pp.background_hollow,
        smoothing=pp.background_smoothing,
        threshold=pp.column_threshold,
    )
    first = map_tilts(
        _process_tilt,
        [(frames[j], euler[j]) for j in range(n_tilt)],
        options_a,
        client,
        checkpoint_dir,
        f"preprocess-a-{key}",
        "preprocess (drift, denoise, background, columns)",
        record=TiltStart,
    )
    subtracted = np.stack([r.subtracted for r in first])
    spacing = model.lattice_constant / px
    tracks = track_columns(
        [r.columns for r in first],
        subtracted,
        euler,
        spacing=spacing,
        tolerance=pp.track_tolerance,
        min_views=pp.track_min_views,
    )
    calibration, bias_applied = calibrate_series(
        tracks,
        [r.columns for r in first],
        [r.intensity for r in first],
        euler,
        config,
        shape=subtracted.shape[1:],
        pixel_size=px,
    )
    centres = position_to_pixel(calibration.shift, subtracted.shape[1:], px)
    kernels, corners = vibration_kernels(
        first, calibration.euler, centres, config, px, calibration=calibration
    )
    fits = model_backgrounds(first, calibration, tracks, kernels, config, pixel_size=px)
    first = [
        r
        if fit is None
        else dataclasses.replace(
            r, background=fit.background, subtracted=r.denoised - fit.background, refitted=True
        )
        for r, fit in zip(first, fits, strict=True)
    ]
    subtracted = np.stack([r.subtracted for r in first])
    options_c = dict(
        pixel_size=px,
        model=model,
        iterations=pp.vibration_iterations,
        align=pp.align,
        bias_applied=bias_applied,
    )
    second = map_tilts(
        _finish_tilt,
        [
            (
                first[j].summed - first[j].background,
                subtracted[j],
                calibration.euler[j],
                centres[j],
                kernels[j],
                corners[j],
            )
            for j in range(n_tilt)
        ],
        options_c,
        client,
        checkpoint_dir,
        f"preprocess-c-{key}-{_digest(np.concatenate([calibration.euler, kernels], 1))}"
        f"{_digest(np.stack([r.background for r in first]))}",
        "preprocess (vibration, alignment)",
        record=TiltFinish,
    )
    processed = _assemble(series, first, second, calibration, tracks)
    steps = {
        "summed": np.stack([r.summed for r in first]),
        "denoised": np.stack([r.denoised for r in first]),
        "background": np.stack([r.background for r in first]),
        "subtracted": subtracted,
        "deconvolved": np.stack([r.deconvolved for r in second]),
        "tracks": tracks.rc,
        "reference": np.array(tracks.reference),
    }
    return processed, steps


def _process_tilt(
    frames,
    euler,
    *,
    pixel_size,
    read_noise,
    model,
    max_step,
    lowpass,
    refine,
    denoise,
    hollow,
    smoothing,
    threshold,
) -> TiltStart:
    """Phase 1 of one tilt: drift, sum, denoise, background, metal columns.

    One frame has no drift to measure: it is taken as it is (zero drift).
    """
    if len(frames) == 1:
        zero = np.zeros((1, 2))
        drift = DriftEstimate(velocity=np.zeros(2), measured=zero, drift=zero, residual=0.0)
        summed = np.asarray(frames[0], dtype=float)
    else:
        drift = estimate_drift(frames, max_step=max_step, lowpass=lowpass, refine=refine)
        summed = correct_frames(frames, drift.velocity)
    denoised = denoise_image(summed, read_noise=read_noise, method=denoise)
    spacing = model.lattice_constant / pixel_size
    rho = 0.0
    if hollow:
        ref = reference_image(model, euler, shape=(96, 96), pixel_size=pixel_size)
        rho = hollow_fraction(ref, spacing=spacing)
    bg = estimate_background(denoised, spacing=spacing, hollow=rho, smoothing=smoothing)
    subtracted = denoised - bg.background
    fit = find_metal_columns(subtracted, lattice_constant=spacing, threshold=threshold)
    return TiltStart(
        velocity=drift.velocity,
        drift=drift.drift,
        measured=drift.measured,
        drift_residual=float(drift.residual),
        summed=summed,
        denoised=denoised,
        background=bg.background,
        subtracted=subtracted,
        columns=fit.position,
        intensity=fit.intensity,
        hollow=float(rho),
    )


def _finish_tilt(
    raw,
    image,
    euler,
    centre,
    kernel,
    corner,
    *,
    pixel_size,
    model,
    iterations,
    align,
    bias_applied,
) -> TiltFinish:
    """Phase 3 of one tilt: column bias, deconvolution of ``kernel``, alignment.

    ``bias_applied``: the calibration already used bias-corrected columns, so the
    calibrated centre is not corrected again (the bias is still recorded).
    """
    bias = column_bias(model, euler, pixel_size=pixel_size)
    out = image
    if np.all(np.isfinite(kernel)):
        est = VibrationEstimate(*(float(v) for v in kernel))
        out = deconvolve(image, est, pixel_size=pixel_size, iterations=iterations)
    target = np.asarray(centre) - (0.0 if bias_applied else bias)
    shift = alignment_shifts(target[None], image.shape)[0] if align else np.zeros(2)
    return TiltFinish(
        bias=bias,
        vibration=np.asarray(kernel, float),
        crop=np.asarray(corner),
        deconvolved=out,
        shift=shift,
        image=shift_image(out, shift) if align else out,
        # the same drift-corrected, background-subtracted image without the nonlinear
        # steps (no denoising, no deconvolution): proportional to the linear ADF model
        linear=shift_image(raw, shift) if align else np.asarray(raw, float),
    )


def _assemble(series, first, second, calibration, tracks) -> xr.Dataset:
    n_tilt = len(first)
    images = np.stack([r.image for r in second]).astype(np.float32)
    truth = {
        k: series[k].values
        for k in (
            "true_euler",
            "true_drift",
            "true_offset",
            "true_vibration_direction",
            "true_vibration_amplitude",
            "true_vibration_width",
        )
        if k in series
    }
    attrs = {
        k: series.attrs[k]
        for k in (
            "voltage",
            "convergence_angle",
            "detector_inner_angle",
            "detector_outer_angle",
            "dose",
        )
        if k in series.attrs
    }
    ds = make_tilt_series(
        images=images,
        euler=calibration.euler,
        pixel_size=float(series.attrs["pixel_size"]),
        stage_tilt=series["stage_tilt"].values if "stage_tilt" in series else None,
        read_noise=series.attrs.get("read_noise"),
        **attrs,
        **truth,
        attrs={
            "angle_frame": "sheet: origin at the tracked metals' centroid, z normal to "
            "their best-fit plane, x along the zigzag bonds",
            "angle_reference_image": int(tracks.reference),
        },
    )
    ds["linear_images"] = (
        ("tilt", "y", "x"),
        np.stack([r.linear for r in second]).astype(np.float32),
        {
            "units": "counts",
            "long_name": "drift-corrected, background-subtracted, aligned images without "
            "denoising or deconvolution (linear in the ADF model)",
        },
    )
    ds["nominal_euler"] = (
        ("tilt", "angle"),
        series["euler"].values,
        {"units": "deg", "long_name": "nominal Euler angles (input)"},
    )
    ds["drift_velocity"] = (
        ("tilt", "shift_axis"),
        np.stack([r.velocity for r in first]),
        {"units": "pixel", "long_name": "estimated drift per frame (x, y)"},
    )
    ds["drift"] = (
        ("tilt", "frame", "shift_axis"),
        np.stack([r.drift for r in first]),
        {"units": "pixel", "long_name": "estimated drift at the start of each frame"},
    )
    ds["drift_residual"] = (
        ("tilt",),
        np.array([r.drift_residual for r in first]),
        {"units": "pixel", "long_name": "RMS misfit of the linear drift"},
    )
    ds["background"] = (
        ("tilt", "y", "x"),
        np.stack([r.background for r in first]).astype(np.float32),
        {"units": "counts", "long_name": "estimated background (subtracted)"},
    )
    ds["background_model"] = (
        ("tilt",),
        np.array([int(r.refitted) for r in first], np.int8),
        {
            "units": "1",
            "long_name": "1 where the background was refitted with the sheet model, 0 where "
            "the hexagon-minimum background was kept",
        },
    )
    ds["angle_residual"] = (
        ("tilt",),
        calibration.residual,
        {"units": "Å", "long_name": "RMS column misfit of equation (1)"},
    )
    ds["column_bias"] = (
        ("tilt", "shift_axis"),
        np.stack([r.bias[::-1] for r in second]),
        {"units": "pixel", "long_name": "metal-column fit bias (x, y) removed"},
    )
    vib = np.stack([r.vibration for r in second])
    for k, (name, units) in enumerate(
        (("direction", "deg"), ("amplitude", "Å"), ("width", "Å"), ("misfit", "1"))
    ):
        ds[f"vibration_{name}"] = (
            ("tilt",),
            vib[:, k],
            {"units": units, "long_name": f"vibration kernel {name}"},
        )
    ds["alignment_shift"] = (
        ("tilt", "shift_axis"),
        np.stack([r.shift[::-1] for r in second]),
        {"units": "pixel", "long_name": "shift applied (x, y)"},
    )
    ds["metal_position"] = (
        ("metal", "xyz"),
        calibration.positions,
        {
            "units": "Å",
            "long_name": "3D positions of the tracked metals (sheet frame, before alignment)",
        },
    )
    ds = ds.assign_coords(xyz=("xyz", ["x", "y", "z"]))
    ds["metal_seen"] = (
        ("tilt", "metal"),
        calibration.inliers.astype(np.int8),
        {"units": "1", "long_name": "1 where the column was used"},
    )
    ds = complete_coordinates(ds)
    log.info(
        "preprocess: %d tilts, %d tracked metals, angle residual %.3f Å RMS",
        n_tilt,
        len(calibration.positions),
        float(np.sqrt(np.nanmean(calibration.residual**2))),
    )
    return ds


def _key(series: xr.Dataset, config: Config) -> str:
    data = {
        "input": str(series.attrs.get("config_hash", "")),
        "shape": list(series["frames"].shape),
        "sections": science_settings(config, ("preprocess", "species", "materials")),
        "probe": config.imaging.probe_fwhm,
        "version": _VERSION,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:8]
