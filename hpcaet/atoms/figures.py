"""Figures of the atoms stage (PNG, no global matplotlib state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hpcaet.io import FLAG_EDGE, FLAG_OFF_LAYER, FLAG_TOO_CLOSE, FLAG_UNCERTAIN
from hpcaet.plotting import save_figure, scatter_species

__all__ = ["plot_atoms", "plot_refinement"]


def plot_atoms(model: xr.Dataset, path: str | Path) -> Path:
    """Top view by species (vacancies crossed, flagged ringed, edge sites boxed), side view.

    Parameters
    ----------
    model : xarray.Dataset
        AtomModel.
    path : str or Path
        PNG file to write.

    Returns
    -------
    Path
    """
    pos = model["position"].values
    species = model["species"].values.astype(str)
    flag = model["flag"].values if "flag" in model else np.zeros(len(pos), int)
    fig = Figure(figsize=(12, 5.5), layout="constrained")
    top, side = fig.subplots(1, 2)
    scatter_species(top, side, pos, species)
    marks = (
        (
            (flag & (FLAG_TOO_CLOSE | FLAG_OFF_LAYER)) != 0,
            "too close or off layer",
            dict(s=80, edgecolors="magenta"),
        ),
        (
            (flag & FLAG_EDGE) != 0,
            "at the volume's edge, less sure",
            dict(s=60, marker="s", edgecolors="0.5"),
        ),
        (
            (flag & FLAG_UNCERTAIN) != 0,
            "species barely told apart",
            dict(s=110, marker="D", edgecolors="darkorange"),
        ),
    )
    for sel, what, style in marks:
        if sel.any():
            top.scatter(
                pos[sel, 0],
                pos[sel, 1],
                facecolors="none",
                label=f"{what} ({sel.sum()})",
                **style,
            )
    r1, r = model.attrs.get("R1", np.nan), model.attrs.get("R", np.nan)
    top.set_title(f"atom model (R1 {r1:.3f}, R {r:.3f})")
    # below the panel, so that it covers no atom
    top.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=4, fontsize=8)
    side.set_title("side view (z axis stretched)")
    return save_figure(fig, path)


def plot_refinement(history: dict, path: str | Path) -> Path:
    """R1 over the iterations of every refinement and the species changes of each flipping.

    Parameters
    ----------
    history : dict
        ``refine`` (list of (n_iter, 2) arrays of loss and R1) and ``flips`` (list of
        change counts per sweep), as returned by :func:`hpcaet.atoms.build.build_model`.
    path : str or Path

    Returns
    -------
    Path
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_r, ax_f = fig.subplots(1, 2)
    start = 0
    for k, h in enumerate(history.get("refine", [])):
        h = np.asarray(h)
        steps = start + np.arange(len(h))
        ax_r.plot(steps, h[:, 1], label=f"refinement {k}")
        start += len(h)
    ax_r.set(xlabel="iteration (all refinements)", ylabel="R1 over the support", title="refinement")
    ax_r.legend(fontsize=8)
    labels, counts = [], []
    for k, changes in enumerate(history.get("flips", [])):
        for j, c in enumerate(np.atleast_1d(changes)):
            labels.append(f"{k}.{j + 1}")
            counts.append(int(c))
    ax_f.bar(np.arange(len(counts)), counts)
    ax_f.set_xticks(np.arange(len(counts)), labels, fontsize=7)
    ax_f.set(xlabel="flipping cycle.sweep", ylabel="pairs changed", title="pair flipping")
    return save_figure(fig, path)
