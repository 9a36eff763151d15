"""The sheet-following support: height map of a known tilted sheet, use in both solvers."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.reconstruct import SheetSupport, genfire, resire, sheet_support


def _tilted_sheet(nz=21, m=24, slope=0.2, height=-2.0):
    """Gaussian layer (sigma 1.5 voxels) round z = height + slope (x - m // 2) [voxels]."""
    z = (np.arange(nz) - nz // 2)[:, None, None]
    x = (np.arange(m) - m // 2)[None, None, :]
    surface = height + slope * x
    volume = np.exp(-0.5 * ((z - surface) / 1.5) ** 2) * np.ones((1, m, 1))
    return volume.astype(np.float32), surface[0, 0]


def test_support_follows_a_tilted_sheet():
    # A smooth planar layer: the smoothed column means are exact for a plane (the
    # Gaussian filter keeps linear functions away from the edges), so the support must
    # be centred on the plane to the voxel grid's resolution: every voxel within
    # thickness / 2 - 0.5 of the plane is in, none farther than thickness / 2 + 0.5.
    volume, surface = _tilted_sheet()
    mask = sheet_support(volume, thickness=8, smoothing=3.0)
    z = (np.arange(volume.shape[0]) - volume.shape[0] // 2)[:, None, None]
    distance = np.abs(z - surface[None, None, :]) * np.ones_like(mask)
    inner = (slice(None), slice(None), slice(4, -4))  # Gaussian edge effects aside
    assert mask[inner][distance[inner] <= 3.5].all()
    assert not mask[inner][distance[inner] > 4.5].any()


def test_empty_volume_keeps_the_slab():
    mask = sheet_support(np.zeros((5, 8, 8)), thickness=2, smoothing=1.0)
    assert mask.all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"thickness": 0.5, "smoothing": 2.0, "start": 0.5},
            "thickness must be >= 1 voxel; got 0.5",
        ),
        ({"thickness": 8, "smoothing": 0.0, "start": 0.5}, "smoothing must be > 0 voxels; got 0.0"),
        ({"thickness": 8, "smoothing": 2.0, "start": 1.0}, r"start must be a fraction in \(0, 1\)"),
    ],
)
def test_bad_sheet_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        SheetSupport(**kwargs)


@pytest.mark.parametrize("solver", ["genfire", "resire"])
def test_solvers_keep_density_inside_the_sheet(solver):
    # One atom 3 voxels above the window centre, seen at 5 tilts about y: on the flat
    # slab its density spreads over most of the 15 voxels along z. With the sheet support
    # (6 voxels thick, |z - h| <= 3) every column holds at most 7 non-zero voxels round
    # the measured height, nothing round the atom lies more than 4 voxels below it, and the peak
    # stays on the atom's column within one voxel of its height (5 tilts over 60 degrees
    # stretch it along z).
    from hpcaet.forward import project_atoms

    euler = np.array([[0, a, 0] for a in (-30, -15, 0, 15, 30)], float)
    atom = np.array([[0.0, 0.0, 3 * 0.32]])
    images = project_atoms(atom, [1.0], [20.0], euler, shape=(20, 20), pixel_size=0.32)
    sheet = SheetSupport(thickness=6, smoothing=2.0, start=0.5)
    run = {"genfire": genfire, "resire": resire}[solver]
    flat = run(images, euler, support_z=15, iterations=20, rfree_fraction=0, rng=0).volume
    out = run(images, euler, support_z=15, iterations=20, rfree_fraction=0, sheet=sheet, rng=0)
    volume = out.volume
    assert (flat[:, 10, 10] > 0).sum() > 8
    assert (volume > 0).sum(axis=0).max() <= 7
    assert volume[: 7 + 3 - 4, 7:14, 7:14].max() == 0
    peak = np.unravel_index(volume.argmax(), volume.shape)
    assert peak[1:] == (10, 10) and abs(peak[0] - (7 + 3)) <= 1
