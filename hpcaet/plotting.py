"""Plotting helpers shared by the stages' figure modules (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["SPECIES_COLOURS", "save_figure", "scatter_species"]

#: Colour of each species in every figure.
SPECIES_COLOURS = {"Mo": "tab:blue", "W": "tab:red", "S": "gold", "Se": "tab:green", "vac": "black"}


def scatter_species(top, side, positions: np.ndarray, species: np.ndarray) -> None:
    """Top (x-y) and side (x-z) views of atoms coloured by species, vacancies as crosses.

    Parameters
    ----------
    top, side : matplotlib.axes.Axes
        Axes of the two views.
    positions : ndarray of shape (n, 3)
        Positions [Å].
    species : ndarray of shape (n,)
        Species names (``"vac"`` for vacancy sites).
    """
    for name, colour in SPECIES_COLOURS.items():
        sel = species == name
        if not sel.any():
            continue
        marker, size = ("x", 30) if name == "vac" else ("o", 12 if name in ("S", "Se") else 22)
        top.scatter(
            positions[sel, 0],
            positions[sel, 1],
            s=size,
            c=colour,
            marker=marker,
            label=f"{name} ({sel.sum()})",
            linewidths=1,
        )
        side.scatter(positions[sel, 0], positions[sel, 2], s=size / 2, c=colour, marker=marker)
    top.set_aspect("equal")
    top.set(xlabel="x [Å]", ylabel="y [Å]")
    side.set(xlabel="x [Å]", ylabel="z [Å]")


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 90) -> Path:
    """Write a figure as PNG, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
