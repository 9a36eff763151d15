"""Metal columns, tracking and the angle calibration of equation (1), on known truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.geometry import euler_to_matrix, position_to_pixel, project_points
from hpcaet.preprocess import (
    calibrate_angles,
    column_bias,
    find_metal_columns,
    gauge_aligned,
    ideal_monolayer,
    reference_image,
    sheet_frame,
    track_columns,
)

PIXEL = 0.32
# Calibrated angles of four images of Table S2 (deg)
TRUE = np.array([[0.3, -0.7, 0.1], [0.2, -14.5, 15.9], [-0.6, 19.5, -18.4], [0.0, 26.5, 7.8]])


def _rippled_metals(mos2, rng):
    """Metal positions of a MoS2 disc with a 1 Å ripple and 0.05 Å thermal noise."""
    pos, _, _, metal = ideal_monolayer(mos2, 25.0)
    r = pos[metal]
    r[:, 2] = 1.0 * np.cos(2 * np.pi * r[:, 0] / 40.0) * np.cos(2 * np.pi * r[:, 1] / 55.0)
    return r + rng.normal(0, 0.05, r.shape)


def test_metal_columns_of_an_ideal_lattice(mos2):
    image = 3000 * reference_image(mos2, (0, 0, 0), shape=(96, 96), pixel_size=PIXEL)
    fit = find_metal_columns(image, lattice_constant=3.16 / PIXEL)
    pos, _, _, metal = ideal_monolayer(mos2, 30.0)
    true = position_to_pixel(project_points(pos[metal], (0, 0, 0)), (96, 96), PIXEL)
    distance, _ = cKDTree(true).query(fit.position)
    inside = ((true > 4) & (true < 91)).all(axis=1).sum()
    # every metal column away from the edge is found, no chalcogen (1.8 Å = 5.7 px off)
    assert len(fit.position) >= inside - 2
    assert distance.max() < 0.1


def test_column_bias_of_a_tilted_lattice_is_measured(mos2):
    # at zero tilt the honeycomb is symmetric about each metal: no bias
    assert np.hypot(*column_bias(mos2, (0, 0, 0), pixel_size=PIXEL)) < 0.03
    # at 19.5/-18.4 deg the chalcogen tails pull the fit by tenths of a pixel
    assert np.hypot(*column_bias(mos2, TRUE[2], pixel_size=PIXEL)) > 0.1


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_calibration_recovers_angles_from_nominal_off_by_3_deg(mos2, rng, noise):
    r = _rippled_metals(mos2, rng)
    obs = project_points(r, TRUE) + rng.normal(0, noise * PIXEL, (len(TRUE), len(r), 2))
    obs += rng.uniform(-1, 1, (len(TRUE), 1, 2))  # unknown per-image shifts [Å]
    nominal = TRUE + rng.uniform(-3, 3, TRUE.shape)
    cal = calibrate_angles(obs, nominal, reference=0, lattice_constant=3.16)
    err = gauge_aligned(cal.euler, TRUE) - TRUE
    # Noise-free: exact up to the optimiser's tolerance. With 0.1 px (0.032 Å) column
    # noise the near-zero-tilt image's tilt is fixed only through the ripple's heights
    # (flat-sheet projections depend on it to second order): about
    # 0.032 Å / (0.5 Å rms z * sqrt(230)) = 0.004 rad, so 0.3 deg RMS is the bound here.
    assert np.sqrt(np.mean(err**2)) < (1e-3 if noise == 0 else 0.3)
    assert cal.residual.max() < 1e-4 + 2 * noise * PIXEL


def test_sheet_frame_undoes_a_known_rotation(mos2):
    pos, _, _, metal = ideal_monolayer(mos2, 20.0)
    G = euler_to_matrix([7.0, 4.0, -3.0])
    rotated = pos[metal] @ G.T + [1.0, -2.0, 0.5]
    frame, centre = sheet_frame(rotated, lattice_constant=3.16)
    np.testing.assert_allclose(frame @ G, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(centre, [1.0, -2.0, 0.5], atol=1e-9)


def test_tracking_follows_columns_across_tilts(mos2):
    offsets = np.array([[0.0, 0.0], [0.9, -0.6], [-0.7, 0.8], [0.5, 0.9]])  # [Å]
    images = np.stack(
        [
            3000 * reference_image(mos2, e, shape=(128, 128), pixel_size=PIXEL, offset=o)
            for e, o in zip(TRUE, offsets, strict=True)
        ]
    )
    columns = [find_metal_columns(im, lattice_constant=3.16 / PIXEL).position for im in images]
    nominal = TRUE + np.array([[1.5, -2, 2.5], [-2.5, 2, -1], [2, -1.5, 2.8], [-2, 2.5, 1]])
    tracks = track_columns(columns, images, nominal, spacing=3.16 / PIXEL)
    pos, _, _, metal = ideal_monolayer(mos2, 40.0)
    truth = [
        position_to_pixel(project_points(pos[metal], e) + o, (128, 128), PIXEL)
        for e, o in zip(TRUE, offsets, strict=True)
    ]
    seen = tracks.seen
    assert seen.sum() > 0.8 * seen.size
    ref = cKDTree(truth[tracks.reference]).query(tracks.rc[tracks.reference])[1]
    for j, t in enumerate(truth):
        ids = cKDTree(t).query(tracks.rc[j, seen[j]])[1]
        assert np.all(ids == ref[seen[j]])


def test_missing_angle_and_bad_shapes_are_refused():
    obs = np.zeros((3, 10, 2))
    with pytest.raises(InputError, match=r"image\(s\) \[1\] are missing"):
        calibrate_angles(obs, [[0, 0, 0], [0, np.nan, 0], [0, 10, 0]])
    with pytest.raises(InputError, match="one Euler triple per image"):
        calibrate_angles(obs, [[0, 0, 0], [0, 10, 0]])
