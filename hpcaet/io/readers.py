"""Readers of microscope image files: hpcaet netCDF, TIFF, MRC, Gatan DM3/DM4, Velox EMD.

:func:`read_image` returns an :class:`ImageStack` (the pixels, the pixel size in Å taken
from the file's own calibration, the axis names and the source metadata) whatever the
format; :func:`assemble_tilt_series` turns the frame stacks of every tilt plus their
nominal angles into a TiltSeries for :mod:`hpcaet.preprocess`.

Formats and the libraries behind them (optional extra ``hpcaet[formats]``):

========================  ==================  =========================================
suffix                    library             pixel size from
========================  ==================  =========================================
``.nc``                   xarray (core)       the TiltSeries attribute ``pixel_size``
``.tif``, ``.tiff``       tifffile            ImageJ ``spacing``/``unit``, else the
                                              X/YResolution tags with ResolutionUnit
``.mrc``, ``.mrcs``,      mrcfile             the header's voxel size [Å] (0 = unset)
``.st``, ``.ali``
``.dm3``, ``.dm4``        rosettasciio        the calibrated axes' scale and units
``.emd``                  rosettasciio+h5py   the calibrated axes' scale and units
========================  ==================  =========================================

A file whose calibration is missing, or carries no length unit (Digital Micrograph
writes scale 1 or an uncalibrated scale with an empty unit), raises an
:class:`~hpcaet.errors.InputError` that names the file and says to pass
``pixel_size=`` (in Å) explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from hpcaet.errors import InputError
from hpcaet.io.builders import make_tilt_series

__all__ = ["ImageStack", "read_image", "assemble_tilt_series", "LENGTH_UNITS"]

log = logging.getLogger(__name__)

#: Length units understood in file calibrations, in Å.
LENGTH_UNITS = {
    "å": 1.0,
    "a": 1.0,
    "angstrom": 1.0,
    "ang": 1.0,
    "nm": 10.0,
    "µm": 1e4,
    "μm": 1e4,
    "um": 1e4,
    "micron": 1e4,
    "pm": 0.01,
    "m": 1e10,
    "mm": 1e7,
    "cm": 1e8,
}


@dataclass(frozen=True)
class ImageStack:
    """An image or a stack of frames read from a file.

    Attributes
    ----------
    data : ndarray of shape (ny, nx) or (n, ny, nx)
        Pixels, as stored (counts or detector units).
    pixel_size : float
        [Å].
    axes : tuple of str
        Axis names: ``("y", "x")`` or ``("frame", "y", "x")``.
    source : str
        File path.
    metadata : dict
        What the reader reported (title, date, original units, ...); ``"microscope"``
        holds the settings the file records, in hpcaet's units: ``voltage`` [kV],
        ``convergence_angle``, ``detector_inner_angle``, ``detector_outer_angle``
        [mrad], ``dwell_time`` [µs], stage ``alpha`` and ``beta`` [deg].
    """

    data: np.ndarray
    pixel_size: float
    axes: tuple[str, ...]
    source: str
    metadata: dict = field(default_factory=dict)

    @property
    def frames(self) -> np.ndarray:
        """The data as a stack of frames, shape (n, ny, nx)."""
        return self.data if self.data.ndim == 3 else self.data[None]


def read_image(path: str | Path, *, pixel_size: float | None = None) -> ImageStack:
    """Read one image or frame stack from a microscope file.

    Parameters
    ----------
    path : str or Path
        File; the format follows its suffix (see the module docstring).
    pixel_size : float, optional
        [Å]; overrides (and is needed when the file lacks) a calibration.

    Returns
    -------
    ImageStack

    Raises
    ------
    InputError
        Unknown suffix, a missing file, a file without pixel size (and none given),
        or data that are not a 2D image or a 3D stack.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"image file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    readers = {
        ".nc": _read_netcdf,
        ".tif": _read_tiff,
        ".tiff": _read_tiff,
        ".mrc": _read_mrc,
        ".mrcs": _read_mrc,
        ".st": _read_mrc,
        ".ali": _read_mrc,
        ".dm3": _read_rsciio,
        ".dm4": _read_rsciio,
        ".emd": _read_rsciio,
    }
    if suffix not in readers:
        raise InputError(
            f"cannot read {str(path)!r}: unknown format {suffix!r}; known suffixes are "
            f"{sorted(readers)}."
        )
    data, size, axes, meta = readers[suffix](path)
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise InputError(
            f"{str(path)!r} holds data of shape {data.shape} with axes {axes}; expected one "
            "image (y, x) or a stack of frames (frame, y, x)."
        )
    if pixel_size is not None:
        if not (np.isfinite(pixel_size) and pixel_size > 0):
            raise InputError(f"pixel_size must be a positive number of Å; got {pixel_size!r}.")
        size = float(pixel_size)
    if size is None:
        raise InputError(
            f"{str(path)!r} has no pixel-size calibration ({meta.get('calibration', 'none')}); "
            "pass it explicitly, e.g. read_image(path, pixel_size=0.32) for 0.32 Å per pixel."
        )
    return ImageStack(data=data, pixel_size=float(size), axes=axes, source=str(path), metadata=meta)


