"""Figures of an analysed EELS line scan or spectrum image (PNG, no global matplotlib state).

Like the paper's Fig. S5 (background fit, with the windows used), Fig. 4C (spectra along
the scan; for a spectrum image the map of the subtracted intensity), Fig. S6B (cluster
index along the scan; for a spectrum image the cluster map with its region boundaries)
and Figs. 4D / S7 (group means with the fitted Gaussians); for a spectrum image also the
maps of each fitted peak (intensity, centre, width) with axes in nm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hpcaet.eels.background import power_law
from hpcaet.eels.peaks import gaussian

__all__ = [
    "plot_background",
    "plot_line_scan",
    "plot_clusters",
    "plot_group_fits",
    "plot_peak_maps",
]

_COLOURS = ("tab:green", "tab:orange", "tab:red", "tab:blue", "tab:purple", "tab:brown")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _names(ds: xr.Dataset) -> list[str]:
    if "group_name" in ds.coords:
        return [str(v) for v in ds["group_name"].values]
    return [f"group {g}" for g in range(ds.sizes["group"])]


def _position_label(ds: xr.Dataset) -> str:
    return "position [nm]" if ds.attrs.get("position_calibrated", 1) else "position [scan index]"


def _extent(ds: xr.Dataset) -> tuple[list[float], str]:
    """imshow extent (pixel edges) of the (y, x) maps and the axis unit."""
    y, x = ds["y"].values, ds["x"].values
    dy = float(y[1] - y[0]) if y.size > 1 else 1.0
    dx = float(x[1] - x[0]) if x.size > 1 else 1.0
    extent = [x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2]
    return extent, ds["x"].attrs.get("units", "pixel")


def _region_edges(ax, ds: xr.Dataset, colour: str) -> None:
    """Draw the pixel edges between different regions of ``region_map``."""
    from matplotlib.collections import LineCollection

    r = ds["region_map"].values
    extent, _ = _extent(ds)
    x0, y0 = extent[0], extent[3]
    dx = (extent[1] - extent[0]) / r.shape[1]
    dy = (extent[2] - extent[3]) / r.shape[0]
    segments = []
    for i, j in zip(*np.nonzero(r[:, 1:] != r[:, :-1]), strict=True):
        x = x0 + (j + 1) * dx
        segments.append([(x, y0 + i * dy), (x, y0 + (i + 1) * dy)])
    for i, j in zip(*np.nonzero(r[1:, :] != r[:-1, :]), strict=True):
        y = y0 + (i + 1) * dy
        segments.append([(x0 + j * dx, y), (x0 + (j + 1) * dx, y)])
    ax.add_collection(LineCollection(segments, colors=colour, linewidths=0.6))


def _map_axes(ax, unit: str) -> None:
    ax.set(xlabel=f"x [{unit}]", ylabel=f"y [{unit}]", aspect="equal")


def _boundaries(ax, ds: xr.Dataset) -> None:
    if "region_starts" in ds.attrs:
        pos = ds["position"].values
        for s in np.atleast_1d(ds.attrs["region_starts"])[1:]:
            ax.axvline(0.5 * (pos[s - 1] + pos[s]), color="gold", ls="--", lw=1.2)


def _fit_window(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Energy axis [meV] and the boolean mask of its points inside ``attrs["fit_range"]``."""
    e = ds["energy"].values
    lo, hi = np.asarray(ds.attrs["fit_range"], float)
    return e, (e >= lo) & (e <= hi)


