"""Dynamic refinement: a displaced S atom goes back to its true place by multislice R1 scans.

The measured images are a multislice tilt series of a small MoS2/WSe2 flake drawn the
way the simulator draws one (:func:`hpcaet.phantom.dynamical.dynamical_pictures`: every
atom, field-wide tiles, the fine canvas), blurred by an incoherent Gaussian and a
vibration kernel, without noise; the scan computes its crops the other way (a baseline
without the atom plus a small patch cell around it), so the test checks the patch
approximation and the scan together. The numerics are cut for speed (50-100 mrad
detector, 1 Å slices, 2 tilts, a 1.5 Å patch); ``-m slow`` runs the paper's 5 × 5 × 9
grid.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpcaet.atoms.blur import blur_images, vibration_kernels
from hpcaet.atoms.dynamic import refine_outliers
from hpcaet.atoms.dynamic_grid import ScanGrid, check_atom_indices, select_outliers
from hpcaet.config import load_config
from hpcaet.errors import InputError
from hpcaet.forward.adf import ADFOptics, ADFSettings
from hpcaet.phantom.dynamical import dynamical_pictures
from hpcaet.phantom.simulate import TiltCanvas
from hpcaet.phantom.stage import make_phantom

pytest.importorskip("abtem")

#: A 16 Å flake (seed 3: an S atom 1.6 Å from the centre, Mo/W/S/Se around it).
TINY = {
    "seed": 3,
    "phantom": {
        "field": [16.0, 16.0],
        "vacancies": 1,
        "substitutions": 0,
        "region_polygon": [[-1.0, -1.0], [-1.0, 0.0], [0.0, 0.0], [0.0, -1.0]],
    },
}
PIXEL = 0.32  # [Å]
SHAPE = 28  # image side [pixel]
OPTICS = ADFOptics(voltage=60.0, convergence_angle=38.0, detector=(50.0, 100.0))
SETTINGS = ADFSettings(sampling=0.15, slice_thickness=1.0, padding=2.0, tile=16)
EULER = np.array([[0.0, -25.0, 0.0], [0.0, 20.0, 5.0]])
SIGMA = 0.3  # incoherent blur [Å]
DISPLACEMENT = np.array([0.4, 0.0, 0.9])  # the 40 pm in x and 90 pm in z [Å]
OPTIONS = {
    "pixel_size": PIXEL,
    "optics": OPTICS,
    "settings": SETTINGS,
    "crop": 16,
    "patch_radius": 1.5,
    "incoherent_sigma": SIGMA,
}


def _phantom():
    model = make_phantom(load_config(overrides=TINY))
    species = model["species"].values.astype(str)
    keep = species != "vac"
    position, species = model["position"].values[keep], species[keep]
    s_atoms = np.flatnonzero(species == "S")
    atom = int(s_atoms[np.argmin(np.hypot(*(position[s_atoms, :2] - 0.5).T))])
    return position, species, atom


def _measured(position, species):
    """Noise-free multislice images at the detector's pixels, vibration-blurred [counts]."""
    margin = 2
    canvases = [TiltCanvas((SHAPE, SHAPE), PIXEL, margin, np.zeros(2)) for _ in EULER]
    pictures = dynamical_pictures(
        position,
        species,
        EULER,
        canvases,
        optics=OPTICS,
        settings=SETTINGS,
        incoherent_sigma=SIGMA,
    )
    lo, hi = 2 * margin, 2 * (margin + SHAPE)
    images = 1e4 * np.array([p[lo:hi:2, lo:hi:2] for p in pictures])
    kernels = vibration_kernels([30.0, 100.0], [0.25, 0.15], [0.1, 0.1], pixel_size=PIXEL)
    return blur_images(images, kernels), kernels


@pytest.fixture(scope="module")
def scene():
    position, species, atom = _phantom()
    images, kernels = _measured(position, species)
    model = position.copy()
    model[atom] += DISPLACEMENT
    return position, species, atom, images, kernels, model


