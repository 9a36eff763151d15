"""Geometry convention: known points land where the convention says they do."""

import numpy as np
import pytest

from hpcaet import geometry as g
from hpcaet.errors import InputError


def test_single_axis_rotations_move_points_as_right_handed():
    # 90° about Z takes +x to +y; about Y takes +z to +x; about X takes +y to +z.
    cases = [
        ([90, 0, 0], [1, 0, 0], [0, 1, 0]),
        ([0, 90, 0], [0, 0, 1], [1, 0, 0]),
        ([0, 0, 90], [0, 1, 0], [0, 0, 1]),
    ]
    for euler, point, expected in cases:
        np.testing.assert_allclose(g.euler_to_matrix(euler) @ point, expected, atol=1e-12)


def test_order_is_x_then_y_then_z():
    e = np.array([20.0, -35.0, 50.0])
    Rz = g.axis_angle_matrix([0, 0, 1], e[0])
    Ry = g.axis_angle_matrix([0, 1, 0], e[1])
    Rx = g.axis_angle_matrix([1, 0, 0], e[2])
    np.testing.assert_allclose(g.euler_to_matrix(e), Rz @ Ry @ Rx, atol=1e-12)


def test_matrix_euler_round_trip_and_inverse():
    rng = np.random.default_rng(0)
    e = np.column_stack(
        [rng.uniform(-180, 180, 200), rng.uniform(-89, 89, 200), rng.uniform(-180, 180, 200)]
    )
    np.testing.assert_allclose(g.matrix_to_euler(g.euler_to_matrix(e)), e, atol=1e-9)
    inv = g.invert_euler(e)
    np.testing.assert_allclose(
        g.euler_to_matrix(inv) @ g.euler_to_matrix(e),
        np.broadcast_to(np.eye(3), (200, 3, 3)),
        atol=1e-12,
    )
    np.testing.assert_allclose(g.compose_euler(e, inv), 0.0, atol=1e-9)


def test_compose_is_second_after_first():
    a, b = [10.0, 5.0, -3.0], [-4.0, 12.0, 7.0]
    expected = g.euler_to_matrix(b) @ g.euler_to_matrix(a)
    np.testing.assert_allclose(g.euler_to_matrix(g.compose_euler(a, b)), expected, atol=1e-12)


def test_gimbal_lock_is_a_valid_rotation():
    e = g.matrix_to_euler(g.euler_to_matrix([30.0, 90.0, 20.0]))
    np.testing.assert_allclose(
        g.euler_to_matrix(e), g.euler_to_matrix([30.0, 90.0, 20.0]), atol=1e-9
    )


def test_stage_tilts_follow_table_s2_axes():
    # alpha about [0,-1,0]: a point on +x goes to -z... and beta about [-1,0,0].
    e = g.stage_to_euler(30.0, 0.0)
    np.testing.assert_allclose(e, [0.0, -30.0, 0.0], atol=1e-9)
    e = g.stage_to_euler(0.0, 20.0)
    np.testing.assert_allclose(e, [0.0, 0.0, -20.0], atol=1e-9)
    # beta acts in the frame turned by alpha: R = R_alpha @ R_beta
    e = g.stage_to_euler([12.6], [-12.6])
    R = g.axis_angle_matrix([0, -1, 0], 12.6) @ g.axis_angle_matrix([-1, 0, 0], -12.6)
    np.testing.assert_allclose(g.euler_to_matrix(e)[0], R, atol=1e-12)


def test_project_points_tilt_about_y():
    # A point 2 Å above the sample plane shifts by 2 sin(theta) along x under a Y tilt.
    pts = np.array([[0.0, 0.0, 2.0], [3.0, -1.0, 0.0]])
    xy = g.project_points(pts, [[0.0, 30.0, 0.0], [0.0, 0.0, 0.0]])
    assert xy.shape == (2, 2, 2)
    np.testing.assert_allclose(xy[0, 0], [2 * np.sin(np.pi / 6), 0.0], atol=1e-12)
    np.testing.assert_allclose(xy[0, 1], [3 * np.cos(np.pi / 6), -1.0], atol=1e-12)
    np.testing.assert_allclose(xy[1], pts[:, :2], atol=1e-12)


def test_pixel_convention_places_origin_on_fft_centre():
    rc = g.position_to_pixel(np.array([[0.0, 0.0], [0.64, -0.32]]), (512, 511), 0.32)
    np.testing.assert_allclose(rc, [[256, 255], [255, 257]])
    np.testing.assert_allclose(
        g.pixel_to_position(rc, (512, 511), 0.32), [[0.0, 0.0], [0.64, -0.32]]
    )
    np.testing.assert_allclose(g.grid_coordinates(5, 0.5), [-1.0, -0.5, 0.0, 0.5, 1.0])


@pytest.mark.parametrize("bad", [[1.0, 2.0], [[np.nan, 0, 0]]])
def test_bad_angles_are_refused(bad):
    with pytest.raises(InputError, match="Euler angles"):
        g.euler_to_matrix(bad)


def test_bad_pixel_size_and_matrix_are_refused():
    with pytest.raises(InputError, match="pixel size"):
        g.position_to_pixel([0.0, 0.0], (4, 4), -0.3)
    with pytest.raises(InputError, match="proper rotations"):
        g.matrix_to_euler(np.diag([1.0, 1.0, -1.0]))
