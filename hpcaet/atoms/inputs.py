"""The inputs of the atoms step: the images to fit and the blur of the calculated ones.

:func:`check_inputs` checks a Volume and a processed TiltSeries against each other
(voxel size equal to the pixel size, processed images present) and
:func:`select_images` chooses the images the model is fitted to: ``linear_images``
with the per-tilt vibration kernels, or the denoised and deconvolved ``images``.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from hpcaet.atoms.blur import vibration_kernels
from hpcaet.errors import InputError

__all__ = ["check_inputs", "select_images"]

log = logging.getLogger(__name__)

_VOXEL_TOLERANCE = 1e-3  # relative mismatch allowed between voxel and pixel size


def check_inputs(volume: xr.Dataset, series: xr.Dataset):
    """Images [counts, as stored], Euler angles [deg] and pixel size [Å] of checked inputs.

    Raises
    ------
    InputError
        A series without processed images, or a voxel size that differs from the
        pixel size.
    """
    if "images" not in series:
        raise InputError(
            "processed.nc has no 'images' variable (only raw frames?); the atoms stage "
            "needs the processed images. Run 'hpcaet preprocess --run DIR' first."
        )
    voxel = float(volume.attrs["voxel_size"])
    pixel = float(series.attrs["pixel_size"])
    if abs(voxel - pixel) > _VOXEL_TOLERANCE * pixel:
        raise InputError(
            f"the volume's voxel size ({voxel} Å) differs from the images' pixel size "
            f"({pixel} Å); the atoms stage needs them equal. Reconstruct at the pixel size "
            "of processed.nc, or resample one of them."
        )
    images = series["images"].values  # converted by select_images if it is the one fitted
    euler = series["euler"].values.astype(float)
    return images, euler, pixel


_VIBRATION = ("vibration_direction", "vibration_amplitude", "vibration_width")


def select_images(series: xr.Dataset, images: np.ndarray, pixel: float, source: str):
    """The images the model is fitted to, and the blur of the calculated images.

    ``linear_images`` (not denoised or deconvolved) keep the contrast of the linear
    model but not its sharpness: the calculated images are blurred by each tilt's
    estimated vibration kernel. ``images`` were deconvolved: no blur. ``source`` is
    ``atoms.image_source``, checked by the config.
    """
    has_linear = "linear_images" in series
    if source == "processed" or (source == "auto" and not has_linear):
        if source == "auto":
            log.warning(
                "atoms: the series (processed.nc) has no 'linear_images'; fitting the denoised and "
                "deconvolved 'images', whose contrast is not that of the linear model "
                "(rerun 'hpcaet preprocess' with a version that writes linear_images)."
            )
        return np.asarray(images, dtype=float), None
    if not has_linear:
        raise InputError(
            "atoms.image_source is 'linear' but processed.nc has no 'linear_images'; rerun "
            "'hpcaet preprocess --run DIR --force' with a version that writes them, or set "
            "atoms.image_source to 'auto' or 'processed'."
        )
    if series["linear_images"].shape != images.shape:
        raise InputError(
            f"processed.nc's linear_images have shape {series['linear_images'].shape}, its "
            f"images {images.shape}; they must agree. Rerun 'hpcaet preprocess --run DIR "
            "--force'."
        )
    linear = series["linear_images"].values.astype(float)
    if all(name in series for name in _VIBRATION):
        kernels = vibration_kernels(*(series[n].values for n in _VIBRATION), pixel_size=pixel)
        log.info(
            "atoms: fitting linear_images with the vibration blur of each tilt (amplitudes %s Å)",
            np.round(series["vibration_amplitude"].values, 2).tolist(),
        )
    else:
        log.warning("atoms: processed.nc has no vibration_* estimates; no blur is modelled.")
        kernels = None
    return linear, kernels
