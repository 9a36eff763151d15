"""Densities of states from mode energies, their peaks, and the NNLS bulk decomposition.

Pure numpy kernels: mode energies and eigenvectors in, curves on an energy grid out.
A density of states here is *per atom* (it integrates to 3 over all energies), so
that a cell's DOS and bulk DOS compare directly; imaginary modes sit at negative
energies. Tian et al. (2024) fit the interface PDOS by a non-negative combination of
bulk MoS2 and WSe2 PDOS (Fig. 3D) and list the peaks the combination misses;
:func:`nnls_decomposition` does that.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls
from scipy.signal import find_peaks

from hpcaet.errors import InputError

__all__ = ["density_of_states", "dos_peaks", "nnls_decomposition"]


def density_of_states(
    energies: np.ndarray,
    energy: np.ndarray,
    *,
    sigma: float,
    q_weights: np.ndarray | None = None,
    eigenvectors: np.ndarray | None = None,
    groups: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Gaussian-broadened total and partial DOS per atom.

    Parameters
    ----------
    energies : ndarray of shape (n_q, n_mode)
        Mode energies at each q [meV]; negative for imaginary modes.
    energy : ndarray of shape (n_energy,)
        Grid [meV].
    sigma : float
        Gaussian standard deviation [meV].
    q_weights : ndarray of shape (n_q,), optional
        Weights of the q-points (default equal).
    eigenvectors : ndarray of shape (n_q, 3 * n_atom, n_mode), optional
        Mass-weighted eigenvectors (columns normalised), needed for ``groups``.
    groups : dict of str to ndarray of int, optional
        Atom indices of each group (e.g. species) for the partial DOS.

    Returns
    -------
    dos : ndarray of shape (n_energy,)
        Total DOS per atom [1/meV]; integrates to 3.
    pdos : dict of str to ndarray of shape (n_energy,)
        Partial DOS of each group, per atom of the whole cell [1/meV]; they sum to
        ``dos``.
    """
    e = np.atleast_2d(np.asarray(energies, dtype=float))
    grid = np.asarray(energy, dtype=float)
    if not sigma > 0:
        raise InputError(f"sigma must be > 0 meV; got {sigma}.")
    w = np.ones(len(e)) if q_weights is None else np.asarray(q_weights, dtype=float)
    w = w / w.sum()
    n_atom = e.shape[1] / 3.0
    kernel = np.exp(-0.5 * ((grid[None, None, :] - e[..., None]) / sigma) ** 2)
    kernel /= sigma * np.sqrt(2 * np.pi)
    kernel *= w[:, None, None] / n_atom  # (n_q, n_mode, n_energy)
    dos = kernel.sum(axis=(0, 1))
    pdos = {}
    if groups:
        if eigenvectors is None:
            raise InputError("partial DOS needs the eigenvectors.")
        vec = np.asarray(eigenvectors)
        nq, n3, nm = vec.shape
        amp = (np.abs(vec) ** 2).reshape(nq, n3 // 3, 3, nm).sum(axis=2)  # (q, atom, mode)
        for name, idx in groups.items():
            share = amp[:, np.asarray(idx, dtype=int), :].sum(axis=1)  # (q, mode)
            pdos[name] = np.einsum("qm,qme->e", share, kernel)
    return dos, pdos


def dos_peaks(
    energy: np.ndarray, dos: np.ndarray, *, prominence: float = 0.05, min_energy: float = 1.0
) -> np.ndarray:
    """Energies of the DOS maxima [meV], highest energy first.

    Parameters
    ----------
    energy, dos : ndarray of shape (n_energy,)
    prominence : float, default 0.05
        Least prominence, as a fraction of the DOS maximum.
    min_energy : float, default 1
        Peaks below this energy are ignored (the acoustic onset) [meV].
    """
    dos = np.asarray(dos, dtype=float)
    idx, _ = find_peaks(dos, prominence=prominence * dos.max())
    peaks = np.asarray(energy)[idx]
    return np.sort(peaks[peaks >= min_energy])[::-1]


def nnls_decomposition(
    energy: np.ndarray,
    target: np.ndarray,
    basis: dict[str, np.ndarray],
    *,
    prominence: float = 0.1,
    min_energy: float = 1.0,
) -> dict:
    """Fit ``target`` by a non-negative combination of ``basis`` curves.

    Parameters
    ----------
    energy : ndarray of shape (n_energy,)
        Grid [meV].
    target : ndarray of shape (n_energy,)
        The DOS to explain (e.g. of the interface cell) [1/meV].
    basis : dict of str to ndarray of shape (n_energy,)
        The curves (e.g. bulk MoS2 and WSe2 DOS) [1/meV].
    prominence : float, default 0.1
        Residual peaks must stand this far out, as a fraction of the target's maximum.
    min_energy : float, default 1
        Residual peaks below this energy are ignored [meV].

    Returns
    -------
    dict
        ``weights`` (name -> coefficient >= 0), ``fit`` and ``residual`` (target - fit)
        on the grid, ``residual_peaks`` (energies [meV] where the target exceeds the
        fit, highest first) and ``rms`` (of the residual) [1/meV].
    """
    names = list(basis)
    matrix = np.column_stack([np.asarray(basis[k], dtype=float) for k in names])
    target = np.asarray(target, dtype=float)
    if matrix.shape[0] != target.shape[0]:
        raise InputError(
            f"basis curves have {matrix.shape[0]} points, the target {target.shape[0]}."
        )
    coef, _ = nnls(matrix, target)
    fit = matrix @ coef
    residual = target - fit
    idx, _ = find_peaks(residual, prominence=prominence * target.max())
    idx = idx[residual[idx] > 0]
    peaks = np.asarray(energy)[idx]
    return {
        "weights": dict(zip(names, coef.tolist(), strict=True)),
        "fit": fit,
        "residual": residual,
        "residual_peaks": np.sort(peaks[peaks >= min_energy])[::-1],
        "rms": float(np.sqrt(np.mean(residual**2))),
    }
