"""A periodic supercell cut from measured atoms across a zigzag interface, unrelaxed.

Tian et al. (2024), supplementary "Stitched supercell construction": starting deep in
MoS2, walk perpendicular to a zigzag interface into WSe2 and stop at a W row; the
supercell is made periodic by joining the measured strip end to end. The cell here is
rectangular, ``x`` along the zigzag direction ``u`` (``width`` metal periods, the
lattice constant found in the data), ``y`` along the normal ``n`` (pointing into the
second material), ``z`` out of plane with vacuum.

With one zigzag interface in the model (the phantom's), the strip holds ``rows / 2``
metal rows on each side of it and the cell's periodic seam joins deep WSe2 to deep
MoS2: a second, abrupt interface built of measured atoms only. Each end of the strip is
cut in the widest atom-free gap next to a metal row, so the seam repeats the spacing
of the lattice, and an even number of rows keeps the zigzag rows' alternation across
it. Every site keeps its measured coordinates; vacancy sites are dropped (the atom is
missing). The cell is then checked: no two atoms may be nearer than ``min_distance``,
across the seams or anywhere (:func:`check_distances`).

The *virtual lattice* (:class:`VirtualLattice`) maps each atom to a site of a uniform
2H lattice filling the cell, for the band unfolding (:mod:`hpcaet.phonons.unfold`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from hpcaet.errors import InputError
from hpcaet.materials import CHALCOGENS, METALS, VACANCY
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
    """Cut a strip across the longest zigzag interface and make it periodic.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions of the model [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols, ``"vac"`` for vacancy sites.
    rows : int, default 16
        Metal rows across the interface, half on each side; even.
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
    origin, u, n = _frame(interface, k, pos, species, inside)
    rel = pos[:, :2] - origin
    su, sn = rel @ u, rel @ n
    h = a * np.sqrt(3.0) / 2.0
    is_metal = np.isin(species, METALS)
    is_site = np.isin(species, METALS + CHALCOGENS + (VACANCY,))
    # strip positions: metals next to the interface, nearest the segment's middle first
    near = is_metal & (np.abs(sn) < 2 * h) & (np.abs(su) <= lengths[k] / 2)
    order = np.argsort(np.abs(su[near]))
    candidates = np.column_stack([su[near][order], sn[near][order]])
    failures = []
    for centre, centre_n in candidates:
        try:
            idx, unit, cut_lo, cut_hi, lo_u, a = _strip_at(
                centre,
                centre_n,
                su,
                sn,
                species,
                is_metal,
                is_site,
                interface.spacing,
                rows,
                width,
            )
            keep = species[idx] != VACANCY
            kept, unit = idx[keep], unit[keep]
            x, y, z, scale, tilt, shear = _flatten(
                pos, su, sn, kept, unit, is_metal, (lo_u, width * a), h
            )
            height = float(np.ptp(z)) + vacuum
            xyz = np.column_stack([x - lo_u, y - cut_lo, z - z.mean() + height / 2.0])
            period = width * a * scale[0]
            atoms = Atoms(
                symbols=species[kept].tolist(),
                positions=xyz,
                cell=np.diag([period, (cut_hi - cut_lo) * scale[1], height]),
                pbc=True,
            )
            check_distances(atoms, min_distance=min_distance)
            break
        except InputError as exc:
            failures.append(str(exc))
    else:
        raise InputError(
            f"no position along the zigzag segment ({len(candidates)} tried) gives a usable "
            f"strip; nearest its middle: {failures[0] if failures else 'no metal near it'}"
        )
    if failures:
        log.warning(
            "phonons: strip placed %.1f Å from the segment's middle; %d nearer positions "
            "failed, e.g.: %s",
            abs(centre),
            len(failures),
            failures[0],
        )
    log.info(
        "phonons: stitched cell of %d atoms (%d vacancies dropped), %.2f x %.2f Å, zigzag "
        "segment %.1f Å long; rows turned by their tilt along the interface (up to %.1f deg) "
        "and the strip by %.1f deg across it, so the cell is periodic",
        len(atoms),
        len(idx) - len(kept),
        atoms.cell[0, 0],
        atoms.cell[1, 1],
        lengths[k],
        tilt,
        shear,
    )
    return StitchedCell(
        atoms=atoms,
        source_index=kept,
        row=unit,
        interfaces=np.array([0.0, -cut_lo]),
        width=width,
        rows=rows,
        lattice_constant=float(atoms.cell[0, 0]) / width,
    )


def _strip_at(centre, centre_n, su, sn, species, is_metal, is_site, spacing, rows, width):
    """The strip whose first metal column runs through the metal at ``(centre, centre_n)``.

    Each unit (a metal row and its chalcogen layer) is cut between the widest atom-free
    gaps below its metal row and the next, and takes the ``width`` periods along ``u``
    starting a quarter period before its own column, which is followed from row to row:
    a lattice that turns or strains along the strip keeps whole periods in every row.

    Returns
    -------
    idx, unit : ndarray of int
        Sites of the strip and their unit, 0 at the lower cut.
    cut_lo, cut_hi : float
        The cuts along ``n`` [Å].
    lo_u : float
        Start of unit 0's window along ``u`` [Å].
    period : float
        Metal spacing along ``u`` at the strip [Å].
    """
    a = spacing
    h = a * np.sqrt(3.0) / 2.0
    band = np.abs(su - centre - width * a / 2.0) < width * a / 2.0 + a / 2.0
    row_n = _metal_rows(sn[band & is_metal], h)
    half = rows // 2
    below, above = row_n[row_n < 0], row_n[row_n >= 0]
    if len(below) < half + 1 or len(above) < half + 1:
        raise InputError(
            f"the zigzag interface has {len(below)} metal rows on the first material's side "
            f"and {len(above)} on the second's within the model; the strip needs "
            f"{half + 1} on each (phonons.rows = {rows}, plus one to cut at). Lower "
            "phonons.rows or use a larger field."
        )
    chosen = np.concatenate([below[-half:], above[: half + 1]])
    cuts = [_cut(sn[band & is_site], r, h) for r in chosen]
    a = _period_along(su, sn, band & is_metal, is_metal, a)
    start = int(np.argmin(np.abs(chosen[:-1] - centre_n)))  # the row of the centre metal
    column = {start: centre}
    for r in list(range(start + 1, rows)) + list(range(start - 1, -1, -1)):
        prev = r - 1 if r > start else r + 1
        in_row = band & is_metal & (np.abs(sn - chosen[r]) < 0.5 * h)
        expected = column[prev] + a / 2.0
        shift = np.mod(su[in_row] - expected + a / 2.0, a) - a / 2.0  # nearest column
        column[r] = expected + (shift[np.argmin(np.abs(shift))] if shift.size else 0.0)
    idx, unit = [], []
    for r in range(rows):
        lo = column[r] - a / 4.0 - (r - start) % 2 * a / 2.0
        lo += np.round((centre - a / 4.0 - lo) / a) * a  # the same periods as unit 0's
        sel = np.flatnonzero(
            is_site & (sn >= cuts[r]) & (sn < cuts[r + 1]) & (su >= lo) & (su < lo + width * a)
        )
        idx.append(sel)
        unit.append(np.full(sel.size, r))
    idx, unit = np.concatenate(idx), np.concatenate(unit)
    _check_rows(species[idx], unit, rows, width)
    return idx, unit, cuts[0], cuts[-1], centre - a / 4.0, a


def _frame(interface, k, pos, species, inside):
    """Origin (segment midpoint), zigzag direction u and normal n into ``inside``."""
    seg = interface.segments[k]
    d = seg[1] - seg[0]
    theta = np.radians(interface.zigzag_angle)
    options = theta + np.arange(6) * np.pi / 3.0
    phi = np.arctan2(d[1], d[0])
    best = options[np.argmin(np.abs(np.angle(np.exp(1j * (options - phi)))))]
    u = np.array([np.cos(best), np.sin(best)])
    n = np.array([-u[1], u[0]])
    origin = seg.mean(axis=0)
    rel = pos[:, :2] - origin
    close = np.linalg.norm(rel, axis=1) < 4 * interface.spacing
    metal = np.isin(species, METALS) & close
    side = np.mean(np.where(species[metal] == inside, 1.0, -1.0) * (rel[metal] @ n))
    if side < 0:  # the mirror x -> -x is a symmetry of the 2H lattice: flip u too
        u, n = -u, -n
    return origin, u, n


def _period_along(su, sn, chosen, is_metal, a) -> float:
    """Mean metal spacing along ``u`` at the strip's metals (the cell's period / width)."""
    du = su[is_metal][None, :] - su[chosen][:, None]
    dn = sn[is_metal][None, :] - sn[chosen][:, None]
    ok = (np.abs(dn) < 0.25 * a) & (du > 0.5 * a) & (du < 1.5 * a)
    steps = np.where(ok, du, np.inf).min(axis=1)
    steps = steps[np.isfinite(steps)]
    return float(steps.mean()) if steps.size else a


def _metal_rows(sn: np.ndarray, h: float) -> np.ndarray:
    """Mean ``n`` of each row of metals (split at gaps over half a row spacing)."""
    order = np.sort(sn)
    breaks = np.flatnonzero(np.diff(order) > 0.5 * h) + 1
    return np.array([g.mean() for g in np.split(order, breaks)])


def _cut(sn: np.ndarray, row: float, h: float) -> float:
    """Middle of the widest atom-free gap below the metal row at ``row``."""
    values = np.sort(sn[(sn > row - 1.2 * h) & (sn <= row + 0.1 * h)])
    gaps = np.diff(values)
    if gaps.size == 0:  # pragma: no cover - a row without neighbours below
        return row - 0.5 * h
    i = int(np.argmax(gaps))
    return float(0.5 * (values[i] + values[i + 1]))


def _flatten(pos, su, sn, kept, unit, is_metal, span, h):
    """The kept atoms turned so that the cell is periodic, every row rigidly.

    A periodic cell cannot follow the sheet's tilt. Each unit (metal row and its
    chalcogens) is turned about the interface direction's normal in the ``(u, z)``
    plane by its own tilt (fitted to the row's metals over the strip and one period
    beyond), then the whole strip about ``u`` in the ``(n, z)`` plane so that its first
    and last metal rows lie at one height. Rotations keep every distance within a row;
    bonds between rows change only by the difference of neighbouring rows' tilts.

    Returns
    -------
    x, y, z : ndarray of shape (n_kept,)
        Turned coordinates along ``u``, ``n`` and out of plane [Å].
    scale : tuple of 2 float
        Factors of the period along ``u`` (the projected spacing over cos tilt) and of
        the length along ``n`` (over cos of the turn across).
    tilt, turn : float
        Largest tilt of a row, and the turn across [deg].
    """
    lo, w = span
    mid = lo + w / 2.0
    x, y, z = su[kept].copy(), sn[kept].copy(), pos[kept, 2].copy()
    metal_kept = is_metal[kept]
    rows = np.unique(unit)
    centres = np.array([y[(unit == r) & metal_kept].mean() for r in rows])
    slopes = []
    for centre in centres:
        near = is_metal & (np.abs(sn - centre) < 0.25 * h) & (np.abs(su - mid) < w / 2 + w)
        slopes.append(np.polyfit(su[near] - mid, pos[near, 2], 1)[0] if near.sum() >= 2 else 0)
    smooth = np.arctan(slopes)
    tilts, heights = [], []
    for r, theta in zip(rows, smooth, strict=True):
        in_row = unit == r
        z0 = z[in_row & metal_kept].mean()
        du, dz = x[in_row] - mid, z[in_row] - z0
        x[in_row] = mid + du * np.cos(theta) + dz * np.sin(theta)
        z[in_row] = z0 - du * np.sin(theta) + dz * np.cos(theta)
        tilts.append(theta)
        heights.append(z[in_row & metal_kept].mean())
    phi = np.arctan2(heights[-1] - heights[0], centres[-1] - centres[0])
    dn, dz = y - centres[0], z - heights[0]
    y = centres[0] + dn * np.cos(phi) + dz * np.sin(phi)
    z = heights[0] - dn * np.sin(phi) + dz * np.cos(phi)
    scale = (float(np.mean(1.0 / np.cos(tilts))), float(1.0 / np.cos(phi)))
    return x, y, z, scale, float(np.degrees(np.max(np.abs(tilts)))), float(np.degrees(phi))


def _check_rows(species, unit, rows, width) -> None:
    metal = np.isin(species, METALS)
    n_metal = np.bincount(unit[metal], minlength=rows)
    n_other = np.bincount(unit[~metal], minlength=rows)
    bad = np.flatnonzero((n_metal != width) | (n_other != 2 * width))
    if bad.size:
        r = int(bad[0])
        raise InputError(
            f"the strip across the zigzag interface has {n_metal[r]} metal and {n_other[r]} "
            f"chalcogen/vacancy sites in row {r} (of {rows}); each row of {width} periods needs "
            f"{width} and {2 * width}. Sites are missing from the model there, or the lattice "
            "is too distorted: lower phonons.rows or phonons.width."
        )


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
        xs = xyz[sel, 0] - r[sel] * a / 2.0
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
                x = x0 + rr * a / 2.0 + cc * a
                fractional.append([x / w, (y0 + rr * h) / length, z0 / c])
                mapping.append(sites.get((kind, rr, cc)))
    frac = np.mod(np.asarray(fractional), 1.0)
    half = cell.rows // 2
    smat = np.array([[cell.width, -half, 0], [0, cell.rows, 0], [0, 0, 1]])
    primitive = np.array([[a, 0.0, 0.0], [a / 2.0, h, 0.0], [0.0, 0.0, c]])
    return VirtualLattice(
        supercell_matrix=smat, primitive=primitive, ideal_positions=frac, atom_mapping=mapping
    )
