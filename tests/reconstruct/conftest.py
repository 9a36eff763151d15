"""Shared phantoms of the reconstruction tests: a rippled 2H-MoS2 sheet with known atoms."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.forward import project_atoms, render_volume
from hpcaet.geometry import project_points
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

PIXEL = 0.32  # [Å], the paper's pixel and voxel size
A_MOS2 = 3.16  # [Å]
S_HEIGHT = 1.56  # [Å]
# Cross-sections [Å²] and B' factors [Å²] of defaults.yaml; the probe (0.8 Å FWHM) adds
# 8 pi² sigma² = 9.1 Å² to every B.
_SPECIES = load_config().species
WEIGHT = {k: _SPECIES.cross_section[k] for k in ("Mo", "S")}
B_FACTOR = {k: _SPECIES.b_factor[k] + 9.1 for k in ("Mo", "S")}


class Sheet:
    """Atoms of a rippled MoS2 monolayer over a square field, with images and truth."""

    def __init__(self, half_width: float, *, ripple: float = 0.8, seed: int = 0):
        rng = np.random.default_rng(seed)
        a1 = np.array([A_MOS2, 0.0])
        a2 = np.array([A_MOS2 / 2, A_MOS2 * np.sqrt(3) / 2])
        n = int(2 * half_width / A_MOS2) + 3
        i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
        metal = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
        metal = metal[np.all(np.abs(metal) <= half_width, axis=1)]
        chalc = metal + (a1 + a2) / 3
        z = lambda xy: ripple * np.sin(2 * np.pi * xy[:, 0] / 23.0 + 0.4)  # noqa: E731
        pos = [np.column_stack([metal, z(metal)])]
        for sign in (1, -1):
            pos.append(np.column_stack([chalc, z(chalc) + sign * S_HEIGHT]))
        self.positions = np.concatenate(pos) + rng.normal(0, 0.03, (3 * len(metal), 3))
        self.species = np.array(["Mo"] * len(metal) + ["S"] * (2 * len(metal)))
        self.weights = np.array([WEIGHT[s] for s in self.species])
        self.b_factors = np.array([B_FACTOR[s] for s in self.species])

    def images(self, euler, *, shape, centre=(0.0, 0.0, 0.0)):
        """Projections [dimensionless]; ``centre`` projects to pixel (ny // 2, nx // 2)."""
        offsets = -project_points(np.asarray(centre, float)[None], euler)[:, 0, :]
        return project_atoms(
            self.positions,
            self.weights,
            self.b_factors,
            euler,
            shape=shape,
            pixel_size=PIXEL,
            offsets=offsets,
            dtype=np.float32,
        )

    def volume(self, shape, *, centre=(0.0, 0.0, 0.0)):
        """Ground-truth density in image units per voxel (density [1/Å] x voxel size)."""
        return PIXEL * render_volume(
            self.positions - np.asarray(centre, float),
            self.weights,
            self.b_factors,
            shape=shape,
            voxel_size=PIXEL,
            dtype=np.float32,
        )


@pytest.fixture(scope="session")
def table_s2():
    """The 12 calibrated (Z, Y, X) angles of the paper's Table S2 [deg]."""
    return TABLE_S2_CALIBRATED.copy()


@pytest.fixture(scope="session")
def sheet_factory():
    return Sheet


def correlation(a, b, *, keep=None):
    """Pearson correlation of two volumes, optionally of their central keep x keep columns."""
    if keep is not None:
        lo = (a.shape[1] - keep) // 2
        a = a[:, lo : lo + keep, lo : lo + keep]
        b = b[:, lo : lo + keep, lo : lo + keep]
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="session")
def corr():
    return correlation
