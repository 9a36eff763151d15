"""Tests of the lattice snapping of far chalcogen sites (hpcaet.atoms.pairs.snap_chalcogens)."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.atoms import fit_layers
from hpcaet.atoms.pairs import snap_chalcogens
from hpcaet.errors import InputError

HEIGHTS = (1.56, 1.67)  # the phantom's S and Se heights above the metal sheet [Å]


def test_far_chalcogens_go_to_their_lattice_site(truth):
    # Push 12 chalcogen sites 1 Å along z (towards the metal sheet, as a weak chalcogen
    # layer of a volume does) or 0.8 Å in-plane; they must come back to their true
    # sites within 0.35 Å (the ideal sites of the unperturbed phantom are off by 0.07 /
    # 0.12 / 0.13 Å rms in x / y / z, 0.27 Å at most: the lattice mismatch strains the
    # interface, the 5 Å layer smoothing flattens the ripple, and the atoms carry 0.05 Å
    # thermal displacements; the refinement starts from there), and the sites within the
    # tolerance must not move beyond that.
    pos = truth["position"].values
    layer, region, pair = (truth[v].values for v in ("layer", "region", "pair"))
    inner = np.max(np.abs(pos[:, :2]), axis=1) < 7.0
    chalc = np.flatnonzero(inner & (pair >= 0))
    rng = np.random.default_rng(0)
    moved = rng.choice(chalc, 12, replace=False)
    start = pos.copy()
    start[moved[:8], 2] -= np.sign(layer[moved[:8]]) * 1.0
    start[moved[8:], 0] += 0.8
    atom = truth["species"].values != "vac"
    surfaces = fit_layers(pos[atom], smoothing=5.0).surfaces
    out = snap_chalcogens(
        start, layer, region, pair, surfaces=surfaces, heights=HEIGHTS, tolerance=0.5
    )
    err = np.linalg.norm(out[moved] - pos[moved], axis=1)
    assert err.max() < 0.35
    still = np.setdiff1d(np.arange(len(pos)), moved)
    changed = np.linalg.norm(out[still] - start[still], axis=1) > 0
    # Unmoved sites stay unless they were already farther than the tolerance.
    assert np.all(np.linalg.norm(out[still][changed] - pos[still][changed], axis=1) < 0.35)
    assert changed.sum() <= 2
    # Tolerance 0: every paired site goes to its ideal site (an idempotent projection).
    ideal = snap_chalcogens(
        start, layer, region, pair, surfaces=surfaces, heights=HEIGHTS, tolerance=0
    )
    again = snap_chalcogens(
        ideal, layer, region, pair, surfaces=surfaces, heights=HEIGHTS, tolerance=0
    )
    np.testing.assert_allclose(again[pair >= 0], ideal[pair >= 0], atol=0.05)


def test_snap_bad_input(truth):
    pos = truth["position"].values
    layer, region, pair = (truth[v].values for v in ("layer", "region", "pair"))
    surfaces = fit_layers(pos).surfaces
    for heights in ((1.5, -1.0), (1.5, 1.6, 1.7)):
        with pytest.raises(InputError, match="one positive height"):
            snap_chalcogens(
                pos, layer, region, pair, surfaces=surfaces, heights=heights, tolerance=0.5
            )
    with pytest.raises(InputError, match="must agree"):
        snap_chalcogens(
            pos, layer[:-1], region, pair, surfaces=surfaces, heights=HEIGHTS, tolerance=0.5
        )
    with pytest.raises(InputError, match="pair_radius must be positive"):
        snap_chalcogens(
            pos,
            layer,
            region,
            pair,
            surfaces=surfaces,
            heights=HEIGHTS,
            tolerance=0.5,
            pair_radius=0,
        )
