"""benchmarks/bench_eels.py: pieces of seeds saved with --save merge to the whole table."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hpcaet.eels.synthetic import TABLE_S3_EELS

PATH = Path(__file__).parents[2] / "benchmarks" / "bench_eels.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_eels", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(seeds, rng):
    regions = np.array(list(TABLE_S3_EELS)[:2])
    truth = np.array([TABLE_S3_EELS[r] for r in regions], float)
    centres = truth + rng.normal(0, 0.1, (len(seeds), *truth.shape))
    return dict(
        seeds=np.array(seeds),
        centres=centres,
        errors=np.full_like(centres, 0.1),
        times=np.ones(len(seeds)),
        bounds=np.zeros(len(seeds), int),
        crlb=np.full(truth.shape, 0.1),
        truth=truth,
        regions=regions,
        snr=7.0,
        delocalisation=1.6,
        peak_fwhm=5.7,
        starts=160,
        rounds=4,
        free_widths=False,
        min_significance=2.0,
    )


def test_merge_equals_the_whole_run(bench, tmp_path, capsys):
    whole = fake_run(range(6), np.random.default_rng(1))
    for name, part in (("a", slice(0, 4)), ("b", slice(4, 6))):
        piece = whole | {k: whole[k][part] for k in bench.PER_SEED}
        np.savez(tmp_path / f"{name}.npz", **piece)
    bench.report(whole)
    expected = capsys.readouterr().out
    bench.merge([tmp_path / "b.npz", tmp_path / "a.npz"])
    assert capsys.readouterr().out == expected
    assert "6 seeds (0–5)" in expected
    with pytest.raises(SystemExit, match="twice"):
        bench.merge([tmp_path / "a.npz", tmp_path / "a.npz"])


def test_sd_interval(bench):
    # 90 % interval of σ from s = 1, n = 20: sqrt(19 / χ²) at χ² = 30.14 and 10.12.
    lo, hi = bench.sd_interval(1.0, 20)
    assert lo == pytest.approx(0.794, abs=1e-3) and hi == pytest.approx(1.370, abs=1e-3)
