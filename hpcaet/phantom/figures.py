"""Figures of the phantom and of a tilt series (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hpcaet.plotting import save_figure, scatter_species

__all__ = ["plot_phantom", "plot_tilt_series"]


def plot_phantom(model: xr.Dataset, path: str | Path) -> Path:
    """Top view coloured by species (vacancies as black crosses) and a side view."""
    pos = model["position"].values
    species = model["species"].values.astype(str)
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    top, side = fig.subplots(1, 2, width_ratios=[1, 1])
    scatter_species(top, side, pos, species)
    top.set_title("phantom, top view")
    top.legend(loc="upper right", fontsize=8)
    side.set_title("side view (ripple)")
    return save_figure(fig, path)


def plot_tilt_series(series: xr.Dataset, path: str | Path) -> Path:
    """One panel per tilt: the frame sum (or the processed image) with its angles."""
    data = series["frames"].sum("frame") if "frames" in series else series["images"]
    n = data.sizes["tilt"]
    cols = min(n, 6)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(2.6 * cols, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    angles = (series["true_euler"] if "true_euler" in series else series["euler"]).values
    for j, ax in enumerate(axes):
        ax.set_axis_off()
        if j >= n:
            continue
        ax.imshow(data.isel(tilt=j).values, cmap="gray")
        z, y, x = angles[j]
        ax.set_title(f"#{j + 1} ({z:.1f}, {y:.1f}, {x:.1f})°", fontsize=8)
    return save_figure(fig, path)
