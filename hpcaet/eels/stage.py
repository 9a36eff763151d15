"""Stage layer of the EELS analysis: Datasets and config in, an EELS Dataset out.

:func:`analyse_eels` runs :func:`~hpcaet.eels.analysis.analyse_spectra` on an EELS
Dataset with the settings of ``config.eels`` and stores every result with its units;
:func:`synthetic_eels` makes the synthetic line scan of the pipeline stage (seeded from
``config.seed``); :func:`run_eels_stage` is the pipeline's callable. A spectrum image
(``scan_shape`` of two axes) keeps its axes: :func:`add_maps` stores its maps on dims
(y, x) in nm. The analysis of a 40-point line scan takes seconds, of a 34 x 34 image
about a minute on one core, so it runs in the calling process; a Dask client, when
given, is not used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from hpcaet.config import Config, EelsConfig
from hpcaet.eels.analysis import EelsAnalysis, analyse_spectra
from hpcaet.eels.synthetic import REGIONS, synthetic_line_scan
from hpcaet.io import make_eels

__all__ = [
    "analyse_eels",
    "synthetic_eels",
    "run_eels_stage",
    "write_eels_figures",
    "add_maps",
    "scan_geometry",
]

log = logging.getLogger(__name__)

#: Seed stream of the EELS stage (the phantom uses 0-3).
_STREAM_EELS = 10


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAM_EELS, stream]))


def synthetic_eels(config: Config) -> xr.Dataset:
    """The synthetic line scan of ``config.eels.synthetic`` as an EELS Dataset with its truth.

    Besides ``spectra``, ``energy`` and ``position`` it holds ``true_region(position)``,
    ``true_zlp_shift(position)`` [meV], ``true_background`` and ``true_signal``
    (position, energy) [counts], ``true_background_amplitude`` and
    ``true_background_exponent`` (position), and ``true_peak_centre``,
    ``true_peak_width`` (σ) [meV] and ``true_peak_height`` [counts] on dims
    (region, true_peak).
    """
    sc = config.eels.synthetic
    names = config.eels.region_names or (
        REGIONS
        if len(sc.starts) == len(REGIONS)
        else tuple(f"region {i + 1}" for i in range(len(sc.starts)))
    )
    scan = synthetic_line_scan(
        n_points=sc.points,
        step=sc.step,
        starts=sc.starts,
        regions=names,
        dispersion=sc.dispersion,
        energy_range=sc.energy_range,
        peak_fwhm=sc.peak_fwhm,
        resolution=sc.resolution,
        delocalisation=sc.delocalisation,
        snr=sc.snr,
        background_ratio=sc.background_ratio,
        exponent=sc.exponent,
        zlp_jitter=sc.zlp_jitter,
        rng=_rng(config.seed, 0),
    )
    ds = make_eels(
        spectra=scan.spectra,
        energy=scan.energy,
        position=scan.position,
        source_file="synthetic",
        source_format="hpcaet.eels.synthetic",
        scan_shape=np.array([sc.points]),
        position_calibrated=1,
        true_starts=scan.starts.astype(np.int64),
        truth_scale=scan.scale,
    )
    pe, rp = ("position", "energy"), ("region", "true_peak")
    truth = {
        "true_region": ("position", scan.region.astype(np.int32), "1", "true region index"),
        "true_zlp_shift": ("position", scan.zlp_shift, "meV", "true ZLP position"),
        "true_background": (pe, scan.background, "counts", "expected ZLP and tail counts"),
        "true_signal": (pe, scan.signal, "counts", "expected phonon counts"),
        "true_background_amplitude": (
            "position",
            scan.amplitude,
            "counts meV^r",
            "true power-law amplitude A",
        ),
        "true_background_exponent": ("position", scan.exponent, "1", "true exponent r"),
        "true_peak_centre": (rp, scan.peak_centre, "meV", "true peak centre"),
        "true_peak_width": (rp, scan.peak_width, "meV", "true peak sigma"),
        "true_peak_height": (rp, scan.peak_height, "counts", "true peak height"),
    }
    for name, (dims, values, units, text) in truth.items():
        ds[name] = (dims, values, {"units": units, "long_name": text})
    return ds.assign_coords(region=("region", np.array(names)))


def scan_geometry(ds: xr.Dataset) -> tuple[tuple[int, ...], tuple[float, float] | None]:
    """Scan shape and, for a calibrated spectrum image, its pixel size (dy, dx) [nm]."""
    shape = tuple(int(v) for v in np.atleast_1d(ds.attrs.get("scan_shape", [ds.sizes["position"]])))
    if int(np.prod(shape)) != ds.sizes["position"]:
        shape = (ds.sizes["position"],)
    if len(shape) != 2 or min(shape) < 2:
        return (ds.sizes["position"],), None
    if "scan_y" in ds.coords and "scan_x" in ds.coords:
        dy = float(np.median(np.diff(np.unique(ds["scan_y"].values))))
        dx = float(np.median(np.diff(np.unique(ds["scan_x"].values))))
        if dy > 0 and dx > 0:
            return shape, (dy, dx)
    return shape, None


def analyse_eels(
    ds: xr.Dataset,
    settings: EelsConfig,
    *,
    windows: tuple[tuple[float, float], ...] | None = None,
    background_estimator: str | None = None,
    rng: np.random.Generator | int | None = None,
) -> xr.Dataset:
    """Analyse the spectra of an EELS Dataset with the settings of ``config.eels``.

    Parameters
    ----------
    ds : xarray.Dataset
        EELS Dataset with ``spectra(position, energy)`` [counts], in scan order.
    settings : EelsConfig
        The ``eels`` section of the config.
    windows : sequence of (float, float), optional
        Background windows [meV] instead of ``settings.windows`` (e.g. proposed by
        :func:`~hpcaet.eels.windows.propose_windows`).
    background_estimator : str, optional
        Power-law estimator (:data:`~hpcaet.eels.background.BACKGROUND_ESTIMATORS`);
        default from ``settings.refine_background`` (True: ``poisson``).
    rng : numpy.random.Generator, int or None
        Randomness of the k-means seeding (the peak fit uses none).

    Returns
    -------
    xarray.Dataset
        EELS Dataset on the aligned energy axis with ``spectra``, ``background``,
        ``cluster``, ``average`` (mean background-subtracted spectrum per group) and
        ``peak_*`` (group, peak); and ``zero_loss_shift``, ``background_amplitude``,
        ``background_exponent``, ``cluster_distance``, ``group_index`` (position),
        ``raw_average`` and ``fit`` (group, energy; NaN outside the fit range),
        ``group_name`` (group). Attributes record the settings and the region starts.
        Variables ``true_*`` of the input are carried over. Every spectrum's own fit of
        its group's peaks is in ``pixel_peak_*`` (position, peak). A spectrum image
        (``scan_shape`` of two axes) also gets maps on dims (y, x) with coordinates in
        nm (pixels where the file has no length calibration): ``cluster_map``,
        ``region_map``, ``background_exponent_map``, ``signal_map`` and
        ``peak_{centre,width,height,intensity}_map`` (peak, y, x).
    """
    s = settings
    shape, pixel_size = scan_geometry(ds)
    result = analyse_spectra(
        ds["spectra"].values,
        ds["energy"].values,
        zero_loss=s.zero_loss,
        windows=s.windows if windows is None else windows,
        background_estimator=background_estimator,
        scan_shape=shape,
        pixel_size=pixel_size,
        refine_background=s.refine_background,
        cluster_range=s.cluster_range,
        clusters=s.clusters,
        restarts=s.restarts,
        max_iterations=s.max_iterations,
        contiguous=s.contiguous,
        n_peaks=s.peaks,
        fit_range=s.fit_range,
        peak_background=s.peak_background,
        initial_width=s.initial_width,
        fit_starts=s.fit_starts,
        weighted=s.weighted,
        correct_delocalisation=s.correct_delocalisation,
        shared_width=s.shared_width,
        min_significance=s.min_significance,
        fit_rounds=s.fit_rounds,
        rng=rng,
    )
    out = _to_dataset(ds, result, s)
    return add_maps(out, result, pixel_size)


def _group_names(ds: xr.Dataset, s: EelsConfig) -> tuple[str, ...]:
    if s.region_names:
        return tuple(s.region_names)
    if "true_region" in ds and "region" in ds.coords and ds.sizes["region"] == s.clusters:
        return tuple(str(v) for v in ds["region"].values)  # a synthetic scan's own regions
    return tuple(f"cluster {i + 1}" for i in range(s.clusters))


def _to_dataset(ds: xr.Dataset, a: EelsAnalysis, s: EelsConfig) -> xr.Dataset:
    names = _group_names(ds, s)
    fits = a.fits
    peaks = {
        key: np.stack([getattr(f, key) for f in fits])
        for key in ("centre", "centre_error", "width", "width_error", "height", "height_error")
    }
    keep = {
        k: v
        for k, v in ds.attrs.items()
        if not k.startswith("hpcaet_") and k not in ("config_hash", "stage")
    }
    attrs = {
        **keep,
        "zero_loss": s.zero_loss,
        "windows": np.ravel(a.windows).astype(float),
        "background_estimator": a.background.estimator,
        "cluster_range": np.asarray(s.cluster_range, float),
        "fit_range": np.asarray(s.fit_range, float),
        "peak_background": s.peak_background,
        "peak_fit_weighted": int(s.weighted),
        "peak_width_definition": "sigma (standard deviation); FWHM = 2.355 sigma",
        "kmeans_total_distance": a.kmeans.total_distance,
        "contiguous": int(a.regions is not None),
    }
    if a.regions is not None:
        attrs["region_starts"] = a.regions.starts.astype(np.int64)
        attrs["misassigned"] = a.regions.misassigned
    if a.delocalisation is not None and len(a.scan_shape) == 1:
        # decay length of the neighbours' signal removed before the peak fit [scan steps]
        attrs["delocalisation_length_steps"] = a.delocalisation.length
        if ds.attrs.get("position_calibrated", 0):
            step = float(np.median(np.diff(ds["position"].values)))
            attrs["delocalisation_length_nm"] = a.delocalisation.length * step
    elif a.delocalisation is not None:
        key = "delocalisation_length_nm" if _calibrated(ds) else "delocalisation_length_pixels"
        attrs[key] = a.delocalisation.length
    out = make_eels(
        spectra=a.spectra,
        energy=a.energy,
        position=ds["position"].values,
        background=a.background.background,
        cluster=a.kmeans.labels,
        average=a.average,
        peaks=peaks,
        **attrs,
    )
    fit_curve = np.full((len(fits), a.energy.size), np.nan)
    for g, f in enumerate(fits):
        fit_curve[g, np.searchsorted(a.energy, f.energy)] = f.model
    extra = {
        "zero_loss_shift": ("position", a.zero_loss_shift, "meV", "ZLP position before alignment"),
        "background_amplitude": (
            "position",
            a.background.amplitude,
            "counts meV^r",
            "power-law amplitude A of A E^-r",
        ),
        "background_exponent": ("position", a.background.exponent, "1", "power-law exponent r"),
        "cluster_distance": (
            "position",
            a.kmeans.distance,
            "1",
            "1 - correlation with the cluster centroid",
        ),
        "group_index": (
            "position",
            a.group.astype(np.int32),
            "1",
            "group averaged (region or cluster)",
        ),
        "raw_average": (
            ("group", "energy"),
            a.raw_average,
            "counts",
            "mean aligned spectrum per group",
        ),
        "fit": (
            ("group", "energy"),
            fit_curve,
            "counts",
            "fitted model per group (NaN outside the fit range)",
        ),
    }
    if a.delocalisation is not None and fits:
        leak = np.zeros((len(fits), a.energy.size))
        leak[:, np.searchsorted(a.energy, fits[0].energy)] = a.delocalisation.leak
        extra["delocalised_leak"] = (
            ("group", "energy"),
            leak,
            "counts",
            "neighbours' delocalised signal subtracted from each group mean before the fit",
        )
    for name, (dims, values, units, text) in extra.items():
        out[name] = (dims, values, {"units": units, "long_name": text})
    out = out.assign_coords(group_name=("group", np.array(names)))
    for name in ds.data_vars:
        if name.startswith("true_"):
            var = ds[name]
            out[name] = var.sel(energy=out["energy"]) if "energy" in var.dims else var
    for name in ("region", "scan_row", "scan_col", "scan_y", "scan_x"):
        if name in ds.coords:
            out = out.assign_coords({name: ds.coords[name]})
    return out


def _calibrated(ds: xr.Dataset) -> bool:
    return scan_geometry(ds)[1] is not None


def add_maps(
    out: xr.Dataset, a: EelsAnalysis, pixel_size: tuple[float, float] | None
) -> xr.Dataset:
    """Add the per-spectrum peak fits, and for a spectrum image the 2D maps, to ``out``."""
    if a.pixels is not None:
        px = a.pixels
        for key, units, text in (
            ("centre", "meV", "centre of the group's peak fitted to this spectrum"),
            ("centre_error", "meV", "standard error of that centre"),
            ("width", "meV", "sigma of that peak"),
            ("height", "counts", "height of that peak"),
            ("intensity", "counts meV", "area of that peak (height sigma sqrt(2 pi))"),
        ):
            values = getattr(px, key)
            out[f"pixel_peak_{key}"] = (
                ("position", "peak"),
                values[:, : out.sizes["peak"]],
                {"units": units, "long_name": text + " (NaN where not determined)"},
            )
    if len(a.scan_shape) != 2:
        return out
    ny, nx = a.scan_shape
    dy, dx = pixel_size if pixel_size is not None else (1.0, 1.0)
    unit = "nm" if pixel_size is not None else "pixel"
    out = out.assign_coords(
        y=("y", np.arange(ny) * dy, {"units": unit, "long_name": "scan position (rows)"}),
        x=("x", np.arange(nx) * dx, {"units": unit, "long_name": "scan position (columns)"}),
    )
    fit_e = a.fits[0].energy
    sel = np.searchsorted(a.energy, fit_e)
    step = float(np.median(np.diff(a.energy)))
    maps = {
        "cluster_map": (a.kmeans.labels.astype(np.int32), "1", "k-means cluster"),
        "region_map": (a.region_map.ravel().astype(np.int32), "1", "connected region"),
        "background_exponent_map": (a.background.exponent, "1", "power-law exponent r"),
        "signal_map": (
            a.signal[:, sel].sum(axis=1) * step,
            "counts meV",
            f"background-subtracted intensity over {fit_e[0]:.1f}-{fit_e[-1]:.1f} meV",
        ),
    }
    for name, (values, units, text) in maps.items():
        out[name] = (("y", "x"), np.reshape(values, (ny, nx)), {"units": units, "long_name": text})
    if a.pixels is not None:
        for key, units in (
            ("centre", "meV"),
            ("width", "meV"),
            ("height", "counts"),
            ("intensity", "counts meV"),
        ):
            values = getattr(a.pixels, key)[:, : out.sizes["peak"]]
            out[f"peak_{key}_map"] = (
                ("peak", "y", "x"),
                np.moveaxis(values.reshape(ny, nx, -1), -1, 0),
                {
                    "units": units,
                    "long_name": f"peak {key} of each pixel's fit (NaN: not determined)",
                },
            )
    return out


def write_eels_figures(ds: xr.Dataset, folder: str | Path) -> list[Path]:
    """Write the figures of an analysed EELS Dataset into ``folder``; return their paths."""
    from hpcaet.eels.figures import (
        plot_background,
        plot_clusters,
        plot_group_fits,
        plot_line_scan,
        plot_peak_maps,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = "cluster_map" in ds
    paths = [
        plot_background(ds, folder / "eels_background.png"),
        plot_line_scan(ds, folder / ("eels_signal_map.png" if image else "eels_line_scan.png")),
        plot_clusters(ds, folder / ("eels_cluster_map.png" if image else "eels_clusters.png")),
        plot_group_fits(ds, folder / "eels_peaks.png"),
    ]
    if image and "peak_centre_map" in ds:
        paths.append(plot_peak_maps(ds, folder / "eels_peak_maps.png"))
    return paths


def run_eels_stage(config: Config, run, client=None) -> dict[str, xr.Dataset]:
    """Pipeline stage: synthesise a line scan from the config, analyse it, draw figures.

    Returns ``{"eels_input.nc": synthetic scan, "eels.nc": analysis}``.
    """
    scan = synthetic_eels(config)
    result = analyse_eels(scan, config.eels, rng=_rng(config.seed, 1))
    write_eels_figures(result, run.figures)
    return {"eels_input.nc": scan, "eels.nc": result}
