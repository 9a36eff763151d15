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


def test_footprint_is_the_box_seen_through_the_sheet():
    # Zero tilt: exactly the pixels whose centre lies in the box. Tilted 30° about y, a
    # ray crosses the slab |z| <= 2 Å over 2 tan 30° = 1.15 Å on each side of where it
    # meets z = 0: the footprint's x range is the box's, times cos 30°, less 2 sin 30°.
    from hpcaet.atoms.objective import footprint_mask
    from hpcaet.geometry import pixel_to_position

    shape, px, box = (40, 60), 0.5, (-8.0, 6.0, -5.0, 7.0)
    euler = np.array([[0.0, 0.0, 0.0], [0.0, 30.0, 0.0]])
    mask = footprint_mask(euler, shape=shape, pixel_size=px, box=box, depth=2.0)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    xy = pixel_to_position(np.stack([rows, cols], -1).astype(float), shape, px)
    x, y = xy[..., 0], xy[..., 1]
    np.testing.assert_array_equal(mask[0], (x >= -8) & (x <= 6) & (y >= -5) & (y <= 7))
    c = np.cos(np.radians(30))
    # image x of a point on z = 0 is x cos 30°: the box spans [-8 c, 6 c], less 2 sin 30°
    lo, hi = -8 * c + 2 * np.sin(np.radians(30)), 6 * c - 2 * np.sin(np.radians(30))
    want = (x >= lo - 1e-9) & (x <= hi + 1e-9) & (y >= -5) & (y <= 7)
    np.testing.assert_array_equal(mask[1], want)


def test_footprint_keeps_atoms_beyond_the_model_out_of_the_fit(truth):
    # The images hold the model's atoms and a row of extra Mo atoms 3 Å beyond the box
    # that holds the model. Without the footprint the refinement pulls the nearest model
    # atoms towards them; with it the positions stay at the truth (noise-free images).
    from hpcaet.atoms.objective import footprint_mask

    atom = truth["species"].values != "vac"
    pos, species = truth["position"].values, truth["species"].values
    x_max = pos[atom, 0].max()
    extra = np.column_stack([np.full(8, x_max + 3.0), np.linspace(-8, 8, 8), np.zeros(8)])
    images = _clean_images(truth) + DOSE * PIXEL**2 * project_atoms(
        extra, CROSS_SECTION["Mo"], B_EFF["Mo"], EULER, shape=SHAPE, pixel_size=PIXEL
    )
    box = (pos[:, 0].min() - 1.0, x_max + 1.0, pos[:, 1].min() - 1.0, pos[:, 1].max() + 1.0)
    footprint = footprint_mask(EULER, shape=SHAPE, pixel_size=PIXEL, box=box, depth=2.5)
    errors = {}
    for name, fp in (("none", None), ("footprint", footprint)):
        result = refine_atoms(
            images,
            EULER,
            pos,
            species,
            pixel_size=PIXEL,
            weights=CROSS_SECTION,
            b_factors=B_EFF,
            iterations=40,
            tolerance=1e-12,
            noise="uniform",
            fit_species=False,
            footprint=fp,
        )
        err = np.linalg.norm(result.position[atom] - pos[atom], axis=1)
        errors[name] = err.max()
    # measured: the nearest atom pulled 4.0 Å onto an extra one without, 1e-4 Å with
    assert errors["footprint"] < 0.01 and errors["none"] > 0.5
    with pytest.raises(InputError, match="footprint must have the images' shape"):
        refine_atoms(
            images,
            EULER,
            pos,
            species,
            pixel_size=PIXEL,
            weights=CROSS_SECTION,
            b_factors=B_EFF,
            iterations=1,
            footprint=footprint[:, :10],
        )