def assemble_tilt_series(
    stacks: Sequence[ArrayLike | ImageStack],
    euler: ArrayLike,
    *,
    pixel_size: float | None = None,
    dose: float,
    **attrs,
) -> xr.Dataset:
    """Build a raw TiltSeries from the frame stacks of every tilt and the nominal angles.

    Parameters
    ----------
    stacks : sequence of array_like of shape (n_frame, ny, nx) or ImageStack
        One stack per tilt, all of the same shape (a single image counts as one frame).
    euler : array_like of shape (n_tilt, 3)
        Nominal Euler angles [deg] (e.g. ``hpcaet.geometry.stage_to_euler``).
    pixel_size : float, optional
        [Å]; taken from the ImageStacks when omitted (they must agree).
    dose : float
        Total dose over the series [e/Å²].
    **attrs
        Further TiltSeries attributes (``voltage``, ``read_noise``, ...).

    Returns
    -------
    xarray.Dataset
        A TiltSeries with ``frames`` (tilt, frame, y, x) and ``euler``.

    Raises
    ------
    InputError
        Stacks of different shapes, a number of angles other than the number of
        stacks, a missing (NaN) angle, an all-zero frame, or no pixel size.
    """
    frames, sizes = [], []
    for k, s in enumerate(stacks):
        if isinstance(s, ImageStack):
            sizes.append(s.pixel_size)
            a = s.frames
        else:
            a = np.asarray(s, dtype=float)
            a = a[None] if a.ndim == 2 else a
        if a.ndim != 3:
            raise InputError(f"tilt {k}: expected frames (n_frame, ny, nx); got shape {a.shape}.")
        frames.append(np.asarray(a, dtype=np.float32))
    if not frames:
        raise InputError("no frame stacks given; pass one stack per tilt.")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        first = frames[0].shape
        bad = [k for k, f in enumerate(frames) if f.shape != first]
        raise InputError(
            f"frame stacks differ in shape: tilt 0 has {first}, tilt(s) {bad} have "
            f"{[frames[k].shape for k in bad]}. Crop them to a common (n_frame, ny, nx)."
        )
    angles = np.asarray(euler, dtype=float)
    if angles.shape != (len(frames), 3):
        raise InputError(
            f"need one (z, y, x) Euler triple per tilt: {len(frames)} stacks but angles of "
            f"shape {angles.shape}. Give the nominal angle of every tilt."
        )
    missing = np.unique(np.argwhere(~np.isfinite(angles))[:, 0]).tolist()
    if missing:
        raise InputError(f"the nominal angle of tilt(s) {missing} is missing (NaN); give it.")
    for k, f in enumerate(frames):
        blank = [i for i in range(len(f)) if not np.any(f[i])]
        if blank:
            raise InputError(
                f"tilt {k}: frame(s) {blank} are all zero (a failed acquisition); drop them."
            )
    if pixel_size is None:
        if not sizes or len(sizes) != len(frames):
            raise InputError("pixel_size is needed when the stacks are plain arrays [Å].")
        if max(sizes) - min(sizes) > 1e-6 * max(sizes):
            raise InputError(f"the stacks have different pixel sizes {sizes} Å; resample them.")
        pixel_size = sizes[0]
    return make_tilt_series(
        frames=np.stack(frames), euler=angles, pixel_size=pixel_size, dose=dose, **attrs
    )


