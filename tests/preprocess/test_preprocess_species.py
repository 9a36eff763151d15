"""Bright/dark metal columns and the per-species column bias used by the angle calibration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.preprocess import Tracks, bright_tracks, column_bias

PIXEL = 0.32


def _tracks(rng, n_tilt=4, n=60, n_bright=15):
    rc = rng.uniform(10, 150, (n, 2))
    tracks = np.repeat(rc[None], n_tilt, axis=0)
    tracks[1, :5] = np.nan  # some columns not seen in one image
    bright = np.zeros(n, bool)
    bright[rng.choice(n, n_bright, replace=False)] = True
    columns, intensities = [], []
    for j in range(n_tilt):
        level = np.where(bright, 2.2, 1.0) * 300 * (1 + 0.1 * j)  # dose differs per image
        columns.append(rc + rng.normal(0, 0.05, rc.shape))
        intensities.append(level * rng.normal(1, 0.15, n))  # 15 % scatter per fit
    return Tracks(rc=tracks, reference=0), columns, intensities, bright


def test_bright_columns_are_found_from_their_intensities(rng):
    tracks, columns, intensities, truth = _tracks(rng)
    # W/Mo = 2.2 with a 15 % scatter per image: the median over 4 images separates them
    assert np.array_equal(bright_tracks(tracks, columns, intensities), truth)
    # one species only: nothing is called bright
    same = [np.full(len(v), 300.0) * rng.normal(1, 0.15, len(v)) for v in intensities]
    assert not bright_tracks(tracks, columns, same).any()
    with pytest.raises(InputError, match="all 4 images; got 3 and 4"):
        bright_tracks(tracks, columns[:3], intensities)


def test_wse2_columns_are_biased_differently_from_mos2(mos2):
    wse2 = dataclasses.replace(
        mos2,
        lattice_constant=3.28,
        chalcogen_height=1.67,
        metal_weight=0.022,
        chalcogen_weight=0.0074,
        metal_b=19.0,
        chalcogen_b=16.3,
    )
    euler = (-0.6, 19.5, -18.4)
    difference = column_bias(wse2, euler, pixel_size=PIXEL) - column_bias(
        mos2, euler, pixel_size=PIXEL
    )
    # the heavier, higher Se neighbours pull the W fit by a different amount: 0.19 px at
    # these angles (0.099 px RMS over the demo's 12 tilts); a strain that size moves the
    # angles, while a difference below 0.02 px would not matter
    assert 0.02 < np.hypot(*difference) < 0.5
