"""The real files of ../shared/data/real: a BaTiO3 vibrational spectrum image, core-loss data."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.eels import (
    EelsWarning,
    align_zero_loss,
    analyse_eels,
    fit_power_law,
    power_law,
    read_spectra,
)
from hpcaet.errors import InputError
from hpcaet.io import read_dataset

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"
BTO = REAL / "vEELS_BTO_SI.dm4"
CONFIG = ROOT / "hpcaet" / "configs" / "eels_batio3.yaml"
needs_real = pytest.mark.skipif(not BTO.exists(), reason=f"real files not found at {REAL}")
pytest.importorskip("rsciio", reason="RosettaSciIO not installed (pip install hpcaet[formats])")

#: The authors' windows (README of the data) and the ranges the issue compares [meV].
WINDOWS = ((8.5, 9.0), (72.0, 78.0), (105.0, 120.0))
RANGES = ((20.0, 70.0), (50.0, 65.0), (80.0, 95.0))


@needs_real
@pytest.mark.parametrize(
    "name", ["DMReader_EELS_STO.dm3", "DMReader_EELS_STO.dm4", "DMReader_SpectrumImage_SI-EELS.dm3"]
)
def test_core_loss_files_are_recognised(name):
    ds = read_spectra(REAL / name)
    with pytest.raises(InputError, match=r"no zero-loss peak near 0 meV: this is core-loss data"):
        analyse_eels(ds, load_config().eels, rng=0)


@needs_real
def test_background_matches_an_independent_poisson_fit_within_one_percent():
    """The default estimator (Newton on the Poisson likelihood) against an independent
    fit of the same estimator that always runs: scipy's Nelder–Mead on the Poisson
    negative log-likelihood of each spectrum's window channels, from a log-log start."""
    from scipy.optimize import minimize

    ds = read_spectra(BTO)
    aligned = align_zero_loss(ds["spectra"].values[::23], ds["energy"].values)  # 51 spectra
    e, y = aligned.energy, aligned.spectra
    with pytest.warns(EelsWarning, match="holds 1 channel"):
        ours = fit_power_law(y, e, windows=WINDOWS, estimator="poisson")
    mask = np.zeros(e.size, bool)
    for lo, hi in WINDOWS:
        mask |= (e >= lo) & (e <= hi)
    x, counts = np.log(e[mask]), y[:, mask]
    laws = []
    for row in counts:
        slope, offset = np.polyfit(x, np.log(np.maximum(row, 1.0)), 1)

        def nll(p, row=row):
            log_rate = p[0] - p[1] * x
            return float(np.sum(np.exp(log_rate) - row * log_rate))

        best = minimize(
            nll,
            [offset, -slope],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20000},
        )
        laws.append((np.exp(best.x[0]), best.x[1]))
    amplitude, exponent = np.array(laws).T
    for lo, hi in RANGES:
        m = (e >= lo) & (e <= hi)
        mine = (y[:, m] - power_law(e[m], ours.amplitude, ours.exponent)).sum(axis=1)
        theirs = (y[:, m] - power_law(e[m], amplitude, exponent)).sum(axis=1)
        # per spectrum: the done-when asks for 1 %
        np.testing.assert_allclose(mine, theirs, rtol=0.01)
    np.testing.assert_allclose(ours.exponent, exponent, atol=1e-4)


