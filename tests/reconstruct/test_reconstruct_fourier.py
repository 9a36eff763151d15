"""The pruned slab transform and the Fourier gridding of hpcaet.reconstruct.fourier."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.geometry import euler_to_matrix
from hpcaet.reconstruct import SlabTransform, grid_projections


def _embed(slab, n):
    """The n^3 array holding the slab round the origin (the reference of SlabTransform)."""
    nz, m, _ = slab.shape
    full = np.zeros((n, n, n))
    z = (np.arange(nz) - nz // 2) % n
    yx = (np.arange(m) - m // 2) % n
    full[np.ix_(z, yx, yx)] = slab
    return full


def _random_points(rng, n, count):
    nh = n // 2 + 1
    flat = rng.choice(n * n * nh, count, replace=False)
    gz, gy, gx = flat // (n * nh), (flat // nh) % n, flat % nh
    signed = lambda g: np.where(g > n // 2, g - n, g)  # noqa: E731
    return signed(gz), signed(gy), gx


@pytest.mark.parametrize(("m", "nz", "n"), [(12, 5, 36), (11, 7, 30), (8, 8, 8), (6, 15, 18)])
def test_slab_transform_matches_full_fft(m, nz, n):
    # Both z transforms (sparse DFT, zero-padded FFT), forced on the same points in random
    # order, against numpy's rfftn / irfftn of the zero-padded n^3 array and each other.
    # (6, 15, 18): a slab thicker than the window; (8, 8, 8): a slab that fills the grid.
    rng = np.random.default_rng(1)
    slab = rng.standard_normal((nz, m, m)).astype(np.float32)
    gz, gy, gx = _random_points(rng, n, 150)
    ops = {z: SlabTransform(m, nz, n, gz, gy, gx, z_transform=z) for z in ("sparse", "fft")}
    assert {z: op.z_transform for z, op in ops.items()} == {"sparse": "sparse", "fft": "fft"}
    full = np.fft.rfftn(_embed(slab, n))
    want = full[gz % n, gy % n, gx]
    values = (rng.standard_normal(150) + 1j * rng.standard_normal(150)).astype(np.complex64)
    grid = np.zeros((n, n, n // 2 + 1), complex)
    grid[gz % n, gy % n, gx] = values
    back = np.fft.irfftn(grid, s=(n, n, n), axes=(0, 1, 2))
    z = (np.arange(nz) - nz // 2) % n
    yx = (np.arange(m) - m // 2) % n
    want_back = back[np.ix_(z, yx, yx)]
    # float32 transforms of O(n) terms: relative error ~1e-6.
    tol, tol_back = 2e-5 * np.abs(full).max(), 2e-5 * np.abs(want_back).max()
    got = {z: (op.forward(slab), op.inverse(values).copy()) for z, op in ops.items()}
    for forward, inverse in got.values():
        np.testing.assert_allclose(forward, want, rtol=0, atol=tol)
        np.testing.assert_allclose(inverse, want_back, rtol=0, atol=tol_back)
    np.testing.assert_allclose(got["fft"][0], got["sparse"][0], rtol=0, atol=tol)
    np.testing.assert_allclose(got["fft"][1], got["sparse"][1], rtol=0, atol=tol_back)
    # A second forward after an inverse: the buffers the two share stay clean.
    np.testing.assert_allclose(ops["fft"].forward(slab), want, rtol=0, atol=tol)


def test_slab_transform_chooses_the_fft_for_a_thick_slab():
    # The rule: the FFT along z when the sparse z-DFT would have more than 1.5 entries per
    # element of the padded (n, n // 2 + 1, n) columns. Every half-space point of a
    # 16^3 grid with a 16-voxel slab: 16 entries per element; a thin slab at few points
    # stays sparse.
    n = 16
    nh = n // 2 + 1
    gz, gy, gx = _random_points(np.random.default_rng(0), n, n * n * nh)
    assert SlabTransform(8, 16, n, gz, gy, gx).z_transform == "fft"
    assert SlabTransform(8, 3, n, gz[:200], gy[:200], gx[:200]).z_transform == "sparse"
    with pytest.raises(InputError, match="z_transform must be one of"):
        SlabTransform(8, 3, n, gz, gy, gx, z_transform="dense")
    with pytest.raises(InputError, match="given twice"):
        SlabTransform(8, 3, n, gz[[0, 0]], gy[[0, 0]], gx[[0, 0]])
    with pytest.raises(InputError, match="does not fit the oversampled grid"):
        SlabTransform(8, 17, n, gz, gy, gx)


def test_gridding_on_grid_planes_is_exact(sheet_factory):
    # Rotations that map the 2D grid onto 3D grid points: every sample lands on a point
    # (d = 0), so the gridded values must equal the 3D transform of the truth volume up
    # to the point sampling of the Gaussians (s/voxel ~ 1.9: ~1e-4 relative).
    sheet = sheet_factory(5.0, ripple=0.3)
    m, nz, n = 40, 21, 80
    euler = np.array([[0.0, 0.0, 0.0], [90.0, 0.0, 0.0], [0.0, 0.0, 90.0]])
    images = sheet.images(euler, shape=(m, m))
    truth = sheet.volume((nz, m, m))
    for method in ("dft", "fft"):
        for j in range(len(euler)):
            data = grid_projections(
                images[j : j + 1], euler_to_matrix(euler[j : j + 1]), n=n, radius=0.3, method=method
            )
            op = SlabTransform(m, nz, n, data.gz, data.gy, data.gx)
            want = op.forward(truth)
            err = np.abs(data.values - want).sum() / np.abs(want).sum()
            assert err < 2e-3, (method, euler[j], err)
            assert np.all(data.confidence == 1)


def test_dft_gridding_of_a_tilted_sheet(sheet_factory, table_s2):
    # At the Table S2 tilts only the offset across the plane (<= 0.3 grid unit) is left:
    # for a sheet within +-2.5 Å (8 voxels) of the centre it changes a phase by at most
    # 2 pi 0.3 * 8 / 120 = 0.13 rad, and the mean error is ~2.5 %; the FFT gridding
    # also moves values in-plane, by up to 0.3 grid unit, and is worse. The patch
    # (+-3.5 Å plus the Gaussian tails) stays inside the 12.8 Å crops at every tilt.
    sheet = sheet_factory(3.5, ripple=0.3)
    m, nz, n = 40, 21, 120
    images = sheet.images(table_s2, shape=(m, m))
    truth = sheet.volume((nz, m, m))
    errors = {}
    for method in ("dft", "fft"):
        data = grid_projections(images, euler_to_matrix(table_s2), n=n, radius=0.3, method=method)
        want = SlabTransform(m, nz, n, data.gz, data.gy, data.gx).forward(truth)
        errors[method] = np.abs(data.values - want).sum() / np.abs(want).sum()
        # Hermitian on the gx = 0 plane: the value at -g is the conjugate of that at g.
        on_plane = data.gx == 0
        plane = dict(
            zip(
                zip(data.gz[on_plane], data.gy[on_plane], strict=True),
                data.values[on_plane],
                strict=True,
            )
        )
        for (z, y), v in plane.items():
            np.testing.assert_allclose(plane[(-z, -y)], np.conj(v), rtol=1e-6, atol=1e-9)
    assert errors["dft"] < 0.04
    assert errors["dft"] < errors["fft"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(radius=0.6), "interpolation radius"),
        (dict(method="nufft"), "gridding method"),
        (dict(n=10), "smaller than the window"),
    ],
)
def test_gridding_rejects_bad_settings(kwargs, match):
    images = np.zeros((1, 16, 16), np.float32)
    options = dict(n=32, radius=0.3) | kwargs
    with pytest.raises(InputError, match=match):
        grid_projections(images, euler_to_matrix([[0.0, 0.0, 0.0]]), **options)
