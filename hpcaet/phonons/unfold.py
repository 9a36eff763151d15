"""Phonons of a supercell unfolded onto the primitive hexagonal cell.

Allen et al., Phys. Rev. B 87, 085322 (2013), in the phase convention of phonopy's
:class:`phonopy.unfolding.core.Unfolding` (a test checks the two agree), vectorised over
the modes and run on the cell itself, not on its force-constant supercell. Each mode of
the cell at its wave vector ``K`` gets a weight in [0, 1] for the primitive wave
vector ``k = K + G``: the overlap of its eigenvector with Bloch waves of the virtual
primitive lattice. For a perfect crystal the weights of one ``k`` sum to
``3 n_primitive``. The atoms of a measured (distorted, mixed) cell are mapped to a
uniform virtual lattice first (:func:`hpcaet.phonons.supercell.virtual_lattice`);
vacancies are empty sites.

The spectral function ``A(k, E) = sum_J w_J(k) g(E - E_J(k))`` is broadened by a
Gaussian of standard deviation ``sigma``, per primitive cell: its integral over ``E``
at each ``k`` is the sum of the weights.
"""

from __future__ import annotations

import numpy as np

from hpcaet.errors import InputError
from hpcaet.phonons.force_constants import THZ_TO_MEV
from hpcaet.phonons.supercell import VirtualLattice

__all__ = ["hexagonal_path", "unfold", "spectral_function"]


def hexagonal_path(
    primitive: np.ndarray, *, points: int = 60
) -> tuple[np.ndarray, np.ndarray, dict]:
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


def unfold(phonon, lattice: VirtualLattice, qpoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mode energies of a cell and their unfolding weights at primitive wave vectors.

    Allen et al. (2013), Eq. (7), in phonopy's phase convention: with ``k = K + G``
    (``K`` in the cell's Brillouin zone, ``G`` one of its commensurate points), the
    weight of cell mode ``J`` is ``N sum_b |(1/N) sum_t exp(-2 pi i G.t) e_{b,t}^J(K)|^2``
    over the ``N`` virtual primitive translations ``t`` and the sites ``b`` of the
    primitive cell (vacant sites contribute nothing).

    Parameters
    ----------
    phonon : phonopy.Phonopy
        With force constants; its unit cell is the cell of ``lattice``.
    lattice : VirtualLattice
        Of ``phonon.unitcell`` (:func:`~hpcaet.phonons.supercell.virtual_lattice`).
    qpoints : ndarray of shape (n_q, 3)
        Reduced coordinates in the virtual primitive reciprocal basis.

    Returns
    -------
    energies : ndarray of shape (n_q, n_mode)
        [meV]; negative for imaginary modes.
    weights : ndarray of shape (n_q, n_mode)
        Unfolding weights; each row sums to the number of occupied primitive sites
        times 3 for a perfect crystal.
    """
    smat = np.asarray(lattice.supercell_matrix, dtype=float)
    n_cells = int(round(abs(np.linalg.det(smat))))
    index, trans = _site_table(lattice, smat, n_cells, len(phonon.unitcell))
    q_p = np.atleast_2d(np.asarray(qpoints, dtype=float))
    q_s = q_p @ smat
    q_s -= np.rint(q_s)
    g = q_p - q_s @ np.linalg.inv(smat)  # commensurate points, primitive reciprocal basis
    phonon.run_qpoints(q_s, with_eigenvectors=True)
    freqs = np.asarray(phonon.qpoints.frequencies)
    vecs = np.asarray(phonon.qpoints.eigenvectors)
    n_atom = len(phonon.unitcell)
    weights = np.empty_like(freqs)
    for k in range(len(q_p)):
        e = vecs[k].reshape(n_atom, 3, -1)
        e = np.concatenate([e, np.zeros((1, *e.shape[1:]), e.dtype)])  # the vacancy row
        phase = np.exp(-2j * np.pi * trans @ g[k])  # (N,)
        folded = np.einsum("t,btcm->bcm", phase, e[index]) / n_cells
        weights[k] = n_cells * (np.abs(folded) ** 2).sum(axis=(0, 1))
    return freqs * THZ_TO_MEV, weights


def _site_table(lattice, smat, n_cells, n_atom):
    """Atom on each (primitive site, translation), -1 -> the zero row; and the translations."""
    frac_p = np.asarray(lattice.ideal_positions) @ smat.T
    trans = np.floor(frac_p + 1e-6)
    base = np.round(frac_p - trans, 6) % 1.0
    # one representative per translation: reduce modulo the cell's own lattice
    in_cell = (trans @ np.linalg.inv(smat).T + 1e-8) % 1.0
    trans = np.rint(in_cell @ smat.T)
    sites, site_of = np.unique(np.round(base, 4), axis=0, return_inverse=True)
    site_of = np.asarray(site_of).ravel()
    keys = sorted({tuple(t) for t in trans.astype(int).tolist()})
    if len(sites) * n_cells != len(frac_p) or len(keys) != n_cells:
        raise InputError(
            f"the virtual lattice has {len(frac_p)} sites on {len(sites)} primitive sites and "
            f"{len(keys)} translations; {n_cells} translations were expected."
        )
    slot = {t: i for i, t in enumerate(keys)}
    index = np.full((len(sites), n_cells), n_atom, dtype=int)
    for p, (b, t) in enumerate(zip(site_of, trans.astype(int).tolist(), strict=True)):
        atom = lattice.atom_mapping[p]
        index[b, slot[tuple(t)]] = n_atom if atom is None else int(atom)
    return index, np.array(keys, dtype=float)


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
