"""Tests of the projected-Gaussian atom model, hpcaet.forward.gaussian."""

from __future__ import annotations

import numpy as np
import pytest

import hpcaet.forward.gaussian as gaussian_module
from hpcaet.errors import InputError
from hpcaet.forward import (
    ProjectionGradient,
    project_atoms,
    project_atoms_adjoint,
    project_atoms_vjp,
    projection_loss,
    species_table,
)
from hpcaet.geometry import grid_coordinates, project_points

PIXEL = 0.32  # [Å]
SHAPE = (48, 48)


def _problem(seed: int = 0, n: int = 10, m: int = 3):
    """Small random problem: atoms inside a 48 x 48 field, B in 5-20 Å², three tilts."""
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-5.0, 5.0, (n, 3))
    weights = rng.uniform(0.5, 2.0, n)
    b_factors = rng.uniform(5.0, 20.0, n)
    euler = np.column_stack([rng.uniform(-180, 180, m), rng.uniform(-40, 40, m), np.zeros(m)])
    offsets = rng.uniform(-0.5, 0.5, (m, 2))
    return rng, positions, weights, b_factors, euler, offsets


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    total = image.sum()
    return np.array([(rows * image).sum() / total, (cols * image).sum() / total])


# Known truth: r = (1.3, -0.7, 2.0) Å rotated by hand.
# Rz(90): (x, y) -> (-y, x).  Ry(30): x' = x cos30 + z sin30, y' = y.
_R = np.array([1.3, -0.7, 2.0])
_C30, _S30 = np.cos(np.pi / 6), np.sin(np.pi / 6)


