"""Cutting one strip of a stitched cell out of an atom model (private helpers).

:func:`cut_strip` walks along a zigzag segment from its middle and returns the first
strip that is complete (``width`` metals and ``2 width`` chalcogen sites in every row)
and has no two atoms nearer than the bound, with its rows turned flat
(:func:`_flatten`). :mod:`hpcaet.phonons.supercell` makes a periodic cell of one strip
or of two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from hpcaet.errors import InputError
from hpcaet.materials import CHALCOGENS, METALS, VACANCY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Strip:
    """A strip across one interface, turned flat, in its own frame.

    Attributes
    ----------
    source : ndarray of int
        Model index of each atom (vacancy sites dropped).
    unit : ndarray of int
        Unit (metal row with its chalcogens) of each atom, 0 at the lower cut.
    xyz : ndarray of shape (n, 3)
        Positions [Å]: ``x`` from the start of unit 0's window, ``y`` from the lower
        cut, ``z`` as turned.
    period, length : float
        Period along the interface and length across it [Å].
    interface : float
        ``y`` of the interface [Å].
    rows : int
    dropped : int
        Vacancy sites left out.
    tilt, turn : float
        Largest row tilt removed, and the turn across [deg].
    offset : float
        Distance of the strip from the segment's middle [Å].
    """

    source: np.ndarray
    unit: np.ndarray
    xyz: np.ndarray
    period: float
    length: float
    interface: float
    rows: int
    dropped: int
    tilt: float
    turn: float
    offset: float


def cut_strip(pos, species, frame, *, segment_length, spacing, sides, width, min_distance):
    """The complete strip nearest the middle of a zigzag segment.

    Parameters
    ----------
    pos : ndarray of shape (n, 3)
    species : ndarray of str, shape (n,)
    frame : tuple
        ``(origin, u, n)``: the segment's middle, the zigzag direction and the normal.
    segment_length, spacing : float
        [Å].
    sides : tuple of 2 int
        Metal rows below (``n < 0``) and above the interface.
    width : int
    min_distance : float
        [Å]; checked within the strip and across its periodic sides along ``u``.

    Returns
    -------
    Strip

    Raises
    ------
    InputError
        When no position along the segment gives a usable strip (the message of the
        one nearest the middle).
    """
    origin, u, n = frame
    rel = pos[:, :2] - origin
    su, sn = rel @ u, rel @ n
    h = spacing * np.sqrt(3.0) / 2.0
    is_metal = np.isin(species, METALS)
    is_site = np.isin(species, METALS + CHALCOGENS + (VACANCY,))
    sorting = _paired_n(pos, sn, np.isin(species, CHALCOGENS + (VACANCY,)))
    near = is_metal & (np.abs(sn) < 2 * h) & (np.abs(su) <= segment_length / 2)
    order = np.argsort(np.abs(su[near]))
    failures = []
    for centre, centre_n in np.column_stack([su[near][order], sn[near][order]]):
        try:
            idx, unit, cut_lo, cut_hi, lo_u, a = _strip_at(
                centre, centre_n, su, sorting, species, is_metal, is_site, spacing, sides, width
            )
            keep = species[idx] != VACANCY
            kept, unit = idx[keep], unit[keep]
            x, y, z, scale, tilt, turn = _flatten(
                pos, su, sn, kept, unit, is_metal, (lo_u, width * a), h
            )
            strip = Strip(
                source=kept,
                unit=unit,
                xyz=np.column_stack([x - lo_u, y - cut_lo, z]),
                period=width * a * scale[0],
                length=(cut_hi - cut_lo) * scale[1],
                interface=-cut_lo * scale[1],
                rows=int(sum(sides)),
                dropped=int((~keep).sum()),
                tilt=tilt,
                turn=turn,
                offset=float(abs(centre)),
            )
            _check_open(strip, species, min_distance)
            break
        except InputError as exc:
            failures.append(str(exc))
    else:
        raise InputError(
            f"no position along the zigzag segment ({len(order)} tried) gives a usable "
            f"strip; nearest its middle: {failures[0] if failures else 'no metal near it'}"
        )
    if failures:
        log.warning(
            "phonons: strip placed %.1f Å from the segment's middle; %d nearer positions "
            "failed, e.g.: %s",
            strip.offset,
            len(failures),
            failures[0],
        )
    return strip


def _paired_n(pos, sn, chalcogen):
    """``n`` for sorting sites into rows: a top and bottom chalcogen share their mean.

    Where the sheet leans across the strip the two chalcogens of a column project apart
    along ``n``; sorting by their mean keeps them in one unit.
    """
    from scipy.spatial import cKDTree

    out = sn.copy()
    idx = np.flatnonzero(chalcogen)
    if idx.size < 2:
        return out
    dist, nearest = cKDTree(pos[idx, :2]).query(pos[idx, :2], k=2)
    partner = idx[nearest[:, 1]]
    apart = np.abs(pos[idx, 2] - pos[partner, 2]) > 1.5  # one above, one below the metals
    mutual = nearest[nearest[:, 1], 1] == np.arange(idx.size)
    ok = (dist[:, 1] < 1.2) & apart & mutual
    out[idx[ok]] = 0.5 * (sn[idx[ok]] + sn[partner[ok]])
    return out


def _check_open(strip, species, min_distance):
    """Distances within a strip, periodic along ``u`` only (its ends are not joined yet)."""
    from hpcaet.phonons.supercell import check_distances

    atoms = Atoms(
        symbols=species[strip.source].tolist(),
        positions=strip.xyz,
        cell=np.diag([strip.period, strip.length + 10.0, 100.0]),
        pbc=(True, False, False),
    )
    check_distances(atoms, min_distance=min_distance)


def _strip_at(centre, centre_n, su, sn, species, is_metal, is_site, spacing, sides, width):
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
    n_below, n_above = sides
    rows = n_below + n_above
    below, above = row_n[row_n < 0], row_n[row_n >= 0]
    if len(below) < n_below or len(above) < n_above + 1:
        raise InputError(
            f"the zigzag interface has {len(below)} metal rows on one side and {len(above)} "
            f"on the other within the model; the strip needs {n_below} and {n_above + 1} "
            "(one more to cut at). Lower phonons.rows or use a larger field."
        )
    chosen = np.concatenate([below[len(below) - n_below :], above[: n_above + 1]])
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
