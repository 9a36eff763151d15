"""Stage layer of the phonon analysis: AtomModel in, Phonons Dataset and figures out.

``hpcaet phonons --run runs/NAME`` (or, on a cluster, ``mpiexec -n N hpcaet phonons
--run runs/NAME --mpi``) reads ``atoms.nc`` (or, while a run has none,
``truth_atoms.nc``), stitches the periodic cell across the longest zigzag interface
(:func:`~hpcaet.phonons.supercell.stitch_supercell`), checks it and the calculator,
computes the bulk monolayers, the measured cell and (``phonons.reference``) the relaxed
crystallographic zigzag interface, and writes

* ``phonons.nc`` (Phonons: ``dos``, ``pdos(species, energy)``,
  ``spectral_function(q, energy)``, ``frequency``, ``participation_ratio`` and
  ``interface_participation`` per Γ mode, ``bulk_dos(material, energy)``,
  ``nnls_weight(material)``, ``nnls_fit(energy)``, ``residual_peak(peak)`` and, with the
  reference, ``reference_dos``, ``reference_spectral_function`` and
  ``reference_frequency(reference_mode)``: all in the schema, ``describe("Phonons")``),
* ``phonons_results.json`` (the numbers) and figures ``phonons_*.png``.

Every force call goes through the task layer: snapshot batches are checkpointed under
``checkpoints/phonons/`` (a killed job resumes), spread over MPI ranks with ``--mpi``;
rank 0 writes the outputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.errors import InputError
from hpcaet.io import make_phonons, write_dataset
from hpcaet.io.atomic import atomic_path
from hpcaet.parallel.tasks import ARRAYS, TaskStore
from hpcaet.phonons.analysis import PhononAnalysis, PhononSettings, analyse_cell
from hpcaet.phonons.bulk import bulk_phonons
from hpcaet.phonons.calculators import CalculatorSpec, check_elements
from hpcaet.phonons.driver import executor_for_comm
from hpcaet.phonons.reference import crystallographic_cell
from hpcaet.phonons.supercell import stitch_supercell

__all__ = ["run_phonons", "settings_from_config", "phonons_dataset", "RESULTS_JSON"]

log = logging.getLogger(__name__)

RESULTS_JSON = "phonons_results.json"


def settings_from_config(section) -> PhononSettings:
    """The :class:`PhononSettings` of a ``phonons`` config section."""
    md = section.md
    return PhononSettings(
        method=section.method,
        distance=section.distance,
        repeat=tuple(section.repeat),
        cutoff=section.cutoff,
        md={
            "replicas": md.replicas,
            "temperature": md.temperature,
            "steps": md.steps,
            "interval": md.interval,
            "equilibrate": md.equilibrate,
            "timestep": md.timestep,
        },
        energy=tuple(section.energy),
        sigma=section.sigma,
        mesh=tuple(section.mesh),
        path_points=section.path_points,
        interface_width=section.interface_width,
        batch=section.batch,
    )


def run_phonons(config, run_dir: str | Path, *, comm=None) -> dict[str, Path]:
    """Run the phonon stage on a run directory.

    Parameters
    ----------
    config : hpcaet.config.Config
    run_dir : str or Path
        Holds ``atoms.nc`` or ``truth_atoms.nc``.
    comm : mpi4py communicator, optional
        Spread the force calls over its ranks; every rank calls this, rank 0 writes.

    Returns
    -------
    dict
        File name -> path written (empty on ranks other than 0).
    """
    from hpcaet.pipeline import RunDirectory
    from hpcaet.structure.stage import read_atom_model

    run = RunDirectory(run_dir)
    section = config.phonons
    materials = config.materials
    if not materials.pair:
        raise InputError(
            f"the phonon stage needs a heterojunction of two materials; the config has only "
            f"{list(materials.names)}. Give two materials (materials.regions)."
        )
    model, source = read_atom_model(run)
    cell = stitch_supercell(
        model["position"].values,
        model["species"].values.astype(str),
        rows=section.rows,
        width=section.width,
        min_distance=section.min_distance,
        inside=materials.other().metal,
    )
    spec = CalculatorSpec(section.calculator)
    check_elements(spec, cell.atoms.get_chemical_symbols())  # before any force
    settings = settings_from_config(section)
    executor = executor_for_comm(comm)
    store = TaskStore(run.checkpoints / "phonons", "phonons", ARRAYS)
    grid = settings.grid
    bulk = {
        m.name: bulk_phonons(
            m,
            spec,
            energy=grid,
            sigma=settings.sigma,
            supercell=section.bulk_supercell,
            mesh=section.bulk_mesh,
            executor=executor,
            store=store,
        )
        for m in materials.regions
    }
    measured = analyse_cell(cell, spec, settings, bulk=bulk, executor=executor, store=store)
    reference = None
    if section.reference:
        ideal = crystallographic_cell(cell, bulk, materials, spec)
        reference = analyse_cell(ideal, spec, settings, bulk=bulk, executor=executor, store=store)
    if comm is not None and comm.Get_rank() != 0:
        return {}
    ds = phonons_dataset(measured, bulk, reference=reference, source=source, cell=cell)
    ds.attrs["calculator"] = spec.name
    path = write_dataset(ds, run.file("phonons.nc"))
    results = _results(measured, reference, bulk, cell, source)
    with atomic_path(run.file(RESULTS_JSON)) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=2))
    from hpcaet.phonons.figures import plot_phonons

    figures = plot_phonons(ds, cell, run.figures)
    log.info("phonons: wrote %s, %s and %d figures", path, RESULTS_JSON, len(figures))
    return {"phonons.nc": path, RESULTS_JSON: run.file(RESULTS_JSON)}


def phonons_dataset(
    measured: PhononAnalysis,
    bulk: dict,
    *,
    reference: PhononAnalysis | None = None,
    source: str = "",
    cell=None,
) -> xr.Dataset:
    """The Phonons Dataset of an analysis: the cell's curves, the bulk DOS and NNLS fit."""
    names = list(bulk)
    dec = measured.decomposition
    extra = {}
    if dec is not None:
        extra = {
            "nnls_weight": {k: dec["weights"][k] for k in names},
            "nnls_fit": np.clip(dec["fit"], 0.0, None),
            "residual_peak": dec["residual_peaks"],
        }
    if reference is not None:
        extra.update(
            reference_dos=reference.dos,
            reference_spectral_function=reference.spectral,
            reference_frequency=reference.frequency,
        )
    return make_phonons(
        energy=measured.energy,
        dos=measured.dos,
        pdos=measured.pdos,
        spectral_function=measured.spectral,
        q_distance=measured.q_distance,
        frequency=measured.frequency,
        participation_ratio=np.clip(measured.participation, 0.0, 1.0),
        interface_participation=np.clip(measured.interface, 0.0, 1.0),
        bulk_dos={k: bulk[k].dos for k in names},
        **extra,
        source=source,
        q_labels=json.dumps(measured.q_labels, ensure_ascii=False),
        residual_force=measured.residual_force,
        n_force_calls=measured.n_force_calls,
        n_atom=len(measured.frequency) // 3,
    )


