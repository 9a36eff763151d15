"""What decides whether a stage's output is still valid: the stage hashes."""

from __future__ import annotations

from hpcaet.config import load_config
from hpcaet.pipeline import STAGES, stage_hash


def _hashes(**overrides):
    config = load_config(overrides=overrides or None)
    return {name: stage_hash(config, stage) for name, stage in STAGES.items()}


def test_a_change_reaches_every_stage_downstream_and_no_other():
    base = _hashes()
    changed = _hashes(preprocess={"drift_refine": 3})
    assert changed["simulate"] == base["simulate"]
    for name in ("preprocess", "reconstruct", "atoms", "structure"):
        assert changed[name] != base[name], name
    atoms = _hashes(atoms={"threshold": 0.1})
    assert [n for n in base if atoms[n] != base[n]] == ["atoms", "dynamic", "structure"]


def test_materials_are_science():
    one = [
        {
            "name": "MoS2",
            "metal": "Mo",
            "chalcogen": "S",
            "lattice_constant": 3.16,
            "chalcogen_height": 1.56,
        }
    ]
    changed = _hashes(materials={"regions": one})
    base = _hashes()
    assert all(changed[n] != base[n] for n in ("simulate", "atoms", "structure"))


def test_execution_settings_keep_every_hash():
    base = _hashes()
    assert _hashes(reconstruct={"fft_workers": 4}, atoms={"chunk_images": 2}) == base
    assert _hashes(parallel={"workers": 8, "memory_limit": "1GB"}) == base
