"""Stage layer of the phantom: config in, AtomModel and TiltSeries Datasets out.

The tilts are simulated as one Dask task each (the atoms are scattered once); each
task is a pure function of its inputs and its own seed, so a run gives the same
series on any cluster. With a checkpoint folder every finished tilt is saved under
``simulate/`` there, keyed by the hash of everything it is drawn from (atoms, angles,
distortions, imaging settings, seed), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import ase
import numpy as np
import xarray as xr

from hpcaet.config import Config
from hpcaet.errors import ConfigError, InputError
from hpcaet.forward import species_table
from hpcaet.io import make_atom_model, make_tilt_series
from hpcaet.materials import PAPER, VACANCY, Materials
from hpcaet.parallel.tasks import Codec, TaskStore, content_key, executor_for, map_tasks
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.phantom.simulate import (
    TiltResult,
    draw_distortions,
    record_tilt,
    simulate_tilt,
    tilt_canvas,
)
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED, TABLE_S2_NOMINAL

__all__ = [
    "make_phantom",
    "simulate_tilt_series",
    "atoms_to_model",
    "model_to_atoms",
    "true_angles",
]

log = logging.getLogger(__name__)

#: Seed streams of one run: phantom, distortions, per-tilt noise, nominal angles.
_STREAM_PHANTOM, _STREAM_DISTORT, _STREAM_NOISE, _STREAM_NOMINAL = range(4)

#: A finished tilt as the arrays of its checkpoint.
_TILT = Codec(encode=asdict, decode=lambda arrays: TiltResult(**arrays))


def _rng(seed: int, stream: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *extra]))


def make_phantom(config: Config) -> xr.Dataset:
    """Build the heterojunction phantom of ``config.phantom`` as an AtomModel."""
    fields = set(HeterojunctionSpec.__dataclass_fields__) - {"materials"}
    spec = HeterojunctionSpec(
        materials=config.materials, **{k: getattr(config.phantom, k) for k in fields}
    )
    atoms = build_heterojunction(spec, rng=_rng(config.seed, _STREAM_PHANTOM))
    model = atoms_to_model(
        atoms,
        b_factor=config.species.b_factor,
        cross_section=config.species.cross_section,
        materials=config.materials,
    )
    names = (*config.materials.elements, VACANCY)
    counts = {s: int((model.species == s).sum()) for s in names}
    log.info("phantom: %d sites: %s", model.sizes["atom"], counts)
    return model


def atoms_to_model(
    atoms: ase.Atoms,
    *,
    b_factor: dict[str, float],
    cross_section: dict[str, float],
    materials: Materials = PAPER,
) -> xr.Dataset:
    """Turn phantom ``ase.Atoms`` (vacancies as ``"X"``) into an AtomModel Dataset."""
    species = np.array([VACANCY if s == "X" else s for s in atoms.get_chemical_symbols()])
    table = {VACANCY: 0.0, **b_factor}
    # A vacancy site keeps the B-factor of its region's chalcogen, for flipping.
    index = np.clip(atoms.arrays["region"], 0, len(materials.regions) - 1)
    host = np.array(materials.chalcogens)[index]
    b = species_table(np.where(species == VACANCY, host, species), table)
    model = make_atom_model(
        position=atoms.positions,
        species=species,
        b_factor=b,
        layer=atoms.arrays["layer"],
        region=atoms.arrays["region"],
        pair=atoms.arrays["pair"],
        cross_section={**cross_section, VACANCY: 0.0},
        materials=" ".join(materials.names),
    )
    if "interface_distance" in atoms.arrays:
        model["interface_distance"] = (
            "atom",
            atoms.arrays["interface_distance"],
            {"units": "Å", "long_name": "signed distance to the interface, > 0 in region 1"},
        )
    return model


def model_to_atoms(model: xr.Dataset, *, keep_vacancies: bool = False) -> ase.Atoms:
    """An ``ase.Atoms`` of an AtomModel; vacancy sites are dropped or kept as ``"X"``."""
    species = model["species"].values.astype(str)
    keep = np.ones(len(species), bool) if keep_vacancies else species != VACANCY
    symbols = ["X" if s == VACANCY else s for s in species[keep]]
    atoms = ase.Atoms(symbols=symbols, positions=model["position"].values[keep], pbc=False)
    for name in ("layer", "region", "b_factor"):
        atoms.set_array(name, model[name].values[keep])
    return atoms


def true_angles(config: Config) -> tuple[np.ndarray, np.ndarray | None]:
    """True Euler angles and stage readings (None for a custom list) [deg]."""
    if config.imaging.angles == "table_s2":
        return TABLE_S2_CALIBRATED.copy(), TABLE_S2_NOMINAL.copy()
    euler = np.asarray(config.imaging.angles, dtype=float)
    if euler.ndim != 2 or euler.shape[1] != 3 or len(euler) < 2:
        raise ConfigError(
            f"imaging.angles must be at least two [z, y, x] triples; got {euler.tolist()}."
        )
    return euler, None


def simulate_tilt_series(
    model: xr.Dataset, config: Config, *, client=None, checkpoints=None
) -> xr.Dataset:
    """Simulate the tilt series of an AtomModel with every distortion recorded.

    With ``imaging.model: linear`` each tilt is drawn by the linear Gaussian model;
    with ``multislice`` by abTEM, tile by tile (:mod:`hpcaet.phantom.dynamical`), and
    the same distortions and noise are added.

    Parameters
    ----------
    model : xarray.Dataset
        AtomModel (the ground truth).
    config : Config
        Uses ``imaging``, ``species`` and ``seed``.
    client : distributed.Client, optional
        Spread the tilts (or multislice tiles) over this cluster; without one they run
        here, in turn.
    checkpoints : path, optional
        Folder where each finished tilt (and multislice tile) is saved; a rerun loads
        them. A tilt's key hashes everything it is drawn from, so a changed setting
        never reuses it.

    Returns
    -------
    xarray.Dataset
        TiltSeries with ``frames`` (noisy counts), the nominal ``euler`` angles
        (true angles plus an error of up to ``imaging.nominal_error``), the stage
        readings, and the truth: ``true_euler``, ``true_drift``, ``true_offset``,
        ``true_vibration_*``, ``true_background`` and ``clean_images``.
    """
    im = config.imaging
    euler, stage = true_angles(config)
    n_tilt = len(euler)
    species = model["species"].values.astype(str)
    cross = dict(
        zip(model["element"].values.astype(str), model["cross_section"].values, strict=True)
    )
    weights = species_table(species, cross)
    positions = model["position"].values
    b_factors = model["b_factor"].values
    if np.any(b_factors <= 0):
        raise InputError(
            "every atom needs a positive B-factor to be imaged; got "
            f"{int(np.sum(b_factors <= 0))} atoms with B <= 0."
        )
    distortions = draw_distortions(
        euler,
        drift_max=im.drift_max,
        offset_max=im.offset_max,
        pixel_size=im.pixel_size,
        vibration_amplitude=im.vibration_amplitude,
        vibration_width=im.vibration_width,
        rng=_rng(config.seed, _STREAM_DISTORT),
    )
    kwargs = dict(
        shape=tuple(im.shape),
        pixel_size=im.pixel_size,
        frames=im.frames,
        dose_per_frame=im.dose / (n_tilt * im.frames),
        read_noise=im.read_noise,
        probe_fwhm=im.probe_fwhm,
        background_level=im.background_level,
        background_scale=im.background_scale,
    )
    seeds = [np.random.SeedSequence([config.seed, _STREAM_NOISE, j]) for j in range(n_tilt)]
    executor = executor_for(client, label="simulate")
    if im.model == "multislice":
        results = _dynamical_tilts(
            model, config, euler, distortions, seeds, kwargs, executor, checkpoints
        )
    else:
        jobs = [
            {"euler": euler[j], "distortions": distortions[j], "rng": seeds[j]}
            for j in range(n_tilt)
        ]
        shared = {"positions": positions, "weights": weights, "b_factors": b_factors, **kwargs}
        results = map_tasks(
            simulate_tilt,
            jobs,
            keys=_tilt_keys("tilt", jobs, shared),
            shared=shared,
            executor=executor,
            store=_tilt_store(checkpoints),
            label="simulate",
        )

    nominal = euler + _rng(config.seed, _STREAM_NOMINAL).uniform(
        -im.nominal_error, im.nominal_error, euler.shape
    )
    return make_tilt_series(
        frames=np.stack([r.frames for r in results]),
        euler=nominal,
        stage_tilt=stage,
        pixel_size=im.pixel_size,
        voltage=im.voltage,
        convergence_angle=im.convergence_angle,
        detector_inner_angle=im.detector_inner_angle,
        detector_outer_angle=im.detector_outer_angle,
        dose=im.dose,
        read_noise=im.read_noise,
        true_euler=euler,
        true_drift=np.stack([r.drift for r in results]),
        true_offset=np.stack([d.offset for d in distortions]),
        true_vibration_direction=np.array([d.vibration_direction for d in distortions]),
        true_vibration_amplitude=np.array([d.vibration_amplitude for d in distortions]),
        true_vibration_width=np.array([d.vibration_width for d in distortions]),
        true_background=np.stack([r.background for r in results]),
        clean_images=np.stack([r.clean for r in results]),
        attrs={"image_model": im.model},
    )


def _dynamical_tilts(model, config, euler, distortions, seeds, kwargs, executor, checkpoints):
    """The tilts drawn by multislice: pictures tile by tile, then the distortions."""
    from hpcaet.phantom.dynamical import dynamical_pictures

    im = config.imaging
    species = model["species"].values.astype(str)
    atoms = species != VACANCY
    canvases = [
        tilt_canvas(d, shape=tuple(im.shape), pixel_size=im.pixel_size, frames=im.frames)
        for d in distortions
    ]
    pictures = dynamical_pictures(
        model["position"].values[atoms],
        species[atoms],
        euler,
        canvases,
        optics=im.optics(),
        settings=im.multislice.settings(),
        incoherent_sigma=im.multislice.incoherent_sigma,
        executor=executor,
        store_dir=checkpoints,
    )
    record = {k: v for k, v in kwargs.items() if k not in ("shape", "pixel_size", "probe_fwhm")}
    jobs = [
        {
            "specimen": pictures[j],
            "distortions": distortions[j],
            "canvas": canvases[j],
            "rng": seeds[j],
        }
        for j in range(len(euler))
    ]
    return map_tasks(
        record_tilt,
        jobs,
        keys=_tilt_keys("record", jobs, record),
        shared=record,
        executor=executor,
        store=_tilt_store(checkpoints),
        label="record tilts",
    )


def _tilt_store(checkpoints) -> TaskStore | None:
    return (
        None
        if checkpoints is None
        else TaskStore(Path(checkpoints) / "simulate", "simulate", _TILT)
    )


def _tilt_keys(kind: str, jobs: list[dict], shared: dict) -> list[str]:
    """``<kind><tilt>-<hash>``: the hash of a tilt's inputs (its atoms or picture, angles,
    distortions and noise seed) and of the settings shared by every tilt."""
    common = content_key(shared)

    def plain(value):
        if isinstance(value, np.random.SeedSequence):
            return repr((value.entropy, value.spawn_key))
        if hasattr(value, "__dataclass_fields__"):
            return {k: plain(v) for k, v in asdict(value).items()}
        return value

    keys = []
    for j, job in enumerate(jobs):
        parts = {}
        for name, value in job.items():
            value = plain(value)
            parts.update(
                {f"{name}.{k}": v for k, v in value.items()}
                if isinstance(value, dict)
                else {name: value}
            )
        keys.append(f"{kind}{j:03d}-{content_key(parts, common)}")
    return keys
