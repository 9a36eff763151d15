"""The MoS2–WSe2 interface found from the metal species (hpcaet.structure.interface)."""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.materials import Material, Materials
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.structure import (
    find_interface,
    interface_chalcogens,
    interface_distance,
    lattice_orientation,
    vacancy_profile,
)

# WSe2 on the MoS2 lattice constant and height: no misfit
NO_MISFIT = Materials(
    (Material("MoS2", "Mo", "S", 3.16, 1.56), Material("WSe2", "W", "Se", 3.16, 1.56))
)


# No misfit, ripple or noise: the atoms sit on the reference lattice (a = 3.16 Å), so the
# metal boundary is known exactly. Metal rows lie at y = k * 2.737 Å; the WSe2 polygon of
# the paper config has its zigzag edge at y = 5.18 Å, so row y = 2.737 is W and row
# y = 5.473 Mo: the boundary runs halfway, at y = 4.105 Å. Its armchair edge at
# x = -5.92 Å splits metal columns 1.58 Å apart as a staircase whose mean is x = -5.53 Å.
FLAT = dict(
    materials=NO_MISFIT,  # WSe2 on the MoS2 lattice: the ripple alone
    thermal_rms=0.0,
    ripple_amplitude=0.0,
    vacancies=0,
    substitutions=0,
)


def _species(atoms):
    return np.array(["vac" if s == "X" else s for s in atoms.get_chemical_symbols()])


def _rotate(pos, degrees):
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    return pos @ rot.T, rot


@pytest.mark.parametrize("degrees", [0.0, 17.0, -40.0])
def test_zigzag_and_armchair_edges_in_place_at_any_orientation(degrees):
    atoms = build_heterojunction(HeterojunctionSpec(**FLAT), rng=0)
    pos, rot = _rotate(atoms.positions, degrees)
    found = find_interface(pos, _species(atoms))
    # The lattice direction comes from the data, so the sample orientation is free.
    assert found.zigzag_angle == pytest.approx(degrees % 60, abs=0.01)
    assert found.spacing == pytest.approx(3.16, abs=1e-6)
    assert sorted(found.kind) == ["armchair", "zigzag"]
    back = found.segments @ rot[:2, :2]  # to the unrotated frame
    zig = back[found.kind == "zigzag"][0]
    arm = back[found.kind == "armchair"][0]
    # 0.1 Å: the traced line follows the smoothed indicator, which bends by a few
    # hundredths of an Å where the field ends; the armchair staircase allows 0.15 Å.
    np.testing.assert_allclose(zig[:, 1], 4.105, atol=0.1)
    np.testing.assert_allclose(arm[:, 0], -5.53, atol=0.15)
    # The corner where they meet, within 0.2 Å of the intersection of the two lines.
    corner = zig[np.argmax(zig[:, 0])]
    np.testing.assert_allclose(corner, [-5.53, 4.105], atol=0.2)
    assert found.deviation[found.kind == "zigzag"][0] < 1.0
    assert found.deviation[found.kind == "armchair"][0] > 29.0


def test_signed_distance_matches_the_geometry():
    atoms = build_heterojunction(HeterojunctionSpec(**FLAT), rng=0)
    found = find_interface(atoms.positions, _species(atoms))
    d, arc = interface_distance(atoms.positions, found)
    p = atoms.positions
    # Against the ideal L-shaped line (ends of the traced line left out): distance to the
    # nearer of its two segments, > 0 inside the WSe2 quadrant.
    zig = np.column_stack([np.clip(p[:, 0], -40.0, -5.53), np.full(len(p), 4.105)])
    arm = np.column_stack([np.full(len(p), -5.53), np.clip(p[:, 1], -40.0, 4.105)])
    want = np.minimum(
        np.linalg.norm(p[:, :2] - zig, axis=1), np.linalg.norm(p[:, :2] - arm, axis=1)
    )
    want = np.where((p[:, 0] < -5.53) & (p[:, 1] < 4.105), want, -want)
    inner = np.all(np.abs(p[:, :2]) < 34.0, axis=1)
    np.testing.assert_allclose(np.abs(d[inner]), np.abs(want[inner]), atol=0.2)
    # The side is the local majority of metals: within half a bond of the armchair
    # staircase it may differ from the side of the ideal straight line.
    clear = inner & (np.abs(want) > 1.0)
    np.testing.assert_array_equal(np.sign(d[clear]), np.sign(want[clear]))
    metals = atoms.arrays["layer"] == 0
    far = metals & (np.abs(d) > 0.5)
    assert np.all((d[far] > 0) == (_species(atoms)[far] == "W"))
    assert arc.min() >= 0 and arc.max() <= sum(found.length.values()) + 1e-9


def test_interface_chalcogens_of_a_straight_zigzag_edge():
    # A zigzag edge across the whole field at y = 3.7 Å: W rows up to y = 2.737, Mo from
    # 5.473. The chalcogens bonded to both lie in the one chalcogen row between them.
    spec = HeterojunctionSpec(
        **{**FLAT, "region_polygon": ((-1, -1), (-1, 0.05), (1, 0.05), (1, -1))}
    )
    atoms = build_heterojunction(spec, rng=0)
    species = _species(atoms)
    found = find_interface(atoms.positions, species)
    assert list(found.kind) == ["zigzag"]
    d, _ = interface_distance(atoms.positions, found)
    counts = interface_chalcogens(atoms.positions, species, d, cutoff=1.0)
    y = atoms.positions[:, 1]
    row = np.isin(species, ("S", "Se")) & (y > 2.8) & (y < 5.4)
    # Se sits only where all three metals are W, so every bridging chalcogen is S;
    # +-2: a site cut by the field's edge may miss one of its metals.
    assert counts["bridging"]["Se"] == 0
    assert abs(counts["bridging"]["S"] - row.sum()) <= 2
    # The row lies 0.46 Å from the boundary line, inside the 1 Å cutoff; the next
    # chalcogen rows are 2.3 Å away.
    assert counts["near"]["S"] == row.sum()


def test_vacancy_profile_counts_by_distance():
    distance = np.array([-4.0, -1.0, -0.5, 0.2, 0.9, 2.5, 7.0])
    species = np.array(["S", "vac", "S", "vac", "Se", "vac", "Mo"])
    profile = vacancy_profile(distance, species, bin_width=2.0)
    # Bins of 2 Å centred on multiples of 2 Å: [-5, -3), ..., [1, 3), [3, 5).
    np.testing.assert_array_equal(profile["centre"], [-4.0, -2.0, 0.0, 2.0, 4.0])
    np.testing.assert_array_equal(profile["vacancies"], [0, 0, 2, 1, 0])
    np.testing.assert_array_equal(profile["sites"], [1, 0, 4, 1, 0])
    assert np.isnan(profile["fraction"][1]) and profile["fraction"][2] == 0.5


def test_single_material_has_no_interface():
    atoms = build_heterojunction(HeterojunctionSpec(**FLAT), rng=0)
    species = _species(atoms)
    species[species == "W"] = "Mo"
    with pytest.raises(InputError, match="only one material"):
        find_interface(atoms.positions, species)


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match="at least 6 metal positions"):
        lattice_orientation(np.zeros((3, 2)))
    with pytest.raises(InputError, match="zigzag_tolerance"):
        find_interface(np.zeros((10, 3)), np.array(["Mo"] * 10), zigzag_tolerance=40)
    with pytest.raises(InputError, match="bin_width"):
        vacancy_profile(np.zeros(3), np.array(["S"] * 3), bin_width=0)
