"""Readers on real Gatan files (../shared/data/real) and on netCDF written by hpcaet."""

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from hpcaet.eels import read_spectra
from hpcaet.errors import InputError
from hpcaet.io import make_eels, write_dataset

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real microscope files not found at {REAL}"
)
pytest.importorskip("rsciio", reason="RosettaSciIO not installed (pip install hpcaet[formats])")


def _edge_onset(spectrum: np.ndarray, energy: np.ndarray, low: float, high: float) -> float:
    """Energy of the steepest rise of log(counts) in [low, high] [meV]."""
    slope = np.gradient(np.log(gaussian_filter1d(spectrum, 2.0)), energy)
    sel = (energy >= low) & (energy <= high)
    return float(energy[sel][np.argmax(slope[sel])])


@needs_real
@pytest.mark.parametrize("name", ["DMReader_EELS_STO.dm3", "DMReader_EELS_STO.dm4"])
def test_dm_spectrum_calibration_in_mev(name):
    ds = read_spectra(REAL / name)
    assert ds.sizes == {"position": 1, "energy": 2048}
    assert ds["energy"].attrs["units"] == "meV"
    assert ds.attrs["energy_units_in_file"] == "eV"
    # 350 eV offset, 0.25 eV/channel in the file = 350000 meV and 250 meV/channel.
    np.testing.assert_allclose(ds["energy"].values[[0, 1, -1]], [350e3, 350.25e3, 861.75e3])
    # SrTiO3: the Ti-L2,3 edge starts at ~456 eV and the O-K edge at ~532 eV (tabulated
    # edge energies). The steepest rise of the smoothed log counts lies a few eV before
    # the onset and the file's absolute calibration is the instrument's, so we allow
    # -10/+6 eV: a wrong unit, offset sign or dispersion would miss by far more.
    e, y = ds["energy"].values, ds["spectra"].values[0]
    assert 446e3 <= _edge_onset(y, e, 430e3, 500e3) <= 462e3
    assert 522e3 <= _edge_onset(y, e, 505e3, 560e3) <= 538e3


@needs_real
def test_dm3_and_dm4_agree():
    a = read_spectra(REAL / "DMReader_EELS_STO.dm3")
    b = read_spectra(REAL / "DMReader_EELS_STO.dm4")
    np.testing.assert_array_equal(a["spectra"].values, b["spectra"].values)
    np.testing.assert_array_equal(a["energy"].values, b["energy"].values)


@needs_real
def test_dm_spectrum_image_axes_order_and_calibration():
    ds = read_spectra(REAL / "DMReader_SpectrumImage_SI-EELS.dm3")
    # 49 rows x 6 columns x 1024 channels at 0.5 eV/channel (README); RosettaSciIO lists
    # energy first, so a reader that trusted the array order would get this wrong.
    assert ds.sizes == {"position": 49 * 6, "energy": 1024}
    assert ds.attrs["scan_shape"].tolist() == [49, 6]
    assert ds.attrs["dispersion"] == pytest.approx(500.0)
    assert ds["energy"].values[0] == pytest.approx(350e3)
    assert ds["scan_row"].values.max() == 48 and ds["scan_col"].values.max() == 5
    # row-major raster: position 6 is row 1, column 0
    assert (int(ds["scan_row"][6]), int(ds["scan_col"][6])) == (1, 0)
    # every spatial pixel holds a core-loss spectrum with the Ti-L edge in place
    e = ds["energy"].values
    mean = ds["spectra"].values.mean(axis=0)
    assert 446e3 <= _edge_onset(mean, e, 430e3, 500e3) <= 462e3
    # the HAADF survey of this SI has the same 49:6 aspect (1568 x 192 pixels)
    from rsciio.digitalmicrograph import file_reader

    survey = file_reader(str(REAL / "DMReader_SI-HAADF.dm3"))[0]["data"]
    assert survey.shape[0] / survey.shape[1] == pytest.approx(49 / 6, rel=0.01)


@needs_real
def test_core_loss_file_is_rejected_by_the_vibrational_analysis():
    from hpcaet.eels import fit_power_law

    ds = read_spectra(REAL / "DMReader_EELS_STO.dm3")
    with pytest.raises(InputError, match="not covered by the energy axis"):
        fit_power_law(ds["spectra"].values, ds["energy"].values)


def test_netcdf_round_trip(tmp_path):
    energy = np.arange(-10, 80, 0.44)
    spectra = np.random.default_rng(0).poisson(100, (4, energy.size)).astype(float)
    path = write_dataset(
        make_eels(spectra=spectra, energy=energy, position=np.arange(4) * 1.6), tmp_path / "scan.nc"
    )
    ds = read_spectra(path)
    np.testing.assert_array_equal(ds["spectra"].values, spectra)


def test_unknown_extension(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_text("nothing")
    with pytest.raises(InputError, match="unknown spectrum file extension"):
        read_spectra(path)
