"""Schemas of the Datasets that hpcaet stages exchange, their validation and builders.

Every stage reads and writes :class:`xarray.Dataset` objects of one of six *kinds*
(:data:`KINDS`). A kind is described here as data (:data:`SCHEMAS`): its coordinates,
variables and attributes, each with dims, dtype kind (``float``, ``int`` or ``str``),
units and value checks. :func:`validate` checks a Dataset against its kind and raises one
:class:`~hpcaet.errors.SchemaError` listing every problem; :func:`describe` renders a
kind as reStructuredText tables for the documentation; the ``make_*`` builders turn
numpy arrays into valid Datasets with every coordinate, unit and attribute filled in.

Conventions
-----------
* Every Dataset has the attributes ``hpcaet_kind`` (a name in :data:`KINDS`) and
  ``hpcaet_schema_version`` (int, :data:`SCHEMA_VERSION`).
* Every numeric variable and coordinate has a ``units`` attribute holding a fixed
  string (``"Å"``, ``"meV"``, ``"1"`` for dimensionless numbers and integer indices).
  String labels (``species``, ``angle``, ...) carry no units.
* A Dataset attribute with units, e.g. ``pixel_size``, is accompanied by a string
  attribute with the suffix ``_units``: ``pixel_size_units = "Å"``. Validation checks
  that it is present and equal to the schema's units.
* Variables and attributes not in the schema are allowed (newer writers may add them);
  the known ones are validated whenever present.
* Categorical integer variables follow the CF conventions: ``flag_values`` with
  ``flag_meanings`` for enumerations, ``flag_masks`` with ``flag_meanings`` for bit
  flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr
from ase.data import chemical_symbols
from numpy.typing import ArrayLike

from hpcaet.errors import InputError, SchemaError
from hpcaet.geometry import EULER_AXES

__all__ = [
    "SCHEMA_VERSION",
    "KINDS",
    "SCHEMAS",
    "VACANCY",
    "FieldSpec",
    "AttributeSpec",
    "KindSpec",
    "validate",
    "describe",
    "make_tilt_series",
    "make_volume",
    "make_atom_model",
    "make_strain",
    "make_phonons",
    "make_eels",
]

#: Version of the schemas below; stored as ``attrs["hpcaet_schema_version"]``.
SCHEMA_VERSION = 1

#: Species label of an explicit vacancy site in an AtomModel.
VACANCY = "vac"

_SYMBOLS = frozenset(chemical_symbols[1:]) | {VACANCY}


@dataclass(frozen=True)
class FieldSpec:
    """A coordinate or data variable of a kind.

    Attributes
    ----------
    name, dims : str, tuple of str
        Name and dimensions, in order.
    dtype : {"float", "int", "str"}
        Kind of dtype; any precision of that kind is valid.
    units : str or None
        Value of the ``units`` attribute; None for string labels.
    description : str
        Short text, stored as ``long_name`` by the builders.
    required : bool
        A required variable must be present; a required coordinate must be present
        whenever all of its dims occur in the Dataset.
    checks : tuple of str
        Value checks: ``finite``, ``no_inf``, ``nonnegative``, ``fraction``,
        ``increasing``, ``symbol``, ``flags``, ``bits``, ``atom_index``, ``spacing``.
    values : tuple of str, optional
        The fixed labels of a label coordinate, in order.
    index : bool
        An integer index ``0 .. n-1`` that builders fill in.
    spacing_attr : str, optional
        Attribute that the step between neighbouring values must equal; builders fill
        in the pixel centres ``(i - n // 2) * spacing``.
    storage : str, optional
        The numpy dtype builders cast to (e.g. ``"int8"``).
    flag_values, flag_masks, flag_meanings : optional
        CF attributes of a categorical variable (enumeration or bit flags).
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str | None
    description: str
    required: bool = False
    checks: tuple[str, ...] = ()
    values: tuple[str, ...] | None = None
    index: bool = False
    spacing_attr: str | None = None
    storage: str | None = None
    flag_values: tuple[int, ...] | None = None
    flag_masks: tuple[int, ...] | None = None
    flag_meanings: str | None = None


@dataclass(frozen=True)
class AttributeSpec:
    """A Dataset attribute; ``check`` is one of ``positive``, ``nonnegative``, ``at_least_one``."""

    name: str
    dtype: str
    units: str | None
    description: str
    required: bool = False
    check: str | None = None


@dataclass(frozen=True)
class KindSpec:
    """The schema of one kind of Dataset.

    ``one_of`` lists groups of variables of which at least one must be present;
    ``less_than`` lists attribute pairs ``(a, b)`` that must satisfy ``a < b``.
    """

    name: str
    description: str
    builder: str
    coordinates: tuple[FieldSpec, ...]
    variables: tuple[FieldSpec, ...]
    attributes: tuple[AttributeSpec, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()
    less_than: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()

    def variable(self, name: str) -> FieldSpec:
        """The spec of variable ``name`` (KeyError when the kind has none)."""
        return {v.name: v for v in self.variables}[name]


# --------------------------------------------------------------------------- tables
def _index(name: str, description: str) -> FieldSpec:
    return FieldSpec(name, (name,), "int", "1", description, required=True, index=True)


def _labels(name: str, values: tuple[str, ...], description: str) -> FieldSpec:
    return FieldSpec(name, (name,), "str", None, description, required=True, values=values)


def _grid(name: str, spacing_attr: str | None) -> FieldSpec:
    checks = ("finite", "increasing") + (("spacing",) if spacing_attr else ())
    text = f"{name} of the pixel or voxel centres"
    return FieldSpec(name, (name,), "float", "Å", text, True, checks, spacing_attr=spacing_attr)


def _coord(
    name: str,
    dims: tuple[str, ...],
    dtype: str,
    units: str | None,
    description: str,
    *,
    required: bool = True,
    checks: tuple[str, ...] = (),
) -> FieldSpec:
    return FieldSpec(name, dims, dtype, units, description, required=required, checks=checks)


def _var(
    name: str,
    dims: tuple[str, ...],
    dtype: str,
    units: str | None,
    description: str,
    *checks: str,
    **options,
) -> FieldSpec:
    return FieldSpec(name, tuple(dims), dtype, units, description, checks=checks, **options)


def _attr(
    name: str,
    dtype: str,
    units: str | None,
    description: str,
    check: str | None = None,
    *,
    required: bool = False,
) -> AttributeSpec:
    return AttributeSpec(name, dtype, units, description, required=required, check=check)


# The tables below are aligned by hand for reading; keep the formatter away from them.
# fmt: off
_TILT = ("tilt",)
_IMAGE = ("tilt", "y", "x")
_SHIFT = ("tilt", "shift_axis")
_LAYER = dict(storage="int8", flag_values=(-1, 0, 1), flag_meanings="bottom middle top")
_REGION = dict(storage="int8", flag_values=(-1, 0, 1), flag_meanings="unknown MoS2 WSe2")

_TILT_SERIES = KindSpec(
    name="TiltSeries",
    description="A STEM ADF tilt series: raw frames and/or one image per tilt.",
    builder="make_tilt_series",
    coordinates=(
        _index("tilt", "tilt index"),
        _index("frame", "frame index within a tilt"),
        _grid("y", "pixel_size"),
        _grid("x", "pixel_size"),
        _labels("angle", EULER_AXES, "Euler angle axes (Z, Y, X; hpcaet.geometry)"),
        _labels("stage_axis", ("alpha", "beta"), "stage tilt axes"),
        _labels("shift_axis", ("x", "y"), "in-plane shift components"),
    ),
    variables=(
        _var("frames", ("tilt", "frame", "y", "x"), "float", "counts", "raw frames", "finite"),
        _var("images", _IMAGE, "float", "counts", "one image per tilt", "finite"),
        _var("euler", ("tilt", "angle"), "float", "deg", "Euler angles of each image",
             "finite", required=True),
        _var("stage_tilt", ("tilt", "stage_axis"), "float", "deg", "stage readings", "finite"),
        _var("true_euler", ("tilt", "angle"), "float", "deg", "true Euler angles", "finite"),
        _var("true_drift", ("tilt", "frame", "shift_axis"), "float", "pixel",
             "true drift of each frame", "finite"),
        _var("true_offset", _SHIFT, "float", "Å", "true image offset", "finite"),
        _var("true_vibration_direction", _TILT, "float", "deg",
             "true in-plane direction of the vibration", "finite"),
        _var("true_vibration_amplitude", _TILT, "float", "Å", "true vibration amplitude",
             "finite", "nonnegative"),
        _var("true_vibration_width", _TILT, "float", "Å", "true vibration kernel width",
             "finite", "nonnegative"),
        _var("true_background", _IMAGE, "float", "counts", "true smooth background", "finite"),
        _var("clean_images", _IMAGE, "float", "counts", "noise-free images", "finite"),
    ),
    attributes=(
        _attr("pixel_size", "float", "Å", "pixel size", "positive", required=True),
        _attr("voltage", "float", "kV", "accelerating voltage", "positive", required=True),
        _attr("convergence_angle", "float", "mrad", "probe convergence semi-angle",
              "positive", required=True),
        _attr("detector_inner_angle", "float", "mrad", "ADF detector inner angle",
              "nonnegative", required=True),
        _attr("detector_outer_angle", "float", "mrad", "ADF detector outer angle",
              "positive", required=True),
        _attr("dose", "float", "e/Å²", "total dose over the series", "positive", required=True),
        _attr("read_noise", "float", "counts", "detector read noise per pixel", "nonnegative"),
        _attr("dwell_time", "float", "µs", "dwell time per pixel", "positive"),
    ),
    one_of=(("images", "frames"),),
    less_than=(("detector_inner_angle", "detector_outer_angle"),),
    notes=(
        "An all-zero image is valid (a blank frame is data, not a schema error).",
        "x and y are the pixel centres (i - n // 2) * pixel_size; their spacing must "
        "equal pixel_size.",
        "The true_* variables and clean_images are the ground truth of the simulator.",
    ),
)

_VOLUME = KindSpec(
    name="Volume",
    description="A reconstructed 3D density.",
    builder="make_volume",
    coordinates=(
        _grid("z", "voxel_size"),
        _grid("y", "voxel_size"),
        _grid("x", "voxel_size"),
        _index("iteration", "iteration of the reconstruction"),
    ),
    variables=(
        _var("density", ("z", "y", "x"), "float", "1/Å", "reconstructed density", "finite",
             required=True),
        _var("error_history", ("iteration",), "float", "1", "error per iteration", "finite"),
        _var("rfree_history", ("iteration",), "float", "1", "R-free per iteration", "finite"),
    ),
    attributes=(
        _attr("voxel_size", "float", "Å", "voxel size", "positive", required=True),
        _attr("algorithm", "str", None, "reconstruction algorithm", required=True),
        _attr("iterations", "int", None, "iterations run", "nonnegative"),
        _attr("oversampling", "float", None, "Fourier oversampling ratio", "at_least_one"),
    ),
    notes=("z, y and x are voxel centres whose spacing must equal voxel_size.",),
)

_ATOM_MODEL = KindSpec(
    name="AtomModel",
    description="Traced and refined atoms; vacancies are explicit sites.",
    builder="make_atom_model",
    coordinates=(
        _labels("xyz", ("x", "y", "z"), "Cartesian components"),
        _coord("element", ("element",), "str", None, "species with a cross-section",
                checks=("symbol",)),
    ),
    variables=(
        _var("position", ("atom", "xyz"), "float", "Å", "atom position", "finite",
             required=True),
        _var("species", ("atom",), "str", None,
             f"chemical symbol of each site, {VACANCY!r} for a vacancy", "symbol",
             required=True),
        _var("b_factor", ("atom",), "float", "Å²", "B-factor", "finite", "nonnegative",
             required=True),
        _var("layer", ("atom",), "int", None, "layer of the site", "flags", required=True,
             **_LAYER),
        _var("region", ("atom",), "int", None, "material region", "flags", required=True,
             **_REGION),
        _var("pair", ("atom",), "int", None, "index of the top/bottom partner site, -1 none",
             "atom_index", storage="int32"),
        _var("flag", ("atom",), "int", None, "quality bits: too_close = nearer than the "
             "minimum distance, off_layer = over 1 Å off its layer", "bits", storage="int8",
             flag_masks=(1, 2), flag_meanings="too_close off_layer"),
        _var("cross_section", ("element",), "float", "Å²", "integrated height per species",
             "finite", "nonnegative"),
        _var("true_index", ("atom",), "int", None, "index of the matching true atom, -1 none",
             storage="int32"),
    ),
    attributes=(
        _attr("R1", "float", None, "R1 of the dynamic refinement", "nonnegative"),
        _attr("R", "float", None, "R factor of the model against the data", "nonnegative"),
    ),
)

_STRAIN = KindSpec(
    name="Strain",
    description="Displacements of the atoms and the strain tensor field.",
    builder="make_strain",
    coordinates=(
        _labels("xyz", ("x", "y", "z"), "Cartesian components"),
        _labels("component", ("xx", "yy", "zz", "xy", "xz", "yz"), "tensor components"),
        _grid("z", None),
        _grid("y", None),
        _grid("x", None),
    ),
    variables=(
        _var("displacement", ("atom", "xyz"), "float", "Å", "displacement from the reference",
             "finite", required=True),
        _var("position", ("atom", "xyz"), "float", "Å", "atom position", "finite"),
        _var("strain", ("component", "z", "y", "x"), "float", "1",
             "strain tensor, NaN outside the sample", "no_inf", required=True),
        _var("region", ("atom",), "int", None, "material region", "flags", **_REGION),
    ),
    notes=("strain is NaN where the grid lies outside the sample; it is never infinite.",),
)

_PHONONS = KindSpec(
    name="Phonons",
    description="Phonon densities of states, unfolded spectra and mode properties.",
    builder="make_phonons",
    coordinates=(
        _coord("energy", ("energy",), "float", "meV", "phonon energy",
                checks=("finite", "increasing")),
        _index("mode", "mode index"),
        _index("q", "q-point index along the path"),
        _coord("q_distance", ("q",), "float", "1/Å", "distance along the q path",
                required=False, checks=("finite",)),
        _coord("species", ("species",), "str", None, "chemical symbol",
                checks=("symbol",)),
    ),
    variables=(
        _var("dos", ("energy",), "float", "1/meV", "density of states", "finite",
             "nonnegative"),
        _var("pdos", ("species", "energy"), "float", "1/meV", "partial density of states",
             "finite", "nonnegative"),
        _var("spectral_function", ("q", "energy"), "float", "1/meV",
             "unfolded spectral function", "finite"),
        _var("frequency", ("mode",), "float", "meV", "mode energy (negative: imaginary)",
             "finite"),
        _var("participation_ratio", ("mode",), "float", "1", "participation ratio", "finite",
             "fraction"),
        _var("interface_participation", ("mode",), "float", "1",
             "weight of the mode on interface atoms", "finite", "fraction"),
    ),
    one_of=(("dos", "frequency"),),
)

_PEAK = ("group", "peak")
_EELS = KindSpec(
    name="EELS",
    description="A vibrational EELS line scan, its clusters and fitted peaks.",
    builder="make_eels",
    coordinates=(
        _coord("position", ("position",), "float", "nm", "position along the scan",
                checks=("finite",)),
        _coord("energy", ("energy",), "float", "meV", "energy loss",
                checks=("finite", "increasing")),
        _index("group", "cluster group"),
        _index("peak", "peak index"),
    ),
    variables=(
        _var("spectra", ("position", "energy"), "float", "counts", "spectra", "finite",
             required=True),
        _var("background", ("position", "energy"), "float", "counts", "fitted background",
             "finite"),
        _var("cluster", ("position",), "int", None, "cluster label of each spectrum",
             storage="int32"),
        _var("average", ("group", "energy"), "float", "counts", "average spectrum per group",
             "finite"),
        _var("peak_centre", _PEAK, "float", "meV", "peak centre", "no_inf"),
        _var("peak_centre_error", _PEAK, "float", "meV", "error of the centre", "no_inf",
             "nonnegative"),
        _var("peak_width", _PEAK, "float", "meV", "peak width", "no_inf", "nonnegative"),
        _var("peak_width_error", _PEAK, "float", "meV", "error of the width", "no_inf",
             "nonnegative"),
        _var("peak_height", _PEAK, "float", "counts", "peak height", "no_inf"),
        _var("peak_height_error", _PEAK, "float", "counts", "error of the height", "no_inf",
             "nonnegative"),
    ),
    notes=("Peak parameters are NaN where a peak was not fitted.",),
)
# fmt: on

#: Schema of every kind, by name.
SCHEMAS: dict[str, KindSpec] = {
    spec.name: spec for spec in (_TILT_SERIES, _VOLUME, _ATOM_MODEL, _STRAIN, _PHONONS, _EELS)
}

#: Names of the Dataset kinds.
KINDS: tuple[str, ...] = tuple(SCHEMAS)

_CHECK_TEXT = {
    "finite": "finite",
    "no_inf": "no inf (NaN allowed)",
    "nonnegative": ">= 0",
    "fraction": "in [0, 1]",
    "increasing": "strictly increasing",
    "symbol": f"chemical symbol or {VACANCY!r}",
    "flags": "one of flag_values",
    "bits": "bits of flag_masks",
    "atom_index": "-1 or 0 .. n_atom - 1",
    "spacing": "step = spacing attribute",
}
_ATTR_CHECK_TEXT = {"positive": "> 0", "nonnegative": ">= 0", "at_least_one": ">= 1"}
_ATTR_CHECK_LOW = {
    "positive": (0.0, False),
    "nonnegative": (0.0, True),
    "at_least_one": (1.0, True),
}


# --------------------------------------------------------------------------- validation
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
    for key in ("flag_values", "flag_masks"):
        wanted = getattr(spec, key, None)
        if wanted is not None and list(np.ravel(var.attrs.get(key, []))) != list(wanted):
            found = f"{key}={var.attrs.get(key)!r}"
            fix = f"set attrs[{key!r}] and attrs['flag_meanings'] = {spec.flag_meanings!r}"
            out.append(_problem(where, found, f"{key}={list(wanted)}", fix))
    if spec.flag_meanings and var.attrs.get("flag_meanings") != (spec.flag_meanings):
        found = f"flag_meanings={var.attrs.get('flag_meanings')!r}"
        fix = f"set attrs['flag_meanings'] = {spec.flag_meanings!r}"
        out.append(_problem(where, found, f"flag_meanings={spec.flag_meanings!r}", fix))
    if check_values:
        out += _value_problems(spec, np.asarray(var.values), ds, where)
    return out


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
        Expected kind, one of :data:`KINDS`. Defaults to ``ds.attrs["hpcaet_kind"]``;
        when given, that attribute must agree with it.
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


# --------------------------------------------------------------------------- describe
def _rst_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = [header, *[tuple(c or "-" for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)

    def line(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([rule, line(header), rule, *map(line, cells[1:]), rule])


def _flag_text(spec: FieldSpec) -> str:
    codes = spec.flag_values or spec.flag_masks
    if codes is None:
        return ""
    pairs = ", ".join(f"{c} {m}" for c, m in zip(codes, spec.flag_meanings.split(), strict=True))
    return f" ({'flag_values' if spec.flag_values else 'flag_masks'}: {pairs})"


def describe(kind: str) -> str:
    """A human-readable description of the schema of ``kind``.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.

    Returns
    -------
    str
        reStructuredText: a title, the coordinates, variables and attributes as simple
        tables (name, dims, dtype, units, required, checks, description) and notes.
    """
    if kind not in SCHEMAS:
        raise InputError(f"Unknown kind {kind!r}; expected one of {KINDS}.")
    spec = SCHEMAS[kind]
    coords = [
        (
            c.name,
            ", ".join(c.dims),
            c.dtype,
            c.units,
            "if dim used" if c.required else "no",
            ", ".join(
                ([f"labels {' '.join(c.values)}"] if c.values else [])
                + (["index (built as 0 .. n-1)"] if c.index else [])
                + [_CHECK_TEXT[k] for k in c.checks if k != "spacing"]
                + ([f"step = {c.spacing_attr}"] if c.spacing_attr else [])
            ),
            c.description,
        )
        for c in spec.coordinates
    ]
    variables = [
        (
            v.name,
            ", ".join(v.dims),
            v.storage or v.dtype,
            v.units,
            "yes" if v.required else "no",
            ", ".join(_CHECK_TEXT[k] for k in v.checks),
            v.description + _flag_text(v),
        )
        for v in spec.variables
    ]
    attributes = [
        (
            a.name,
            a.dtype,
            a.units,
            "yes" if a.required else "no",
            _ATTR_CHECK_TEXT.get(a.check, ""),
            a.description,
        )
        for a in spec.attributes
    ]
    header = ("name", "dims", "dtype", "units", "required", "checks", "description")
    title = f"{kind} (schema version {SCHEMA_VERSION})"
    parts = [
        title,
        "=" * len(title),
        "",
        f"{spec.description} Built by ``hpcaet.io.{spec.builder}``; "
        f"``attrs['hpcaet_kind'] = {kind!r}``.",
        "",
        "Coordinates\n-----------\n",
        _rst_table(header, coords),
        "",
        "Variables\n---------\n",
        _rst_table(header, variables),
    ]
    if attributes:
        parts += [
            "",
            "Attributes\n----------\n",
            _rst_table(("name", "type", "units", "required", "range", "description"), attributes),
            "",
            "An attribute with units is stored with a companion string attribute named "
            "``<name>_units``, e.g. ``pixel_size_units = 'Å'``.",
        ]
    notes = [f"At least one of {', '.join(group)} is present." for group in spec.one_of]
    notes += [f"{low} < {high}." for low, high in spec.less_than]
    notes += list(spec.notes)
    if notes:
        parts += ["", "Notes\n-----\n", *[f"* {note}" for note in notes]]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- builders
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


_TRUTH = tuple(v.name for v in _TILT_SERIES.variables if v.name.startswith("true_")) + (
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
