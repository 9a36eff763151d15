"""Builders of hpcaet Datasets from numpy arrays.

Each ``make_*`` function turns plain arrays into a Dataset of one kind of
:data:`~hpcaet.io.schemas.SCHEMAS`, fills in the coordinates, units and attributes the
schema fixes, and returns it validated by :func:`~hpcaet.io.validate.validate`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from hpcaet.errors import InputError
from hpcaet.io.schemas import SCHEMA_VERSION, SCHEMAS, FieldSpec
from hpcaet.io.validation import _attribute_problems, _raise, _shown, validate

__all__ = [
    "make_tilt_series",
    "make_volume",
    "make_atom_model",
    "make_strain",
    "make_phonons",
    "make_eels",
]


def _as_array(spec: FieldSpec, value: ArrayLike) -> np.ndarray:
    """``value`` as an array of the dtype of ``spec``."""
    arr = np.asarray(value)
    name = spec.name
    if spec.dtype == "float":
        if arr.dtype.kind in "biu":
            return arr.astype(np.float64)
        if arr.dtype.kind != "f":
            raise InputError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
        return arr
    if spec.dtype == "str":
        if arr.dtype.kind not in "USO":
            raise InputError(f"{name} must hold strings; got dtype {arr.dtype}.")
        return arr.astype(str)
    if arr.dtype.kind == "f":
        bad = ~(np.isfinite(arr) & (arr == np.round(arr)))
        if bad.any():
            raise InputError(
                f"{name} must hold integers; got non-integer values ({_shown(arr[bad])}). "
                "Pass the integer codes documented in describe()."
            )
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold integers; got dtype {arr.dtype}.")
    dtype = np.dtype(spec.storage or np.int64)
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise InputError(
            f"{name} has values from {arr.min()} to {arr.max()}, outside the range of its "
            f"storage dtype {dtype} ({info.min} .. {info.max}). Use the documented codes."
        )
    return arr.astype(dtype)


def _field_attrs(spec: FieldSpec) -> dict:
    attrs = {"long_name": spec.description}
    if spec.units is not None:
        attrs["units"] = spec.units
    storage = spec.storage
    for key in ("flag_values", "flag_masks"):
        if getattr(spec, key, None) is not None:
            attrs[key] = np.array(getattr(spec, key), dtype=storage)
            attrs["flag_meanings"] = spec.flag_meanings
    return attrs


def _build(
    kind: str,
    *,
    variables: Mapping[str, ArrayLike | None],
    coords: Mapping[str, ArrayLike] | None = None,
    attrs: Mapping[str, object],
) -> xr.Dataset:
    """Assemble a Dataset of ``kind`` from plain arrays, fill coords and units, validate."""
    spec = SCHEMAS[kind]
    attr_specs = {a.name: a for a in spec.attributes}
    ds_attrs: dict[str, object] = {"hpcaet_kind": kind, "hpcaet_schema_version": SCHEMA_VERSION}
    for name, value in attrs.items():
        if value is None:
            continue
        aspec = attr_specs.get(name)
        if aspec is not None and aspec.dtype == "float" and isinstance(value, (int, np.integer)):
            value = float(value)
        ds_attrs[name] = value
        if aspec is not None and aspec.units is not None:
            ds_attrs[f"{name}_units"] = aspec.units
    _raise(kind, [p for a in spec.attributes for p in _attribute_problems(a, ds_attrs)])

    sizes: dict[str, int] = {}
    owner: dict[str, str] = {}

    def register(name: str, dims: tuple[str, ...], arr: np.ndarray) -> None:
        if arr.ndim != len(dims):
            raise InputError(
                f"{name} must be an array with {len(dims)} dimension(s) {dims}; got shape "
                f"{arr.shape}."
            )
        for dim, n in zip(dims, arr.shape, strict=True):
            if dim in sizes and sizes[dim] != n:
                raise InputError(
                    f"{name} has {n} entries along {dim!r} but {owner[dim]} has {sizes[dim]}; "
                    "the arrays must agree in size."
                )
            sizes.setdefault(dim, n)
            owner.setdefault(dim, name)

    data_vars = {}
    for name, value in variables.items():
        if value is None:
            continue
        vspec = spec.variable(name)
        arr = _as_array(vspec, value)
        register(name, vspec.dims, arr)
        data_vars[name] = xr.Variable(vspec.dims, arr, _field_attrs(vspec))

    given = {name: value for name, value in (coords or {}).items() if value is not None}
    coord_vars = {}
    for cspec in spec.coordinates:
        if cspec.name in given:
            arr = _as_array(cspec, given.pop(cspec.name))
            register(f"coordinate {cspec.name}", cspec.dims, arr)
        elif not all(dim in sizes for dim in cspec.dims):
            continue
        elif cspec.values is not None:
            n = sizes[cspec.dims[0]]
            if n != len(cspec.values):
                raise InputError(
                    f"{owner[cspec.dims[0]]} has {n} entries along {cspec.dims[0]!r}; expected "
                    f"{len(cspec.values)} ({', '.join(cspec.values)}) in this order."
                )
            arr = np.array(cspec.values)
        elif cspec.index:
            arr = np.arange(sizes[cspec.dims[0]], dtype=np.int64)
        elif cspec.spacing_attr is not None:
            n = sizes[cspec.dims[0]]
            arr = (np.arange(n) - n // 2) * float(ds_attrs[cspec.spacing_attr])
        elif cspec.required:
            raise InputError(
                f"Missing the {cspec.name!r} coordinate [{cspec.units}] of dimension "
                f"{cspec.dims[0]!r} used by {owner[cspec.dims[0]]}; pass {cspec.name}=..."
            )
        else:
            continue
        coord_vars[cspec.name] = xr.Variable(cspec.dims, arr, _field_attrs(cspec))
    if given:
        raise InputError(f"Unknown coordinate(s) {sorted(given)} for {kind}.")
    ds = xr.Dataset(data_vars, coords=coord_vars, attrs=ds_attrs)
    return validate(ds, kind)


_TRUTH = (
    *(v.name for v in SCHEMAS["TiltSeries"].variables if v.name.startswith("true_")),
    "clean_images",
)


def make_tilt_series(
    *,
    images: ArrayLike | None = None,
    frames: ArrayLike | None = None,
    euler: ArrayLike,
    pixel_size: float,
    voltage: float = 60.0,
    convergence_angle: float = 38.0,
    detector_inner_angle: float = 50.0,
    detector_outer_angle: float = 210.0,
    dose: float,
    stage_tilt: ArrayLike | None = None,
    read_noise: float | None = None,
    dwell_time: float | None = None,
    attrs: Mapping[str, object] | None = None,
    **truth: ArrayLike,
) -> xr.Dataset:
    """Build a valid TiltSeries Dataset.

    Parameters
    ----------
    images : array_like of shape (n_tilt, ny, nx), optional
        One image per tilt [counts].
    frames : array_like of shape (n_tilt, n_frame, ny, nx), optional
        Raw frames of each tilt [counts]. At least one of ``images`` and ``frames``.
    euler : array_like of shape (n_tilt, 3)
        Euler angles (Z, Y, X) of each image [deg], see :mod:`hpcaet.geometry`.
    pixel_size : float
        [Å]; the x and y coordinates are the pixel centres ``(i - n // 2) * pixel_size``.
    voltage : float, default 60
        Accelerating voltage [kV].
    convergence_angle : float, default 38
        Probe convergence semi-angle [mrad].
    detector_inner_angle, detector_outer_angle : float, default 50, 210
        ADF detector collection angles [mrad], ``0 <= inner < outer``.
    dose : float
        Total dose over the series [e/Å²].
    stage_tilt : array_like of shape (n_tilt, 2), optional
        Stage alpha and beta readings [deg].
    read_noise : float, optional
        Detector read noise [counts].
    dwell_time : float, optional
        Dwell time per pixel [µs].
    attrs : mapping, optional
        Further attributes stored as they are (netCDF-storable values only).
    **truth : array_like
        Ground truth from the simulator: ``true_euler`` (n_tilt, 3) [deg],
        ``true_drift`` (n_tilt, n_frame, 2) [pixel] (x, y), ``true_offset`` (n_tilt, 2)
        [Å] (x, y), ``true_vibration_direction`` (n_tilt,) [deg],
        ``true_vibration_amplitude`` and ``true_vibration_width`` (n_tilt,) [Å],
        ``true_background`` and ``clean_images`` (n_tilt, ny, nx) [counts].

    Returns
    -------
    xarray.Dataset
        A validated TiltSeries (see ``describe("TiltSeries")``).

    Raises
    ------
    InputError
        Unknown truth names, or array shapes that do not agree.
    SchemaError
        Values that break the schema (non-finite data, non-positive pixel size, ...).
    """
    unknown = sorted(set(truth) - set(_TRUTH))
    if unknown:
        raise InputError(
            f"Unknown ground-truth variable(s) {unknown} for make_tilt_series; expected "
            f"names among {list(_TRUTH)}."
        )
    variables = {"frames": frames, "images": images, "euler": euler, "stage_tilt": stage_tilt}
    all_attrs = {
        **(attrs or {}),
        "pixel_size": pixel_size,
        "voltage": voltage,
        "convergence_angle": convergence_angle,
        "detector_inner_angle": detector_inner_angle,
        "detector_outer_angle": detector_outer_angle,
        "dose": dose,
        "read_noise": read_noise,
        "dwell_time": dwell_time,
    }
    return _build("TiltSeries", variables={**variables, **truth}, attrs=all_attrs)


def make_volume(
    density: ArrayLike,
    *,
    voxel_size: float,
    algorithm: str,
    error_history: ArrayLike | None = None,
    rfree_history: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid Volume Dataset.

    Parameters
    ----------
    density : array_like of shape (nz, ny, nx)
        Reconstructed density [1/Å]; z, y and x are the voxel centres
        ``(i - n // 2) * voxel_size``.
    voxel_size : float
        [Å].
    algorithm : str
        Name of the reconstruction algorithm, e.g. ``"GENFIRE"``.
    error_history, rfree_history : array_like of shape (n_iteration,), optional
        Error and R-free per iteration [1].
    **attrs
        Further attributes, among them ``iterations`` (int >= 0) and ``oversampling``
        (float >= 1).

    Returns
    -------
    xarray.Dataset
        A validated Volume (see ``describe("Volume")``).
    """
    variables = {
        "density": density,
        "error_history": error_history,
        "rfree_history": rfree_history,
    }
    all_attrs = {**attrs, "voxel_size": voxel_size, "algorithm": algorithm}
    return _build("Volume", variables=variables, attrs=all_attrs)


def make_atom_model(
    *,
    position: ArrayLike,
    species: ArrayLike,
    b_factor: ArrayLike,
    layer: ArrayLike,
    region: ArrayLike,
    pair: ArrayLike | None = None,
    flag: ArrayLike | None = None,
    cross_section: Mapping[str, float] | None = None,
    true_index: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid AtomModel Dataset.

    Parameters
    ----------
    position : array_like of shape (n_atom, 3)
        Positions (x, y, z) [Å].
    species : array_like of str, shape (n_atom,)
        Chemical symbols, ``"vac"`` for an explicit vacancy site.
    b_factor : array_like of shape (n_atom,)
        B-factors [Å²], >= 0.
    layer : array_like of int, shape (n_atom,)
        -1 bottom, 0 middle (metal), 1 top.
    region : array_like of int, shape (n_atom,)
        -1 unknown, 0 MoS2, 1 WSe2.
    pair : array_like of int, shape (n_atom,), optional
        Index of the top/bottom partner chalcogen site, -1 for none.
    flag : array_like of int, shape (n_atom,), optional
        Bit flags: 1 closer than the minimum distance to a neighbour, 2 off its layer
        by more than 1 Å.
    cross_section : mapping of str to float, optional
        Integrated height per species [Å²]; stored as ``cross_section(element)``.
    true_index : array_like of int, shape (n_atom,), optional
        Index of the matching atom of a ground-truth model, -1 for none.
    **attrs
        Further attributes, among them ``R1`` and ``R`` (floats >= 0).

    Returns
    -------
    xarray.Dataset
        A validated AtomModel (see ``describe("AtomModel")``).
    """
    coords = {}
    variables = {
        "position": position,
        "species": species,
        "b_factor": b_factor,
        "layer": layer,
        "region": region,
        "pair": pair,
        "flag": flag,
        "true_index": true_index,
    }
    if cross_section:
        coords["element"] = list(cross_section)
        variables["cross_section"] = list(cross_section.values())
    return _build("AtomModel", variables=variables, coords=coords, attrs=attrs)


def make_strain(
    *,
    displacement: ArrayLike,
    strain: ArrayLike,
    z: ArrayLike,
    y: ArrayLike,
    x: ArrayLike,
    position: ArrayLike | None = None,
    region: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid Strain Dataset.

    Parameters
    ----------
    displacement : array_like of shape (n_atom, 3)
        Displacement (x, y, z) of each atom from its reference site [Å].
    strain : array_like of shape (6, nz, ny, nx)
        Strain tensor components xx, yy, zz, xy, xz, yz (in this order) on the grid [1];
        NaN outside the sample.
    z, y, x : array_like of shape (nz,), (ny,), (nx,)
        Grid coordinates [Å], strictly increasing.
    position : array_like of shape (n_atom, 3), optional
        Positions of the atoms [Å].
    region : array_like of int, shape (n_atom,), optional
        -1 unknown, 0 MoS2, 1 WSe2.
    **attrs
        Further attributes, stored as they are.

    Returns
    -------
    xarray.Dataset
        A validated Strain (see ``describe("Strain")``).
    """
    variables = {
        "displacement": displacement,
        "strain": strain,
        "position": position,
        "region": region,
    }
    return _build("Strain", variables=variables, coords={"z": z, "y": y, "x": x}, attrs=attrs)


def make_phonons(
    *,
    energy: ArrayLike | None = None,
    dos: ArrayLike | None = None,
    pdos: Mapping[str, ArrayLike] | None = None,
    spectral_function: ArrayLike | None = None,
    q_distance: ArrayLike | None = None,
    frequency: ArrayLike | None = None,
    participation_ratio: ArrayLike | None = None,
    interface_participation: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid Phonons Dataset.

    Parameters
    ----------
    energy : array_like of shape (n_energy,), optional
        Energy grid [meV], strictly increasing; needed with ``dos``, ``pdos`` or
        ``spectral_function``.
    dos : array_like of shape (n_energy,), optional
        Density of states [1/meV].
    pdos : mapping of str to array_like of shape (n_energy,), optional
        Partial density of states per species [1/meV]; stored as
        ``pdos(species, energy)`` in the mapping's order.
    spectral_function : array_like of shape (n_q, n_energy), optional
        Unfolded spectral function along a q path [1/meV].
    q_distance : array_like of shape (n_q,), optional
        Distance along the q path [1/Å].
    frequency : array_like of shape (n_mode,), optional
        Mode energies [meV]; negative for imaginary modes.
    participation_ratio, interface_participation : array_like of shape (n_mode,), optional
        Participation ratio and weight on interface atoms of each mode, in [0, 1].
    **attrs
        Further attributes, stored as they are.

    Returns
    -------
    xarray.Dataset
        A validated Phonons (at least ``dos`` or ``frequency``; see
        ``describe("Phonons")``).
    """
    coords = {"energy": energy, "q_distance": q_distance}
    variables = {
        "dos": dos,
        "spectral_function": spectral_function,
        "frequency": frequency,
        "participation_ratio": participation_ratio,
        "interface_participation": interface_participation,
    }
    if pdos:
        coords["species"] = list(pdos)
        variables["pdos"] = np.stack([np.asarray(v) for v in pdos.values()])
    return _build("Phonons", variables=variables, coords=coords, attrs=attrs)


_PEAK_KEYS = ("centre", "centre_error", "width", "width_error", "height", "height_error")


def make_eels(
    *,
    spectra: ArrayLike,
    energy: ArrayLike,
    position: ArrayLike,
    background: ArrayLike | None = None,
    cluster: ArrayLike | None = None,
    average: ArrayLike | None = None,
    peaks: Mapping[str, ArrayLike] | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid EELS Dataset.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy)
        Spectra of the line scan [counts].
    energy : array_like of shape (n_energy,)
        Energy loss [meV], strictly increasing.
    position : array_like of shape (n_position,)
        Position along the scan [nm].
    background : array_like of shape (n_position, n_energy), optional
        Fitted background [counts].
    cluster : array_like of int, shape (n_position,), optional
        Cluster label of each spectrum.
    average : array_like of shape (n_group, n_energy), optional
        Average spectrum of each group [counts].
    peaks : mapping of str to array_like of shape (n_group, n_peak), optional
        Fitted peaks with keys among ``centre``, ``centre_error``, ``width``,
        ``width_error`` [meV], ``height``, ``height_error`` [counts]; stored as
        ``peak_<key>``. NaN where a peak was not fitted.
    **attrs
        Further attributes, stored as they are.

    Returns
    -------
    xarray.Dataset
        A validated EELS (see ``describe("EELS")``).
    """
    peaks = dict(peaks or {})
    unknown = sorted(set(peaks) - set(_PEAK_KEYS))
    if unknown:
        raise InputError(f"Unknown peak key(s) {unknown}; expected keys among {list(_PEAK_KEYS)}.")
    variables = {
        "spectra": spectra,
        "background": background,
        "cluster": cluster,
        "average": average,
        **{f"peak_{key}": value for key, value in peaks.items()},
    }
    coords = {"energy": energy, "position": position}
    return _build("EELS", variables=variables, coords=coords, attrs=attrs)
