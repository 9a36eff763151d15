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

from hpcaet.errors import ConvergenceError
from hpcaet.phonons.calculators import CalculatorSpec
from hpcaet.phonons.driver import _calculator
from hpcaet.phonons.supercell import StitchedCell, ideal_strip

__all__ = ["crystallographic_cell"]

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
