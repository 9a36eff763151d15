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
from pathlib import Path

import numpy as np

from hpcaet.io import atomic_path

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

    Each result is saved as it comes (written whole or not at all); a checkpoint that
    cannot be read (a half-written file of an older version, a damaged disk) is
    recomputed.
    """
    results: list[_Record | None] = [None] * len(args_list)
    paths = [None] * len(args_list)
    if checkpoint_dir is not None:
        for j in range(len(args_list)):
            paths[j] = Path(checkpoint_dir) / f"{prefix}-tilt{j:03d}.npz"
            results[j] = _load(paths[j], record)
    todo = [j for j in range(len(args_list)) if results[j] is None]
    if todo and client is not None:
        from distributed import as_completed

        futures = {
            client.submit(func, *args_list[j], key=f"{prefix}-tilt{j}", pure=False, **options): j
            for j in todo
        }
        for done, future in enumerate(as_completed(futures), start=1):
            j = futures[future]
            results[j] = future.result()
            _save(paths[j], results[j])
            log.info("%s: tilt %d done (%d/%d)", label, j + 1, done, len(todo))
    else:
        for j in todo:
            results[j] = func(*args_list[j], **options)
            _save(paths[j], results[j])
            log.info("%s: tilt %d/%d done", label, j + 1, len(args_list))
    return results


def _save(path: Path | None, result: _Record) -> None:
    if path is not None:
        with atomic_path(path) as tmp:
            np.savez(tmp, **result.arrays())


def _load(path: Path, record: type[_Record]) -> _Record | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            return record.from_arrays(data)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        log.warning("preprocess: checkpoint %s is unreadable (%s); recomputing it", path, exc)
        return None
