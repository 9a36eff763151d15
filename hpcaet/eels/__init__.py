"""Spatially resolved vibrational EELS (the paper's Methods and Table S3).

Read spectra (:func:`read_spectra`), align their zero-loss peaks
(:func:`align_zero_loss`), subtract a power-law background fitted on two or more windows
(:func:`fit_power_law`; Poisson maximum likelihood by default, log-log, two-area or
least squares), cluster them by k-means with the correlation distance
(:func:`correlation_kmeans`; regions by :func:`contiguous_regions` along a line scan or
:func:`image_regions` in a spectrum image), fit Gaussians to each group's mean
(:func:`fit_gaussians`, deterministic starts, calibrated errors) and each spectrum
(:func:`fit_pixel_peaks`, for maps); :func:`analyse_spectra` chains these on arrays and
:func:`analyse_eels` on Datasets. :func:`synthetic_line_scan` makes test scans with a
known answer.
"""

from hpcaet.eels._checks import EelsWarning
from hpcaet.eels.align import ZeroLossAlignment, align_zero_loss, locate_zero_loss
from hpcaet.eels.analysis import EelsAnalysis, analyse_spectra
from hpcaet.eels.background import (
    BACKGROUND_ESTIMATORS,
    PAPER_WINDOWS,
    PowerLawBackground,
    fit_power_law,
    power_law,
)
from hpcaet.eels.bounds import centre_crlb
from hpcaet.eels.cluster import (
    KMeansResult,
    Regions,
    contiguous_regions,
    correlation_kmeans,
    normalise_spectra,
)
from hpcaet.eels.delocalisation import (
    Delocalisation,
    estimate_delocalisation,
    image_distances,
    line_distances,
    region_weights,
    unmix_regions,
)
from hpcaet.eels.maps import PixelPeaks, fit_pixel_peaks, image_regions
from hpcaet.eels.peaks import GaussianFit, fit_gaussians, gaussian, initial_centres
from hpcaet.eels.readers import read_spectra
from hpcaet.eels.stage import analyse_eels, run_eels_stage, synthetic_eels, write_eels_figures
from hpcaet.eels.synthetic import (
    TABLE_S3_DFT,
    TABLE_S3_EELS,
    TABLE_S3_EELS_ERROR,
    SyntheticLineScan,
    synthetic_line_scan,
)

__all__ = [
    "read_spectra",
    "EelsWarning",
    "ZeroLossAlignment",
    "align_zero_loss",
    "locate_zero_loss",
    "PAPER_WINDOWS",
    "BACKGROUND_ESTIMATORS",
    "PowerLawBackground",
    "fit_power_law",
    "power_law",
    "KMeansResult",
    "Regions",
    "correlation_kmeans",
    "contiguous_regions",
    "normalise_spectra",
    "centre_crlb",
    "Delocalisation",
    "estimate_delocalisation",
    "region_weights",
    "line_distances",
    "image_distances",
    "PixelPeaks",
    "fit_pixel_peaks",
    "image_regions",
    "unmix_regions",
    "GaussianFit",
    "fit_gaussians",
    "gaussian",
    "initial_centres",
    "EelsAnalysis",
    "analyse_spectra",
    "analyse_eels",
    "synthetic_eels",
    "run_eels_stage",
    "write_eels_figures",
    "SyntheticLineScan",
    "synthetic_line_scan",
    "TABLE_S3_EELS",
    "TABLE_S3_EELS_ERROR",
    "TABLE_S3_DFT",
]