@pytest.fixture(scope="module")
def scanned(scene, tmp_path_factory):
    _, species, atom, images, kernels, model = scene
    grid = ScanGrid((0.4, 0.0, 1.2), (0.2, 0.2, 0.3))  # 5 x 1 x 9: y is the slow test's
    store = tmp_path_factory.mktemp("dynamic")
    result = refine_outliers(
        images,
        EULER,
        model,
        species,
        atoms=[atom],
        grid=grid,
        kernels=kernels,
        store_dir=store,
        **OPTIONS,
    )
    return grid, result


def test_a_displaced_s_atom_is_moved_back_within_a_grid_step(scene, scanned):
    truth, _, atom, _, _, model = scene
    grid, result = scanned
    error = result.position[atom] - truth[atom]
    # one grid step per axis (0.2 Å in x, 0.3 Å in z); the scan is blind to y here
    assert np.all(np.abs(error[[0, 2]]) <= np.array(grid.step)[[0, 2]] + 1e-9), error
    assert np.linalg.norm(result.position[atom] - model[atom]) > 0.5  # it did move
    # R1 is lowest at the chosen point and lower than at the start
    assert result.r1[0, result.best[0]] < result.r1[0, len(result.offsets) // 2]


def test_atoms_not_scanned_are_untouched(scene, scanned):
    *_, atom, _, _, model = scene
    _, result = scanned
    others = np.arange(len(model)) != atom
    np.testing.assert_array_equal(result.position[others], model[others])


_SCRIPT = """
import sys, numpy as np
from hpcaet.atoms.dynamic import refine_outliers
from hpcaet.atoms.dynamic_grid import ScanGrid
sys.path.insert(0, sys.argv[2])
import test_dynamic as t
d = np.load(sys.argv[1])
refine_outliers(d["images"], t.EULER, d["model"], d["species"], atoms=[int(d["atom"])],
                grid=ScanGrid((0.0, 0.0, 0.6), (0.2, 0.2, 0.3)), kernels=list(d["kernels"]),
                store_dir=sys.argv[3], **t.OPTIONS)
"""


def test_a_killed_scan_resumes_from_its_points(scene, tmp_path):
    _, species, atom, images, kernels, model = scene
    inputs = tmp_path / "inputs.npz"
    np.savez(
        inputs, images=images, model=model, species=species, atom=atom, kernels=np.array(kernels)
    )
    store = tmp_path / "store"
    here = str(__import__("pathlib").Path(__file__).parent)
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(inputs), here, str(store)])
    deadline = time.monotonic() + 300
    while len(list(store.glob("dynamic-scan-*.npz"))) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "the background scan wrote no point"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in store.glob("dynamic-scan-*.npz")}
    assert 2 <= len(finished) < 5, "the scan must be stopped part way"
    grid = ScanGrid((0.0, 0.0, 0.6), (0.2, 0.2, 0.3))
    options = {"atoms": [atom], "grid": grid, "kernels": kernels, **OPTIONS}
    resumed = refine_outliers(images, EULER, model, species, store_dir=store, **options)
    for path, mtime in finished.items():  # finished points were not recomputed
        assert path.stat().st_mtime_ns == mtime
    assert resumed.computed < 5 + 4 + 2  # the rest of 5 points, at most 4 tiles, 2 patches
    fresh = refine_outliers(images, EULER, model, species, store_dir=None, **options)
    np.testing.assert_array_equal(resumed.r1, fresh.r1)


def test_outliers_are_the_flagged_atoms_of_the_scanned_species():
    position, species, _ = _phantom()
    assert (
        select_outliers(
            position, species, scan_species=["S"], min_distance=1.6, off_layer=1.0, smoothing=5.0
        ).size
        == 0
    )  # the phantom has none
    moved = position.copy()
    s_atoms, se_atoms = np.flatnonzero(species == "S"), np.flatnonzero(species == "Se")
    moved[s_atoms[10], 2] += 1.5  # off its layer
    moved[se_atoms[0], 2] += 1.5  # off its layer, but not a scanned species
    flagged = select_outliers(
        moved, species, scan_species=["S"], min_distance=1.6, off_layer=1.0, smoothing=5.0
    )
    assert flagged.tolist() == [s_atoms[10]]
    with pytest.raises(InputError, match=f"atom {s_atoms[3]} is not a flagged outlier"):
        check_atom_indices([s_atoms[3]], flagged, len(moved))
    assert check_atom_indices([s_atoms[10]], flagged, len(moved)).tolist() == [s_atoms[10]]


