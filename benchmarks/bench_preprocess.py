"""Accuracy and cost of every tilt-series processing step against the simulator's truth.

Usage::

    python benchmarks/bench_preprocess.py [--config configs/demo.yaml] [--out /tmp/bench_pp]

Simulates the config's phantom (or reuses ``OUT/tilt_series.nc``), runs each step of
:mod:`hpcaet.preprocess` in turn on every tilt with a timer, runs the angle calibration
and alignment as the stage does, and prints one table: each step's accuracy against the
truth recorded by the simulator and its time (wall-clock, this process, one core).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from hpcaet.config import load_config
from hpcaet.geometry import pixel_to_position, position_to_pixel, project_points
from hpcaet.io import read_dataset
from hpcaet.pipeline import run_stages
from hpcaet.preprocess import (
    calibrate_angles,
    column_bias,
    correct_frames,
    deconvolve,
    denoise_image,
    estimate_background,
    estimate_drift,
    estimate_vibration,
    find_metal_columns,
    gauge_aligned,
    hollow_fraction,
    reference_image,
    track_columns,
)
from hpcaet.preprocess.stage import _mos2_crop, lattice_model


def psnr(image: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(truth.max() ** 2 / np.mean((image - truth) ** 2)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--out", default="/tmp/bench_preprocess")
    parser.add_argument("--denoise", default=None, help="override preprocess.denoise")
    args = parser.parse_args(argv)
    overrides = {"preprocess": {"denoise": args.denoise}} if args.denoise else None
    config = load_config(args.config, overrides=overrides)
    out = Path(args.out)
    if not (out / "tilt_series.nc").exists():
        run_stages(config, out, stages=("simulate",))
    series = read_dataset(out / "tilt_series.nc")
    truth = read_dataset(out / "truth_atoms.nc")
    pp = config.preprocess
    px = float(series.attrs["pixel_size"])
    frames = series["frames"].values
    nominal = series["euler"].values
    true_euler = series["true_euler"].values
    n_tilt = len(frames)
    read_noise = float(series.attrs["read_noise"]) * np.sqrt(frames.shape[1])
    model = lattice_model(config)
    spacing = pp.lattice_constant / px
    t = dict.fromkeys(
        (
            "drift",
            "denoise",
            "background",
            "columns",
            "track+angles",
            "bias",
            "vibration",
            "deconvolve",
        ),
        0.0,
    )
    rows = {}

    def timed(name, func, *a, **k):
        start = time.perf_counter()
        value = func(*a, **k)
        t[name] += time.perf_counter() - start
        return value

    drift_err, gain, bg_res, bg_res_plain = [], [], [], []
    summed, subtracted, columns, intensity = [], [], [], []
    for j in range(n_tilt):
        est = timed(
            "drift",
            estimate_drift,
            frames[j],
            max_step=pp.drift_max_step,
            lowpass=pp.drift_lowpass,
            refine=pp.drift_refine,
        )
        s = timed("drift", correct_frames, frames[j], est.velocity)
        drift_err.append(est.drift - series["true_drift"].values[j])
        clean = series["clean_images"].values[j] + series["true_background"].values[j]
        d = timed("denoise", denoise_image, s, read_noise=read_noise, method=pp.denoise)
        gain.append((psnr(s, clean), psnr(d, clean)))
        ref = reference_image(model, nominal[j], shape=(96, 96), pixel_size=px)
        rho = timed("background", hollow_fraction, ref, spacing=spacing)
        bg = timed(
            "background",
            estimate_background,
            d,
            spacing=spacing,
            hollow=rho,
            smoothing=pp.background_smoothing,
        )
        plain = estimate_background(
            d, spacing=spacing, hollow=0.0, smoothing=pp.background_smoothing, vacuum=0.0
        )
        tb = series["true_background"].values[j]
        bg_res.append(np.sqrt(np.mean((bg.background - tb) ** 2)) / tb.mean())
        bg_res_plain.append(np.sqrt(np.mean((plain.background - tb) ** 2)) / tb.mean())
        sub = d - bg.background
        fit = timed(
            "columns",
            find_metal_columns,
            sub,
            lattice_constant=spacing,
            threshold=pp.column_threshold,
        )
        summed.append(s - bg.background)
        subtracted.append(sub)
        columns.append(fit.position)
        intensity.append(fit.intensity)
    start = time.perf_counter()
    tracks = track_columns(
        columns,
        np.array(subtracted),
        nominal,
        spacing=spacing,
        tolerance=pp.track_tolerance,
        min_views=pp.track_min_views,
    )
    cal = calibrate_angles(
        pixel_to_position(tracks.rc, frames.shape[2:], px),
        nominal,
        reference=tracks.reference,
        lattice_constant=pp.lattice_constant,
        outlier=pp.angle_outlier,
    )
    t["track+angles"] += time.perf_counter() - start
    # alignment: the projected 3D centroid of the tracked metals, corrected for fit bias
    centres = position_to_pixel(cal.shift, frames.shape[2:], px)
    bias = np.array(
        [timed("bias", column_bias, model, cal.euler[j], pixel_size=px) for j in range(n_tilt)]
    )
    aligned_centre = centres - bias
    species = truth["species"].values.astype(str)
    metal = truth["position"].values[(species == "Mo") | (species == "W")]
    ref = tracks.reference
    true_ref = position_to_pixel(
        project_points(metal, true_euler[ref]) + series["true_offset"].values[ref],
        frames.shape[2:],
        px,
    )
    _, index = cKDTree(true_ref).query(tracks.rc[ref])
    c3 = metal[index].mean(axis=0)
    true_centre = np.array(
        [
            position_to_pixel(
                project_points(c3[None], true_euler[j])[0] + series["true_offset"].values[j],
                frames.shape[2:],
                px,
            )
            for j in range(n_tilt)
        ]
    )
    align_err = aligned_centre - true_centre
    align_err_nobias = centres - true_centre
    # vibration
    vib = []
    for j in range(n_tilt):
        crop = pp.vibration_crop
        corner = _mos2_crop(columns[j], intensity[j], frames.shape[2:], crop)
        sl = (slice(corner[0], corner[0] + crop), slice(corner[1], corner[1] + crop))
        inside = columns[j] - corner
        keep = (inside >= 0).all(axis=1) & (inside < crop).all(axis=1)
        est = timed(
            "vibration",
            estimate_vibration,
            summed[j][sl],
            model,
            cal.euler[j],
            pixel_size=px,
            columns=inside[keep],
            max_amplitude=pp.vibration_max_amplitude,
        )
        timed(
            "deconvolve",
            deconvolve,
            subtracted[j],
            est,
            pixel_size=px,
            iterations=pp.vibration_iterations,
        )
        vib.append((est.direction, est.amplitude, est.width, est.misfit))
    vib = np.array(vib)
    tdir = series["true_vibration_direction"].values
    tamp = series["true_vibration_amplitude"].values
    ddir = (vib[:, 0] - tdir + 90) % 180 - 90
    damp = vib[:, 1] / tamp - 1
    big = tamp >= 0.1
    gauge = gauge_aligned(cal.euler, true_euler) - true_euler
    gain = np.array(gain)
    rows = [
        (
            "drift per frame, RMS [px]",
            f"{np.sqrt(np.mean(np.square(drift_err))):.4f}",
            "≤ 0.05",
            t["drift"],
        ),
        (
            f"denoise ({pp.denoise}) PSNR gain [dB]",
            f"{np.mean(gain[:, 1] - gain[:, 0]):.2f} ({np.mean(gain[:, 0]):.1f} -> "
            f"{np.mean(gain[:, 1]):.1f})",
            "stated",
            t["denoise"],
        ),
        (
            "background left, RMS / mean [%]",
            f"{100 * np.mean(bg_res):.1f} (plain minima {100 * np.mean(bg_res_plain):.1f})",
            "< 5",
            t["background"],
        ),
        (
            "metal columns found per image",
            f"{np.mean([len(c) for c in columns]):.0f} of {len(metal)}",
            "",
            t["columns"],
        ),
        (
            "angles, gauge-aligned RMS [deg]",
            f"{np.sqrt(np.mean(gauge**2)):.3f}",
            "≤ 0.2",
            t["track+angles"],
        ),
        (
            "angles, sheet frame RMS [deg]",
            f"{np.sqrt(np.mean((cal.euler - true_euler) ** 2)):.3f}",
            "(gauge)",
            0.0,
        ),
        (
            "angles, nominal RMS [deg]",
            f"{np.sqrt(np.mean((nominal - true_euler) ** 2)):.3f}",
            "input",
            0.0,
        ),
        (
            "alignment error RMS [px]",
            f"{np.sqrt(np.mean(align_err**2)):.3f} (no bias "
            f"correction {np.sqrt(np.mean(align_err_nobias**2)):.3f})",
            "≤ 0.1",
            t["bias"],
        ),
        (
            "vibration direction RMS [deg], amp ≥ 0.1 Å",
            f"{np.sqrt(np.mean(ddir[big] ** 2)):.1f} ({big.sum()} tilts)",
            "≤ 5",
            t["vibration"],
        ),
        (
            "vibration amplitude rel. RMS [%], amp ≥ 0.1 Å",
            f"{100 * np.sqrt(np.mean(damp[big] ** 2)):.0f}",
            "≤ 10",
            t["deconvolve"],
        ),
    ]
    print("\nvibration per tilt: true (direction, amplitude) -> estimated")
    for j in range(n_tilt):
        print(
            f"  {j:2d}: ({tdir[j]:6.1f}, {tamp[j]:.3f}) -> ({vib[j, 0]:6.1f}, {vib[j, 1]:.3f}), "
            f"width {vib[j, 2]:.3f} Å, misfit {vib[j, 3]:.3f}"
        )
    print(
        f"\nconfig {args.config}: {n_tilt} tilts x {frames.shape[1]} frames of "
        f"{frames.shape[2]} x {frames.shape[3]} px, {len(cal.positions)} tracked metals"
    )
    print(f"{'step':48s} {'measured':34s} {'target':8s} {'time [s]':>8s}")
    for name, value, target, seconds in rows:
        print(f"{name:48s} {value:34s} {target:8s} {seconds:8.1f}")


if __name__ == "__main__":
    main()