def _results(measured, reference, bulk, cell, source) -> dict:
    def summary(a: PhononAnalysis) -> dict:
        n = len(a.frequency) // 3
        out = {
            "atoms": n,
            "imaginary_modes": int(np.sum(a.frequency < -0.5)),
            "lowest_mode_meV": float(a.frequency.min()),
            "largest_residual_force_eV_per_A": a.residual_force,
            "mean_participation_ratio": float(a.participation.mean()),
            "interface_modes_above_1_over_N": int(np.sum(a.interface > 1.0 / n)),
            "force_calls": a.n_force_calls,
        }
        if a.decomposition is not None:
            out["nnls_weights"] = a.decomposition["weights"]
            out["residual_peaks_meV"] = np.round(a.decomposition["residual_peaks"], 2).tolist()
        return out

    from hpcaet.phonons.dos import dos_peaks

    results = {
        "source": source,
        "cell": {
            "atoms": len(cell.atoms),
            "size_A": np.round(np.diag(cell.atoms.cell.array), 3).tolist(),
            "rows": cell.rows,
            "width": cell.width,
        },
        "measured": summary(measured),
        "bulk_peaks_meV": {
            k: np.round(dos_peaks(b.energy, b.dos), 2).tolist() for k, b in bulk.items()
        },
    }
    if reference is not None:
        results["reference"] = summary(reference)
    return results
