"""Quality of an atom model: flags per site, and whether a volume is the configured material.

:func:`atom_flags` marks atoms nearer than the minimum distance to another and atoms off
their layer (the input of a dynamic refinement); :func:`edge_flags` marks the sites near
the reconstructed volume's side faces (:func:`field_of_view`); :func:`check_material`
stops a run whose traced atoms are no monolayer of the configured lattice.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from hpcaet.atoms.layers import fit_layers
from hpcaet.atoms.pairs import VACANCY
from hpcaet.errors import InputError
from hpcaet.io import FLAG_EDGE, FLAG_OFF_LAYER, FLAG_TOO_CLOSE

__all__ = ["atom_flags", "edge_flags", "field_of_view", "check_material"]


def edge_flags(position: np.ndarray, volume: xr.Dataset, *, distance: float) -> np.ndarray:
    """:data:`~hpcaet.io.FLAG_EDGE` for sites within ``distance`` [Å] of the side faces.

    Near a face of the reconstructed volume an atom lacks the outer neighbours that the
    tracing, the species classes and the refinement lean on; on the demo, 28 of the 29
    atoms on a true site with the wrong species lay within 3 Å of a face.

    Parameters
    ----------
    position : ndarray of shape (n, 3)
        Sites (x, y, z) [Å].
    volume : xarray.Dataset
        The Volume the sites were traced in.
    distance : float
        [Å].

    Returns
    -------
    ndarray of int8, shape (n,)
        ``FLAG_EDGE`` or 0 per site.
    """
    x0, x1, y0, y1 = field_of_view(volume, margin=distance)
    x, y = position[:, 0], position[:, 1]
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return np.where(inside, 0, FLAG_EDGE).astype(np.int8)


#: How far the traced lattice may be from the configured one before the stage stops.
_LATTICE_TOLERANCE = 0.12
_HEIGHT_BELOW, _HEIGHT_ABOVE = 0.35, 0.75
_MIN_ORDER = 0.9


def check_material(
    position: np.ndarray,
    layer: np.ndarray,
    *,
    lattice: tuple[float, ...],
    heights: tuple[float, ...],
    names: tuple[str, ...] = (),
) -> tuple[float, float, float]:
    """Stop when the traced atoms do not look like the configured monolayer.

    Three figures of the middle layer must fit a 2H monolayer of the materials:

    * the median in-plane distance between neighbouring middle-layer atoms lies within
      12 % of the configured lattice constants' range;
    * their bond-orientational order, the median over atoms of
      ``|mean exp(6 i theta)|`` of the bonds to neighbours within 1.25 spacings, is at
      least 0.9 (a triangular lattice gives 1; measured 0.99 on the demo
      reconstructions, 0.84 on the few lattice-like peaks of a rendered amorphous film);
    * the median height of the top and bottom atoms over the nearest middle-layer atom
      lies within 35 % below and 75 % above the chalcogen heights' range (the missing
      wedge of a ±27° tilt series elongates peaks along z and pushes the outer layers
      out: 2.0-2.7 Å for 1.6 Å on the demo configs).

    An amorphous film or another crystal traced with the layer filters on gives a few
    scattered "layers" that fail, and labelling them Mo, W, S and Se would be a silent
    wrong answer.

    Parameters
    ----------
    position : ndarray of shape (n, 3)
        Traced atoms [Å].
    layer : ndarray of shape (n,)
        -1, 0, 1 (:func:`~hpcaet.atoms.fit_layers`).
    lattice : tuple of float
        Lattice constants of the configured materials [Å].
    heights : tuple of float
        Chalcogen heights above the metal plane [Å].
    names : tuple of str, optional
        Names of the materials, for the message.

    Returns
    -------
    tuple of float
        The measured metal-metal distance [Å], bond order and chalcogen height [Å].

    Raises
    ------
    InputError
        A figure is out of range (the message gives all three and what was expected).
    """
    metal = position[layer == 0]
    chalc = position[layer != 0]
    spacing = height = order = np.nan
    if len(metal) >= 3:
        d, _ = cKDTree(metal[:, :2]).query(metal[:, :2], k=2)
        spacing = float(np.median(d[:, 1]))
        order = _bond_order(metal[:, :2], 1.25 * spacing)
    if len(metal) and len(chalc):
        _, i = cKDTree(metal[:, :2]).query(chalc[:, :2])
        height = float(np.median(np.abs(chalc[:, 2] - metal[i, 2])))
    a_lo, a_hi = min(lattice) * (1 - _LATTICE_TOLERANCE), max(lattice) * (1 + _LATTICE_TOLERANCE)
    h_lo, h_hi = min(heights) * (1 - _HEIGHT_BELOW), max(heights) * (1 + _HEIGHT_ABOVE)
    if not (a_lo <= spacing <= a_hi and order >= _MIN_ORDER and h_lo <= height <= h_hi):
        material = " / ".join(names) or "configured"
        raise InputError(
            f"the traced volume does not look like the {material} monolayer: neighbouring "
            f"middle-layer atoms are {spacing:.3g} Å apart (expected {a_lo:.3g}-{a_hi:.3g} "
            f"Å from the lattice constants {list(lattice)}), their bond order is "
            f"{order:.2f} (a triangular lattice: over {_MIN_ORDER}), and the outer layers "
            f"sit {height:.3g} Å from them (expected {h_lo:.3g}-{h_hi:.3g} Å from the "
            f"heights {list(heights)}), over {len(metal)} middle and {len(chalc)} outer "
            "atoms. For another material set its lattice_constant and chalcogen_height in "
            "the config's materials section (docs/materials.md); for a volume that is no "
            "monolayer (an amorphous film, a particle) trace it with "
            "hpcaet.atoms.trace_atoms(..., layers=False)."
        )
    return spacing, order, height


def _bond_order(xy: np.ndarray, reach: float) -> float:
    """Median ``|<exp(6 i theta)>|`` of the bonds of points with 3+ neighbours; 0 if none."""
    tree = cKDTree(xy)
    values = []
    for i, near in enumerate(tree.query_ball_point(xy, reach)):
        bonds = xy[[j for j in near if j != i]] - xy[i]
        if len(bonds) >= 3:
            angle = np.arctan2(bonds[:, 1], bonds[:, 0])
            values.append(abs(np.exp(6j * angle).mean()))
    return float(np.median(values)) if values else 0.0


def field_of_view(volume: xr.Dataset, margin: float = 3.0) -> tuple[float, ...]:
    """In-plane box ``(x0, x1, y0, y1)`` [Å] of a Volume's voxel centres, less ``margin``."""
    x, y = volume["x"].values, volume["y"].values
    return (x.min() + margin, x.max() - margin, y.min() + margin, y.max() - margin)


def atom_flags(
    position: np.ndarray,
    species: np.ndarray,
    *,
    min_distance: float,
    off_layer: float,
    smoothing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Quality bits of every site and the layer of the atoms, for dynamic refinement.

    Returns
    -------
    flag : ndarray of int8, shape (n,)
        Bit 1: an atom nearer than ``min_distance`` to another atom; bit 2: more than
        ``off_layer`` from its layer's surface (fitted without it). Vacancy sites get 0.
    layer : ndarray of int8, shape (n,)
        The layer of every atom refitted on the final positions (vacancy sites -2, to be
        replaced by the caller).
    """
    flag = np.zeros(len(position), dtype=np.int8)
    layer = np.full(len(position), -2, dtype=np.int8)
    atom = np.flatnonzero(species != VACANCY)
    if len(atom) < 4:
        return flag, layer
    pairs = cKDTree(position[atom]).query_pairs(min_distance, output_type="ndarray")
    flag[atom[pairs.ravel()]] |= FLAG_TOO_CLOSE
    fit = fit_layers(position[atom], smoothing=smoothing)
    far = ~(np.abs(fit.distance) <= off_layer)
    flag[atom[far]] |= FLAG_OFF_LAYER
    layer[atom] = fit.layer
    return flag, layer
