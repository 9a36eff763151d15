"""Tilt-series processing: raw frames to aligned images with calibrated angles.

One module per step of the paper's Methods ("Image processing"):

* :mod:`~hpcaet.preprocess.drift` — drift and scan-distortion correction, frame sum
  (:mod:`~hpcaet.preprocess.registration`: sub-pixel cross-correlation);
* :mod:`~hpcaet.preprocess.denoise` — BM3D (or a Wiener fallback) with a
  variance-stabilising transform for Poisson–Gaussian noise;
* :mod:`~hpcaet.preprocess.background` — hexagon-minimum map + RBF interpolation;
* :mod:`~hpcaet.preprocess.columns`, :mod:`~hpcaet.preprocess.tracking`,
  :mod:`~hpcaet.preprocess.angles` — metal columns, their tracks across the series and
  the angle calibration of equation (1);
* :mod:`~hpcaet.preprocess.vibration` — harmonic-oscillator kernel and Lucy–Richardson
  deconvolution against a reference lattice (:mod:`~hpcaet.preprocess.lattice`);
* :mod:`~hpcaet.preprocess.align` — centre-of-mass alignment.

:func:`~hpcaet.preprocess.stage.preprocess_series` chains them on a TiltSeries; the
pipeline stage ``preprocess`` runs it on a run directory (``hpcaet preprocess --run``).
"""

from hpcaet.preprocess.align import alignment_shifts, centre_of_mass, shift_image
from hpcaet.preprocess.angles import (
    AngleCalibration,
    calibrate_angles,
    gauge_aligned,
    sheet_frame,
)
from hpcaet.preprocess.background import (
    BackgroundEstimate,
    estimate_background,
    hexagon_minima,
    hollow_fraction,
)
from hpcaet.preprocess.columns import (
    GaussianFit,
    column_bias,
    find_metal_columns,
    find_peaks,
    fit_gaussians,
    select_metals,
)
from hpcaet.preprocess.denoise import (
    DENOISE_METHODS,
    anscombe,
    bm3d_available,
    denoise_image,
    estimate_noise,
    inverse_anscombe,
)
from hpcaet.preprocess.drift import (
    DriftEstimate,
    check_frames,
    correct_frames,
    estimate_drift,
    scan_coordinates,
)
from hpcaet.preprocess.lattice import LatticeModel, ideal_monolayer, reference_image
from hpcaet.preprocess.registration import register_translation
from hpcaet.preprocess.series import calibrate_series, vibration_kernels
from hpcaet.preprocess.tracking import Tracks, bright_tracks, reference_view, track_columns
from hpcaet.preprocess.vibration import (
    VibrationEstimate,
    deconvolve,
    estimate_membrane_vibration,
    estimate_vibration,
)

__all__ = [
    "AngleCalibration",
    "BackgroundEstimate",
    "DENOISE_METHODS",
    "DriftEstimate",
    "GaussianFit",
    "LatticeModel",
    "Tracks",
    "VibrationEstimate",
    "alignment_shifts",
    "anscombe",
    "bm3d_available",
    "calibrate_angles",
    "centre_of_mass",
    "check_frames",
    "column_bias",
    "correct_frames",
    "deconvolve",
    "denoise_image",
    "estimate_background",
    "estimate_drift",
    "estimate_noise",
    "estimate_membrane_vibration",
    "estimate_vibration",
    "find_metal_columns",
    "find_peaks",
    "fit_gaussians",
    "gauge_aligned",
    "hexagon_minima",
    "hollow_fraction",
    "ideal_monolayer",
    "inverse_anscombe",
    "reference_image",
    "reference_view",
    "bright_tracks",
    "calibrate_series",
    "vibration_kernels",
    "register_translation",
    "scan_coordinates",
    "select_metals",
    "sheet_frame",
    "shift_image",
    "track_columns",
]
