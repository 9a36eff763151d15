"""Figures of the structure analysis, after Tian et al. Figs. 1D–F, 2B–D and S3.

PNG files through :class:`matplotlib.figure.Figure` (no pyplot, no global state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hpcaet.io import FLAG_EDGE, FLAG_OFF_LAYER
from hpcaet.materials import METALS, VACANCY
from hpcaet.plotting import colorbar, save_figure, species_colours, symmetric_limit
from hpcaet.structure.analysis import StructureAnalysis
from hpcaet.structure.fields import COMPONENTS

__all__ = [
    "plot_structure",
    "plot_interface",
    "plot_ripples",
    "plot_bond_angles",
    "plot_displacements",
    "plot_strain_maps",
]

_KIND_COLOURS = {"zigzag": "tab:red", "armchair": "tab:blue"}
_LAYER_NAMES = ("bottom", "metal", "top")


def plot_structure(
    model: xr.Dataset, analysis: StructureAnalysis, folder: str | Path
) -> list[Path]:
    """Every figure of an analysis into ``folder``; returns the paths written."""
    folder = Path(folder)
    pos = model["position"].values
    species = model["species"].values.astype(str)
    layer = model["layer"].values
    flag = model["flag"].values.astype(int) if "flag" in model else np.zeros(len(pos), int)
    flagged = (flag & (FLAG_OFF_LAYER | FLAG_EDGE)) != 0  # left out of the analysis
    paths = []
    if analysis.interface is not None:
        paths.append(plot_interface(pos, species, analysis, folder / "structure_interface.png"))
        paths.append(plot_ripples(pos, species, analysis, folder / "structure_ripples.png"))
    paths.append(plot_bond_angles(analysis, folder / "structure_bond_angles.png"))
    paths.append(
        plot_displacements(
            pos, species, analysis, folder / "structure_displacements.png", flagged=flagged
        )
    )
    for k, name in enumerate(_LAYER_NAMES):
        paths.append(
            plot_strain_maps(analysis, k, pos, layer, folder / f"structure_strain_{name}.png")
        )
    return paths


def _draw_interface(ax, analysis: StructureAnalysis) -> None:
    if analysis.interface is None:
        return
    for seg, kind in zip(analysis.interface.segments, analysis.interface.kind, strict=True):
        ax.plot(seg[:, 0], seg[:, 1], color=_KIND_COLOURS[str(kind)], lw=2)


def _interface_legend(fig, analysis: StructureAnalysis, extra=()) -> None:
    """One legend below the panels for the interface lines (and ``extra`` handles)."""
    handles = list(extra)
    if analysis.interface is not None:
        kinds = sorted({str(k) for k in analysis.interface.kind})
        handles += [
            Line2D([], [], color=_KIND_COLOURS[k], lw=2, label=f"{k} interface") for k in kinds
        ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)


def plot_interface(pos, species, analysis: StructureAnalysis, path) -> Path:
    """Top view with the interface segments by kind, and vacancies against distance."""
    fig = Figure(figsize=(11, 5), layout="constrained")
    top, prof = fig.subplots(1, 2, width_ratios=[1.1, 1])
    for name, colour in species_colours(species).items():
        if name == VACANCY:
            continue
        sel = species == name
        size = 14 if name in METALS else 4
        top.scatter(pos[sel, 0], pos[sel, 1], s=size, c=colour, label=f"{name} ({sel.sum()})")
    vac = species == VACANCY
    top.scatter(pos[vac, 0], pos[vac, 1], s=40, c="k", marker="x", label=f"vacancy ({vac.sum()})")
    _draw_interface(top, analysis)
    for kind, colour in _KIND_COLOURS.items():
        top.plot([], [], color=colour, lw=2, label=f"{kind} interface")
    top.set_aspect("equal")
    names = analysis.results.get("material_names", ["MoS2", "WSe2"])
    top.set(xlabel="x [Å]", ylabel="y [Å]", title=f"{names[0]}–{names[-1]} interface")
    top.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=4)
    p = analysis.results["interface"]["vacancy_profile"]
    centre = np.asarray(p["centre"])
    width = centre[1] - centre[0] if len(centre) > 1 else 1.0
    prof.bar(centre, p["vacancies"], width=0.9 * width, color="tab:gray")
    prof.set(
        xlabel=f"signed distance to the interface [Å] (> 0: {names[-1]})",
        ylabel="vacancies per bin",
        title="vacancies vs distance",
    )
    frac = prof.twinx()
    frac.plot(centre, 100 * np.asarray(p["fraction"], dtype=float), "o-", color="tab:red", ms=3)
    frac.set_ylabel("vacant chalcogen sites [%]", color="tab:red")
    return save_figure(fig, path)


def plot_ripples(pos, species, analysis: StructureAnalysis, path) -> Path:
    """Metal heights (top view), the ripple along the interface, roughness per strip."""
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    top, side, rough = fig.subplots(1, 3)
    metal = np.isin(species, METALS)
    lim = np.nanmax(np.abs(analysis.height[metal]))
    art = top.scatter(
        pos[metal, 0],
        pos[metal, 1],
        c=analysis.height[metal],
        s=14,
        cmap="coolwarm",
        vmin=-lim,
        vmax=lim,
    )
    _draw_interface(top, analysis)
    for kind, colour in _KIND_COLOURS.items():
        top.plot([], [], color=colour, lw=2, label=f"{kind} interface")
    top.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
    colorbar(fig, art, top, "metal height above their mean plane [Å]")
    top.set_aspect("equal")
    top.set(xlabel="x [Å]", ylabel="y [Å]", title="ripples (metal heights)")
    sel = analysis.ripple_atoms
    if sel is not None and sel.any():
        t = analysis.arc[sel]
        side.scatter(t, analysis.height[sel], s=10, c="k", label="metals at the interface")
        if analysis.ripple is not None:
            tt = np.linspace(t.min(), t.max(), 400)
            r = analysis.ripple
            side.plot(
                tt,
                r(tt),
                color="tab:red",
                label=f"A = {r.amplitude:.2f} Å, λ = {r.wavelength:.1f} Å",
            )
        side.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
    side.set(
        xlabel="arc length along the interface [Å]",
        ylabel="height [Å]",
        title="side view along the interface",
    )
    s = analysis.strips
    rough.plot(s["centre"], s["roughness"], "o-", color="tab:purple", label="metals of a strip")
    rough.axvline(0.0, color="k", lw=0.8, ls="--", label="interface")
    rough.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
    names = analysis.results.get("material_names", ["region 0", "region 1"])
    rough.set(
        xlabel=f"distance to the interface [Å] (> 0: {names[-1]})",
        ylabel="roughness [Å]",
        title=f"std of z in {len(s['centre'])} strips",
    )
    return save_figure(fig, path)


def plot_bond_angles(analysis: StructureAnalysis, path) -> Path:
    """Histograms of the X–M–X and M–X–M angles, top against bottom layer."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, kind, text in zip(axes, ("XMX", "MXM"), ("X–M–X", "M–X–M"), strict=True):
        top = analysis.angles.select(kind, 1)
        bottom = analysis.angles.select(kind, -1)
        both = np.concatenate([top, bottom])
        if len(both) == 0:
            continue
        bins = np.linspace(np.percentile(both, 0.5), np.percentile(both, 99.5), 40)
        ax.hist(
            bottom, bins, alpha=0.6, color="tab:blue", label=f"bottom, mean {bottom.mean():.2f}°"
        )
        ax.hist(top, bins, alpha=0.6, color="tab:orange", label=f"top, mean {top.mean():.2f}°")
        ax.set(
            xlabel=f"{text} angle [deg]",
            ylabel="count",
            title=f"{text}: bottom − top = {bottom.mean() - top.mean():+.2f}°",
        )
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_displacements(pos, species, analysis: StructureAnalysis, path, *, flagged=None) -> Path:
    """Displacement components of the metals from their fitted ideal lattice.

    The in-plane components share one symmetric colour scale, the out-of-plane one
    (the ripple) has its own; sites left out of the analysis (``flagged``: the
    volume's edge, off their layer) are drawn hollow and grey, outside the scale.
    """
    fig = Figure(figsize=(15, 5.2), layout="constrained")
    metal = np.isin(species, METALS)
    flagged = np.zeros(len(pos), bool) if flagged is None else np.asarray(flagged, bool)
    good, masked = metal & ~flagged, metal & flagged
    in_plane = symmetric_limit(analysis.displacement[good, :2])
    limits = (in_plane, in_plane, symmetric_limit(analysis.displacement[good, 2]))
    for k, ax in enumerate(fig.subplots(1, 3)):
        lim = limits[k]
        art = ax.scatter(
            pos[good, 0],
            pos[good, 1],
            c=analysis.displacement[good, k],
            s=16,
            cmap="RdBu_r",
            vmin=-lim,
            vmax=lim,
        )
        ax.scatter(pos[masked, 0], pos[masked, 1], s=16, facecolors="none", edgecolors="0.6")
        _draw_interface(ax, analysis)
        colorbar(fig, art, ax, f"u_{'xyz'[k]} [Å]")
        ax.set_aspect("equal")
        ax.set(xlabel="x [Å]", ylabel="y [Å]", title=f"metal displacement along {'xyz'[k]}")
    hollow = Line2D(
        [], [], ls="", marker="o", mfc="none", mec="0.6", label="left out (edge, off layer)"
    )
    _interface_legend(fig, analysis, [hollow] if masked.any() else [])
    return save_figure(fig, path)


