"""The sheet's slope, the ripple part of the membrane strain and the tangent frame.

Truths: an ideal MoS2 sheet (``ase.build.mx2``) bent into a ripple ``w = A cos(K x)``
either by lifting every atom (no in-plane motion: the sheet is stretched by
``1/2 w'^2``) or with the in-plane foreshortening ``u_x' = -1/2 w'^2`` of a ripple of
constant arc length (no stretch). A Gaussian-weighted local linear fit of width sigma
to a sinusoid returns its slope damped by ``exp(-K^2 sigma^2 / 2)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from structure_sheets import sheet

from hpcaet.errors import InputError
from hpcaet.structure import (
    atomic_displacements,
    ripple_strain,
    sheet_slope,
    strain_tensor,
    tangent_frame,
)

SIGMA = 3.16  # [Å], the paper's smoothing
HALF = 24.0
K, A = 2 * np.pi / 40.0, 0.6  # ripple: 40 Å wavelength, 0.6 Å amplitude (slope <= 0.094)


@pytest.fixture(scope="module")
def flat():
    pos, species, layer = sheet(half=HALF)
    inner = np.all(np.abs(pos[:, :2]) < HALF - 3 * SIGMA, axis=1) & (layer == 0)
    return pos, species, layer, inner


def _smoothed_slope(x):
    return -A * K * np.sin(K * x) * np.exp(-(K**2) * SIGMA**2 / 2)


def _split(pos, species, layer):
    """Total finite strain in the tangent frame, and its ripple and in-plane parts."""
    disp, region, _ = atomic_displacements(
        pos, species, layer, np.zeros(len(pos), int), lattice_constant={0: 3.16}, height={0: 1.56}
    )
    total = strain_tensor(
        pos, disp, region, spacing=1.0, sigma=SIGMA, padding=6.0, mask_distance=2.0, finite=True
    ).at(pos)
    metal = layer == 0
    tangent = tangent_frame(total, sheet_slope(pos[metal], pos, sigma=SIGMA, detrend=False))
    ripple = ripple_strain(sheet_slope(pos[metal], pos, sigma=SIGMA))
    return tangent, ripple, tangent[:, [0, 1, 3]] - ripple


def test_slope_of_a_tilted_ripple(flat):
    pos, _, layer, inner = flat
    bent = pos.copy()
    bent[:, 2] += A * np.cos(K * pos[:, 0]) + 0.1 * pos[:, 0] - 0.05 * pos[:, 1]
    metal = layer == 0
    rel = sheet_slope(bent[metal], bent, sigma=SIGMA)
    lab = sheet_slope(bent[metal], bent, sigma=SIGMA, detrend=False)
    # 0.003 = 4 % of the slope amplitude 0.083: the 3-sigma cutoff and the discrete
    # lattice (measured 0.0015); the plane (0.1, -0.05) is removed.
    np.testing.assert_allclose(rel[inner, 0], _smoothed_slope(pos[inner, 0]), atol=0.003)
    np.testing.assert_allclose(rel[inner, 1], 0.0, atol=0.003)
    # The two differ by the least-squares plane: the tilt, plus 2e-4 of the ripple (the
    # patch holds no whole number of periods).
    plane = lab[inner] - rel[inner]
    assert np.ptp(plane, axis=0).max() < 1e-9
    np.testing.assert_allclose(plane[0], [0.1, -0.05], atol=1e-3)


def test_tangent_frame_of_a_stretch_along_a_tilted_surface():
    rng = np.random.default_rng(1)
    slope = rng.normal(0.0, 0.2, (5, 2))
    t1 = np.column_stack([np.ones(5), np.zeros(5), slope[:, 0]])
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    lab = 0.01 * np.einsum("ni,nj->nij", t1, t1)  # 1 % uniaxial stretch along t1
    six = lab[:, [0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]
    want = np.zeros((5, 6))
    want[:, 0] = 0.01
    np.testing.assert_allclose(tangent_frame(six, slope), want, atol=1e-15)
    np.testing.assert_allclose(tangent_frame(six, np.zeros((5, 2))), six, atol=1e-15)


def test_lifted_ripple_is_all_ripple_part(flat):
    # Lifting each atom by w (the thickness sheared, not bent) stretches the sheet by
    # 1/2 w'^2 along x; the lab e_xx is then -1/2 w'^2 (next to e_xz = w'/2), the
    # tangent-frame stretch +1/2 w'^2, and the in-plane part 0.
    pos, species, layer, inner = flat
    lifted = pos.copy()
    lifted[:, 2] += A * np.cos(K * pos[:, 0])
    tangent, ripple, in_plane = _split(lifted, species, layer)
    want = 0.5 * _smoothed_slope(pos[:, 0]) ** 2  # up to 0.30 %
    # 0.03 %: the slope's 4 % tolerance above, squared into the ripple part.
    np.testing.assert_allclose(ripple[inner, 0], want[inner], atol=3e-4)
    # 0.02 %: what the RBF and the smoothing leave of a field with no in-plane strain
    # (measured 0.003 %).
    np.testing.assert_allclose(in_plane[inner], 0.0, atol=2e-4)
    np.testing.assert_allclose(tangent[inner, 0], want[inner], atol=3e-4)


def test_ripple_of_constant_arc_length_has_compressive_in_plane_part(flat):
    # Foreshortened so that every bond keeps its length (to order w'^4 ~ 1e-4 %):
    # no stretch, and the in-plane part is the projection's -1/2 w'^2.
    pos, species, layer, inner = flat
    x = pos[:, 0]
    bent = pos.copy()
    bent[:, 0] -= 0.25 * A**2 * K**2 * (x - np.sin(2 * K * x) / (2 * K))
    bent[:, 2] += A * np.cos(K * x)
    tangent, ripple, in_plane = _split(bent, species, layer)
    # 0.15 %: smoothing the displacement damps the ripple's slope (factor 0.94) and the
    # foreshortening's oscillation (0.78) differently, so the smoothed sheet is not
    # exactly inextensible (measured up to 0.10 % against 0 and against -1/2 w'^2,
    # whose largest value is 0.35 %).
    np.testing.assert_allclose(tangent[inner, 0], 0.0, atol=1.5e-3)
    np.testing.assert_allclose(
        in_plane[inner, 0], -0.5 * (A * K * np.sin(K * x[inner])) ** 2, atol=1.5e-3
    )


def test_bad_inputs():
    with pytest.raises(InputError, match="at least 3 surface atoms"):
        sheet_slope(np.zeros((2, 3)), np.zeros((4, 2)), sigma=3.16)
    with pytest.raises(InputError, match="sigma and cutoff must be positive; got 0"):
        sheet_slope(np.zeros((5, 3)), np.zeros((4, 2)), sigma=0)
    with pytest.raises(InputError, match=r"slope must have shape \(n, 2\); got \(4, 3\)"):
        ripple_strain(np.zeros((4, 3)))
    with pytest.raises(InputError, match=r"strain \(n, 6\) and slope \(n, 2\)"):
        tangent_frame(np.zeros((4, 6)), np.zeros((3, 2)))
