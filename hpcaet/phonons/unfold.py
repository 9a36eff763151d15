"""Phonons of a supercell unfolded onto the primitive hexagonal cell.

Allen et al., Phys. Rev. B 87, 085322 (2013), as implemented by phonopy's
:class:`phonopy.unfolding.core.Unfolding`: each supercell mode at the supercell wave
vector ``K`` gets a weight in [0, 1] for the primitive wave vector ``k = K + G``, the
overlap of its eigenvector with Bloch waves of the virtual primitive lattice; the
weights of one ``k`` sum to ``3 n_primitive``. The atoms of a measured (distorted,
mixed) cell are mapped to a uniform virtual lattice first
(:func:`hpcaet.phonons.supercell.virtual_lattice`); vacancies are empty sites.

The spectral function ``A(k, E) = sum_J w_J(k) g(E - E_J(k))`` is broadened by a
Gaussian of standard deviation ``sigma``, per primitive cell: its integral over ``E``
at each ``k`` is ``3`` times the number of atoms of the primitive cell.
"""

from __future__ import annotations

import numpy as np

from hpcaet.errors import InputError
from hpcaet.phonons.force_constants import THZ_TO_MEV
from hpcaet.phonons.supercell import VirtualLattice

__all__ = ["hexagonal_path", "unfold", "spectral_function", "supercell_lattice"]


def hexagonal_path(primitive: np.ndarray, *, points: int = 60) -> tuple[np.ndarray, np.ndarray, dict]:
    """The path Γ–M–K–Γ of a hexagonal primitive cell.

    Parameters
    ----------
    primitive : ndarray of shape (3, 3)
        Rows: primitive vectors ``a1``, ``a2`` (60° apart, equal length), ``a3`` [Å].
    points : int, default 60
        q-points along the whole path.

    Returns
    -------
    qpoints : ndarray of shape (points, 3)
        Reduced coordinates in the primitive reciprocal basis.
    distance : ndarray of shape (points,)
        Distance along the path [1/Å] (without the factor 2π).
    labels : dict
        Distance of each corner: ``{"Γ": 0, "M": .., "K": .., "Γ'": ..}``.
    """
    corners = np.array([[0, 0, 0], [0.5, 0, 0], [2 / 3, -1 / 3, 0], [0, 0, 0]], dtype=float)
    recip = np.linalg.inv(np.asarray(primitive, dtype=float)).T  # rows b_i, a_i . b_j = δ_ij
    cart = corners @ recip
    seg = np.linalg.norm(np.diff(cart, axis=0), axis=1)
    total = seg.sum()
    s = np.linspace(0.0, total, points)
    edges = np.concatenate([[0.0], np.cumsum(seg)])
    q = np.empty((points, 3))
    for i, x in enumerate(s):
        k = min(int(np.searchsorted(edges, x, side="right")) - 1, 2)
        t = (x - edges[k]) / seg[k]
        q[i] = corners[k] + t * (corners[k + 1] - corners[k])
    labels = dict(zip(("Γ", "M", "K", "Γ'"), edges.tolist(), strict=True))
    return q, s, labels


def supercell_lattice(lattice: VirtualLattice, phonon) -> VirtualLattice:
    """The virtual lattice of ``phonon.supercell`` (the cell repeated), from the cell's."""
    ratio = np.rint(np.diag(phonon.supercell_matrix)).astype(int)
    if not np.allclose(phonon.supercell_matrix, np.diag(ratio)):
        raise InputError("only diagonal force-constant supercells can be unfolded.")
    unit = phonon.unitcell
    sc = phonon.supercell
    n_unit = len(unit)
    # supercell atom of each (unit atom, translation)
    lookup = {}
    for j, (first, pos) in enumerate(zip(sc.s2u_map, sc.scaled_positions, strict=True)):
        unit_atom = int(sc.u2u_map[first])
        shift = np.rint(pos * ratio - unit.scaled_positions[unit_atom]).astype(int)
        lookup[(unit_atom, *np.mod(shift, ratio).tolist())] = j
    ideal, mapping = [], []
    for t0 in range(ratio[0]):
        for t1 in range(ratio[1]):
            for t2 in range(ratio[2]):
                t = np.array([t0, t1, t2])
                for frac, atom in zip(lattice.ideal_positions, lattice.atom_mapping, strict=True):
                    ideal.append((frac + t) / ratio)
                    mapping.append(None if atom is None else lookup[(atom, t0, t1, t2)])
    smat = lattice.supercell_matrix @ np.diag(ratio)
    if n_unit * np.prod(ratio) != len(sc):  # pragma: no cover - phonopy's invariant
        raise InputError("the force-constant supercell does not repeat the cell.")
    return VirtualLattice(
        supercell_matrix=smat,
        primitive=lattice.primitive,
        ideal_positions=np.mod(np.asarray(ideal), 1.0),
        atom_mapping=mapping,
    )


def unfold(phonon, lattice: VirtualLattice, qpoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Supercell mode energies and their unfolding weights at primitive wave vectors.

    Parameters
    ----------
    phonon : phonopy.Phonopy
        With force constants; its *supercell* is unfolded.
    lattice : VirtualLattice
        Of ``phonon.supercell`` (:func:`supercell_lattice`).
    qpoints : ndarray of shape (n_q, 3)
        Reduced coordinates in the virtual primitive reciprocal basis.

    Returns
    -------
    energies : ndarray of shape (n_q, n_mode)
        [meV]; negative for imaginary modes.
    weights : ndarray of shape (n_q, n_mode)
        Unfolding weights; each row sums to 3 x (sites of the primitive cell).
    """
    from phonopy.unfolding.core import Unfolding

    run = Unfolding(
        phonon,
        lattice.supercell_matrix,
        lattice.ideal_positions,
        lattice.atom_mapping,
        np.asarray(qpoints, dtype=float),
    )
    run.run()
    return np.asarray(run.frequencies) * THZ_TO_MEV, np.asarray(run.unfolding_weights)


def spectral_function(
    energies: np.ndarray, weights: np.ndarray, energy: np.ndarray, *, sigma: float
) -> np.ndarray:
    """Gaussian-broadened unfolded spectral function.

    Parameters
    ----------
    energies, weights : ndarray of shape (n_q, n_mode)
        From :func:`unfold` [meV].
    energy : ndarray of shape (n_energy,)
        Grid [meV].
    sigma : float
        Gaussian standard deviation [meV].

    Returns
    -------
    ndarray of shape (n_q, n_energy)
        [1/meV].
    """
    if not sigma > 0:
        raise InputError(f"sigma must be > 0 meV; got {sigma}.")
    g = np.exp(-0.5 * ((np.asarray(energy)[None, None, :] - energies[..., None]) / sigma) ** 2)
    g /= sigma * np.sqrt(2 * np.pi)
    return np.einsum("qm,qme->qe", weights, g)