def test_the_paper_grid_has_225_points():
    grid = ScanGrid((0.4, 0.4, 1.2), (0.2, 0.2, 0.3))
    assert grid.shape == (5, 5, 9) and len(grid.offsets()) == 225
    np.testing.assert_allclose(grid.axes()[2], np.arange(-1.2, 1.21, 0.3), atol=1e-12)
    with pytest.raises(InputError, match="whole number of steps"):
        ScanGrid((0.4, 0.4, 1.0), (0.2, 0.2, 0.3))


def test_bad_settings_are_refused_before_any_work(scene, tmp_path):
    _, species, atom, images, kernels, model = scene
    grid = ScanGrid((0.2, 0.2, 0.3), (0.2, 0.2, 0.3))
    options = {**OPTIONS, "atoms": [atom], "grid": grid, "store_dir": tmp_path}
    with pytest.raises(InputError, match="crop of 40 pixels does not fit the 28 × 28"):
        refine_outliers(images, EULER, model, species, **{**options, "crop": 40})
    wide = ADFOptics(voltage=60.0, convergence_angle=38.0, detector=(50.0, 210.0))
    with pytest.raises(InputError, match="below the detector's outer angle 210"):
        refine_outliers(images, EULER, model, species, **{**options, "optics": wide})
    assert not list(tmp_path.iterdir())  # nothing was computed


