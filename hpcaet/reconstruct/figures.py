"""Figure of a reconstructed volume (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hpcaet.plotting import colorbar, save_figure

__all__ = ["plot_volume"]


def plot_volume(volume: xr.Dataset, path: str | Path) -> Path:
    """Top view (density integrated along z), side view (along y), iteration histories.

    Both views are in Å on equal axes (z is not stretched), each with a colour bar of
    the integrated density: the volume's density [1/Å] integrated over a length [Å]
    is dimensionless (the units of the images it was reconstructed from).

    Parameters
    ----------
    volume : xarray.Dataset
        Volume.
    path : str or Path
        PNG file to write.

    Returns
    -------
    Path
    """
    density = volume["density"]
    z, y, x = (volume[c].values for c in ("z", "y", "x"))
    size = float(volume.attrs.get("voxel_size", 1.0))  # [Å]
    step = {
        c: float(abs(v[1] - v[0])) if len(v) > 1 else size
        for c, v in zip("zyx", (z, y, x), strict=True)
    }
    half = {c: step[c] / 2 for c in "zyx"}
    fig = Figure(figsize=(14, 4.6), layout="constrained")
    top, side, hist = fig.subplots(1, 3, width_ratios=[1, 1.5, 0.9])
    art = top.imshow(
        density.sum("z").values * step["z"],
        cmap="magma",
        origin="lower",
        extent=(x[0] - half["x"], x[-1] + half["x"], y[0] - half["y"], y[-1] + half["y"]),
        interpolation="nearest",
    )
    colorbar(fig, art, top, "∫ density dz (dimensionless)")
    top.set_aspect("equal")
    top.set(
        xlabel="x [Å]",
        ylabel="y [Å]",
        title=f"{volume.attrs.get('algorithm', '')}: density integrated along z",
    )
    art = side.imshow(
        density.sum("y").values * step["y"],
        cmap="magma",
        origin="lower",
        extent=(x[0] - half["x"], x[-1] + half["x"], z[0] - half["z"], z[-1] + half["z"]),
        interpolation="nearest",
    )
    colorbar(fig, art, side, "∫ density dy (dimensionless)", location="bottom", shrink=0.6)
    side.set_aspect("equal")  # z on the same scale as x
    side.set(xlabel="x [Å]", ylabel="z [Å]", title="side view: integrated along y")
    if "error_history" in volume:
        it = np.arange(1, volume.sizes["iteration"] + 1)
        hist.semilogy(it, volume["error_history"].values, label="error (fitted data)")
        if "rfree_history" in volume:
            hist.semilogy(it, volume["rfree_history"].values, label="R-free (withheld data)")
        hist.legend(fontsize=8)
    hist.set(
        xlabel="iteration",
        ylabel="relative misfit, mean over windows",
        title="convergence",
    )
    return save_figure(fig, path)
