"""Figures of the phonon stage, after Tian et al. Fig. 3 and Fig. S4.

PNG files through :class:`matplotlib.figure.Figure` (no pyplot, no global state).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hpcaet.materials import METALS
from hpcaet.plotting import save_figure, species_colours

__all__ = ["plot_phonons", "plot_cell", "plot_dispersion", "plot_dos", "plot_participation"]


def plot_phonons(ds: xr.Dataset, cell, folder: str | Path) -> list[Path]:
    """Every phonon figure into ``folder``; returns the paths written."""
    folder = Path(folder)
    paths = [
        plot_cell(cell, folder / "phonons_cell.png"),
        plot_dispersion(ds, folder / "phonons_dispersion.png"),
        plot_dos(ds, folder / "phonons_dos.png"),
        plot_participation(ds, folder / "phonons_participation.png"),
    ]
    return paths


def plot_cell(cell, path) -> Path:
    """Top and side views of the stitched cell with its interfaces (Fig. 3A)."""
    atoms = cell.atoms
    pos = atoms.positions
    species = np.array(atoms.get_chemical_symbols())
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    top, side = fig.subplots(2, 1, height_ratios=[1, 1])
    for name, colour in species_colours(species).items():
        sel = species == name
        size = 30 if name in METALS else 12
        top.scatter(pos[sel, 1], pos[sel, 0], s=size, c=colour, label=f"{name} ({sel.sum()})")
        side.scatter(pos[sel, 1], pos[sel, 2], s=size, c=colour)
    for y in cell.interfaces:
        for ax in (top, side):
            ax.axvline(y, color="k", ls="--", lw=1)
    top.set(
        xlabel="y across the interface [Å]",
        ylabel="x along the interface [Å]",
        title=f"stitched cell, {len(atoms)} atoms",
    )
    top.set_aspect("equal")
    # below the panels, where it covers no atom
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=7)
    side.set(xlabel="y across the interface [Å]", ylabel="z [Å]")
    return save_figure(fig, path)


def _labels(ds: xr.Dataset) -> dict:
    return json.loads(ds.attrs.get("q_labels", "{}"))


def _dispersion_panel(ax, ds, name, title):
    energy = ds["energy"].values
    q = ds["q_distance"].values
    spec = ds[name].values
    ax.pcolormesh(q, energy, spec.T, cmap="magma_r", shading="auto", vmax=np.percentile(spec, 99.5))
    for x in _labels(ds).values():
        ax.axvline(x, color="0.5", lw=0.5)
    ax.set_xticks(list(_labels(ds).values()), [k.rstrip("'") for k in _labels(ds)])
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set(
        xlabel="wave vector along the path [1/Å]",
        ylabel="energy [meV]",
        title=title,
        ylim=(energy[0], energy[-1]),
    )


def plot_dispersion(ds: xr.Dataset, path) -> Path:
    """Unfolded spectral function (Fig. 3B), beside the reference's (Fig. S4D) if present."""
    panels = [("spectral_function", "measured coordinates, unrelaxed")]
    if "reference_spectral_function" in ds:
        panels.append(("reference_spectral_function", "crystallographic zigzag interface"))
    fig = Figure(figsize=(5 * len(panels) + 2, 5), layout="constrained")
    axes = fig.subplots(1, len(panels) + 1, width_ratios=[3] * len(panels) + [1], sharey=True)
    for ax, (name, title) in zip(axes, panels, strict=False):
        _dispersion_panel(ax, ds, name, title)
    dos_ax = axes[-1]
    energy = ds["energy"].values
    dos_ax.plot(ds["dos"].values, energy, color="tab:orange", label="interface cell")
    if "reference_dos" in ds:
        dos_ax.plot(ds["reference_dos"].values, energy, color="0.3", label="crystallographic")
    for k, name in enumerate(ds["material"].values):
        colour = ("tab:green", "tab:red", "tab:purple")[k % 3]  # as in Fig. S4
        dos_ax.plot(ds["bulk_dos"].values[k], energy, lw=0.8, color=colour, label=f"bulk {name}")
    dos_ax.set(xlabel="DOS [1/meV]", ylabel="energy [meV]")
    dos_ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_dos(ds: xr.Dataset, path) -> Path:
    """PDOS of the cell and its NNLS bulk fit with the missed peaks (Fig. 3D)."""
    energy = ds["energy"].values
    fig = Figure(figsize=(7, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(energy, ds["dos"].values, color="tab:orange", label="interface cell")
    for k, name in enumerate(ds["species"].values):
        top.plot(energy, ds["pdos"].values[k], lw=0.8, label=str(name))
    for peak in ds.get("residual_peak", xr.DataArray([])).values:
        top.axvline(peak, color="k", ls=":", lw=1)
    top.set(ylabel="DOS [1/meV]", title="PDOS; dotted: peaks the bulk combination misses")
    top.legend(fontsize=7)
    if "nnls_fit" in ds:
        weights = ", ".join(
            f"{w:.2f} {m}"
            for m, w in zip(ds["material"].values, ds["nnls_weight"].values, strict=True)
        )
        bottom.plot(energy, ds["nnls_fit"].values, color="tab:blue", label=f"NNLS: {weights}")
        bottom.plot(energy, ds["dos"].values, color="tab:orange", lw=0.8, label="interface cell")
        bottom.legend(fontsize=7)
    bottom.set(xlabel="energy [meV]", ylabel="DOS [1/meV]")
    return save_figure(fig, path)


def plot_participation(ds: xr.Dataset, path) -> Path:
    """Participation ratios and interface participation of the Γ modes (Fig. 3E)."""
    e = ds["frequency"].values
    n = int(ds.attrs.get("n_atom", len(e) // 3))
    fig = Figure(figsize=(7, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.scatter(e, ds["participation_ratio"].values, s=6)
    top.set(ylabel="participation ratio (dimensionless)")
    bottom.scatter(e, ds["interface_participation"].values, s=6, color="tab:red")
    bottom.axhline(1.0 / n, color="k", ls="--", lw=1, label=f"1/N = 1/{n}")
    bottom.set(xlabel="energy [meV]", ylabel="interface participation (dimensionless)")
    bottom.legend(fontsize=7)
    return save_figure(fig, path)
