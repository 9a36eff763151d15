"""Read EELS spectra, line scans and spectrum images into an EELS Dataset.

netCDF files written by hpcaet are read with :func:`hpcaet.io.read_dataset`; Gatan
DM3/DM4 and the other formats of RosettaSciIO (EMSA/MSA, EMD, HSPY, NeXus, ...) through
that library (``pip install hpcaet[formats]``). The energy axis is the one whose units
are an energy (eV, meV, keV), calibrated from the file (offset and dispersion) and
converted to meV; the other axes are the scan, converted to nm where the file gives a
length. A spectrum image (rows × columns × energy) is stored flattened in row-major
order along ``position``, with ``scan_row`` / ``scan_col`` coordinates and the
``scan_shape`` attribute. Axis order is taken from the file's axis list, never assumed:
RosettaSciIO gives DM spectrum images energy first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.errors import InputError
from hpcaet.io import make_eels, read_dataset

__all__ = ["read_spectra", "ENERGY_UNITS", "LENGTH_UNITS"]

log = logging.getLogger(__name__)

#: Energy units and their size in meV.
ENERGY_UNITS = {"mev": 1.0, "ev": 1e3, "kev": 1e6}
#: Length units and their size in nm.
LENGTH_UNITS = {
    "nm": 1.0,
    "µm": 1e3,
    "um": 1e3,
    "μm": 1e3,
    "å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "pm": 1e-3,
    "m": 1e9,
    "mm": 1e6,
}


def read_spectra(path: str | os.PathLike, *, index: int | None = None) -> xr.Dataset:
    """Read spectra from a netCDF, DM3/DM4 or other RosettaSciIO file.

    Parameters
    ----------
    path : str or path-like
        ``.nc`` (an EELS Dataset written by hpcaet) or a microscope file.
    index : int, optional
        Which signal of a multi-signal file to read; default the first one with an
        energy axis.

    Returns
    -------
    xarray.Dataset
        An EELS Dataset: ``spectra(position, energy)`` [counts], ``energy`` [meV],
        ``position`` [nm along a line scan; the raster index for spectrum images or
        files without a spatial calibration, see the ``position_calibrated`` attr],
        attrs ``source_file``, ``source_format``, ``energy_offset`` [meV],
        ``dispersion`` [meV/channel], ``energy_units_in_file``, ``scan_shape`` and,
        when the file records it, ``voltage`` [kV].

    Raises
    ------
    InputError
        Unknown extension, no energy axis, a file RosettaSciIO cannot read.
    ImportError
        RosettaSciIO is not installed (``pip install hpcaet[formats]``).
    """
    path = Path(path)
    if path.suffix.lower() == ".nc":
        return read_dataset(path, kind="EELS")
    if not path.exists():
        raise InputError(f"No file at {path}. Check the path.")
    reader, fmt = _reader_for(path)
    try:
        signals = reader(str(path))
    except Exception as exc:  # RosettaSciIO raises many kinds; report them as ours
        raise InputError(
            f"RosettaSciIO ({fmt}) cannot read {path}: {type(exc).__name__}: "
            f"{exc}. Check that the file is complete and of that format."
        ) from exc
    candidates = [i for i, s in enumerate(signals) if _energy_axis(s["axes"]) is not None]
    if index is not None:
        if not 0 <= index < len(signals) or index not in candidates:
            raise InputError(
                f"{path} has signals with an energy axis at {candidates} (of "
                f"{len(signals)}); got index={index}."
            )
        chosen = index
    elif candidates:
        chosen = candidates[0]
    else:
        described = [[(a.get("name"), a.get("units")) for a in s["axes"]] for s in signals]
        raise InputError(
            f"{path} holds no signal with an energy axis (units eV, meV or keV); its axes "
            f"are {described}. Pass an EELS spectrum, line scan or spectrum image."
        )
    ds = _to_dataset(signals[chosen], source=path, fmt=fmt)
    log.info(
        "read %s: %s spectra of %d channels, %g to %g meV",
        path,
        ds.attrs["scan_shape"],
        ds.sizes["energy"],
        float(ds.energy[0]),
        float(ds.energy[-1]),
    )
    return ds


def _reader_for(path: Path):
    try:
        import rsciio
    except ImportError as exc:
        raise ImportError(
            f"reading {path.suffix} files needs RosettaSciIO; install it with "
            "'pip install hpcaet[formats]'."
        ) from exc
    ext = path.suffix.lower().lstrip(".")
    for plugin in rsciio.IO_PLUGINS:
        if ext in [x.lower() for x in plugin["file_extensions"]] and ext != "nc":
            module = __import__(plugin["api"], fromlist=["file_reader"])
            return module.file_reader, plugin["name"]
    raise InputError(
        f"unknown spectrum file extension {path.suffix!r} of {path}; expected .nc, .dm3, "
        ".dm4 or another format of RosettaSciIO."
    )


def _units(axis: dict) -> str:
    units = axis.get("units")
    return "" if units is None or not isinstance(units, str) else units.strip()


def _energy_axis(axes: list[dict]) -> int | None:
    for i, axis in enumerate(axes):
        if _units(axis).lower() in ENERGY_UNITS:
            return i
    return None


def _axis_values(axis: dict) -> np.ndarray:
    if axis.get("axis") is not None:  # non-uniform axis
        return np.asarray(axis["axis"], dtype=float)
    return float(axis.get("offset", 0.0)) + float(axis.get("scale", 1.0)) * np.arange(
        int(axis["size"])
    )


def _voltage_kv(signal: dict) -> float | None:
    tem = signal.get("metadata", {}).get("Acquisition_instrument", {}).get("TEM", {})
    if tem.get("beam_energy"):
        return float(tem["beam_energy"])
    try:
        tags = signal["original_metadata"]["ImageList"]["TagGroup0"]["ImageTags"]
        volts = float(tags["Microscope Info"]["Voltage"])
    except (KeyError, TypeError, ValueError):
        return None
    return volts / 1e3 if volts > 0 else None


def _to_dataset(signal: dict, *, source: Path, fmt: str) -> xr.Dataset:
    axes = sorted(signal["axes"], key=lambda a: a.get("index_in_array", 0))
    data = np.asarray(signal["data"], dtype=float)
    if data.ndim != len(axes):
        raise InputError(f"{source}: data of shape {data.shape} but {len(axes)} axes listed.")
    ie = _energy_axis(axes)
    e_axis = axes[ie]
    e_units = _units(e_axis)
    energy = _axis_values(e_axis) * ENERGY_UNITS[e_units.lower()]
    scan_axes = [a for i, a in enumerate(axes) if i != ie]
    if len(scan_axes) > 2:
        raise InputError(
            f"{source}: {data.ndim}D data; expected a spectrum, a line scan or "
            "a spectrum image (at most 2 scan axes)."
        )
    data = np.moveaxis(data, ie, -1)  # scan axes in file order, energy last
    if energy.size > 1 and energy[1] < energy[0]:
        energy, data = energy[::-1], data[..., ::-1]
    shape = data.shape[:-1]
    spectra = data.reshape(-1, energy.size)
    scales = [LENGTH_UNITS.get(_units(a).lower()) for a in scan_axes]
    attrs: dict[str, object] = {
        "source_file": str(source),
        "source_format": fmt,
        "energy_units_in_file": e_units,
        "energy_offset": float(energy[0]),
        "dispersion": float(np.median(np.diff(energy))) if energy.size > 1 else 0.0,
        "scan_shape": np.array(shape if shape else (1,), dtype=np.int64),
        "scan_axes": ", ".join(str(a.get("name")) for a in scan_axes) or "none",
    }
    voltage = _voltage_kv(signal)
    if voltage is not None:
        attrs["voltage"] = voltage
    coords = {}
    if len(scan_axes) == 1 and scales[0] is not None:
        position = _axis_values(scan_axes[0]) * scales[0]
        attrs["position_calibrated"] = 1
    else:
        position = np.arange(len(spectra), dtype=float)
        attrs["position_calibrated"] = 0
        if scan_axes:
            log.info(
                "%s: scan axes %s without a length calibration (or a 2D raster); "
                "position is the raster index",
                source,
                attrs["scan_axes"],
            )
    if len(scan_axes) == 2:
        rows, cols = np.unravel_index(np.arange(len(spectra)), shape)
        coords = {
            "scan_row": ("position", rows.astype(np.int64), {"units": "1"}),
            "scan_col": ("position", cols.astype(np.int64), {"units": "1"}),
        }
        for name, axis, scale in (
            ("scan_y", scan_axes[0], scales[0]),
            ("scan_x", scan_axes[1], scales[1]),
        ):
            if scale is not None:
                values = _axis_values(axis) * scale
                idx = rows if name == "scan_y" else cols
                coords[name] = ("position", values[idx], {"units": "nm"})
    ds = make_eels(spectra=spectra, energy=energy, position=position, **attrs)
    return ds.assign_coords(coords) if coords else ds
