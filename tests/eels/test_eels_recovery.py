"""The analysis on synthetic line scans with known regions and peaks (the issue's targets)."""

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.eels import analyse_spectra, synthetic_line_scan
from hpcaet.eels.stage import analyse_eels, run_eels_stage, synthetic_eels
from hpcaet.errors import InputError
from hpcaet.io import read_dataset, validate
from hpcaet.pipeline import RunDirectory


@pytest.fixture(scope="module")
def paper_scan():
    """The paper's scan: 40 points, 1.6 nm, 0.44 meV/channel, SNR 30, 1.6 nm delocalisation."""
    scan = synthetic_line_scan(snr=30.0, rng=11)
    return scan, analyse_spectra(
        scan.spectra, scan.energy, peak_background="joint", fit_starts=3, initial_width=2.4, rng=11
    )


def test_boundaries_within_one_step(paper_scan):
    scan, result = paper_scan
    assert np.all(np.abs(result.regions.starts - scan.starts) <= 1)


def test_zero_loss_drift_removed(paper_scan):
    scan, result = paper_scan
    # 0.44 meV channels, ZLP of ~1e7 counts: the parabola vertex is good to ~0.05 meV
    np.testing.assert_allclose(result.zero_loss_shift, scan.zlp_shift, atol=0.05)


def test_background_exponent_recovered(paper_scan):
    scan, result = paper_scan
    # phonon signal inside the 16-20 meV window biases r; 0.1 covers it at SNR 30
    np.testing.assert_allclose(result.background.exponent, scan.exponent, atol=0.1)


def test_well_separated_peaks_within_half_mev(paper_scan):
    # Peaks more than 1.5 FWHM from their neighbours: MoS2 49.4 and 38.6 meV, WSe2 46.2
    # and 38.8 meV. Overlapping peaks (spacing < 1 FWHM) are not resolved to 0.5 meV at
    # this signal-to-noise ratio (see benchmarks/bench_eels.py and docs/eels.md).
    scan, result = paper_scan
    for g, rows in ((0, [0, 1]), (2, [0, 1])):
        err = result.fits[g].centre[rows] - scan.peak_centre[g, rows]
        assert np.all(np.abs(err) <= 0.5), (g, err)


def test_promisable_peaks_within_half_mev_at_the_papers_snr():
    # SNR 7 (the paper's, docs/eels.md). Only MoS2 49.4, 38.6 and WSe2 46.2 meV have a
    # Cramér-Rao bound <= 0.25 meV there (0.04, 0.24, 0.20 meV), so only they can be
    # promised within ±0.5 meV; measured worst over 6 seeds 0.10, 0.31, 0.33 meV.
    scan = synthetic_line_scan(snr=7.0, rng=0)
    result = analyse_spectra(
        scan.spectra,
        scan.energy,
        peak_background="joint",
        fit_starts=5,
        initial_width=2.4,
        correct_delocalisation=True,
        rng=0,
    )
    assert np.all(np.abs(result.regions.starts - scan.starts) <= 1)
    for g, k in ((0, 0), (0, 1), (2, 0)):
        err = result.fits[g].centre[k] - scan.peak_centre[g, k]
        assert abs(err) <= 0.5, (g, k, err)


def test_fewer_spectra_than_clusters():
    scan = synthetic_line_scan(rng=0)
    with pytest.raises(InputError, match="2 spectra for 3 clusters"):
        analyse_spectra(scan.spectra[:2], scan.energy)


# one start at SNR 7: a near-degenerate peak may be undetermined, which the stage warns
# about (tested in test_eels_seeds.py and test_eels_cluster_peaks.py); here the files count
@pytest.mark.filterwarnings("ignore::hpcaet.eels._checks.EelsWarning")
def test_stage_writes_valid_datasets_and_figures(tmp_path):
    config = load_config(overrides={"eels": {"fit_starts": 1, "restarts": 3}})
    run = RunDirectory(tmp_path)
    out = run_eels_stage(config, run)
    for ds in out.values():
        validate(ds, "EELS")
    eels = out["eels.nc"]
    assert eels.sizes["group"] == 3 and eels.sizes["peak"] == 5
    assert list(eels["group_name"].values) == ["MoS2", "interface", "WSe2"]
    assert "true_peak_centre" in eels and "true_region" in eels
    assert sorted(p.name for p in run.figures.glob("eels_*.png")) == [
        "eels_background.png",
        "eels_clusters.png",
        "eels_line_scan.png",
        "eels_peaks.png",
    ]


@pytest.mark.filterwarnings("ignore::hpcaet.eels._checks.EelsWarning")
def test_cli_on_netcdf(tmp_path):
    from hpcaet.cli import main
    from hpcaet.io import write_dataset

    # SNR 30: boundaries exact in every seed measured (at the paper's SNR 7 they can be
    # off by one step, see docs/eels.md)
    config = load_config(overrides={"eels": {"synthetic": {"snr": 30.0}}})
    path = write_dataset(synthetic_eels(config), tmp_path / "scan.nc")
    fast = tmp_path / "fast.yaml"
    fast.write_text("eels:\n  fit_starts: 1\n  restarts: 3\n")
    assert main(["eels", str(path), "--out", str(tmp_path / "out"), "--config", str(fast)]) == 0
    ds = read_dataset(tmp_path / "out" / "eels.nc", kind="EELS")
    assert ds.attrs["region_starts"].tolist() == [0, 16, 26]


@pytest.mark.filterwarnings("ignore::hpcaet.eels._checks.EelsWarning")
def test_analyse_eels_keeps_truth_on_cropped_axis():
    config = load_config(overrides={"eels": {"fit_starts": 1, "restarts": 2}})
    scan = synthetic_eels(config)
    out = analyse_eels(scan, config.eels, rng=0)
    assert out.sizes["energy"] < scan.sizes["energy"]  # cropped by the ZLP alignment
    np.testing.assert_array_equal(
        out["true_signal"].values, scan["true_signal"].sel(energy=out["energy"]).values
    )
