"""Stage layer of the reconstruction: run directory in, ``volume.nc`` out.

Reads ``processed.nc`` (aligned ``images`` and calibrated ``euler``, written by the
preprocess stage); a run directory without it is an error that names the stage to run
(``hpcaet preprocess --run DIR``). **For testing the reconstruction alone**,
``reconstruct.inputs: truth`` builds ideal processed images from the simulator's truth
in ``tilt_series.nc`` instead: ``clean_images`` (noise-, drift- and background-free)
shifted back by ``true_offset`` so the rotation centre sits on the image centre, with
``true_euler``. That input exists only for simulated runs and is never a substitute
for processing real data.

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
from hpcaet.io import DatasetNotFoundError, make_volume, read_dataset
from hpcaet.reconstruct._common import SheetSupport
from hpcaet.reconstruct.distributed import reconstruct_field
from hpcaet.reconstruct.figures import plot_volume
from hpcaet.reconstruct.windows import plan_windows

__all__ = ["load_projections", "algorithm_options", "reconstruct_volume", "run_reconstruct"]

log = logging.getLogger(__name__)


def load_projections(
    run, *, inputs: str = "processed"
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Images (dimensionless), Euler angles [deg], pixel size [Å] and their source.

    Parameters
    ----------
    run : RunDirectory
    inputs : {"processed", "truth"}, default "processed"
        ``"processed"``: ``processed.nc`` of the preprocess stage. ``"truth"``: the
        simulator's ``clean_images`` moved back by ``true_offset``, with ``true_euler``
        (from ``tilt_series.nc``), for testing the reconstruction alone.

    Returns
    -------
    images : ndarray of shape (n_tilt, ny, nx), float32
    euler : ndarray of shape (n_tilt, 3)
    pixel_size : float
    source : str
        ``"processed.nc"`` or ``"tilt_series.nc (truth)"``.

    Raises
    ------
    DatasetNotFoundError
        ``processed.nc`` (or, with ``inputs="truth"``, ``tilt_series.nc``) is missing.
    InputError
        An unknown ``inputs``, a ``processed.nc`` without images, or a tilt series
        without the simulator's truth.
    """
    if inputs not in ("processed", "truth"):
        raise InputError(
            f"inputs must be 'processed' or 'truth'; got {inputs!r}. Use 'processed' for "
            "real work; 'truth' only tests the reconstruction on simulated runs."
        )
    if inputs == "processed":
        processed = run.file("processed.nc")
        if not processed.exists():
            raise DatasetNotFoundError(
                f"{processed} does not exist: the reconstruction needs the aligned images "
                f"of the preprocess stage. Run `hpcaet preprocess --run {run.root}` first "
                "(or, only to test the reconstruction on a simulated run, set "
                "reconstruct.inputs: truth)."
            )
        ds = read_dataset(processed)
        if "images" not in ds:
            raise InputError(
                f"{processed} has no 'images'; rerun the preprocess stage "
                f"(hpcaet preprocess --run {run.root})."
            )
        images = ds["images"].values
        euler = ds["euler"].values
        source = "processed.nc"
    else:
        path = run.file("tilt_series.nc")
        if not path.exists():
            raise DatasetNotFoundError(
                f"{path} does not exist; reconstruct.inputs: truth needs a simulated run "
                f"(hpcaet simulate --run {run.root})."
            )
        ds = read_dataset(path)
        missing = [v for v in ("clean_images", "true_offset", "true_euler") if v not in ds]
        if missing:
            raise InputError(
                f"{path} lacks {missing}, which reconstruct.inputs: truth needs (only "
                "simulated tilt series have them); set reconstruct.inputs: processed and "
                f"run `hpcaet preprocess --run {run.root}` first."
            )
        log.warning(
            "reconstruct: inputs = truth: reconstructing the simulator's clean_images "
            "(shifted back by true_offset) with true_euler from %s, not processed.nc",
            path,
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
        source = "tilt_series.nc (truth)"
    pixel_size = float(ds.attrs["pixel_size"])
    electrons = float(ds.attrs["dose"]) / len(images) * pixel_size**2
    return (images / electrons).astype(np.float32), euler, pixel_size, source


def algorithm_options(rc: ReconstructConfig) -> dict:
    """Keyword options of the configured window algorithm."""
    sheet = None
    if rc.support == "sheet":
        sheet = SheetSupport(
            thickness=float(rc.sheet_thickness),
            smoothing=float(rc.sheet_smoothing),
            start=float(rc.sheet_start),
        )
    if rc.algorithm == "genfire":
        return dict(
            iterations=rc.iterations,
            oversampling=rc.oversampling,
            interpolation_radius=rc.interpolation_radius,
            gridding=rc.gridding,
            confidence_weighting=rc.confidence_weighting,
            extension=rc.extension,
            rfree_fraction=rc.rfree_fraction,
            sheet=sheet,
            workers=rc.fft_workers,
        )
    return dict(
        iterations=rc.iterations,
        step=rc.resire_step,
        momentum=rc.momentum,
        rfree_fraction=rc.rfree_fraction,
        sheet=sheet,
        fit_pixels=rc.fit_pixels,
    )


def field_inputs(config: Config, run):
    """The run's projections (:func:`load_projections`) and the configured window plan.

    Returns
    -------
    images, euler, pixel_size, source
        As :func:`load_projections`.
    plan : WindowPlan
        :func:`~hpcaet.reconstruct.plan_windows` of ``config.reconstruct`` over them.
    """
    rc = config.reconstruct
    images, euler, pixel_size, source = load_projections(run, inputs=rc.inputs)
    plan = plan_windows(
        images.shape[1:],
        euler,
        pixel_size=pixel_size,
        window=rc.window,
        step=rc.step,
        support_z=rc.support_z,
        tiles=None if rc.tiles is None else tuple(rc.tiles),
    )
    return images, euler, pixel_size, source, plan


def reconstruct_volume(config: Config, run, client=None) -> xr.Dataset:
    """Reconstruct the run's field into a Volume Dataset (the stage's work).

    Parameters
    ----------
    config : Config
        Uses ``reconstruct`` and ``seed``.
    run : RunDirectory
        Reads ``processed.nc`` (or, with ``reconstruct.inputs: truth``, the simulator's
        truth in ``tilt_series.nc``); checkpoints under
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
    images, euler, pixel_size, source, plan = field_inputs(config, run)
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
        support=rc.support,
        source=source,
    )


def run_reconstruct(config: Config, run, client=None) -> dict[str, xr.Dataset]:
    """The pipeline stage: ``volume.nc`` and ``figures/volume.png``."""
    volume = reconstruct_volume(config, run, client)
    plot_volume(volume, run.figures / "volume.png")
    return {"volume.nc": volume}
