"""Schemas of the Datasets that hpcaet stages exchange.

Every stage reads and writes :class:`xarray.Dataset` objects of one of six *kinds*
(:data:`KINDS`). A kind is described here as data (:data:`SCHEMAS`): its coordinates,
variables and attributes, each with dims, dtype kind (``float``, ``int`` or ``str``),
units and value checks. :func:`hpcaet.io.describe` renders a kind as reStructuredText
tables for the documentation. :mod:`hpcaet.io.validate` checks a Dataset against its kind and
:mod:`hpcaet.io.builders` turns numpy arrays into valid Datasets with every coordinate,
unit and attribute filled in.

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

from dataclasses import dataclass

from hpcaet.geometry import EULER_AXES
from hpcaet.materials import VACANCY

__all__ = [
    "SCHEMA_VERSION",
    "KINDS",
    "SCHEMAS",
    "VACANCY",
    "FieldSpec",
    "AttributeSpec",
    "KindSpec",
]

#: Version of the schemas below; stored as ``attrs["hpcaet_schema_version"]``.
SCHEMA_VERSION = 1

#: Species label of an explicit vacancy site in an AtomModel.

#: Quality bits of an AtomModel's ``flag``: nearer than the minimum distance to another
#: atom, over ``atoms.off_layer_distance`` off its layer, within ``atoms.edge_distance`` of
#: the reconstructed volume's side faces (placed and labelled without its outer neighbours),
#: a species the images barely tell from another (``species_margin`` below
#: ``atoms.species_margin``).
FLAG_TOO_CLOSE, FLAG_OFF_LAYER, FLAG_EDGE, FLAG_UNCERTAIN = 1, 2, 4, 8


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
# region: index into the run's materials (config `materials.regions`, the dataset's
# `materials` attribute): 0 the first (MoS2), 1 the second (WSe2)
_REGION = dict(storage="int8", flag_values=(-1, 0, 1), flag_meanings="unknown first second")
#: flag_meanings that files of earlier versions wrote, accepted when reading
LEGACY_MEANINGS = {"unknown first second": ("unknown MoS2 WSe2",)}

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
        _var("region", ("atom",), "int", None, "material region (index into the "
             "materials attribute)", "flags", required=True,
             **_REGION),
        _var("pair", ("atom",), "int", None, "index of the top/bottom partner site, -1 none",
             "atom_index", storage="int32"),
        _var("flag", ("atom",), "int", None, "quality bits: too_close = nearer than the "
             "minimum distance, off_layer = over 1 Å off its layer, edge = within "
             "atoms.edge_distance of the volume's side faces, uncertain = species_margin "
             "under atoms.species_margin", "bits", storage="int8",
             flag_masks=(FLAG_TOO_CLOSE, FLAG_OFF_LAYER, FLAG_EDGE, FLAG_UNCERTAIN),
             flag_meanings="too_close off_layer edge uncertain"),
        _var("species_margin", ("atom",), "float", None, "relative rise of R1 over the "
             "site's pair patch in the best case that gives the site another species "
             "(negative: another species fits better); NaN for metals"),
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
        _coord("material", ("material",), "str", None,
                "bulk monolayer of the NNLS fit (material name)"),
        _index("peak", "residual peak index"),
        _index("reference_mode", "mode index of the reference cell"),
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
        _var("bulk_dos", ("material", "energy"), "float", "1/meV",
             "DOS per atom of the bulk monolayer", "finite", "nonnegative"),
        _var("nnls_weight", ("material",), "float", "1",
             "non-negative least-squares weight of the bulk DOS in the cell's DOS", "finite",
             "nonnegative"),
        _var("nnls_fit", ("energy",), "float", "1/meV",
             "NNLS combination of the bulk DOS", "finite", "nonnegative"),
        _var("residual_peak", ("peak",), "float", "meV",
             "DOS peak that the bulk combination misses", "finite"),
        _var("reference_dos", ("energy",), "float", "1/meV",
             "DOS of the relaxed crystallographic interface", "finite", "nonnegative"),
        _var("reference_spectral_function", ("q", "energy"), "float", "1/meV",
             "unfolded spectral function of the crystallographic interface", "finite"),
        _var("reference_frequency", ("reference_mode",), "float", "meV",
             "mode energy of the crystallographic interface (negative: imaginary)",
             "finite"),
    ),
    one_of=(("dos", "frequency"),),
    notes=("residual_peak lists, highest first, the positive maxima of dos - nnls_fit "
           "that stand out by over a tenth of the DOS maximum (peaks the bulk monolayers "
           "do not explain); it may be empty.",),
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