@pytest.mark.slow
def test_the_paper_grid_recovers_the_atom_in_x_y_and_z(scene, tmp_path):
    truth, species, atom, images, kernels, model = scene
    grid = ScanGrid((0.4, 0.4, 1.2), (0.2, 0.2, 0.3))
    result = refine_outliers(
        images,
        EULER,
        model,
        species,
        atoms=[atom],
        grid=grid,
        kernels=kernels,
        store_dir=tmp_path,
        **OPTIONS,
    )
    error = result.position[atom] - truth[atom]
    assert np.all(np.abs(error) <= np.array(grid.step) + 1e-9), error


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory: atoms.nc with a top S lifted 1.2 Å off its layer (flagged), and
    processed.nc whose linear_images are the multislice images of the true flake."""
    from hpcaet.atoms.stage import keep_sites
    from hpcaet.io import make_tilt_series, write_dataset

    truth = make_phantom(load_config(overrides=TINY))
    truth = keep_sites(truth, truth["species"].values != "vac")  # pairs renumbered
    position, species = truth["position"].values, truth["species"].values.astype(str)
    top = np.flatnonzero((species == "S") & (truth["layer"].values == 1))
    atom = int(top[np.argmin(np.hypot(*(position[top, :2] - 0.5).T))])
    images, _ = _measured(position, species)
    root = tmp_path_factory.mktemp("run")
    model = truth.copy(deep=True)
    model["position"].values[atom, 2] += 1.2
    write_dataset(truth, root / "truth_atoms.nc")
    write_dataset(model, root / "atoms.nc")
    series = make_tilt_series(
        images=images, euler=EULER, pixel_size=PIXEL, detector_outer_angle=100.0, dose=1e5
    )
    series["linear_images"] = series["images"].copy()
    write_dataset(series, root / "processed.nc")
    overrides = {
        "imaging": {
            "multislice": {
                "sampling": SETTINGS.sampling,
                "slice_thickness": SETTINGS.slice_thickness,
                "padding": SETTINGS.padding,
                "incoherent_sigma": SIGMA,
            }
        },
        "dynamic": {"crop": 16, "patch_radius": 1.5, "half_width": [0.0, 0.0, 1.2]},
    }
    return root, atom, position, overrides


def test_the_stage_moves_the_flagged_atom_and_nothing_else(run_dir):
    from hpcaet.atoms.dynamic_stage import run_dynamic
    from hpcaet.pipeline import RunDirectory

    root, atom, truth, overrides = run_dir
    off = run_dynamic(load_config(overrides=overrides), RunDirectory(root))["atoms_dynamic.nc"]
    assert off.attrs["dynamic_grid"] == "off"  # dynamic.enabled is false by default
    config = load_config(
        overrides={**overrides, "dynamic": {**overrides["dynamic"], "enabled": True}}
    )
    out = run_dynamic(config, RunDirectory(root))["atoms_dynamic.nc"]
    assert out["dynamic_atom"].values.tolist() == [atom]  # the only flagged S
    moved = out["position"].values
    assert abs(moved[atom, 2] - truth[atom, 2]) <= 0.3 + 1e-9  # one z step
    others = np.arange(len(moved)) != atom
    np.testing.assert_array_equal(moved[others], off["position"].values[others])
    assert out["dynamic_r1"].shape == (1, 9)


def test_the_command_refuses_an_atom_that_is_not_flagged(run_dir, capsys, caplog):
    import yaml

    from hpcaet.cli import main

    root, atom, _, overrides = run_dir
    (root / "config.yaml").write_text(yaml.safe_dump(overrides))
    code = main(["dynamic", "--run", str(root), "--atoms", str(atom + 1), "--no-cluster"])
    assert code == 2
    said = capsys.readouterr().err + caplog.text
    assert f"atom {atom + 1} is not a flagged outlier" in said
    assert not (root / "atoms_dynamic.nc").exists()


def test_a_dask_cluster_gives_the_serial_result(scene, tmp_path):
    from distributed import Client, LocalCluster

    from hpcaet.parallel.tasks import DaskExecutor

    _, species, atom, images, kernels, model = scene
    options = {
        "atoms": [atom],
        "grid": ScanGrid((0.2, 0.0, 0.3), (0.2, 0.2, 0.3)),
        "kernels": kernels,
        **OPTIONS,
    }
    serial = refine_outliers(images, EULER, model, species, store_dir=None, **options)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        spread = refine_outliers(
            images,
            EULER,
            model,
            species,
            executor=DaskExecutor(client, "dynamic"),
            store_dir=tmp_path,
            **options,
        )
    assert len(list(tmp_path.glob("dynamic-scan-*.npz"))) == 9  # 3 x 1 x 3 points
    np.testing.assert_array_equal(spread.r1, serial.r1)


def test_an_outlier_in_the_edge_band_is_skipped_unless_asked_for(run_dir):
    from hpcaet.atoms.dynamic_stage import dynamic_inputs
    from hpcaet.errors import ConfigError
    from hpcaet.io import FLAG_EDGE, read_dataset

    root, atom, _, overrides = run_dir
    model = read_dataset(root / "atoms.nc", kind="AtomModel")
    series = read_dataset(root / "processed.nc", kind="TiltSeries")
    model["flag"] = ("atom", np.zeros(model.sizes["atom"], np.int8))
    model["flag"].values[atom] = FLAG_EDGE

    def inputs(**dynamic):
        cfg = load_config(overrides={**overrides, "dynamic": {**overrides["dynamic"], **dynamic}})
        return dynamic_inputs(cfg, model, series)

    default = inputs()  # dynamic.skip_edge: true
    assert default["outliers"].tolist() == [atom]  # still flagged ...
    assert default["atoms"].tolist() == [] and default["skipped"].tolist() == [atom]  # not scanned
    kept = inputs(skip_edge=False)
    assert kept["atoms"].tolist() == [atom] and kept["skipped"].size == 0
    named = inputs(atoms=[atom])  # an explicit list wins
    assert named["atoms"].tolist() == [atom] and named["skipped"].size == 0
    with pytest.raises(InputError, match=f"atom {atom + 1} is not a flagged outlier"):
        inputs(atoms=[atom + 1])
    with pytest.raises(ConfigError, match="skip_edge.*true or false"):
        inputs(skip_edge="no")
