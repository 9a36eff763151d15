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
from scipy import signal
from scipy.spatial import cKDTree

from hpcaet.config import load_config
from hpcaet.forward import project_atoms
from hpcaet.forward.kernels import probe_b_factor, vibration_kernel
from hpcaet.geometry import pixel_to_position, position_to_pixel, project_points
from hpcaet.io import read_dataset
from hpcaet.pipeline import run_stages
from hpcaet.preprocess import (
    VibrationEstimate,
    calibrate_angles,
    column_bias,
    correct_frames,
    deconvolve,
    denoise_image,
    estimate_background,
    estimate_drift,
    find_metal_columns,
    gauge_aligned,
    hollow_fraction,
    reference_image,
    track_columns,
)
from hpcaet.preprocess.series import (
    calibrate_series,
    lattice_model,
    model_backgrounds,
    vibration_kernels,
)


def psnr(image: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(truth.max() ** 2 / np.mean((image - truth) ** 2)))


def species_weights(
    image, truth, euler, offset, *, pixel_size, probe_fwhm, vibration=None, margin=8
) -> dict[str, float]:
    """Least-squares weight of each species in an image, from the true atoms.

    ``image ≈ Σ_s w_s P_s + c``: ``P_s`` is the linear ADF projection of the true atoms of
    species ``s`` with unit cross-section (their B-factors plus the probe; with
    ``vibration = (direction, amplitude, width)`` also the vibration blur), drawn on a 2x
    finer grid and point-sampled like the simulator; ``c`` absorbs a constant background
    error. On the simulator's ``clean_images`` with the true blur this returns the
    cross-sections of defaults.yaml times the dose to 6 digits.
    """
    species = truth["species"].values.astype(str)
    position = truth["position"].values
    b = truth["b_factor"].values + probe_b_factor(probe_fwhm)
    ny, nx = image.shape
    names = [n for n in ("Mo", "W", "S", "Se") if (species == n).any()]
    inner = (slice(margin, ny - margin), slice(margin, nx - margin))
    columns = []
    for name in names:
        m = species == name
        p = project_atoms(
            position[m],
            1.0,
            b[m],
            np.asarray(euler, float)[None],
            shape=(2 * ny, 2 * nx),
            pixel_size=pixel_size / 2,
            offsets=np.asarray(offset, float)[None],
        )[0]
        if vibration is not None and vibration[1] > 0:
            kernel = vibration_kernel(*vibration, pixel_size=pixel_size / 2)
            p = signal.fftconvolve(p, kernel, mode="same")
        columns.append(p[::2, ::2][inner].ravel())
    a = np.column_stack([*columns, np.ones_like(columns[0])])
    coef = np.linalg.lstsq(a, np.asarray(image, float)[inner].ravel(), rcond=None)[0]
    return dict(zip(names, coef[:-1], strict=True))


