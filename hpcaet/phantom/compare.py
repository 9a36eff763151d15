"""What the linear model misses: one crop of one tilt drawn both ways.

:func:`compare_image_models` draws the centre of the most tilted image of a phantom by
the linear Gaussian model (each atom its species' cross-section, blurred by its B-factor
and the probe) and by multislice (:mod:`hpcaet.forward.adf`, blurred by the incoherent
Gaussian), on the same probe positions, without drift, noise or background, and
reports how far apart they are: their correlation, the ratio of the total signals and
the rms of the difference over the linear image's contrast. ``hpcaet demo`` writes it
as ``figures/multislice_check.png`` and ``multislice_check.json``
(``imaging.multislice.compare_crop``); a full dynamical series is
``imaging.model: multislice`` (docs/multislice.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from scipy import ndimage

from hpcaet.config import Config
from hpcaet.forward import project_atoms, species_table
from hpcaet.forward.adf import adf_tile
from hpcaet.forward.kernels import probe_b_factor
from hpcaet.materials import VACANCY
from hpcaet.parallel.tasks import ARRAY, Executor, TaskStore, content_key, map_tasks
from hpcaet.plotting import colorbar, save_figure, show_image, symmetric_limit

__all__ = ["ModelComparison", "compare_image_models", "plot_comparison"]


@dataclass(frozen=True)
class ModelComparison:
    """One crop drawn by both image models (fraction of a probe electron on the detector).

    Attributes
    ----------
    euler : ndarray of shape (3,)
        The tilt [deg].
    pixel_size : float
        Probe step [Å].
    linear, dynamical : ndarray of shape (crop, crop)
    correlation : float
        Pearson correlation of the two images.
    signal_ratio : float
        Total dynamical signal over total linear signal.
    difference : float
        rms of (dynamical × linear sum / dynamical sum − linear) over the linear image's
        standard deviation: what remains once the total signal is matched.
    """

    euler: np.ndarray
    pixel_size: float
    linear: np.ndarray
    dynamical: np.ndarray
    correlation: float
    signal_ratio: float
    difference: float

    def numbers(self) -> dict:
        """The scalar results, for a JSON file."""
        return {
            "euler_deg": [float(v) for v in self.euler],
            "crop_pixels": int(self.linear.shape[0]),
            "pixel_size_A": self.pixel_size,
            "correlation": self.correlation,
            "signal_ratio": self.signal_ratio,
            "difference_over_contrast": self.difference,
        }


def compare_image_models(
    model: xr.Dataset,
    config: Config,
    *,
    crop: int,
    euler: np.ndarray,
    executor: Executor | None = None,
    store_dir=None,
) -> ModelComparison:
    """Draw the central ``crop × crop`` probe positions of one tilt by both models.

    Parameters
    ----------
    model : xarray.Dataset
        AtomModel (vacancies are left out).
    config : Config
        Uses ``imaging`` (pixel size, optics, probe, multislice settings).
    crop : int
        Side of the crop [pixel].
    euler : ndarray of shape (3,)
        The tilt [deg].
    executor, store_dir
        Where the multislice tiles run, and where they are saved.
    """
    im = config.imaging
    settings = im.multislice.settings()
    step = im.pixel_size
    species = model["species"].values.astype(str)
    keep = species != VACANCY
    positions = model["position"].values[keep]
    symbols = species[keep]
    start = -(crop // 2) * step
    cross = dict(
        zip(model["element"].values.astype(str), model["cross_section"].values, strict=True)
    )
    b_eff = model["b_factor"].values[keep] + probe_b_factor(im.probe_fwhm)
    # the renderer puts position 0 on pixel crop // 2, as the crop starts at -crop // 2
    linear = project_atoms(
        positions,
        species_table(symbols, cross),
        b_eff,
        np.asarray(euler, float)[None],
        shape=(crop, crop),
        pixel_size=step,
    )[0]
    tiles, jobs = [], []
    for r in range(0, crop, settings.tile):
        for c in range(0, crop, settings.tile):
            shape = (min(settings.tile, crop - r), min(settings.tile, crop - c))
            tiles.append((r, c, shape))
            jobs.append(
                {
                    "euler": np.asarray(euler, float),
                    "origin": (start + c * step, start + r * step),
                    "shape": shape,
                }
            )
    salt = content_key({"positions": positions, "symbols": symbols.astype("U3")}, repr(settings))
    images = map_tasks(
        adf_tile,
        jobs,
        keys=[content_key(job, salt) for job in jobs],
        shared={
            "positions": positions,
            "symbols": symbols,
            "step": step,
            "optics": im.optics(),
            "settings": settings,
        },
        executor=executor,
        store=None if store_dir is None else TaskStore(store_dir, "compare", ARRAY),
        label="multislice check",
    )
    dynamical = np.zeros((crop, crop))
    for (r, c, shape), image in zip(tiles, images, strict=True):
        dynamical[r : r + shape[0], c : c + shape[1]] = image
    sigma = im.multislice.incoherent_sigma / step
    if sigma > 0:
        dynamical = ndimage.gaussian_filter(dynamical, sigma, mode="nearest")
    matched = dynamical * linear.sum() / max(dynamical.sum(), 1e-300)
    return ModelComparison(
        euler=np.asarray(euler, float),
        pixel_size=step,
        linear=linear,
        dynamical=dynamical,
        correlation=float(np.corrcoef(linear.ravel(), dynamical.ravel())[0, 1]),
        signal_ratio=float(dynamical.sum() / max(linear.sum(), 1e-300)),
        difference=float(np.sqrt(np.mean((matched - linear) ** 2)) / max(linear.std(), 1e-300)),
    )


def plot_comparison(result: ModelComparison, path: str | Path) -> Path:
    """Linear image, multislice image (one colour scale) and their difference."""
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    hi = float(max(result.linear.max(), result.dynamical.max()))
    label = "signal [fraction of the probe]"
    show_image(
        fig, axes[0], result.linear, pixel_size=result.pixel_size, label=None, vmin=0, vmax=hi
    )
    art = show_image(
        fig, axes[1], result.dynamical, pixel_size=result.pixel_size, label=None, vmin=0, vmax=hi
    )
    colorbar(fig, art, list(axes[:2]), label)
    matched = result.dynamical * result.linear.sum() / max(result.dynamical.sum(), 1e-300)
    diff = matched - result.linear
    limit = symmetric_limit(diff)
    show_image(
        fig,
        axes[2],
        diff,
        pixel_size=result.pixel_size,
        label="difference [fraction of the probe]",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
    )
    tilt = ", ".join(f"{v:.1f}" for v in result.euler)
    axes[0].set_title(f"linear model (tilt {tilt}°)")
    axes[1].set_title(f"multislice (signal × {result.signal_ratio:.2f})")
    axes[2].set_title(f"difference at equal totals: rms {100 * result.difference:.0f} %")
    return save_figure(fig, path)
