"""Step checkpoints of the atoms step: ``.npz`` files keyed by the config and inputs.

:func:`hpcaet.atoms.build.build_model` saves the traced sites and each refine/flip
cycle's result with :class:`StepCheckpoints`, so a killed run resumes after the last
finished step; :func:`result_arrays` and :func:`result_from_arrays` turn a
:class:`~hpcaet.atoms.refine.RefineResult` into arrays and back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hpcaet.atoms.refine import RefineResult
from hpcaet.parallel.tasks import Codec, TaskStore

__all__ = ["StepCheckpoints", "result_arrays", "result_from_arrays"]

log = logging.getLogger(__name__)


#: Step results are dicts of arrays (NaN allowed: e.g. an R-free that was not drawn).
_STEP = Codec(encode=dict, decode=dict)


class StepCheckpoints:
    """Step results as ``.npz`` files (a :class:`hpcaet.parallel.TaskStore`), valid
    only for the same key: the file name carries the key, so a run with other inputs
    or settings never reads them.
    """

    def __init__(self, folder: Path | None, key: str) -> None:
        self.key = key
        self._store = TaskStore(folder, f"atoms-{key[:16]}", _STEP) if folder else None

    def load(self, name: str) -> dict | None:
        if self._store is None:
            return None
        out = self._store.load(name)
        if out is not None:
            log.info("atoms: resumed step %s from %s", name, self._store.path(name))
        return out

    def save(self, name: str, arrays: dict) -> None:
        if self._store is not None:
            self._store.save(name, arrays)


def result_arrays(res: RefineResult, species: np.ndarray, flips: np.ndarray) -> dict:
    """A refinement's result, the species and the flip counts as named arrays."""
    names = sorted(res.weights)
    return {
        "position": res.position,
        "species": np.asarray(species).astype("<U3"),
        "names": np.array(names, dtype="<U3"),
        "weights": np.array([res.weights[k] for k in names]),
        "b_factors": np.array([res.b_factors[k] for k in names]),
        "scale": res.scale,
        "offset": res.offset,
        "shifts": res.shifts,
        "history": res.history,
        "R": np.array([res.R1, res.R]),
        "flips": np.asarray(flips),
    }


def result_from_arrays(a: dict) -> tuple[RefineResult, np.ndarray]:
    """The inverse of :func:`result_arrays`: the RefineResult and the species."""
    names = [str(k) for k in a["names"]]
    res = RefineResult(
        position=a["position"],
        weights=dict(zip(names, a["weights"].tolist(), strict=True)),
        b_factors=dict(zip(names, a["b_factors"].tolist(), strict=True)),
        scale=a["scale"],
        offset=a["offset"],
        shifts=a["shifts"],
        history=a["history"],
        R1=float(a["R"][0]),
        R=float(a["R"][1]),
    )
    return res, a["species"].astype(str)
