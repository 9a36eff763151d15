"""Figure of a reconstructed volume (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

__all__ = ["plot_volume"]


def plot_volume(volume: xr.Dataset, path: str | Path) -> Path:
    """Top view (sum along z), a side view (sum along y) and the iteration histories."""
    density = volume["density"]
    z, y, x = (volume[c].values for c in ("z", "y", "x"))
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    top, side, hist = fig.subplots(1, 3, width_ratios=[1, 1.3, 0.9])
    top.imshow(
        density.sum("z").values, cmap="magma", origin="lower", extent=(x[0], x[-1], y[0], y[-1])
    )
    top.set(
        xlabel="x [Å]", ylabel="y [Å]", title=f"{volume.attrs.get('algorithm', '')}: sum along z"
    )
    side.imshow(
        density.sum("y").values,
        cmap="magma",
        origin="lower",
        aspect="auto",
        extent=(x[0], x[-1], z[0], z[-1]),
    )
    side.set(xlabel="x [Å]", ylabel="z [Å]", title="sum along y")
    if "error_history" in volume:
        it = np.arange(1, volume.sizes["iteration"] + 1)
        hist.semilogy(it, volume["error_history"].values, label="error")
        if "rfree_history" in volume:
            hist.semilogy(it, volume["rfree_history"].values, label="R-free")
        hist.legend()
    hist.set(xlabel="iteration", ylabel="relative misfit (window mean)", title="convergence")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
