"""Stage layer of the structure analysis: AtomModel in, Strain Dataset and results out.

``hpcaet structure --run runs/NAME`` reads ``atoms.nc`` (the traced model) or, while a
run has none, ``truth_atoms.nc`` (the phantom; a warning says so), runs
:func:`~hpcaet.structure.analysis.analyse_structure`, and writes

* ``strain.nc`` (Strain: per-atom displacements, the strain tensor on the grid, and
  the extra variables ``atom_strain(atom, component)``,
  ``atom_ripple_strain(atom, membrane_component)`` and
  ``layer_strain(atomic_layer, component, y, x)``),
* ``structure_results.json`` (every number) and ``structure_results.txt`` (a short
  table for people),
* figures ``structure_*.png`` in ``figures/``.

Sites the AtomModel flags ``off_layer`` (over 1 Å off their layer) or ``edge`` (within
``atoms.edge_distance`` of the reconstructed volume's side faces, where the species and
positions are least sure) are left out of every step but still get a displacement; the
strain is NaN where less than ``structure.min_coverage`` of the smoothing kernel falls on
the sheet.

The radial-basis interpolation of the displacements to the grid is the costly step; it
runs as independent tiles, spread over a Dask cluster when a client is given (atoms
scattered once per region, deterministic task keys) and checkpointed one file per tile
under ``checkpoints/structure/``, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.config import Config, config_to_dict
from hpcaet.errors import InputError
from hpcaet.io import FLAG_EDGE, FLAG_OFF_LAYER, make_strain, read_dataset
from hpcaet.io.atomic import atomic_path
from hpcaet.materials import VACANCY
from hpcaet.parallel.tasks import ARRAY, Mapper, TaskMapper, TaskStore, executor_for
from hpcaet.structure.analysis import StructureAnalysis, analyse_structure
from hpcaet.structure.fields import COMPONENTS

__all__ = [
    "run_structure",
    "read_atom_model",
    "checkpointed_mapper",
    "strain_dataset",
    "results_table",
]

log = logging.getLogger(__name__)

RESULTS_JSON = "structure_results.json"
RESULTS_TEXT = "structure_results.txt"
_LAYER_NAMES = ("bottom", "metal", "top")


def read_atom_model(run) -> tuple[xr.Dataset, str]:
    """The AtomModel of a run: ``atoms.nc``, else ``truth_atoms.nc`` with a warning.

    Parameters
    ----------
    run : RunDirectory

    Returns
    -------
    model : xarray.Dataset
    name : str
        The file read.

    Raises
    ------
    InputError
        Neither file exists.
    """
    for name in ("atoms.nc", "truth_atoms.nc"):
        path = run.file(name)
        if path.exists():
            if name != "atoms.nc":
                log.warning(
                    "structure: %s has no atoms.nc (the atoms stage has not run); "
                    "analysing the ground truth %s instead",
                    run.root,
                    name,
                )
            return read_dataset(path, kind="AtomModel"), name
    raise InputError(
        f"{run.root} has neither atoms.nc nor truth_atoms.nc; run 'hpcaet atoms --run "
        f"{run.root}' (or 'hpcaet simulate --run {run.root}') first."
    )


def checkpointed_mapper(directory: Path, *, client=None) -> Mapper:
    """A mapper for :func:`~hpcaet.structure.strain_tensor` with one checkpoint per tile.

    Parameters
    ----------
    directory : Path
        Where the tiles are kept; created if missing.
    client : distributed.Client, optional
        Run the tiles on this cluster; without one, here in turn.

    Returns
    -------
    Mapper
        ``mapper(func, jobs, shared) -> list`` (:class:`hpcaet.parallel.TaskMapper`).
        The key of a tile hashes its inputs (atoms, displacements, targets and
        settings), so a tile is reused only for the same inputs.
    """
    return TaskMapper(
        executor_for(client, label="structure"),
        store=TaskStore(directory, "structure", ARRAY),
        label="structure: strain tiles",
    )


def strain_dataset(model: xr.Dataset, analysis: StructureAnalysis, *, source: str) -> xr.Dataset:
    """The Strain Dataset of an analysis (with per-atom and per-layer strain)."""
    field = analysis.field
    ds = make_strain(
        displacement=analysis.displacement,
        strain=field.strain,
        z=field.z,
        y=field.y,
        x=field.x,
        position=model["position"].values,
        region=analysis.region,
        source=source,
        sigma=field.sigma,
        sigma_units="Å",
        grid_spacing=field.spacing,
        grid_spacing_units="Å",
        strain_kind=analysis.results["strain"]["kind"],
    )
    ds["atom_strain"] = (
        ("atom", "component"),
        analysis.atom_strain,
        {"units": "1", "long_name": "strain at each site (trilinear)"},
    )
    if analysis.ripple_strain is not None:
        ds = ds.assign_coords(membrane_component=["xx", "yy", "xy"])
        ds["atom_ripple_strain"] = (
            ("atom", "membrane_component"),
            analysis.ripple_strain,
            {
                "units": "1",
                "long_name": "ripple part 1/2 dw/da dw/db of the membrane strain at each site",
            },
        )
    ds = ds.assign_coords(atomic_layer=list(_LAYER_NAMES))
    ds["layer_strain"] = (
        ("atomic_layer", "component", "y", "x"),
        analysis.layer_maps,
        {"units": "1", "long_name": "strain on the surface of each layer"},
    )
    ds["species"] = ("atom", model["species"].values.astype(str))
    ds["layer"] = (
        "atom",
        model["layer"].values.astype(np.int8),
        {"units": "1", "long_name": "-1 bottom, 0 metal, 1 top"},
    )
    return ds


def results_table(results: dict) -> str:
    """A short plain-text table of the numbers of an analysis."""
    lines = [
        f"structure analysis of {results.get('source', '?')}",
        "sites: " + ", ".join(f"{k} {v}" for k, v in results["counts"].items()),
    ]
    itf = results.get("interface")
    if itf:
        lines.append(
            "interface: " + ", ".join(f"{s['kind']} {s['length']:.1f} Å" for s in itf["segments"])
        )
        ch = itf["chalcogens"]
        bridging = ", ".join(f"{k} {v}" for k, v in ch["bridging"].items())
        near = ", ".join(f"{k} {v}" for k, v in ch["near"].items() if k != VACANCY)
        lines.append(
            f"chalcogen sites bonded to both metals: {bridging}; within "
            f"{itf['vacancies']['cutoff']} Å: {near}"
        )
        lines.append(
            f"vacancies: {itf['vacancies']['at_interface']} of "
            f"{itf['vacancies']['total']} within {itf['vacancies']['cutoff']} Å"
        )
    rough = results.get("roughness")
    if rough:
        lines.append(
            "roughness per strip [Å] (distance to the interface [Å]): "
            + ", ".join(
                f"{c:+.1f}: {r:.3f}"
                for c, r in zip(rough["centre"], rough["roughness"], strict=True)
            )
        )
    rip = results.get("ripple")
    if rip:
        lines.append(
            f"ripple: amplitude {rip['amplitude']:.3f} Å, wavelength "
            f"{rip['wavelength']:.2f} Å ({rip['n_atoms']} metals)"
        )
    for kind, text in (("XMX", "X-M-X"), ("MXM", "M-X-M")):
        b = results["bond_angles"][kind]
        row = (
            f"{text} angles [deg]: top {b['all']['top']:.2f}, bottom {b['all']['bottom']:.2f}"
            f", bottom - top {b['all']['difference']:+.2f}"
        )
        if "interface" in b:
            row += f" (at the interface {b['interface']['difference']:+.2f})"
        lines.append(row)
    for name, fit in results["lattice"].items():
        lines.append(
            f"lattice {name}: a {fit['lattice_constant']:.4f} Å, rms displacement "
            f"{fit['rms']:.3f} Å, {fit['sites']} sites"
        )
    st = results["strain"]
    if st.get("near_interface"):
        lines.append(f"mean {st['kind']} strain of the metals [%] by distance to the interface:")
        lines.append(
            f"  {'side':<5} {'|d| [Å]':>9} {'n':>4} " + " ".join(f"{c:>7}" for c in COMPONENTS)
        )
        for b in st["near_interface"]:
            vals = " ".join(
                f"{b[c]:+7.3f}" if b[c] is not None else f"{'-':>7}" for c in COMPONENTS
            )
            lines.append(
                f"  {b['side']:<5} {b['from']:>4.0f}-{b['to']:<4.0f} {b['metals']:>4} {vals}"
            )
        if st["near_interface"][0].get("in_plane"):
            lines.append("  split of xx/yy/xy: ripple part 1/2 dw/da dw/db + in-plane part [%]:")
            for b in st["near_interface"]:
                if b["in_plane"] is None:
                    continue
                rip = "/".join(f"{b['ripple'][c]:+.3f}" for c in ("xx", "yy", "xy"))
                inp = "/".join(f"{b['in_plane'][c]:+.3f}" for c in ("xx", "yy", "xy"))
                lines.append(
                    f"  {b['side']:<5} {b['from']:>4.0f}-{b['to']:<4.0f} ripple {rip}  "
                    f"in-plane {inp}"
                )
    return "\n".join(lines) + "\n"


def run_structure(config: Config, run, client=None) -> dict[str, xr.Dataset]:
    """Run the structure analysis of a run directory.

    Parameters
    ----------
    config : Config
        Uses the ``structure`` section.
    run : RunDirectory
    client : distributed.Client, optional
        Spread the grid interpolation over this cluster.

    Returns
    -------
    dict
        ``{"strain.nc": Strain Dataset}``; results and figures are written directly.
    """
    from hpcaet.structure.figures import plot_structure

    model, source = read_atom_model(run)
    settings = config_to_dict(config.structure)
    mapper = checkpointed_mapper(run.checkpoints / "structure", client=client)
    exclude = None
    if "flag" in model:
        exclude = (model["flag"].values.astype(int) & (FLAG_OFF_LAYER | FLAG_EDGE)) != 0
    analysis = analyse_structure(
        model["position"].values,
        model["species"].values.astype(str),
        model["layer"].values,
        model["region"].values,
        materials=config.materials,
        exclude=exclude,
        mapper=mapper,
        **settings,
    )
    results = {
        "source": source,
        "materials": config_to_dict(config.materials)["regions"],
        "settings": settings,
        **analysis.results,
    }
    _write_text(run.file(RESULTS_JSON), json.dumps(results, indent=1, default=_json_default))
    _write_text(run.file(RESULTS_TEXT), results_table(results))
    log.info("structure: wrote %s and %s", RESULTS_JSON, RESULTS_TEXT)
    for path in plot_structure(model, analysis, run.figures):
        log.info("structure: figure %s", path)
    return {"strain.nc": strain_dataset(model, analysis, source=source)}


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
