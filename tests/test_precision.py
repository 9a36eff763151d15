"""The precision estimate: the run's model drawn by multislice, the chain run again."""

import json

import numpy as np
import pytest

from hpcaet.config import load_config, packaged_config
from hpcaet.errors import InputError
from hpcaet.phantom.stage import make_phantom, simulate_tilt_series
from hpcaet.precision import precision_config, run_precision

SERIES = {
    "seed": 5,
    "phantom": {"field": [16.0, 16.0], "vacancies": 1, "substitutions": 0},
    "imaging": {
        "shape": [64, 48],
        "frames": 3,
        "read_noise": 6.0,
        "angles": [[0.0, -20.0, 0.0], [0.0, 0.0, 0.0], [0.0, 20.0, 2.0]],
    },
}

# a 24 Å flake at the demo's 12 tilts, small windows, short refinements: the slow tests' run
SMALL_RUN = {
    "phantom": {"field": [24.0, 24.0], "vacancies": 2, "substitutions": 1},
    "imaging": {"shape": [96, 96], "frames": 3},
    "reconstruct": {"iterations": 50, "window": 40, "step": 20, "support_z": 27},
    "atoms": {"refine_iterations": 30, "flip_cycles": 1},
}
PRISM2 = {"imaging": {"multislice": {"engine": "prism", "prism_interpolation": 2}}}


def _assert_metals_found(scores: dict) -> None:
    """The chain finds the model it was drawn from: every metal within 20 pm rms."""
    for metal in ("Mo", "W"):
        assert scores["species"][metal]["rmsd_pm"] < 20.0, scores["species"][metal]
        assert scores["species"][metal]["species_accuracy"] > 0.95


@pytest.fixture(scope="module")
def recorded():
    config = load_config(overrides=SERIES)
    series = simulate_tilt_series(make_phantom(config), config)
    # a processed series carries the calibrated angles the model belongs to
    processed = series[["euler"]].copy()
    processed["euler"] = series["true_euler"]
    return config, series, processed


def test_the_precision_run_records_what_the_run_recorded(recorded):
    config, series, processed = recorded
    sub = precision_config(
        config,
        series,
        processed,
        overrides={"imaging": {"multislice": {"engine": "prism"}}, "seed": 9},
    )
    im = sub.imaging
    assert im.model == "multislice"
    np.testing.assert_allclose(np.array(im.angles), series["true_euler"].values)
    assert tuple(im.shape) == (64, 48) and im.frames == 3 and im.nominal_error == 0.0
    assert im.dose == config.imaging.dose and im.pixel_size == config.imaging.pixel_size
    # the detector noise comes from the run's frames (6 counts simulated, gain 1)
    assert im.read_noise == pytest.approx(6.0, rel=0.2)
    # overrides merge into a section and leave its other settings
    assert im.multislice.engine == "prism" and im.multislice.tile == config.imaging.multislice.tile
    assert sub.seed == 9 and sub.name.endswith("-precision")


def test_an_imported_run_is_recorded_as_measured(recorded, tmp_path):
    # The same frames written as a detector's files (gain 2.5, dark level 10) and read
    # back through hpcaet's import, truth variables gone: the precision run takes its
    # shape, frames, pixel size, optics, dose and detector noise from what was imported,
    # the noise in detected electrons (6 simulated at gain 1).
    from hpcaet.io.export import export_frames
    from hpcaet.io.importer import import_tilt_series, read_angle_table

    config, series, processed = recorded
    files, table = export_frames(series, tmp_path, gain=2.5, offset=10.0)
    settings = dict(
        voltage=60, convergence_angle=38, detector_inner_angle=50, detector_outer_angle=210
    )
    imported, _ = import_tilt_series(
        files, read_angle_table(table), settings=settings, dose=5e4, offset=10.0
    )
    assert not [v for v in imported.data_vars if v.startswith("true_")]
    sub = precision_config(config, imported, processed)
    im = sub.imaging
    assert tuple(im.shape) == (64, 48) and im.frames == 3
    assert im.pixel_size == pytest.approx(config.imaging.pixel_size, rel=1e-6)
    assert im.dose == 5e4 and im.voltage == 60 and im.detector_inner_angle == 50
    assert im.read_noise == pytest.approx(6.0, rel=0.2)
    np.testing.assert_allclose(np.array(im.angles), series["true_euler"].values)


def test_a_run_without_a_model_is_refused_naming_the_command(tmp_path):
    (tmp_path / "config.yaml").write_text("name: x\n")
    with pytest.raises(InputError, match=r"tilt_series.nc.*hpcaet simulate or hpcaet import"):
        run_precision(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_precision_of_an_imported_run(tmp_path):
    # A 24 Å flake at 12 tilts written as detector TIFFs (gain 2.5, dark level 10),
    # imported without its truth, taken through preprocess -> reconstruct -> atoms; then
    # the imported run's model drawn by PRISM at the run's own settings and the chain run
    # again. The precision run sees only what an imported run has.
    import shlex
    import subprocess
    import sys

    import yaml

    from hpcaet.io import read_dataset

    config = yaml.safe_load(packaged_config("demo").read_text())
    for section, values in SMALL_RUN.items():
        config[section] = {**config.get(section, {}), **values}
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(config))
    export = (
        "from hpcaet.io import read_dataset; from hpcaet.io.export import export_frames; "
        "export_frames(read_dataset('sim/tilt_series.nc'), 'files', gain=2.5, offset=10)"
    )
    for command in (
        "hpcaet simulate --config small.yaml --run sim --no-cluster",
        f"python -c {shlex.quote(export)}",
        "hpcaet import --angles files/angles.csv --run imp --config small.yaml --voltage 60 "
        "--convergence-angle 38 --detector-angles 50 210 --offset 10",
        "hpcaet run --run imp --stages preprocess,reconstruct,atoms",
    ):
        program, *rest = shlex.split(command)
        words = [sys.executable, *(["-m", "hpcaet.cli"] if program == "hpcaet" else []), *rest]
        done = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    run = tmp_path / "imp"
    series = read_dataset(run / "tilt_series.nc")
    assert series.attrs["imported"] == 1 and not (run / "truth_atoms.nc").exists()
    assert not [v for v in series.data_vars if v.startswith("true_")]

    table = run_precision(run, overrides=PRISM2)
    written = json.loads((run / "precision.json").read_text())
    assert written["scores"] == table["scores"]
    assert load_config(run / "precision" / "config.yaml").imaging.model == "multislice"
    _assert_metals_found(table["scores"])


@pytest.mark.slow
def test_precision_of_a_small_run(tmp_path):
    # a 24 Å flake at 12 tilts through the linear chain, then its model drawn by PRISM
    from hpcaet.pipeline import run_stages

    config = load_config(packaged_config("demo"), overrides=SMALL_RUN)
    run_stages(config, tmp_path, stages=("simulate", "preprocess", "reconstruct", "atoms"))
    table = run_precision(
        tmp_path,
        overrides=PRISM2,
    )
    written = json.loads((tmp_path / "precision.json").read_text())
    assert written["scores"] == table["scores"]
    _assert_metals_found(table["scores"])
