"""Tests of the refinement against images (hpcaet.atoms.refine)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import B_FACTOR, CROSS_SECTION, DOSE, PIXEL, PROBE_B

from hpcaet.atoms import chunk_objective, r_factors, refine_atoms
from hpcaet.atoms.objective import fit_scale_offset, split_images, support_mask
from hpcaet.errors import InputError
from hpcaet.forward import project_atoms, species_table
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

EULER = TABLE_S2_CALIBRATED
SHAPE = (88, 88)
B_EFF = {k: v + PROBE_B for k, v in B_FACTOR.items()}


def _clean_images(truth):
    atom = truth["species"].values != "vac"
    species = truth["species"].values[atom]
    model = project_atoms(
        truth["position"].values[atom],
        species_table(species, CROSS_SECTION),
        species_table(species, B_EFF),
        EULER,
        shape=SHAPE,
        pixel_size=PIXEL,
    )
    return DOSE * PIXEL**2 * model + 0.7  # counts, with a constant offset


def test_recovers_positions_and_species_parameters(truth):
    # Noise-free images; start 0.1 Å (rms per axis) off, weights 30 % high for S and B
    # 20 % low: the fit must come back to the truth, to 1 pm rms (no noise, so only the
    # iteration budget limits it: ~3 pm after 25 iterations, ~1e-6 Å after 100), the weight
    # ratios to 1 % and the scale (the dose per pixel) to 1 %.
    images = _clean_images(truth)
    rng = np.random.default_rng(0)
    start = truth["position"].values + rng.normal(0, 0.1, truth["position"].shape)
    species = truth["species"].values
    weights = {**CROSS_SECTION, "S": 1.3 * CROSS_SECTION["S"]}
    b_factors = {k: 0.8 * v for k, v in B_EFF.items()}
    result = refine_atoms(
        images,
        EULER,
        start,
        species,
        pixel_size=PIXEL,
        weights=weights,
        b_factors=b_factors,
        iterations=40,
        tolerance=1e-12,
        noise="uniform",
    )
    atom = species != "vac"
    err = result.position[atom] - truth["position"].values[atom]
    assert np.sqrt(np.mean(err**2)) < 0.01
    np.testing.assert_array_equal(result.position[~atom], start[~atom])  # vacancies stay
    for name in ("W", "S", "Se"):
        ratio = result.weights[name] / result.weights["Mo"]
        assert ratio == pytest.approx(CROSS_SECTION[name] / CROSS_SECTION["Mo"], rel=0.01)
        assert result.b_factors[name] == pytest.approx(B_EFF[name], rel=0.01)
    dose_per_pixel = result.scale * result.weights["Mo"] / CROSS_SECTION["Mo"]
    np.testing.assert_allclose(dose_per_pixel, DOSE * PIXEL**2, rtol=0.01)
    np.testing.assert_allclose(result.offset, 0.7, atol=0.01)
    assert result.R1 < 1e-3
    assert result.history[-1, 0] < 1e-3 * result.history[0, 0]


def test_chunks_add_up_and_gradient_matches_finite_differences(truth):
    images = _clean_images(truth) + np.random.default_rng(1).normal(0, 1.0, (12, *SHAPE))
    atom = truth["species"].values != "vac"
    r = truth["position"].values[atom] + 0.05
    species = truth["species"].values[atom]
    w, b = species_table(species, CROSS_SECTION), species_table(species, B_EFF)
    mask = support_mask(r, EULER, shape=SHAPE, pixel_size=PIXEL)
    params = {
        "position": r,
        "weight": w,
        "b_factor": b,
        "shifts": np.zeros((12, 2)),
        "pixel_size": PIXEL,
    }
    whole = chunk_objective(split_images(images, EULER, mask, chunk=12)[0], **params)
    parts = [chunk_objective(c, **params) for c in split_images(images, EULER, mask, chunk=5)]
    assert sum(p.loss for p in parts) == pytest.approx(whole.loss, rel=1e-12)
    np.testing.assert_allclose(
        sum(p.d_positions for p in parts),
        whole.d_positions,
        rtol=1e-10,
        atol=1e-12 * np.abs(whole.d_positions).max(),
    )
    # The scale and offset are solved inside, so the gradient is that of the reduced
    # loss (envelope theorem); check one coordinate of each of three atoms.
    h = 1e-5
    for i, k in ((0, 0), (40, 2), (90, 1)):
        plus, minus = r.copy(), r.copy()
        plus[i, k] += h
        minus[i, k] -= h
        chunk = split_images(images, EULER, mask, chunk=12)[0]
        fd = (
            chunk_objective(chunk, **{**params, "position": plus}).loss
            - chunk_objective(chunk, **{**params, "position": minus}).loss
        ) / (2 * h)
        assert whole.d_positions[i, k] == pytest.approx(fd, rel=1e-4)


def test_r_factors():
    rng = np.random.default_rng(2)
    calc = rng.uniform(0, 1, (3, 16, 16))
    mask = np.ones_like(calc, dtype=bool)
    assert r_factors(calc, calc, mask) == (0.0, 0.0)
    # measured = 2 x calculated: |m - c| = c = m / 2, and the same for the magnitudes.
    r1, r = r_factors(2 * calc, calc, mask)
    assert r1 == pytest.approx(0.5)
    assert r == pytest.approx(0.5)


def test_fit_scale_offset_is_least_squares():
    rng = np.random.default_rng(3)
    model = rng.uniform(0, 1, (2, 8, 8))
    measured = np.stack([3.0 * model[0] + 0.5, 7.0 * model[1] - 1.0])
    scale, offset = fit_scale_offset(model, measured, np.ones_like(model))
    np.testing.assert_allclose(scale, [3.0, 7.0])
    np.testing.assert_allclose(offset, [0.5, -1.0], atol=1e-12)


def test_refine_bad_input(truth):
    images = np.zeros((12, *SHAPE))
    pos, species = truth["position"].values, truth["species"].values
    with pytest.raises(InputError, match="euler"):
        refine_atoms(
            images,
            EULER[:3],
            pos,
            species,
            pixel_size=PIXEL,
            weights=CROSS_SECTION,
            b_factors=B_EFF,
        )
    with pytest.raises(InputError, match="vacancy"):
        refine_atoms(
            images,
            EULER,
            pos,
            np.full(len(pos), "vac"),
            pixel_size=PIXEL,
            weights=CROSS_SECTION,
            b_factors=B_EFF,
        )
    with pytest.raises(InputError, match="species"):
        refine_atoms(
            images, EULER, pos, species, pixel_size=PIXEL, weights={"Mo": 1.0}, b_factors=B_EFF
        )
    with pytest.raises(InputError, match="noise"):
        refine_atoms(
            images,
            EULER,
            pos,
            species,
            pixel_size=PIXEL,
            weights=CROSS_SECTION,
            b_factors=B_EFF,
            noise="gaussian",
        )
