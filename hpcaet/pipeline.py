"""Run configured stages into a run directory, skipping what is already done.

A run directory ``runs/NAME/`` holds the resolved ``config.yaml``, one netCDF file per
stage, ``figures/`` and ``checkpoints/``. Each stage output records the hash of the
config sections it depends on (attr ``config_hash``); a re-run with the same config
finds the file, checks the hash and skips the stage, so an interrupted run resumes
at the first unfinished stage. A changed config re-runs the stages it touches.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from hpcaet.config import Config, config_to_dict, science_settings
from hpcaet.errors import HpcaetError
from hpcaet.io import read_dataset, write_dataset
from hpcaet.parallel.threads import pinned_threads

__all__ = [
    "RunDirectory",
    "run_stages",
    "check_stages",
    "STAGES",
    "stage_hash",
    "imported_series",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDirectory:
    """Paths of a run directory (created on first use)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def file(self, name: str) -> Path:
        return self.root / name

    def prepare(self, config: Config) -> None:
        self.figures.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
        (self.root / "config.yaml").write_text(text)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: which config sections it reads and which files it writes."""

    name: str
    help: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable  # (config, run: RunDirectory, client) -> dict[file name, Dataset]
    # input files the stage cannot start without: each group is met by any one of its
    # files, present in the run directory or written by an earlier stage of the run
    required: tuple[tuple[str, ...], ...] = ()


def stage_hash(config: Config, stage: Stage) -> str:
    """Hash of what a stage's outputs depend on: its config sections (less the
    execution settings, :func:`hpcaet.config.science_settings`), the seed, and the
    hashes of the stages that write its inputs (so it follows every stage upstream).
    """
    producers = sorted(
        {other.name for other in STAGES.values() for f in stage.inputs if f in other.outputs}
        - {stage.name}
    )
    data = {
        "sections": science_settings(config, stage.sections),
        "seed": config.seed,
        "inputs": {name: stage_hash(config, STAGES[name]) for name in producers},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _simulate(config: Config, run: RunDirectory, client) -> dict:
    from hpcaet.phantom.figures import plot_phantom, plot_tilt_series
    from hpcaet.phantom.stage import make_phantom, simulate_tilt_series

    model = make_phantom(config)
    series = simulate_tilt_series(model, config, client=client, checkpoints=run.checkpoints)
    plot_phantom(model, run.figures / "truth_atoms.png")
    plot_tilt_series(series, run.figures / "tilt_series.png")
    if config.imaging.model == "linear" and config.imaging.multislice.compare_crop > 0:
        _compare_image_models(config, run, client, model, series)
    return {"truth_atoms.nc": model, "tilt_series.nc": series}


def _compare_image_models(config: Config, run: RunDirectory, client, model, series) -> None:
    from hpcaet.io.atomic import atomic_path
    from hpcaet.parallel.tasks import executor_for
    from hpcaet.phantom.compare import compare_image_models, plot_comparison

    euler = series["true_euler"].values
    steepest = euler[int(abs(euler[:, 1]).argmax())]
    result = compare_image_models(
        model,
        config,
        crop=config.imaging.multislice.compare_crop,
        euler=steepest,
        executor=executor_for(client, label="simulate"),
        store_dir=run.checkpoints,
    )
    plot_comparison(result, run.figures / "multislice_check.png")
    with atomic_path(run.file("multislice_check.json")) as tmp:
        tmp.write_text(json.dumps(result.numbers(), indent=2))
    log.info(
        "simulate: multislice check at tilt %s: correlation %.3f with the linear image, "
        "signal x %.2f, rms difference %.0f %% of the contrast",
        steepest.round(1).tolist(),
        result.correlation,
        result.signal_ratio,
        100 * result.difference,
    )


def _eels(config: Config, run: RunDirectory, client) -> dict:
    from hpcaet.eels.stage import run_eels_stage

    return run_eels_stage(config, run, client)


def _preprocess(config: Config, run: RunDirectory, client) -> dict:
    from hpcaet.preprocess.stage import run_preprocess

    return run_preprocess(config, run, client)


def _reconstruct(config: Config, run: RunDirectory, client) -> dict:
    from hpcaet.reconstruct.stage import run_reconstruct

    return run_reconstruct(config, run, client)


def _atoms(config: Config, run: RunDirectory, client) -> dict:
    from hpcaet.atoms.stage import run_atoms

    return run_atoms(config, run, client)


def _dynamic(config: Config, run: RunDirectory, client) -> dict:
    from hpcaet.atoms.dynamic_stage import run_dynamic

    return run_dynamic(config, run, client)


def _structure(config: Config, run: RunDirectory, client) -> dict:
    from hpcaet.structure.stage import run_structure

    return run_structure(config, run, client)


STAGES: dict[str, Stage] = {
    "simulate": Stage(
        name="simulate",
        help="build the phantom and simulate its raw tilt series",
        sections=("materials", "phantom", "species", "imaging"),
        inputs=(),
        outputs=("truth_atoms.nc", "tilt_series.nc"),
        run=_simulate,
    ),
    "preprocess": Stage(
        name="preprocess",
        help="drift, denoising, background, angle calibration, vibration, alignment",
        sections=("materials", "preprocess", "species", "imaging"),
        inputs=("tilt_series.nc",),
        outputs=("processed.nc",),
        run=_preprocess,
        required=(("tilt_series.nc",),),
    ),
    "reconstruct": Stage(
        name="reconstruct",
        help="sAET reconstruction: GENFIRE (or RESIRE) on scanning windows, stitched",
        sections=("reconstruct",),
        inputs=("processed.nc", "tilt_series.nc"),  # tilt_series.nc: with inputs: truth
        outputs=("volume.nc",),
        run=_reconstruct,
        required=(("processed.nc", "tilt_series.nc"),),
    ),
    "atoms": Stage(
        name="atoms",
        help="trace atoms, assign species, refine against the images and flip S/Se pairs",
        sections=("materials", "atoms", "species"),
        inputs=("volume.nc", "processed.nc"),
        outputs=("atoms.nc",),
        run=_atoms,
        required=(("volume.nc",), ("processed.nc",)),
    ),
    "dynamic": Stage(
        name="dynamic",
        help="move outlier S atoms to the least R1 of multislice scans (off by default: "
        "dynamic.enabled)",
        sections=("materials", "atoms", "species", "dynamic", "imaging"),
        inputs=("atoms.nc", "processed.nc"),
        outputs=("atoms_dynamic.nc",),
        run=_dynamic,
        required=(("atoms.nc",), ("processed.nc",)),
    ),
    "structure": Stage(
        name="structure",
        help="interface, ripples, bond angles, displacements and the 3D strain tensor",
        sections=("materials", "structure"),
        inputs=("atoms.nc",),
        outputs=("strain.nc",),
        run=_structure,
        required=(("atoms.nc", "truth_atoms.nc"),),
    ),
    "eels": Stage(
        name="eels",
        help="vibrational EELS of a synthetic line scan: background, k-means, Gaussian peaks",
        sections=("eels",),
        inputs=(),
        outputs=("eels_input.nc", "eels.nc"),
        run=_eels,
    ),
}


def run_stages(
    config: Config,
    run_dir: str | Path,
    *,
    stages: tuple[str, ...] = ("simulate",),
    client=None,
    force: bool = False,
) -> dict[str, Path]:
    """Run stages in order into ``run_dir``; finished stages with the same config are skipped.

    The run's ``report.html`` (:func:`hpcaet.report.write_report`) is written at the end.
    Stages run with one BLAS / OpenMP thread (:func:`hpcaet.parallel.pinned_threads`), as
    their tasks do: the outputs are the same bits for any number of workers, or none.

    Returns
    -------
    dict
        Output file name -> path, for every output of the stages asked for.
    """
    check_stages(run_dir, stages, config)
    run = RunDirectory(Path(run_dir))
    run.prepare(config)
    with pinned_threads():  # one BLAS thread: the same bits on any machine and cluster
        outputs = _run_in_order(config, run, stages, client=client, force=force)
    from hpcaet.report import write_report

    write_report(run.root)  # the figures and numbers of every stage so far, one page
    return outputs


def _run_in_order(config: Config, run: RunDirectory, stages, *, client, force) -> dict:
    outputs: dict[str, Path] = {}
    for name in stages:
        stage = STAGES[name]
        digest = stage_hash(config, stage)
        paths = [run.file(o) for o in stage.outputs]
        if not force and all(_done(p, digest) for p in paths):
            log.info("stage %s: up to date, skipped (%s)", name, ", ".join(stage.outputs))
        else:
            log.info("stage %s: running", name)
            results = stage.run(config, run, client)
            for fname, ds in results.items():
                ds.attrs["config_hash"] = digest
                ds.attrs["stage"] = name
                write_dataset(ds, run.file(fname))
                log.info("stage %s: wrote %s", name, run.file(fname))
        outputs.update({p.name: p for p in paths})
    return outputs


def check_stages(
    run_dir: str | Path, stages: tuple[str, ...], config: Config | None = None
) -> None:
    """Refuse a run before anything starts or is written: unknown stages, a simulation
    over a measured series, an input file that is neither there nor made on the way,
    or (with ``config``) one that was made under another config than this run's.

    Raises
    ------
    HpcaetError
        Naming the stage, the missing file and the command that makes it.
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise HpcaetError(
            f"unknown stage(s) {unknown} in --stages; known stages, in order: {list(STAGES)}."
        )
    if "simulate" in stages and imported_series(run_dir):
        raise HpcaetError(
            f"{Path(run_dir) / 'tilt_series.nc'} is a measured series (hpcaet import); the "
            "simulate stage would replace it. Run the stages after it, e.g. --stages "
            "preprocess,reconstruct,atoms,structure."
        )
    made: set[str] = set()
    for name in stages:
        stage = STAGES[name]
        for group in stage.required:
            if config is not None and not any(f in made for f in group):
                _check_fresh(run_dir, name, group, config)
            if not any(f in made or (Path(run_dir) / f).exists() for f in group):
                maker = next(s.name for s in STAGES.values() if group[0] in s.outputs)
                raise HpcaetError(
                    f"stage {name} needs {' or '.join(group)} in {run_dir}, which is not "
                    f"there and no earlier stage of this run makes it; run 'hpcaet {maker} "
                    f"--run {run_dir}' first (or 'hpcaet import' for measured frames), or "
                    f"add {maker} to --stages."
                )
        made.update(stage.outputs)


