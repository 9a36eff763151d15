"""Tests of hpcaet.io.schemas: the tables, validate, describe and the builders."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from hpcaet.errors import InputError, SchemaError
from hpcaet.io import (
    KINDS,
    SCHEMA_VERSION,
    SCHEMAS,
    describe,
    make_atom_model,
    make_eels,
    make_phonons,
    make_strain,
    make_tilt_series,
    make_volume,
    validate,
)


def _tilts(**options) -> xr.Dataset:
    arguments = dict(images=np.ones((3, 4, 5)), euler=np.zeros((3, 3)), pixel_size=0.5, dose=1e5)
    return make_tilt_series(**{**arguments, **options})


def _atoms(**options) -> xr.Dataset:
    arguments = dict(
        position=np.arange(18.0).reshape(6, 3),
        species=["Mo", "S", "S", "W", "Se", "vac"],
        b_factor=np.full(6, 13.0),
        layer=[0, 1, -1, 0, 1, -1],
        region=[0, 0, 0, 1, 1, 1],
    )
    return make_atom_model(**{**arguments, **options})


def test_kind_names_and_version():
    assert KINDS == ("TiltSeries", "Volume", "AtomModel", "Strain", "Phonons", "EELS")
    assert SCHEMA_VERSION == 1


@pytest.mark.parametrize("kind", KINDS)
def test_describe_lists_every_field_and_its_units(kind):
    text = describe(kind)
    spec = SCHEMAS[kind]
    assert text.startswith(kind)
    for field in (*spec.coordinates, *spec.variables, *spec.attributes):
        line = next(row for row in text.splitlines() if row.startswith(field.name + " "))
        if field.units is not None:
            assert f" {field.units} " in line


def test_describe_rejects_unknown_kind():
    with pytest.raises(InputError, match="'Atoms'.*AtomModel"):
        describe("Atoms")


def test_tilt_series_builder_fills_coordinates_units_and_attrs():
    ds = _tilts(images=np.zeros((2, 4, 5)), euler=np.zeros((2, 3)), pixel_size=0.32)
    np.testing.assert_allclose(ds["x"], (np.arange(5) - 2) * 0.32)
    np.testing.assert_allclose(ds["y"], (np.arange(4) - 2) * 0.32)
    assert ds["angle"].values.tolist() == ["z", "y", "x"]
    assert ds["tilt"].values.tolist() == [0, 1]
    assert ds.attrs["hpcaet_kind"] == "TiltSeries"
    assert ds.attrs["hpcaet_schema_version"] == 1
    assert ds.attrs["pixel_size_units"] == "Å"
    assert ds.attrs["dose_units"] == "e/Å²"
    assert ds.attrs["voltage"] == 60.0 and ds.attrs["detector_outer_angle"] == 210.0
    for name in ("images", "euler", "x", "y", "tilt"):
        assert "units" in ds[name].attrs


def test_all_zero_image_is_valid():
    validate(_tilts(images=np.zeros((3, 4, 5))))


def test_frames_alone_are_enough():
    ds = make_tilt_series(
        frames=np.ones((2, 3, 4, 4)), euler=np.zeros((2, 3)), pixel_size=1, dose=1
    )
    assert ds["frame"].values.tolist() == [0, 1, 2]
    assert isinstance(ds.attrs["pixel_size"], float)


def test_images_or_frames_are_required():
    with pytest.raises(SchemaError, match=r"\('images', 'frames'\).*at least one"):
        make_tilt_series(euler=np.zeros((2, 3)), pixel_size=1.0, dose=1.0)


def test_negative_pixel_size_is_rejected():
    with pytest.raises(
        SchemaError, match=r"'pixel_size': found -0\.3; expected a finite value > 0"
    ):
        _tilts(pixel_size=-0.3)
    ds = _tilts()
    ds.attrs["pixel_size"] = -0.5
    with pytest.raises(SchemaError, match="pixel_size"):
        validate(ds)


def test_detector_angles_must_be_ordered():
    with pytest.raises(SchemaError, match="detector_inner_angle < detector_outer_angle"):
        _tilts(detector_inner_angle=220.0)


def test_wrong_dims_are_named():
    ds = _tilts().transpose("x", "y", "tilt", "angle")
    with pytest.raises(SchemaError) as info:
        validate(ds)
    message = str(info.value)
    assert "variable 'images': found dims ('x', 'y', 'tilt')" in message
    assert "expected dims ('tilt', 'y', 'x')" in message


def test_nan_positions_name_the_atoms():
    position = np.arange(18.0).reshape(6, 3)
    position[2, 1] = np.nan
    position[5, 0] = np.inf
    with pytest.raises(SchemaError, match=r"'position'.*non-finite.*atom index \[2, 5\]"):
        _atoms(position=position)


def test_unknown_species_names_the_value_and_the_allowed_forms():
    with pytest.raises(SchemaError) as info:
        _atoms(species=["Mo", "Xx", "S", "W", "Se", "mo"])
    message = str(info.value)
    assert "'Xx', 'mo'" in message
    assert "atom index [1, 5]" in message
    assert "ase.data.chemical_symbols" in message and "'vac'" in message


def test_atom_model_flags_and_partners():
    ds = _atoms(pair=[-1, 2, 1, -1, 5, 4], flag=[0, 1, 2, 3, 0, 0], cross_section={"Mo": 0.01})
    assert ds["layer"].dtype == np.int8
    assert ds["layer"].attrs["flag_meanings"] == "bottom middle top"
    assert ds["region"].attrs["flag_meanings"] == "unknown first second"
    # files of earlier versions named the paper's materials; they still read
    old = ds.copy()
    old["region"].attrs["flag_meanings"] = "unknown MoS2 WSe2"
    validate(old, "AtomModel")
    assert ds["flag"].attrs["flag_meanings"] == "too_close off_layer edge uncertain"
    assert ds["cross_section"].sel(element="Mo") == 0.01
    with pytest.raises(SchemaError, match=r"'pair'.*\(6\).*0 \.\. 5"):
        _atoms(pair=[-1, 2, 1, -1, 6, 4])
    with pytest.raises(SchemaError, match=r"'layer'.*outside the codes \(2\)"):
        _atoms(layer=[0, 1, -1, 0, 2, -1])
    with pytest.raises(SchemaError, match=r"'flag'.*undocumented bits \(16\)"):
        _atoms(flag=[0, 16, 0, 0, 0, 0])


def test_validate_lists_every_problem_at_once():
    ds = _atoms(R1=0.2)
    ds["b_factor"][0] = -1.0
    ds["species"][1] = "Xx"
    ds["position"].attrs["units"] = "nm"
    ds.attrs["R1"] = -0.1
    del ds.attrs["hpcaet_schema_version"]
    with pytest.raises(SchemaError) as info:
        validate(ds)
    message = str(info.value)
    assert "5 problem(s)" in message
    for name in ("'b_factor'", "'species'", "'position'", "'R1'", "'hpcaet_schema_version'"):
        assert name in message
    assert len(re.findall(r"^  - ", message, flags=re.MULTILINE)) == 5


def test_missing_kind_attribute_is_explained():
    ds = _atoms()
    del ds.attrs["hpcaet_kind"]
    with pytest.raises(SchemaError, match="hpcaet_kind.*TiltSeries"):
        validate(ds)
    validate(ds.assign_attrs(hpcaet_kind="AtomModel"))


def test_kind_mismatch_names_both_kinds():
    with pytest.raises(
        SchemaError, match=r"(?s)TiltSeries.*found 'AtomModel'; expected 'TiltSeries'"
    ):
        validate(_atoms(), kind="TiltSeries")
    with pytest.raises(InputError, match="'Tilts'"):
        validate(_atoms(), kind="Tilts")


def test_extra_variables_and_attributes_are_allowed():
    ds = _atoms().assign(occupancy=("atom", np.ones(6)))
    validate(ds.assign_attrs(comment="refined twice"))


def test_missing_units_and_wrong_dtype_are_reported():
    ds = _tilts()
    del ds["x"].attrs["units"]
    ds["euler"] = ds["euler"].astype(int)
    with pytest.raises(SchemaError) as info:
        validate(ds)
    assert "coordinate 'x': found no 'units' attribute; expected units='Å'" in str(info.value)
    assert "variable 'euler': found dtype int64; expected a float dtype" in str(info.value)


def test_pixel_centres_must_follow_the_pixel_size():
    ds = _tilts()
    ds.attrs["pixel_size"] = 0.25
    with pytest.raises(SchemaError, match="coordinate 'x'.*pixel_size"):
        validate(ds)


def test_check_values_false_checks_only_structure():
    ds = _tilts()
    ds["images"][0, 0, 0] = np.nan
    validate(ds, check_values=False)
    with pytest.raises(SchemaError, match="images"):
        validate(ds)


def test_volume_builder_and_ranges():
    ds = make_volume(np.zeros((2, 3, 4)), voxel_size=0.5, algorithm="GENFIRE", iterations=3)
    np.testing.assert_allclose(ds["z"], [-0.5, 0.0])
    assert ds.attrs["voxel_size_units"] == "Å"
    with pytest.raises(SchemaError, match="'oversampling'.*>= 1"):
        make_volume(np.zeros((2, 2, 2)), voxel_size=1.0, algorithm="SIRT", oversampling=0.5)
    with pytest.raises(SchemaError, match="'iterations'.*int"):
        make_volume(np.zeros((2, 2, 2)), voxel_size=1.0, algorithm="SIRT", iterations=2.5)


def test_strain_allows_nan_outside_the_sample_but_not_inf():
    strain = np.zeros((6, 1, 2, 2))
    strain[:, 0, 0, 0] = np.nan
    arguments = dict(displacement=np.zeros((3, 3)), z=[0.0], y=[0.0, 1.0], x=[0.0, 1.0])
    ds = make_strain(strain=strain, **arguments)
    assert ds["component"].values.tolist() == ["xx", "yy", "zz", "xy", "xz", "yz"]
    strain[0, 0, 1, 1] = np.inf
    with pytest.raises(SchemaError, match="'strain'.*infinite"):
        make_strain(strain=strain, **arguments)


def test_phonons_need_dos_or_frequency_and_fractions_in_range():
    pdos = {"Mo": [0.0, 1.0, 0.0], "S": [1.0, 0.0, 0.0]}
    ds = make_phonons(energy=[0.0, 1.0, 2.0], dos=[1.0, 1.0, 0.0], pdos=pdos)
    assert ds["species"].values.tolist() == ["Mo", "S"]
    assert ds["pdos"].dims == ("species", "energy")
    with pytest.raises(SchemaError, match=r"\('dos', 'frequency'\).*at least one"):
        validate(ds.drop_vars("dos"))
    with pytest.raises(SchemaError, match=r"'participation_ratio'.*\(1\.5\).*in \[0, 1\]"):
        make_phonons(frequency=[1.0, 2.0], participation_ratio=[0.5, 1.5])
    with pytest.raises(InputError, match="energy"):
        make_phonons(dos=[1.0, 2.0])


def test_eels_energy_must_increase():
    arguments = dict(spectra=np.ones((2, 3)), position=[0.0, 1.0])
    ds = make_eels(energy=[10.0, 20.0, 30.0], peaks={"centre": [[15.0]]}, **arguments)
    assert ds["peak_centre"].dims == ("group", "peak")
    with pytest.raises(SchemaError, match=r"coordinate 'energy'.*energy index \[2\]"):
        make_eels(energy=[10.0, 30.0, 20.0], **arguments)
    with pytest.raises(InputError, match="'center'"):
        make_eels(energy=[10.0, 20.0, 30.0], peaks={"center": [[15.0]]}, **arguments)


def test_builders_reject_inconsistent_shapes_and_names():
    with pytest.raises(InputError, match="euler has 2 entries along 'tilt' but images has 3"):
        _tilts(euler=np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"images must be an array with 3 dimension"):
        _tilts(images=np.ones((4, 5)))
    with pytest.raises(InputError, match="expected 3 \\(z, y, x\\)"):
        _tilts(euler=np.zeros((3, 2)))
    with pytest.raises(InputError, match="true_drfit"):
        _tilts(true_drfit=np.zeros((3, 1, 2)))
    with pytest.raises(InputError, match="layer must hold integers"):
        _atoms(layer=[0.5, 1, -1, 0, 1, -1])


def test_atom_model_of_an_earlier_version_with_fewer_flag_bits_is_valid():
    # atoms.nc written before the edge bit existed (flag_masks 1, 2) still reads; a flag
    # table that is not a leading part of today's is refused.
    ds = _atoms(flag=[0, 1, 2, 3, 0, 0])
    earlier = dict(flag_masks=np.array([1, 2], np.int8), flag_meanings="too_close off_layer")
    ds["flag"].attrs.update(earlier)
    validate(ds, "AtomModel")
    ds["flag"].attrs.update(flag_masks=np.array([2], np.int8), flag_meanings="off_layer")
    with pytest.raises(SchemaError, match="flag_masks"):
        validate(ds, "AtomModel")
