"""A whole field on Dask: scattered images, checkpoints, a killed worker, a resumed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.errors import InputError
from hpcaet.parallel import dask_client
from hpcaet.reconstruct import plan_windows, reconstruct_field

PIXEL = 0.32
OPTIONS = {"iterations": 40}  # GENFIRE, ~0.3 s per 24-voxel window

_SCRIPT = """
import sys
import numpy as np
from hpcaet.reconstruct import WindowPlan, reconstruct_field
images, euler = np.load(sys.argv[1]), np.load(sys.argv[2])
plan = WindowPlan.from_json(open(sys.argv[3]).read())
reconstruct_field(images, euler, plan, options={"iterations": 40}, seed=3,
                  checkpoint_dir=sys.argv[4])
"""


@pytest.fixture(scope="module")
def field(sheet_factory, table_s2):
    """A 56-pixel field of a rippled MoS2 sheet, its window plan and the serial result."""
    sheet = sheet_factory(12.0, ripple=0.6, seed=5)
    images = sheet.images(table_s2, shape=(56, 56))
    plan = plan_windows((56, 56), table_s2, pixel_size=PIXEL, window=24, step=12, support_z=21)
    reference = reconstruct_field(images, table_s2, plan, options=OPTIONS, seed=3)
    return images, table_s2, plan, reference


@pytest.fixture(scope="module")
def client():
    config = load_config(overrides={"parallel": {"workers": 2, "memory_limit": "1GB"}})
    with dask_client(config.parallel) as c:
        yield c


def _same(a, b):
    # One algorithm, single-threaded FFTs; only BLAS thread counts may differ between
    # this process and the workers, which changes the last bits of float32 sums.
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())


def test_serial_field_is_stitched_from_its_windows(field):
    images, euler, plan, reference = field
    assert reference.volume.shape == plan.shape == (21, 36, 36)
    assert len(reference.computed) == 9 and reference.loaded == ()
    assert reference.error.shape == (9, 40)
    # The sheet is everywhere: no tile is empty, the density is non-negative.
    tiles = reference.volume.reshape(21, 3, 12, 3, 12).sum(axis=(0, 2, 4))
    assert (tiles > 0.5 * tiles.mean()).all() and reference.volume.min() >= 0


def _checkpoints(folder):
    """Finished window checkpoints; a write in progress is a hidden temporary file
    (``hpcaet.io.atomic_path``), which a killed run can leave behind."""
    return [p for p in folder.glob("*.npz") if not p.name.startswith(".")]


def test_a_killed_worker_does_not_change_the_volume(field, client, tmp_path):
    images, euler, plan, reference = field
    pids = client.run(os.getpid)
    victim = next(iter(pids.values()))
    killed = {}

    def kill_when_one_window_is_done():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = _checkpoints(tmp_path)
            if done:
                os.kill(victim, signal.SIGKILL)
                killed["after"] = len(done)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_when_one_window_is_done)
    watcher.start()
    result = reconstruct_field(
        images, euler, plan, options=OPTIONS, seed=3, client=client, checkpoint_dir=tmp_path
    )
    watcher.join()
    assert 1 <= killed["after"] < 9, "the worker must die while windows remain"
    assert victim not in client.run(os.getpid).values()  # the nanny started a new one
    assert len(result.computed) == 9
    _same(result.volume, reference.volume)
    assert len(_checkpoints(tmp_path)) == 9


def test_an_interrupted_run_resumes_from_its_checkpoints(field, tmp_path):
    images, euler, plan, reference = field
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "euler.npy", euler)
    (tmp_path / "plan.json").write_text(plan.to_json())
    store = tmp_path / "checkpoints"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SCRIPT,
            *(str(tmp_path / f) for f in ("images.npy", "euler.npy", "plan.json")),
            str(store),
        ]
    )
    deadline = time.monotonic() + 120
    while len(_checkpoints(store)) < 3 and proc.poll() is None:
        assert time.monotonic() < deadline, "the background run wrote no checkpoints"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in _checkpoints(store)}
    assert 3 <= len(finished) < 9, "the run must be stopped half way"

    result = reconstruct_field(images, euler, plan, options=OPTIONS, seed=3, checkpoint_dir=store)
    assert len(result.loaded) == len(finished)
    assert set(result.computed).isdisjoint(result.loaded)
    assert len(result.computed) + len(result.loaded) == 9
    for path, mtime in finished.items():  # finished windows were not recomputed
        assert path.stat().st_mtime_ns == mtime
    _same(result.volume, reference.volume)

    again = reconstruct_field(images, euler, plan, options=OPTIONS, seed=3, checkpoint_dir=store)
    assert again.computed == () and len(again.loaded) == 9
    np.testing.assert_array_equal(again.volume, result.volume)


def test_checkpoints_of_other_settings_are_not_reused(field, tmp_path):
    images, euler, _, _ = field
    plan = plan_windows(
        (56, 56), euler, pixel_size=PIXEL, window=24, step=12, support_z=21, tiles=(1, 2)
    )
    reconstruct_field(images, euler, plan, options={"iterations": 2}, checkpoint_dir=tmp_path)
    other = reconstruct_field(
        images, euler, plan, options={"iterations": 3}, checkpoint_dir=tmp_path
    )
    assert other.loaded == () and len(_checkpoints(tmp_path)) == 4


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("nan", r"image 4 has a non-finite pixel \(nan at row 7, col 9"),
        ("angles", "11 Euler angle triples for 12 images"),
        ("algorithm", "unknown reconstruction algorithm 'art'"),
        ("small", "leaves the 40 x 40 images"),
    ],
)
def test_bad_input_fails_before_any_work(field, client, tmp_path, change, match):
    images, euler, plan, _ = field
    images = images.copy()
    kwargs = dict(options=OPTIONS, client=client, checkpoint_dir=tmp_path)
    if change == "nan":
        images[4, 7, 9] = np.nan
    elif change == "angles":
        euler = euler[:11]
    elif change == "algorithm":
        kwargs["algorithm"] = "art"
    else:
        images = images[:, :40, :40]
    before = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    with pytest.raises(InputError, match=match):
        reconstruct_field(images, euler, plan, **kwargs)
    after = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    assert after == before
    assert not any(Path(tmp_path).iterdir())