# --------------------------------------------------------------------------- formats


def _read_netcdf(path: Path):
    from hpcaet.io.netcdf import read_dataset

    ds = read_dataset(path, kind="TiltSeries")
    name = "frames" if "frames" in ds else "images"
    data = ds[name].values
    if data.ndim == 4:
        raise InputError(
            f"{str(path)!r} is a TiltSeries with frames of {data.ndim} dimensions (tilt, frame, "
            "y, x); read it with hpcaet.io.read_dataset instead."
        )
    axes = ("frame", "y", "x") if data.ndim == 3 else ("y", "x")
    return data, float(ds.attrs["pixel_size"]), axes, {"kind": "TiltSeries", "variable": name}


def _read_tiff(path: Path):
    tifffile = _optional("tifffile")
    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        meta = {"calibration": "none"}
        size = None
        ij = tif.imagej_metadata or {}
        page = tif.pages[0]
        if ij.get("unit") and "XResolution" in page.tags:
            num, den = page.tags["XResolution"].value
            scale = _length(ij["unit"], den / num if num else None)
            if scale:
                size, meta["calibration"] = scale, f"ImageJ {den / num} {ij['unit']}"
        elif "XResolution" in page.tags and "ResolutionUnit" in page.tags:
            unit = int(page.tags["ResolutionUnit"].value)
            num, den = page.tags["XResolution"].value
            per = {2: 2.54e8, 3: 1e8}.get(unit)  # Å per inch, per cm
            if per and num:
                size, meta["calibration"] = (
                    per * den / num,
                    f"resolution {num / den} per unit {unit}",
                )
    axes = ("frame", "y", "x") if data.ndim == 3 else ("y", "x")
    return data, size, axes, meta


def _read_mrc(path: Path):
    mrcfile = _optional("mrcfile")
    with mrcfile.open(path, permissive=True) as mrc:
        data = np.array(mrc.data)
        vx, vy = float(mrc.voxel_size.x), float(mrc.voxel_size.y)
    size = vx if vx > 0 else None
    meta = {"calibration": f"voxel size {vx} x {vy} Å" if vx > 0 else "voxel size 0 (unset)"}
    if size is not None and abs(vx - vy) > 1e-6 * vx:
        raise InputError(f"{str(path)!r} has non-square pixels ({vx} x {vy} Å); resample it.")
    axes = ("frame", "y", "x") if data.ndim == 3 else ("y", "x")
    return data, size, axes, meta


