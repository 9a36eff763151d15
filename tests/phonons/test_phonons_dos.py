"""DOS, PDOS, peaks and the NNLS decomposition against known answers."""

import numpy as np
import pytest

from hpcaet.phonons import THZ_TO_MEV, density_of_states, dos_peaks, nnls_decomposition


def gaussian(e, centre, width):
    return np.exp(-0.5 * ((e - centre) / width) ** 2) / (width * np.sqrt(2 * np.pi))


def test_dos_of_a_cell_integrates_to_three_and_pdos_sums_to_it(perfect_mos2):
    _, phonon = perfect_mos2
    phonon.run_mesh([4, 4, 1], with_eigenvectors=True, is_mesh_symmetry=False)
    mesh = phonon.mesh
    grid = np.arange(-10.0, 80.0, 0.05)
    symbols = np.array(phonon.unitcell.symbols)
    groups = {s: np.flatnonzero(symbols == s) for s in ("Mo", "S")}
    dos, pdos = density_of_states(
        mesh.frequencies * THZ_TO_MEV,
        grid,
        sigma=1.0,
        q_weights=mesh.weights,
        eigenvectors=mesh.eigenvectors,
        groups=groups,
    )
    assert np.trapezoid(dos, grid) == pytest.approx(3.0, abs=1e-6)
    np.testing.assert_allclose(pdos["Mo"] + pdos["S"], dos, atol=1e-12)
    # a third of the atoms are Mo: a third of the modes' weight, to 1e-6
    assert np.trapezoid(pdos["Mo"], grid) == pytest.approx(1.0, abs=1e-6)


def test_peaks_of_known_gaussians():
    e = np.arange(0.0, 60.0, 0.05)
    curve = gaussian(e, 47.2, 1.0) + 0.5 * gaussian(e, 26.6, 1.5) + 0.01
    np.testing.assert_allclose(dos_peaks(e, curve), [47.2, 26.6], atol=0.05)


def test_nnls_recovers_weights_and_the_missing_peak():
    e = np.arange(0.0, 60.0, 0.05)
    a = gaussian(e, 47.0, 1.5) + gaussian(e, 39.0, 2.0)
    b = gaussian(e, 31.0, 1.5) + gaussian(e, 25.0, 2.0)
    interface = 0.4 * a + 0.6 * b
    out = nnls_decomposition(e, interface, {"MoS2": a, "WSe2": b})
    assert out["weights"]["MoS2"] == pytest.approx(0.4, abs=1e-10)
    assert out["weights"]["WSe2"] == pytest.approx(0.6, abs=1e-10)
    assert out["residual_peaks"].size == 0
    extra = interface + 0.2 * gaussian(e, 17.5, 1.0)  # a mode that neither bulk has
    out = nnls_decomposition(e, extra, {"MoS2": a, "WSe2": b})
    np.testing.assert_allclose(out["residual_peaks"], [17.5], atol=0.05)
    # the extra mode barely overlaps the bulk curves: the weights move by < 1e-3
    assert out["weights"]["WSe2"] == pytest.approx(0.6, abs=1e-3)
