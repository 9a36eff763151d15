"""The reconstruct stage in a run directory, its config section and its inputs."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.errors import ConfigError, InputError
from hpcaet.forward import project_atoms, species_table
from hpcaet.forward.kernels import gaussian_sigma_from_fwhm
from hpcaet.io import DatasetNotFoundError, make_tilt_series, read_dataset, write_dataset
from hpcaet.pipeline import STAGES, RunDirectory, run_stages
from hpcaet.reconstruct import WindowPlan
from hpcaet.reconstruct.stage import load_projections

SMALL = {
    "phantom": {"field": [16.0, 16.0], "vacancies": 1, "substitutions": 0},
    "imaging": {"shape": [56, 56], "frames": 2},
    "reconstruct": {
        "window": 24,
        "step": 12,
        "support_z": 21,
        "iterations": 10,
        "inputs": "truth",
    },
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = load_config(overrides=SMALL)
    run_stages(config, root, stages=("simulate",))
    return config, root


def test_stage_writes_a_volume_from_the_truth_inputs(simulated, caplog):
    config, root = simulated
    with caplog.at_level(logging.WARNING, logger="hpcaet.reconstruct.stage"):
        outputs = run_stages(config, root, stages=("reconstruct",))
    assert "inputs = truth" in caplog.text
    volume = read_dataset(outputs["volume.nc"])
    plan = WindowPlan.from_json(volume.attrs["window_plan"])
    assert volume["density"].shape == plan.shape == (21, 36, 36)
    assert volume.attrs["algorithm"] == "GENFIRE" and volume.attrs["iterations"] == 10
    assert volume.attrs["oversampling"] == 3.0
    assert volume.attrs["source"] == "tilt_series.nc (truth)"
    assert volume.attrs["support"] == "slab"
    assert volume.sizes["iteration"] == 10
    assert volume["density"].attrs["units"] == "1/Å"
    assert (root / "figures" / "volume.png").exists()
    assert len(list((root / "checkpoints" / "reconstruct").glob("*.npz"))) == 9
    # Density [1/Å] integrates along z to the dimensionless image: the stitched block's
    # mass matches the cross-sections of the true atoms inside it within a factor of
    # order one (the window edges and the missing wedge spread some of it outside).
    truth = read_dataset(root / "truth_atoms.nc")
    xy = truth["position"].values[:, :2]
    inside = np.ones(len(xy), dtype=bool)
    for k, axis in enumerate("xy"):
        c = volume[axis].values
        inside &= (xy[:, k] >= c.min()) & (xy[:, k] <= c.max())
    species = truth["species"].values.astype(str)[inside]
    expected = sum(config.species.cross_section.get(s, 0.0) for s in species)
    mass = float(volume["density"].sum()) * volume.attrs["voxel_size"] ** 3
    assert 0.5 < mass / expected < 2.0, (mass, expected)


def test_missing_processed_file_is_an_error_naming_the_preprocess_stage(simulated, tmp_path):
    # Without reconstruct.inputs: truth, a run directory without processed.nc must not
    # fall back to anything: the error names the file and the command to run.
    config, root = simulated
    processed_config = replace(config, reconstruct=replace(config.reconstruct, inputs="processed"))
    assert not (root / "processed.nc").exists()
    with pytest.raises(
        DatasetNotFoundError, match=r"processed\.nc does not exist.*hpcaet preprocess --run"
    ):
        run_stages(processed_config, root, stages=("reconstruct",), force=True)
    with pytest.raises(DatasetNotFoundError, match="hpcaet simulate"):
        load_projections(RunDirectory(tmp_path), inputs="truth")
    with pytest.raises(InputError, match="inputs must be 'processed' or 'truth'; got 'clean'"):
        load_projections(RunDirectory(root), inputs="clean")


def test_truth_images_match_the_truth_projections(simulated):
    # The truth-input images are the simulator's clean images moved back by the true offset
    # and divided by the electrons per pixel, so they match the forward model of the true
    # atoms at the true angles (probe blur included, no offset). What differs is the
    # vibration blur the simulator adds (0.5 Å x sin(tilt) in the image): 1.5-5.5 %
    # in L1 over the central 40 x 40 pixels in our runs; a shift of one pixel would give
    # tens of per cent. Sums agree to 2 % (atoms at the field's edge leave the image).
    config, root = simulated
    images, euler, pixel, source = load_projections(RunDirectory(root), inputs="truth")
    series = read_dataset(root / "tilt_series.nc")
    truth = read_dataset(root / "truth_atoms.nc")
    np.testing.assert_array_equal(euler, series["true_euler"].values)
    cross = dict(
        zip(truth["element"].values.astype(str), truth["cross_section"].values, strict=True)
    )
    weights = species_table(truth["species"].values.astype(str), cross)
    blur = 8 * np.pi**2 * gaussian_sigma_from_fwhm(config.imaging.probe_fwhm) ** 2
    want = project_atoms(
        truth["position"].values,
        weights,
        truth["b_factor"].values + blur,
        euler,
        shape=(56, 56),
        pixel_size=pixel,
    )
    inner = (slice(8, 48), slice(8, 48))
    for got, ref in zip(images, want, strict=True):
        assert np.abs(got[inner] - ref[inner]).sum() < 0.07 * np.abs(ref[inner]).sum()
        np.testing.assert_allclose(got.sum(), ref.sum(), rtol=0.03)


def test_processed_file_is_the_default_input(simulated, tmp_path, caplog):
    config, root = simulated
    series = read_dataset(root / "tilt_series.nc")
    images = np.ones((12, 56, 56), np.float32) * 5.0
    processed = make_tilt_series(
        images=images, euler=series["true_euler"].values, pixel_size=0.32, dose=series.attrs["dose"]
    )
    run = RunDirectory(tmp_path)
    write_dataset(processed, run.file("processed.nc"))
    with caplog.at_level(logging.WARNING):
        got, euler, pixel, source = load_projections(run)
    assert source == "processed.nc" and "truth" not in caplog.text
    np.testing.assert_allclose(got, 5.0 / (series.attrs["dose"] / 12 * 0.32**2), rtol=1e-6)


def test_stage_is_registered():
    stage = STAGES["reconstruct"]
    assert stage.outputs == ("volume.nc",) and "reconstruct" in stage.sections


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"algorithm": "art"}, "reconstruct.algorithm must be 'genfire' or 'resire'"),
        ({"step": 70}, r"reconstruct.step \(70\) must not exceed reconstruct.window"),
        ({"interpolation_radius": 0.6}, "interpolation_radius must be in"),
        ({"resire_step": 1.5}, r"resire_step must be in \(0, 1\] with momentum"),
        ({"gridding": "nufft"}, "reconstruct.gridding"),
        ({"tiles": [0, 2]}, "reconstruct.tiles"),
        ({"inputs": "fallback"}, "reconstruct.inputs must be 'processed'"),
        ({"support": "cylinder"}, "reconstruct.support must be 'slab' or 'sheet'"),
        ({"sheet_thickness": 40}, r"sheet_thickness must be in \[1, support_z = 33\]"),
        ({"sheet_start": 1.0}, r"sheet_start in \(0, 1\); got 18.0 and 1.0"),
    ],
)
def test_config_checks(change, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides={"reconstruct": change})


def test_plan_is_json():
    plan = json.loads(WindowPlan(60, 30, 33, (4, 4), 0.32).to_json())
    assert plan == {"step": 30, "support_z": 33, "tiles": [4, 4], "voxel_size": 0.32, "window": 60}
