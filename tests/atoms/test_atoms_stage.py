"""Tests of the atoms stage (hpcaet.atoms.stage): run directory in, atoms.nc out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CROSS_SECTION, PIXEL

from hpcaet.atoms.stage import run_atoms
from hpcaet.config import load_config
from hpcaet.errors import InputError
from hpcaet.io import DatasetNotFoundError, make_volume, read_dataset, write_dataset
from hpcaet.parallel import DaskExecutor, TaskMapper
from hpcaet.pipeline import RunDirectory, run_stages

FAST = {"refine_iterations": 40, "flip_cycles": 2}


def _config(**atoms):
    return load_config(
        overrides={
            "seed": 1,
            "atoms": {**FAST, **atoms},
            "species": {"cross_section": CROSS_SECTION},
        }
    )


def _run_dir(tmp_path, truth, inputs, *, volume=None):
    run = RunDirectory(tmp_path / "run")
    config = _config()
    run.prepare(config)
    vol, series = inputs
    write_dataset(truth, run.file("truth_atoms.nc"))
    write_dataset(volume if volume is not None else vol, run.file("volume.nc"))
    write_dataset(series, run.file("processed.nc"))
    return run, config


def test_stage_recovers_the_planted_defects(tmp_path, truth, inputs):
    # The whole step, through the pipeline, on ideal inputs of the 20 x 20 Å phantom:
    # every species, the four planted vacancies (one an empty column) and the
    # substitution must come out right; precision bounds are twice the paper's (few
    # atoms and 40 iterations, so the RMSD scatters).
    run, config = _run_dir(tmp_path, truth, inputs)
    run_stages(config, run.root, stages=("atoms",))
    model = read_dataset(run.file("atoms.nc"), kind="AtomModel")
    scores = json.loads(run.file("scores.json").read_text())
    assert scores["all_correct"], scores
    assert scores["vacancies"] == {"true": 4, "found": 4, "false": 0}
    assert scores["substitutions"]["found"] == scores["substitutions"]["true"] >= 1
    limits = {"Mo": 8.0, "W": 12.0, "S": 30.0, "Se": 30.0}
    for name, limit in limits.items():
        assert scores["species"][name]["rmsd_pm"] < limit, (name, scores["species"][name])
    assert 0 < model.attrs["R1"] < 1 and 0 < model.attrs["R"] < 1
    assert model["flag"].attrs["flag_meanings"] == "too_close off_layer edge uncertain"
    np.testing.assert_array_equal(model["true_index"].values >= 0, True)
    chal = model["layer"].values != 0
    pair = model["pair"].values
    np.testing.assert_array_equal(pair[pair[chal]], np.flatnonzero(chal))
    # The cross-sections come back in Å² from the dose (within 5 %).
    cross = dict(zip(model["element"].values, model["cross_section"].values, strict=True))
    for name in ("Mo", "W"):
        assert cross[name] == pytest.approx(CROSS_SECTION[name], rel=0.05)
    assert (run.figures / "atoms.png").exists()
    # A re-run resumes from the step checkpoints and gives the same model.
    again = run_atoms(config, run)["atoms.nc"]
    np.testing.assert_array_equal(again["position"].values, model["position"].values)


def test_missing_inputs_name_the_stage(tmp_path, truth, inputs):
    run, config = _run_dir(tmp_path, truth, inputs)
    run.file("volume.nc").unlink()
    with pytest.raises(DatasetNotFoundError, match="hpcaet reconstruct --run"):
        run_atoms(config, run)
    write_dataset(inputs[0], run.file("volume.nc"))
    run.file("processed.nc").unlink()
    with pytest.raises(DatasetNotFoundError, match="hpcaet preprocess --run"):
        run_atoms(config, run)


def test_mismatched_voxel_size(tmp_path, truth, inputs):
    vol = inputs[0]
    wrong = make_volume(vol["density"].values, voxel_size=0.5 * PIXEL, algorithm="ideal")
    run, config = _run_dir(tmp_path, truth, inputs, volume=wrong)
    with pytest.raises(InputError, match="voxel size"):
        run_atoms(config, run)


def test_empty_volume(tmp_path, truth, inputs):
    empty = make_volume(np.zeros((9, 88, 88), np.float32), voxel_size=PIXEL, algorithm="ideal")
    run, config = _run_dir(tmp_path, truth, inputs, volume=empty)
    with pytest.raises(InputError, match="no positive density"):
        run_atoms(config, run)


def test_refinement_on_a_dask_cluster_matches_serial(truth, inputs):
    # A real (threaded) LocalCluster: the chunked loss and gradients summed over the
    # workers must equal the serial ones to rounding.
    distributed = pytest.importorskip("distributed")
    from hpcaet.atoms import refine_atoms

    _, series = inputs
    options = {
        "pixel_size": PIXEL,
        "weights": CROSS_SECTION,
        "b_factors": {"Mo": 23.0, "W": 28.0, "S": 22.0, "Se": 25.0},
        "iterations": 3,
        "chunk": 5,
    }
    images, euler = series["images"].values, series["euler"].values
    pos, species = truth["position"].values, truth["species"].values
    serial = refine_atoms(images, euler, pos, species, **options)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        mapper = TaskMapper(DaskExecutor(client, "test"), keep_jobs=True)
        parallel = refine_atoms(images, euler, pos, species, mapper=mapper, **options)
    assert mapper.calls >= 3
    assert len(mapper._kept) == len(images) // 5 + (len(images) % 5 > 0)  # scattered once
    np.testing.assert_allclose(parallel.position, serial.position, rtol=0, atol=1e-9)
    np.testing.assert_allclose(parallel.history, serial.history, rtol=1e-9)


def test_edge_sites_are_flagged_and_can_be_dropped():
    from hpcaet.atoms.quality import edge_flags, field_of_view
    from hpcaet.atoms.stage import keep_sites
    from hpcaet.io import FLAG_EDGE, FLAG_TOO_CLOSE, make_atom_model, make_volume

    volume = make_volume(np.zeros((5, 40, 30)), voxel_size=0.5, algorithm="test")
    x0, x1, y0, y1 = field_of_view(volume, margin=0.0)
    assert (x0, x1, y0, y1) == (-7.5, 7.0, -10.0, 9.5)
    pos = np.array(
        [[0.0, 0.0, 0.0], [-6.0, 0.0, 1.5], [6.5, 1.0, -1.5], [0.0, 7.0, 0.0], [0.0, 6.4, 0.0]]
    )
    flags = edge_flags(pos, volume, distance=3.0)
    # x within [-4.5, 4.0] and y within [-7.0, 6.5] is inside
    np.testing.assert_array_equal(flags, [0, FLAG_EDGE, FLAG_EDGE, FLAG_EDGE, 0])
    model = make_atom_model(
        position=pos,
        species=["Mo", "S", "S", "Mo", "Mo"],
        b_factor=np.ones(5),
        layer=[0, 1, -1, 0, 0],
        region=np.zeros(5, int),
        pair=[-1, 2, 1, -1, -1],
        flag=flags | np.array([FLAG_TOO_CLOSE, 0, 0, 0, 0]),
    )
    kept = keep_sites(model, (flags & FLAG_EDGE) == 0)
    np.testing.assert_array_equal(kept["position"].values, pos[[0, 4]])
    np.testing.assert_array_equal(kept["pair"].values, [-1, -1])
    # a kept site whose partner goes loses the partner
    part = keep_sites(model, np.array([True, True, False, True, True]))
    np.testing.assert_array_equal(part["pair"].values, [-1, -1, -1, -1])
    both = keep_sites(model, np.array([False, True, True, False, False]))
    np.testing.assert_array_equal(both["pair"].values, [1, 0])
