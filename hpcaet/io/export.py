"""Write a TiltSeries as microscope files and an angle table, as an instrument would.

:func:`export_frames` is the inverse of :func:`hpcaet.io.importer.import_tilt_series`:
the frames of every tilt go to one calibrated TIFF (ImageJ, pixel size in nm) or MRC
(voxel size in Å) file, the nominal angles to ``angles.csv``, and nothing else: no truth
variable and no hpcaet attribute travels. A simulated series exported this way is the
test input of every stage "without truth" (``tests/test_import_chain.py``) and of the
tutorial ``docs/real-data.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.errors import InputError
from hpcaet.io.readers import _optional

__all__ = ["export_frames"]


def export_frames(
    series: xr.Dataset,
    folder: str | Path,
    *,
    fmt: str = "tif",
    gain: float = 1.0,
    offset: float = 0.0,
) -> tuple[list[Path], Path]:
    """Write the raw frames of a TiltSeries as one file per tilt plus ``angles.csv``.

    Parameters
    ----------
    series : xarray.Dataset
        TiltSeries with ``frames`` (tilt, frame, y, x) and nominal ``euler``.
    folder : str or Path
        Created if missing.
    fmt : {"tif", "mrc"}, default "tif"
    gain, offset : float, default 1, 0
        The files hold ``gain * frames + offset`` (a detector's counts), as float32.

    Returns
    -------
    files : list of Path
        One file per tilt, ``tilt_000.tif`` ...
    table : Path
        ``angles.csv`` with columns ``file, phi, theta, psi`` (hpcaet's convention).
    """
    if "frames" not in series:
        raise InputError("the series has no raw 'frames' to export.")
    if fmt not in ("tif", "mrc"):
        raise InputError(f"fmt must be 'tif' or 'mrc'; got {fmt!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    px = float(series.attrs["pixel_size"])
    counts = (gain * series["frames"].values + offset).astype(np.float32)
    files = []
    for j, frames in enumerate(counts):
        path = folder / f"tilt_{j:03d}.{fmt}"
        if fmt == "tif":
            tifffile = _optional("tifffile")
            per_nm = 1.0 / (px / 10.0)
            tifffile.imwrite(
                path, frames, imagej=True, resolution=(per_nm, per_nm), metadata={"unit": "nm"}
            )
        else:
            mrcfile = _optional("mrcfile")
            with mrcfile.new(path, overwrite=True) as mrc:
                mrc.set_data(frames)
                mrc.voxel_size = px
        files.append(path)
    table = folder / "angles.csv"
    lines = ["file,phi,theta,psi"] + [
        f"{f.name},{a:.6f},{b:.6f},{c:.6f}"
        for f, (a, b, c) in zip(files, series["euler"].values, strict=True)
    ]
    table.write_text("\n".join(lines) + "\n")
    return files, table
