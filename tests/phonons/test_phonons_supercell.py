"""The stitched cell: cut across the phantom's zigzag interface, checked before forces."""

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.phonons import (
    check_distances,
    ideal_strip,
    interface_distances,
    stitch_supercell,
    virtual_lattice,
)


def phantom(**options):
    atoms = build_heterojunction(HeterojunctionSpec(**options), rng=0)
    species = np.array(["vac" if s == "X" else s for s in atoms.get_chemical_symbols()])
    return atoms.positions, species


@pytest.fixture(scope="module")
def paper_cell():
    pos, species = phantom()  # the paper's field: a zigzag interface along x
    return pos, species, stitch_supercell(pos, species, rows=16, width=3)


def test_strip_runs_from_mos2_across_the_interface_into_wse2(paper_cell):
    pos, species, cell = paper_cell
    symbols = np.array(cell.atoms.get_chemical_symbols())
    metal = np.isin(symbols, ["Mo", "W"])
    assert metal.sum() == 16 * 3
    sites = 3 * 16 * 3  # 144 sites; vacancies of the model are dropped
    n_vac = sites - len(cell.atoms)
    assert 0 <= n_vac <= 3
    for r in range(16):  # 3 metals per row: Mo rows first, W rows after the interface
        row_metals = symbols[metal & (cell.row == r)]
        assert len(row_metals) == 3
        assert set(row_metals) == ({"Mo"} if r < 8 else {"W"})
    # the atoms are the model's; each row is turned rigidly (its tilt along the
    # interface), so distances within a row are kept exactly and bonds between rows
    # change only by the difference of the rows' tilts times the lever arm (< 0.2 Å)
    src = cell.source_index
    assert np.all(species[src] == symbols)
    from ase.neighborlist import neighbor_list

    i, j, d, shift = neighbor_list("ijdS", cell.atoms, 3.0)
    inside = (shift == 0).all(axis=1)
    d_model = np.linalg.norm(pos[src[i]] - pos[src[j]], axis=1)
    same_row = cell.row[i] == cell.row[j]
    np.testing.assert_allclose(d[inside & same_row], d_model[inside & same_row], atol=1e-9)
    change = np.abs(d - d_model)[inside & ~same_row]
    assert change.max() < 0.2 and np.sqrt(np.mean(change**2)) < 0.05


def test_interfaces_and_weights_follow_the_cell(paper_cell):
    _, _, cell = paper_cell
    length = cell.atoms.cell[1, 1]
    assert len(cell.interfaces) == 2 and cell.interfaces[0] == 0.0
    assert 0.3 * length < cell.interfaces[1] < 0.7 * length  # the measured interface
    d = interface_distances(cell)
    assert d.min() >= 0 and d.max() <= length / 4 + 1.0


def test_virtual_lattice_maps_every_atom_once(paper_cell):
    _, _, cell = paper_cell
    lattice = virtual_lattice(cell)
    mapped = [m for m in lattice.atom_mapping if m is not None]
    assert sorted(mapped) == list(range(len(cell.atoms)))
    assert len(lattice.atom_mapping) == 144
    assert round(abs(np.linalg.det(lattice.supercell_matrix))) == 48  # primitive cells


def test_model_without_zigzag_interface_is_refused():
    pos, species = phantom(region_polygon=((-1, -1), (-1, 1), (0, 1), (0, -1)))  # armchair
    with pytest.raises(InputError, match="no zigzag segment.*armchair"):
        stitch_supercell(pos, species)


def test_atoms_too_close_are_refused_naming_the_seam():
    strip = ideal_strip([("Mo", "S", 2.7, 1.56, 4)], lattice_constant=3.16, width=2)
    atoms = strip.atoms.copy()
    check_distances(atoms, min_distance=2.0)  # a perfect strip passes
    length = atoms.cell[1, 1]
    top = int(np.argmax(atoms.positions[:, 1]))
    atoms.positions[top, 1] = length - 0.1  # next to the atoms at y = 0 + its image
    lowest = int(np.argmin(atoms.positions[:, 1]))
    atoms.positions[top, [0, 2]] = atoms.positions[lowest, [0, 2]]
    atoms.positions[lowest, 1] = 0.3
    with pytest.raises(InputError, match=r"0\.40 Å apart across the periodic seam along y"):
        check_distances(atoms, min_distance=2.0)


def test_stitching_refuses_a_bound_the_measured_atoms_break(paper_cell):
    pos, species, cell = paper_cell
    from ase.neighborlist import neighbor_list

    nearest = neighbor_list("d", cell.atoms, 3.0).min()
    with pytest.raises(InputError, match=rf"{nearest:.2f} Å apart"):
        stitch_supercell(pos, species, rows=16, width=3, min_distance=nearest + 0.05)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"rows": 15}, "even number"), ({"rows": 40}, "metal rows"), ({"width": 30}, "width")],
)
def test_bad_strip_sizes(paper_cell, options, match):
    pos, species, _ = paper_cell
    with pytest.raises(InputError, match=match):
        stitch_supercell(pos, species, **options)


def test_two_facing_zigzag_interfaces_give_the_papers_two_strips():
    # a WSe2 band in MoS2: two zigzag interfaces facing each other (a gentle ripple)
    pos, species = phantom(
        region_polygon=((-1, -0.15), (-1, 0.15), (1, 0.15), (1, -0.15)), ripple_amplitude=0.5
    )
    cell = stitch_supercell(pos, species, rows=16, width=3)
    symbols = np.array(cell.atoms.get_chemical_symbols())
    metal = np.isin(symbols, ["Mo", "W"])
    order = "".join(
        "M" if set(symbols[metal & (cell.row == r)]) == {"Mo"} else "W" for r in range(16)
    )
    # across the first interface into WSe2, then back across the second into MoS2:
    # both seams join like to like (the paper's W atoms, and MoS2 deep on both sides)
    assert order == "MMMMWWWWWWWWMMMM"
    length = cell.atoms.cell[1, 1]
    assert len(cell.interfaces) == 2 and 0.0 not in cell.interfaces
    np.testing.assert_allclose(cell.interfaces / length, [0.25, 0.75], atol=0.05)
    from ase.neighborlist import neighbor_list

    d, shift = neighbor_list("dS", cell.atoms, 3.0)
    assert d[shift[:, 1] != 0].min() > 2.2  # bonds across the seams are ordinary bonds
