"""Validation of hpcaet Datasets against the schema of their kind.

:func:`validate` checks a Dataset against its entry in :data:`~hpcaet.io.schemas.SCHEMAS`
and raises one :class:`~hpcaet.errors.SchemaError` that lists every problem, each naming
the variable, coordinate or attribute, what was found, what was expected and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from ase.data import chemical_symbols

from hpcaet.errors import InputError, SchemaError
from hpcaet.io.schemas import (
    _ATTR_CHECK_TEXT,
    KINDS,
    LEGACY_MEANINGS,
    SCHEMA_VERSION,
    SCHEMAS,
    VACANCY,
    AttributeSpec,
)

__all__ = ["validate"]

#: Valid species labels: the chemical symbols of ASE and the vacancy label.
_SYMBOLS = frozenset(chemical_symbols[1:]) | {VACANCY}

#: Lower bound of each attribute check and whether the bound itself is allowed.
_ATTR_CHECK_LOW = {
    "positive": (0.0, False),
    "nonnegative": (0.0, True),
    "at_least_one": (1.0, True),
}


def _problem(where: str, found: str, expected: str, fix: str) -> str:
    return f"{where}: found {found}; expected {expected}. Fix: {fix}."


def _where(bad: np.ndarray, dims: tuple[str, ...]) -> str:
    """`` at <dim> index [..]`` for the positions along the first dim where ``bad``."""
    rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1)) if bad.ndim else []
    if len(rows) == 0:
        return ""
    shown = ", ".join(str(int(i)) for i in rows[:10])
    more = f", ... ({len(rows)} in all)" if len(rows) > 10 else ""
    return f" at {dims[0]} index [{shown}{more}]"


def _shown(values: np.ndarray) -> str:
    unique = [v.item() if isinstance(v, np.generic) else v for v in np.unique(values)]
    return ", ".join(repr(v) for v in unique[:10]) + (", ..." if len(unique) > 10 else "")


def _dtype_ok(var: xr.DataArray, dtype: str) -> bool:
    """Whether ``var`` has a dtype of kind ``dtype``; reads values only for object arrays."""
    if dtype == "float":
        return np.issubdtype(var.dtype, np.floating)
    if dtype == "int":
        return np.issubdtype(var.dtype, np.integer)
    if var.dtype.kind in "US":
        return True
    return var.dtype.kind == "O" and all(isinstance(v, str) for v in np.ravel(var.values))


def _units_text(spec) -> str:
    return f" [{spec.units}]" if spec.units else ""


# Each value check maps (values, spec, ds) to (mask of bad entries, what they are,
# what was expected, how to fix it); the mask's first axis is the spec's first dim.
def _check_finite(values, spec, ds):
    expected = f"finite numbers{_units_text(spec)}"
    fix = "replace or drop those entries before building the Dataset"
    return ~np.isfinite(values), "non-finite value(s) (NaN or inf)", expected, fix


def _check_no_inf(values, spec, ds):
    expected = f"finite numbers or NaN{_units_text(spec)}"
    return np.isinf(values), "infinite value(s)", expected, "set undefined entries to NaN"


def _check_range(low: float, high: float, text: str):
    def check(values, spec, ds):
        with np.errstate(invalid="ignore"):
            bad = (values < low) | (values > high)
        expected = f"values {text}{_units_text(spec)}"
        fix = "check the sign and normalisation of the computation that produced them"
        return bad, f"value(s) out of range ({_shown(values[bad])})", expected, fix

    return check


def _check_increasing(values, spec, ds):
    bad = np.zeros(values.shape, dtype=bool)
    bad[1:] = ~(np.diff(values) > 0)
    expected = "strictly increasing values"
    return bad, "value(s) not above the one before", expected, "sort along it (ds.sortby)"


def _check_symbol(values, spec, ds):
    bad = ~np.isin(np.asarray(values, dtype=str), sorted(_SYMBOLS))
    expected = (
        "a chemical symbol from ase.data.chemical_symbols (case-sensitive, e.g. 'Mo', 'S', "
        f"'W', 'Se') or {VACANCY!r} for a vacancy site"
    )
    fix = f"correct the symbols; keep vacancies as explicit sites labelled {VACANCY!r}"
    return bad, f"unknown species ({_shown(values[bad])})", expected, fix


def _check_flags(values, spec, ds):
    bad = ~np.isin(values, spec.flag_values)
    expected = f"one of {list(spec.flag_values)} ({spec.flag_meanings})"
    found = f"value(s) outside the codes ({_shown(values[bad])})"
    return bad, found, expected, "map the labels onto these codes"


def _check_bits(values, spec, ds):
    bad = (values < 0) | ((values.astype(np.int64) & ~sum(spec.flag_masks)) != 0)
    expected = f"sums of the bits {list(spec.flag_masks)} ({spec.flag_meanings})"
    found = f"value(s) with undocumented bits ({_shown(values[bad])})"
    return bad, found, expected, "set only the documented bits"


def _check_atom_index(values, spec, ds):
    n = ds.sizes.get("atom", 0)
    bad = (values < -1) | (values >= n)
    expected = f"-1 (none) or an atom index in 0 .. {n - 1}"
    fix = "renumber the indices after removing or reordering atoms"
    return bad, f"index(es) out of range ({_shown(values[bad])})", expected, fix


def _check_spacing(values, spec, ds):
    step = ds.attrs.get(spec.spacing_attr)
    bad = np.zeros(values.shape, dtype=bool)
    if isinstance(step, (int, float, np.integer, np.floating)) and step > 0:
        bad[1:] = ~np.isclose(np.diff(values), float(step), rtol=1e-6, atol=0.0)
    expected = f"a step of attrs[{spec.spacing_attr!r}] = {step!r} between neighbours"
    fix = f"use the pixel centres (i - n // 2) * {spec.spacing_attr}"
    return bad, "step(s) of another size before them", expected, fix


_CHECKS = {
    "finite": _check_finite,
    "no_inf": _check_no_inf,
    "nonnegative": _check_range(0.0, np.inf, ">= 0"),
    "fraction": _check_range(0.0, 1.0, "in [0, 1]"),
    "increasing": _check_increasing,
    "symbol": _check_symbol,
    "flags": _check_flags,
    "bits": _check_bits,
    "atom_index": _check_atom_index,
    "spacing": _check_spacing,
}


def _value_problems(spec, values: np.ndarray, ds: xr.Dataset, where: str) -> list[str]:
    """Problems of the values of a variable or coordinate ``spec``."""
    out = []
    for check in spec.checks:
        bad, what, expected, fix = _CHECKS[check](values, spec, ds)
        if bad.any():
            found = f"{int(bad.sum())} {what}{_where(bad, spec.dims)}"
            out.append(_problem(where, found, expected, fix))
    return out


def _units_problem(where: str, attrs: Mapping, units: str | None, key: str = "units") -> list[str]:
    if units is None or attrs.get(key) == units:
        return []
    found = f"{key}={attrs[key]!r}" if key in attrs else f"no {key!r} attribute"
    fix = f"convert the values to {units} and set attrs[{key!r}] = {units!r}"
    return [_problem(where, found, f"{key}={units!r}", fix)]


def _field_problems(
    spec, var: xr.DataArray, ds: xr.Dataset, where: str, *, builder: str, check_values: bool
) -> list[str]:
    dims = tuple(var.dims)
    if dims != spec.dims:
        fix = f"transpose or rename its dimensions, or rebuild with {builder}"
        return [_problem(where, f"dims {dims}", f"dims {spec.dims}", fix)]
    if not _dtype_ok(var, spec.dtype):
        fix = f"cast it, e.g. .astype({spec.storage or spec.dtype!r})"
        return [_problem(where, f"dtype {var.dtype}", f"a {spec.dtype} dtype", fix)]
    out = _units_problem(where, var.attrs, spec.units)
    values_attr = spec.values
    if values_attr is not None and list(var.values) != list(values_attr):
        fix = f"use the labels {list(values_attr)} in this order"
        out.append(_problem(where, f"labels {list(var.values)}", f"{list(values_attr)}", fix))
    if _earlier_bits(spec, var.attrs):
        return out + (
            _value_problems(spec, np.asarray(var.values), ds, where) if check_values else []
        )
    for key in ("flag_values", "flag_masks"):
        wanted = getattr(spec, key, None)
        if wanted is not None and list(np.ravel(var.attrs.get(key, []))) != list(wanted):
            found = f"{key}={var.attrs.get(key)!r}"
            fix = f"set attrs[{key!r}] and attrs['flag_meanings'] = {spec.flag_meanings!r}"
            out.append(_problem(where, found, f"{key}={list(wanted)}", fix))
    accepted = (spec.flag_meanings, *LEGACY_MEANINGS.get(spec.flag_meanings or "", ()))
    if spec.flag_meanings and var.attrs.get("flag_meanings") not in accepted:
        found = f"flag_meanings={var.attrs.get('flag_meanings')!r}"
        fix = f"set attrs['flag_meanings'] = {spec.flag_meanings!r}"
        out.append(_problem(where, found, f"flag_meanings={spec.flag_meanings!r}", fix))
    if check_values:
        out += _value_problems(spec, np.asarray(var.values), ds, where)
    return out


def _earlier_bits(spec, attrs: Mapping) -> bool:
    """Bit flags written when the schema had only the first of its bits (still valid)."""
    if spec.flag_masks is None or not spec.flag_meanings:
        return False
    found = [int(v) for v in np.ravel(attrs.get("flag_masks", []))]
    n = len(found)
    words = spec.flag_meanings.split()
    return (
        0 < n < len(spec.flag_masks)
        and found == list(spec.flag_masks[:n])
        and attrs.get("flag_meanings") == " ".join(words[:n])
    )


def _attribute_problems(spec: AttributeSpec, attrs: Mapping) -> list[str]:
    where = f"attribute {spec.name!r}"
    if spec.name not in attrs:
        if not spec.required:
            return []
        units = f" [{spec.units}]" if spec.units else ""
        expected = f"a {spec.dtype}{units}: {spec.description}"
        fix = f"set ds.attrs[{spec.name!r}]"
        if spec.units is not None:
            fix += f" and ds.attrs['{spec.name}_units'] = {spec.units!r}"
        return [_problem(where, "nothing", expected, fix)]
    value = attrs[spec.name]
    is_bool = isinstance(value, (bool, np.bool_))
    if spec.dtype == "str":
        ok = isinstance(value, str)
    elif spec.dtype == "int":
        ok = isinstance(value, (int, np.integer)) and not is_bool
    else:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not is_bool
    if not ok:
        fix = f"store a single {spec.dtype} value"
        return [_problem(where, f"{value!r} of type {type(value).__name__}", spec.dtype, fix)]
    out = _units_problem(where, attrs, spec.units, key=f"{spec.name}_units")
    if spec.check is not None:
        low, inclusive = _ATTR_CHECK_LOW[spec.check]
        if not (np.isfinite(value) and (value >= low if inclusive else value > low)):
            expected = f"a finite value {_ATTR_CHECK_TEXT[spec.check]}"
            fix = "check the calibration or the configuration that set it"
            out.append(_problem(where, repr(value), expected, fix))
    return out


def validate(ds: xr.Dataset, kind: str | None = None, *, check_values: bool = True) -> xr.Dataset:
    """Check a Dataset against the schema of its kind.

    Parameters
    ----------
    ds : xarray.Dataset
        The Dataset to check.
    kind : str, optional
        Expected kind, one of :data:`~hpcaet.io.schemas.KINDS`. Defaults to
        ``ds.attrs["hpcaet_kind"]``; when given, that attribute must agree with it.
    check_values : bool, default True
        Also check the values (finite, ranges, labels, species). False checks only the
        structure (dims, dtypes, units, attributes) and reads no data, which keeps a
        lazily opened file lazy.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself, so that calls can be chained.

    Raises
    ------
    SchemaError
        One error that lists every problem found, each naming the variable, coordinate
        or attribute, what was found, what was expected and how to fix it.
    InputError
        If ``ds`` is not a Dataset or ``kind`` is not a known kind.

    Examples
    --------
    >>> import numpy as np
    >>> from hpcaet.io import make_volume
    >>> ds = make_volume(np.zeros((2, 3, 3)), voxel_size=0.32, algorithm="GENFIRE")
    >>> validate(ds) is ds
    True
    """
    if not isinstance(ds, xr.Dataset):
        raise InputError(
            f"validate expects an xarray.Dataset; got {type(ds).__name__}. "
            "Wrap a DataArray with .to_dataset(name=...) or build one with a make_* function."
        )
    if kind is not None and kind not in SCHEMAS:
        raise InputError(f"Unknown kind {kind!r}; expected one of {KINDS}.")
    stored = ds.attrs.get("hpcaet_kind")
    problems = []
    if kind is None:
        if stored is None:
            raise SchemaError(
                "Dataset has no attrs['hpcaet_kind'], so its schema is unknown; expected one "
                f"of {KINDS}. Build it with a make_* function of hpcaet.io or set the attribute."
            )
        if stored not in SCHEMAS:
            raise SchemaError(
                f"Dataset has attrs['hpcaet_kind'] = {stored!r}; expected one of {KINDS}. "
                "Correct the attribute or rebuild the Dataset with a make_* function."
            )
        kind = stored
    elif stored != kind:
        found = "no such attribute" if stored is None else f"{stored!r}"
        fix = f"pass the right Dataset, or set ds.attrs['hpcaet_kind'] = {kind!r}"
        problems.append(_problem("attribute 'hpcaet_kind'", found, f"{kind!r}", fix))
    spec = SCHEMAS[kind]
    version = ds.attrs.get("hpcaet_schema_version")
    if not (isinstance(version, (int, np.integer)) and version == SCHEMA_VERSION):
        fix = (
            "upgrade hpcaet to read it"
            if isinstance(version, (int, np.integer)) and version > SCHEMA_VERSION
            else f"set ds.attrs['hpcaet_schema_version'] = {SCHEMA_VERSION}"
        )
        problems.append(
            _problem("attribute 'hpcaet_schema_version'", repr(version), str(SCHEMA_VERSION), fix)
        )
    for group in spec.one_of:
        if not any(name in ds.data_vars for name in group):
            fix = f"add one of them, e.g. with {spec.builder}"
            problems.append(_problem(f"variables {group}", "none", "at least one", fix))
    for coord in spec.coordinates:
        where = f"coordinate {coord.name!r}"
        if not all(dim in ds.dims for dim in coord.dims):
            continue
        if coord.name not in ds.coords:
            if coord.required:
                expected = f"{coord.dtype} values{f' [{coord.units}]' if coord.units else ''}"
                fix = f"assign it (ds.assign_coords) or rebuild with {spec.builder}"
                problems.append(_problem(where, "nothing", expected, fix))
            continue
        problems += _field_problems(
            coord, ds.coords[coord.name], ds, where, builder=spec.builder, check_values=check_values
        )
    for var in spec.variables:
        where = f"variable {var.name!r}"
        if var.name not in ds.data_vars:
            if var.required:
                expected = f"dims {var.dims}: {var.description}"
                fix = f"add it, e.g. with {spec.builder}"
                problems.append(_problem(where, "nothing", expected, fix))
            continue
        problems += _field_problems(
            var, ds[var.name], ds, where, builder=spec.builder, check_values=check_values
        )
    for attr in spec.attributes:
        problems += _attribute_problems(attr, ds.attrs)
    for low, high in spec.less_than:
        a, b = ds.attrs.get(low), ds.attrs.get(high)
        numbers = (int, float, np.integer, np.floating)
        if isinstance(a, numbers) and isinstance(b, numbers) and not a < b:
            where = f"attributes {low!r} and {high!r}"
            fix = "check the calibration or configuration that set them"
            problems.append(_problem(where, f"{a!r} and {b!r}", f"{low} < {high}", fix))
    _raise(kind, problems)
    return ds


def _raise(kind: str, problems: list[str]) -> None:
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise SchemaError(
            f"Dataset does not follow the hpcaet {kind} schema (version {SCHEMA_VERSION}); "
            f"{len(problems)} problem(s):\n{listing}"
        )
