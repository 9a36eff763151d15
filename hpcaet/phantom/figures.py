"""Figures of the phantom and of a tilt series (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hpcaet.plotting import colorbar, save_figure, scatter_species, show_image

__all__ = ["plot_phantom", "plot_tilt_series"]


def plot_phantom(model: xr.Dataset, path: str | Path) -> Path:
    """Top view coloured by species (vacancies as black crosses) and a side view."""
    pos = model["position"].values
    species = model["species"].values.astype(str)
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    top, side = fig.subplots(1, 2, width_ratios=[1, 1])
    scatter_species(top, side, pos, species)
    top.set_title("phantom, top view")
    # below the panels, so that it covers no atom
    fig.legend(*top.get_legend_handles_labels(), loc="outside lower center", ncols=5, fontsize=8)
    side.set_title("side view (ripple; z axis stretched)")
    return save_figure(fig, path)


def plot_tilt_series(series: xr.Dataset, path: str | Path) -> Path:
    """One panel per tilt: the frame sum (or the processed image) with its angles,
    on one intensity scale (one colour bar), each with a scale bar."""
    data = series["frames"].sum("frame") if "frames" in series else series["images"]
    n = data.sizes["tilt"]
    cols = min(n, 6)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(2.6 * cols, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    angles = (series["true_euler"] if "true_euler" in series else series["euler"]).values
    pixel = float(series.attrs.get("pixel_size", 1.0))
    lo, hi = np.percentile(data.values, [0.5, 99.9])
    art = None
    for j, ax in enumerate(axes):
        ax.set_axis_off()
        if j >= n:
            continue
        image = data.isel(tilt=j).values
        art = show_image(fig, ax, image, pixel_size=pixel, label=None, vmin=lo, vmax=hi)
        z, y, x = angles[j]
        ax.set_title(f"#{j + 1} (Z, Y, X) = ({z:.1f}, {y:.1f}, {x:.1f})°", fontsize=8)
    what = "sum of the frames" if "frames" in series else "image"
    if art is not None:
        colorbar(fig, art, list(axes), f"intensity, {what} [counts]", shrink=0.6)
    return save_figure(fig, path)
