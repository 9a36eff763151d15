"""Ideal 2H transition-metal-dichalcogenide monolayer and its reference images.

The vibration step compares a crop of each image with a *reference lattice image*: the
linear ADF image (:func:`hpcaet.forward.project_atoms`) of an ideal, flat MoS2 monolayer
seen at that image's Euler angles, blurred by the probe but not by any vibration. The
background step uses the same picture to learn how much signal the atom tails leave at
the hexagon centres at each tilt.

The sheet lies in the sample x-y plane with its zigzag direction (the metal lattice
vector ``a1``) along x, metals at ``n1 a1 + n2 a2`` and the chalcogen pairs at
``(a1 + a2) / 3`` from them, ``± h`` out of plane, as in :mod:`hpcaet.phantom`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.errors import InputError
from hpcaet.forward import project_atoms
from hpcaet.forward.kernels import probe_b_factor
from hpcaet.geometry import euler_to_matrix

__all__ = ["LatticeModel", "ideal_monolayer", "reference_image", "bright_columns"]


@dataclass(frozen=True)
class LatticeModel:
    """Parameters of an ideal monolayer of formula M X2.

    Attributes
    ----------
    lattice_constant : float
        In-plane lattice constant ``a`` [Å] (3.16 for MoS2).
    chalcogen_height : float
        Height of each chalcogen layer above/below the metal plane [Å].
    metal_weight, chalcogen_weight : float
        Integrated ADF cross-sections of one metal and one chalcogen atom [Å²].
    metal_b, chalcogen_b : float
        B-factors [Å²].
    probe_fwhm : float
        FWHM of the probe intensity [Å], added to every atom's blur.
    """

    lattice_constant: float
    chalcogen_height: float
    metal_weight: float
    chalcogen_weight: float
    metal_b: float
    chalcogen_b: float
    probe_fwhm: float

    def __post_init__(self):
        for name in ("lattice_constant", "metal_weight", "metal_b", "chalcogen_b"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"LatticeModel.{name} must be positive; got {value!r}.")
        for name in ("chalcogen_height", "chalcogen_weight", "probe_fwhm"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise InputError(f"LatticeModel.{name} must be >= 0; got {value!r}.")

    @property
    def chalcogen_columns_brighter(self) -> bool:
        """Whether a chalcogen pair outshines a metal (MoSe2: 2 x 0.040 > 0.056 Å²).

        The columns the preprocessing finds and tracks are then chalcogen columns as
        well as metals (:func:`bright_columns`).
        """
        return 2 * self.chalcogen_weight > self.metal_weight


def ideal_monolayer(
    model: LatticeModel, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Atoms of an ideal monolayer within ``radius`` of the origin (in-plane).

    Parameters
    ----------
    model : LatticeModel
    radius : float
        In-plane radius of the disc of atoms kept [Å].

    Returns
    -------
    positions : ndarray of shape (n, 3)
        Sample-frame positions [Å].
    weights : ndarray of shape (n,)
        Cross-sections [Å²].
    b_factors : ndarray of shape (n,)
        B-factors [Å²] including the probe blur.
    is_metal : ndarray of bool, shape (n,)
    """
    a = model.lattice_constant
    a1, a2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
    n = int(np.ceil(radius / (a * np.sqrt(3) / 2))) + 2
    i, j = np.meshgrid(np.arange(-2 * n, 2 * n + 1), np.arange(-n, n + 1))
    metal = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    metal = metal[np.hypot(*metal.T) <= radius]
    chalc = metal + (a1 + a2) / 3
    h = model.chalcogen_height
    positions = np.concatenate(
        [
            np.column_stack([metal, np.zeros(len(metal))]),
            np.column_stack([chalc, np.full(len(chalc), h)]),
            np.column_stack([chalc, np.full(len(chalc), -h)]),
        ]
    )
    probe_b = probe_b_factor(model.probe_fwhm)
    nm, nc = len(metal), len(chalc)
    weights = np.concatenate(
        [np.full(nm, model.metal_weight), np.full(2 * nc, model.chalcogen_weight)]
    )
    b_factors = (
        np.concatenate([np.full(nm, model.metal_b), np.full(2 * nc, model.chalcogen_b)]) + probe_b
    )
    is_metal = np.arange(len(positions)) < nm
    return positions, weights, b_factors, is_metal


def reference_image(
    model: LatticeModel,
    euler: ArrayLike,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    offset: ArrayLike = (0.0, 0.0),
) -> np.ndarray:
    """Image of an ideal monolayer filling the field, seen at ``euler``.

    Parameters
    ----------
    model : LatticeModel
    euler : array_like of shape (3,)
        Euler angles [deg], convention of :mod:`hpcaet.geometry`.
    shape : (int, int)
        ``(ny, nx)`` [pixel].
    pixel_size : float
        [Å].
    offset : array_like of shape (2,), default (0, 0)
        In-image shift ``(x, y)`` of the projected origin [Å].

    Returns
    -------
    ndarray of shape (ny, nx)
        Dimensionless image (scattered fraction per Å² of dose), as
        :func:`~hpcaet.forward.project_atoms`.
    """
    ny, nx = shape
    R = euler_to_matrix(euler)
    # The in-plane disc must cover the field after the tilt foreshortens it.
    squash = max(abs(float(np.linalg.det(R[:2, :2]))), 0.2)
    radius = (
        0.5 * np.hypot(ny, nx) * pixel_size / squash
        + np.hypot(*offset)
        + 3 * model.lattice_constant
    )
    positions, weights, b_factors, _ = ideal_monolayer(model, radius)
    return project_atoms(
        positions,
        weights,
        b_factors,
        np.asarray(euler, float)[None],
        shape=(ny, nx),
        pixel_size=pixel_size,
        offsets=np.asarray(offset, float)[None],
    )[0]


def bright_columns(model: LatticeModel, points: np.ndarray, is_metal: np.ndarray) -> np.ndarray:
    """Centres of the columns a peak search finds among :func:`ideal_monolayer`'s atoms.

    Parameters
    ----------
    model : LatticeModel
    points : ndarray of shape (n, k)
        Per-atom points in the order of :func:`ideal_monolayer` (3D positions or their
        2D projections: the centre of a column is then the mean of its two atoms'
        projections, the projection being linear).
    is_metal : ndarray of bool, shape (n,)

    Returns
    -------
    ndarray of shape (c, k)
        The metals; where a chalcogen pair outshines a metal
        (:attr:`LatticeModel.chalcogen_columns_brighter`, MoSe2) the chalcogen pairs'
        centres (in the metal plane) as well: at low tilt the pairs are the brightest
        columns, at high tilt they split and the metals are.
    """
    metals = points[is_metal]
    if not model.chalcogen_columns_brighter:
        return metals
    chalc = points[~is_metal]
    half = len(chalc) // 2
    return np.concatenate([metals, 0.5 * (chalc[:half] + chalc[half:])])
