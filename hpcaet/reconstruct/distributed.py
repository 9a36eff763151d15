"""Reconstruct a whole field window by window, serially or as Dask tasks, resumably.

Each window is one pure task, :func:`reconstruct_window`, of (spline coefficients of
the images, angles, window, settings, seed), mapped by the task layer
(:func:`hpcaet.parallel.map_tasks`): with a ``distributed`` client the coefficients are
scattered once to every worker and each task is submitted under a deterministic key;
results are taken as they complete and written at once to a per-window checkpoint,
``<checkpoint_dir>/<tag>-<window key>.npz``, where ``tag`` is a hash of the inputs and
the settings that change the result (not the FFT threads). A rerun with the same
inputs loads the finished windows and computes only the rest, so a killed run resumes
where it stopped and gives the same volume. If a worker dies, the scheduler reruns its
tasks elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpcaet.errors import InputError
from hpcaet.parallel.tasks import Codec, TaskStore, executor_for, map_tasks
from hpcaet.reconstruct._common import WindowResult
from hpcaet.reconstruct.genfire_window import genfire
from hpcaet.reconstruct.resire_window import resire
from hpcaet.reconstruct.windows import (
    Window,
    WindowPlan,
    central_tile,
    check_field,
    crop_window,
    plan_windows,
    spline_coefficients,
    stitch,
)

__all__ = ["ALGORITHMS", "FieldResult", "reconstruct_window", "reconstruct_field"]

log = logging.getLogger(__name__)

#: Window reconstructors by name; each takes (images, euler, *, support_z, rng, **options).
ALGORITHMS = {"genfire": genfire, "resire": resire}
#: Options that change the speed, not the result (left out of the checkpoint key).
_EXECUTION_OPTIONS = ("workers",)


def _finite_window(out: dict) -> bool:
    return bool(np.all(np.isfinite(out["tile"])) and np.all(np.isfinite(out["error"])))


#: A window's checkpoint: its tile and histories (the R-free may be NaN: none withheld).
_WINDOW = Codec(
    encode=dict,
    decode=lambda d: {name: d[name] for name in ("tile", "error", "rfree")},
    valid=_finite_window,
)


@dataclass(frozen=True)
class FieldResult:
    """Output of :func:`reconstruct_field`.

    Attributes
    ----------
    volume : ndarray of shape plan.shape, float32
        Stitched volume in image units per voxel.
    error, rfree : ndarray of shape (n_windows, iterations)
        Per-window histories, windows in plan order.
    computed, loaded : tuple of str
        Keys of the windows computed in this call and of those read from checkpoints.
    """

    volume: np.ndarray
    error: np.ndarray
    rfree: np.ndarray
    computed: tuple[str, ...]
    loaded: tuple[str, ...]


def reconstruct_window(
    coefficients: np.ndarray,
    euler: np.ndarray,
    window: Window,
    plan: WindowPlan,
    *,
    algorithm: str,
    options: Mapping[str, object],
    seed: int,
) -> dict[str, np.ndarray]:
    """Crop, reconstruct and cut out the tile of one window (one Dask task).

    Parameters
    ----------
    coefficients : ndarray of shape (n_tilt, ny, nx)
        Spline coefficients of the images (:func:`spline_coefficients`).
    euler : ndarray of shape (n_tilt, 3)
        Euler angles [deg].
    window : Window
    plan : WindowPlan
    algorithm : {"genfire", "resire"}
    options : mapping
        Keyword options of the algorithm (iterations, ...).
    seed : int
        With the window's indices, seeds the R-free choice.

    Returns
    -------
    dict
        ``tile`` (support_z, step, step) float32, ``error`` and ``rfree`` (iterations,).
    """
    crops = crop_window(
        coefficients,
        euler,
        window.centre,
        window=plan.window,
        pixel_size=plan.voxel_size,
        prefiltered=True,
    )
    rng = np.random.default_rng(np.random.SeedSequence([seed, window.row, window.col]))
    result: WindowResult = ALGORITHMS[algorithm](
        crops, euler, support_z=plan.support_z, rng=rng, **options
    )
    return {"tile": central_tile(plan, result.volume), "error": result.error, "rfree": result.rfree}


def reconstruct_field(
    images: np.ndarray,
    euler: np.ndarray,
    plan: WindowPlan,
    *,
    algorithm: str = "genfire",
    options: Mapping[str, object] | None = None,
    seed: int = 0,
    client=None,
    checkpoint_dir: str | Path | None = None,
) -> FieldResult:
    """Reconstruct every window of a plan and stitch the tiles.

    Parameters
    ----------
    images : ndarray of shape (n_tilt, ny, nx)
        Aligned images, rotation centre on pixel ``(ny // 2, nx // 2)`` [image units].
    euler : ndarray of shape (n_tilt, 3)
        Euler angles (Z, Y, X) [deg].
    plan : WindowPlan
        From :func:`~hpcaet.reconstruct.plan_windows`.
    algorithm : {"genfire", "resire"}, default "genfire"
    options : mapping, optional
        Keyword options of the algorithm, e.g. ``{"iterations": 1000}``.
    seed : int, default 0
        Seeds each window's R-free choice (with its indices).
    client : distributed.Client, optional
        Run the windows as tasks on this cluster; without one they run here in turn.
    checkpoint_dir : path, optional
        Directory of per-window checkpoints; without it nothing is saved.

    Returns
    -------
    FieldResult

    Raises
    ------
    InputError
        Bad images or angles, an unknown algorithm, or a plan that does not fit the
        images; all checked before any window is scheduled.
    """
    imgs, angles = check_field(images, euler)
    if algorithm not in ALGORITHMS:
        raise InputError(
            f"unknown reconstruction algorithm {algorithm!r}; choose one of {list(ALGORITHMS)}."
        )
    options = dict(options or {})
    # The plan must fit these images: checked here, before anything is scheduled.
    plan_windows(
        imgs.shape[1:],
        angles,
        pixel_size=plan.voxel_size,
        window=plan.window,
        step=plan.step,
        support_z=plan.support_z,
        tiles=plan.tiles,
    )
    windows = plan.windows()
    tag = _tag(imgs, angles, plan, algorithm, options, seed)
    report: dict = {}
    outputs = map_tasks(
        reconstruct_window,
        [{"window": w} for w in windows],
        keys=[w.key for w in windows],
        shared={
            "coefficients": spline_coefficients(imgs),
            "euler": angles,
            "plan": plan,
            "algorithm": algorithm,
            "options": options,
            "seed": seed,
        },
        executor=executor_for(client, label=f"reconstruct-{tag[:12]}"),
        store=TaskStore(checkpoint_dir, tag, _WINDOW),
        label=f"reconstruct ({algorithm}): windows",
        report=report,
    )
    results = {w.key: out for w, out in zip(windows, outputs, strict=True)}
    volume = stitch(plan, {k: r["tile"] for k, r in results.items()})
    return FieldResult(
        volume=volume,
        error=np.stack([results[w.key]["error"] for w in windows]),
        rfree=np.stack([results[w.key]["rfree"] for w in windows]),
        computed=tuple(report["computed"]),
        loaded=tuple(report["loaded"]),
    )


def _tag(images, euler, plan, algorithm, options, seed) -> str:
    """Hash of everything a window's result depends on."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(euler, dtype=np.float64).tobytes())
    # execution settings (FFT threads) leave the result as it is: not hashed
    science = sorted((k, v) for k, v in options.items() if k not in _EXECUTION_OPTIONS)
    h.update(json.dumps([plan.to_json(), algorithm, science, int(seed)], default=str).encode())
    return h.hexdigest()[:16]
