"""The crystallographic zigzag interface: the relaxed reference of Fig. S4D.

A perfect strip with as many metal rows of each material as the measured cell, each
side with its bulk monolayer's relaxed row spacing and chalcogen height, both at one
period along the interface (the mean of the two relaxed lattice constants: the
interface is coherent), then relaxed at fixed cell with the same calculator. Its
phonons show what the interface does without the measured defects, ripples and strain.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms

from hpcaet.errors import ConvergenceError, InputError
from hpcaet.phonons.calculators import CalculatorSpec
from hpcaet.phonons.driver import _calculator
from hpcaet.phonons.supercell import StitchedCell

__all__ = ["crystallographic_cell", "ideal_strip"]

log = logging.getLogger(__name__)


def crystallographic_cell(
    cell: StitchedCell,
    bulk: dict,
    materials,
    spec: CalculatorSpec,
    *,
    fmax: float = 1e-3,
    steps: int = 2000,
) -> StitchedCell:
    """The relaxed ideal counterpart of a stitched cell.

    Parameters
    ----------
    cell : StitchedCell
        The measured cell (its rows and width are copied).
    bulk : dict of str to BulkPhonons
        Relaxed bulk monolayers by material name.
    materials : hpcaet.materials.Materials
        The two materials, in the order of the cell (first at negative distances).
    spec : CalculatorSpec
    fmax : float, default 1e-3
        Force tolerance of the relaxation [eV/Å].
    steps : int, default 2000
        Most relaxation steps.

    Returns
    -------
    StitchedCell
    """
    from ase.optimize import FIRE

    parts, constants = [], []
    for m in materials.regions:
        atoms = bulk[m.name].atoms
        a = float(atoms.cell.cellpar()[0])
        z = atoms.positions[:, 2]
        height = float(np.abs(z[1:] - z[0]).mean())
        parts.append((m.metal, m.chalcogen, a * np.sqrt(3.0) / 2.0, height, cell.rows // 2))
        constants.append(a)
    ideal = ideal_strip(parts, lattice_constant=float(np.mean(constants)), width=cell.width)
    atoms = ideal.atoms
    atoms.calc = _calculator(spec, tuple(atoms.get_chemical_symbols()))
    opt = FIRE(atoms, logfile=None)
    if not opt.run(fmax=fmax, steps=steps):
        raise ConvergenceError(
            f"the crystallographic interface did not relax to {fmax} eV/Å in {steps} steps; "
            "raise the step count or check the calculator."
        )
    atoms.calc = None
    log.info(
        "phonons: crystallographic zigzag interface (%d atoms) relaxed in %d steps",
        len(atoms),
        opt.nsteps,
    )
    return ideal


def ideal_strip(
    parts: list[tuple[str, str, float, float, int]],
    *,
    lattice_constant: float,
    width: int,
    vacuum: float = 20.0,
) -> StitchedCell:
    """A perfect 2H strip, periodic, of one material or of materials side by side.

    Parameters
    ----------
    parts : list of (metal, chalcogen, row_spacing, chalcogen_height, rows)
        Each material in turn along ``y``: its metal rows' spacing and the height of
        its chalcogens above and below the metal plane [Å].
    lattice_constant : float
        Period along the zigzag direction ``x``, common to all parts (coherent) [Å].
    width : int
        Periods along ``x``.
    vacuum : float, default 20
        [Å].

    Returns
    -------
    StitchedCell
        With an interface at every change of material (and at the seam when the last
        part differs from the first).
    """
    a = float(lattice_constant)
    symbols, xyz, row, interfaces = [], [], [], []
    y, r = 0.0, 0
    for p, (metal, chalcogen, h, t, n_rows) in enumerate(parts):
        if p > 0 or (len(parts) > 1 and parts[-1][:2] != parts[0][:2]):
            interfaces.append(y - h / 6.0)
        for _ in range(n_rows):
            for k in range(width):
                x = (r * a / 2.0 + k * a) % (width * a)
                symbols += [metal, chalcogen, chalcogen]
                xyz += [[x, y, 0.0], [x + a / 2.0, y + h / 3.0, t], [x + a / 2.0, y + h / 3.0, -t]]
                row += [r, r, r]
            y += h
            r += 1
    if r % 2:
        raise InputError(f"an ideal strip needs an even number of rows; got {r}.")
    height = 2 * max(part[3] for part in parts) + vacuum
    xyz = np.asarray(xyz) + [0.0, parts[0][2] / 6.0, height / 2.0]
    atoms = Atoms(symbols=symbols, positions=xyz, cell=np.diag([width * a, y, height]), pbc=True)
    atoms.wrap()
    return StitchedCell(
        atoms=atoms,
        source_index=np.full(len(atoms), -1),
        row=np.asarray(row),
        interfaces=np.asarray(interfaces) + parts[0][2] / 6.0 if interfaces else np.zeros(0),
        width=width,
        rows=r,
        lattice_constant=a,
    )
