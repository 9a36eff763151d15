"""Series-level steps of the stage: per-species-corrected angle calibration and vibration.

These run once per tilt series (not per tilt) between the stage's two per-tilt phases:
:func:`calibrate_series` calibrates the angles from the tracked columns, with the
column-fit bias of each metal species removed, and :func:`vibration_kernels` chooses a
crop of a clean region of the darker material (MoS2) in every image and fits the vibration kernels
(:func:`hpcaet.preprocess.vibration.estimate_membrane_vibration` by default).
"""

from __future__ import annotations

import logging

import numpy as np

from hpcaet.config import Config
from hpcaet.errors import InputError
from hpcaet.forward import species_table
from hpcaet.geometry import (
    axis_angle_matrix,
    euler_to_matrix,
    matrix_to_euler,
    pixel_to_position,
    position_to_pixel,
)
from hpcaet.preprocess.angles import AngleCalibration, calibrate_angles
from hpcaet.preprocess.columns import column_bias
from hpcaet.preprocess.lattice import LatticeModel
from hpcaet.preprocess.model_background import ModelBackground, refine_background, sheet_sites
from hpcaet.preprocess.tracking import Tracks, bright_tracks
from hpcaet.preprocess.vibration import estimate_membrane_vibration, estimate_vibration

__all__ = [
    "lattice_model",
    "calibrate_series",
    "vibration_kernels",
    "local_lattice_euler",
    "model_backgrounds",
]

log = logging.getLogger(__name__)


def lattice_model(config: Config, *, bright: bool = False) -> LatticeModel:
    """The reference monolayer: the material of ``config.materials`` with the darker metal.

    ``bright=True`` gives the monolayer of the material with the brighter metal (the
    same one for a single material). Cross-sections and B-factors from ``species``.
    """
    sp = config.species
    material = config.materials.by_brightness(sp.cross_section)[int(bright)]
    names = [material.metal, material.chalcogen]
    w = species_table(names, sp.cross_section)
    b = species_table(names, sp.b_factor)
    return LatticeModel(
        lattice_constant=material.lattice_constant,
        chalcogen_height=material.chalcogen_height,
        metal_weight=float(w[0]),
        chalcogen_weight=float(w[1]),
        metal_b=float(b[0]),
        chalcogen_b=float(b[1]),
        probe_fwhm=config.imaging.probe_fwhm,
    )


def calibrate_series(
    tracks: Tracks,
    columns: list[np.ndarray],
    intensities: list[np.ndarray],
    euler: np.ndarray,
    config: Config,
    *,
    shape: tuple[int, int],
    pixel_size: float,
) -> tuple[AngleCalibration, bool]:
    """Angle calibration of tracked columns, with the per-species column-fit bias removed.

    The columns are calibrated as fitted; with ``preprocess.species_bias`` the fit bias
    of each image at those angles (:func:`column_bias`, on the ideal monolayer of the
    reference species for the dark columns and of the bright species for the bright
    ones, :func:`bright_tracks`) is then subtracted from every column and the angles are
    calibrated again from the nominal ones. A common bias is a shift of the image (the
    fit absorbs it); the difference between the species looks like a strain and moves
    the angles (0.196 -> 0.166 deg RMS on the demo phantom).

    Returns
    -------
    calibration : AngleCalibration
    bias_applied : bool
        Whether the columns were corrected (then ``calibration.shift`` is bias-free).
    """
    pp = config.preprocess
    options = dict(
        reference=tracks.reference,
        lattice_constant=lattice_model(config).lattice_constant,
        outlier=pp.angle_outlier,
    )
    calibration = calibrate_angles(
        pixel_to_position(tracks.rc, shape, pixel_size), euler, **options
    )
    if not pp.species_bias:
        return calibration, False
    if _chalcogen_column_materials(config):
        # MoSe2: the tracked columns mix metals and chalcogen pairs, whose fit errors
        # differ (a pair splits with the tilt); one bias per class would be wrong
        log.info("angles: chalcogen columns tracked as well; no per-species bias correction")
        return calibration, False
    bright = bright_tracks(tracks, columns, intensities)
    if not bright.any():
        log.info("angles: one metal species found, no per-species bias correction")
        return calibration, False
    models = (lattice_model(config), lattice_model(config, bright=True))
    bias = np.array(
        [[column_bias(m, e, pixel_size=pixel_size) for m in models] for e in calibration.euler]
    )  # (tilt, species, 2)
    corrected = tracks.rc - np.where(bright[None, :, None], bias[:, None, 1], bias[:, None, 0])
    log.info(
        "angles: %d bright columns, bias difference %.3f px RMS; recalibrating",
        int(bright.sum()),
        float(np.sqrt(np.mean((bias[:, 1] - bias[:, 0]) ** 2))),
    )
    return calibrate_angles(pixel_to_position(corrected, shape, pixel_size), euler, **options), True


