"""Stage layer of the reconstruction: run directory in, ``volume.nc`` out.

Reads ``processed.nc`` (aligned ``images`` and calibrated ``euler``, written by the
preprocess stage). **Development fallback**: while a run directory has no
``processed.nc``, the stage logs a warning and builds ideal processed images from the
simulator's truth in ``tilt_series.nc``: ``clean_images`` (noise-, drift- and
background-free) shifted back by ``true_offset`` so the rotation centre sits on the
image centre, with ``true_euler``. This keeps the demo chain running before the
preprocess stage exists; it is no substitute for processing real data.

Images are divided by the electrons per pixel of one tilt (``dose / n_tilt *
pixel_size**2``), which turns counts summed over a tilt's frames into the
dimensionless ADF signal of :mod:`hpcaet.forward`; the stitched volume divided by the
voxel size is then a density in 1/Å comparable with
:func:`hpcaet.forward.render_volume`.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr
from scipy import ndimage

from hpcaet.config import Config, ReconstructConfig
from hpcaet.errors import InputError
from hpcaet.io import make_volume, read_dataset
from hpcaet.reconstruct.distributed import reconstruct_field
from hpcaet.reconstruct.figures import plot_volume
from hpcaet.reconstruct.windows import plan_windows

__all__ = ["load_projections", "algorithm_options", "reconstruct_volume", "run_reconstruct"]

log = logging.getLogger(__name__)


def load_projections(run) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Images (dimensionless), Euler angles [deg], pixel size [Å] and their source.

    Parameters
    ----------
    run : RunDirectory

    Returns
    -------
    images : ndarray of shape (n_tilt, ny, nx), float32
    euler : ndarray of shape (n_tilt, 3)
    pixel_size : float
    source : str
        ``"processed.nc"`` or ``"tilt_series.nc (truth fallback)"``.
    """
    processed = run.file("processed.nc")
    if processed.exists():
        ds = read_dataset(processed)
        if "images" not in ds:
            raise InputError(
                f"{processed} has no 'images'; rerun the preprocess stage "
                "(hpcaet preprocess --run RUN)."
            )
        images = ds["images"].values
        euler = ds["euler"].values
        source = "processed.nc"
    else:
        path = run.file("tilt_series.nc")
        ds = read_dataset(path)
        missing = [v for v in ("clean_images", "true_offset", "true_euler") if v not in ds]
        if missing:
            raise InputError(
                f"{run.root} has no processed.nc, and {path.name} lacks {missing} for the "
                "development fallback; run the preprocess stage first."
            )
        log.warning(
            "reconstruct: no processed.nc in %s; DEVELOPMENT FALLBACK: using the "
            "simulator's clean_images, shifted back by true_offset, with true_euler",
            run.root,
        )
        pixel = float(ds.attrs["pixel_size"])
        offsets = ds["true_offset"].values / pixel  # (tilt, [x, y]) [pixel]
        images = np.stack(
            [
                ndimage.shift(img, (-dy, -dx), order=3, mode="nearest")
                for img, (dx, dy) in zip(ds["clean_images"].values, offsets, strict=True)
            ]
        )
        euler = ds["true_euler"].values
        source = "tilt_series.nc (truth fallback)"
    pixel_size = float(ds.attrs["pixel_size"])
    electrons = float(ds.attrs["dose"]) / len(images) * pixel_size**2
    return (images / electrons).astype(np.float32), euler, pixel_size, source


def algorithm_options(rc: ReconstructConfig) -> dict:
    """Keyword options of the configured window algorithm."""
    if rc.algorithm == "genfire":
        return dict(
            iterations=rc.iterations,
            oversampling=rc.oversampling,
            interpolation_radius=rc.interpolation_radius,
            gridding=rc.gridding,
            confidence_weighting=rc.confidence_weighting,
            extension=rc.extension,
            rfree_fraction=rc.rfree_fraction,
            workers=rc.fft_workers,
        )
    return dict(
        iterations=rc.iterations,
        step=rc.resire_step,
        momentum=rc.momentum,
        rfree_fraction=rc.rfree_fraction,
    )


def reconstruct_volume(config: Config, run, client=None) -> xr.Dataset:
    """Reconstruct the run's field into a Volume Dataset (the stage's work).

    Parameters
    ----------
    config : Config
        Uses ``reconstruct`` and ``seed``.
    run : RunDirectory
        Reads ``processed.nc`` (or the fallback); checkpoints under
        ``run.checkpoints / "reconstruct"``.
    client : distributed.Client, optional
        Spread the windows over this cluster.

    Returns
    -------
    xarray.Dataset
        Volume: ``density`` (z, y, x) [1/Å], the window-mean ``error_history`` and
        ``rfree_history``, attrs ``algorithm``, ``iterations``, ``oversampling``,
        ``interpolation_radius``, ``window_plan`` (JSON) and ``source``.
    """
    rc = config.reconstruct
    images, euler, pixel_size, source = load_projections(run)
    plan = plan_windows(
        images.shape[1:],
        euler,
        pixel_size=pixel_size,
        window=rc.window,
        step=rc.step,
        support_z=rc.support_z,
        tiles=None if rc.tiles is None else tuple(rc.tiles),
    )
    log.info(
        "reconstruct: %s, %d x %d windows of %d voxels, volume %s voxels",
        rc.algorithm,
        plan.tiles[0],
        plan.tiles[1],
        plan.window,
        plan.shape,
    )
    result = reconstruct_field(
        images,
        euler,
        plan,
        algorithm=rc.algorithm,
        options=algorithm_options(rc),
        seed=config.seed,
        client=client,
        checkpoint_dir=run.checkpoints / "reconstruct",
    )
    rfree = result.rfree
    has_rfree = np.isfinite(rfree).any() and result.error.shape[1] > 0
    fourier = rc.algorithm == "genfire"
    return make_volume(
        result.volume / np.float32(pixel_size),
        voxel_size=pixel_size,
        algorithm="GENFIRE" if fourier else "RESIRE",
        error_history=result.error.mean(axis=0),
        rfree_history=np.nanmean(rfree, axis=0) if has_rfree else None,
        iterations=int(rc.iterations),
        oversampling=float(rc.oversampling) if fourier else None,
        interpolation_radius=float(rc.interpolation_radius) if fourier else None,
        window_plan=plan.to_json(),
        source=source,
    )


def run_reconstruct(config: Config, run, client=None) -> dict[str, xr.Dataset]:
    """The pipeline stage: ``volume.nc`` and ``figures/volume.png``."""
    volume = reconstruct_volume(config, run, client)
    plot_volume(volume, run.figures / "volume.png")
    return {"volume.nc": volume}
