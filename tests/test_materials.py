"""Materials as data: the config section, and every stage step that reads it."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.atoms import classify_species, score_atoms
from hpcaet.atoms.flip import CASES, flip_cases
from hpcaet.config import load_config, packaged_config
from hpcaet.errors import ConfigError, InputError
from hpcaet.materials import PAPER, VACANCY, Material, Materials
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.phantom.stage import make_phantom

CROSS = dict(load_config().species.cross_section)
WS2_MOSE2 = load_config(packaged_config("demo_ws2_mose2")).materials
MOS2 = load_config(packaged_config("demo_mos2")).materials


def test_the_default_is_the_paper_pair():
    assert load_config().materials == PAPER
    assert PAPER.names == ("MoS2", "WSe2") and PAPER.elements == ("Mo", "W", "S", "Se")
    assert PAPER.by_brightness(CROSS)[1].name == "WSe2"
    assert WS2_MOSE2.by_brightness(CROSS)[1].name == "WS2"  # the bright metal is region 0's


@pytest.mark.parametrize(
    ("regions", "match"),
    [
        ([], "one material or two"),
        ([{"name": "A", "metal": "Mo", "chalcogen": "S"}] * 3, "one material or two"),
        (
            [
                {"name": "MoS2", "metal": "Mo", "chalcogen": "S"},
                {"name": "MoSe2", "metal": "Mo", "chalcogen": "Se"},
            ],
            "differ in name, metal and chalcogen",
        ),
        ([{"name": "X", "metal": "Fe", "chalcogen": "S"}], "transition metal"),
        ([{"name": "X", "metal": "Mo", "chalcogen": "O"}], "chalcogen of"),
        ([{"name": "X", "metal": "Mo", "chalcogen": "S", "lattice_constant": -1}], "> 0 Å"),
        (
            [{"name": "NbS2", "metal": "Nb", "chalcogen": "S"}],
            r"species.cross_section lacks \['Nb'\]",
        ),
    ],
)
def test_bad_materials_are_refused(regions, match):
    full = [{"lattice_constant": 3.2, "chalcogen_height": 1.6, **r} for r in regions]
    with pytest.raises(ConfigError, match=match):
        load_config(overrides={"materials": {"regions": full}})


def test_another_element_needs_its_species_values():
    nb = {"name": "NbS2", "metal": "Nb", "chalcogen": "S", "lattice_constant": 3.31}
    config = load_config(
        overrides={
            "materials": {"regions": [{**nb, "chalcogen_height": 1.57}]},
            "species": {"cross_section": {"Nb": 0.05}, "b_factor": {"Nb": 14.0}},
        }
    )
    assert config.materials.elements == ("Nb", "S")


def test_flip_cases():
    assert CASES == flip_cases(("S", "Se")) and len(CASES) == 9
    assert set(CASES) == {(a, b) for a in ("S", "Se", VACANCY) for b in ("S", "Se", VACANCY)}
    assert set(flip_cases(("Te",))) == {(a, b) for a in ("Te", VACANCY) for b in ("Te", VACANCY)}
    with pytest.raises(InputError, match="one or two distinct"):
        flip_cases(("S", "S"))


def test_phantom_of_each_material():
    one = build_heterojunction(HeterojunctionSpec(materials=MOS2, substitutions=0), rng=0)
    assert set(one.get_chemical_symbols()) == {"Mo", "S", "X"}
    assert not one.arrays["region"].any()
    assert one.info["misfit"] == 0.0
    with pytest.raises(InputError, match="substitutions: 0"):
        build_heterojunction(HeterojunctionSpec(materials=MOS2, substitutions=2), rng=0)
    pair = build_heterojunction(HeterojunctionSpec(materials=WS2_MOSE2), rng=0)
    symbols = np.array(pair.get_chemical_symbols())
    region = pair.arrays["region"]
    metal = pair.arrays["layer"] == 0
    assert set(symbols[metal & (region == 0)]) == {"W"}
    assert set(symbols[metal & (region == 1)]) == {"Mo"}
    assert pair.info["misfit"] == pytest.approx(3.29 / 3.15 - 1)
    # the two substitutions are Se (region 1's chalcogen) on S sites of region 0
    assert np.sum((symbols == "Se") & (region == 0)) == 2
    model = make_phantom(load_config(packaged_config("demo_ws2_mose2")))
    assert model.attrs["materials"] == "WS2 MoSe2"


def _sheet(materials: Materials, rng):
    """A flat 2H sheet: region 1 where x < 0, its metals and chalcogens from materials."""
    a, h = 3.2, 1.6
    i, j = np.meshgrid(np.arange(-8, 8), np.arange(-8, 8))
    a1, a2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
    metal = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    metal = metal[np.max(np.abs(metal), axis=1) < 0.8 * 8 * a]
    column = metal + (a1 + a2) / 3
    m, c = len(metal), len(column)
    position = np.concatenate(
        [
            np.column_stack([metal, np.zeros(m)]),
            np.column_stack([column, np.full(c, h)]),
            np.column_stack([column, np.full(c, -h)]),
        ]
    )
    layer = np.concatenate([np.zeros(m), np.ones(c), -np.ones(c)]).astype(int)
    region = ((position[:, 0] < 0) & materials.pair).astype(int)
    host = [materials.region(r) for r in region]
    species = np.array(
        [h.metal if L == 0 else h.chalcogen for h, L in zip(host, layer, strict=True)]
    )
    return position, layer, region, species


def test_classify_ws2_mose2():
    # The bright metal (W) is region 0's and the bright chalcogen (Se) region 1's; two Se
    # substitutions on the WS2 side. Intensities: cross-sections with 8 % noise (the
    # classes are 1.9x and 3.2x apart), so every atom and region must be right.
    rng = np.random.default_rng(1)
    position, layer, region, species = _sheet(WS2_MOSE2, rng)
    s_sites = np.flatnonzero((species == "S") & (position[:, 0] > 6))
    species[s_sites[:2]] = "Se"
    intensity = np.array([CROSS[s] for s in species]) * rng.normal(1, 0.08, len(species))
    result = classify_species(position, intensity, layer, cross_section=CROSS, materials=WS2_MOSE2)
    np.testing.assert_array_equal(result.species, species)
    inner = np.abs(position[:, 0]) > 4  # the region map is smoothed over 5 Å
    np.testing.assert_array_equal(result.region[inner], region[inner])
    scores = score_atoms(
        position, result.species, position, species, truth_region=region, materials=WS2_MOSE2
    )
    assert scores["substitutions"] == {"true": 2, "found": 2, "false": 0}
    assert set(scores["species"]) == {"W", "Mo", "S", "Se"}


def test_classify_a_single_material():
    rng = np.random.default_rng(2)
    position, layer, region, species = _sheet(MOS2, rng)
    intensity = np.array([CROSS[s] for s in species]) * rng.normal(1, 0.08, len(species))
    intensity[0] = 0.01 * CROSS["Mo"]  # a noise peak on the metal layer
    result = classify_species(position, intensity, layer, cross_section=CROSS, materials=MOS2)
    np.testing.assert_array_equal(result.species, species)
    assert not result.region.any()
    assert not result.keep[0] and result.keep[1:].all()
    scores = score_atoms(position, species, position, species, truth_region=region, materials=MOS2)
    assert set(scores["species"]) == {"Mo", "S"} and scores["all_correct"]
    # a missing chalcogen is a missing atom, not a substitution
    keep = np.arange(len(species)) != np.flatnonzero(layer != 0)[0]
    missing = score_atoms(
        position[keep], species[keep], position, species, truth_region=region, materials=MOS2
    )
    assert missing["substitutions"] == {"true": 0, "found": 0, "false": 0}
    assert missing["missing_atoms"] == 1


def test_material_check_names_the_materials():
    from hpcaet.atoms.quality import check_material

    position, layer, _, _ = _sheet(PAPER, np.random.default_rng(0))
    check_material(position, layer, lattice=(3.2,), heights=(1.6,))
    with pytest.raises(InputError, match="WS2 / MoSe2 monolayer.*materials section"):
        check_material(
            position * [1.5, 1.5, 1.0],
            layer,
            lattice=WS2_MOSE2.lattice_constants,
            heights=WS2_MOSE2.heights,
            names=WS2_MOSE2.names,
        )


def test_a_material_is_frozen_data():
    m = Material("MoS2", "Mo", "S", 3.16, 1.56)
    with pytest.raises(AttributeError):
        m.lattice_constant = 3.2  # type: ignore[misc]
