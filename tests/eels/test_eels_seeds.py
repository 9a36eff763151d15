"""The peak table does not depend on the seed (issue 17): the fit is deterministic and
k-means reaches the same partition from any seeding."""

import warnings
from dataclasses import replace

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.eels import EelsWarning
from hpcaet.eels.stage import analyse_eels, synthetic_eels


@pytest.fixture(scope="module")
def demo_scan():
    config = load_config()  # the demo's EELS settings and its synthetic line scan
    return config, synthetic_eels(config)


def _table(config, scan, seed, **settings):
    with warnings.catch_warnings():
        # a loose peak may warn (error bar wider than the range): the same for every seed
        warnings.simplefilter("ignore", EelsWarning)
        out = analyse_eels(scan, replace(config.eels, **settings), rng=seed)
    return out["peak_centre"].values, out["peak_centre_error"].values


def _assert_same(tables):
    centre0, error0 = tables[0]
    for centre, error in tables[1:]:
        # bit-equal fits: the same partition and the same deterministic starts
        np.testing.assert_array_equal(centre, centre0)
        np.testing.assert_array_equal(error, error0)


def test_table_same_for_the_issues_seeds(demo_scan):
    config, scan = demo_scan
    # the issue saw 38.6 ± 0.2 with seed 0 and 31.9 ± 123.2 with seed 7; 20 starts here
    # for speed (the fit has no randomness at any number), the defaults in the slow test
    _assert_same([_table(config, scan, seed, fit_starts=20) for seed in (0, 7, 2)])


@pytest.mark.slow
def test_table_same_for_seeds_0_to_9(demo_scan):
    config, scan = demo_scan
    _assert_same([_table(config, scan, seed) for seed in range(10)])