@pytest.mark.parametrize(
    ("euler", "expected_xy"),
    [
        ((0.0, 0.0, 0.0), (1.3, -0.7)),
        ((90.0, 0.0, 0.0), (0.7, 1.3)),
        ((0.0, 30.0, 0.0), (1.3 * _C30 + 2.0 * _S30, -0.7)),
    ],
    ids=["identity", "z90", "y30"],
)
def test_peak_lands_where_rotation_predicts(euler, expected_xy):
    shape = (47, 48)  # odd ny checks the ny // 2 centre
    image = project_atoms(_R[None], [1.0], [15.0], euler, shape=shape, pixel_size=PIXEL)
    assert image.shape == (1, *shape)
    x, y = expected_xy
    expected_rc = np.array([y / PIXEL + shape[0] // 2, x / PIXEL + shape[1] // 2])
    peak = np.unravel_index(np.argmax(image[0]), shape)
    np.testing.assert_array_equal(peak, np.rint(expected_rc))
    # s / pixel = 1.36: discrete sampling and the 4-sigma window move the centroid
    # by < 1e-3 px, far inside the 0.02 px budget.
    np.testing.assert_allclose(_centroid(image[0]), expected_rc, atol=0.02)


@pytest.mark.parametrize("b_factor", [15.0, 40.0])
def test_integral_equals_weight(b_factor):
    positions = np.array([[0.13, -0.41, 0.7], [-3.0, 2.2, -1.0]])
    weights = np.array([1.7, 0.4])
    image = project_atoms(
        positions, weights, b_factor, [10.0, 20.0, 5.0], shape=(64, 64), pixel_size=PIXEL
    )
    # s >= 1.36 px: the pixel sum is the integral to ~1e-7; the square 4-sigma window
    # drops 1.3e-4 of the mass.
    np.testing.assert_allclose(image.sum() * PIXEL**2, weights.sum(), rtol=1e-3)


def _dense_reference(positions, weights, b_factors, euler, offsets, shape, cutoff=4.0):
    """The model written pixel by pixel over the whole image: O(atoms x pixels)."""
    sigma = np.sqrt(np.asarray(b_factors) / (8 * np.pi**2))
    xs = grid_coordinates(shape[1], PIXEL)
    ys = grid_coordinates(shape[0], PIXEL)
    images = np.zeros((len(euler), *shape))
    for j, centres in enumerate(project_points(positions, euler) + offsets[:, None, :]):
        for (x, y), s, w in zip(centres, sigma, weights, strict=True):
            gx = np.exp(-((xs - x) ** 2) / (2 * s**2)) * (np.abs(xs - x) <= cutoff * s)
            gy = np.exp(-((ys - y) ** 2) / (2 * s**2)) * (np.abs(ys - y) <= cutoff * s)
            images[j] += w / (2 * np.pi * s**2) * np.outer(gy, gx)
    return images


@pytest.mark.parametrize("chunk_samples", [1 << 20, 300])
def test_matches_dense_evaluation(monkeypatch, chunk_samples):
    # A tiny chunk budget splits the work into many chunks that straddle images.
    monkeypatch.setattr(gaussian_module, "_CHUNK_SAMPLES", chunk_samples)
    rng, positions, weights, b_factors, euler, offsets = _problem(seed=7, n=25)
    positions[:, :2] *= 1.6  # some atoms cross the border
    b_factors[:5] = [0.5, 2.0, 60.0, 150.0, 1.0]  # widths from 0.25 to 4.3 px
    shape = (45, 52)
    got = project_atoms(
        positions, weights, b_factors, euler, shape=shape, pixel_size=PIXEL, offsets=offsets
    )
    want = _dense_reference(positions, weights, b_factors, euler, offsets, shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * want.max())


def test_atom_half_outside_keeps_half_its_weight():
    nx = SHAPE[1]
    x_edge = (-0.5 - nx // 2) * PIXEL  # half a pixel left of column 0
    image = project_atoms(
        [[x_edge, 0.0, 0.0]], [1.0], [15.0], [0, 0, 0], shape=SHAPE, pixel_size=PIXEL
    )
    # Columns 0, 1, ... mirror columns -1, -2, ... about the atom: exactly half is inside.
    np.testing.assert_allclose(image.sum() * PIXEL**2, 0.5, rtol=1e-3)


def test_atom_outside_image_gives_zeros():
    far = [[40.0, 0.0, 0.0], [0.0, -1e6, 0.0]]
    image = project_atoms(far, [1.0, 1.0], [15.0, 15.0], [0, 0, 0], shape=SHAPE, pixel_size=PIXEL)
    assert not image.any()


def test_clipped_image_equals_crop_of_larger_image():
    _, positions, weights, b_factors, euler, offsets = _problem(seed=1, n=30)
    positions[:, :2] *= 1.6  # push atoms across the 48 x 48 border (±7.7 Å)
    options = {"pixel_size": PIXEL, "offsets": offsets}
    small = project_atoms(positions, weights, b_factors, euler, shape=SHAPE, **options)
    large = project_atoms(positions, weights, b_factors, euler, shape=(80, 80), **options)
    # Same pixel centres: the centre index moves from 24 to 40.
    np.testing.assert_allclose(small, large[:, 16:64, 16:64], rtol=0, atol=1e-14)


def test_offsets_shift_the_image_by_whole_pixels():
    _, positions, weights, b_factors, euler, _ = _problem(seed=2)
    offsets = np.array([[2 * PIXEL, -3 * PIXEL]] * len(euler))
    options = {"shape": (64, 64), "pixel_size": PIXEL}
    base = project_atoms(positions, weights, b_factors, euler, **options)
    shifted = project_atoms(positions, weights, b_factors, euler, offsets=offsets, **options)
    np.testing.assert_allclose(shifted, np.roll(base, (-3, 2), axis=(1, 2)), atol=1e-12)


def test_single_triple_gives_stack_and_dtype():
    image = project_atoms(
        [[0.0, 0.0, 0.0]], [1.0], [10.0], [0, 0, 0], shape=(8, 9), pixel_size=PIXEL, dtype="f4"
    )
    assert image.shape == (1, 8, 9)
    assert image.dtype == np.float32


def test_adjoint_dot_product():
    rng, positions, _, b_factors, euler, offsets = _problem(seed=3, n=40)
    positions[:, :2] *= 1.6  # include atoms clipped at the border
    options = {"pixel_size": PIXEL, "offsets": offsets}
    w = rng.normal(size=len(positions))
    y = rng.normal(size=(len(euler), *SHAPE))
    forward = project_atoms(positions, w, b_factors, euler, shape=SHAPE, **options)
    back = project_atoms_adjoint(y, positions, b_factors, euler, **options)
    lhs, rhs = np.vdot(forward, y), np.vdot(w, back)
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def _numerical_gradient(f, x: np.ndarray, step: float) -> np.ndarray:
    grad = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[k] += step
        down[k] -= step
        grad[k] = (f(up) - f(down)) / (2 * step)
    return grad


def test_vjp_matches_central_differences():
    rng, positions, weights, b_factors, euler, offsets = _problem(seed=4)
    cotangent = rng.normal(size=(len(euler), *SHAPE))

    def pairing(r=positions, w=weights, b=b_factors, o=offsets):
        image = project_atoms(r, w, b, euler, shape=SHAPE, pixel_size=PIXEL, offsets=o)
        return np.vdot(cotangent, image)

    grads = project_atoms_vjp(
        cotangent, positions, weights, b_factors, euler, pixel_size=PIXEL, offsets=offsets
    )
    assert isinstance(grads, ProjectionGradient)
    numeric = {
        "positions": _numerical_gradient(lambda r: pairing(r=r), positions, 1e-5),
        "weights": _numerical_gradient(lambda w: pairing(w=w), weights, 1e-4),
        "b_factors": _numerical_gradient(lambda b: pairing(b=b), b_factors, 1e-4),
        "offsets": _numerical_gradient(lambda o: pairing(o=o), offsets, 1e-5),
    }
    for name, expected in numeric.items():
        got = getattr(grads, name)
        assert got.shape == expected.shape, name
        # Central differences are O(step²) accurate: ~1e-9 relative here.
        error = np.linalg.norm(got - expected) / np.linalg.norm(expected)
        assert error < 1e-5, (name, error)


def test_vjp_weight_part_is_the_adjoint():
    rng, positions, weights, b_factors, euler, offsets = _problem(seed=5)
    y = rng.normal(size=(len(euler), *SHAPE))
    options = {"pixel_size": PIXEL, "offsets": offsets}
    grads = project_atoms_vjp(y, positions, weights, b_factors, euler, **options)
    back = project_atoms_adjoint(y, positions, b_factors, euler, **options)
    np.testing.assert_allclose(grads.weights, back, rtol=1e-12)


def test_projection_loss_is_half_squared_residual_with_vjp_gradient():
    rng, positions, weights, b_factors, euler, offsets = _problem(seed=6)
    options = {"pixel_size": PIXEL, "offsets": offsets}
    truth = project_atoms(positions, weights, b_factors, euler, shape=SHAPE, **options)
    loss, grads = projection_loss(truth, positions, weights, b_factors, euler, **options)
    assert loss == 0.0
    assert all(not np.any(g) for g in grads)

    measured = truth + rng.normal(scale=0.01, size=truth.shape)
    loss, grads = projection_loss(measured, positions, weights, b_factors, euler, **options)
    np.testing.assert_allclose(loss, 0.5 * np.sum((truth - measured) ** 2), rtol=1e-12)
    expected = project_atoms_vjp(truth - measured, positions, weights, b_factors, euler, **options)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_empty_atom_list_gives_zeros():
    euler = np.zeros((2, 3))
    empty = np.zeros((0, 3))
    image = project_atoms(empty, [], [], euler, shape=SHAPE, pixel_size=PIXEL)
    assert image.shape == (2, *SHAPE) and not image.any()
    y = np.ones((2, *SHAPE))
    assert project_atoms_adjoint(y, [], [], euler, pixel_size=PIXEL).shape == (0,)
    d_r, d_w, d_b, d_o = project_atoms_vjp(y, empty, [], [], euler, pixel_size=PIXEL)
    assert d_r.shape == (0, 3) and d_w.shape == (0,) and d_b.shape == (0,)
    assert d_o.shape == (2, 2) and not d_o.any()


_GOOD = {
    "positions": np.zeros((2, 3)),
    "weights": np.ones(2),
    "b_factors": np.full(2, 10.0),
    "euler": np.zeros((3, 3)),
}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"positions": np.zeros((2, 2))}, r"positions must have shape \(n, 3\).*\(2, 2\)"),
        ({"positions": [[0, 0, 0], [np.nan, 0, 0]]}, r"positions must be finite; atoms \[1\]"),
        ({"positions": [[0, 0, 0], [0, np.inf, 0]]}, r"positions must be finite"),
        ({"weights": np.ones(3)}, r"weights must have shape \(2,\).*got shape \(3,\)"),
        ({"b_factors": np.ones(1)}, r"b_factors must have shape \(2,\)"),
        ({"b_factors": [10.0, -1.0]}, r"b_factors must be > 0.*\[-1.0\] at atoms \[1\]"),
        ({"b_factors": [0.0, 10.0]}, r"b_factors must be > 0.*\[0.0\] at atoms \[0\]"),
        ({"offsets": np.zeros((2, 2))}, r"offsets must have shape \(3, 2\).*\(2, 2\)"),
        ({"euler": np.zeros((3, 2))}, r"euler must have shape \(m, 3\).*\(3, 2\)"),
        ({"pixel_size": 0.0}, r"pixel_size must be a positive number of Å; got 0.0"),
        ({"pixel_size": -0.3}, r"pixel_size must be a positive.*-0.3"),
        ({"cutoff": 0}, r"cutoff must be a positive"),
        ({"shape": (48, 0)}, r"shape must be 2 positive integers; got \(48, 0\)"),
        ({"dtype": int}, r"dtype must be a floating type"),
    ],
)
def test_project_atoms_rejects_bad_input(change, match):
    args = {**_GOOD, "shape": SHAPE, "pixel_size": PIXEL, **change}
    with pytest.raises(InputError, match=match):
        project_atoms(
            args.pop("positions"),
            args.pop("weights"),
            args.pop("b_factors"),
            args.pop("euler"),
            **args,
        )


