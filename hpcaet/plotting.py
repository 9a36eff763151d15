"""Plotting helpers shared by the stages' figure modules (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hpcaet.materials import METALS, VACANCY

__all__ = [
    "SPECIES_COLOURS",
    "colorbar",
    "save_figure",
    "scale_bar",
    "scatter_species",
    "show_image",
    "species_colours",
    "symmetric_limit",
]

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


def _round_length(length: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``length``."""
    exponent = np.floor(np.log10(length))
    for step in (5.0, 2.0, 1.0):
        if step * 10**exponent <= length:
            return float(step * 10**exponent)
    return float(10**exponent)  # pragma: no cover - 1 x 10^k always fits


def scale_bar(ax, pixel_size: float, *, colour: str = "white") -> None:
    """A scale bar in the lower right of an image panel: a round length near a fifth of
    the field, labelled in Å (or nm from 1 nm).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes of an image drawn with ``imshow`` in pixel coordinates.
    pixel_size : float
        Length of one pixel (one data unit of ``ax``) [Å].
    colour : str, default "white"
    """
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x0, x1 = ax.get_xlim()
    width = abs(x1 - x0)
    length = _round_length(0.2 * width * pixel_size)  # [Å]
    label = f"{length / 10:g} nm" if length >= 10 else f"{length:g} Å"
    bar = AnchoredSizeBar(
        ax.transData,
        length / pixel_size,
        label,
        "lower right",
        pad=0.5,
        color=colour,
        frameon=False,
        size_vertical=width / 80,
        fontproperties={"size": 8},
    )
    ax.add_artist(bar)


def colorbar(fig: Figure, art, ax, label: str, **options):
    """A colour bar of ``art`` beside ``ax`` labelled with the quantity and its unit."""
    options.setdefault("shrink", 0.85)
    return fig.colorbar(art, ax=ax, label=label, **options)


def show_image(
    fig: Figure,
    ax,
    image: np.ndarray,
    *,
    pixel_size: float,
    label: str | None = "intensity [counts]",
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
):
    """An image panel as in a paper: no axes, a scale bar and a labelled colour bar.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes
    image : ndarray of shape (ny, nx)
    pixel_size : float
        [Å].
    label : str or None, default "intensity [counts]"
        Quantity and unit of the colour bar; None: no colour bar (a shared one is
        drawn by the caller).
    cmap : str, default "gray"
    vmin, vmax : float, optional
        Colour range; default the image's.

    Returns
    -------
    matplotlib.image.AxesImage
    """
    art = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    scale_bar(ax, pixel_size)
    if label is not None:
        colorbar(fig, art, ax, label)
    return art


def symmetric_limit(*arrays: np.ndarray, percentile: float = 99.0) -> float:
    """One colour limit ``v`` for a symmetric scale ``[-v, v]`` shared by several maps of
    one quantity: the ``percentile`` of their finite absolute values (1 without any)."""
    values = np.concatenate([np.abs(np.asarray(a, float)).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    limit = float(np.percentile(values, percentile)) if values.size else 0.0
    return limit if limit > 0 else 1.0


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 90) -> Path:
    """Write a figure as PNG, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