def plot_strain_maps(analysis: StructureAnalysis, index: int, pos, layer, path) -> Path:
    """The six strain components on one layer (0 bottom, 1 metal, 2 top) [%]."""
    field = analysis.field
    maps = analysis.layer_maps[index] * 100
    fig = Figure(figsize=(14, 8.6), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    extent = (
        field.x[0] - field.spacing / 2,
        field.x[-1] + field.spacing / 2,
        field.y[0] - field.spacing / 2,
        field.y[-1] + field.spacing / 2,
    )
    sel = layer == (-1, 0, 1)[index]
    for k, ax in enumerate(axes):
        lim = symmetric_limit(analysis.layer_maps[:, k] * 100)  # one scale for the 3 layers
        art = ax.imshow(
            maps[k],
            origin="lower",
            extent=extent,
            cmap="RdBu_r",
            vmin=-lim,
            vmax=lim,
            interpolation="nearest",
        )
        ax.scatter(pos[sel, 0], pos[sel, 1], s=2, c="k", alpha=0.3)
        _draw_interface(ax, analysis)
        colorbar(fig, art, ax, f"e_{COMPONENTS[k]} [%]")
        ax.set_aspect("equal")
        ax.set(xlabel="x [Å]", ylabel="y [Å]", title=f"e_{COMPONENTS[k]}")
    dots = Line2D([], [], ls="", marker="o", ms=2, color="k", alpha=0.3, label="sites of the layer")
    _interface_legend(fig, analysis, [dots])
    fig.suptitle(
        f"{analysis.results['strain']['kind']} strain, {_LAYER_NAMES[index]} layer "
        f"(Gaussian sigma {field.sigma:.2f} Å)\neach component on one colour scale "
        "in the three layers' figures; blank: too little of the sheet under the smoothing kernel)"
    )
    return save_figure(fig, path)
