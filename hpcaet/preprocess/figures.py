"""Before/after figures of every processing step (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

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
    return [
        _drift(series, processed, steps, j, folder / "preprocess_drift.png"),
        _pair(
            steps["summed"][j],
            steps["denoised"][j],
            "drift-corrected sum",
            "denoised",
            f"denoising, tilt {j}",
            folder / "preprocess_denoise.png",
        ),
        _background(steps, processed, j, folder / "preprocess_background.png"),
        _angles(processed, steps, folder / "preprocess_angles.png"),
        _pair(
            steps["subtracted"][j],
            steps["deconvolved"][j],
            "before",
            "deconvolved",
            _vibration_title(processed, j),
            folder / "preprocess_vibration.png",
        ),
        _alignment(processed, steps, folder / "preprocess_alignment.png"),
    ]


def _drift(series, processed, steps, j, path):
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    a.imshow(series["frames"].values[j].sum(axis=0), cmap="gray")
    a.set_title(f"tilt {j}: plain sum of the frames")
    b.imshow(steps["summed"][j], cmap="gray")
    b.set_title("drift- and scan-corrected sum")
    drift = processed["drift"].values
    for k in range(drift.shape[0]):
        line = c.plot(drift[k, :, 0], drift[k, :, 1], "-o", ms=2, lw=1)[0]
        if "true_drift" in processed:
            t = processed["true_drift"].values[k]
            c.plot(t[:, 0], t[:, 1], "x", ms=4, color=line.get_color())
    c.set(
        xlabel="drift x [pixel]",
        ylabel="drift y [pixel]",
        title="estimated drift per frame (x: truth)",
    )
    c.set_aspect("equal")
    for ax in (a, b):
        ax.set_axis_off()
    return _save(fig, path)


def _pair(before, after, t1, t2, title, path):
    fig = Figure(figsize=(9, 4.6), layout="constrained")
    a, b = fig.subplots(1, 2)
    lo, hi = np.percentile(after, [0.5, 99.5])
    a.imshow(before, cmap="gray", vmin=lo, vmax=hi)
    b.imshow(after, cmap="gray", vmin=lo, vmax=hi)
    a.set_title(t1)
    b.set_title(t2)
    for ax in (a, b):
        ax.set_axis_off()
    fig.suptitle(title)
    return _save(fig, path)


def _background(steps, processed, j, path):
    fig = Figure(figsize=(13, 4.4), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    a.imshow(steps["denoised"][j], cmap="gray")
    a.set_title(f"tilt {j}: denoised")
    im = b.imshow(steps["background"][j], cmap="viridis")
    fig.colorbar(im, ax=b, shrink=0.8)
    b.set_title("background (RBF of hexagon minima)")
    c.imshow(steps["subtracted"][j], cmap="gray")
    c.set_title("subtracted")
    for ax in (a, b, c):
        ax.set_axis_off()
    return _save(fig, path)


def _angles(processed, steps, path):
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    a, b = fig.subplots(1, 2)
    cal = processed["euler"].values
    nom = processed["nominal_euler"].values
    tilts = np.arange(len(cal))
    for k, name in enumerate("zyx"):
        line = a.plot(tilts, cal[:, k], "o-", label=f"{name} calibrated")[0]
        a.plot(tilts, nom[:, k], "s", mfc="none", color=line.get_color(), label=f"{name} nominal")
        if "true_euler" in processed:
            a.plot(tilts, processed["true_euler"].values[:, k], "x", color=line.get_color())
    a.set(xlabel="tilt", ylabel="angle [deg]", title="Euler angles (x: truth)")
    a.legend(fontsize=7, ncol=3)
    b.bar(tilts, processed["angle_residual"].values)
    b.set(xlabel="tilt", ylabel="RMS residual [Å]", title="equation (1) residual per image")
    return _save(fig, path)


def _vibration_title(processed, j):
    d = float(processed["vibration_direction"].values[j])
    amp = float(processed["vibration_amplitude"].values[j])
    return f"vibration deconvolution, tilt {j}: direction {d:.0f}°, amplitude {amp:.2f} Å"


def _alignment(processed, steps, path):
    fig = Figure(figsize=(9, 4.6), layout="constrained")
    a, b = fig.subplots(1, 2)
    tracks = steps["tracks"]
    every = np.isfinite(tracks).all(axis=(0, 2))
    before = tracks[:, every].mean(axis=1) if every.any() else np.full((len(tracks), 2), np.nan)
    shift = processed["alignment_shift"].values[:, ::-1]
    after = before + shift
    ny, nx = processed.sizes["y"], processed.sizes["x"]
    a.plot(before[:, 1] - nx // 2, before[:, 0] - ny // 2, "o", label="before")
    a.plot(after[:, 1] - nx // 2, after[:, 0] - ny // 2, "x", label="after")
    a.set(
        xlabel="x [pixel]",
        ylabel="y [pixel]",
        title="centre of mass of the tracked metals\nrelative to the image centre",
    )
    a.legend()
    a.set_aspect("equal")
    j = int(np.argmax(np.hypot(*shift.T)))
    b.imshow(processed["images"].values[j], cmap="gray")
    b.plot([nx // 2], [ny // 2], "r+", ms=14)
    b.set_title(f"aligned image, tilt {j}")
    b.set_axis_off()
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=80)
    return path
