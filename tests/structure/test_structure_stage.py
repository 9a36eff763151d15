"""The ``structure`` stage: files in and out, tile checkpoints, a real Dask cluster."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from structure_sheets import field, sheet

from hpcaet.config import config_to_dict, load_config, packaged_config
from hpcaet.errors import ConfigError, InputError
from hpcaet.io import read_dataset, write_dataset
from hpcaet.phantom.stage import make_phantom
from hpcaet.pipeline import RunDirectory, run_stages
from hpcaet.structure import analyse_structure, atomic_displacements, strain_tensor
from hpcaet.structure.stage import RESULTS_JSON, RESULTS_TEXT, checkpointed_mapper, run_structure

# The demo phantom, 40 x 40 Å: about 540 sites, a two-segment interface.
CONFIG = load_config(packaged_config("demo"))
OPTIONS = dict(spacing=1.0, sigma=3.16, padding=6.0, mask_distance=2.0)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("structure-run")
    write_dataset(make_phantom(CONFIG), root / "truth_atoms.nc")
    return root


@pytest.fixture(scope="module")
def first_pass(demo_run):
    logger = logging.getLogger("hpcaet.structure.stage")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        outputs = run_stages(CONFIG, demo_run, stages=("structure",))
    finally:
        logger.removeHandler(handler)
    return outputs, [r.getMessage() for r in records]


def test_stage_writes_strain_results_and_figures(demo_run, first_pass):
    outputs, messages = first_pass
    assert any("no atoms.nc" in m and "truth_atoms.nc" in m for m in messages)
    ds = read_dataset(outputs["strain.nc"], kind="Strain")
    model = read_dataset(demo_run / "truth_atoms.nc")
    assert ds.sizes["atom"] == model.sizes["atom"]
    assert ds["strain"].dims == ("component", "z", "y", "x")
    assert ds["layer_strain"].sizes["atomic_layer"] == 3
    assert np.isfinite(ds["strain"].values).any() and np.isnan(ds["strain"].values).any()
    # The ripple part 1/2 dw/da dw/db: xx, yy >= 0 everywhere, and xy^2 = xx * yy.
    rip = ds["atom_ripple_strain"].values
    assert rip.shape == (ds.sizes["atom"], 3) and np.isfinite(rip).all()
    assert (rip[:, :2] >= 0).all()
    np.testing.assert_allclose(rip[:, 2] ** 2, rip[:, 0] * rip[:, 1], atol=1e-15)
    results = json.loads((demo_run / RESULTS_JSON).read_text())
    assert results["source"] == "truth_atoms.nc"
    assert results["counts"]["vac"] == 5
    assert {s["kind"] for s in results["interface"]["segments"]} == {"zigzag", "armchair"}
    assert len(results["roughness"]["roughness"]) == CONFIG.structure.strips
    # The demo ripple: 1.5 Å at the interface, 40 Å wavelength; the L-shaped interface is
    # ~40 Å long (one period), so only 15 % is asked here (10 % is tested on a longer one).
    assert results["ripple"]["wavelength"] == pytest.approx(40.0, rel=0.15)
    assert results["ripple"]["amplitude"] == pytest.approx(1.5, rel=0.25)
    assert "ripple: amplitude" in (demo_run / RESULTS_TEXT).read_text()
    assert "in-plane" in (demo_run / RESULTS_TEXT).read_text()
    assert set(results["strain"]["paper_signs_in_plane"]) == set(results["strain"]["paper_signs"])
    figures = sorted(p.name for p in (demo_run / "figures").glob("structure_*.png"))
    assert figures == sorted(
        [
            "structure_interface.png",
            "structure_ripples.png",
            "structure_bond_angles.png",
            "structure_displacements.png",
            "structure_strain_bottom.png",
            "structure_strain_metal.png",
            "structure_strain_top.png",
        ]
    )


@pytest.fixture(scope="module")
def sheet_problem():
    pos, species, layer = sheet(half=16.0)
    pos = pos + field(pos)
    disp, region, _ = atomic_displacements(
        pos, species, layer, np.zeros(len(pos), int), lattice_constant={0: 3.16}, height={0: 1.56}
    )
    return pos, disp, region


def test_rerun_resumes_from_tile_checkpoints(tmp_path, sheet_problem, caplog):
    pos, disp, region = sheet_problem
    first = strain_tensor(pos, disp, region, mapper=checkpointed_mapper(tmp_path), **OPTIONS)
    tiles = sorted(tmp_path.glob("*.npz"))
    assert tiles
    with caplog.at_level(logging.INFO, logger="hpcaet.parallel.tasks"):
        again = strain_tensor(pos, disp, region, mapper=checkpointed_mapper(tmp_path), **OPTIONS)
    assert f"{len(tiles)} tasks ({len(tiles)} from checkpoints, 0 to compute)" in caplog.text
    np.testing.assert_array_equal(again.strain, first.strain)
    # Other inputs, other keys: nothing stale is reused.
    strain_tensor(pos, 1.01 * disp, region, mapper=checkpointed_mapper(tmp_path), **OPTIONS)
    assert len(list(tmp_path.glob("*.npz"))) == 2 * len(tiles)


def test_damaged_checkpoint_is_recomputed(tmp_path, sheet_problem, caplog):
    pos, disp, region = sheet_problem
    first = strain_tensor(pos, disp, region, mapper=checkpointed_mapper(tmp_path), **OPTIONS)
    tile = sorted(tmp_path.glob("*.npz"))[0]
    tile.write_bytes(b"not a numpy file")
    with caplog.at_level(logging.WARNING, logger="hpcaet.parallel.tasks"):
        again = strain_tensor(pos, disp, region, mapper=checkpointed_mapper(tmp_path), **OPTIONS)
    assert "is unreadable" in caplog.text
    np.testing.assert_array_equal(again.strain, first.strain)


def test_dask_cluster_gives_the_serial_result(tmp_path, sheet_problem):
    from distributed import Client, LocalCluster

    pos, disp, region = sheet_problem
    serial = strain_tensor(pos, disp, region, **OPTIONS)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        mapper = checkpointed_mapper(tmp_path, client=client)
        spread = strain_tensor(pos, disp, region, mapper=mapper, **OPTIONS)
    assert len(list(tmp_path.glob("*.npz"))) >= 1
    np.testing.assert_array_equal(spread.strain, serial.strain)


def test_single_material_model_skips_the_interface(caplog):
    model = make_phantom(CONFIG)
    species = model["species"].values.astype("<U3")
    species[species == "W"] = "Mo"
    species[species == "Se"] = "S"
    with caplog.at_level(logging.WARNING):
        result = analyse_structure(
            model["position"].values,
            species,
            model["layer"].values,
            np.zeros(len(species), int),
            **config_to_dict(CONFIG.structure),
        )
    assert "only one material" in caplog.text
    r = result.results
    assert r["interface"] is None and r["ripple"] is None and r["roughness"] is None
    assert list(r["lattice"]) == ["MoS2"]
    assert r["strain"]["near_interface"] is None
    assert np.isfinite(result.field.strain).any()
    assert "interface" not in r["bond_angles"]["XMX"]


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="neither atoms.nc nor truth_atoms.nc"):
        run_structure(CONFIG, RunDirectory(tmp_path))


def test_flagged_sites_are_left_out():
    # An S atom 10 Å above the sheet, flagged off_layer by the atoms stage, must change
    # nothing but the counts.
    model = make_phantom(CONFIG)
    args = [model[k].values for k in ("position", "species", "layer", "region")]
    args[1] = args[1].astype(str)
    settings = config_to_dict(CONFIG.structure)
    clean = analyse_structure(*args, **settings)
    stray = [
        np.vstack([args[0], [[0.0, 0.0, 10.0]]]),
        np.append(args[1], "S"),
        np.append(args[2], 1),
        np.append(args[3], 0),
    ]
    exclude = np.zeros(len(stray[0]), bool)
    exclude[-1] = True
    flagged = analyse_structure(*stray, exclude=exclude, **settings)
    assert flagged.results["counts"]["excluded"] == 1
    np.testing.assert_array_equal(flagged.field.strain, clean.field.strain)
    assert flagged.results["bond_angles"] == clean.results["bond_angles"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"grid_spacing": 2.0}, "at most half of structure.sigma"),
        ({"rbf_kernel": "gaussian"}, "rbf_kernel must be one of"),
        ({"sigma": -1.0}, "structure.sigma must be positive"),
        ({"strip_min_atoms": 1}, "strip_min_atoms must be at least 2"),
    ],
)
def test_bad_structure_settings_are_refused(setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"structure": setting})