def disc_intensity(image, truth, euler, offset, *, pixel_size, radius=0.8, margin=8):
    """Mean summed intensity within ``radius`` [Å] of each true atom's projection, per species.

    Sensitive to the column shape (a sharpening step raises it, a blur lowers it), unlike
    :func:`species_weights`; compare it with the same measurement on ``clean_images``.
    """
    species = truth["species"].values.astype(str)
    rc = position_to_pixel(
        project_points(truth["position"].values, euler) + offset, image.shape, pixel_size
    )
    ny, nx = image.shape
    rows, cols = np.mgrid[0:ny, 0:nx]
    r = radius / pixel_size
    out = {}
    for name in ("Mo", "W", "S", "Se"):
        pick = rc[(species == name) & (rc >= margin).all(1) & (rc[:, 0] < ny - margin)]
        pick = pick[pick[:, 1] < nx - margin]
        if len(pick):
            sums = [image[(rows - p[0]) ** 2 + (cols - p[1]) ** 2 <= r**2].sum() for p in pick]
            out[name] = float(np.mean(sums))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--out", default="/tmp/bench_preprocess")
    parser.add_argument("--denoise", default=None, help="override preprocess.denoise")
    args = parser.parse_args(argv)
    overrides = {"preprocess": {"denoise": args.denoise}} if args.denoise else None
    config = load_config(args.config, overrides=overrides)
    out = Path(args.out)
    # resumes only a simulation of this very config (the outputs carry its hash)
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
    spacing = model.lattice_constant / px
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
    summed, subtracted, columns, intensity, raws, denoised = [], [], [], [], [], []
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
        raws.append(s)
        denoised.append(d)
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
    t["track+angles"] += time.perf_counter() - start
    # the previous calibration (columns as fitted), for comparison
    plain_cal = calibrate_angles(
        pixel_to_position(tracks.rc, frames.shape[2:], px),
        nominal,
        reference=tracks.reference,
        lattice_constant=model.lattice_constant,
        outlier=pp.angle_outlier,
    )
    cal, bias_applied = timed(
        "track+angles",
        calibrate_series,
        tracks,
        columns,
        intensity,
        nominal,
        config,
        shape=frames.shape[2:],
        pixel_size=px,
    )
    # alignment: the projected 3D centroid of the tracked metals, corrected for fit bias
    # (already in cal.shift when the per-species bias was applied to the columns)
    centres = position_to_pixel(cal.shift, frames.shape[2:], px)
    plain_centres = position_to_pixel(plain_cal.shift, frames.shape[2:], px)
    bias = np.array(
        [timed("bias", column_bias, model, cal.euler[j], pixel_size=px) for j in range(n_tilt)]
    )
    aligned_centre = centres if bias_applied else centres - bias
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
    align_err_nobias = plain_centres - true_centre
    # vibration: the stage's kernel estimate (pp.vibration_model), then deconvolution
    start = time.perf_counter()
    per_tilt = [
        {
            "summed": raws[j],
            "background": raws[j] - summed[j],
            "columns": columns[j],
            "intensity": intensity[j],
        }
        for j in range(n_tilt)
    ]
    kernels, _ = vibration_kernels(per_tilt, cal.euler, centres, config, px, calibration=cal)
    t["vibration"] += time.perf_counter() - start
    # the background refitted with the sheet model (where the vacuum allows)
    start = time.perf_counter()
    refits = model_backgrounds(per_tilt, cal, tracks, kernels, config, pixel_size=px)
    t["background (sheet model)"] = time.perf_counter() - start
    bg_final = []
    for j, fit in enumerate(refits):
        tb = series["true_background"].values[j]
        final = raws[j] - summed[j] if fit is None else fit.background
        bg_final.append(np.sqrt(np.mean((final - tb) ** 2)) / tb.mean())
        summed[j] = raws[j] - final
        subtracted[j] = denoised[j] - final
    n_model = sum(f is not None for f in refits)
    vib, contrast = [], {}
    for j in range(n_tilt):
        est = VibrationEstimate(*(float(v) for v in kernels[j]))
        deconvolved = timed(
            "deconvolve",
            deconvolve,
            subtracted[j],
            est,
            pixel_size=px,
            iterations=pp.vibration_iterations,
        )
        vib.append((est.direction, est.amplitude, est.width, est.misfit))
        # contrast of the processed images: linear (drift-corrected minus background,
        # fitted with the true blur) and nonlinear (denoised, deconvolved, no blur)
        blur = tuple(
            float(series[f"true_vibration_{k}"].values[j])
            for k in ("direction", "amplitude", "width")
        )
        geometry = (truth, true_euler[j], series["true_offset"].values[j])
        options = dict(pixel_size=px, probe_fwhm=config.imaging.probe_fwhm)
        clean_j = series["clean_images"].values[j]
        for name, image, v in (
            ("linear", summed[j], blur),
            ("denoised", subtracted[j], blur),
            ("images", deconvolved, None),
            ("clean", clean_j, blur),
        ):
            w = species_weights(image, *geometry, vibration=v, **options)
            d = disc_intensity(image, *geometry, pixel_size=px)
            contrast.setdefault(name, []).append(
                (
                    w.get("W", np.nan) / w["Mo"],
                    w.get("Se", np.nan) / w["S"],
                    d.get("W", np.nan) / d["Mo"],
                    d.get("Se", np.nan) / d["S"],
                )
            )
    vib = np.array(vib)
    tdir = series["true_vibration_direction"].values
    tamp = series["true_vibration_amplitude"].values
    ddir = (vib[:, 0] - tdir + 90) % 180 - 90
    damp = vib[:, 1] / tamp - 1
    big = tamp >= 0.1
    gauge = gauge_aligned(cal.euler, true_euler) - true_euler
    gauge_plain = gauge_aligned(plain_cal.euler, true_euler) - true_euler
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
            f"{100 * np.mean(bg_final):.1f} (sheet model on {n_model}/{n_tilt} tilts; "
            f"hexagon minima {100 * np.mean(bg_res):.1f}, plain minima "
            f"{100 * np.mean(bg_res_plain):.1f})",
            "< 5",
            t["background"] + t["background (sheet model)"],
        ),
        (
            "metal columns found per image",
            f"{np.mean([len(c) for c in columns]):.0f} of {len(metal)}",
            "",
            t["columns"],
        ),
        (
            "angles, gauge-aligned RMS [deg]",
            f"{np.sqrt(np.mean(gauge**2)):.3f} (no species bias "
            f"{np.sqrt(np.mean(gauge_plain**2)):.3f})",
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
            f"vibration ({pp.vibration_model}) direction RMS [deg], amp ≥ 0.1 Å",
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
    cs = config.species.cross_section
    rows.append(
        (
            "contrast W/Mo, Se/S: LS weights | 0.8 Å discs",
            f"truth {cs['W'] / cs['Mo']:.2f}, {cs['Se'] / cs['S']:.2f}",
            "",
            0.0,
        )
    )
    for name, label in (
        ("linear", "linear_images"),
        ("denoised", "denoised only"),
        ("images", "images (denoised + LR)"),
        ("clean", "clean_images (truth)"),
    ):
        c = np.nanmean(contrast[name], axis=0)
        rows.append(
            (
                f"  {label}",
                f"{c[0]:.2f}, {c[1]:.2f} | {c[2]:.2f}, {c[3]:.2f}",
                "",
                0.0,
            )
        )
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
