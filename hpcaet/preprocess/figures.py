"""Before/after figures of every processing step (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hpcaet.plotting import colorbar, save_figure, show_image

__all__ = ["plot_preprocess"]


def plot_preprocess(
    series: xr.Dataset, processed: xr.Dataset, steps: dict[str, np.ndarray], folder: str | Path
) -> list[Path]:
    """Write one figure per step into ``folder``; returns their paths.

    Files: ``preprocess_drift.png``, ``preprocess_denoise.png``,
    ``preprocess_background.png``, ``preprocess_angles.png``,
    ``preprocess_vibration.png``, ``preprocess_alignment.png``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    j = int(np.argmax(np.abs(processed["euler"].values[:, 1:]).sum(axis=1)))  # most tilted
    pixel = float(processed.attrs.get("pixel_size", series.attrs.get("pixel_size", 1.0)))
    return [
        _drift(series, processed, steps, j, pixel, folder / "preprocess_drift.png"),
        _pair(
            steps["summed"][j],
            steps["denoised"][j],
            "drift-corrected sum",
            "denoised",
            f"denoising, tilt #{j + 1}",
            pixel,
            folder / "preprocess_denoise.png",
        ),
        _background(steps, j, pixel, folder / "preprocess_background.png"),
        _angles(processed, folder / "preprocess_angles.png"),
        _pair(
            steps["subtracted"][j],
            steps["deconvolved"][j],
            "before",
            "deconvolved",
            _vibration_title(processed, j),
            pixel,
            folder / "preprocess_vibration.png",
        ),
        _alignment(processed, steps, pixel, folder / "preprocess_alignment.png"),
    ]


def _drift(series, processed, steps, j, pixel, path):
    fig = Figure(figsize=(14, 4.6), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    plain = series["frames"].values[j].sum(axis=0)
    lo, hi = np.percentile(steps["summed"][j], [0.5, 99.9])
    show_image(fig, a, plain, pixel_size=pixel, label=None, vmin=lo, vmax=hi)
    a.set_title(f"tilt #{j + 1}: plain sum of the frames")
    art = show_image(fig, b, steps["summed"][j], pixel_size=pixel, label=None, vmin=lo, vmax=hi)
    label = "intensity, sum of the frames [counts]"
    colorbar(fig, art, [a, b], label, location="bottom", shrink=0.5)
    b.set_title("drift- and scan-corrected sum")
    drift = processed["drift"].values
    for k in range(drift.shape[0]):
        line = c.plot(drift[k, :, 0], drift[k, :, 1], "-o", ms=2, lw=1)[0]
        if "true_drift" in processed:
            t = processed["true_drift"].values[k]
            c.plot(t[:, 0], t[:, 1], "x", ms=4, color=line.get_color())
    proxies = [Line2D([], [], color="0.3", marker="o", ms=3, lw=1)]
    names = [f"estimated drift of each frame, one colour per tilt ({drift.shape[0]})"]
    if "true_drift" in processed:
        proxies.append(Line2D([], [], color="0.3", marker="x", lw=0))
        names.append("true drift (simulation)")
    c.legend(proxies, names, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    c.set(xlabel="drift x [pixel]", ylabel="drift y [pixel]", title="drift per frame")
    c.set_aspect("equal", adjustable="datalim")
    return _save(fig, path)


def _pair(before, after, t1, t2, title, pixel, path):
    fig = Figure(figsize=(9.5, 5), layout="constrained")
    a, b = fig.subplots(1, 2)
    lo, hi = np.percentile(after, [0.5, 99.5])
    show_image(fig, a, before, pixel_size=pixel, label=None, vmin=lo, vmax=hi)
    art = show_image(fig, b, after, pixel_size=pixel, label=None, vmin=lo, vmax=hi)
    colorbar(fig, art, [a, b], "intensity [counts] (one scale for both)")
    a.set_title(t1)
    b.set_title(t2)
    fig.suptitle(title)
    return _save(fig, path)


def _background(steps, j, pixel, path):
    fig = Figure(figsize=(14, 4.6), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    lo, hi = np.percentile(steps["denoised"][j], [0.5, 99.9])
    show_image(fig, a, steps["denoised"][j], pixel_size=pixel, label=None, vmin=lo, vmax=hi)
    a.set_title(f"tilt #{j + 1}: denoised")
    show_image(
        fig,
        b,
        steps["background"][j],
        pixel_size=pixel,
        label="background [counts]",
        cmap="viridis",
    )
    b.set_title("background (RBF of hexagon minima)")
    art = show_image(fig, c, steps["subtracted"][j], pixel_size=pixel, label=None, vmin=lo, vmax=hi)
    label = "intensity [counts] (denoised, subtracted)"
    colorbar(fig, art, [a, c], label, location="bottom", shrink=0.5)
    c.set_title("background subtracted")
    return _save(fig, path)


def _angles(processed, path):
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    a, b = fig.subplots(1, 2)
    cal = processed["euler"].values
    nom = processed["nominal_euler"].values
    tilts = np.arange(1, len(cal) + 1)
    for k, name in enumerate("zyx"):
        line = a.plot(tilts, cal[:, k], "o-", label=f"{name} calibrated")[0]
        a.plot(tilts, nom[:, k], "s", mfc="none", color=line.get_color(), label=f"{name} nominal")
        if "true_euler" in processed:
            a.plot(
                tilts,
                processed["true_euler"].values[:, k],
                "x",
                color=line.get_color(),
                label=f"{name} true",
            )
    a.set(xlabel="tilt #", ylabel="Euler angle [deg]", title="Euler angles (Z, Y, X)")
    a.legend(fontsize=7, ncols=3, loc="center left", bbox_to_anchor=(1.01, 0.5))
    b.bar(tilts, processed["angle_residual"].values)
    b.set(xlabel="tilt #", ylabel="RMS residual [Å]", title="equation (1) residual per image")
    return _save(fig, path)


def _vibration_title(processed, j):
    d = float(processed["vibration_direction"].values[j])
    amp = float(processed["vibration_amplitude"].values[j])
    return f"vibration deconvolution, tilt #{j + 1}: direction {d:.0f}°, amplitude {amp:.2f} Å"


def _alignment(processed, steps, pixel, path):
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    a, b = fig.subplots(1, 2)
    tracks = steps["tracks"]
    every = np.isfinite(tracks).all(axis=(0, 2))
    before = tracks[:, every].mean(axis=1) if every.any() else np.full((len(tracks), 2), np.nan)
    shift = processed["alignment_shift"].values[:, ::-1]
    after = before + shift
    ny, nx = processed.sizes["y"], processed.sizes["x"]
    a.plot(before[:, 1] - nx // 2, before[:, 0] - ny // 2, "o", label="before alignment")
    a.plot(after[:, 1] - nx // 2, after[:, 0] - ny // 2, "x", label="after alignment")
    a.set(
        xlabel="x [pixel]",
        ylabel="y [pixel]",
        title="centre of mass of the tracked metals\nrelative to the image centre (one per tilt)",
    )
    a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
    a.set_aspect("equal", adjustable="datalim")
    j = int(np.argmax(np.hypot(*shift.T)))
    show_image(fig, b, processed["images"].values[j], pixel_size=pixel)
    b.plot([nx // 2], [ny // 2], "r+", ms=14, label="image centre")
    b.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.02))
    b.set_title(f"aligned image, tilt #{j + 1}")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    return save_figure(fig, path, dpi=80)
