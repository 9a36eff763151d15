"""A tilt series drawn by multislice: same geometry as the linear model, tiles resumed."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from hpcaet.config import load_config
from hpcaet.phantom.stage import make_phantom, simulate_tilt_series

pytest.importorskip("abtem")

#: A 16 Å flake in 32 x 32 pixels at two tilts; PRISM with interpolation 2 keeps each
#: run to seconds (the physics of the engines is tested in tests/forward/test_adf.py).
TINY = {
    "seed": 3,
    "phantom": {
        "field": [16.0, 16.0],
        "vacancies": 1,
        "substitutions": 0,
        "region_polygon": [[-1.0, -1.0], [-1.0, 0.0], [0.0, 0.0], [0.0, -1.0]],
    },
    "imaging": {
        "shape": [32, 32],
        "frames": 1,
        "angles": [[0.0, -25.0, 0.0], [0.0, 20.0, 5.0]],
        "drift_max": 0.3,
        "offset_max": 1.0,
        "vibration_amplitude": 0.2,
        "model": "multislice",
        "multislice": {"engine": "prism", "prism_interpolation": 2, "slice_thickness": 1.0},
    },
}

_SCRIPT = """
import sys
from hpcaet.config import load_config
from hpcaet.phantom.stage import make_phantom, simulate_tilt_series
config = load_config(sys.argv[1])
simulate_tilt_series(make_phantom(config), config, checkpoints=sys.argv[2])
"""


def _tiles(folder):
    return sorted(folder.glob("multislice-*.npz"))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """The dynamical series of TINY, from a run killed half way and resumed."""
    folder = tmp_path_factory.mktemp("dynamical")
    config_file = folder / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(TINY))
    store = folder / "checkpoints"
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(config_file), str(store)])
    deadline = time.monotonic() + 300
    while len(_tiles(store)) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "the background run wrote no tile"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in _tiles(store)}

    config = load_config(config_file)
    model = make_phantom(config)
    dynamical = simulate_tilt_series(model, config, checkpoints=store)
    linear_config = load_config(
        overrides={**TINY, "imaging": {**TINY["imaging"], "model": "linear"}}
    )
    return config, model, store, finished, dynamical, simulate_tilt_series(model, linear_config)


def test_dynamical_images_have_the_linear_geometry(series):
    *_, dynamical, linear = series
    assert dynamical.attrs["image_model"] == "multislice"
    for j in range(dynamical.sizes["tilt"]):
        a = linear["clean_images"].values[j].astype(float)
        b = dynamical["clean_images"].values[j].astype(float)
        # the same atoms in the same places: the images correlate and their
        # cross-correlation peaks at zero shift (a sign or axis slip would move it)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
        cc = np.fft.ifft2(np.fft.fft2(a - a.mean()) * np.conj(np.fft.fft2(b - b.mean()))).real
        assert np.unravel_index(cc.argmax(), cc.shape) == (0, 0)
        # the linear cross-sections are single-atom multislice values: the total
        # signal agrees to the channelling and the tile truncation (measured 0.91-1.00)
        assert 0.8 < b.sum() / a.sum() < 1.1
    # the frames carry the linear path's noise and background: counts near the clean
    # image plus its 30 % background
    ratio = dynamical["frames"].values.mean() / dynamical["clean_images"].values.mean()
    assert dynamical["frames"].shape[:2] == (2, 1) and 1.1 < ratio < 1.5


def test_a_killed_run_resumes_from_its_tiles(series):
    config, model, store, finished, dynamical, _ = series
    tiles = _tiles(store)
    assert 2 <= len(finished) < len(tiles), "the run must be stopped half way"
    for path, mtime in finished.items():  # finished tiles were not recomputed
        assert path.stat().st_mtime_ns == mtime
    # and the tiles are what an uninterrupted run computes: all of them again, into a
    # new folder, gives the same series bit for bit
    fresh = simulate_tilt_series(model, config, checkpoints=store.parent / "fresh")
    np.testing.assert_array_equal(fresh["frames"].values, dynamical["frames"].values)


def test_the_demo_check_draws_one_crop_both_ways(series, tmp_path):
    from hpcaet.phantom.compare import compare_image_models, plot_comparison

    config, model, *_ = series
    result = compare_image_models(model, config, crop=16, euler=np.array([0.0, 20.0, 5.0]))
    assert result.linear.shape == result.dynamical.shape == (16, 16)
    # the same atoms in the same places, the multislice total within 20 % of the
    # linear one (its cross-sections are single-atom multislice values)
    assert result.correlation > 0.9 and 0.8 < result.signal_ratio < 1.2
    assert 0 < result.difference < 0.6
    assert plot_comparison(result, tmp_path / "check.png").stat().st_size > 10_000
