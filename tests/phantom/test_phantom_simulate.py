"""The simulator does what its truth arrays say: dose, drift, vibration, noise."""

import numpy as np
import pytest

from hpcaet.forward import project_atoms
from hpcaet.forward.kernels import gaussian_sigma_from_fwhm
from hpcaet.phantom.simulate import TiltDistortions, simulate_tilt, vibration_in_image

PIXEL = 0.32
SHAPE = (64, 64)


def _still(**changes):
    base = dict(
        velocity=np.zeros(2),
        offset=np.zeros(2),
        vibration_direction=0.0,
        vibration_amplitude=0.0,
        vibration_width=0.0,
        background_seed=0,
    )
    base.update(changes)
    return TiltDistortions(**base)


def _run(
    distortions,
    *,
    positions=None,
    euler=(0.0, 0.0, 0.0),
    dose=1e6,
    read_noise=0.0,
    background=0.0,
    frames=4,
    rng=0,
):
    positions = np.array([[0.0, 0.0, 0.0]]) if positions is None else positions
    n = len(positions)
    return simulate_tilt(
        positions,
        np.full(n, 0.02),
        np.full(n, 10.0),
        np.asarray(euler),
        distortions,
        shape=SHAPE,
        pixel_size=PIXEL,
        frames=frames,
        dose_per_frame=dose,
        read_noise=read_noise,
        probe_fwhm=0.8,
        background_level=background,
        background_scale=10.0,
        rng=rng,
    )


def test_clean_image_is_the_forward_model_at_the_dose():
    positions = np.array([[1.0, -2.0, 0.5], [-3.0, 2.5, -1.5]])
    euler = np.array([5.0, 20.0, -10.0])
    offset = np.array([0.4, -0.7])
    dose = 2000.0
    result = _run(_still(offset=offset), positions=positions, euler=euler, dose=dose, frames=3)
    b_eff = 10.0 + 8 * np.pi**2 * gaussian_sigma_from_fwhm(0.8) ** 2
    model = project_atoms(
        positions,
        np.full(2, 0.02),
        np.full(2, b_eff),
        euler[None],
        shape=SHAPE,
        pixel_size=PIXEL,
        offsets=offset[None],
    )[0]
    expected = 3 * dose * PIXEL**2 * model
    # float32 storage; the fine grid is sampled exactly at detector pixels.
    np.testing.assert_allclose(result.clean, expected, rtol=1e-5, atol=1e-6 * expected.max())
    # Counts per atom = dose x frames x cross-section (the Gaussians are cut at 4 sigma
    # per axis, which drops 1.3e-4 of each atom).
    assert result.clean.sum() == pytest.approx(3 * dose * 2 * 0.02, rel=3e-4)


def test_counting_statistics_match_the_dose():
    rng = np.random.default_rng(3)
    positions = np.column_stack([rng.uniform(-8, 8, (40, 2)), np.zeros(40)])
    dose, read_noise, frames = 400.0, 0.7, 10
    result = _run(
        _still(background_seed=4),
        positions=positions,
        dose=dose,
        read_noise=read_noise,
        background=0.5,
        frames=frames,
        rng=5,
    )
    expected = (result.clean + result.background) / frames  # per frame, no drift
    z = (result.frames - expected) / np.sqrt(expected + read_noise**2)
    # 40,960 samples: mean and spread of a unit normal to within ~1 %.
    assert abs(z.mean()) < 0.02
    assert z.std() == pytest.approx(1.0, abs=0.02)
    # Total counts: Poisson plus detector noise; allow four standard deviations.
    sigma = np.sqrt(frames * expected.sum() + result.frames.size * read_noise**2)
    assert abs(result.frames.sum() - frames * expected.sum()) < 4 * sigma


def test_drift_moves_the_atom_by_velocity_per_frame():
    velocity = np.array([0.6, -0.35])
    result = _run(_still(velocity=velocity), frames=5, dose=1e9)
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    centroids = np.array(
        [[(f * cols).sum() / f.sum(), (f * rows).sum() / f.sum()] for f in result.frames]
    )
    # Noise at this dose moves the centroid by < 0.01 px.
    np.testing.assert_allclose(centroids - centroids[0], result.drift, atol=0.02)
    np.testing.assert_allclose(result.drift[3], 3 * velocity)


def test_vibration_blurs_along_the_projected_z_axis():
    euler = np.array([0.0, 30.0, 0.0])  # the sample z axis projects onto +x
    direction, amplitude = vibration_in_image(euler, 0.8)
    assert direction == pytest.approx(0.0, abs=1e-9) or direction == pytest.approx(180.0)
    assert amplitude == pytest.approx(0.8 * np.sin(np.deg2rad(30)))
    still = _run(_still(), euler=euler, dose=1e7)
    shaken = _run(
        _still(vibration_direction=direction, vibration_amplitude=amplitude), euler=euler, dose=1e7
    )
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]] * PIXEL

    def variances(img):
        w = img / img.sum()
        mx, my = (w * cols).sum(), (w * rows).sum()
        return (w * (cols - mx) ** 2).sum(), (w * (rows - my) ** 2).sum()

    vx0, vy0 = variances(still.clean)
    vx1, vy1 = variances(shaken.clean)
    # The arcsine distribution of amplitude A has variance A² / 2; the kernel adds its
    # half-pixel Gaussian floor and the pixel box (fine grid: 0.16 Å).
    fine = PIXEL / 2
    expected = amplitude**2 / 2 + (fine / 2) ** 2 + fine**2 / 12
    assert vx1 - vx0 == pytest.approx(expected, rel=0.03)
    assert vy1 - vy0 == pytest.approx((fine / 2) ** 2 + fine**2 / 12, rel=0.05)
