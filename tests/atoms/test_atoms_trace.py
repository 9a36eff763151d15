"""Tests of atom tracing (hpcaet.atoms.trace) and the layer fit (hpcaet.atoms.layers)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from hpcaet.atoms import enforce_min_distance, fit_layers, trace_atoms
from hpcaet.errors import InputError
from hpcaet.forward import render_volume

VOXEL = 0.32  # [Å]


def test_isolated_atoms_at_sub_voxel_positions():
    # Atoms 5 Å apart (no overlap within the fit window) in three flat layers, at random
    # sub-voxel positions, no noise: the log-quadratic fit of a Gaussian is exact up to
    # the cubic-spline interpolation, so 1 pm is a loose bound.
    rng = np.random.default_rng(4)
    grid = np.arange(-12.5, 13.0, 5.0)
    xy = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    layers = [
        np.column_stack([xy + shift, np.full(len(xy), z)])
        for shift, z in (((0, 0), 0.0), ((2.5, 1.0), 1.6), ((1.0, 2.5), -1.6))
    ]
    truth = np.concatenate(layers) + rng.uniform(-0.16, 0.16, (3 * len(xy), 3))
    volume = render_volume(truth, 1.0, 20.0, shape=(31, 111, 111), voxel_size=VOXEL)
    traced = trace_atoms(volume, voxel_size=VOXEL, layer_smoothing=8.0)
    d, j = cKDTree(traced.position).query(truth)
    assert len(traced.position) == len(truth)
    np.testing.assert_array_less(d, 0.01)
    np.testing.assert_array_equal(traced.layers.layer[j], np.repeat([0, 1, -1], len(xy)))


def test_traces_every_atom_of_the_phantom(truth, inputs):
    # Band-limited volume with 2 % noise and a 0.5 Å blur along z: every atom (S is the
    # weakest, at 16 % of the W peak) must be found, on its layer, within 0.5 Å (the S
    # z error of this volume reaches 0.35 Å; the refinement against the images then
    # brings it to ~0.15 Å).
    volume, _ = inputs
    atom = truth["species"].values != "vac"
    true_pos = truth["position"].values[atom]
    traced = trace_atoms(volume["density"].values, voxel_size=volume.attrs["voxel_size"])
    dist, nearest = cKDTree(traced.position).query(true_pos)
    assert np.all(dist < 0.5), np.sort(dist)[-5:]
    assert len(np.unique(nearest)) == atom.sum()
    true_layer = truth["layer"].values[atom]
    np.testing.assert_array_equal(traced.layers.layer[nearest], true_layer)
    # Noise peaks may survive here (the species step removes the weak ones), but few.
    assert len(traced.position) - atom.sum() <= 6


def test_enforce_min_distance_keeps_the_stronger():
    points = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [5.0, 0, 0]])
    strength = np.array([1.0, 3.0, 2.0, 0.5])
    # 1 (strongest) removes 0 and 2; 3 is alone.
    np.testing.assert_array_equal(enforce_min_distance(points, strength, min_distance=1.6), [1, 3])
    # A chain: 2 beats 1 beats 0; 1 is removed by 2, so 0 survives.
    strength = np.array([1.0, 2.0, 3.0, 0.5])
    np.testing.assert_array_equal(
        enforce_min_distance(points, strength, min_distance=1.2), [0, 2, 3]
    )


def test_fit_layers_follows_a_ripple():
    # Three layers on a 1.5 Å ripple of 40 Å wavelength, 0.05 Å noise: every atom is
    # assigned to its layer and sits within 0.25 Å of its fitted surface (the noise plus
    # the curvature bias of a 5 Å-wide local quadratic, ~0.05 Å).
    rng = np.random.default_rng(1)
    xy = rng.uniform(-20, 20, (900, 2))
    layer = np.repeat([-1, 0, 1], 300)
    ripple = 1.5 * np.cos(2 * np.pi * xy[:, 0] / 40.0)
    z = ripple + 1.6 * layer + rng.normal(0, 0.05, 900)
    fit = fit_layers(np.column_stack([xy, z]), smoothing=5.0)
    np.testing.assert_array_equal(fit.layer, layer)
    assert np.nanmax(np.abs(fit.distance)) < 0.25
    z_mid, normal = fit.surfaces.middle([[0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(z_mid, [1.5, 0.0], atol=0.1)
    # Slope at x = 10 Å: -1.5 * 2π/40 = -0.236, so the normal tilts towards +x. A local
    # quadratic of width s flattens the slope of a cosine by about (k s)² / 2 = 30 %
    # here (the cubic term leaks into the linear one), hence the bounds.
    assert 0.15 < normal[1, 0] / normal[1, 2] < 0.25


@pytest.mark.parametrize(
    ("volume", "match"),
    [
        (np.zeros((0, 8, 8)), "non-empty"),
        (np.zeros((8, 8)), "3D array"),
        (np.zeros((8, 8, 8)), "no positive density"),
        (np.full((8, 8, 8), np.nan), "NaN"),
    ],
)
def test_bad_volumes(volume, match):
    with pytest.raises(InputError, match=match):
        trace_atoms(volume, voxel_size=VOXEL)


def test_volume_without_atoms():
    # Weak white noise only: the 10th highest maximum sets the threshold, so peaks are
    # found, but they do not form atomic layers.
    rng = np.random.default_rng(0)
    volume = np.abs(rng.normal(0, 1, (21, 40, 40)))
    with pytest.raises(InputError, match="monolayer|atomic layers|holds no atoms"):
        trace_atoms(volume, voxel_size=VOXEL, threshold=0.9)


def test_bad_options():
    volume = render_volume([[0.0, 0, 0]], 1.0, 20.0, shape=(11, 11, 11), voxel_size=VOXEL)
    with pytest.raises(InputError, match="voxel_size"):
        trace_atoms(volume, voxel_size=0.0)
    with pytest.raises(InputError, match="fit_size"):
        trace_atoms(volume, voxel_size=VOXEL, fit_size=4)


def _amorphous(n=60, box=(12.0, 12.0, 6.0), min_distance=2.3, seed=0):
    """Random atoms at least ``min_distance`` apart in a box (an amorphous film)."""
    rng = np.random.default_rng(seed)
    pts = []
    for _ in range(200 * n):
        if len(pts) == n:
            break
        p = rng.uniform(-0.5, 0.5, 3) * box
        if all(np.linalg.norm(p - q) >= min_distance for q in pts):
            pts.append(p)
    return np.array(pts)


def test_layer_free_tracing_finds_every_atom_of_an_amorphous_volume():
    # A rendered amorphous volume (no layers): without the layer filters every atom is
    # found, to well under a picometre on this noise-free rendering; with them most are
    # dropped. Noise: a 1-voxel pre-smoothing lowers the error of a noisy volume.

    atoms = _amorphous()
    assert len(atoms) == 60
    shape = (28, 48, 48)
    vol = render_volume(atoms, 1.0, 10.0, shape=shape, voxel_size=0.32)
    free = trace_atoms(vol, voxel_size=0.32, layers=False)
    assert free.layers is None
    d, _ = cKDTree(free.position).query(atoms)
    assert len(free.position) == len(atoms) and d.max() < 0.01
    layered = trace_atoms(vol, voxel_size=0.32)
    assert len(layered.position) < len(atoms)
    noisy = vol + np.random.default_rng(1).normal(0, 0.08 * vol.max(), vol.shape)
    errors = {}
    for smoothing in (0.0, 0.32):
        got = trace_atoms(noisy, voxel_size=0.32, layers=False, smoothing=smoothing)
        d, _ = cKDTree(got.position).query(atoms)
        errors[smoothing] = np.sqrt(np.mean(d**2))
    assert errors[0.32] < errors[0.0]
    with pytest.raises(InputError, match="smoothing must be >= 0"):
        trace_atoms(vol, voxel_size=0.32, smoothing=-1.0)


def test_a_volume_that_is_no_configured_monolayer_is_stopped():
    from hpcaet.atoms.quality import check_material

    atoms = _amorphous()
    vol = render_volume(atoms, 1.0, 10.0, shape=(28, 48, 48), voxel_size=0.32)
    traced = trace_atoms(vol, voxel_size=0.32)
    with pytest.raises(InputError, match="does not look like the configured monolayer"):
        check_material(
            traced.position, traced.layers.layer, lattice=(3.16, 3.28), heights=(1.56, 1.67)
        )
