"""The whole vibrational-EELS analysis of one scan, as a pure function of arrays.

Zero-loss alignment → power-law background from two (or more) windows → k-means with the
correlation distance → regions (contiguous runs along a line scan, connected components
of a spectrum image) → mean spectrum of each group → sum-of-Gaussians fit, as in the
paper's Methods ("Spatially resolved vibrational EELS"); then every spectrum is fitted
with its group's peaks for maps. A line scan is the special case of one scan axis.
:func:`hpcaet.eels.stage.analyse_eels` wraps it for Datasets and configs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.eels._checks import EelsWarning, check_low_loss, check_spectra, window_mask
from hpcaet.eels.align import align_zero_loss
from hpcaet.eels.background import PAPER_WINDOWS, PowerLawBackground, fit_power_law
from hpcaet.eels.cluster import KMeansResult, Regions, contiguous_regions, correlation_kmeans
from hpcaet.eels.delocalisation import (
    Delocalisation,
    estimate_delocalisation,
    image_distances,
    unmix_regions,
)
from hpcaet.eels.maps import PixelPeaks, fit_pixel_peaks, image_regions
from hpcaet.eels.peaks import GaussianFit, fit_gaussians
from hpcaet.errors import InputError

__all__ = ["EelsAnalysis", "analyse_spectra", "PEAK_BACKGROUNDS"]

log = logging.getLogger(__name__)

#: How the peak fit treats the background: fit the subtracted mean (the paper), or fit a
#: power law together with the peaks on the raw mean.
PEAK_BACKGROUNDS = ("subtracted", "joint")


@dataclass(frozen=True)
class EelsAnalysis:
    """Every intermediate of :func:`analyse_spectra`.

    Attributes
    ----------
    energy : ndarray of shape (n_energy,)
        Energy axis after alignment [meV].
    spectra : ndarray of shape (n_position, n_energy)
        Aligned spectra [counts].
    zero_loss_shift : ndarray of shape (n_position,)
        ZLP position before alignment [meV]; zeros when not aligned.
    background : PowerLawBackground
        Background of each spectrum.
    signal : ndarray of shape (n_position, n_energy)
        Background-subtracted spectra [counts].
    kmeans : KMeansResult
        Cluster of each spectrum.
    regions : Regions or None
        Contiguous regions implied by the clusters (line scans), None otherwise.
    group : ndarray of int, shape (n_position,)
        Group whose mean is fitted: the region (when ``regions``) or the cluster.
    average : ndarray of shape (n_group, n_energy)
        Mean background-subtracted spectrum of each group [counts].
    raw_average : ndarray of shape (n_group, n_energy)
        Mean aligned spectrum of each group [counts].
    fits : list of GaussianFit
        Peak fit of each group.
    delocalisation : Delocalisation or None
        Decay length and neighbours' share (``leak``, on the fit-range channels) removed
        from each group mean before the peak fit; None when not corrected. The length is
        in scan steps for a line scan, in nm for a spectrum image.
    scan_shape : tuple of int
        ``(n_position,)`` for a line scan, ``(ny, nx)`` for a spectrum image (row-major).
    region_map : ndarray of int, shape (ny, nx), or None
        Connected components of the cluster map of a spectrum image.
    pixels : PixelPeaks or None
        Every spectrum fitted with its group's peaks.
    windows : tuple of (float, float)
        Background windows used [meV].
    """

    energy: np.ndarray
    spectra: np.ndarray
    zero_loss_shift: np.ndarray
    background: PowerLawBackground
    signal: np.ndarray
    kmeans: KMeansResult
    regions: Regions | None
    group: np.ndarray
    average: np.ndarray
    raw_average: np.ndarray
    fits: list[GaussianFit]
    delocalisation: Delocalisation | None = None
    scan_shape: tuple[int, ...] = ()
    region_map: np.ndarray | None = None
    pixels: PixelPeaks | None = None
    windows: tuple[tuple[float, float], ...] = ()


def analyse_spectra(
    spectra: ArrayLike,
    energy: ArrayLike,
    *,
    zero_loss: str = "fit",
    windows: Sequence[tuple[float, float]] = PAPER_WINDOWS,
    refine_background: bool = True,
    cluster_range: tuple[float, float] = (20.0, 60.0),
    clusters: int = 3,
    restarts: int = 10,
    max_iterations: int = 100,
    contiguous: bool = True,
    n_peaks: int = 5,
    fit_range: tuple[float, float] = (17.0, 70.0),
    peak_background: str = "subtracted",
    initial_width: float = 3.0,
    fit_starts: int = 20,
    weighted: bool = True,
    correct_delocalisation: bool = False,
    second_derivative_start: bool = False,
    shared_width: bool = False,
    min_significance: float = 0.0,
    fit_rounds: int = 1,
    background_estimator: str | None = None,
    scan_shape: tuple[int, ...] | None = None,
    pixel_size: tuple[float, float] | None = None,
    pixel_maps: bool = True,
    rng: np.random.Generator | int | None = None,
) -> EelsAnalysis:
    """Analyse a line scan (or any set) of vibrational spectra.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy)
        Spectra [counts], in scan order.
    energy : array_like of shape (n_energy,)
        Energy loss [meV].
    zero_loss : {"fit", "centroid", "max", "none"}
        How to locate the ZLP of each spectrum before shifting it to 0 meV
        (:func:`~hpcaet.eels.align.align_zero_loss`); ``none`` keeps the axis.
    windows : sequence of (float, float)
        Background windows [meV] (:func:`~hpcaet.eels.background.fit_power_law`).
    refine_background : bool
        Without ``background_estimator``: True fits the background by Poisson maximum
        likelihood, False by the log-log line.
    background_estimator : {"poisson", "loglog", "two_area", "least_squares"}, optional
        Estimator of the power law (:func:`~hpcaet.eels.background.fit_power_law`).
    cluster_range : (float, float)
        Channels that k-means compares [meV].
    clusters, restarts, max_iterations
        k-means settings (:func:`~hpcaet.eels.cluster.correlation_kmeans`).
    contiguous : bool
        Line scans: turn the clusters into contiguous regions along the scan and average
        those (the paper: #1–16, #17–26, #27–40); False averages the clusters themselves.
        Spectrum images always average the clusters; their regions are the connected
        components of the cluster map.
    n_peaks, fit_range, initial_width, fit_starts, fit_rounds, second_derivative_start
        Peak fit settings (:func:`~hpcaet.eels.peaks.fit_gaussians`; ``fit_starts`` and
        ``fit_rounds`` are its ``starts`` and ``rounds``).
    shared_width, min_significance
        One σ for all peaks of a group (resolution-limited peaks), and the smallest
        height, in standard errors, of a run's peaks for it to count as plausible
        (:func:`~hpcaet.eels.peaks.fit_gaussians`); the defaults fit free widths and
        accept any positive height, as the paper.
    peak_background : {"subtracted", "joint"}
        ``subtracted`` fits the mean background-subtracted spectrum (the paper);
        ``joint`` fits the mean aligned spectrum with a power law and the peaks together.
    weighted : bool
        Weight each channel of the peak fit by the inverse of the Poisson noise of the
        group mean (``sqrt(summed counts) / n``, the maximum-likelihood fit); False
        weights every channel alike. The power-law tail makes the counts at 16–20 meV
        ~100× those under the peaks, so an unweighted fit is dominated by the channels
        where the background model matters most.
    correct_delocalisation : bool
        Before the peak fit, subtract from each group mean the delocalised signal of the
        other regions (:mod:`~hpcaet.eels.delocalisation`: exponential decay beyond each
        region, decay length fitted on ``cluster_range``). Line scans need contiguous
        regions of at least two points each (skipped with a warning otherwise); spectrum
        images use the distance of each pixel to each cluster along the boundary normal
        [nm] (:func:`~hpcaet.eels.delocalisation.image_distances`).
    scan_shape : tuple of int, optional
        ``(ny, nx)`` of a spectrum image whose spectra are given row-major; default (or
        any shape with one axis) a line scan.
    pixel_size : (float, float), optional
        Pixel size along y and x of a spectrum image [nm]; default 1 (distances in
        pixels).
    pixel_maps : bool
        Fit every spectrum with its group's peaks (:func:`~hpcaet.eels.maps.fit_pixel_peaks`).
    rng : numpy.random.Generator, int or None
        Randomness of the k-means seeding (the peak fit uses none).

    Returns
    -------
    EelsAnalysis

    Raises
    ------
    InputError
        Bad spectra (NaN, all zeros), windows or ranges outside the axis, fewer spectra
        than clusters, unknown options.
    ConvergenceError
        A peak fit that did not converge.
    """
    spectra, energy = check_spectra(spectra, energy)
    check_low_loss(energy)
    rng = np.random.default_rng(rng)
    if peak_background not in PEAK_BACKGROUNDS:
        raise InputError(
            f"peak_background must be one of {PEAK_BACKGROUNDS}; got {peak_background!r}."
        )
    shape = tuple(int(v) for v in (scan_shape or (len(spectra),)))
    if int(np.prod(shape)) != len(spectra) or len(shape) > 2:
        raise InputError(
            f"scan_shape {shape} does not hold the {len(spectra)} spectra given; expected "
            "(n_position,) or (ny, nx) with ny * nx spectra in row-major order."
        )
    image = len(shape) == 2 and min(shape) > 1
    if len(spectra) < clusters:
        raise InputError(
            f"got {len(spectra)} spectra for {clusters} clusters; expected at least as many "
            "spectra as clusters. Lower eels.clusters or scan more points."
        )
    if zero_loss == "none":
        shift = np.zeros(len(spectra))
    else:
        aligned = align_zero_loss(spectra, energy, method=zero_loss)
        spectra, energy, shift = aligned.spectra, aligned.energy, aligned.shift
    estimator = background_estimator or ("poisson" if refine_background else "loglog")
    background = fit_power_law(spectra, energy, windows=windows, estimator=estimator)
    signal = background.subtract(spectra)
    use = window_mask(energy, cluster_range, name="cluster range")
    kmeans = correlation_kmeans(
        signal[:, use], k=clusters, restarts=restarts, max_iterations=max_iterations, rng=rng
    )
    regions, region_map = None, None
    if image:
        region_map = image_regions(kmeans.labels.reshape(shape))
        group = kmeans.labels
    else:
        regions = contiguous_regions(kmeans.labels, k=clusters) if contiguous else None
        group = regions.region if regions is not None else kmeans.labels
    sizes = np.bincount(group, minlength=clusters)
    if np.any(sizes == 0):
        raise InputError(
            f"cluster(s) {np.flatnonzero(sizes == 0).tolist()} hold no spectrum; lower "
            f"eels.clusters (got {clusters})."
        )
    average = np.stack([signal[group == g].mean(axis=0) for g in range(clusters)])
    raw_average = np.stack([spectra[group == g].mean(axis=0) for g in range(clusters)])
    leak = np.zeros_like(average)
    deloc = None
    if correct_delocalisation:
        deloc = _delocalisation(
            signal,
            spectra,
            energy,
            use=use,
            fit_range=fit_range,
            regions=regions,
            group=group,
            shape=shape if image else None,
            pixel_size=pixel_size,
            clusters=clusters,
        )
        if deloc is not None:
            leak[:, window_mask(energy, fit_range, name="peak fit range")] = deloc.leak
    fits = []
    for g in range(clusters):
        if peak_background == "joint":
            data = raw_average[g] - leak[g]
            law = fit_power_law(data, energy, windows=windows, estimator="poisson")
            power_law = (float(law.amplitude[0]), float(law.exponent[0]))
        else:
            data, power_law = average[g] - leak[g], None
        members = spectra[group == g]
        noise = np.sqrt(np.maximum(members.sum(axis=0), 1.0)) / len(members)
        fit = fit_gaussians(
            data,
            energy,
            n_peaks=n_peaks,
            fit_range=fit_range,
            initial_width=initial_width,
            starts=fit_starts,
            second_derivative_start=second_derivative_start,
            shared_width=shared_width,
            min_significance=min_significance,
            rounds=fit_rounds,
            power_law=power_law,
            noise=noise if weighted else None,
        )
        fits.append(fit)
        log.info(
            "eels: group %d (%d spectra): peaks %s meV",
            g,
            int(np.sum(group == g)),
            ", ".join(
                f"{c:.1f}±{e:.1f}" for c, e in zip(fit.centre, fit.centre_error, strict=False)
            ),
        )
    _warn_loose_peaks(fits, fit_range)
    pixels = None
    if pixel_maps:
        pixels = fit_pixel_peaks(signal, energy, group, fits, counts=spectra)
    return EelsAnalysis(
        energy=energy,
        spectra=spectra,
        zero_loss_shift=shift,
        background=background,
        signal=signal,
        kmeans=kmeans,
        regions=regions,
        group=group,
        average=average,
        raw_average=raw_average,
        fits=fits,
        delocalisation=deloc,
        scan_shape=shape,
        region_map=region_map,
        pixels=pixels,
        windows=tuple(tuple(float(v) for v in w) for w in windows),
    )


def _delocalisation(
    signal, spectra, energy, *, use, fit_range, regions, group, shape, pixel_size, clusters
) -> Delocalisation | None:
    """Decay length and neighbours' share; None (with a warning) where it cannot be had."""
    sizes = np.bincount(group, minlength=clusters)
    if shape is None and regions is None:
        log.warning("eels: delocalisation not corrected: a line scan needs contiguous regions")
        return None
    if np.any(sizes < 2):
        log.warning(
            "eels: delocalisation not corrected: needs regions of >= 2 points (sizes %s)",
            sizes.tolist(),
        )
        return None
    var = np.maximum(spectra, 1.0)
    fit_mask = window_mask(energy, fit_range, name="peak fit range")
    if shape is None:
        geometry = dict(starts=regions.starts)
        max_length, unit = 5.0, "scan steps"
    else:
        size = tuple(pixel_size) if pixel_size is not None else (1.0, 1.0)
        distance = image_distances(group.reshape(shape), size, n_group=clusters)
        geometry = dict(starts=None, distance=distance, region=group)
        max_length, unit = 5.0 * max(size), "nm" if pixel_size is not None else "pixels"
    est = estimate_delocalisation(
        signal[:, use], variance=var[:, use], max_length=max_length, **geometry
    )
    deloc = unmix_regions(
        signal[:, fit_mask], length=est.length, variance=var[:, fit_mask], **geometry
    )
    log.info("eels: delocalisation decay length %.3g %s", est.length, unit)
    return replace(deloc, cost_local=est.cost_local)


def _warn_loose_peaks(fits: list[GaussianFit], fit_range: tuple[float, float]) -> None:
    """Warn about centres whose error bar is wider than the fit range (or undefined)."""
    width = float(fit_range[1] - fit_range[0])
    loose = [
        f"group {g} peak {k + 1}: {c:.1f} ± {e:.1f} meV"
        for g, f in enumerate(fits)
        for k, (c, e) in enumerate(zip(f.centre, f.centre_error, strict=True))
        if not e <= width
    ]
    if loose:
        warnings.warn(
            f"{len(loose)} peak centre(s) have an error bar wider than the fit range "
            f"{fit_range[0]:g}–{fit_range[1]:g} meV (or none): {'; '.join(loose)}. The data do "
            "not determine them; fit fewer peaks or a narrower range, or read them as absent.",
            EelsWarning,
            stacklevel=3,
        )
