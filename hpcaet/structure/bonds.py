"""Bond distortion: chalcogen–metal–chalcogen and metal–chalcogen–metal angles per layer.

Tian et al. (Fig. 2A–B) measure the angles between the S/Se and Mo/W atoms of the top
and of the bottom chalcogen layer and report that the bottom angles are 7.0° larger
on average. Here a metal and a chalcogen are bonded when they are closer than a
cutoff; the X–M–X angle has its vertex on a metal and both chalcogens in one layer,
the M–X–M angle its vertex on a chalcogen of that layer. Vacancy sites make no bonds.

For an undistorted layer with chalcogen height ``h`` over the metal plane and
lattice constant ``a`` (in-plane bond projection ``r = a / sqrt(3)``), both angles are
``arccos((h^2 - r^2 / 2) / (h^2 + r^2))`` (:func:`ideal_bond_angle`), 82.2° for MoS2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.structure.lattice import CHALCOGENS, METALS

__all__ = ["BondAngles", "bond_angles", "ideal_bond_angle", "layer_difference"]

log = logging.getLogger(__name__)

_LAYERS = {"top": 1, "bottom": -1}


def ideal_bond_angle(lattice_constant: float, height: float) -> float:
    """X–M–X (and M–X–M) angle of an ideal 2H layer [deg].

    Parameters
    ----------
    lattice_constant : float
        In-plane lattice constant ``a`` [Å].
    height : float
        Height of the chalcogen layer above (or below) the metal plane [Å].

    Returns
    -------
    float
        ``arccos((h^2 - a^2 / 6) / (h^2 + a^2 / 3))`` [deg].
    """
    r2 = lattice_constant**2 / 3.0
    h2 = height**2
    return float(np.degrees(np.arccos((h2 - r2 / 2) / (h2 + r2))))


@dataclass(frozen=True)
class BondAngles:
    """Bond angles of an atom model, one entry per angle.

    Attributes
    ----------
    angle : ndarray of shape (m,)
        Angle [deg].
    kind : ndarray of str, shape (m,)
        ``"XMX"`` (vertex on a metal) or ``"MXM"`` (vertex on a chalcogen).
    layer : ndarray of int, shape (m,)
        Chalcogen layer of the angle: 1 top, -1 bottom.
    vertex : ndarray of int, shape (m,)
        Index of the vertex atom in the model.
    ends : ndarray of int, shape (m, 2)
        Indices of the two other atoms.
    """

    angle: np.ndarray
    kind: np.ndarray
    layer: np.ndarray
    vertex: np.ndarray
    ends: np.ndarray

    def select(self, kind: str, layer: int, *, atoms: np.ndarray | None = None) -> np.ndarray:
        """Angles of one kind and layer [deg], optionally only those whose vertex is in
        the boolean mask ``atoms`` (over the model's atoms)."""
        sel = (self.kind == kind) & (self.layer == layer)
        if atoms is not None:
            sel &= np.asarray(atoms, bool)[self.vertex]
        return self.angle[sel]


def bond_angles(
    positions: np.ndarray,
    species: np.ndarray,
    layer: np.ndarray,
    *,
    bond_cutoff: float,
) -> BondAngles:
    """Every X–M–X and M–X–M bond angle, with its layer.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols, ``"vac"`` for a vacancy site (no bonds).
    layer : ndarray of int, shape (n,)
        -1 bottom chalcogen, 0 metal, 1 top chalcogen.
    bond_cutoff : float
        Metal–chalcogen distance below which they are bonded [Å] (ideal bonds are
        2.41 Å in MoS2 and 2.54 Å in WSe2; the next chalcogen is 4 Å away).

    Returns
    -------
    BondAngles

    Raises
    ------
    InputError
        Mismatched shapes, a non-positive cutoff, or no angle at all.
    """
    pos = np.asarray(positions, dtype=float)
    species = np.asarray(species).astype(str)
    layer = np.asarray(layer)
    n = len(pos)
    if pos.shape != (n, 3) or species.shape != (n,) or layer.shape != (n,):
        raise InputError(
            f"bond_angles needs positions (n, 3), species and layer (n,); got {pos.shape}, "
            f"{species.shape}, {layer.shape}."
        )
    if not bond_cutoff > 0:
        raise InputError(f"bond_cutoff must be positive; got {bond_cutoff} Å.")
    metal = np.flatnonzero(np.isin(species, METALS))
    chalc = np.flatnonzero(np.isin(species, CHALCOGENS) & np.isin(layer, (-1, 1)))
    if len(metal) == 0 or len(chalc) == 0:
        raise InputError(
            f"the model has {len(metal)} metal and {len(chalc)} layered chalcogen atoms; "
            "bond angles need both."
        )
    pairs = cKDTree(pos[metal]).sparse_distance_matrix(
        cKDTree(pos[chalc]), bond_cutoff, output_type="ndarray"
    )
    m_of, c_of = metal[pairs["i"]], chalc[pairs["j"]]
    parts = [
        _angles_at(pos, m_of, c_of, layer[c_of], "XMX"),
        _angles_at(pos, c_of, m_of, layer[c_of], "MXM"),
    ]
    out = BondAngles(*(np.concatenate([p[k] for p in parts]) for k in range(5)))
    if len(out.angle) == 0:
        raise InputError(
            f"no bond angle found with bond_cutoff = {bond_cutoff} Å; raise the cutoff "
            "(ideal metal–chalcogen bonds are about 2.4–2.6 Å)."
        )
    return out


def _angles_at(pos, vertex, other, lay, kind):
    """Angles at each vertex between every pair of its bonded partners of one layer."""
    key = np.lexsort((lay, vertex))
    vertex, other, lay = vertex[key], other[key], lay[key]
    groups = np.flatnonzero(np.r_[True, (np.diff(vertex) != 0) | (np.diff(lay) != 0), True])
    angles, verts, ends, layers = [], [], [], []
    for g0, g1 in zip(groups[:-1], groups[1:], strict=True):
        if g1 - g0 < 2:
            continue
        v = vertex[g0]
        members = other[g0:g1]
        vec = pos[members] - pos[v]
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        i, j = np.triu_indices(len(members), k=1)
        cos = np.clip(np.sum(vec[i] * vec[j], axis=1), -1.0, 1.0)
        angles.append(np.degrees(np.arccos(cos)))
        verts.append(np.full(len(i), v))
        ends.append(np.column_stack([members[i], members[j]]))
        layers.append(np.full(len(i), lay[g0]))
    if not angles:
        return (
            np.zeros(0),
            np.zeros(0, dtype="<U3"),
            np.zeros(0, int),
            np.zeros(0, int),
            np.zeros((0, 2), int),
        )
    count = sum(len(a) for a in angles)
    return (
        np.concatenate(angles),
        np.full(count, kind),
        np.concatenate(layers),
        np.concatenate(verts),
        np.concatenate(ends),
    )


def layer_difference(
    angles: BondAngles, *, kind: str, atoms: np.ndarray | None = None
) -> dict[str, float]:
    """Mean angle of each layer and the bottom-minus-top difference.

    Parameters
    ----------
    angles : BondAngles
    kind : {"XMX", "MXM"}
    atoms : ndarray of bool, shape (n,), optional
        Only angles whose vertex is in this mask (e.g. atoms near the interface).

    Returns
    -------
    dict
        ``top``, ``bottom`` (mean angles [deg]), ``difference`` (bottom - top [deg]; the
        paper's 7.0°), ``top_count``, ``bottom_count``, ``pairs``; NaN where a layer
        has no angle.

    Notes
    -----
    The difference is *paired*: an X–M–X angle of the top layer is compared with those
    of the bottom layer at the same metal, an M–X–M angle with the one between the same
    two metals on the other side; ``difference`` is the mean over the pairs of
    (bottom - top). Unpaired means would also pick up where angles are missing (a
    vacancy removes the angles of one layer only) times how the angles vary across the
    field (e.g. S against Se at the interface).
    """
    if kind not in ("XMX", "MXM"):
        raise InputError(f"kind must be 'XMX' or 'MXM'; got {kind!r}.")
    sel = angles.kind == kind
    if atoms is not None:
        sel &= np.asarray(atoms, bool)[angles.vertex]
    top = sel & (angles.layer == _LAYERS["top"])
    bottom = sel & (angles.layer == _LAYERS["bottom"])
    mt = float(angles.angle[top].mean()) if top.any() else float("nan")
    mb = float(angles.angle[bottom].mean()) if bottom.any() else float("nan")
    if kind == "XMX":
        key = angles.vertex
    else:
        ends = np.sort(angles.ends, axis=1)
        key = ends[:, 0] * (int(ends.max(initial=0)) + 1) + ends[:, 1]
    kt, at = _group_mean(key[top], angles.angle[top])
    kb, ab = _group_mean(key[bottom], angles.angle[bottom])
    common, it, ib = np.intersect1d(kt, kb, return_indices=True)
    diff = float(np.mean(ab[ib] - at[it])) if len(common) else float("nan")
    return {
        "top": mt,
        "bottom": mb,
        "difference": diff,
        "top_count": int(top.sum()),
        "bottom_count": int(bottom.sum()),
        "pairs": len(common),
    }


def _group_mean(key: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq, np.bincount(inv, weights=value) / np.bincount(inv)
