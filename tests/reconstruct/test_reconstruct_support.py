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


@pytest.mark.parametrize("algorithm", ["genfire", "resire"])
def test_a_film_thicker_than_the_window(algorithm):
    # Atoms spread over 10 Å in z inside a 24-voxel (7.7 Å) window: the slab (41 voxels,
    # 13 Å) is thicker than the window. 15 tilts to ±60° about two axes; every atom's
    # density peak comes back within 1 voxel of its place (measured: 0.62 voxel at worst,
    # the argmax voxel against the sub-voxel truth; an atom whose blur reaches the slab's
    # face, 5.5 Å up, came 1.2 voxels in with GENFIRE).
    from hpcaet.forward import project_atoms

    rng = np.random.default_rng(2)
    atoms = np.column_stack([rng.uniform(-2.0, 2.0, (6, 2)), np.linspace(-5.0, 5.0, 6)])
    m, nz, px = 24, 41, 0.32
    tilt = np.linspace(-60, 60, 15)
    euler = np.column_stack([np.where(np.arange(15) % 2, 90.0, 0.0), tilt, np.zeros(15)])
    images = project_atoms(atoms, 1.0, 12.0, euler, shape=(m, m), pixel_size=px)
    solve = {"genfire": genfire, "resire": resire}[algorithm]
    out = solve(images, euler, support_z=nz, iterations=150, rng=0)
    assert out.volume.shape == (nz, m, m)
    for a in atoms:
        want = np.array([a[2], a[1], a[0]]) / px + [nz // 2, m // 2, m // 2]
        r = np.rint(want).astype(int)
        sub = out.volume[r[0] - 2 : r[0] + 3, r[1] - 2 : r[1] + 3, r[2] - 2 : r[2] + 3]
        peak = np.array(np.unravel_index(sub.argmax(), sub.shape)) + r - 2
        assert np.abs(peak - want).max() <= 1.0, (algorithm, a, peak, want)


@pytest.mark.parametrize(
    ("algorithm", "options"),
    [
        ("genfire", {"iterations": 10, "oversampling": 1.5}),
        ("resire", {"iterations": 8}),
    ],
)
def test_a_thick_slab_over_a_rectangular_field(algorithm, options):
    # The field path (plan_windows + reconstruct_field) with a slab far thicker than its
    # windows: 61 x 131 pixel images (rectangular), 46 tilts to ±70° about y, windows of
    # 61 voxels scanned along x in steps of 30 (3 windows), support_z = 131 (42 Å). Nine
    # atoms spread over ±16 Å in z and over the three tiles. GENFIRE takes the FFT along
    # z (131 voxels: 13x more sparse entries than padded elements), RESIRE the
    # shear-warp projector (61² x 131 x 46 x 16 = 360 M matrix entries). Every atom's
    # peak comes back within 1 voxel (measured: 0.67 voxel at worst, the argmax voxel
    # against the sub-voxel truth, both algorithms) and the volume holds no other peak
    # above 30 % of its maximum (the windows' crops at high tilts also show atoms of the
    # neighbouring tiles; that density lands outside the kept tiles). Oversampling 1.5
    # and few iterations keep the test fast; the peaks are already in place.
    from scipy import ndimage

    from hpcaet.forward import project_atoms
    from hpcaet.reconstruct import plan_windows, reconstruct_field

    px, n_tilt = 0.32, 46
    rng = np.random.default_rng(3)
    x = np.array([-38, -30, -22, -8, 0, 8, 22, 30, 38.0]) + rng.uniform(-2, 2, 9)
    atoms = (
        np.column_stack([x, rng.uniform(-12, 12, 9), rng.permutation(np.linspace(-50, 50, 9))]) * px
    )
    euler = np.column_stack([np.zeros(n_tilt), np.linspace(-70, 70, n_tilt), np.zeros(n_tilt)])
    images = project_atoms(atoms, 1.0, 12.0, euler, shape=(61, 131), pixel_size=px)
    plan = plan_windows(images.shape[1:], euler, pixel_size=px, window=61, step=30, support_z=131)
    assert plan.tiles == (1, 3) and plan.shape == (131, 30, 90)
    volume = reconstruct_field(images, euler, plan, algorithm=algorithm, options=options).volume
    want = atoms[:, ::-1] / px + np.array(plan.shape) // 2  # (z, y, x) [voxels]
    for w in want:
        r = np.rint(w).astype(int)
        sub = volume[r[0] - 2 : r[0] + 3, r[1] - 2 : r[1] + 3, r[2] - 2 : r[2] + 3]
        peak = np.array(np.unravel_index(sub.argmax(), sub.shape)) + r - 2
        assert np.abs(peak - w).max() <= 1.0, (algorithm, w, peak)
    peaks = np.argwhere(
        (volume == ndimage.maximum_filter(volume, size=5)) & (volume > 0.3 * volume.max())
    )
    nearest = np.sqrt(((peaks[:, None] - want[None]) ** 2).sum(axis=-1)).min(axis=1)
    assert len(peaks) == len(want) and nearest.max() <= 1.0, (algorithm, peaks, nearest)
