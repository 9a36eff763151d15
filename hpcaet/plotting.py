"""Plotting helpers shared by the stages' figure modules (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hpcaet.materials import METALS, VACANCY

__all__ = ["SPECIES_COLOURS", "save_figure", "scatter_species", "species_colours"]

#: Colour of each species in every figure; other elements take the next of _SPARE.
SPECIES_COLOURS = {"Mo": "tab:blue", "W": "tab:red", "S": "gold", "Se": "tab:green", "vac": "black"}
_SPARE = ("tab:purple", "tab:brown", "tab:olive", "tab:cyan", "tab:pink", "tab:orange")


def species_colours(species) -> dict[str, str]:
    """Colour of each species present (metals first): SPECIES_COLOURS, then spares."""
    present = [str(s) for s in dict.fromkeys(np.asarray(species).astype(str).tolist())]
    present.sort(key=lambda s: (s == VACANCY, s not in METALS, s))
    spare = iter(_SPARE * 4)
    return {s: SPECIES_COLOURS.get(s) or next(spare) for s in present}


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
    for name, colour in species_colours(species).items():
        sel = species == name
        if name == VACANCY:
            marker, size = "x", 30
        else:
            marker, size = "o", (22 if name in METALS else 12)
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
