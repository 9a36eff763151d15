"""``parallel.adapt``: a cluster that grows for a map and shrinks between maps."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.errors import ConfigError
from hpcaet.parallel import DaskExecutor, dask_client, map_tasks


def _slow(*, base, x):
    time.sleep(0.5)  # 24 tasks: 12 s of work, more than one worker's 5 s target
    return {"value": base * x, "pid": np.array(os.getpid())}


def _workers(client) -> int:
    return len(client.scheduler_info()["workers"])


@pytest.mark.timeout(180)
def test_an_adaptive_local_cluster_grows_for_a_map_and_shrinks_after():
    # A real LocalCluster under Dask's adaptive scaling: one worker at the start, a
    # second while the map's tasks wait, and back to one when the map is done (the
    # time between a stage's maps); the results are the serial ones.
    config = load_config(
        overrides={"parallel": {"adapt": {"minimum": 1, "maximum": 2}, "memory_limit": "1GB"}}
    )
    jobs = [{"x": float(k)} for k in range(24)]
    keys = [f"j{k}" for k in range(24)]
    shared = {"base": np.arange(1.0, 4.0)}
    with dask_client(config.parallel) as client:
        assert _workers(client) == 1
        out = map_tasks(
            _slow, jobs, keys=keys, shared=shared, executor=DaskExecutor(client, "adapt")
        )
        deadline = time.monotonic() + 60
        while _workers(client) > 1:
            assert time.monotonic() < deadline, "the idle cluster did not shrink to its minimum"
            time.sleep(0.2)
    assert len({int(r["pid"]) for r in out}) == 2, "the map never ran on a second worker"
    for r, job in zip(out, jobs, strict=True):
        np.testing.assert_array_equal(r["value"], shared["base"] * job["x"])


@pytest.mark.parametrize(
    ("parallel", "message"),
    [
        ({"adapt": {"minimum": 0, "maximum": 4}}, r"1 <= minimum <= maximum; got minimum 0"),
        ({"adapt": {"minimum": 3, "maximum": 2}}, r"got minimum 3, maximum 2"),
        (
            {"adapt": {"minimum": 1, "maximum": 2}, "scheduler": "address", "address": "tcp://x:1"},
            r"parallel.scheduler is 'address'.*parallel.adapt: null",
        ),
    ],
)
def test_bad_adapt_settings_are_refused(parallel, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"parallel": parallel})
