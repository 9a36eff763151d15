"""Vibration correction: estimate a harmonic-oscillator blur kernel, then deconvolve.

A free-standing membrane that oscillates along its normal smears every atom along the
projected normal with the arcsine profile of a harmonic oscillator
(:func:`hpcaet.forward.kernels.vibration_kernel`: direction, amplitude, width).
:func:`estimate_vibration` finds the kernel of one image by matching a crop of a good
MoS2 region to the reference lattice image of an ideal MoS2 monolayer at that image's
angles (:func:`hpcaet.preprocess.lattice.reference_image`): the reference is drawn on
a grid twice as fine as the image (the paper's 2x interpolation, applied to the model
rather than to the data so that interpolation adds no blur), registered to the crop,
blurred by the candidate kernel, sampled back onto the image grid and scaled to the
crop by linear least squares; the kernel parameters minimise the misfit (Nelder–Mead).
:func:`deconvolve` then removes the kernel from the whole image with Lucy–Richardson
iterations on the 2x-interpolated image, binned back to the original size.

References
----------
Tian et al., Methods, "Vibration correction". W. H. Richardson, J. Opt. Soc. Am. 62, 55
(1972); L. B. Lucy, Astron. J. 79, 745 (1974).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage, optimize, signal
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.forward import project_atoms
from hpcaet.forward.kernels import vibration_kernel
from hpcaet.geometry import euler_to_matrix, pixel_to_position, project_points
from hpcaet.preprocess.lattice import LatticeModel, bright_columns, ideal_monolayer
from hpcaet.preprocess.registration import register_translation

__all__ = [
    "VibrationEstimate",
    "estimate_vibration",
    "estimate_membrane_vibration",
    "deconvolve",
]

_FINE = 2  # model grid per image pixel


@dataclass(frozen=True)
class VibrationEstimate:
    """Harmonic-oscillator kernel of one image.

    Attributes
    ----------
    direction : float
        Direction of the motion in the image [deg from +x towards +y, in [0, 180)].
    amplitude : float
        Amplitude in the image plane [Å].
    width : float
        Gaussian width of the kernel [Å].
    misfit : float
        Relative RMS misfit of the crop after the fit.
    """

    direction: float
    amplitude: float
    width: float
    misfit: float


def estimate_vibration(
    crop: ArrayLike,
    model: LatticeModel,
    euler: ArrayLike,
    *,
    pixel_size: float,
    centre: ArrayLike = (0.0, 0.0),
    columns: ArrayLike | None = None,
    max_amplitude: float = 1.0,
    along_normal: bool = True,
) -> VibrationEstimate:
    """Fit the vibration kernel of an image from a crop of a clean MoS2 region.

    Parameters
    ----------
    crop : array_like of shape (m, m)
        Background-subtracted crop of the image [counts] (not denoised: the fit is a
        least-squares one, and a denoiser would change the shape of the atoms).
    model : LatticeModel
        The ideal monolayer of the reference (probe blur included).
    euler : array_like of shape (3,)
        Calibrated Euler angles of the image [deg].
    pixel_size : float
        [Å].
    centre : array_like of shape (2,), default (0, 0)
        Position ``(x, y)`` of the crop centre relative to the projected origin of the
        lattice [Å]; any value works (the reference is registered to the crop), a good
        one saves a lattice-period search.
    columns : array_like of shape (k, 2), optional
        Fitted metal column centres ``(row, col)`` in the crop [pixel]. When given,
        the ideal lattice is mapped onto them by an in-plane affine fit (the local
        strain, rotation and foreshortening of the crop), so only the atoms' shapes
        are left to the kernel.
    max_amplitude : float, default 1.0
        Largest amplitude considered [Å].
    along_normal : bool, default True
        The membrane vibrates along its normal (the paper's harmonic-oscillator
        model), so the blur runs along the projected sample z axis,
        ``atan2(R[1, 2], R[0, 2])`` of the calibrated ``euler``; only the amplitude
        and the width are then fitted. False fits the direction too (three
        parameters), which a sub-0.3 Å blur on a real crop does not pin down.

    Returns
    -------
    VibrationEstimate

    Raises
    ------
    InputError
        A crop that is not square, too small, or without contrast.
    """
    data = np.asarray(crop, dtype=float)
    if data.ndim != 2 or data.shape[0] != data.shape[1] or data.shape[0] < 16:
        raise InputError(f"crop must be square, at least 16 x 16 pixels; got {data.shape}.")
    if not np.all(np.isfinite(data)) or np.ptp(data) == 0:
        raise InputError("crop must be finite and show contrast (an all-zero crop has none).")
    m = data.shape[0]
    fine = pixel_size / _FINE
    ref_fine = _registered_reference(data, model, euler, pixel_size, centre, columns)
    inner = slice(3, m - 3)
    target = data[inner, inner].ravel()

    def misfit(p):
        u, v, w = p
        amplitude = np.hypot(u, v)
        if amplitude > max_amplitude or not 0 <= w <= 0.5:
            return np.inf
        direction = np.rad2deg(np.arctan2(v, u))
        k = vibration_kernel(direction, amplitude, abs(w), pixel_size=fine)
        blurred = _sample(signal.fftconvolve(ref_fine, k, mode="same"))[inner, inner].ravel()
        design = np.column_stack([blurred, np.ones_like(blurred)])
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        return float(np.sum((design @ coef - target) ** 2))

    if along_normal:
        R = euler_to_matrix(euler)
        theta = float(np.arctan2(R[1, 2], R[0, 2]))
        c, s = np.cos(theta), np.sin(theta)
        fixed = [
            optimize.minimize(
                lambda q: misfit((q[0] * c, q[0] * s, q[1])),
                (a0, 0.05),
                method="Nelder-Mead",
                options={"xatol": 1e-3, "fatol": 1e-9, "maxiter": 200},
            )
            for a0 in (0.05, 0.25)
        ]
        best1 = min(fixed, key=lambda r: r.fun)
        amp, w = abs(float(best1.x[0])), abs(float(best1.x[1]))
        total = float(np.sum((target - target.mean()) ** 2)) or 1.0
        return VibrationEstimate(
            direction=float(np.rad2deg(theta) % 180.0),
            amplitude=amp,
            width=w,
            misfit=float(np.sqrt(best1.fun / total)),
        )
    starts = [(0.1 * np.cos(t), 0.1 * np.sin(t), 0.05) for t in np.deg2rad([0, 60, 120])]
    best = min(
        (
            optimize.minimize(
                misfit,
                s,
                method="Nelder-Mead",
                options={"xatol": 1e-3, "fatol": 1e-9, "maxiter": 300},
            )
            for s in starts
        ),
        key=lambda r: r.fun,
    )
    u, v, w = best.x
    direction = float(np.rad2deg(np.arctan2(v, u)) % 180.0)
    total = float(np.sum((target - target.mean()) ** 2)) or 1.0
    return VibrationEstimate(
        direction=direction,
        amplitude=float(np.hypot(u, v)),
        width=float(abs(w)),
        misfit=float(np.sqrt(best.fun / total)),
    )


def estimate_membrane_vibration(
    crops: list[ArrayLike],
    model: LatticeModel,
    euler: ArrayLike,
    *,
    pixel_size: float,
    centres: ArrayLike | None = None,
    columns: list[ArrayLike | None] | None = None,
    max_amplitude: float = 1.0,
    lattice_euler: ArrayLike | None = None,
) -> tuple[list[VibrationEstimate], float]:
    """Fit one membrane vibration to the crops of every image of a tilt series.

    The membrane oscillates along its normal with one amplitude ``A`` (and kernel width
    ``w``); image ``j`` sees it along the projected normal ``R_j[:2, 2]`` with the in-image
    amplitude ``A * |R_j[:2, 2]|`` (zero at zero tilt). ``A`` and ``w`` minimise the sum
    over images of the crop misfits of :func:`estimate_vibration` (each reference
    registered to its crop once), each divided by its own noise level (the mean squared
    misfit of that crop at its best coarse-grid fit), so that no single image dominates.

    Parameters
    ----------
    crops : list of array_like of shape (m, m)
        Background-subtracted, not denoised crops [counts], one per image.
    model : LatticeModel
        The ideal monolayer of the reference.
    euler : array_like of shape (n, 3)
        Calibrated Euler angles of the images [deg].
    pixel_size : float
        [Å].
    centres : array_like of shape (n, 2), optional
        Crop centres relative to the projected lattice origin [Å] (see
        :func:`estimate_vibration`).
    columns : list of array_like of shape (k, 2) or None, optional
        Fitted metal columns of each crop (row, col) [pixel].
    max_amplitude : float, default 1.0
        Largest membrane amplitude considered [Å].
    lattice_euler : array_like of shape (n, 3), optional
        Orientation of the lattice seen in each crop [deg], when the sheet there is
        tilted from its mean plane (a ripple): the reference lattice is drawn at these
        angles, so that the chalcogens' projected split follows the local tilt, while
        the vibration stays along the mean normal of ``euler``. Default ``euler``.

    Returns
    -------
    estimates : list of VibrationEstimate
        Per image: direction of the projected normal, amplitude ``A * |R[:2, 2]|``, the
        common width and the relative misfit of its crop.
    amplitude : float
        The membrane amplitude ``A`` [Å].

    Raises
    ------
    InputError
        Mismatched numbers of crops and angles, or a bad crop.
    """
    e = np.atleast_2d(np.asarray(euler, dtype=float))
    n = len(crops)
    if e.shape != (n, 3):
        raise InputError(f"euler must be (n, 3) with one row per crop ({n} crops); got {e.shape}.")
    centres = np.zeros((n, 2)) if centres is None else np.asarray(centres, float)
    columns = [None] * n if columns is None else list(columns)
    local = e if lattice_euler is None else np.atleast_2d(np.asarray(lattice_euler, float))
    if local.shape != e.shape:
        raise InputError(
            f"lattice_euler must have the shape of euler {e.shape}; got {local.shape}."
        )
    if centres.shape != (n, 2) or len(columns) != n:
        raise InputError(
            f"centres must be (n, 2) [Å] and columns one entry per crop ({n} crops); got "
            f"shape {centres.shape} and {len(columns)} entries."
        )
    fine = pixel_size / _FINE
    parts = []
    for j in range(n):
        data = np.asarray(crops[j], dtype=float)
        if data.ndim != 2 or data.shape[0] != data.shape[1] or data.shape[0] < 16:
            raise InputError(f"crop {j} must be square, at least 16 x 16; got {data.shape}.")
        if not np.all(np.isfinite(data)) or np.ptp(data) == 0:
            raise InputError(f"crop {j} must be finite and show contrast.")
        R = euler_to_matrix(e[j])
        theta = float(np.arctan2(R[1, 2], R[0, 2]))
        m = data.shape[0]
        inner = slice(3, m - 3)
        ref = _registered_reference(data, model, local[j], pixel_size, centres[j], columns[j])
        parts.append(
            (ref, data[inner, inner].ravel(), inner, np.rad2deg(theta), np.hypot(R[0, 2], R[1, 2]))
        )

    def sse(j, amplitude, width):
        ref, target, inner, direction, _ = parts[j]
        k = vibration_kernel(direction, amplitude, width, pixel_size=fine)
        blurred = _sample(signal.fftconvolve(ref, k, mode="same"))[inner, inner].ravel()
        design = np.column_stack([blurred, np.ones_like(blurred)])
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        return float(np.sum((design @ coef - target) ** 2))

    # coarse grid of the in-image amplitude per crop gives each crop's noise level
    grid = np.linspace(0.0, max_amplitude, 21)
    noise = np.array([min(sse(j, a, 0.05) for a in grid) for j in range(n)])
    noise = np.maximum(noise, 1e-12)

    def total(p):
        amplitude, width = p
        if not 0 <= amplitude <= max_amplitude or not 0 <= width <= 0.5:
            return np.inf
        return sum(sse(j, amplitude * parts[j][4], width) / noise[j] for j in range(n))

    coarse = min(grid, key=lambda a: total((a, 0.05)))
    best = optimize.minimize(
        total,
        (max(coarse, 0.02), 0.05),
        method="Nelder-Mead",
        options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 200},
    )
    amplitude, width = float(best.x[0]), float(best.x[1])
    out = []
    for j in range(n):
        _, target, _, direction, scale = parts[j]
        spread = float(np.sum((target - target.mean()) ** 2)) or 1.0
        out.append(
            VibrationEstimate(
                direction=float(direction % 180.0),
                amplitude=amplitude * scale,
                width=width,
                misfit=float(np.sqrt(sse(j, amplitude * scale, width) / spread)),
            )
        )
    return out, amplitude


def deconvolve(
    image: ArrayLike,
    estimate: VibrationEstimate,
    *,
    pixel_size: float,
    iterations: int = 20,
) -> np.ndarray:
    """Remove a vibration kernel from an image by Lucy–Richardson deconvolution.

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        Background-subtracted image [counts]; negative values are clipped to 0.
    estimate : VibrationEstimate
        The kernel.
    pixel_size : float
        [Å].
    iterations : int, default 20
        Lucy–Richardson iterations.

    Returns
    -------
    ndarray of shape (ny, nx)
        The deconvolved image, with the same total as the clipped input.
    """
    a = np.clip(np.asarray(image, dtype=float), 0.0, None)
    if a.ndim != 2:
        raise InputError(f"image must be 2D; got shape {a.shape}.")
    ny, nx = a.shape
    # fine pixel k of an axis has its centre at image coordinate (k + 0.5) / 2 - 0.5
    rows = (np.arange(_FINE * ny) + 0.5) / _FINE - 0.5
    cols = (np.arange(_FINE * nx) + 0.5) / _FINE - 0.5
    up = ndimage.map_coordinates(a, np.meshgrid(rows, cols, indexing="ij"), order=1, mode="nearest")
    k = vibration_kernel(
        estimate.direction, estimate.amplitude, estimate.width, pixel_size=pixel_size / _FINE
    )
    k_mirror = k[::-1, ::-1]
    u = np.full_like(up, max(float(up.mean()), 1e-12))
    for _ in range(int(iterations)):
        blurred = signal.fftconvolve(u, k, mode="same")
        u = u * signal.fftconvolve(up / np.maximum(blurred, 1e-12), k_mirror, mode="same")
    down = u.reshape(ny, _FINE, nx, _FINE).mean(axis=(1, 3))
    return down * (a.sum() / max(float(down.sum()), 1e-300))


def _registered_reference(data, model, euler, pixel_size, centre, columns) -> np.ndarray:
    """Reference lattice drawn on the fine grid, registered (and affinely fitted) to ``data``."""
    m = data.shape[0]
    fine = pixel_size / _FINE
    a = model.lattice_constant
    positions, weights, b_factors, is_metal = ideal_monolayer(model, 0.75 * m * pixel_size + 4 * a)
    # the patch of lattice is finite: bring the crop centre into the projected unit cell
    # nearest the origin (a lattice translation changes nothing but the patch's cover)
    cell = project_points(np.array([[a, 0.0, 0.0], [a / 2, a * np.sqrt(3) / 2, 0.0]]), euler)
    try:
        frac = np.linalg.solve(cell.T, np.asarray(centre, dtype=float))
    except np.linalg.LinAlgError as err:
        raise InputError(
            f"the lattice at Euler angles {np.round(euler, 2).tolist()} deg is seen edge-on "
            "(its projected cell is singular); no reference image can be drawn."
        ) from err
    xy = project_points(positions, euler) - (frac - np.round(frac)) @ cell
    # translation: cross-correlate the sampled reference with the crop
    for _ in range(2):
        ref = _render(xy, weights, b_factors, m, fine)
        shift = register_translation(_sample(ref), data, upsample_factor=20, window=0.3)
        xy = xy + shift[::-1] * pixel_size
    if columns is not None and len(columns) >= 6:
        measured = pixel_to_position(np.asarray(columns, float), (m, m), pixel_size)
        metal = bright_columns(model, xy, is_metal)
        distance, index = cKDTree(metal).query(measured, distance_upper_bound=0.3 * a)
        ok = np.isfinite(distance)
        if ok.sum() >= 6:
            design = np.column_stack([metal[index[ok]], np.ones(ok.sum())])
            coef, *_ = np.linalg.lstsq(design, measured[ok], rcond=None)
            xy = np.column_stack([xy, np.ones(len(xy))]) @ coef
    return _render(xy, weights, b_factors, m, fine)


def _render(xy, weights, b_factors, m, fine) -> np.ndarray:
    """Atoms at image positions ``xy`` [Å] drawn on a (2m, 2m) grid of spacing ``fine``."""
    flat = np.column_stack([xy, np.zeros(len(xy))])
    return project_atoms(
        flat, weights, b_factors, np.zeros((1, 3)), shape=(_FINE * m, _FINE * m), pixel_size=fine
    )[0]


def _sample(fine: np.ndarray) -> np.ndarray:
    """Image-grid samples of a model drawn on the ``_FINE`` x finer grid."""
    return fine[::_FINE, ::_FINE]
