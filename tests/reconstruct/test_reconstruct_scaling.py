"""Scaling studies of the reconstruction's window map on real LocalClusters."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from hpcaet.cli import main
from hpcaet.config import load_config
from hpcaet.errors import InputError
from hpcaet.parallel.scaling import reconstruct_work, scaling_study, time_per_task, write_table
from hpcaet.reconstruct import plan_windows

PIXEL = 0.32


@pytest.fixture(scope="module")
def work(sheet_factory, table_s2):
    sheet = sheet_factory(12.0, ripple=0.6, seed=5)
    images = sheet.images(table_s2, shape=(56, 56))
    plan = plan_windows((56, 56), table_s2, pixel_size=PIXEL, window=24, step=12, support_z=21)
    return reconstruct_work(
        images, table_s2, plan, algorithm="genfire", options={"iterations": 10}, seed=0
    )


def test_strong_and_weak_tables(work, tmp_path):
    func, jobs, shared = work
    config = load_config(overrides={"parallel": {"memory_limit": "1GB"}})
    strong = scaling_study(func, jobs, shared, config, workers=[1, 2], reports=tmp_path)
    assert list(strong.workers) == [1, 2] and list(strong.tasks) == [9, 9]
    assert strong.efficiency[0] == pytest.approx(1.0) and strong.speedup[0] == pytest.approx(1)
    # efficiency is the speed-up over the workers: T1 / (n Tn)
    np.testing.assert_allclose(
        strong.efficiency, strong.seconds[0] / (strong.workers * strong.seconds)
    )
    assert 0 < strong.efficiency[1] <= 1.2
    assert (tmp_path / "dask-report-2.html").stat().st_size > 10_000
    weak = scaling_study(func, jobs, shared, config, workers=[1, 2], mode="weak")
    assert list(weak.tasks) == [4, 8]  # 9 // 2 windows per worker
    np.testing.assert_allclose(weak.efficiency, weak.seconds[0] / weak.seconds)
    paths = write_table(strong, tmp_path)
    table = xr.open_dataset(paths[0])
    np.testing.assert_allclose(table["seconds"].values, strong.seconds)
    assert table.attrs["mode"] == "strong" and table["seconds"].attrs["units"] == "s"
    assert paths[1].read_text().splitlines()[0] == "workers,tasks,seconds,speedup,efficiency"
    assert paths[2].stat().st_size > 10_000


def test_bad_studies_are_refused(work):
    func, jobs, shared = work
    config = load_config()
    with pytest.raises(InputError, match="distinct counts >= 1"):
        scaling_study(func, jobs, shared, config, workers=[0, 1])
    with pytest.raises(InputError, match="one job per worker"):
        scaling_study(func, jobs[:1], shared, config, workers=[1, 2], mode="weak")
    assert main(["scaling", "--run", "/nonexistent/run"]) == 2


def test_task_overhead_is_small():
    assert time_per_task(tasks=50) < 1e-3  # serial: a function call and bookkeeping
