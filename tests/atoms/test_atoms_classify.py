"""Tests of species and region assignment (classify) and of chalcogen pairing (pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.atoms import classify_species, fit_layers, pair_chalcogens
from hpcaet.atoms.classify import two_means
from hpcaet.atoms.pairs import drop_stray_pairs, lattice_columns, merge_split_columns
from hpcaet.config import load_config
from hpcaet.errors import InputError

CROSS = dict(load_config().species.cross_section)  # the defaults
A = 3.16  # [Å]
H = 1.56  # chalcogen height [Å]


def _lattice(n: int = 8):
    """Flat 2H MX2: metals, then top and bottom chalcogens of the same columns."""
    i, j = np.meshgrid(np.arange(-n, n), np.arange(-n, n))
    a1, a2 = np.array([A, 0.0]), np.array([A / 2, A * np.sqrt(3) / 2])
    metal = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    keep = np.max(np.abs(metal), axis=1) < 0.8 * n * A
    metal = metal[keep]
    column = metal + (a1 + a2) / 3
    m, c = len(metal), len(column)
    position = np.concatenate(
        [
            np.column_stack([metal, np.zeros(m)]),
            np.column_stack([column, np.full(c, H)]),
            np.column_stack([column, np.full(c, -H)]),
        ]
    )
    layer = np.concatenate([np.zeros(m), np.ones(c), -np.ones(c)]).astype(int)
    return position, layer, m, c


def test_two_means_is_exact():
    values = np.array([1.0, 1.1, 0.9, 3.0, 3.2, 2.9, 3.1])
    low, high, split = two_means(values)
    assert low == pytest.approx(1.0)
    assert high == pytest.approx(3.05)
    assert 1.1 < split < 2.9


def test_species_and_region_from_intensities():
    # Left half WSe2 (x < 0), right half MoS2; two Se substitutions on the MoS2 side.
    # Intensities are the cross-sections with 8 % noise: the classes are 2.2x (W/Mo)
    # and 2.8x (Se/S) apart, so every atom must be right.
    rng = np.random.default_rng(0)
    position, layer, m, c = _lattice()
    wse2 = position[:, 0] < 0
    species = np.where(layer == 0, np.where(wse2, "W", "Mo"), np.where(wse2, "Se", "S"))
    right_s = np.flatnonzero((species == "S") & (position[:, 0] > 6))
    species[right_s[:2]] = "Se"
    intensity = np.array([CROSS[s] for s in species]) * rng.normal(1, 0.08, len(species))
    result = classify_species(position, intensity, layer, cross_section=CROSS)
    np.testing.assert_array_equal(result.species, species)
    assert result.keep.all()
    # The region map: every metal lies in its own region (smoothing 5 Å; the boundary
    # is a straight line, so only atoms at it could be in doubt, and there are none).
    np.testing.assert_array_equal(result.region[layer == 0], wse2[layer == 0].astype(int))
    assert result.levels["W"] / result.levels["Mo"] == pytest.approx(
        CROSS["W"] / CROSS["Mo"], rel=0.1
    )


def test_one_material_field():
    # All MoS2: the metals do not split, and the Mo/S intensity ratio names them.
    rng = np.random.default_rng(1)
    position, layer, m, c = _lattice()
    species = np.where(layer == 0, "Mo", "S")
    intensity = np.array([CROSS[s] for s in species]) * rng.normal(1, 0.05, len(species))
    result = classify_species(position, intensity, layer, cross_section=CROSS)
    np.testing.assert_array_equal(result.species, species)
    assert np.all(result.region == 0)


def test_weak_peaks_are_dropped():
    rng = np.random.default_rng(2)
    position, layer, m, c = _lattice()
    species = np.where(layer == 0, "Mo", "S")
    intensity = np.array([CROSS[s] for s in species]) * rng.normal(1, 0.05, len(species))
    intensity[m + 3] = 0.1 * CROSS["S"]  # a noise peak on the top layer
    result = classify_species(position, intensity, layer, cross_section=CROSS)
    assert not result.keep[m + 3]
    assert result.keep.sum() == len(species) - 1


def test_classify_bad_input():
    position, layer, m, c = _lattice(4)
    with pytest.raises(InputError, match="metal layer"):
        classify_species(
            position, np.ones(len(layer)), np.ones(len(layer), int), cross_section=CROSS
        )
    with pytest.raises(InputError, match="cross_section"):
        classify_species(position, np.ones(len(layer)), layer, cross_section={"Mo": 1.0})
    with pytest.raises(InputError, match="must agree"):
        classify_species(position, np.ones(3), layer, cross_section=CROSS)


def test_pairs_with_missing_partners_and_an_empty_column():
    # Remove the bottom partner of column 10, the top of column 20 and both of column
    # 30: pairing must add vacancy sites exactly at the removed positions (flat sheet,
    # so the mirror image is exact to the layer fit, ~1e-6 Å here).
    position, layer, m, c = _lattice()
    species = np.where(layer == 0, "Mo", "S")
    region = np.zeros(len(layer), int)
    removed = [m + c + 10, m + 20, m + 30, m + c + 30]
    keep = np.setdiff1d(np.arange(len(layer)), removed)
    fit = fit_layers(position[keep], smoothing=5.0)
    np.testing.assert_array_equal(fit.layer, layer[keep])
    paired = pair_chalcogens(
        position[keep], species[keep], fit.layer, region[keep], surfaces=fit.surfaces
    )
    vac = paired.species == "vac"
    assert vac.sum() == 4
    added = paired.position[vac]
    for k in removed:
        assert np.min(np.linalg.norm(added - position[k], axis=1)) < 1e-3
    # Every chalcogen site has a mutual partner, metals none.
    chal = paired.layer != 0
    assert np.all(paired.pair[~chal] == -1)
    np.testing.assert_array_equal(paired.pair[paired.pair[chal]], np.flatnonzero(chal))
    assert np.all(paired.layer[paired.pair[chal]] == -paired.layer[chal])


def test_lattice_columns_orientation():
    # The columns are the triangle centres that hold chalcogens, not the hollow sites.
    position, layer, m, c = _lattice()
    centre, occupied = lattice_columns(position[layer == 0, :2], position[layer == 1, :2], 0.5)
    assert occupied.all()
    assert len(centre) > 0.8 * c


def test_stray_pairs_are_dropped():
    # A vacancy pair on a real column stays; one at a hollow site of the lattice (no
    # column there) goes, and so does the vacancy site of a pair collapsed onto the
    # metal sheet (0.2 Å apart), but not its atom.
    position, species, layer, pair, m, c = _paired_lattice()
    species[[m + 5, m + c + 5]] = "vac"  # an empty column: kept
    k = int(np.argmin(np.linalg.norm(position[:m, :2], axis=1)))  # a central metal
    hollow = position[k, :2] + 2 * (position[m + k, :2] - position[k, :2])  # other triangle
    metal = position[k + 1, :2]
    extra = np.array([[*hollow, H], [*hollow, -H], [*metal, 0.1], [*metal, -0.1]])
    position = np.concatenate([position, extra])
    species = np.concatenate([species, ["vac", "vac", "S", "vac"]])
    layer = np.concatenate([layer, [1, -1, 1, -1]])
    n = len(pair)
    pair = np.concatenate([pair, [n + 1, n, n + 3, n + 2]])
    fit = fit_layers(position[:n], smoothing=5.0)
    keep = drop_stray_pairs(position, species, layer, pair, surfaces=fit.surfaces)
    assert keep[:n].all()
    np.testing.assert_array_equal(keep[n:], [False, False, True, False])


def test_second_empty_pair_on_an_occupied_column_is_dropped():
    # A vacancy pair 0.3 Å off an occupied column (a spurious peak pair between the
    # layers, at the heights of the paper chain's false vacancies) goes; the column's
    # atoms and a real empty column stay.
    position, species, layer, pair, m, c = _paired_lattice()
    species[[m + 5, m + c + 5]] = "vac"  # an empty column: kept
    k = int(np.argmin(np.linalg.norm(position[m : m + c, :2], axis=1)))  # a central column
    xy = position[m + k, :2] + [0.3, 0.0]
    extra = np.array([[*xy, 0.6], [*xy, -0.9]])
    position = np.concatenate([position, extra])
    species = np.concatenate([species, ["vac", "vac"]])
    layer = np.concatenate([layer, [1, -1]])
    n = len(pair)
    pair = np.concatenate([pair, [n + 1, n]])
    fit = fit_layers(position[:n], smoothing=5.0)
    keep = drop_stray_pairs(position, species, layer, pair, surfaces=fit.surfaces)
    assert keep[:n].all()
    np.testing.assert_array_equal(keep[n:], [False, False])


def _paired_lattice():
    position, layer, m, c = _lattice()
    species = np.where(layer == 0, "Mo", "S").astype("<U3")
    pair = np.full(len(layer), -1)
    pair[m : m + c] = np.arange(m + c, m + 2 * c)
    pair[m + c :] = np.arange(m, m + c)
    return position, species, layer, pair, m, c


def test_split_columns_are_joined():
    # Column k was traced as two pairs, each an atom with a vacancy partner (top atom
    # 0.6 Å off, bottom atom 0.5 Å off the other way); column q holds a full pair and a
    # spurious pair 0.7 Å off (a vacancy on top, an S below). Each column ends as one
    # pair of its atoms; an empty column and every other pair stay as they were.
    position, species, layer, pair, m, c = _paired_lattice()
    species[[m + 5, m + c + 5]] = "vac"  # an empty column: kept
    order = np.argsort(np.linalg.norm(position[m : m + c, :2], axis=1))
    k, q = int(order[0]), int(order[3])
    top, bottom = m + k, m + c + k
    xy_top = position[top, :2] + [0.6, 0.0]
    xy_bottom = position[bottom, :2] - [0.5, 0.0]
    position[top, :2], position[bottom, :2] = xy_top, xy_bottom
    species[bottom] = "vac"  # the top atom's partner
    xy = position[m + q, :2] + [0.0, 0.7]
    extra = np.array([[*xy_bottom, H], [*xy_bottom, -H], [*xy, H], [*xy, -H]])
    n = len(pair)
    position = np.concatenate([position, extra])
    species = np.concatenate([species, ["vac", "S", "vac", "S"]])
    layer = np.concatenate([layer, [1, -1, 1, -1]])
    pair = np.concatenate([pair, [n + 1, n, n + 3, n + 2]])
    fit = fit_layers(position[:m], smoothing=5.0)
    keep, joined = merge_split_columns(position, species, layer, pair, surfaces=fit.surfaces)
    np.testing.assert_array_equal(np.flatnonzero(~keep), [bottom, n, n + 2, n + 3])
    assert joined[top] == n + 1 and joined[n + 1] == top  # the two atoms of column k
    assert joined[m + q] == m + c + q  # column q keeps its full pair
    unchanged = np.ones(len(pair), dtype=bool)
    unchanged[[top, bottom, n, n + 1, n + 2, n + 3]] = False
    np.testing.assert_array_equal(joined[unchanged], pair[unchanged])
    with pytest.raises(InputError, match="must agree"):
        merge_split_columns(position, species[:-1], layer, pair, surfaces=fit.surfaces)
    with pytest.raises(InputError, match="pair_radius"):
        merge_split_columns(position, species, layer, pair, surfaces=fit.surfaces, pair_radius=0.0)
