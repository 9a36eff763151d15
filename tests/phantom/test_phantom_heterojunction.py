"""The heterojunction phantom has the structure it promises."""

from collections import Counter

import numpy as np
import pytest
from scipy.spatial import Delaunay, cKDTree

from hpcaet.config import load_config, packaged_config
from hpcaet.errors import InputError
from hpcaet.materials import Material, Materials
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.phantom.stage import make_phantom
from hpcaet.phantom.tables import TABLE_S1_COUNTS

# WSe2 on the MoS2 lattice constant and height: no misfit
NO_MISFIT = Materials(
    (Material("MoS2", "Mo", "S", 3.16, 1.56), Material("WSe2", "W", "Se", 3.16, 1.56))
)


@pytest.fixture(scope="module")
def flat():
    """Paper-size phantom without ripple or thermal noise: the lattice alone."""
    return build_heterojunction(HeterojunctionSpec(thermal_rms=0.0, ripple_amplitude=0.0), rng=0)


def test_paper_config_gives_the_paper_counts_within_2_percent():
    model = make_phantom(load_config(packaged_config("paper")))
    counts = Counter(model["species"].values.astype(str))
    for species, expected in TABLE_S1_COUNTS.items():
        assert abs(counts[species] - expected) <= 0.02 * expected, (species, counts)


def _metal_spacing(atoms, select):
    p, layer = atoms.positions, atoms.arrays["layer"]
    metals = layer == 0
    tree = cKDTree(p[metals, :2])
    dist, _ = tree.query(p[metals, :2], k=7)
    inner = np.all(np.abs(p[metals, :2]) < 32, axis=1)  # six neighbours inside the field
    return dist[:, 1:].mean(axis=1)[select[metals] & inner]


def test_lattice_constants_far_from_and_near_the_interface(flat):
    region, d = flat.arrays["region"], flat.arrays["interface_distance"]
    # Far from the interface each side has its own lattice constant (0.1 %: the
    # misfit field is exact there up to the smoothing tail).
    assert _metal_spacing(flat, (region == 0) & (d < -20)).mean() == pytest.approx(3.16, rel=1e-3)
    assert _metal_spacing(flat, (region == 1) & (d > 15)).mean() == pytest.approx(3.28, rel=1e-3)
    # Near it MoS2 is stretched and WSe2 compressed: strain relaxing away from it.
    assert _metal_spacing(flat, (region == 0) & (d > -5)).mean() > 3.16 * 1.005
    assert _metal_spacing(flat, (region == 1) & (d < 5)).mean() < 3.28 * 0.995


def test_interface_has_w_s_bonds_and_se_only_around_w(flat):
    p = flat.positions
    sym = np.array(flat.get_chemical_symbols())
    layer = flat.arrays["layer"]
    metals, chalc = np.flatnonzero(layer == 0), np.flatnonzero(layer != 0)
    tree = cKDTree(p[chalc, :2])
    metal_tree = cKDTree(p[metals, :2])
    w_with_s = 0
    for i in metals[sym[metals] == "W"]:
        near_metal = metals[metal_tree.query_ball_point(p[i, :2], 3.5)]
        neighbours = chalc[tree.query_ball_point(p[i, :2], 2.2)]
        if np.any(sym[near_metal] == "Mo"):  # a W atom on the interface
            w_with_s += np.any(sym[neighbours] == "S")
    assert w_with_s > 10
    # Every Se neighbours only W metals, except the planted substitutions.
    se_next_to_mo = 0
    for i in chalc[sym[chalc] == "Se"]:
        around = metals[metal_tree.query_ball_point(p[i, :2], 2.2)]
        se_next_to_mo += np.any(sym[around] == "Mo")
    assert se_next_to_mo == HeterojunctionSpec().substitutions


def test_ripple_is_largest_at_the_interface():
    spec = HeterojunctionSpec(thermal_rms=0.0)
    atoms = build_heterojunction(spec, rng=1)
    metals = atoms.arrays["layer"] == 0
    d = np.abs(atoms.arrays["interface_distance"])[metals]
    z = atoms.positions[metals, 2]
    # The sheet's height never exceeds the amplitude and reaches it near the interface.
    assert np.abs(z).max() <= spec.ripple_amplitude + 1e-9
    assert np.abs(z[d < 3]).max() > 0.9 * spec.ripple_amplitude
    assert np.abs(z[d > 30]).max() < 0.75 * spec.ripple_amplitude


def test_vacancies_are_explicit_sites_near_the_interface():
    atoms = build_heterojunction(HeterojunctionSpec(vacancies=16), rng=2)
    sym = np.array(atoms.get_chemical_symbols())
    d = np.abs(atoms.arrays["interface_distance"])
    chalc = atoms.arrays["layer"] != 0
    assert np.sum(sym == "X") == 16
    assert np.all(chalc[sym == "X"])
    assert np.median(d[sym == "X"]) < 0.5 * np.median(d[chalc])


def test_pairs_are_top_bottom_partners(flat):
    pair, layer = flat.arrays["pair"], flat.arrays["layer"]
    chalc = np.flatnonzero(layer != 0)
    assert np.all(pair[layer == 0] == -1)
    np.testing.assert_array_equal(pair[pair[chalc]], chalc)
    np.testing.assert_array_equal(layer[pair[chalc]], -layer[chalc])
    sep = flat.positions[chalc, :2] - flat.positions[pair[chalc], :2]
    assert np.abs(sep).max() < 1e-9  # flat sheet: partners share x, y


