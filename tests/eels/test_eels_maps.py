"""Spectrum images as images: cluster and region maps, distances in nm, peak maps."""

import numpy as np
import pytest

from hpcaet.config import load_config
from hpcaet.eels import analyse_spectra, image_distances, image_regions
from hpcaet.eels.stage import analyse_eels, write_eels_figures
from hpcaet.io import make_eels, validate

NY, NX, DY, DX = 6, 16, 0.1, 0.2  # pixels and pixel size [nm]
LENGTH = 0.3  # true decay length of each region's signal beyond its edge [nm]
PEAKS = {0: ((49.4, 38.6), (1.0, 0.8)), 1: ((46.2, 30.6), (0.5, 1.0))}


def _spectrum_image(seed: int = 0, snr_counts: float = 4000.0):
    """Two regions (columns 0-7 and 8-15), each with two Gaussians (σ 2.4 meV), a ZLP, its
    power-law tail and exponentially delocalised neighbour signal; Poisson counts."""
    e = np.arange(-40.0, 100.0, 0.44)
    truth = (np.arange(NX) >= 8).astype(int)[None, :].repeat(NY, 0)
    region = truth.ravel()
    # distance of each pixel to the other region's edge (half-way between columns 7, 8)
    d_other = np.abs(np.tile(np.arange(NX), NY) - 7.5) * DX
    rng = np.random.default_rng(seed)
    own = np.zeros((2, e.size))
    for j, (centres, heights) in PEAKS.items():
        for c, h in zip(centres, heights, strict=True):
            own[j] += snr_counts * h * np.exp(-0.5 * ((e - c) / 2.4) ** 2)
    own[:, e <= 0] = 0
    weight_other = np.exp(-d_other / LENGTH)
    signal = own[region] + weight_other[:, None] * own[1 - region]
    tail = 2e8 * np.abs(e).clip(min=1e-9) ** -3.0 * -np.expm1(-((np.abs(e) / 7.0) ** 4))
    zlp = 1e7 * np.exp(-0.5 * (e / 3.5) ** 2)
    spectra = rng.poisson(zlp + tail + signal).astype(float)
    return spectra, e, truth


def test_image_regions_are_connected_components():
    clusters = np.array([[0, 0, 1, 1], [1, 0, 1, 0], [1, 1, 1, 0]])
    regions = image_regions(clusters)
    # cluster 0 has two components (left block, right column), cluster 1 one
    assert regions.max() + 1 == 3
    assert len(set(regions[clusters == 1].tolist())) == 1
    assert regions[0, 0] == regions[1, 1] != regions[1, 3]


def test_image_distances_follow_the_boundary_normal_in_nm():
    truth = (np.arange(NX) >= 8).astype(int)[None, :].repeat(NY, 0)
    d = image_distances(truth, (DY, DX))
    cols = np.tile(np.arange(NX), NY)
    # straight boundary half-way between columns 7 and 8: |x - 7.5 px| along x, in nm
    expected_to_1 = np.where(cols >= 8, 0.0, (7.5 - cols) * DX)
    expected_to_0 = np.where(cols < 8, 0.0, (cols - 7.5) * DX)
    np.testing.assert_allclose(d[:, 1], expected_to_1, atol=1e-12)
    np.testing.assert_allclose(d[:, 0], expected_to_0, atol=1e-12)


@pytest.fixture(scope="module")
def image_result():
    spectra, e, truth = _spectrum_image()
    result = analyse_spectra(
        spectra,
        e,
        clusters=2,
        n_peaks=2,
        fit_range=(24.0, 56.0),
        peak_background="subtracted",
        initial_width=2.4,
        fit_starts=5,
        correct_delocalisation=True,
        scan_shape=(NY, NX),
        pixel_size=(DY, DX),
        rng=0,
    )
    return result, truth


def test_spectrum_image_clusters_and_regions_are_2d(image_result):
    result, truth = image_result
    labels = result.kmeans.labels.reshape(NY, NX)
    # cluster numbers are arbitrary: compare the partition
    assert np.array_equal(labels == labels[0, 0], truth == truth[0, 0])
    assert result.scan_shape == (NY, NX)
    assert result.region_map.shape == (NY, NX) and result.region_map.max() == 1


def test_decay_length_measured_in_nm(image_result):
    result, _ = image_result
    # truth 0.3 nm = 1.5 pixels along x; ~4000-count peaks: a few % from the noise
    assert result.delocalisation.length == pytest.approx(LENGTH, rel=0.1)


def test_pixel_peak_maps_recover_the_centres(image_result):
    result, truth = image_result
    centre = result.pixels.centre.reshape(NY, NX, -1)
    for j, (centres, _) in PEAKS.items():
        fitted = result.fits[int(result.kmeans.labels.reshape(NY, NX)[truth == j][0])]
        for k, c in enumerate(sorted(centres, reverse=True)):
            assert fitted.centre[k] == pytest.approx(c, abs=0.1)
            # own pixels far from the boundary: every one determined, median within 0.2 meV
            inner = centre[:, 1:4, k] if j == 0 else centre[:, 12:15, k]
            assert np.all(np.isfinite(inner))
            assert np.median(inner) == pytest.approx(c, abs=0.2)


def test_stage_writes_maps_in_nm(tmp_path):
    spectra, e, truth = _spectrum_image(seed=1)
    rows, cols = np.unravel_index(np.arange(NY * NX), (NY, NX))
    ds = make_eels(
        spectra=spectra,
        energy=e,
        position=np.arange(NY * NX, dtype=float),
        scan_shape=np.array([NY, NX]),
        position_calibrated=0,
    ).assign_coords(
        scan_y=("position", rows * DY, {"units": "nm"}),
        scan_x=("position", cols * DX, {"units": "nm"}),
    )
    config = load_config(
        overrides={
            "eels": {
                "clusters": 2,
                "peaks": 2,
                "fit_range": [24.0, 56.0],
                "peak_background": "subtracted",
                "fit_starts": 3,
                "contiguous": False,
            }
        }
    )
    out = analyse_eels(ds, config.eels, rng=0)
    validate(out, "EELS")
    assert out["cluster_map"].dims == ("y", "x")
    assert out["x"].attrs["units"] == "nm"
    np.testing.assert_allclose(out["x"].values, np.arange(NX) * DX)
    np.testing.assert_allclose(out["y"].values, np.arange(NY) * DY)
    assert out["peak_centre_map"].dims == ("peak", "y", "x")
    assert out.attrs["delocalisation_length_nm"] == pytest.approx(LENGTH, rel=0.15)
    assert list(out["group_name"].values) == ["cluster 1", "cluster 2"]
    names = sorted(p.name for p in write_eels_figures(out, tmp_path))
    assert names == [
        "eels_background.png",
        "eels_cluster_map.png",
        "eels_peak_maps.png",
        "eels_peaks.png",
        "eels_signal_map.png",
    ]