@needs_real
def test_background_matches_hyperspy_power_law_within_one_percent():
    hs = pytest.importorskip("hyperspy.api")
    ds = read_spectra(BTO)
    aligned = align_zero_loss(ds["spectra"].values[::23], ds["energy"].values)  # 51 spectra
    e, y = aligned.energy, aligned.spectra
    with pytest.warns(EelsWarning, match="holds 1 channel"):
        ours = fit_power_law(y, e, windows=WINDOWS, estimator="poisson")
    # HyperSpy's PowerLaw, Poisson maximum likelihood on the same window channels
    s = hs.signals.Signal1D(y)
    axis = s.axes_manager.signal_axes[0]
    axis.offset, axis.scale, axis.is_binned = float(e[0]), float(np.diff(e).mean()), False
    model = s.create_model()
    law = hs.model.components1D.PowerLaw()
    model.append(law)
    mask = np.zeros(e.size, bool)
    for lo, hi in WINDOWS:
        mask |= (e >= lo) & (e <= hi)
    model.set_signal_range_from_mask(mask)
    law.A.map["values"][:], law.r.map["values"][:] = 1e6, 2.0
    law.A.map["is_set"][:] = law.r.map["is_set"][:] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.multifit(
            optimizer="Nelder-Mead",
            loss_function="ML-poisson",
            show_progressbar=False,
            options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000},
        )
    for lo, hi in RANGES:
        m = (e >= lo) & (e <= hi)
        mine = (y[:, m] - power_law(e[m], ours.amplitude, ours.exponent)).sum(axis=1)
        theirs = (y[:, m] - power_law(e[m], law.A.map["values"], law.r.map["values"])).sum(axis=1)
        # per spectrum and in total: the issue asks for 1 %; measured < 0.001 %
        np.testing.assert_allclose(mine, theirs, rtol=0.01)


def _check_batio3(out: Path, n: int) -> None:
    ds = read_dataset(out / "eels.nc", kind="EELS")
    assert ds["cluster_map"].dims == ("y", "x") and ds["cluster_map"].shape == (n, n)
    assert ds["x"].attrs["units"] == "nm"
    # 34 positions over 2.2 nm in the file: 0.0667 nm per pixel along both axes
    np.testing.assert_allclose(np.diff(ds["x"].values), 2.2 / 33, rtol=1e-3)
    np.testing.assert_allclose(np.diff(ds["y"].values), 2.2 / 33, rtol=1e-3)
    assert ds["peak_centre_map"].dims == ("peak", "y", "x")
    assert "delocalisation_length_nm" in ds.attrs
    centre, height, width = (ds[f"peak_{k}"].values for k in ("centre", "height", "width"))
    area = height * width
    for g in range(ds.sizes["group"]):
        low = (centre[g] > 15) & (centre[g] < 45)
        high = (centre[g] > 70) & (centre[g] < 110)
        # the strongest peak of each range: BaTiO3's bands near 29 and 90 meV
        assert centre[g][low][np.argmax(area[g][low])] == pytest.approx(29.0, abs=2.0)
        assert centre[g][high][np.argmax(area[g][high])] == pytest.approx(90.0, abs=3.0)
    figures = sorted(p.name for p in (out / "figures").glob("eels_*.png"))
    assert figures == [
        "eels_background.png",
        "eels_cluster_map.png",
        "eels_peak_maps.png",
        "eels_peaks.png",
        "eels_signal_map.png",
    ]


@needs_real
def test_batio3_corner_through_the_cli(tmp_path):
    """The shipped BaTiO3 config on a 12 x 12 corner of the real image, written as netCDF."""
    from hpcaet.cli import main
    from hpcaet.io import write_dataset

    ds = read_spectra(BTO)
    keep = (ds["scan_row"].values < 12) & (ds["scan_col"].values < 12)
    corner = ds.isel(position=np.flatnonzero(keep))
    corner.attrs["scan_shape"] = np.array([12, 12])
    path = write_dataset(corner, tmp_path / "corner.nc")
    with pytest.warns(EelsWarning, match="8.5–9 meV holds 1 channel"):
        assert (
            main(["eels", str(path), "--out", str(tmp_path / "out"), "--config", str(CONFIG)]) == 0
        )
    _check_batio3(tmp_path / "out", 12)


@needs_real
@pytest.mark.slow
def test_batio3_spectrum_image_gives_2d_maps_and_both_bands(tmp_path):
    """The issue's command on the whole 34 x 34 file (about a minute on a loaded laptop)."""
    from hpcaet.cli import main

    out = tmp_path / "bto"
    with pytest.warns(EelsWarning, match="8.5–9 meV holds 1 channel"):
        assert main(["eels", str(BTO), "--out", str(out), "--config", str(CONFIG)]) == 0
    _check_batio3(out, 34)
