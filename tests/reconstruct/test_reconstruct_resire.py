"""The RESIRE-style reconstructor and its projector (hpcaet.reconstruct.resire_window)."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.forward import project_atoms, render_volume
from hpcaet.geometry import euler_to_matrix
from hpcaet.reconstruct import (
    ShearWarpProjector,
    SlabProjector,
    build_projector,
    fitted_pixels,
    resire,
    shear_warp_projector,
    slab_projector,
)

PIXEL = 0.32
# Arbitrary angles, beam along each axis of the volume (90° about y or x: principal axis
# x or y of the shear-warp factorisation), and high single-axis tilts.
EULERS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.3, 24.2, -24.8],
        [37.0, -50.0, 12.0],
        [90.0, 0.0, 0.0],
        [0.0, 70.0, 0.0],
        [10.0, -90.0, 3.0],
        [0.0, 0.0, 90.0],
    ]
)
BUILDERS = {"matrix": slab_projector, "shear-warp": shear_warp_projector}


@pytest.mark.parametrize("projector", sorted(BUILDERS))
@pytest.mark.parametrize("kernel", ["cubic", "linear"])
def test_backprojector_is_the_exact_adjoint(kernel, projector):
    # <A x, y> = <x, A^T y> for random x, y, at arbitrary angles, for both projectors
    # (and the absolute-value products of the step bound). float32 products of ~1e5
    # terms: agreement to ~1e-5 relative.
    proj = BUILDERS[projector](euler_to_matrix(EULERS), m=17, nz=7, kernel=kernel)
    rng = np.random.default_rng(4)
    for _ in range(3):
        x = rng.standard_normal(proj.shape[1]).astype(np.float32)
        y = rng.standard_normal(proj.shape[0]).astype(np.float32)
        for forward, adjoint in (
            (proj.forward, proj.adjoint),
            (proj.forward_abs, proj.adjoint_abs),
        ):
            lhs = float(np.dot(forward(x), y))
            rhs = float(np.dot(x, adjoint(y)))
            assert abs(lhs - rhs) <= 1e-5 * np.sqrt(np.dot(x, x) * np.dot(y, y))


@pytest.mark.parametrize("projector", sorted(BUILDERS))
@pytest.mark.parametrize("kernel", ["cubic", "linear"])
def test_projector_at_zero_tilt_sums_along_z(kernel, projector):
    proj = BUILDERS[projector](euler_to_matrix([[0.0, 0.0, 0.0]]), m=12, nz=5, kernel=kernel)
    volume = np.random.default_rng(0).random((5, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(
        proj.forward(volume.ravel()).reshape(12, 12), volume.sum(axis=0), rtol=1e-5
    )


def test_cubic_projector_matches_the_forward_model():
    # Projections of the rendered density of Gaussian atoms (B = 22 Å², sigma 1.7 voxel)
    # against hpcaet.forward.project_atoms at tilted angles: Keys' kernel interpolates
    # such smooth images to under 1 % (measured 0.68 %; bilinear: 2.5 %). The shear-warp
    # projector interpolates twice: 1.00 % (bilinear 4.6 %), bounds 1.2 % and 8 %.
    rng = np.random.default_rng(1)
    atoms = np.column_stack([rng.uniform(-2.5, 2.5, (8, 2)), rng.uniform(-1.5, 1.5, 8)])
    m, nz = 32, 17
    volume = PIXEL * render_volume(atoms, 1.0, 22.0, shape=(nz, m, m), voxel_size=PIXEL)
    images = project_atoms(atoms, 1.0, 22.0, EULERS[:3], shape=(m, m), pixel_size=PIXEL)
    errors = {}
    for projector, build in BUILDERS.items():
        for kernel in ("cubic", "linear"):
            proj = build(euler_to_matrix(EULERS[:3]), m=m, nz=nz, kernel=kernel)
            model = proj.forward(volume.ravel().astype(np.float32)).reshape(images.shape)
            errors[projector, kernel] = np.abs(model - images).sum() / np.abs(images).sum()
    assert errors["matrix", "cubic"] < 0.01 < errors["matrix", "linear"] < 0.05
    assert errors["shear-warp", "cubic"] < 0.012 < errors["shear-warp", "linear"] < 0.08


def test_shear_warp_is_chosen_for_large_supports():
    # "auto" builds the explicit matrix up to 2^25 entries (voxels x tilts x 16; the
    # paper's 60 x 60 x 33 window with 12 tilts has 22.8 M and keeps it); a 64^3 cube
    # with 20 tilts would have 84 M and takes the shear-warp factors (~40x fewer entries).
    tilt = np.linspace(-60, 60, 20)
    rotations = euler_to_matrix(np.column_stack([np.zeros(20), tilt, np.zeros(20)]))
    small = build_projector(rotations, m=16, nz=8)
    large = build_projector(rotations, m=64, nz=64)
    assert isinstance(small, SlabProjector) and isinstance(large, ShearWarpProjector)
    assert large.nnz < 64**3 * 20 * 16 / 40
    with pytest.raises(InputError, match="projector must be one of"):
        build_projector(rotations, m=8, nz=8, projector="dense")


def test_consistent_pixels():
    # At zero tilt every ray stays in the window. Tilted 30° about y, the ray of column
    # offset u crosses the 9-voxel slab between x = u / cos 30° -+ 4.5 tan 30°; it stays
    # in the window's x extent [-10.5, 9.5] for u = -6 ... 5: 12 of 20 columns.
    proj = slab_projector(euler_to_matrix([[0.0, 0.0, 0.0], [0.0, 30.0, 0.0]]), m=20, nz=9)
    assert proj.consistent[0].all()
    kept = proj.consistent[1]
    assert (kept == kept[:1]).all()  # the same columns in every row
    np.testing.assert_array_equal(np.flatnonzero(kept[0]) - 10, np.arange(-6, 6))


@pytest.mark.parametrize("projector", sorted(BUILDERS))
def test_isolated_atoms_come_back_at_their_places(table_s2, projector):
    # As for GENFIRE: the peaks of two lone atoms, 12 Table S2 tilts, within 0.15 voxel
    # after 100 accelerated steps (0.09 voxel at worst with the matrix, 0.04 with
    # shear-warp and its larger step; with the bilinear kernel the z errors reach 0.5
    # voxel, see slab_projector).
    atoms = np.array([[1.3, -0.7, 0.4], [-2.9, 2.2, -0.5]])
    m, nz = 32, 17
    images = project_atoms(
        atoms, [1.0, 0.7], [22.0, 22.0], table_s2, shape=(m, m), pixel_size=PIXEL
    )
    out = resire(images, table_s2, support_z=nz, iterations=100, projector=projector, rng=0)
    assert out.volume.min() >= 0
    for a in atoms:
        want = np.array([a[2], a[1], a[0]]) / PIXEL + [nz // 2, m // 2, m // 2]
        r = np.rint(want).astype(int)
        sub = out.volume[r[0] - 2 : r[0] + 3, r[1] - 2 : r[1] + 3, r[2] - 2 : r[2] + 3]
        peak = np.array(np.unravel_index(sub.argmax(), sub.shape)) + r - 2
        got = peak.astype(float)
        for ax in range(3):
            lo, hi = peak.copy(), peak.copy()
            lo[ax] -= 1
            hi[ax] += 1
            f0, f1, f2 = (out.volume[tuple(q)] for q in (lo, peak, hi))
            got[ax] += 0.5 * (f0 - f2) / (f0 - 2 * f1 + f2)
        np.testing.assert_allclose(got, want, atol=0.15)
    assert out.error[-1] < 0.1 * out.error[0]
    assert np.isfinite(out.rfree).all()


def test_plain_sirt_and_bad_steps(table_s2):
    images = np.zeros((12, 16, 16), np.float32)
    images[:, 8, 8] = 1.0
    out = resire(
        images,
        table_s2,
        support_z=5,
        iterations=10,
        momentum=False,
        step=1.5,
        kernel="linear",
        rfree_fraction=0.0,
    )
    assert np.isnan(out.rfree).all() and out.error[-1] < out.error[0]
    with pytest.raises(InputError, match=r"step must be in \(0, 1\] with momentum"):
        resire(images, table_s2, support_z=5, step=1.5)
    with pytest.raises(InputError, match=r"step must be in \(0, 2\)"):
        resire(images, table_s2, support_z=5, step=2.0, momentum=False)
    with pytest.raises(InputError, match="kernel must be 'cubic' or 'linear'"):
        resire(images, table_s2, support_z=5, kernel="sinc")


@pytest.mark.parametrize("projector", sorted(BUILDERS))
def test_thick_support_fits_every_tilt(projector):
    # A cube as thick as the window (an object wholly inside the volume), 9 tilts to ±70°:
    # no ray of the four highest tilts crosses the cube inside its footprint, so fitting
    # only the consistent pixels leaves them out. "auto" fits every pixel of every tilt:
    # each tilt's reprojection fits its image (measured: L1 misfit <= 0.3 % per tilt with
    # either projector; 33-45 % at the two extreme tilts with the consistent pixels
    # only), and the volume is right (L1 error against the rendered atom 2.7 % / 2.9 %
    # (matrix / shear-warp) with every pixel, 52 % / 46 % with the consistent ones;
    # bounds 5 % and 30 %).
    m = 24
    euler = np.column_stack([np.zeros(9), np.linspace(-70, 70, 9), np.zeros(9)])
    atom = np.array([[1.0, -0.6, 1.3]])
    images = project_atoms(atom, 1.0, 22.0, euler, shape=(m, m), pixel_size=PIXEL)
    proj = BUILDERS[projector](euler_to_matrix(euler), m=m, nz=m)
    fraction = proj.consistent.mean(axis=(1, 2))
    np.testing.assert_array_equal(fraction[[0, 1, 7, 8]], 0.0)
    assert fraction[4] == 1.0
    assert fitted_pixels(proj.consistent, "auto").mean(axis=(1, 2)).min() > 0
    truth = PIXEL * render_volume(atom, 1.0, 22.0, shape=(m, m, m), voxel_size=PIXEL)
    errors, misfit = {}, {}
    for mode in ("auto", "consistent"):
        out = resire(
            images,
            euler,
            support_z=m,
            iterations=60,
            rfree_fraction=0.0,
            fit_pixels=mode,
            projector=projector,
        )
        errors[mode] = np.abs(out.volume - truth).sum() / truth.sum()
        model = proj.forward(out.volume.ravel()).reshape(images.shape)
        misfit[mode] = np.abs(model - images).sum(axis=(1, 2)) / images.sum(axis=(1, 2))
    assert errors["auto"] < 0.05 and errors["consistent"] > 0.3
    assert misfit["auto"].max() < 0.01 and misfit["consistent"][[0, 8]].min() > 0.2
    with pytest.raises(InputError, match="fit_pixels must be one of"):
        resire(images, euler, support_z=m, iterations=1, fit_pixels="some")
    with pytest.raises(InputError, match="fit_pixels must be one of"):
        fitted_pixels(proj.consistent, "some")
