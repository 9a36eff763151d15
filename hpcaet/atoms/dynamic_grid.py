"""Which atoms a dynamic refinement scans, and the grid of positions it tries.

:func:`select_outliers` picks the atoms of the configured species (S by default) that
the atom model's quality checks flag (:func:`hpcaet.atoms.quality.atom_flags`: nearer
than the minimum distance to another atom, or farther than the off-layer distance from
their layer's local surface), as in the Methods of Tian et al. ("Dynamic refinement of
the S atoms near the W atoms": 19 outlier S atoms). :class:`ScanGrid` is the grid of
trial displacements of one atom (the paper's ±40 pm in x and y by 20 pm and ±120 pm in
z by 30 pm: 5 × 5 × 9 = 225 points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpcaet.atoms.pairs import VACANCY
from hpcaet.atoms.quality import atom_flags
from hpcaet.errors import InputError
from hpcaet.geometry import euler_to_matrix

__all__ = ["ScanGrid", "select_outliers", "check_atom_indices", "projected_reach"]


@dataclass(frozen=True)
class ScanGrid:
    """Trial displacements of one atom on a regular grid centred on its position.

    Attributes
    ----------
    half_width : (float, float, float)
        Largest displacement along x, y, z [Å] (paper: 0.4, 0.4, 1.2).
    step : (float, float, float)
        Grid step along x, y, z [Å] (paper: 0.2, 0.2, 0.3).

    Examples
    --------
    >>> ScanGrid((0.4, 0.4, 1.2), (0.2, 0.2, 0.3)).shape
    (5, 5, 9)
    """

    half_width: tuple[float, float, float]
    step: tuple[float, float, float]

    def __post_init__(self):
        h = np.asarray(self.half_width, float)
        s = np.asarray(self.step, float)
        if h.shape != (3,) or s.shape != (3,) or not (np.all(h >= 0) and np.all(s > 0)):
            raise InputError(
                f"the scan grid needs three half-widths >= 0 and three steps > 0 [Å] (x, y, "
                f"z); got half-widths {self.half_width} and steps {self.step}."
            )
        counts = h / s
        if not np.allclose(counts, np.round(counts), atol=1e-6):
            raise InputError(
                f"each scan half-width must be a whole number of steps; got half-widths "
                f"{self.half_width} Å and steps {self.step} Å (e.g. 0.4 by 0.2, 1.2 by 0.3)."
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Points along x, y, z."""
        h, s = np.asarray(self.half_width, float), np.asarray(self.step, float)
        return tuple(int(2 * round(v) + 1) for v in h / s)

    def axes(self) -> list[np.ndarray]:
        """The displacements along x, y and z [Å], each increasing."""
        return [
            s * np.arange(-(n // 2), n // 2 + 1)
            for s, n in zip(np.asarray(self.step, float), self.shape, strict=True)
        ]

    def offsets(self) -> np.ndarray:
        """Every grid point, ndarray of shape (nx * ny * nz, 3) [Å], x slowest, z fastest."""
        gx, gy, gz = np.meshgrid(*self.axes(), indexing="ij")
        return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)


def projected_reach(grid: ScanGrid, euler: np.ndarray) -> np.ndarray:
    """Farthest a grid displacement moves the atom's projection in each image [Å].

    Parameters
    ----------
    grid : ScanGrid
    euler : ndarray of shape (m, 3)
        Euler angles of the images [deg].

    Returns
    -------
    ndarray of shape (m,)
    """
    corners = np.array(np.meshgrid(*[[-h, h] for h in grid.half_width])).reshape(3, -1).T
    return np.array(
        [np.hypot(*(corners @ euler_to_matrix(e).T)[:, :2].T).max() for e in np.atleast_2d(euler)]
    )


def select_outliers(
    position: np.ndarray,
    species: np.ndarray,
    *,
    scan_species: Sequence[str],
    min_distance: float,
    off_layer: float,
    smoothing: float,
) -> np.ndarray:
    """Indices of the atoms of ``scan_species`` that are too close or off their layer.

    Parameters
    ----------
    position : ndarray of shape (n, 3)
        Sites [Å] (vacancy sites are never selected).
    species : ndarray of str, shape (n,)
    scan_species : sequence of str
        Species to scan (the paper: S).
    min_distance : float
        An atom nearer than this to another atom is an outlier [Å] (paper: 1.6).
    off_layer : float
        An atom farther than this from its layer's local surface is an outlier [Å]
        (paper: 1.0).
    smoothing : float
        Width of the local layer surfaces [Å] (:func:`hpcaet.atoms.layers.fit_layers`).

    Returns
    -------
    ndarray of int
        Increasing site indices.
    """
    species = np.asarray(species).astype(str)
    flag, _ = atom_flags(
        np.asarray(position, float),
        species,
        min_distance=min_distance,
        off_layer=off_layer,
        smoothing=smoothing,
    )
    wanted = np.isin(species, list(scan_species)) & (species != VACANCY)
    return np.flatnonzero((flag != 0) & wanted)


def check_atom_indices(requested: Sequence[int], outliers: np.ndarray, n_sites: int) -> np.ndarray:
    """The requested atoms, refused unless each is a flagged outlier.

    Raises
    ------
    InputError
        Naming the index that is out of range or not flagged, and the flagged ones.
    """
    out = []
    for i in requested:
        if int(i) != i or not 0 <= i < n_sites:
            raise InputError(
                f"atom index {i} is not a site of the model (0 .. {n_sites - 1}); pass "
                f"indices of flagged outliers: {outliers.tolist()}."
            )
        if int(i) not in set(outliers.tolist()):
            raise InputError(
                f"atom {i} is not a flagged outlier of the scanned species, so the dynamic "
                f"refinement would not scan it; flagged atoms: {outliers.tolist()}."
            )
        out.append(int(i))
    return np.asarray(sorted(set(out)), dtype=int)