def _read_rsciio(path: Path):
    if path.suffix.lower() == ".emd":
        _optional("h5py")
        module = _optional("rsciio.emd")
    else:
        module = _optional("rsciio.digitalmicrograph")
    signals = [
        s
        for s in module.file_reader(str(path))
        if len([a for a in s["axes"] if not a.get("navigate", False)]) == 2
    ]
    if not signals:
        raise InputError(f"{str(path)!r} holds no 2D image signal (spectra only?).")
    s = signals[0]
    image_axes = [a for a in s["axes"] if not a.get("navigate", False)]
    names = tuple(a.get("name", "") for a in image_axes)
    nav = [a for a in s["axes"] if a.get("navigate", False)]
    axes = (("frame",) if nav else ()) + ("y", "x")
    scales = [_length(a.get("units", ""), a.get("scale")) for a in image_axes]
    meta = {
        "title": s.get("metadata", {}).get("General", {}).get("title", ""),
        "axes": names,
        "calibration": ", ".join(
            f"{a.get('name')}: {a.get('scale')} {a.get('units') or '(no unit)'}" for a in image_axes
        ),
    }
    meta["microscope"] = _microscope(s)
    size = None
    if all(scales):
        if abs(scales[0] - scales[1]) > 1e-6 * scales[0]:
            raise InputError(f"{str(path)!r} has non-square pixels {scales} Å; resample it.")
        size = scales[1]
    return np.asarray(s["data"]), size, axes, meta


#: Where the microscope settings sit in RosettaSciIO's mapped metadata, then in the
#: original metadata of Digital Micrograph (``ImageList/TagGroup0/ImageTags``) and of
#: Velox EMD files, each with the factor to hpcaet's unit.
_MICROSCOPE_PATHS = {
    "voltage": (  # [kV]
        ("Acquisition_instrument/TEM/beam_energy", 1.0),
        ("ImageList/TagGroup0/ImageTags/Microscope Info/Voltage", 1e-3),
        ("Optics/AccelerationVoltage", 1e-3),
    ),
    "convergence_angle": (  # [mrad]
        ("Acquisition_instrument/TEM/convergence_angle", 1.0),
        ("Optics/BeamConvergence", 1e3),
    ),
    "detector_inner_angle": (  # [mrad]
        ("Acquisition_instrument/TEM/Detector/STEM/inner_angle", 1.0),
    ),
    "detector_outer_angle": (  # [mrad]
        ("Acquisition_instrument/TEM/Detector/STEM/outer_angle", 1.0),
    ),
    "dwell_time": (  # [µs]
        ("Acquisition_instrument/TEM/dwell_time", 1e6),
        ("Scan/DwellTime", 1e6),
        ("ImageList/TagGroup0/ImageTags/DigiScan/Sample Time", 1.0),
    ),
    "alpha": (  # [deg]
        ("Acquisition_instrument/TEM/Stage/tilt_alpha", 1.0),
        ("Stage/AlphaTilt", 180.0 / np.pi),
        ("ImageList/TagGroup0/ImageTags/Microscope Info/Stage Position/Stage Alpha", 1.0),
    ),
    "beta": (  # [deg]
        ("Acquisition_instrument/TEM/Stage/tilt_beta", 1.0),
        ("Stage/BetaTilt", 180.0 / np.pi),
        ("ImageList/TagGroup0/ImageTags/Microscope Info/Stage Position/Stage Beta", 1.0),
    ),
}


def _microscope(signal: dict) -> dict[str, float]:
    """The microscope settings a file records, in hpcaet's units (absent ones left out)."""
    trees = (signal.get("metadata", {}), signal.get("original_metadata", {}))
    found = {}
    for name, paths in _MICROSCOPE_PATHS.items():
        for path, factor in paths:
            for tree in trees:
                value = tree
                for key in path.split("/"):
                    value = value.get(key) if isinstance(value, dict) else None
                try:
                    number = float(value) * factor
                except (TypeError, ValueError):
                    continue
                if np.isfinite(number) and (number > 0 or name in ("alpha", "beta")):
                    found[name] = number
                    break
            if name in found:
                break
    return found


def _length(unit, scale) -> float | None:
    """``scale`` in ``unit`` as Å, or None when the unit is not a length."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        return None
    factor = LENGTH_UNITS.get(str(unit or "").strip().lower())
    if factor is None or not (np.isfinite(value) and value > 0):
        return None
    return value * factor


def _optional(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InputError(
            f"reading this format needs the optional package {name.split('.')[0]!r}; "
            "install it with pip install 'hpcaet[formats]'."
        ) from exc
