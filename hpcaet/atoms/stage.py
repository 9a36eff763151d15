"""Stage layer of the atoms step: volume and images in, AtomModel out.

``hpcaet atoms --run DIR`` reads ``volume.nc`` (the reconstruct stage) and
``processed.nc`` (the preprocess stage), traces the atoms in the volume, assigns
species and regions, pairs the chalcogens, refines the model against the processed
images and flips the chalcogen pairs, alternating flipping and refinement
``flip_cycles`` times. It writes ``atoms.nc`` (an AtomModel with per-atom layer, region,
pair and quality flags, and the R1 and R factors), figures, and, when the run
directory holds the phantom's ``truth_atoms.nc``, ``scores.json`` with the accuracy of
the model.

Each step's result is checkpointed under ``checkpoints/atoms/`` with a key made of the
config and the inputs' hashes, so a killed run resumes after the last finished step.
The refinement spreads chunks of images over a Dask cluster when one is given.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.atoms.build import build_model
from hpcaet.atoms.quality import field_of_view
from hpcaet.atoms.score import format_scores, score_atoms
from hpcaet.config import Config, science_settings
from hpcaet.io import FLAG_EDGE, DatasetNotFoundError, read_dataset
from hpcaet.io.atomic import atomic_path

__all__ = ["run_atoms", "score_model", "field_of_view", "keep_sites"]

log = logging.getLogger(__name__)


def run_atoms(config: Config, run, client=None) -> dict[str, xr.Dataset]:
    """Run the atoms stage in a run directory.

    Parameters
    ----------
    config : Config
        Uses the ``atoms`` and ``species`` sections (the species cross-sections and
        B-factors are the starting values of the refinement), and ``seed``.
    run : RunDirectory
        Reads ``volume.nc`` and ``processed.nc``; writes figures, checkpoints and, with
        ``truth_atoms.nc`` present, ``scores.json``.
    client : distributed.Client, optional
        Spread the refinement over this cluster.

    Returns
    -------
    dict
        ``{"atoms.nc": AtomModel}``.

    Raises
    ------
    DatasetNotFoundError
        When ``volume.nc`` or ``processed.nc`` is missing (the message names the stage
        to run).
    InputError
        Mismatched voxel and pixel sizes, a series without processed images, or a
        volume without atoms.
    """
    volume = read_input(run, "volume.nc", "Volume", "reconstruct")
    series = read_input(run, "processed.nc", "TiltSeries", "preprocess")
    key = _checkpoint_key(config, volume, series)
    model, history = build_model(
        volume,
        series,
        config,
        client=client,
        checkpoints=Path(run.checkpoints) / "atoms",
        key=key,
    )
    edge = (model["flag"].values & FLAG_EDGE) != 0
    log.info(
        "atoms: %d of %d sites within %.3g Å of the volume's side faces (%s)",
        int(edge.sum()),
        len(edge),
        config.atoms.edge_distance,
        "flagged edge" if config.atoms.edge == "flag" else "left out",
    )
    if config.atoms.edge == "drop":
        model = keep_sites(model, ~edge)
    truth_path = Path(run.root) / "truth_atoms.nc"
    if truth_path.exists():
        truth = read_dataset(truth_path, kind="AtomModel")
        scores, match = score_model(
            model,
            truth,
            max_distance=config.atoms.match_distance,
            field=field_of_view(volume, margin=config.atoms.edge_distance),
            materials=config.materials,
            return_match=True,
        )
        model["true_index"] = (
            "atom",
            match.astype(np.int32),
            {"long_name": "index of the matching true atom, -1 none"},
        )
        _write_json(Path(run.root) / "scores.json", scores)
        log.info("atoms: scores against truth_atoms.nc:\n%s", format_scores(scores))
    from hpcaet.atoms.figures import plot_atoms, plot_refinement

    plot_atoms(model, Path(run.figures) / "atoms.png")
    plot_refinement(history, Path(run.figures) / "atoms_refinement.png")
    return {"atoms.nc": model}


def score_model(model: xr.Dataset, truth: xr.Dataset, *, max_distance: float, **options):
    """:func:`~hpcaet.atoms.score_atoms` of two AtomModel Datasets (options passed on)."""
    region = truth["region"].values if "region" in truth else None
    return score_atoms(
        model["position"].values,
        model["species"].values,
        truth["position"].values,
        truth["species"].values,
        truth_region=region,
        max_distance=max_distance,
        **options,
    )


def keep_sites(model: xr.Dataset, keep: np.ndarray) -> xr.Dataset:
    """The AtomModel with only the sites ``keep`` (bool per site); partners renumbered.

    A kept site whose top/bottom partner goes gets ``pair = -1``.
    """
    keep = np.asarray(keep, bool)
    out = model.isel(atom=np.flatnonzero(keep))
    if "pair" in model:
        new = np.full(len(keep), -1, dtype=np.int64)
        new[keep] = np.arange(int(keep.sum()))
        pair = model["pair"].values[keep]
        out["pair"].values[:] = np.where(pair >= 0, new[np.clip(pair, 0, None)], -1)
    return out


def read_input(run, name: str, kind: str, stage: str, *, reader: str = "atoms") -> xr.Dataset:
    """``name`` of a run directory, checked as ``kind``; a missing file names the stage
    (``stage``) that writes it and the command to run."""
    path = Path(run.root) / name
    if not path.exists():
        raise DatasetNotFoundError(
            f"{path} not found: the {reader} stage needs {name} from the {stage} stage. Run "
            f"'hpcaet {stage} --run {run.root}' first (or 'hpcaet run' for the whole chain)."
        )
    return read_dataset(path, kind=kind)


def _checkpoint_key(config: Config, volume: xr.Dataset, series: xr.Dataset) -> str:
    data = {
        **science_settings(config, ("atoms", "species", "materials")),
        "seed": config.seed,
        "volume": str(volume.attrs.get("config_hash", "")),
        "series": str(series.attrs.get("config_hash", "")),
        "shape": [
            list(volume["density"].shape),
            list(series["images"].shape) if "images" in series else [],
        ],
        "linear": "linear_images" in series,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=True))
