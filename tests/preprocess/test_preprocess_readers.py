"""Readers of microscope files (hpcaet.io.readers), on real instrument files and round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpcaet.errors import InputError
from hpcaet.io import assemble_tilt_series, read_image

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real instrument files not found at {REAL}"
)


@needs_real
def test_velox_emd_image_and_its_calibration():
    pytest.importorskip("h5py")
    stack = read_image(REAL / "EMDReader_Image_FEI.emd")
    assert stack.data.shape == (512, 512)
    assert stack.axes == ("y", "x")
    assert stack.metadata["title"] == "HAADF"
    # the file says 0.0053024148379916 µm per pixel on both axes
    assert stack.pixel_size == pytest.approx(53.024148379916, rel=1e-9)
    assert "µm" in stack.metadata["calibration"]


@needs_real
def test_dm3_haadf_without_a_length_unit_needs_a_pixel_size():
    pytest.importorskip("rsciio")
    path = REAL / "DMReader_SI-HAADF.dm3"
    with pytest.raises(InputError, match=r"DMReader_SI-HAADF\.dm3.*pixel_size="):
        read_image(path)
    stack = read_image(path, pixel_size=2.5)
    # the survey image is 1568 rows (y) by 192 columns (x), scale 0.03125 with no unit
    assert stack.data.shape == (1568, 192)
    assert stack.axes == ("y", "x")
    assert stack.pixel_size == 2.5
    assert "(no unit)" in stack.metadata["calibration"]


def test_tiff_stack_with_imagej_calibration(tmp_path, rng):
    tifffile = pytest.importorskip("tifffile")
    data = rng.integers(0, 100, (3, 20, 24)).astype(np.uint16)
    path = tmp_path / "frames.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.032, 1 / 0.032),
        metadata={"unit": "nm", "axes": "ZYX"},
    )
    stack = read_image(path)
    assert stack.axes == ("frame", "y", "x")
    np.testing.assert_array_equal(stack.data, data)
    assert stack.pixel_size == pytest.approx(0.32, rel=1e-5)


def test_uncalibrated_tiff_names_the_file_and_the_fix(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.ones((8, 8), np.float32))
    with pytest.raises(InputError, match=r"plain\.tif.*no pixel-size.*pixel_size="):
        read_image(path)


def test_mrc_stack_round_trip(tmp_path, rng):
    mrcfile = pytest.importorskip("mrcfile")
    data = rng.normal(size=(2, 16, 16)).astype(np.float32)
    path = tmp_path / "frames.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 0.32
    stack = read_image(path)
    assert stack.pixel_size == pytest.approx(0.32, rel=1e-6)
    np.testing.assert_allclose(stack.data, data)


def test_assemble_refuses_bad_stacks(rng):
    good = rng.poisson(5.0, (2, 16, 16)).astype(float)
    series = assemble_tilt_series([good, good], [[0, 0, 0], [0, 10, 0]], pixel_size=0.32, dose=1e4)
    assert series["frames"].shape == (2, 2, 16, 16)
    with pytest.raises(InputError, match="differ in shape"):
        assemble_tilt_series([good, good[:, :8]], [[0, 0, 0], [0, 1, 0]], pixel_size=0.32, dose=1e4)
    with pytest.raises(InputError, match=r"tilt\(s\) \[1\] is missing"):
        assemble_tilt_series([good, good], [[0, 0, 0], [0, np.nan, 0]], pixel_size=0.32, dose=1e4)
    with pytest.raises(InputError, match="one .* Euler triple per tilt"):
        assemble_tilt_series([good, good], [[0, 0, 0]], pixel_size=0.32, dose=1e4)
    blank = good.copy()
    blank[1] = 0
    with pytest.raises(InputError, match="all zero"):
        assemble_tilt_series([good, blank], [[0, 0, 0], [0, 1, 0]], pixel_size=0.32, dose=1e4)
    with pytest.raises(InputError, match="unknown format"):
        read_image(Path(__file__))