@pytest.mark.parametrize("images_shape", [(2, *SHAPE), (3, 48), (4, 3, *SHAPE)])
def test_adjoint_and_vjp_reject_images_inconsistent_with_euler(images_shape):
    y = np.zeros(images_shape)
    r, w, b, e = _GOOD["positions"], _GOOD["weights"], _GOOD["b_factors"], _GOOD["euler"]
    match = r"must have shape \(m, ny, nx\) with m = 3"
    with pytest.raises(InputError, match=match):
        project_atoms_adjoint(y, r, b, e, pixel_size=PIXEL)
    with pytest.raises(InputError, match=match):
        project_atoms_vjp(y, r, w, b, e, pixel_size=PIXEL)
    with pytest.raises(InputError, match=match):
        projection_loss(y, r, w, b, e, pixel_size=PIXEL)


def test_species_table_maps_labels():
    table = {"Mo": 1.2, "W": 2.0, "S": 0.3, "Se": 0.6, "vac": 0.0}
    values = species_table(np.array(["W", "S", "vac", "Mo", "S"]), table)
    np.testing.assert_array_equal(values, [2.0, 0.3, 0.0, 1.2, 0.3])


def test_species_table_names_unknown_species():
    with pytest.raises(InputError, match=r"unknown species \['Te'\].*\['Mo', 'S'\]"):
        species_table(["Mo", "Te", "S"], {"Mo": 1.2, "S": 0.3})