def plot_background(ds: xr.Dataset, path: str | Path, *, index: int | None = None) -> Path:
    """One spectrum, its power-law fit with the windows shaded, and the subtracted ×10.

    ``index`` defaults to the middle of the second group (the interface), as Fig. S5.
    """
    if index is None:
        groups = ds["group_index"].values if "group_index" in ds else np.zeros(1, int)
        members = np.flatnonzero(groups == min(1, groups.max()))
        index = int(members[len(members) // 2]) if members.size else 0
    e = ds["energy"].values
    y = ds["spectra"].values[index]
    windows = np.reshape(ds.attrs["windows"], (-1, 2))
    show = (e >= 0.5 * windows.min()) & (e <= 1.3 * windows.max())
    law = power_law(
        e[show], ds["background_amplitude"].values[index], ds["background_exponent"].values[index]
    )[0]
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(e[show], y[show], lw=1, color="k", label=f"spectrum #{index + 1}")
    ax.plot(
        e[show],
        law,
        lw=1.5,
        color="tab:blue",
        label=f"A·E^-r, r = {float(ds['background_exponent'][index]):.2f}",
    )
    ax.plot(
        e[show], 10 * (y[show] - law), lw=1, color="tab:orange", label="background-subtracted ×10"
    )
    text = ", ".join(f"{lo:g}–{hi:g}" for lo, hi in windows)
    for i, (lo, hi) in enumerate(windows):
        label = f"fit windows {text} meV" if i == 0 else None
        ax.axvspan(lo, hi, color="tab:blue", alpha=0.15, label=label)
    above = e[show] >= windows.min()
    top = 1.3 * float(np.max(y[show][above]))
    ax.set_ylim(max(float(np.min(10 * (y[show] - law)[above])), -0.3 * top), top)
    estimator = ds.attrs.get("background_estimator", "poisson")
    ax.set(
        xlabel="energy loss [meV]",
        ylabel="intensity [counts]",
        title=f"power-law background from {len(windows)} windows, {estimator} fit (cf. Fig. S5)",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_line_scan(ds: xr.Dataset, path: str | Path) -> Path:
    """Background-subtracted spectra against position (image), cf. Fig. 4C.

    For a spectrum image: the map of the background-subtracted intensity over the fit
    range, with the region boundaries.
    """
    if "signal_map" in ds:
        extent, unit = _extent(ds)
        fig = Figure(figsize=(5.8, 4.8), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(ds["signal_map"].values, extent=extent, cmap="magma")
        lo, hi = np.asarray(ds.attrs["fit_range"], float)
        fig.colorbar(im, ax=ax, label=f"subtracted intensity {lo:g}–{hi:g} meV [counts·meV]")
        _region_edges(ax, ds, "w")
        _map_axes(ax, unit)
        ax.set_title("background-subtracted phonon intensity (cf. Fig. 4C)")
        return _save(fig, path)
    e, sel = _fit_window(ds)
    signal = (ds["spectra"] - ds["background"]).values[:, sel]
    pos = ds["position"].values
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    vmax = float(np.percentile(signal, 99))
    mesh = ax.pcolormesh(pos, e[sel], signal.T, shading="nearest", cmap="magma", vmin=0, vmax=vmax)
    fig.colorbar(mesh, ax=ax, label="background-subtracted intensity [counts]")
    _boundaries(ax, ds)
    ax.set(
        xlabel=_position_label(ds),
        ylabel="energy loss [meV]",
        title="background-subtracted spectra along the scan (cf. Fig. 4C)",
    )
    return _save(fig, path)


def plot_clusters(ds: xr.Dataset, path: str | Path) -> Path:
    """Cluster index of each spectrum along the scan with the region boundaries, cf. Fig. S6B.

    For a spectrum image: the cluster map, with the boundaries of its connected regions.
    """
    if "cluster_map" in ds:
        from matplotlib.colors import BoundaryNorm, ListedColormap

        extent, unit = _extent(ds)
        names = _names(ds)
        k = len(names)
        cmap = ListedColormap([_COLOURS[g % len(_COLOURS)] for g in range(k)])
        fig = Figure(figsize=(5.8, 4.8), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(
            ds["cluster_map"].values,
            extent=extent,
            cmap=cmap,
            norm=BoundaryNorm(np.arange(k + 1) - 0.5, k),
        )
        bar = fig.colorbar(im, ax=ax, ticks=np.arange(k), label="k-means cluster [index]")
        bar.ax.set_yticklabels(names)
        _region_edges(ax, ds, "k")
        _map_axes(ax, unit)
        n_regions = int(ds["region_map"].max()) + 1
        ax.set_title(f"clusters; {n_regions} connected regions outlined (cf. Fig. S6B)")
        return _save(fig, path)
    pos = ds["position"].values
    fig = Figure(figsize=(6.5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(pos, ds["cluster"].values + 1, "o", color="k", ms=5, label="k-means cluster")
    if "true_region" in ds:
        ax.plot(pos, ds["true_region"].values + 1, "x", color="tab:red", ms=6, label="true region")
    _boundaries(ax, ds)
    names = _names(ds)
    ax.set_yticks(np.arange(1, len(names) + 1), [f"{i + 1} ({n})" for i, n in enumerate(names)])
    ax.set(
        xlabel=_position_label(ds),
        ylabel="k-means cluster [index]",
        title="cluster index along the scan (cf. Fig. S6B)",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_group_fits(ds: xr.Dataset, path: str | Path) -> Path:
    """Each group's mean spectrum with its fitted Gaussians and centres, cf. Figs. 4D, S7."""
    e, sel = _fit_window(ds)
    names = _names(ds)
    n = ds.sizes["group"]
    fig = Figure(figsize=(4.2 * n, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharey=False))
    joint = ds.attrs.get("peak_background") == "joint"
    for g, ax in enumerate(axes):
        data = ds["raw_average" if joint else "average"].values[g, sel]
        corrected = "delocalised_leak" in ds
        if corrected:
            data = data - ds["delocalised_leak"].values[g, sel]
        model = ds["fit"].values[g, sel]
        peaks = [
            (c, w, h)
            for c, w, h in zip(
                ds["peak_centre"].values[g],
                ds["peak_width"].values[g],
                ds["peak_height"].values[g],
                strict=False,
            )
            if np.isfinite(c)
        ]
        base = model - sum(gaussian(e[sel], *p) for p in peaks) if peaks else 0 * model
        colour = _COLOURS[g % len(_COLOURS)]
        label = "group mean − neighbours' share" if corrected else "group mean"
        ax.plot(e[sel], data - base, ".", ms=2.5, color=colour, label=label)
        ax.plot(e[sel], model - base, color="k", lw=1.2, label="fit")
        for i, (c, w, h) in enumerate(peaks):
            first = i == 0
            ax.plot(
                e[sel],
                gaussian(e[sel], c, w, h),
                lw=0.8,
                color="grey",
                label="fitted Gaussians" if first else None,
            )
            ax.axvline(c, color=colour, lw=0.6, ls=":", label="fitted centres" if first else None)
        if "true_peak_centre" in ds and g < ds.sizes.get("region", 0):
            true = [c for c in ds["true_peak_centre"].values[g] if np.isfinite(c)]
            for i, c in enumerate(true):
                label = "true centres" if i == 0 else None
                ax.axvline(c, color="tab:blue", lw=0.6, ls="--", label=label)
        table = "\n".join(
            f"{c:.1f} ± {ce:.1f}"
            for c, ce in zip(
                ds["peak_centre"].values[g], ds["peak_centre_error"].values[g], strict=False
            )
        )
        ax.text(0.98, 0.97, table, transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set(
            xlabel="energy loss [meV]",
            ylabel="intensity, background removed [counts]",
            title=names[g],
        )
    # one legend below the panels, where it covers no data
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    return _save(fig, path)


def plot_peak_maps(ds: xr.Dataset, path: str | Path) -> Path:
    """Maps of every fitted peak of a spectrum image: intensity, centre and width (σ).

    Row k shows peak k of each pixel's group (its own fit, started from the group's);
    pixels where the fit does not determine the peak are blank (grey). Each map has
    its colour bar with quantity and unit; axes in nm.
    """
    extent, unit = _extent(ds)
    n = ds.sizes["peak"]
    quantities = (
        ("peak_intensity_map", "intensity [counts·meV]", "magma"),
        ("peak_centre_map", "centre [meV]", "viridis"),
        ("peak_width_map", "σ [meV]", "cividis"),
    )
    fig = Figure(figsize=(11.0, 3.2 * n), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, 3))
    centres = ds["peak_centre"].values
    for k in range(n):
        for col, (name, label, cmap) in enumerate(quantities):
            ax = axes[k, col]
            values = ds[name].values[k]
            ax.set_facecolor("0.8")
            finite = values[np.isfinite(values)]
            vmin, vmax = np.percentile(finite, [2, 98]) if finite.size else (0, 1)
            im = ax.imshow(values, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax)
            fig.colorbar(im, ax=ax, label=label, shrink=0.85)
            _map_axes(ax, unit)
            mean = np.nanmean(centres[:, k]) if np.isfinite(centres[:, k]).any() else np.nan
            ax.set_title(
                f"peak {k + 1} (groups' mean {mean:.1f} meV): {int(finite.size)} px",
                fontsize=8,
            )
    return _save(fig, path)