def test_same_seed_same_phantom_and_other_seed_differs():
    a = build_heterojunction(HeterojunctionSpec(field=(30.0, 30.0)), rng=5)
    b = build_heterojunction(HeterojunctionSpec(field=(30.0, 30.0)), rng=5)
    c = build_heterojunction(HeterojunctionSpec(field=(30.0, 30.0)), rng=6)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)


def test_polygon_outside_the_field_and_too_many_vacancies_are_refused():
    with pytest.raises(InputError, match="no edge inside"):
        build_heterojunction(HeterojunctionSpec(region_polygon=((2, 2), (3, 2), (3, 3))))
    with pytest.raises(InputError, match="vacancies"):
        build_heterojunction(HeterojunctionSpec(field=(20.0, 20.0), vacancies=10_000))


def test_rippled_sheet_is_continuous_round_the_interface_corner():
    # Neighbouring metals (3.2 Å apart) differ in height by at most the ripple's slope
    # times their distance, plus the phase turning round the corner: 2 pi A / lambda *
    # 3.2 Å = 0.6 Å on a straight interface; a jump in the phase would give up to 2A.
    spec = HeterojunctionSpec(thermal_rms=0.0)
    atoms = build_heterojunction(spec, rng=0)
    metals = atoms.positions[atoms.arrays["layer"] == 0]
    inner = np.all(np.abs(metals[:, :2]) < 33, axis=1)  # full neighbour shells
    dist, idx = cKDTree(metals[:, :2]).query(metals[:, :2], k=7)
    step = np.abs(metals[idx[:, 1:], 2] - metals[:, None, 2]).max(axis=1)
    assert step[inner].max() < 1.0


def _metal_area_excess(keep_area: bool) -> float:
    """Mean area of the metal triangles on the rippled sheet over the flat one, minus 1."""
    spec = HeterojunctionSpec(
        materials=NO_MISFIT,  # WSe2 on the MoS2 lattice: the ripple alone
        thermal_rms=0.0,
        vacancies=0,
        substitutions=0,
        ripple_keeps_area=keep_area,
    )
    atoms = build_heterojunction(spec, rng=0)
    p = atoms.positions[atoms.arrays["layer"] == 0]
    a, b, c = (p[i] for i in Delaunay(p[:, :2]).simplices.T)
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    inner = np.all(np.abs((a + b + c)[:, :2] / 3) < 30, axis=1) & (area < 5)
    return area[inner].mean() / (np.sqrt(3) / 4 * 3.16**2) - 1


def test_ripple_keeps_the_sheet_area_only_when_asked():
    # Lifting the sites stretches the sheet by <|grad w|^2> / 2 (+0.53 % for the default
    # ripple); pulling them in cancels it to second order in the slope (measured
    # -0.016 %; 0.05 % allows for the boundary of the finite field).
    assert _metal_area_excess(False) > 0.003
    assert abs(_metal_area_excess(True)) < 0.0005


def test_sheet_extends_beyond_the_field_without_new_interfaces():
    # extend = 16 Å: the sheet covers the field plus 16 Å on every side, its regions run
    # on (every metal site inside the field keeps its species), and the defects stay in
    # the field, as many as configured.
    field, extend = (40.0, 40.0), 16.0
    spec = dict(field=field, vacancies=5, substitutions=1, ripple_wavelength=40.0)
    flake = build_heterojunction(HeterojunctionSpec(**spec), rng=3)
    sheet = build_heterojunction(HeterojunctionSpec(**spec, extend=extend), rng=3)
    metal = sheet.arrays["layer"] == 0
    pos = sheet.positions
    span = np.ptp(pos[metal, :2], axis=0)
    assert np.all(span > np.array(field) + 2 * extend - 2 * 3.3)
    symbols = np.array(sheet.get_chemical_symbols())
    half = np.array(field) / 2 + 0.5  # thermal and misfit displacements
    inside = np.all(np.abs(pos[:, :2]) <= half, axis=1)
    assert np.sum(symbols == "X") == 5 and inside[symbols == "X"].all()
    sub = (symbols == "Se") & (sheet.arrays["region"] == 0)
    assert sub.sum() == 1 and inside[sub].all()
    # metals inside the field: the same species in the flake and in the sheet
    f_metal = flake.arrays["layer"] == 0
    f_pos, f_sym = flake.positions[f_metal], np.array(flake.get_chemical_symbols())[f_metal]
    core = metal & np.all(np.abs(pos[:, :2]) <= np.array(field) / 2 - 3.0, axis=1)
    dist, idx = cKDTree(f_pos[:, :2]).query(pos[core, :2])
    assert dist.max() < 0.6
    np.testing.assert_array_equal(symbols[core], f_sym[idx])
    assert {"Mo", "W"} <= set(symbols[metal & ~inside])  # both regions run on outside
    with pytest.raises(InputError, match="extend must be >= 0"):
        build_heterojunction(HeterojunctionSpec(**spec, extend=-1.0))
