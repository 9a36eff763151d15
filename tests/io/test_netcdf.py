"""Tests of hpcaet.io.netcdf: round trips of every kind and every way a file can fail."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

from hpcaet.errors import HpcaetError, SchemaError
from hpcaet.io import (
    KINDS,
    SCHEMAS,
    DatasetNotFoundError,
    make_atom_model,
    make_eels,
    make_phonons,
    make_strain,
    make_tilt_series,
    make_volume,
    read_dataset,
    write_dataset,
)


def _example(kind: str) -> xr.Dataset:
    """A small Dataset of ``kind`` with every optional variable filled in."""
    rng = np.random.default_rng(0)
    n_tilt, n_frame, ny, nx = 3, 2, 6, 5
    if kind == "TiltSeries":
        return make_tilt_series(
            frames=rng.random((n_tilt, n_frame, ny, nx)).astype(np.float32),
            images=rng.random((n_tilt, ny, nx)),
            euler=rng.normal(size=(n_tilt, 3)),
            pixel_size=0.32,
            dose=3.8e5,
            stage_tilt=rng.normal(size=(n_tilt, 2)),
            read_noise=0.3,
            dwell_time=2.0,
            attrs={"source": "simulated"},
            true_euler=rng.normal(size=(n_tilt, 3)),
            true_drift=rng.normal(size=(n_tilt, n_frame, 2)),
            true_offset=rng.normal(size=(n_tilt, 2)),
            true_vibration_direction=rng.normal(size=n_tilt),
            true_vibration_amplitude=rng.random(n_tilt),
            true_vibration_width=rng.random(n_tilt),
            true_background=rng.random((n_tilt, ny, nx)),
            clean_images=rng.random((n_tilt, ny, nx)),
        )
    if kind == "Volume":
        return make_volume(
            rng.random((4, ny, nx)),
            voxel_size=0.32,
            algorithm="GENFIRE",
            error_history=rng.random(7),
            rfree_history=rng.random(7),
            iterations=7,
            oversampling=2.0,
        )
    if kind == "AtomModel":
        return make_atom_model(
            position=rng.normal(size=(5, 3)),
            species=["Mo", "S", "S", "vac", "Se"],
            b_factor=rng.random(5),
            layer=[0, 1, -1, 1, -1],
            region=[0, 0, 0, 1, -1],
            pair=[-1, 2, 1, 4, 3],
            flag=[0, 1, 2, 3, 0],
            cross_section={"Mo": 0.010, "S": 0.0026, "Se": 0.0074},
            true_index=[0, 1, 2, -1, 4],
            R1=0.12,
            R=0.05,
        )
    if kind == "Strain":
        strain = rng.normal(size=(6, 2, 3, 4))
        strain[:, 0, 0, 0] = np.nan
        return make_strain(
            displacement=rng.normal(size=(4, 3)),
            strain=strain,
            z=[-1.0, 1.0],
            y=[0.0, 1.0, 2.0],
            x=np.arange(4.0),
            position=rng.normal(size=(4, 3)),
            region=[0, 1, 1, -1],
        )
    if kind == "Phonons":
        energy = np.linspace(0.0, 60.0, 9)
        return make_phonons(
            energy=energy,
            dos=rng.random(9),
            pdos={"Mo": rng.random(9), "S": rng.random(9)},
            spectral_function=rng.random((4, 9)),
            q_distance=np.linspace(0.0, 1.0, 4),
            frequency=np.array([-0.5, 10.0, 20.0]),
            participation_ratio=[0.1, 0.5, 1.0],
            interface_participation=[0.0, 0.2, 0.9],
            calculator="EMT",
        )
    peaks = {key: rng.random((2, 3)) for key in ("centre", "width", "height")}
    peaks["centre_error"] = np.array([[0.1, np.nan, 0.2], [0.3, 0.1, 0.1]])
    return make_eels(
        spectra=rng.random((5, 8)),
        energy=np.linspace(20.0, 80.0, 8),
        position=np.linspace(0.0, 4.0, 5),
        background=rng.random((5, 8)),
        cluster=[0, 0, 1, 1, 1],
        average=rng.random((2, 8)),
        peaks=peaks,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_identical(kind, tmp_path):
    ds = _example(kind)
    path = write_dataset(ds, tmp_path / f"{kind}.nc")
    assert path == tmp_path / f"{kind}.nc"
    back = read_dataset(path, kind=kind)
    xr.testing.assert_identical(back, ds)
    for name, var in back.variables.items():
        assert var.dtype == ds[name].dtype, name
    assert os.listdir(tmp_path) == [f"{kind}.nc"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_keeps_its_schema_units(kind, tmp_path):
    back = read_dataset(write_dataset(_example(kind), tmp_path / "a.nc"))
    spec = SCHEMAS[kind]
    for field in (*spec.coordinates, *spec.variables):
        if field.name in back.variables and field.units is not None:
            assert back[field.name].attrs["units"] == field.units
    for attr in spec.attributes:
        if attr.name in back.attrs and attr.units is not None:
            assert back.attrs[f"{attr.name}_units"] == attr.units


def test_species_and_flags_round_trip(tmp_path):
    back = read_dataset(write_dataset(_example("AtomModel"), tmp_path / "atoms.nc"))
    assert back["species"].values.tolist() == ["Mo", "S", "S", "vac", "Se"]
    assert back["layer"].dtype == np.int8
    assert back["layer"].attrs["flag_meanings"] == "bottom middle top"
    np.testing.assert_array_equal(back["layer"].attrs["flag_values"], [-1, 0, 1])
    assert back["pair"].dtype == np.int32


def test_truncated_file_is_reported_as_damaged(tmp_path):
    path = write_dataset(_example("TiltSeries"), tmp_path / "tilts.nc")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SchemaError, match="damaged or truncated") as info:
        read_dataset(path)
    assert str(path) in str(info.value)
    assert "Re-run the stage" in str(info.value)


def test_file_that_is_not_netcdf_is_named_so(tmp_path):
    path = tmp_path / "notes.nc"
    path.write_text("not a netCDF file\n")
    with pytest.raises(SchemaError, match="is not a netCDF file"):
        read_dataset(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "absent.nc"
    with pytest.raises(DatasetNotFoundError, match="absent.nc") as info:
        read_dataset(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, HpcaetError)


def test_wrong_kind_names_both_kinds(tmp_path):
    path = write_dataset(_example("AtomModel"), tmp_path / "atoms.nc")
    with pytest.raises(SchemaError, match="'AtomModel'.*'TiltSeries'"):
        read_dataset(path, kind="TiltSeries")


def test_file_without_kind_is_rejected(tmp_path):
    path = tmp_path / "plain.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(path, engine="netcdf4")
    with pytest.raises(SchemaError, match="hpcaet_kind"):
        read_dataset(path)


def test_invalid_file_content_is_reported_with_its_path(tmp_path):
    path = tmp_path / "vol.nc"
    ds = _example("Volume")
    ds["density"].attrs["units"] = "1/nm"
    ds.to_netcdf(path, engine="netcdf4")
    with pytest.raises(SchemaError, match=r"(?s)vol\.nc.*density.*1/nm"):
        read_dataset(path)


def test_invalid_dataset_writes_nothing(tmp_path):
    ds = _example("AtomModel")
    ds["position"][1, 0] = np.nan
    with pytest.raises(SchemaError, match="position"):
        write_dataset(ds, tmp_path / "atoms.nc")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = write_dataset(_example("Volume"), tmp_path / "vol.nc")
    before = path.read_bytes()
    ds = _example("Volume")
    ds.attrs["plan"] = {"windows": 4}  # valid for the schema, not storable in netCDF
    with pytest.raises(SchemaError, match="plan|Cannot store"):
        write_dataset(ds, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["vol.nc"]


def test_missing_parent_folder_is_reported(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        write_dataset(_example("Volume"), tmp_path / "no" / "vol.nc")


def test_loaded_file_is_closed_and_can_be_replaced(tmp_path):
    path = write_dataset(_example("Volume"), tmp_path / "vol.nc")
    first = read_dataset(path)
    other = make_volume(np.ones((2, 2, 2)), voxel_size=1.0, algorithm="SIRT")
    write_dataset(other, path)
    path.unlink()
    assert float(first["density"].sum()) == float(_example("Volume")["density"].sum())


def test_lazy_read_checks_structure_and_stays_lazy(tmp_path):
    path = write_dataset(_example("TiltSeries"), tmp_path / "tilts.nc")
    with read_dataset(path, load=False) as ds:
        assert not ds["frames"].variable._in_memory
        assert ds.attrs["hpcaet_kind"] == "TiltSeries"


def test_read_subset_can_be_written_again(tmp_path):
    path = write_dataset(_example("TiltSeries"), tmp_path / "tilts.nc")
    subset = read_dataset(path).isel(tilt=[0, 2], y=slice(1, 5))
    back = read_dataset(write_dataset(subset, tmp_path / "subset.nc"))
    xr.testing.assert_identical(back, subset)
