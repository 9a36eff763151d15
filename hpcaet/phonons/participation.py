"""Participation ratios of phonon modes, plain and weighted by distance to the interface.

Bell & Dean (1970); Tian et al. (2024), supplementary "Participation ratios". With
``e`` the mass-weighted eigenvector of a mode (normalised) and ``u_a = e_a / sqrt(M_a)``
the displacement of atom ``a``,

    PR = (sum_a |u_a|^2)^2 / (N sum_a |u_a|^4),

1 for a mode in which every atom moves equally (a plane wave on a one-species
lattice), ~1/N for a mode on one atom. The *interface participation* of a mode is the
weight of its eigenvector on the interface,

    P_w = sum_a w_a |e_a|^2,   w_a ∝ exp(-d_a^2 / (2 s^2)),   sum_a w_a = 1,

with ``d_a`` the distance of atom ``a`` to the nearest interface: 1/N for a mode spread
evenly over the cell (and on average over all modes), larger for a mode localised at
the interface (the paper compares with 1/144).
"""

from __future__ import annotations

import numpy as np

from hpcaet.errors import InputError

__all__ = ["participation_ratio", "interface_weights", "interface_participation"]


def _amplitudes(eigenvectors: np.ndarray) -> np.ndarray:
    vec = np.asarray(eigenvectors)
    if vec.ndim != 2 or vec.shape[0] % 3:
        raise InputError(f"eigenvectors must have shape (3 * n_atom, n_mode); got {vec.shape}.")
    return (np.abs(vec) ** 2).reshape(vec.shape[0] // 3, 3, vec.shape[1]).sum(axis=1)


def participation_ratio(eigenvectors: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Participation ratio of each mode.

    Parameters
    ----------
    eigenvectors : ndarray of shape (3 * n_atom, n_mode)
        Mass-weighted eigenvectors (columns), as phonopy returns them.
    masses : ndarray of shape (n_atom,)
        Atomic masses [amu].

    Returns
    -------
    ndarray of shape (n_mode,)
        In (0, 1].
    """
    amp = _amplitudes(eigenvectors) / np.asarray(masses, dtype=float)[:, None]  # |u_a|^2
    n = amp.shape[0]
    return amp.sum(axis=0) ** 2 / (n * (amp**2).sum(axis=0))


def interface_weights(distance: np.ndarray, *, width: float) -> np.ndarray:
    """Gaussian weights of the distances to the interface, summing to one.

    Parameters
    ----------
    distance : ndarray of shape (n_atom,)
        Distance of each atom to the nearest interface [Å].
    width : float
        Standard deviation of the Gaussian [Å].
    """
    if not width > 0:
        raise InputError(f"the interface width must be > 0 Å; got {width}.")
    w = np.exp(-0.5 * (np.asarray(distance, dtype=float) / width) ** 2)
    return w / w.sum()


def interface_participation(eigenvectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weight of each mode on the interface atoms, ``sum_a w_a |e_a|^2``.

    Parameters
    ----------
    eigenvectors : ndarray of shape (3 * n_atom, n_mode)
        Mass-weighted eigenvectors (columns normalised).
    weights : ndarray of shape (n_atom,)
        From :func:`interface_weights` (summing to one).

    Returns
    -------
    ndarray of shape (n_mode,)
        In [0, 1]; 1/n_atom for a mode spread evenly.
    """
    return np.asarray(weights, dtype=float) @ _amplitudes(eigenvectors)
