"""A periodic supercell cut from measured atoms across zigzag interfaces, unrelaxed.

Tian et al. (2024), supplementary "Stitched supercell construction": starting deep in
MoS2, walk perpendicular to a zigzag interface into WSe2 and stop at a W row; continue
from another W atom across a second zigzag interface back into MoS2, and join the two
strips into a periodic cell. The cell has ``x`` along the zigzag direction ``u``
(``width`` metal periods, the spacing found in the data), ``y`` along the normal ``n``
(pointing into the second material; the cell vector leans along ``x`` by a fraction of
a spacing so that the zigzag rows continue across the seam), ``z`` out of plane.

A zigzag interface has a polarity, so the second strip needs a zigzag interface facing
the other way. With one in the model the cell is the paper's two strips, ``rows / 4``
metal rows on each side of each interface, and both seams join like to like. Without
(the phantom's single interface) it is one strip, ``rows / 2`` rows on each side, whose
periodic seam joins deep WSe2 to deep MoS2: a second, abrupt interface of measured
atoms. Strips are cut between metal rows in the widest atom-free gaps, each row whole
(:mod:`hpcaet.phonons._strips`), each row turned rigidly by the sheet's tilt along the
interface; vacancy sites are dropped. The cell is then checked: no two atoms may be
nearer than ``min_distance``, across the seams or anywhere (:func:`check_distances`).

The *virtual lattice* (:class:`VirtualLattice`) maps each atom to a site of a uniform
2H lattice filling the cell, for the band unfolding (:mod:`hpcaet.phonons.unfold`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from hpcaet.errors import InputError
from hpcaet.materials import METALS
from hpcaet.phonons._strips import _frame, cut_strip
from hpcaet.structure.interface import find_interface

__all__ = [
    "StitchedCell",
    "VirtualLattice",
    "stitch_supercell",
    "check_distances",
    "virtual_lattice",
    "interface_distances",
]

log = logging.getLogger(__name__)

_ROW_TOLERANCE = 0.25  # a metal belongs to a row within this many row spacings


@dataclass(frozen=True)
class VirtualLattice:
    """The uniform 2H lattice that the atoms of a cell are mapped to.

    Attributes
    ----------
    supercell_matrix : ndarray of int, shape (3, 3)
        Columns: the cell vectors in the basis of the virtual primitive vectors.
    primitive : ndarray of shape (3, 3)
        Rows: the virtual primitive vectors [Å].
    ideal_positions : ndarray of shape (n_site, 3)
        Fractional positions of every ideal site in the cell.
    atom_mapping : list of int or None
        For each ideal site, the atom on it, or None (a vacancy).
    """

    supercell_matrix: np.ndarray
    primitive: np.ndarray
    ideal_positions: np.ndarray
    atom_mapping: list


@dataclass(frozen=True)
class StitchedCell:
    """A periodic cell cut from an atom model.

    Attributes
    ----------
    atoms : ase.Atoms
        The cell (``pbc`` True), positions as measured [Å].
    source_index : ndarray of int, shape (n,)
        Index of each atom in the model it was cut from (-1 for a built site).
    row : ndarray of int, shape (n,)
        Metal row (unit of one metal row and one chalcogen layer) of each atom, 0 at
        the cell's lower seam.
    interfaces : ndarray of shape (n_interface,)
        ``y`` of the interfaces in the cell, the periodic seam at 0 included [Å].
    width, rows : int
        Metal periods along the interface, metal rows across it.
    lattice_constant : float
        Period along the interface [Å] (``cell[0, 0] / width``).
    """

    atoms: Atoms
    source_index: np.ndarray
    row: np.ndarray
    interfaces: np.ndarray
    width: int
    rows: int
    lattice_constant: float


def stitch_supercell(
    positions: np.ndarray,
    species: np.ndarray,
    *,
    rows: int = 16,
    width: int = 3,
    vacuum: float = 20.0,
    min_distance: float = 2.0,
    inside: str = "W",
    interface=None,
) -> StitchedCell:
    """Cut strips across the longest zigzag interface (and a facing one) into a cell.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions of the model [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols, ``"vac"`` for vacancy sites.
    rows : int, default 16
        Metal rows of the cell, half on each side of the interface(s); even (a
        multiple of 4 for two strips).
    width : int, default 3
        Metal periods along the interface (the cell holds ``3 * rows * width`` sites).
    vacuum : float, default 20
        Height of the cell above the sheet's extent [Å].
    min_distance : float, default 2
        Least distance allowed between two atoms of the cell [Å].
    inside : str, default "W"
        Metal of the second material (positive ``y`` of the interface).
    interface : hpcaet.structure.Interface, optional
        The traced interface; found here when None.

    Returns
    -------
    StitchedCell

    Raises
    ------
    InputError
        No zigzag interface, too few rows on a side, a strip whose rows do not hold
        ``width`` metals each, or atoms nearer than ``min_distance``.
    """
    pos = np.asarray(positions, dtype=float)
    species = np.asarray(species).astype(str)
    if rows < 2 or rows % 2 or width < 1:
        raise InputError(
            f"phonons: rows must be an even number >= 2 and width >= 1; got rows={rows}, "
            f"width={width}. An even row count keeps the zigzag rows' alternation across "
            "the periodic seam."
        )
    if interface is None:
        interface = find_interface(pos, species, inside=inside)
    zigzag = np.flatnonzero(interface.kind == "zigzag")
    a = float(interface.spacing)
    lengths = np.linalg.norm(interface.segments[:, 1] - interface.segments[:, 0], axis=1)
    if zigzag.size == 0:
        raise InputError(
            f"the model's interface has no zigzag segment (segments: "
            f"{[str(k) for k in interface.kind]}, lengths {np.round(lengths, 1).tolist()} Å); "
            "the stitched supercell needs a zigzag interface. Use a model with one (a "
            "boundary within 15° of a metal–metal bond), or skip the phonon stage."
        )
    k = zigzag[np.argmax(lengths[zigzag])]
    if lengths[k] < width * a:
        raise InputError(
            f"the longest zigzag segment is {lengths[k]:.1f} Å, shorter than the strip width "
            f"{width} x {a:.2f} Å; lower phonons.width."
        )
    frame = _frame(interface, k, pos, species, inside)
    other = _facing_segment(interface, k, frame, pos, species, inside, width * a)
    options = dict(spacing=a, width=width, min_distance=min_distance)
    if other is None or rows % 4:
        strips = [
            cut_strip(
                pos,
                species,
                frame,
                segment_length=lengths[k],
                sides=(rows // 2, rows // 2),
                **options,
            )
        ]
    else:  # the paper's: across one interface, then back across the facing one
        quarter = (rows // 4, rows // 4)
        origin = interface.segments[other].mean(axis=0)
        strips = [
            cut_strip(pos, species, frame, segment_length=lengths[k], sides=quarter, **options),
            cut_strip(
                pos,
                species,
                (origin, frame[1], frame[2]),
                segment_length=lengths[other],
                sides=quarter,
                **options,
            ),
        ]
    atoms, source, row, interfaces = _join(strips, species, vacuum, width)
    check_distances(atoms, min_distance=min_distance)
    log.info(
        "phonons: stitched cell of %d atoms from %d strip(s) (%d vacancies dropped), "
        "%.2f x %.2f Å; rows turned by their tilt along the interface (up to %.1f deg) and "
        "the strips by up to %.1f deg across it, so the cell is periodic",
        len(atoms),
        len(strips),
        sum(s.dropped for s in strips),
        atoms.cell[0, 0],
        atoms.cell[1, 1],
        max(s.tilt for s in strips),
        max(abs(s.turn) for s in strips),
    )
    return StitchedCell(
        atoms=atoms,
        source_index=source,
        row=row,
        interfaces=interfaces,
        width=width,
        rows=rows,
        lattice_constant=float(atoms.cell[0, 0]) / width,
    )


def _facing_segment(interface, k, frame, pos, species, inside, min_length):
    """Another zigzag segment parallel to ``k`` with the second material on its far side."""
    _, u, n = frame
    best, best_length = None, min_length
    for j in np.flatnonzero(interface.kind == "zigzag"):
        seg = interface.segments[j]
        d = seg[1] - seg[0]
        length = float(np.linalg.norm(d))
        if j == k or abs(d @ u) < np.cos(np.radians(10.0)) * length or length < best_length:
            continue
        mid = seg.mean(axis=0)
        rel = pos[:, :2] - mid
        close = np.isin(species, METALS) & (np.linalg.norm(rel, axis=1) < 4 * interface.spacing)
        side = np.mean(np.where(species[close] == inside, 1.0, -1.0) * (rel[close] @ n))
        if side < 0 and (mid - frame[0]) @ n > 0:  # faces back, further along n
            best, best_length = j, length
    return best


def _join(strips, species, vacuum, width):
    """One periodic cell of the strips end to end along ``y``.

    Each strip after the first is moved along ``x`` so that its first metal row sits half
    a metal spacing off the previous strip's last row (the zigzag alternation), and along
    ``z`` so that the two rows lie at one height.
    """
    period = float(np.mean([s.period for s in strips]))
    a = period / width  # the metal spacing along x
    metal = np.isin(species, METALS)
    parts, source, row, interfaces = [], [], [], []
    y0, r0, last = 0.0, 0, None
    for s in strips:
        pos = s.xyz.copy()
        first = metal[s.source] & (s.unit == 0)
        if last is not None:
            dx = _phase(last[0], a) + a / 2.0 - _phase(pos[first, 0], a)
            pos[:, 0] += np.mod(dx + a / 2.0, a) - a / 2.0
            pos[:, 2] += last[1] - pos[first, 2].mean()
        pos[:, 1] += y0
        interfaces.append(y0 + s.interface)
        end = metal[s.source] & (s.unit == s.rows - 1)
        last = (pos[end, 0], pos[end, 2].mean())
        parts.append(pos)
        source.append(s.source)
        row.append(s.unit + r0)
        y0 += s.length
        r0 += s.rows
    xyz = np.concatenate(parts)
    height = float(np.ptp(xyz[:, 2])) + vacuum
    xyz[:, 2] += height / 2.0 - xyz[:, 2].mean()
    source = np.concatenate(source)
    # the cell vector across leans so that the first row continues the last one's
    # alternation across the periodic seam: no atom is moved
    first = metal[strips[0].source] & (strips[0].unit == 0)
    lean = _phase(parts[0][first, 0], a) - (_phase(last[0], a) + a / 2.0)
    lean = float(np.mod(lean + a / 2.0, a) - a / 2.0)
    atoms = Atoms(
        symbols=species[source].tolist(),
        positions=xyz,
        cell=[[period, 0.0, 0.0], [lean, y0, 0.0], [0.0, 0.0, height]],
        pbc=True,
    )
    atoms.wrap()
    if len(strips) == 1:
        interfaces = [0.0, *interfaces]  # the periodic seam joins the two materials
    return atoms, source, np.concatenate(row), np.asarray(interfaces)


def _phase(x: np.ndarray, a: float) -> float:
    """Circular mean of ``x`` modulo ``a`` [Å]."""
    return float(a / (2 * np.pi) * np.angle(np.mean(np.exp(2j * np.pi * np.asarray(x) / a))))


def check_distances(atoms: Atoms, *, min_distance: float) -> None:
    """Raise when two atoms of a periodic cell are nearer than ``min_distance``.

    Parameters
    ----------
    atoms : ase.Atoms
        A periodic cell.
    min_distance : float
        Least distance allowed [Å].

    Raises
    ------
    InputError
        Naming the pair, its distance and whether it meets across a periodic seam.
    """
    from ase.neighborlist import neighbor_list

    i, j, d, shift = neighbor_list("ijdS", atoms, min_distance)
    if len(d) == 0:
        return
    k = int(np.argmin(d))
    symbols = atoms.get_chemical_symbols()
    axes = [name for name, step in zip(("x", "y", "z"), shift[k], strict=True) if step]
    where = f"across the periodic seam along {'/'.join(axes)}" if axes else "inside the strip"
    raise InputError(
        f"atoms {i[k]} ({symbols[i[k]]}) and {j[k]} ({symbols[j[k]]}) of the stitched cell are "
        f"{d[k]:.2f} Å apart {where}; the least allowed is {min_distance} Å "
        f"({len(d) // 2} pair(s) too close). Choose another strip (phonons.rows, "
        "phonons.width) or correct the model's positions before computing forces."
    )


def interface_distances(cell: StitchedCell) -> np.ndarray:
    """Distance of each atom to the nearest interface of the cell, periodic in ``y`` [Å]."""
    y = cell.atoms.positions[:, 1]
    length = cell.atoms.cell[1, 1]
    d = y[:, None] - cell.interfaces[None, :]
    d -= length * np.round(d / length)
    return np.abs(d).min(axis=1)


def virtual_lattice(cell: StitchedCell) -> VirtualLattice:
    """Map every atom of a stitched cell to a site of a uniform 2H lattice.

    The virtual primitive vectors are ``a1 = (a, 0, 0)`` and ``a2 = (a/2, h, 0)`` with
    ``a`` the cell width over ``width`` and ``h`` the cell length over ``rows``; a
    metal row is one unit, its chalcogens sit at the mean offset found in the data.

    Returns
    -------
    VirtualLattice

    Raises
    ------
    InputError
        Two atoms on one ideal site.
    """
    atoms = cell.atoms
    w, length, c = np.diag(atoms.cell.array)
    a, h = w / cell.width, length / cell.rows
    step = a / 2.0 + atoms.cell[1, 0] / cell.rows  # x offset of each row (cell shear)
    species = np.array(atoms.get_chemical_symbols())
    xyz = atoms.positions
    metal = np.isin(species, METALS)
    z_mid = float(np.median(xyz[metal, 2]))
    top = xyz[:, 2] > z_mid
    kinds = np.where(metal, 0, np.where(top, 1, 2))
    r = cell.row
    sites, mapping, fractional = {}, [], []
    # the zigzag alternation: row r is shifted by r a / 2 along x
    for kind in (0, 1, 2):
        sel = np.flatnonzero(kinds == kind)
        if sel.size == 0:
            continue
        xs = xyz[sel, 0] - r[sel] * step
        x0 = a / (2 * np.pi) * np.angle(np.mean(np.exp(2j * np.pi * xs / a)))
        y0 = float(np.mean(xyz[sel, 1] - r[sel] * h))
        z0 = float(np.median(xyz[sel, 2]))
        col = np.mod(np.rint((xs - x0) / a).astype(int), cell.width)
        for atom, rr, cc in zip(sel, r[sel], col, strict=True):
            key = (kind, int(rr), int(cc))
            if key in sites:
                raise InputError(
                    f"atoms {sites[key]} and {atom} of the stitched cell map to the same "
                    f"ideal site (row {rr}, column {cc}); the strip is too distorted to "
                    "unfold. Lower phonons.rows."
                )
            sites[key] = int(atom)
        for rr in range(cell.rows):
            for cc in range(cell.width):
                fractional.append([x0 + rr * step + cc * a, y0 + rr * h, z0])
                mapping.append(sites.get((kind, rr, cc)))
    frac = np.mod(np.asarray(fractional) @ np.linalg.inv(atoms.cell.array), 1.0)
    half = cell.rows // 2
    smat = np.array([[cell.width, -half, 0], [0, cell.rows, 0], [0, 0, 1]])
    primitive = np.array([[a, 0.0, 0.0], [step, h, 0.0], [0.0, 0.0, c]])
    return VirtualLattice(
        supercell_matrix=smat, primitive=primitive, ideal_positions=frac, atom_mapping=mapping
    )
