"""Tests of the 3D rendering of Gaussian atoms, hpcaet.forward.volume."""

from __future__ import annotations

import numpy as np
import pytest

import hpcaet.forward.volume as volume_module
from hpcaet.errors import InputError
from hpcaet.forward import project_atoms, render_volume, render_volume_adjoint
from hpcaet.geometry import grid_coordinates

VOXEL = 0.32  # [Å]
SHAPE = (24, 40, 36)  # (nz, ny, nx)


def _atoms(seed: int, n: int = 12):
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-4.0, 4.0, (n, 3))
    positions[:, 2] *= 0.5  # keep every atom's 4-sigma window inside z (±3.8 Å)
    weights = rng.uniform(0.5, 2.0, n)
    b_factors = rng.uniform(10.0, 20.0, n)
    return rng, positions, weights, b_factors


def test_peak_and_integral_of_one_atom():
    position = np.array([[0.5, -1.1, 0.9]])
    volume = render_volume(position, [1.3], [15.0], shape=SHAPE, voxel_size=VOXEL)
    nz, ny, nx = SHAPE
    x, y, z = position[0]
    expected = np.array([z / VOXEL + nz // 2, y / VOXEL + ny // 2, x / VOXEL + nx // 2])
    np.testing.assert_array_equal(np.unravel_index(volume.argmax(), SHAPE), np.rint(expected))
    # s / voxel = 1.36: the voxel sum is the integral to ~1e-7; the cubic 4-sigma window
    # drops 1.9e-4 of the mass.
    np.testing.assert_allclose(volume.sum() * VOXEL**3, 1.3, rtol=1e-3)


@pytest.mark.parametrize("chunk_samples", [1 << 20, 3000])
def test_matches_dense_evaluation(monkeypatch, chunk_samples):
    # A small chunk budget splits the atoms into many chunks of different widths.
    monkeypatch.setattr(volume_module, "_CHUNK_SAMPLES", chunk_samples)
    _, positions, weights, b_factors = _atoms(seed=3, n=20)
    positions *= 1.5  # some atoms cross the border
    b_factors[:3] = [0.5, 80.0, 2.0]
    volume = render_volume(positions, weights, b_factors, shape=SHAPE, voxel_size=VOXEL)
    # The model written voxel by voxel over the whole grid.
    z, y, x = (grid_coordinates(n, VOXEL) for n in SHAPE)
    want = np.zeros(SHAPE)
    for (x0, y0, z0), w, b in zip(positions, weights, b_factors, strict=True):
        s = np.sqrt(b / (8 * np.pi**2))
        gz, gy, gx = (
            np.exp(-((c - c0) ** 2) / (2 * s**2)) * (np.abs(c - c0) <= 4 * s)
            for c, c0 in ((z, z0), (y, y0), (x, x0))
        )
        want += w / (2 * np.pi * s**2) ** 1.5 * np.einsum("i,j,k->ijk", gz, gy, gx)
    np.testing.assert_allclose(volume, want, rtol=0, atol=1e-12 * want.max())


def test_adjoint_dot_product():
    rng, positions, _, b_factors = _atoms(seed=1, n=30)
    positions[:, :2] *= 1.8  # include atoms clipped at the x, y borders
    w = rng.normal(size=len(positions))
    v = rng.normal(size=SHAPE)
    forward = render_volume(positions, w, b_factors, shape=SHAPE, voxel_size=VOXEL)
    back = render_volume_adjoint(v, positions, b_factors, voxel_size=VOXEL)
    lhs, rhs = np.vdot(forward, v), np.vdot(w, back)
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def test_sum_along_z_is_the_untilted_projection():
    _, positions, weights, b_factors = _atoms(seed=2)
    volume = render_volume(positions, weights, b_factors, shape=SHAPE, voxel_size=VOXEL)
    image = project_atoms(
        positions, weights, b_factors, [0.0, 0.0, 0.0], shape=SHAPE[1:], pixel_size=VOXEL
    )[0]
    # x and y are sampled and truncated identically in both, so only z differs: the z
    # window drops the samples beyond 4 sigma. On each side the first dropped sample lies
    # in (4 s, 4 s + voxel], so a column misses at most
    # erfc(4 / sqrt(2)) + 2 phi(4) voxel / s = 6.3e-5 + 2.4e-4 (s >= 1.1 voxels) of its
    # weight; otherwise the voxel sum of the Gaussian is its integral to < 1e-10.
    # Weights are positive, so each pixel is off by < 3.1e-4 of its own value.
    np.testing.assert_allclose(volume.sum(axis=0) * VOXEL, image, rtol=3.5e-4, atol=1e-12)


def test_empty_atom_list_and_dtype():
    volume = render_volume(np.zeros((0, 3)), [], [], shape=SHAPE, voxel_size=VOXEL, dtype="f4")
    assert volume.shape == SHAPE and volume.dtype == np.float32 and not volume.any()
    assert render_volume_adjoint(volume, [], [], voxel_size=VOXEL).shape == (0,)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"positions": np.zeros((2, 4))}, r"positions must have shape \(n, 3\).*\(2, 4\)"),
        ({"b_factors": [10.0, 0.0]}, r"b_factors must be > 0"),
        ({"weights": [1.0]}, r"weights must have shape \(2,\)"),
        ({"shape": (40, 36)}, r"shape must be 3 positive integers; got \(40, 36\)"),
        ({"voxel_size": np.nan}, r"voxel_size must be a positive number of Å; got nan"),
    ],
)
def test_render_volume_rejects_bad_input(change, match):
    args = {
        "positions": np.zeros((2, 3)),
        "weights": np.ones(2),
        "b_factors": np.full(2, 10.0),
        "shape": SHAPE,
        "voxel_size": VOXEL,
        **change,
    }
    with pytest.raises(InputError, match=match):
        render_volume(args.pop("positions"), args.pop("weights"), args.pop("b_factors"), **args)


def test_adjoint_rejects_a_flat_volume():
    with pytest.raises(InputError, match=r"volume must have shape \(nz, ny, nx\).*\(40, 36\)"):
        render_volume_adjoint(np.zeros((40, 36)), np.zeros((1, 3)), [10.0], voxel_size=VOXEL)
