"""jobs/phonons.sbatch as text, and run as bash under real mpiexec: equal to a serial run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import hpcaet
from hpcaet.config import config_to_dict, load_config, packaged_config
from hpcaet.io import read_dataset, write_dataset
from hpcaet.phantom.stage import make_phantom
from hpcaet.phonons.stage import run_phonons

REPO = Path(hpcaet.__file__).resolve().parents[1]
TEMPLATE = REPO / "jobs" / "phonons.sbatch"
SMALL = {
    "rows": 8,
    "width": 2,
    "path_points": 6,
    "mesh": [2, 1, 1],
    "bulk_supercell": 4,
    "bulk_mesh": 8,
    "reference": False,
    "energy": [-60.0, 90.0, 0.2],
}


def test_template_directives_and_usage():
    text = TEMPLATE.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(TEMPLATE)], check=True)
    directives = [
        line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#SBATCH")
    ]
    names = {d.partition("=")[0] for d in directives}
    assert {"--job-name", "--ntasks", "--time", "--output", "--cpus-per-task"} <= names
    assert 'phonons --run "$RUN_DIR" --mpi "$@"' in text
    assert "OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}" in text
    done = subprocess.run(["bash", str(TEMPLATE)], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: sbatch" in done.stderr


def _run_dir(root: Path):
    config = load_config(packaged_config("demo"), overrides={"phonons": SMALL})
    root.mkdir()
    write_dataset(make_phantom(config), root / "truth_atoms.nc")
    (root / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return config


@pytest.mark.mpi
def test_template_under_mpiexec_equals_the_serial_stage(tmp_path):
    for name in ("mpi4py", "lammps", "phonopy"):
        pytest.importorskip(name)
    if shutil.which("mpiexec") is None:
        pytest.skip("no mpiexec on PATH (pip install mpich)")
    parallel, serial = tmp_path / "mpi", tmp_path / "serial"
    _run_dir(parallel)
    config = _run_dir(serial)
    env = {
        **os.environ,
        "LAUNCH": "mpiexec",
        "SLURM_NTASKS": "2",
        "HPCAET": f"{sys.executable} -m hpcaet.cli",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        ["bash", str(TEMPLATE), str(parallel)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rank 1 of 2" in done.stderr  # both ranks took part
    run_phonons(config, serial)
    a = read_dataset(parallel / "phonons.nc", kind="Phonons")
    b = read_dataset(serial / "phonons.nc", kind="Phonons")
    # the same forces on every snapshot: the same force constants and spectra
    np.testing.assert_allclose(a["frequency"], b["frequency"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a["spectral_function"], b["spectral_function"], atol=1e-9)
    np.testing.assert_allclose(a["dos"], b["dos"], atol=1e-9)
    # each rank checkpointed its own batches
    assert list((parallel / "checkpoints" / "phonons").glob("phonons-*.npz"))
