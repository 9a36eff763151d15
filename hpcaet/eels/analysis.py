"""The whole vibrational-EELS analysis of one scan, as a pure function of arrays.

Zero-loss alignment → power-law background from two windows → k-means with the
correlation distance → contiguous regions along the scan → mean spectrum of each group
→ sum-of-Gaussians fit, as in the paper's Methods ("Spatially resolved vibrational
EELS"). :func:`hpcaet.eels.stage.analyse_eels` wraps it for Datasets and configs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.eels._checks import check_spectra, window_mask
from hpcaet.eels.align import align_zero_loss
from hpcaet.eels.background import PAPER_WINDOWS, PowerLawBackground, fit_power_law
from hpcaet.eels.cluster import KMeansResult, Regions, contiguous_regions, correlation_kmeans
from hpcaet.eels.delocalisation import Delocalisation, estimate_delocalisation, unmix_regions
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
        from each group mean before the peak fit; None when not corrected.
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
    fit_range: tuple[float, float] = (16.0, 70.0),
    peak_background: str = "subtracted",
    initial_width: float = 3.0,
    fit_starts: int = 20,
    weighted: bool = True,
    correct_delocalisation: bool = False,
    second_derivative_start: bool = False,
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
        Poisson-weighted refinement of the log-log background fit.
    cluster_range : (float, float)
        Channels that k-means compares [meV].
    clusters, restarts, max_iterations
        k-means settings (:func:`~hpcaet.eels.cluster.correlation_kmeans`).
    contiguous : bool
        Turn the clusters into contiguous regions along the scan and average those
        (the paper: #1–16, #17–26, #27–40); False averages the clusters themselves.
    n_peaks, fit_range, initial_width, fit_starts, second_derivative_start
        Peak fit settings (:func:`~hpcaet.eels.peaks.fit_gaussians`; ``fit_starts`` is
        its ``starts``).
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
        region, decay length fitted on ``cluster_range``). Needs contiguous regions of
        at least two points each; skipped with a warning otherwise.
    rng : numpy.random.Generator, int or None
        Randomness of the k-means seeding and of the extra peak-fit starts.

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
    rng = np.random.default_rng(rng)
    if peak_background not in PEAK_BACKGROUNDS:
        raise InputError(
            f"peak_background must be one of {PEAK_BACKGROUNDS}; got {peak_background!r}."
        )
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
    background = fit_power_law(spectra, energy, windows=windows, refine=refine_background)
    signal = background.subtract(spectra)
    use = window_mask(energy, cluster_range, name="cluster range")
    kmeans = correlation_kmeans(
        signal[:, use], k=clusters, restarts=restarts, max_iterations=max_iterations, rng=rng
    )
    regions = contiguous_regions(kmeans.labels, k=clusters) if contiguous else None
    group = regions.region if regions is not None else kmeans.labels
    average = np.stack([signal[group == g].mean(axis=0) for g in range(clusters)])
    raw_average = np.stack([spectra[group == g].mean(axis=0) for g in range(clusters)])
    leak = np.zeros_like(average)
    deloc = None
    if correct_delocalisation:
        sizes = np.diff(np.r_[regions.starts, len(spectra)]) if regions is not None else None
        if sizes is None or np.any(sizes < 2):
            log.warning(
                "eels: delocalisation not corrected: needs contiguous regions of >= 2 points "
                "(contiguous=%s, sizes %s)",
                contiguous,
                None if sizes is None else sizes.tolist(),
            )
        else:
            var = np.maximum(spectra, 1.0)
            est = estimate_delocalisation(signal[:, use], regions.starts, variance=var[:, use])
            fit_mask = window_mask(energy, fit_range, name="peak fit range")
            deloc = unmix_regions(
                signal[:, fit_mask], regions.starts, est.length, variance=var[:, fit_mask]
            )
            deloc = replace(deloc, cost_local=est.cost_local)
            leak[:, fit_mask] = deloc.leak
            log.info("eels: delocalisation decay length %.2f scan steps", est.length)
    fits = []
    for g in range(clusters):
        if peak_background == "joint":
            data = raw_average[g] - leak[g]
            law = fit_power_law(data, energy, windows=windows, refine=True)
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
            rng=rng,
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
    )
