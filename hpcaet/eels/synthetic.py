"""Synthetic vibrational EELS line scans across a MoS2 | interface | WSe2 junction.

Each spectrum is a zero-loss peak (a Gaussian of the energy resolution, displaced by a
random drift), its power-law tail ``A · |E|^-r`` (smoothly switched off inside the
ZLP core), and the phonon signal of the point: the spectrum of the region it lies in
plus that of every other region weighted by ``exp(-d / delocalisation)``, ``d`` the
distance to that region (the delocalised dipole signal of the paper's Table S3 notes).
Counts are drawn from a Poisson distribution scaled to a given signal-to-noise ratio.
The default peaks are the EELS columns of the paper's Table S3, the scan is the paper's
40 points at 1.6 nm with 0.44 meV/channel (Methods, "Spatially resolved vibrational
EELS") and the boundaries are its #1–16 MoS2, #17–26 interface and #27–40 WSe2.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.eels.peaks import FWHM_PER_SIGMA
from hpcaet.errors import InputError

__all__ = [
    "SyntheticLineScan",
    "synthetic_line_scan",
    "REGIONS",
    "TABLE_S3_EELS",
    "TABLE_S3_EELS_ERROR",
    "TABLE_S3_DFT",
    "INTERFACE_MODES_DFT",
    "DEFAULT_HEIGHTS",
]

log = logging.getLogger(__name__)

#: Regions in scan order.
REGIONS = ("MoS2", "interface", "WSe2")

#: Peak centres of the EELS spectra, Table S3 of the paper, peak 1..5 [meV].
TABLE_S3_EELS: dict[str, tuple[float, ...]] = {
    "MoS2": (49.4, 38.6, 31.2, 26.5, 22.0),
    "interface": (45.5, 41.1, 36.0, 27.9, 22.9),
    "WSe2": (46.2, 38.8, 30.6, 24.8, 22.0),
}
#: Their fit errors in Table S3 [meV].
TABLE_S3_EELS_ERROR: dict[str, tuple[float, ...]] = {
    "MoS2": (1.0, 0.7, 0.9, 0.6, 0.2),
    "interface": (1.4, 0.4, 2.7, 1.1, 1.7),
    "WSe2": (0.5, 0.4, 1.4, 1.4, 0.4),
}
#: Peaks of the DFT phonon DOS of bulk MoS2 and WSe2 in Table S3, by EELS peak row,
#: NaN where the table has none [meV]. Rows 6-7 ("undetectable" in EELS) are below 20 meV.
TABLE_S3_DFT: dict[str, tuple[float, ...]] = {
    "MoS2": (47.16, 39.38, np.nan, 26.56, 20.27, 13.19, np.nan),
    "WSe2": (np.nan, np.nan, 31.17, 25.21, np.nan, 13.17, 8.24),
}
#: Interface modes of the DFT calculation on the experimental coordinates [meV] (main text).
INTERFACE_MODES_DFT = (17.5, 28.5, 41.5)

#: Relative peak heights of the default peaks (not tabulated in the paper; chosen so that
#: the strong peaks are those the Table S3 notes name: the MoS2 optical modes at 49.4 and
#: 38.6 meV, the WSe2 modes at 30.6 and 24.8 meV, the interface peaks at 41.1 and 27.9 meV).
DEFAULT_HEIGHTS: dict[str, tuple[float, ...]] = {
    "MoS2": (1.0, 0.8, 0.35, 0.5, 0.45),
    "interface": (0.5, 0.9, 0.4, 0.9, 0.45),
    "WSe2": (0.45, 0.4, 1.0, 0.9, 0.45),
}


@dataclass(frozen=True)
class SyntheticLineScan:
    """A synthetic line scan and its truth.

    Attributes
    ----------
    spectra : ndarray of shape (n_points, n_energy)
        Poisson counts.
    energy : ndarray of shape (n_energy,)
        Nominal energy axis [meV] (the ZLP of spectrum i sits at ``zlp_shift[i]``).
    position : ndarray of shape (n_points,)
        Position along the scan [nm].
    region : ndarray of int, shape (n_points,)
        True region of each point (index into ``regions``).
    regions : tuple of str
        Region names in scan order.
    starts : ndarray of int, shape (n_regions,)
        Index of the first point of each region.
    zlp_shift : ndarray of shape (n_points,)
        True ZLP position [meV].
    background : ndarray of shape (n_points, n_energy)
        Expected counts of the ZLP and its tail.
    signal : ndarray of shape (n_points, n_energy)
        Expected phonon counts.
    amplitude, exponent : ndarray of shape (n_points,)
        True power-law tail ``A · E^-r`` [counts · meV^r], [1].
    peak_centre, peak_width, peak_height : ndarray of shape (n_regions, n_peaks)
        True peaks of each region [meV], σ [meV], [counts]; NaN-padded, sorted highest
        centre first; NaN for a region given as a PDOS.
    scale : float
        Counts of a relative height of 1.
    """

    spectra: np.ndarray
    energy: np.ndarray
    position: np.ndarray
    region: np.ndarray
    regions: tuple[str, ...]
    starts: np.ndarray
    zlp_shift: np.ndarray
    background: np.ndarray
    signal: np.ndarray
    amplitude: np.ndarray
    exponent: np.ndarray
    peak_centre: np.ndarray
    peak_width: np.ndarray
    peak_height: np.ndarray
    scale: float


def _tail(e: np.ndarray, amplitude: np.ndarray, exponent: np.ndarray, core: float):
    """``A |e|^-r`` switched off smoothly below ~``core`` (within 1e-9 of A|e|^-r beyond 2 core)."""
    a = np.maximum(np.abs(e), 1e-9)
    return amplitude[:, None] * a ** -exponent[:, None] * -np.expm1(-((a / core) ** 4))


def _region_weights(position: np.ndarray, edges: np.ndarray, decay: float) -> np.ndarray:
    """(n_regions, n_points): 1 inside a region, exp(-distance / decay) outside it."""
    lows, highs = edges[:-1], edges[1:]
    d = np.maximum(lows[:, None] - position[None, :], 0) + np.maximum(
        position[None, :] - highs[:, None], 0
    )
    if decay <= 0:
        return (d == 0).astype(float)
    return np.exp(-d / decay)


def synthetic_line_scan(
    *,
    n_points: int = 40,
    step: float = 1.6,
    starts: Sequence[int] = (0, 16, 26),
    regions: Sequence[str] = REGIONS,
    peaks: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    pdos: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
    dispersion: float = 0.44,
    energy_range: tuple[float, float] = (-40.0, 100.0),
    peak_fwhm: float = 5.7,
    resolution: float = 8.3,
    delocalisation: float = 1.6,
    snr: float = 7.0,
    background_ratio: float = 5.0,
    exponent: float = 3.0,
    background_variation: float = 0.1,
    zlp_ratio: float = 100.0,
    zlp_jitter: float = 1.0,
    rng: np.random.Generator | int | None = None,
) -> SyntheticLineScan:
    """Simulate a vibrational EELS line scan with known peaks, regions and background.

    Parameters
    ----------
    n_points, step : int, float
        Scan points and step [nm] (paper: 40 points, 1.6 nm).
    starts : sequence of int
        Index of the first point of each region (paper: #1, #17, #27 → 0, 16, 26).
    regions : sequence of str
        Region names in scan order; each needs peaks or a PDOS.
    peaks : mapping of str to (centres, heights), optional
        Phonon peaks per region: centres [meV] and relative heights; default
        :data:`TABLE_S3_EELS` with :data:`DEFAULT_HEIGHTS`.
    pdos : mapping of str to (energy, dos), optional
        A phonon DOS per region instead of peaks (energy [meV], any scale; its
        maximum after broadening becomes relative height 1), broadened by a Gaussian of
        FWHM ``resolution``.
    dispersion : float
        Channel width [meV] (paper: 0.44 meV).
    energy_range : (float, float)
        Nominal energy axis [meV]; must include the ZLP and the phonon range.
    peak_fwhm : float
        FWHM of every phonon peak [meV] (5.7 meV: the paper's best resolution; its
        line scan was taken at 8.3 meV).
    resolution : float
        FWHM of the zero-loss peak [meV] (paper: 8.3 meV).
    delocalisation : float
        Decay length of a region's signal outside it [nm].
    snr : float
        Signal-to-noise ratio of one spectrum deep inside the first region: height of
        its strongest peak over the Poisson noise (sqrt of the expected counts) there.
        The group sum of n spectra has √n times this. Default 7: the paper's, as derived
        in docs/eels.md from its Table S3 errors and its clustering (Fig. S6).
    background_ratio : float
        Power-law tail over that peak's height, at that peak's energy.
    exponent : float
        Mean power-law exponent r.
    background_variation : float
        Relative spread (uniform, ±) of the tail amplitude from point to point; the
        exponent varies by ±0.5 of this.
    zlp_ratio : float
        Height of the ZLP over the tail at 20 meV.
    zlp_jitter : float
        ZLP positions are uniform in ±zlp_jitter [meV].
    rng : numpy.random.Generator, int or None
        Randomness of the drift, background spread and noise.

    Returns
    -------
    SyntheticLineScan

    Raises
    ------
    InputError
        Inconsistent regions, starts or peaks, or non-positive scales.
    """
    rng = np.random.default_rng(rng)
    regions = tuple(regions)
    starts = np.asarray(starts, dtype=int)
    if (
        starts.size != len(regions)
        or starts[0] != 0
        or np.any(np.diff(starts) <= 0)
        or starts[-1] >= n_points
    ):
        raise InputError(
            f"starts must give the first point of each of the {len(regions)} regions "
            f"{regions}, beginning at 0, increasing and below n_points = {n_points}; got "
            f"{starts.tolist()}."
        )
    for name, value in dict(
        step=step,
        dispersion=dispersion,
        peak_fwhm=peak_fwhm,
        resolution=resolution,
        snr=snr,
        zlp_ratio=zlp_ratio,
    ).items():
        if not value > 0:
            raise InputError(f"{name} must be positive; got {value!r}.")
    if not (energy_range[0] < -2 * resolution and energy_range[1] > 60):
        raise InputError(
            f"energy_range must include the ZLP (below -2 x resolution = "
            f"{-2 * resolution:g} meV) and the phonon range (above 60 meV); got "
            f"{list(energy_range)} meV."
        )
    pdos = dict(pdos or {})
    peaks = (
        dict(peaks)
        if peaks is not None
        else {r: (TABLE_S3_EELS[r], DEFAULT_HEIGHTS[r]) for r in REGIONS if r not in pdos}
    )
    missing = [r for r in regions if r not in peaks and r not in pdos]
    if missing:
        raise InputError(
            f"no peaks or PDOS for region(s) {missing}; give one for each of {regions}."
        )
    energy = np.arange(energy_range[0], energy_range[1] + 0.5 * dispersion, dispersion)
    position = np.arange(n_points) * step
    region = np.searchsorted(starts, np.arange(n_points), side="right") - 1
    edges = np.r_[-np.inf, (starts[1:] - 0.5) * step, np.inf]
    weights = _region_weights(position, edges, delocalisation)

    sigma = peak_fwhm / FWHM_PER_SIGMA
    n_peaks = max((len(peaks[r][0]) for r in regions if r in peaks), default=0)
    centre = np.full((len(regions), n_peaks), np.nan)
    height = np.full((len(regions), n_peaks), np.nan)
    shapes = np.zeros((len(regions), energy.size))  # relative, on the true (shifted) axis
    for j, name in enumerate(regions):
        if name in pdos:
            e_dos, dos = (np.asarray(a, dtype=float) for a in pdos[name])
            res_sigma = resolution / FWHM_PER_SIGMA
            kernel = np.exp(-0.5 * ((energy[:, None] - e_dos[None, :]) / res_sigma) ** 2)
            broad = kernel @ dos
            shapes[j] = broad / broad.max()
            continue
        c, h = (np.asarray(a, dtype=float) for a in peaks[name])
        if c.shape != h.shape or c.ndim != 1:
            raise InputError(
                f"peaks[{name!r}] needs centres and heights of one length; got "
                f"{c.shape} and {h.shape}."
            )
        order = np.argsort(c)[::-1]
        centre[j, : c.size], height[j, : c.size] = c[order], h[order]
        shapes[j] = np.sum(h[:, None] * np.exp(-0.5 * ((energy - c[:, None]) / sigma) ** 2), 0)

    # Scale: strongest peak of region 0 at SNR over Poisson noise with the tail beside it.
    k0 = int(np.argmax(shapes[0]))
    e0, h0 = energy[k0], shapes[0, k0]
    peak_counts = snr**2 * (1.0 + background_ratio)
    scale = peak_counts / h0
    amp0 = background_ratio * peak_counts * e0**exponent
    n = n_points
    amplitude = amp0 * (1 + background_variation * rng.uniform(-1, 1, n))
    expo = exponent + 0.5 * background_variation * rng.uniform(-1, 1, n)
    amplitude *= 20.0 ** (expo - exponent)  # keep the tail at 20 meV within the spread
    shift = rng.uniform(-zlp_jitter, zlp_jitter, n)
    true_e = energy[None, :] - shift[:, None]
    zlp_height = zlp_ratio * amplitude * 20.0**-expo
    res_sigma = resolution / FWHM_PER_SIGMA
    background = zlp_height[:, None] * np.exp(-0.5 * (true_e / res_sigma) ** 2) + _tail(
        true_e, amplitude, expo, core=2.0 * res_sigma
    )
    signal = np.empty_like(background)
    mix = weights.T  # (n_points, n_regions)
    for i in range(n):
        rel = np.zeros(energy.size)
        for j in range(len(regions)):
            rel += mix[i, j] * np.interp(true_e[i], energy, shapes[j])
        signal[i] = scale * np.where(true_e[i] > 0, rel, 0.0)
    spectra = rng.poisson(background + signal).astype(float)
    log.debug(
        "synthetic line scan: %d points, %d channels, peak counts %.3g", n, energy.size, peak_counts
    )
    return SyntheticLineScan(
        spectra=spectra,
        energy=energy,
        position=position,
        region=region,
        regions=regions,
        starts=starts,
        zlp_shift=shift,
        background=background,
        signal=signal,
        amplitude=amplitude,
        exponent=expo,
        peak_centre=centre,
        peak_width=np.where(np.isnan(centre), np.nan, sigma),
        peak_height=height * scale,
        scale=float(scale),
    )
