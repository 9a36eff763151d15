"""Per-tilt results of the preprocess stage and their checkpointed map.

Phase 1 of every tilt gives a :class:`TiltStart`, phase 3 a :class:`TiltFinish`: frozen
records of plain arrays, so the phases pass typed values (not string-keyed dicts) and a
checkpoint is the record's arrays as they are. :func:`map_tilts` runs a phase over the
tilts, here or on Dask, saving each result whole as soon as it is computed and
recomputing a checkpoint that cannot be read.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from hpcaet.parallel.tasks import TaskStore, executor_for, map_tasks, record_codec

__all__ = ["TiltStart", "TiltFinish", "map_tilts"]

log = logging.getLogger(__name__)


class _Record:
    """A per-tilt result of plain arrays: stored in a checkpoint as they are."""

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_arrays(cls, data) -> _Record:
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {}
        for name, kind in kinds.items():
            value = data[name]
            values[name] = value.item() if kind in ("float", "bool") else np.asarray(value)
        return cls(**values)


@dataclass(frozen=True)
class TiltStart(_Record):
    """Phase 1 of one tilt: drift, frame sum, denoising, background, metal columns.

    Images are (ny, nx) [counts]; ``velocity`` and ``drift`` [pixel] (x, y);
    ``columns`` (n, 2) fractional (row, col) and ``intensity`` (n,) of the metal columns.
    ``refitted``: the background is the sheet model's (set after phase 2).
    """

    velocity: np.ndarray
    drift: np.ndarray
    measured: np.ndarray
    drift_residual: float
    summed: np.ndarray
    denoised: np.ndarray
    background: np.ndarray
    subtracted: np.ndarray
    columns: np.ndarray
    intensity: np.ndarray
    hollow: float
    refitted: bool = False


@dataclass(frozen=True)
class TiltFinish(_Record):
    """Phase 3 of one tilt: column bias, deconvolution and alignment.

    ``bias`` and ``shift`` (row, col) [pixel]; ``vibration`` the kernel (direction,
    amplitude, width, misfit); ``crop`` its crop corner; images (ny, nx) [counts]:
    ``deconvolved``, the aligned ``image`` and the aligned ``linear`` image (neither
    denoised nor deconvolved).
    """

    bias: np.ndarray
    vibration: np.ndarray
    crop: np.ndarray
    deconvolved: np.ndarray
    shift: np.ndarray
    image: np.ndarray
    linear: np.ndarray


def map_tilts(
    func, args_list, options, client, checkpoint_dir, prefix, label, *, record
) -> list[_Record]:
    """Run ``func(*args, **options)`` per tilt, locally or on Dask, with checkpoints.

    The stage's use of :func:`hpcaet.parallel.map_tasks`: one task per tilt, keyed
    ``tilt000``, ... under ``prefix`` (the stage's input hash); each result is saved as
    it comes (written whole or not at all), and a checkpoint that cannot be read is
    recomputed.
    """
    return map_tasks(
        func,
        [tuple(args) for args in args_list],
        keys=[f"tilt{j:03d}" for j in range(len(args_list))],
        shared=options,
        executor=executor_for(client, label=prefix),
        store=TaskStore(checkpoint_dir, prefix, record_codec(record)),
        label=label,
    )