def _check_fresh(run_dir, name: str, group: tuple[str, ...], config: Config) -> None:
    """Refuse an input file whose recorded hash is not its stage's under ``config``."""
    for fname in group:
        path = Path(run_dir) / fname
        attrs = _stored_attrs(path)
        if attrs is None or "config_hash" not in attrs or int(attrs.get("imported", 0)):
            continue  # absent, unreadable (rebuilt when run) or measured: nothing to compare
        maker = next(s for s in STAGES.values() if fname in s.outputs)
        if attrs["config_hash"] != stage_hash(config, maker):
            raise HpcaetError(
                f"{path} was made by stage {maker.name} under another config than this "
                f"run's, so stage {name} would read a stale input. Rebuild it with this "
                f"config ('hpcaet run --config CONFIG --run {run_dir} --stages "
                f"{maker.name},{name}'), or run {name} with the config it was made with "
                f"({Path(run_dir) / 'config.yaml'})."
            )
        return


def imported_series(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a tilt series made by ``hpcaet import``."""
    attrs = _stored_attrs(Path(run_dir) / "tilt_series.nc")
    return attrs is not None and int(attrs.get("imported", 0)) == 1


def _done(path: Path, digest: str) -> bool:
    attrs = _stored_attrs(path)
    return attrs is not None and attrs.get("config_hash") == digest


def _stored_attrs(path: Path) -> dict | None:
    """The attributes of an hpcaet file, or None when it is missing or unreadable."""
    if not path.exists():
        return None
    try:
        ds = read_dataset(path, load=False)
    except HpcaetError:
        return None
    try:
        return dict(ds.attrs)
    finally:
        ds.close()
