"""Datasets of hpcaet: schemas, validation, builders and netCDF files.

Every stage exchanges :class:`xarray.Dataset` objects of one of the kinds in
:data:`KINDS`; :func:`describe` documents a kind, :func:`validate` checks a Dataset,
the ``make_*`` functions build valid Datasets from numpy arrays, and
:func:`write_dataset` / :func:`read_dataset` store them atomically as netCDF-4;
:func:`read_image` reads microscope files (TIFF, MRC, DM3/DM4, EMD) and
:func:`assemble_tilt_series` turns their frames into a raw TiltSeries.
"""

from hpcaet.errors import DatasetNotFoundError
from hpcaet.io.assemble import complete_coordinates
from hpcaet.io.atomic import atomic_path
from hpcaet.io.builders import (
    make_atom_model,
    make_eels,
    make_phonons,
    make_strain,
    make_tilt_series,
    make_volume,
)
from hpcaet.io.describe import describe
from hpcaet.io.netcdf import read_dataset, write_dataset
from hpcaet.io.readers import ImageStack, assemble_tilt_series, read_image
from hpcaet.io.schemas import (
    FLAG_EDGE,
    FLAG_OFF_LAYER,
    FLAG_TOO_CLOSE,
    FLAG_UNCERTAIN,
    KINDS,
    SCHEMA_VERSION,
    SCHEMAS,
    VACANCY,
    AttributeSpec,
    FieldSpec,
    KindSpec,
)
from hpcaet.io.validation import validate

__all__ = [
    "atomic_path",
    "complete_coordinates",
    "KINDS",
    "SCHEMA_VERSION",
    "SCHEMAS",
    "VACANCY",
    "FLAG_TOO_CLOSE",
    "FLAG_OFF_LAYER",
    "FLAG_EDGE",
    "FLAG_UNCERTAIN",
    "AttributeSpec",
    "KindSpec",
    "FieldSpec",
    "DatasetNotFoundError",
    "describe",
    "validate",
    "make_tilt_series",
    "make_volume",
    "make_atom_model",
    "make_strain",
    "make_phonons",
    "make_eels",
    "read_dataset",
    "write_dataset",
    "ImageStack",
    "read_image",
    "assemble_tilt_series",
]
