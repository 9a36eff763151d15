"""Schema-driven assembly of a Dataset: the one mechanism behind every ``make_*`` builder.

:func:`_build` checks each array against its :class:`~hpcaet.io.schemas.FieldSpec`
(shape, dtype, finiteness), adds the coordinates, units and attributes the schema fixes,
and validates the result; :mod:`hpcaet.io.builders` holds one thin builder per kind.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from hpcaet.errors import InputError
from hpcaet.io.schemas import SCHEMA_VERSION, SCHEMAS, FieldSpec
from hpcaet.io.validation import _attribute_problems, _raise, _shown, validate


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
        else:
            arr = _default_coordinate(cspec, sizes, ds_attrs, owner=owner[cspec.dims[0]])
            if arr is None:
                continue
        coord_vars[cspec.name] = xr.Variable(cspec.dims, arr, _field_attrs(cspec))
    if given:
        raise InputError(f"Unknown coordinate(s) {sorted(given)} for {kind}.")
    ds = xr.Dataset(data_vars, coords=coord_vars, attrs=ds_attrs)
    return validate(ds, kind)


def _default_coordinate(
    cspec: FieldSpec, sizes: Mapping[str, int], attrs: Mapping[str, object], *, owner: str
) -> np.ndarray | None:
    """The values the schema fixes for coordinate ``cspec`` (None: it has none)."""
    n = sizes[cspec.dims[0]]
    if cspec.values is not None:
        if n != len(cspec.values):
            raise InputError(
                f"{owner} has {n} entries along {cspec.dims[0]!r}; expected "
                f"{len(cspec.values)} ({', '.join(cspec.values)}) in this order."
            )
        return np.array(cspec.values)
    if cspec.index:
        return np.arange(n, dtype=np.int64)
    if cspec.spacing_attr is not None:
        return (np.arange(n) - n // 2) * float(attrs[cspec.spacing_attr])
    if cspec.required:
        raise InputError(
            f"Missing the {cspec.name!r} coordinate [{cspec.units}] of dimension "
            f"{cspec.dims[0]!r} used by {owner}; pass {cspec.name}=..."
        )
    return None


def complete_coordinates(ds: xr.Dataset) -> xr.Dataset:
    """Add the coordinates the schema fixes for dimensions that lack them.

    A stage that adds variables on new dimensions (``frame``, ``shift_axis``) to a
    Dataset made by a ``make_*`` builder calls this before writing it, so the file is
    valid whether or not the input carried those dimensions.
    """
    spec = SCHEMAS[str(ds.attrs["hpcaet_kind"])]
    sizes = {str(k): int(v) for k, v in ds.sizes.items()}
    new = {}
    for cspec in spec.coordinates:
        if cspec.name in ds.coords or not all(d in sizes for d in cspec.dims):
            continue
        arr = _default_coordinate(cspec, sizes, ds.attrs, owner=f"dimension {cspec.dims[0]!r}")
        if arr is not None:
            new[cspec.name] = xr.Variable(cspec.dims, arr, _field_attrs(cspec))
    return ds.assign_coords(new) if new else ds
