"""A dynamical tilt series: each tilt drawn by multislice, tile by tile.

:func:`dynamical_pictures` replaces the linear model's picture of the specimen
(:func:`hpcaet.phantom.simulate.render_linear`) by the multislice one, on the same
canvas: the probe positions are the detector-spaced samples of the canvas
(:meth:`~hpcaet.phantom.simulate.TiltCanvas.probe_positions`), split into tiles of
``tile × tile`` positions; each tile of each tilt is one task of the task layer
(:func:`hpcaet.parallel.tasks.map_tasks`), saved as it finishes, so a killed worker
loses one tile and a rerun computes only what is missing. The atoms are rotated to the
tilt inside the task (:func:`hpcaet.forward.adf.adf_tile` with ``euler``; abTEM's
``tilt=`` is a small beam tilt, not a specimen tilt). The tiles of a tilt are then put
together, interpolated to the canvas' fine grid (exact for an ADF image sampled at its
Nyquist step) and blurred by the incoherent Gaussian;
:func:`hpcaet.phantom.simulate.record_tilt` adds vibration, background, drift, scan
distortion and noise exactly as for the linear model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hpcaet.errors import InputError
from hpcaet.forward.adf import ADFOptics, ADFSettings, adf_tile
from hpcaet.parallel.tasks import ARRAY, Executor, TaskStore, content_key, map_tasks
from hpcaet.phantom.simulate import TiltCanvas, upsample_probe_image

__all__ = ["TileJob", "plan_tiles", "dynamical_pictures"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileJob:
    """One tile of probe positions of one tilt.

    Attributes
    ----------
    tilt : int
        Index of the tilt.
    row, col : int
        Index of the tile's first probe position in the tilt's probe grid.
    shape : (int, int)
        Probe positions ``(rows, cols)`` of the tile.
    origin : (float, float)
        ``x, y`` of its first probe position, microscope frame [Å].
    """

    tilt: int
    row: int
    col: int
    shape: tuple[int, int]
    origin: tuple[float, float]


def plan_tiles(canvases: list[TiltCanvas], tile: int) -> list[TileJob]:
    """Cut every tilt's probe grid into tiles of at most ``tile × tile`` positions."""
    jobs = []
    for j, canvas in enumerate(canvases):
        x, y = canvas.probe_positions()
        step = canvas.pixel_size
        for r in range(0, len(y), tile):
            for c in range(0, len(x), tile):
                shape = (min(tile, len(y) - r), min(tile, len(x) - c))
                jobs.append(TileJob(j, r, c, shape, (float(x[c]), float(y[r]))))
                if not np.allclose(np.diff(x[c : c + shape[1]]), step):
                    raise InputError("probe positions of a canvas must be evenly spaced.")
    return jobs


def dynamical_pictures(
    positions: np.ndarray,
    symbols: np.ndarray,
    euler: np.ndarray,
    canvases: list[TiltCanvas],
    *,
    optics: ADFOptics,
    settings: ADFSettings,
    incoherent_sigma: float,
    executor: Executor | None = None,
    store_dir=None,
) -> list[np.ndarray]:
    """The multislice picture of the specimen on each tilt's canvas.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions in the sample frame [Å] (no vacancies).
    symbols : ndarray of str, shape (n,)
        Their chemical symbols.
    euler : ndarray of shape (m, 3)
        True orientation of each tilt [deg].
    canvases : list of TiltCanvas
        The grid of each tilt (:func:`hpcaet.phantom.simulate.tilt_canvas`).
    optics, settings
        The microscope and the multislice numerics.
    incoherent_sigma : float
        Standard deviation of the Gaussian blur for the source size and other
        incoherent effects [Å].
    executor : Executor, optional
        Where the tiles run (default: here, in turn).
    store_dir : path, optional
        Folder of the tile checkpoints; None keeps none.

    Returns
    -------
    list of ndarray
        One picture per tilt, of shape ``canvas.big``: the fraction of one probe
        electron on the detector per probe position.
    """
    euler = np.atleast_2d(np.asarray(euler, float))
    if len(canvases) != len(euler):
        raise InputError(f"one canvas per tilt is needed; got {len(canvases)} for {len(euler)}.")
    positions = np.asarray(positions, float).reshape(-1, 3)
    symbols = np.asarray(symbols).astype(str)
    step = canvases[0].pixel_size
    jobs = plan_tiles(canvases, settings.tile)
    # a tile's result depends on the atoms, its tilt, where it is and the numerics
    salt = content_key(
        {"positions": positions, "symbols": symbols.astype("U3"), "step": step}, repr(optics)
    )
    salt += repr(settings)
    keys = [
        content_key({"euler": euler[t.tilt], "origin": t.origin, "shape": t.shape}, salt)
        for t in jobs
    ]
    tiles = map_tasks(
        adf_tile,
        [{"euler": euler[t.tilt], "origin": t.origin, "shape": t.shape} for t in jobs],
        keys=keys,
        shared={
            "positions": positions,
            "symbols": symbols,
            "step": step,
            "optics": optics,
            "settings": settings,
        },
        executor=executor,
        store=None if store_dir is None else TaskStore(store_dir, "multislice", ARRAY),
        label="multislice tiles",
    )
    pictures = []
    for j, canvas in enumerate(canvases):
        x, y = canvas.probe_positions()
        coarse = np.zeros((len(y), len(x)))
        for t, image in zip(jobs, tiles, strict=True):
            if t.tilt == j:
                coarse[t.row : t.row + t.shape[0], t.col : t.col + t.shape[1]] = image
        fine = upsample_probe_image(coarse)
        if incoherent_sigma > 0:
            fine = ndimage.gaussian_filter(fine, incoherent_sigma / canvas.fine, mode="nearest")
        pictures.append(np.clip(fine, 0.0, None))
    return pictures
