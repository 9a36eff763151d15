"""Window planning, cropping and stitching (hpcaet.reconstruct.windows)."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.forward import project_atoms
from hpcaet.reconstruct import (
    WindowPlan,
    check_field,
    crop_window,
    plan_windows,
    spline_coefficients,
    stitch,
)

PIXEL = 0.32


def test_default_plan_of_the_demo_field(table_s2):
    # 160-pixel images: four 60-voxel windows with step 30 fit along each axis
    # ((160 - 60) // 30 + 1), and every crop stays inside at the Table S2 tilts.
    plan = plan_windows((160, 160), table_s2, pixel_size=PIXEL)
    assert plan.tiles == (4, 4)
    assert plan.shape == (33, 120, 120)
    assert plan.margin == 15
    windows = plan.windows()
    assert [w.key for w in windows[:2]] == ["y000x000", "y000x001"]
    # Window (0, 0): its tile is volume voxels [0, 30), its centre voxel 15 of the tile
    # row, i.e. volume index 15 - 120 // 2 = -45 voxels from the centre.
    np.testing.assert_allclose(windows[0].centre, (-45 * PIXEL, -45 * PIXEL, 0.0))
    np.testing.assert_allclose(windows[-1].centre, (45 * PIXEL, 45 * PIXEL, 0.0))
    assert WindowPlan.from_json(plan.to_json()) == plan


def test_plan_shrinks_until_every_crop_fits():
    # A 45 degree tilt about y moves the crops of windows off the x axis inwards
    # (x cos 45), so the x tiling may stay; then tilt about x shrinks the y tiling.
    euler = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 60.0]])
    plan = plan_windows((100, 100), euler, pixel_size=PIXEL, window=40, step=20)
    assert plan.tiles[1] == (100 - 40) // 20 + 1
    # Crops fit at every tilt: check the outermost crop by hand.
    from hpcaet.geometry import position_to_pixel, project_points

    centres = np.array([w.centre for w in plan.windows()])
    rc = position_to_pixel(project_points(centres, euler), (100, 100), PIXEL)
    assert rc.min() - 20 >= 0 and rc.max() + 19 <= 99


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(window=200), "larger than the field"),
        (dict(window=40, step=41), "larger than the window"),
        (dict(window=40, step=20, tiles=(9, 9)), "leaves the"),
        (dict(window=0), "positive integer"),
    ],
)
def test_plan_rejects_bad_windows(kwargs, match):
    with pytest.raises(InputError, match=match):
        plan_windows((120, 120), np.zeros((2, 3)), pixel_size=PIXEL, **kwargs)


def test_check_field_rejects_bad_series():
    images = np.zeros((3, 32, 32), np.float32)
    with pytest.raises(InputError, match="2 Euler angle triples for 3 images"):
        check_field(images, np.zeros((2, 3)))
    images[1, 4, 5] = np.nan
    with pytest.raises(InputError, match=r"image 1 has a non-finite pixel \(nan at row 4, col 5"):
        check_field(images, np.zeros((3, 3)))


def test_crop_puts_the_window_centre_on_the_centre_pixel(table_s2):
    # One narrow atom at the window centre: in every crop its projection must sit on
    # pixel (m // 2, m // 2), whatever the tilt. Cubic-spline resampling at sub-pixel
    # shifts moves a Gaussian of 1.5 px sigma by < 0.02 px.
    centre = np.array([4.1, -3.3, 0.7])
    images = project_atoms(centre[None], [1.0], [20.0], table_s2, shape=(96, 96), pixel_size=PIXEL)
    crops = crop_window(images, table_s2, centre, window=31, pixel_size=PIXEL)
    assert crops.shape == (12, 31, 31)
    rows, cols = np.mgrid[0:31, 0:31]
    for crop in crops:
        w = np.clip(crop, 0, None)
        w = np.where(w > 0.2 * w.max(), w, 0)
        centroid = np.array([(w * rows).sum(), (w * cols).sum()]) / w.sum()
        np.testing.assert_allclose(centroid, (15, 15), atol=0.02)
    same = crop_window(
        spline_coefficients(images), table_s2, centre, window=31, pixel_size=PIXEL, prefiltered=True
    )
    np.testing.assert_array_equal(same, crops)


def test_stitch_places_each_tile():
    plan = WindowPlan(window=8, step=4, support_z=3, tiles=(2, 3), voxel_size=PIXEL)
    tiles = {w.key: np.full((3, 4, 4), 10 * w.row + w.col, np.float32) for w in plan.windows()}
    volume = stitch(plan, tiles)
    assert volume.shape == (3, 8, 12)
    np.testing.assert_array_equal(volume[:, ::4, ::4][0], [[0, 1, 2], [10, 11, 12]])


def test_a_rectangular_field_matches_the_square_one(sheet_factory, table_s2, corr):
    # The same rippled sheet imaged on a 48 x 80 and on an 80 x 80 field (both centred on
    # the rotation centre): the plan takes fewer windows of 32 voxels (step 16) along y
    # for the rectangular field; where both volumes reach they agree (measured 0.988 on
    # 48 x 112 / 112 x 112), and they match the rendered truth equally well (0.815 and
    # 0.814 after 40 RESIRE steps).
    from hpcaet.reconstruct import reconstruct_field

    sheet = sheet_factory(22.0, seed=4)
    volumes = []
    for shape in ((48, 80), (80, 80)):
        images = sheet.images(table_s2, shape=shape)
        plan = plan_windows(shape, table_s2, pixel_size=0.32, window=32, step=16, support_z=17)
        out = reconstruct_field(
            images, table_s2, plan, algorithm="resire", options={"iterations": 40}
        )
        volumes.append((plan, out.volume))
    (rect_plan, rect), (square_plan, square) = volumes
    assert rect_plan.tiles[0] < rect_plan.tiles[1] and rect_plan.tiles[0] < square_plan.tiles[0]
    ny, nx = (min(a, b) for a, b in zip(rect.shape[1:], square.shape[1:], strict=True))

    def centre(v):
        y0, x0 = (v.shape[1] - ny) // 2, (v.shape[2] - nx) // 2
        return v[:, y0 : y0 + ny, x0 : x0 + nx]

    a, b = centre(rect), centre(square)
    truth = sheet.volume(a.shape)
    assert corr(a, b) > 0.95
    assert corr(a, truth) > 0.75 and abs(corr(a, truth) - corr(b, truth)) < 0.02
