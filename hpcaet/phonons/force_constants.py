"""Harmonic force constants from (displacement, force) snapshots, with phonopy.

Physics codes are plugged in as data: phonopy proposes the displaced snapshots, the
driver (:mod:`hpcaet.phonons.driver`) computes their forces anywhere, and the fit
happens here. No coordinate is relaxed; the residual forces of the unrelaxed
reference are subtracted from every snapshot before the fit.

Two kinds of snapshot data:

``"finite"``
    One atom displaced per snapshot, along ± x, y, z (phonopy's systematic set);
    fitted by phonopy's least-squares solver per atom (exact for a harmonic
    potential, no cutoff). ``3 * 2 * n_atom`` force calls on a P1 cell.
``"random"`` and ``"md"``
    Every atom displaced (random displacements of a fixed norm, or molecular
    dynamics snapshots); fitted by least squares with symfc (phonopy's
    ``fc_calculator="symfc"``) with a real-space ``cutoff``, which bounds memory: a
    144-atom P1 cell needs a cutoff (4–5 Å, a few GB).

Frequencies are in THz inside phonopy; :data:`THZ_TO_MEV` converts.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms

from hpcaet.errors import InputError

__all__ = ["THZ_TO_MEV", "make_phonopy", "snapshot_positions", "fit_force_constants"]

log = logging.getLogger(__name__)

#: Planck's constant in meV / THz: E [meV] = THZ_TO_MEV * f [THz].
THZ_TO_MEV = 4.135667696


def _require_phonopy():
    try:
        import phonopy
    except ImportError:
        raise InputError(
            "the phonon stage needs phonopy and symfc; install them with: "
            "pip install 'hpcaet[phonons]'"
        ) from None
    return phonopy


def make_phonopy(atoms: Atoms, *, repeat=(1, 1, 1), symprec: float = 1e-5):
    """A Phonopy object of a cell, its force-constant supercell ``repeat`` times it.

    Parameters
    ----------
    atoms : ase.Atoms
        The cell [Å], as it is (never relaxed here).
    repeat : sequence of 3 int
        Supercell of the force constants, in cells along each cell vector: long
        enough that an atom's interactions do not reach its own images.
    symprec : float, default 1e-5
        Symmetry tolerance [Å]; a measured cell comes out P1.

    Returns
    -------
    phonopy.Phonopy
    """
    _require_phonopy()
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(wrap=True),
    )
    return Phonopy(
        unit,
        supercell_matrix=np.diag(np.asarray(repeat, dtype=int)),
        primitive_matrix="P",
        symprec=symprec,
    )


def snapshot_positions(
    phonon,
    *,
    method: str = "finite",
    distance: float = 0.01,
    n_snapshots: int = 0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Positions of the displaced supercells whose forces the fit needs.

    Parameters
    ----------
    phonon : phonopy.Phonopy
        From :func:`make_phonopy`; its dataset is set here.
    method : {"finite", "random"}
        One atom per snapshot (± along x, y, z), or every atom displaced.
    distance : float, default 0.01
        Displacement length [Å].
    n_snapshots : int
        Number of random snapshots (``"random"`` only).
    rng : numpy.random.Generator, int or None
        Seed of the random displacements.

    Returns
    -------
    ndarray of shape (n_snapshot, n_supercell_atom, 3)
        Cartesian positions [Å].
    """
    if not distance > 0:
        raise InputError(f"the displacement distance must be > 0 Å; got {distance}.")
    if method == "finite":
        phonon.generate_displacements(distance=distance, is_plusminus=True)
    elif method == "random":
        if n_snapshots < 1:
            raise InputError(f"random snapshots need n_snapshots >= 1; got {n_snapshots}.")
        seed = int(np.random.default_rng(rng).integers(2**31 - 1))
        phonon.generate_displacements(
            distance=distance, number_of_snapshots=n_snapshots, random_seed=seed
        )
    else:
        raise InputError(f"method must be 'finite' or 'random'; got {method!r}.")
    return np.array([s.positions for s in phonon.supercells_with_displacements])


def fit_force_constants(
    phonon,
    forces: np.ndarray,
    *,
    reference_forces: np.ndarray | None = None,
    displacements: np.ndarray | None = None,
    cutoff: float | None = None,
) -> np.ndarray:
    """Fit the harmonic force constants and store them in ``phonon``.

    Parameters
    ----------
    phonon : phonopy.Phonopy
    forces : ndarray of shape (n_snapshot, n_supercell_atom, 3)
        Forces on the snapshots [eV/Å].
    reference_forces : ndarray of shape (n_supercell_atom, 3), optional
        Forces on the undisplaced (unrelaxed) supercell, subtracted from each snapshot.
    displacements : ndarray of shape (n_snapshot, n_supercell_atom, 3), optional
        Displacements of every atom (random or MD snapshots) [Å]; fitted with symfc.
        Without it, the snapshots are those of :func:`snapshot_positions` and the
        matching fitter is used (phonopy's solver for ``"finite"``, symfc for
        ``"random"``).
    cutoff : float, optional
        symfc's real-space cutoff of the force constants [Å]; None: none (memory
        grows as the square of the supercell).

    Returns
    -------
    ndarray of shape (n_supercell_atom, n_supercell_atom, 3, 3)
        Force constants [eV/Å²].
    """
    forces = np.asarray(forces, dtype=float)
    n = len(phonon.supercell)
    if forces.ndim != 3 or forces.shape[1:] != (n, 3):
        raise InputError(f"forces must have shape (n_snapshot, {n}, 3); got {forces.shape}.")
    if reference_forces is not None:
        forces = forces - np.asarray(reference_forces)[None]
    options = None if cutoff is None else f"cutoff = {float(cutoff)}"
    if displacements is not None:
        displacements = np.asarray(displacements, dtype=float)
        if displacements.shape != forces.shape:
            raise InputError(
                f"displacements {displacements.shape} and forces {forces.shape} must match."
            )
        phonon.dataset = {"displacements": displacements, "forces": forces}
        fitter = "symfc"
    else:
        if phonon.dataset is None:
            raise InputError("call snapshot_positions first, or pass the displacements.")
        phonon.forces = forces
        fitter = "symfc" if "displacements" in phonon.dataset else "traditional"
    log.info("phonons: fitting force constants (%s, %d snapshots)", fitter, len(forces))
    phonon.produce_force_constants(
        fc_calculator=fitter,
        fc_calculator_options=options if fitter == "symfc" else None,
        show_drift=False,
    )
    return np.asarray(phonon.force_constants)