def _chalcogen_column_materials(config: Config) -> list[str]:
    """Names of the materials whose chalcogen pairs outshine their metals (MoSe2)."""
    materials = config.materials.by_brightness(config.species.cross_section)
    return list(
        dict.fromkeys(
            m.name
            for bright, m in enumerate(materials)
            if lattice_model(config, bright=bool(bright)).chalcogen_columns_brighter
        )
    )


def vibration_kernels(first, euler, centres, config, pixel_size, calibration=None):
    """Vibration kernel (direction, amplitude, width, misfit) and crop corner per tilt.

    ``membrane``: one amplitude along the sheet normal fitted to every tilt's crop at
    once (:func:`estimate_membrane_vibration`); ``per_image``: one fit per crop. Tilts
    without a usable crop (or with ``vibration`` off) get NaN. With the
    ``calibration`` (:class:`AngleCalibration`) each crop's reference lattice is drawn
    at the local orientation of the sheet there (:func:`local_lattice_euler`).

    The crops lie in the darker material (MoS2), compared with its ideal monolayer;
    where that material's chalcogen pairs outshine its metals (MoSe2 of WS2–MoSe2), its
    columns are a mix that no one lattice image fits, and the crops lie in the brighter
    material (WS2) instead.
    """
    pp = config.preprocess
    model = lattice_model(config)
    in_bright = model.chalcogen_columns_brighter
    if in_bright:
        model = lattice_model(config, bright=True)
    n = len(first)
    kernels, corners = np.full((n, 4), np.nan), np.full((n, 2), np.nan)
    if not pp.vibration:
        return kernels, corners
    crop = pp.vibration_crop
    crops, columns, offsets, use = [], [], [], []
    for j, r in enumerate(first):
        raw = r.summed - r.background
        corner = _mos2_crop(r.columns, r.intensity, raw.shape, crop, bright=in_bright)
        if corner is None:
            continue
        inside = r.columns - corner
        keep = (inside >= 0).all(axis=1) & (inside < crop).all(axis=1)
        crops.append(raw[corner[0] : corner[0] + crop, corner[1] : corner[1] + crop])
        columns.append(inside[keep])
        offsets.append(
            pixel_to_position(corner + crop // 2, raw.shape, pixel_size)
            - pixel_to_position(centres[j], raw.shape, pixel_size)
        )
        corners[j] = corner
        use.append(j)
    if not use:
        log.warning("vibration: no crop of %d pixels with enough columns; not corrected", crop)
        return kernels, corners
    lattice_euler = None
    if calibration is not None:
        lattice_euler = np.array(
            [
                local_lattice_euler(
                    calibration, j, corners[j], crop, first[j].summed.shape, pixel_size
                )
                for j in use
            ]
        )
    if pp.vibration_model == "membrane":
        estimates, amplitude = estimate_membrane_vibration(
            crops,
            model,
            euler[use],
            pixel_size=pixel_size,
            centres=offsets,
            columns=columns,
            max_amplitude=pp.vibration_max_amplitude,
            lattice_euler=lattice_euler,
        )
        log.info("vibration: membrane amplitude %.3f Å from %d crops", amplitude, len(use))
    else:
        estimates = [
            estimate_vibration(
                crops[i],
                model,
                euler[j],
                pixel_size=pixel_size,
                centre=offsets[i],
                columns=columns[i],
                max_amplitude=pp.vibration_max_amplitude,
            )
            for i, j in enumerate(use)
        ]
    for est, j in zip(estimates, use, strict=True):
        kernels[j] = (est.direction, est.amplitude, est.width, est.misfit)
    return kernels, corners


def local_lattice_euler(
    calibration: AngleCalibration,
    tilt: int,
    corner: np.ndarray,
    crop: int,
    shape: tuple[int, int],
    pixel_size: float,
    *,
    min_metals: int = 8,
) -> np.ndarray:
    """Euler angles at which image ``tilt`` sees the sheet inside a crop.

    ``corner`` (row, col) and ``crop`` [pixel] give the square in an image of ``shape``
    [pixel] with ``pixel_size`` [Å]. The tracked metals whose calibrated projection
    falls in the crop give the local plane (least squares); the sheet there is the flat
    lattice turned by the smallest rotation that takes z to that plane's normal, so the
    image sees it at ``R_tilt @ R_local``. With fewer than ``min_metals`` metals the
    image's own angles are returned.
    """
    if not 0 <= tilt < len(calibration.euler):
        raise InputError(
            f"tilt {tilt!r} is not an image of the calibration (0 to {len(calibration.euler) - 1})."
        )
    R = euler_to_matrix(calibration.euler[tilt])
    xy = calibration.positions @ R[:2].T + calibration.shift[tilt]  # this tilt's projection
    rc = position_to_pixel(xy, shape, pixel_size)
    inside = np.all((rc >= corner) & (rc < np.asarray(corner) + crop), axis=1)
    if inside.sum() < min_metals:
        return np.asarray(calibration.euler[tilt], float)
    p = calibration.positions[inside]
    normal = np.linalg.svd(p - p.mean(axis=0))[2][2]
    if normal[2] < 0:
        normal = -normal
    axis = np.cross([0.0, 0.0, 1.0], normal)
    angle = float(np.degrees(np.arctan2(np.linalg.norm(axis), normal[2])))
    local = axis_angle_matrix(axis, angle) if angle > 1e-6 else np.eye(3)
    return matrix_to_euler(R @ local)


def _mos2_crop(columns, intensity, shape, crop, *, bright=False) -> np.ndarray | None:
    """Corner (row, col) of a ``crop`` square holding many columns and few bright ones.

    The darker metal columns are taken as the darker material's (Mo of MoS2); a window
    is scored by its number of them minus ten times its number of bright (W) ones.
    With ``bright`` the roles swap: many bright columns, few dark ones.
    """
    if len(columns) < 6 or min(shape) < crop:
        return None
    if bright:  # unwanted: every column well below the bright ones (W next to Se2, Mo)
        top = np.sort(intensity)[len(intensity) // 2 :]
        unwanted = intensity < float(np.median(top)) / 1.2
    else:
        dark = np.sort(intensity)[: max(1, len(intensity) // 2)]
        unwanted = intensity > 1.5 * float(np.median(dark))
    starts = [np.arange(0, s - crop + 1, max(1, crop // 4)) for s in shape]
    best, corner = -np.inf, None
    for r0 in starts[0]:
        for c0 in starts[1]:
            inside = (
                (columns[:, 0] >= r0 + 2)
                & (columns[:, 0] < r0 + crop - 2)
                & (columns[:, 1] >= c0 + 2)
                & (columns[:, 1] < c0 + crop - 2)
            )
            score = (inside & ~unwanted).sum() - 10 * (inside & unwanted).sum()
            if score > best:
                best, corner = score, np.array([r0, c0])
    return corner


def model_backgrounds(
    first: list,
    calibration: AngleCalibration,
    tracks: Tracks,
    kernels: np.ndarray,
    config: Config,
    *,
    pixel_size: float,
) -> list[ModelBackground | None]:
    """Background of every tilt refitted with the sheet model, where the vacuum allows.

    The sheet's sites come from the calibrated metals (:func:`sheet_sites`, bright
    metals from :func:`bright_tracks`); each frame sum is fitted with them and a smooth
    background (:func:`refine_background`, the species' cross-sections as fixed ratios).
    A tilt whose vacuum (pixels outside the modelled sheet) is below
    ``preprocess.background_min_vacuum`` of the image gets None: the background under
    a sheet that fills the field is not pinned by anything but the model's integrated
    intensity, which is not known well enough, and the hexagon-minimum background is kept.
    """
    pp, sp = config.preprocess, config.species
    n = len(first)
    if not pp.background_model:
        return [None] * n
    if names := _chalcogen_column_materials(config):
        log.info(
            "background: the sheet model is built from metal columns, but %s's chalcogen "
            "columns are the brighter ones and were tracked as well; the hexagon-minimum "
            "background is kept",
            " and ".join(names),
        )
        return [None] * n
    bright = bright_tracks(tracks, [r.columns for r in first], [r.intensity for r in first])
    dark, light = config.materials.by_brightness(sp.cross_section)
    sites = sheet_sites(
        calibration.positions,
        bright,
        lattice_constant=dark.lattice_constant,
        chalcogen_height=(dark.chalcogen_height, light.chalcogen_height),
    )
    names = [dark.metal, light.metal, dark.chalcogen, light.chalcogen]
    options = dict(
        pixel_size=pixel_size,
        b_factors=species_table(names, sp.b_factor),
        probe_fwhm=config.imaging.probe_fwhm,
        knot_spacing=pp.background_knot_spacing,
        sheet_weight=pp.background_sheet_weight,
        ratios=species_table(names, sp.cross_section),
    )
    out: list[ModelBackground | None] = []
    for j in range(n):
        fit = refine_background(
            first[j].summed,
            sites,
            calibration.euler[j],
            calibration.shift[j],
            vibration=kernels[j][:3],
            **options,
        )
        keep = fit.vacuum >= pp.background_min_vacuum
        log.info(
            "background: tilt %d, vacuum %.0f %% of the image, %s",
            j,
            100 * fit.vacuum,
            "sheet-model background" if keep else "kept the hexagon-minimum background",
        )
        out.append(fit if keep else None)
    return out
