"""Figures of an analysed EELS line scan (PNG, no global matplotlib state).

Like the paper's Fig. S5 (background fit), Fig. 4C (spectra along the scan),
Fig. S6B (cluster index along the scan) and Figs. 4D / S7 (group means with the
fitted Gaussians).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hpcaet.eels.background import power_law
from hpcaet.eels.peaks import gaussian

__all__ = ["plot_background", "plot_line_scan", "plot_clusters", "plot_group_fits"]

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
    for lo, hi in windows:
        ax.axvspan(lo, hi, color="tab:blue", alpha=0.12)
    above = e[show] >= windows.min()
    top = 1.3 * float(np.max(y[show][above]))
    ax.set_ylim(max(float(np.min(10 * (y[show] - law)[above])), -0.3 * top), top)
    ax.set(
        xlabel="energy loss [meV]",
        ylabel="counts",
        title="power-law background from two windows (cf. Fig. S5)",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_line_scan(ds: xr.Dataset, path: str | Path) -> Path:
    """Background-subtracted spectra against position (image), cf. Fig. 4C."""
    e, sel = _fit_window(ds)
    signal = (ds["spectra"] - ds["background"]).values[:, sel]
    pos = ds["position"].values
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    vmax = float(np.percentile(signal, 99))
    mesh = ax.pcolormesh(pos, e[sel], signal.T, shading="nearest", cmap="magma", vmin=0, vmax=vmax)
    fig.colorbar(mesh, ax=ax, label="counts")
    _boundaries(ax, ds)
    ax.set(
        xlabel="position [nm]",
        ylabel="energy loss [meV]",
        title="background-subtracted spectra along the scan (cf. Fig. 4C)",
    )
    return _save(fig, path)


def plot_clusters(ds: xr.Dataset, path: str | Path) -> Path:
    """Cluster index of each spectrum along the scan with the region boundaries, cf. Fig. S6B."""
    pos = ds["position"].values
    fig = Figure(figsize=(6.5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(pos, ds["cluster"].values + 1, "o", color="k", ms=5, label="k-means cluster")
    if "true_region" in ds:
        ax.plot(pos, ds["true_region"].values + 1, "x", color="tab:red", ms=6, label="true region")
    _boundaries(ax, ds)
    names = _names(ds)
    ax.set_yticks(np.arange(1, len(names) + 1), [f"{i + 1} ({n})" for i, n in enumerate(names)])
    ax.set(xlabel="position [nm]", title="cluster index along the scan (cf. Fig. S6B)")
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
        for c, w, h in peaks:
            ax.plot(e[sel], gaussian(e[sel], c, w, h), lw=0.8, color="grey")
            ax.axvline(c, color=colour, lw=0.6, ls=":")
        if "true_peak_centre" in ds and g < ds.sizes.get("region", 0):
            for c in ds["true_peak_centre"].values[g]:
                if np.isfinite(c):
                    ax.axvline(c, color="tab:blue", lw=0.6, ls="--")
        table = "\n".join(
            f"{c:.1f} ± {ce:.1f}"
            for c, ce in zip(
                ds["peak_centre"].values[g], ds["peak_centre_error"].values[g], strict=False
            )
        )
        ax.text(0.98, 0.97, table, transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set(xlabel="energy loss [meV]", title=names[g])
    axes[0].set_ylabel("counts (background removed)")
    axes[0].legend(fontsize=8, loc="upper left")
    return _save(fig, path)
