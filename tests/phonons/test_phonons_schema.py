"""The NNLS decomposition in the Phonons schema: known weights in, the same weights out."""

import numpy as np
import pytest

from hpcaet.errors import InputError, SchemaError
from hpcaet.io import describe, make_phonons, read_dataset, write_dataset
from hpcaet.phonons.dos import nnls_decomposition


def gaussian(energy, centre, sigma):
    return np.exp(-0.5 * ((energy - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


@pytest.fixture
def curves():
    """Two 'bulk' DOS, and a cell DOS = 0.3 A + 0.7 B + an interface peak at 22 meV."""
    energy = np.arange(0.0, 60.0, 0.1)
    a = 0.5 * gaussian(energy, 47.0, 1.0) + 0.5 * gaussian(energy, 39.0, 1.0)
    b = 0.5 * gaussian(energy, 31.0, 1.0) + 0.5 * gaussian(energy, 8.0, 1.0)
    cell = 0.3 * a + 0.7 * b + 0.05 * gaussian(energy, 22.0, 0.5)
    return energy, {"MoS2": a, "WSe2": b}, cell


def test_nnls_weights_and_residual_peaks_round_trip_through_phonons_nc(curves, tmp_path):
    energy, bulk, cell = curves
    dec = nnls_decomposition(energy, cell, bulk)
    ds = make_phonons(
        energy=energy,
        dos=cell,
        bulk_dos=bulk,
        nnls_weight=dec["weights"],
        nnls_fit=dec["fit"],
        residual_peak=dec["residual_peaks"],
    )
    back = read_dataset(write_dataset(ds, tmp_path / "phonons.nc"), kind="Phonons")
    assert back["material"].values.tolist() == ["MoS2", "WSe2"]
    # the bulk curves do not overlap the 22 meV peak: the weights come back to 1e-6
    np.testing.assert_allclose(back["nnls_weight"].values, [0.3, 0.7], atol=1e-6)
    assert back["nnls_weight"].attrs["units"] == "1"
    assert back["bulk_dos"].dims == ("material", "energy")
    assert back["residual_peak"].attrs["units"] == "meV"
    # the one residual peak is the interface peak, to the grid step
    np.testing.assert_allclose(back["residual_peak"].values, [22.0], atol=0.1)
    fit = (back["nnls_weight"] * back["bulk_dos"]).sum("material")
    np.testing.assert_allclose(back["nnls_fit"].values, fit.values, atol=1e-12)


def test_no_residual_peak_is_an_empty_variable(curves):
    energy, bulk, _ = curves
    exact = 0.5 * bulk["MoS2"] + 0.5 * bulk["WSe2"]
    dec = nnls_decomposition(energy, exact, bulk)
    ds = make_phonons(
        energy=energy, dos=exact, nnls_weight=dec["weights"], residual_peak=dec["residual_peaks"]
    )
    assert ds.sizes["peak"] == 0


def test_negative_weight_is_refused(curves):
    energy, bulk, cell = curves
    with pytest.raises(SchemaError, match="nnls_weight"):
        make_phonons(energy=energy, dos=cell, nnls_weight={"MoS2": -0.1, "WSe2": 1.0})


def test_weights_and_bulk_curves_must_name_the_same_materials(curves):
    energy, bulk, cell = curves
    with pytest.raises(InputError, match="same materials"):
        make_phonons(energy=energy, dos=cell, bulk_dos=bulk, nnls_weight={"WSe2": 1.0})


def test_describe_lists_the_decomposition_with_units():
    text = describe("Phonons")
    for name in ("nnls_weight", "residual_peak", "bulk_dos", "reference_frequency"):
        assert name in text
