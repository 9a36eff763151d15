"""Reading and writing hpcaet Datasets as netCDF-4 files.

Writes are atomic: the Dataset is validated, written to a temporary file next to the
target, flushed to disk and renamed onto the target, so that a killed job never leaves
a half-written file where a later stage would read it. Reads validate the file against
the schema of its kind (:mod:`hpcaet.io.validate`) and turn every way a file can be
unusable (missing, damaged, truncated, of another kind) into an hpcaet error that
names the path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import xarray as xr

from hpcaet.errors import DatasetNotFoundError, InputError, SchemaError
from hpcaet.io.atomic import atomic_path
from hpcaet.io.schemas import KINDS
from hpcaet.io.validation import validate

__all__ = ["DatasetNotFoundError", "write_dataset", "read_dataset"]

logger = logging.getLogger(__name__)

#: Errors the netCDF4 backend raises for a file it cannot parse.
_READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, IndexError, TypeError)


def _without_encoding(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy without the on-disk encoding left over from an earlier read."""
    out = ds.copy(deep=False)
    for variable in out.variables.values():
        variable.encoding = {}
    out.encoding = {}
    return out


def write_dataset(ds: xr.Dataset, path: str | os.PathLike, *, kind: str | None = None) -> Path:
    """Validate a Dataset and write it atomically to a netCDF-4 file.

    Parameters
    ----------
    ds : xarray.Dataset
        A Dataset of one of the kinds of :mod:`hpcaet.io.schemas`.
    path : str or path-like
        Target file (conventionally ``*.nc``); an existing file is replaced.
    kind : str, optional
        Expected kind; defaults to ``ds.attrs["hpcaet_kind"]``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    SchemaError
        If ``ds`` is invalid (nothing is written) or holds values netCDF cannot store.
    DatasetNotFoundError
        If the folder of ``path`` does not exist.
    InputError
        If ``path`` is an existing directory.

    Notes
    -----
    The data go to a hidden temporary file in the same folder, which is flushed with
    ``fsync`` and moved onto ``path`` with :func:`os.replace`; on any failure the
    temporary file is removed and ``path`` keeps its previous content, if any.
    """
    path = Path(path)
    validate(ds, kind)
    if not path.parent.is_dir():
        raise DatasetNotFoundError(
            f"Cannot write {path}: its folder {path.parent} does not exist. Create it first "
            "(e.g. Path(...).mkdir(parents=True)) or choose another path."
        )
    if path.is_dir():
        raise InputError(f"Cannot write {path}: it is a directory; pass a file path (*.nc).")
    with atomic_path(path) as tmp:
        try:
            _without_encoding(ds).to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
        except (TypeError, ValueError) as exc:
            raise SchemaError(
                f"Cannot store the {ds.attrs['hpcaet_kind']} Dataset in netCDF at {path}: "
                f"{exc}. Attributes must be strings, numbers or 1-D numeric arrays; convert "
                "or drop the offending ones."
            ) from exc
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    logger.debug("wrote %s Dataset to %s", ds.attrs["hpcaet_kind"], path)
    return path


#: The first bytes of a netCDF-3 and of a netCDF-4 (HDF5) file.
_SIGNATURES = (b"CDF", b"\x89HDF")


def _damaged(path: Path, exc: BaseException) -> SchemaError:
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head.startswith(_SIGNATURES):
        return SchemaError(
            f"{path} is not a netCDF file (it does not start as one: {head[:8]!r}); hpcaet "
            "reads the .nc files its stages write (tilt_series.nc, volume.nc, ...)."
        )
    return SchemaError(
        f"Cannot read {path} as netCDF ({type(exc).__name__}: {exc}); the file is damaged "
        "or truncated, e.g. by a job killed while writing it or an incomplete copy. "
        "Re-run the stage that wrote it."
    )


def read_dataset(
    path: str | os.PathLike, *, kind: str | None = None, load: bool = True
) -> xr.Dataset:
    """Read and validate an hpcaet Dataset from a netCDF file.

    Parameters
    ----------
    path : str or path-like
        File written by :func:`write_dataset`.
    kind : str, optional
        Expected kind, one of :data:`~hpcaet.io.schemas.KINDS`; the file's
        ``hpcaet_kind`` must match it. None accepts any kind.
    load : bool, default True
        Load the data into memory and close the file, so that it can be replaced or
        deleted afterwards. False keeps the data lazy (the file stays open until the
        Dataset is closed) and validates only the structure: dims, dtypes, units and
        attributes; call :func:`~hpcaet.io.validate.validate` after loading to check the
        values too.

    Returns
    -------
    xarray.Dataset
        The validated Dataset.

    Raises
    ------
    DatasetNotFoundError
        If ``path`` does not exist.
    SchemaError
        If the file is not netCDF, is damaged or truncated, has no ``hpcaet_kind``,
        is of another kind than ``kind`` or breaks its schema.
    InputError
        If ``kind`` is not a known kind.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise InputError(f"Unknown kind {kind!r}; expected one of {KINDS}.")
    if not path.exists():
        raise DatasetNotFoundError(
            f"No file at {path}. Check the path, or run the stage that writes it first."
        )
    if path.is_dir():
        raise SchemaError(f"{path} is a directory, not a netCDF file; pass the file's path.")
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except _READ_ERRORS as exc:
        raise _damaged(path, exc) from exc
    try:
        if load:
            try:
                ds.load()
            except _READ_ERRORS as exc:
                raise _damaged(path, exc) from exc
            ds.close()
        stored = ds.attrs.get("hpcaet_kind")
        if stored is None:
            raise SchemaError(
                f"{path} has no global attribute 'hpcaet_kind', so it is not an hpcaet "
                f"Dataset (expected one of {KINDS}). Write it with hpcaet.io.write_dataset."
            )
        if kind is not None and stored != kind:
            raise SchemaError(
                f"{path} holds a {stored!r} Dataset, but a {kind!r} was expected. Pass the "
                f"file of the {kind} stage."
            )
        try:
            validate(ds, kind=stored, check_values=load)
        except SchemaError as exc:
            raise SchemaError(f"In file {path}: {exc}") from exc
    except BaseException:
        ds.close()
        raise
    return ds
