"""Test phantoms for hpcaet.structure: ideal 2H sheets with analytic displacement fields.

The sheets come from ``ase.build.mx2`` (independent of the code under test); the
fields are sums of a uniform gradient and sinusoids, whose strain after a Gaussian
smoothing of width sigma is known in closed form: a sinusoid of wavenumber k is damped
by ``exp(-k^2 sigma^2 / 2)`` per wavevector, and a linear field is unchanged.
"""

from __future__ import annotations

import numpy as np
from ase.build import mx2

K = 2 * np.pi / 40.0  # [1/Å]: 40 Å wavelength
#: Uniform displacement gradient G[i, j] = du_i / dx_j (symmetric part is the strain).
G = np.array([[0.004, 0.002, 0.001], [0.0, -0.003, -0.002], [0.001, 0.0, 0.010]])
EXX, EYY, RIPPLE = 0.012, 0.010, 0.3  # sinusoid amplitudes: strain, strain, height [Å]


def sheet(*, a=3.16, h=1.56, half=24.0, rotation=0.3, formula="MoS2", centre=(0.0, 0.0)):
    """A flat 2H sheet cut to ``|x - cx|, |y - cy| < half``, rotated about z [rad].

    Returns positions (n, 3) [Å], species (n,) and layer (n,) (-1, 0, 1).
    """
    reps = int(2.9 * half / a) + 4
    atoms = mx2(formula, "2H", a=a, thickness=2 * h, size=(reps, reps, 1), vacuum=None)
    pos = atoms.positions.copy()
    pos[:, :2] -= pos[:, :2].mean(axis=0)
    c, s = np.cos(rotation), np.sin(rotation)
    pos[:, :2] = pos[:, :2] @ np.array([[c, -s], [s, c]]).T
    pos[:, :2] += centre
    keep = np.all(np.abs(pos[:, :2] - centre) < half, axis=1)
    species = np.array(atoms.get_chemical_symbols())[keep]
    pos = pos[keep]
    metal = np.isin(species, ("Mo", "W"))
    layer = np.where(metal, 0, np.sign(pos[:, 2])).astype(int)
    return pos, species, layer


def field(p):
    """The analytic displacement (n, 3) [Å] at positions p (n, 3)."""
    x, y, _ = p.T
    u = p @ G.T
    u[:, 0] += EXX / K * np.sin(K * x)
    u[:, 1] += EYY / K * np.sin(K * y + 0.5)
    u[:, 2] += RIPPLE * np.cos(K * x) * np.cos(K * y)
    return u


def strain(p, sigma):
    """Linear strain (n, 6: xx, yy, zz, xy, xz, yz) of :func:`field` smoothed by sigma."""
    x, y, _ = p.T
    damp1 = np.exp(-(K**2) * sigma**2 / 2)  # one wavevector component
    damp2 = np.exp(-2 * K**2 * sigma**2 / 2)  # the (K, K) products of the ripple
    s = 0.5 * (G + G.T)
    out = np.tile([s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[0, 2], s[1, 2]], (len(p), 1))
    out[:, 0] += EXX * np.cos(K * x) * damp1
    out[:, 1] += EYY * np.cos(K * y + 0.5) * damp1
    out[:, 4] += -0.5 * RIPPLE * K * np.sin(K * x) * np.cos(K * y) * damp2
    out[:, 5] += -0.5 * RIPPLE * K * np.cos(K * x) * np.sin(K * y) * damp2
    return out
