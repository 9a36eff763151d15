"""Tests of the per-image vibration blur of the calculated images (hpcaet.atoms.blur)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import B_FACTOR, CROSS_SECTION, DOSE, PIXEL, PROBE_B

from hpcaet.atoms import (
    blur_images,
    blur_images_adjoint,
    chunk_objective,
    flip_pairs,
    refine_atoms,
    vibration_kernels,
)
from hpcaet.atoms.build import build_model
from hpcaet.atoms.objective import split_images
from hpcaet.config import load_config
from hpcaet.errors import InputError
from hpcaet.forward import project_atoms, project_atoms_vjp, species_table
from hpcaet.phantom.simulate import vibration_in_image
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

EULER = TABLE_S2_CALIBRATED
SHAPE = (88, 88)
B_EFF = {k: v + PROBE_B for k, v in B_FACTOR.items()}
VIBRATION = 0.6  # [Å] amplitude of the sheet's vertical motion (strong, so the blur matters)


def _kernels():
    direction, amplitude = zip(*(vibration_in_image(e, VIBRATION) for e in EULER), strict=True)
    return vibration_kernels(direction, amplitude, np.full(len(EULER), 0.1), pixel_size=PIXEL)


def _blurred_images(truth, kernels, shape=SHAPE):
    atom = truth["species"].values != "vac"
    species = truth["species"].values[atom]
    model = project_atoms(
        truth["position"].values[atom],
        species_table(species, CROSS_SECTION),
        species_table(species, B_EFF),
        EULER,
        shape=shape,
        pixel_size=PIXEL,
    )
    return DOSE * PIXEL**2 * blur_images(model, kernels) + 0.7  # counts, constant offset


def test_blur_adjoint_dot_product():
    # <K x, y> = <x, K^T y> for odd kernels of several sizes and a None (identity)
    # entry; float64 round-off only (1e-12 relative).
    rng = np.random.default_rng(0)
    kernels = [rng.random((5, 5)), None, rng.random((3, 9)), rng.random((25, 25))]
    x = rng.normal(size=(4, 20, 17))
    y = rng.normal(size=(4, 20, 17))
    lhs = np.vdot(blur_images(x, kernels), y)
    rhs = np.vdot(x, blur_images_adjoint(y, kernels))
    assert lhs == pytest.approx(rhs, rel=1e-12)
    np.testing.assert_array_equal(blur_images(x, kernels)[1], x[1])
    # Each vibration kernel sums to one, so the blur keeps the counts of a centred atom.
    for k in _kernels():
        assert k.sum() == pytest.approx(1.0, abs=1e-12)
        assert k.shape[0] % 2 == 1


def test_blurred_forward_model_and_adjoint(truth):
    # The blurred model is linear in the weights, and chunk_objective's weight gradient is
    # the adjoint (projection VJP after the blur's adjoint) applied to the residual: with
    # loss = 0.5 |s K A(w) + c - I|² and I = 0, c = 0 fixed by a zero-mean check image,
    # sum_i w_i dL/dw_i = <s K A(w), r> = 2 L. Round-off only (1e-9).
    kernels = _kernels()
    atom = truth["species"].values != "vac"
    pos = truth["position"].values[atom]
    species = truth["species"].values[atom]
    w = species_table(species, CROSS_SECTION)
    b = species_table(species, B_EFF)
    rng = np.random.default_rng(1)
    y = rng.normal(size=(len(EULER), *SHAPE))
    forward = blur_images(project_atoms(pos, w, b, EULER, shape=SHAPE, pixel_size=PIXEL), kernels)
    grads = project_atoms_vjp(blur_images_adjoint(y, kernels), pos, w, b, EULER, pixel_size=PIXEL)
    assert np.vdot(forward, y) == pytest.approx(np.dot(w, grads.weights), rel=1e-9)
    # The chunked loss with kernels: its position gradient matches finite differences.
    images = _blurred_images(truth, kernels)
    weight = np.ones_like(images)
    chunks = split_images(images, EULER, weight, chunk=6, kernels=kernels)
    shifts = np.zeros((len(EULER), 2))
    start = pos + rng.normal(0, 0.05, pos.shape)

    def loss(p):
        return sum(
            chunk_objective(
                c, position=p, weight=w, b_factor=b, shifts=shifts, pixel_size=PIXEL
            ).loss
            for c in chunks
        )

    grad = sum(
        chunk_objective(
            c, position=start, weight=w, b_factor=b, shifts=shifts, pixel_size=PIXEL
        ).d_positions
        for c in chunks
    )
    h = 1e-5
    for i, axis in [(3, 0), (10, 2), (40, 1)]:
        step = np.zeros_like(start)
        step[i, axis] = h
        numeric = (loss(start + step) - loss(start - step)) / (2 * h)
        assert grad[i, axis] == pytest.approx(numeric, rel=1e-4, abs=1e-6 * abs(loss(start)))


def test_refinement_with_blur_recovers_positions_better(truth):
    # Noise-free 48² images of the inner 12 x 12 Å of the phantom blurred by a 0.6 Å
    # vertical vibration (0.1 Å wide); start 0.1 Å (rms per axis) off. With the kernels
    # the model is exact and the fit returns to the truth within 0.5 pm (only the
    # iteration budget limits it); without them the isotropic B-factors cannot take the
    # per-tilt anisotropic blur and the positions keep a bias of several pm (3D rms).
    inner = np.max(np.abs(truth["position"].values[:, :2]), axis=1) < 6.0
    small = truth.isel(atom=np.flatnonzero(inner))
    kernels = _kernels()
    images = _blurred_images(small, kernels, shape=(48, 48))
    rng = np.random.default_rng(0)
    start = small["position"].values + rng.normal(0, 0.1, small["position"].shape)
    species = small["species"].values
    atom = species != "vac"
    rmsd = {}
    for name, k in (("blur", kernels), ("none", None)):
        result = refine_atoms(
            images,
            EULER,
            start,
            species,
            pixel_size=PIXEL,
            weights=CROSS_SECTION,
            b_factors=B_EFF,
            iterations=40,
            tolerance=1e-12,
            noise="uniform",
            kernels=k,
        )
        err = result.position[atom] - small["position"].values[atom]
        rmsd[name] = float(np.sqrt(np.mean(np.sum(err**2, axis=1))))
    assert rmsd["blur"] < 0.005  # measured 0.001 pm
    assert rmsd["none"] > 0.03  # measured 5.4 pm


def test_flip_with_blur_finds_planted_defects(truth):
    # Flipping against the blurred images, with the kernels, from all pairs set to S/S:
    # every planted vacancy and substitution is found (noise-free: no tolerance).
    kernels = _kernels()
    images = _blurred_images(truth, kernels)
    species = truth["species"].values.astype("<U3")
    start = species.copy()
    start[np.isin(species, ["S", "Se", "vac"]) & (truth["pair"].values >= 0)] = "S"
    result = flip_pairs(
        images,
        EULER,
        truth["position"].values,
        start,
        truth["pair"].values,
        pixel_size=PIXEL,
        weights=CROSS_SECTION,
        b_factors=B_EFF,
        scale=np.full(len(EULER), DOSE * PIXEL**2),
        offset=np.full(len(EULER), 0.7),
        kernels=kernels,
        rng=0,
    )
    np.testing.assert_array_equal(result.species, species)


def test_blur_bad_input():
    x = np.zeros((2, 8, 8))
    with pytest.raises(InputError, match="one kernel per image"):
        blur_images(x, [None])
    with pytest.raises(InputError, match="odd size"):
        blur_images(x, [np.ones((4, 4)), None])
    with pytest.raises(InputError, match="one value per image"):
        vibration_kernels([0.0, 1.0], [0.5], [0.1, 0.1], pixel_size=PIXEL)
    assert vibration_kernels([0.0], [0.0], [0.0], pixel_size=PIXEL) == [None]


def test_linear_images_required_when_asked(inputs):
    # image_source "linear" on a series without linear_images is an error naming the fix.
    volume, series = inputs
    config = load_config(overrides={"atoms": {"image_source": "linear"}})
    with pytest.raises(InputError, match="no 'linear_images'.*rerun 'hpcaet preprocess"):
        build_model(volume, series, config)
