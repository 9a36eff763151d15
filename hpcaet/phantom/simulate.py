"""Simulated ADF-STEM tilt series with every distortion recorded.

One tilt is one pure function, :func:`simulate_tilt`: the linear image model of
:mod:`hpcaet.forward` renders the specimen's projection on a grid twice as fine as
the detector, blurred by the probe and by the vertical vibration of the sheet, over a
smooth background; each of the ``frames`` raster scans then samples that picture while
the specimen drifts linearly (so each row, and each pixel of a row, is taken at its own
time: the scan distortion), and the expected counts at the given dose get Poisson
counting noise and Gaussian detector noise.

Time runs in frames: pixel ``(row, col)`` of frame ``f`` is taken at
``t = f + (row + col / nx) / ny``, when the specimen has moved by ``velocity * t``
pixels, so the pixel shows the specimen at ``(col, row) - velocity * t``. The
reference frame of every truth array is the specimen at ``t = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from hpcaet.errors import InputError
from hpcaet.forward import project_atoms
from hpcaet.forward.kernels import probe_b_factor, vibration_kernel
from hpcaet.geometry import euler_to_matrix

__all__ = [
    "TiltDistortions",
    "TiltResult",
    "TiltCanvas",
    "tilt_canvas",
    "render_linear",
    "upsample_probe_image",
    "record_tilt",
    "simulate_tilt",
    "draw_distortions",
    "vibration_in_image",
]

_OVERSAMPLE = 2


@dataclass(frozen=True)
class TiltDistortions:
    """What happens to one tilt, in the units the truth arrays use.

    Attributes
    ----------
    velocity : ndarray of shape (2,)
        Drift of the specimen per frame, ``x, y`` [pixel / frame].
    offset : ndarray of shape (2,)
        Where the projected rotation centre lands relative to the image centre,
        ``x, y`` [Å] (the misalignment the alignment step removes).
    vibration_direction : float
        Direction of the vibration blur in the image [deg from +x towards +y].
    vibration_amplitude : float
        Its amplitude in the image plane [Å].
    vibration_width : float
        Gaussian width of the vibration kernel [Å].
    background_seed : int
        Seed of the smooth background of this tilt.
    """

    velocity: np.ndarray
    offset: np.ndarray
    vibration_direction: float
    vibration_amplitude: float
    vibration_width: float
    background_seed: int


@dataclass(frozen=True)
class TiltResult:
    """Output of :func:`simulate_tilt` (counts are electrons on the detector)."""

    frames: np.ndarray  # (n_frame, ny, nx) float32, noisy counts
    clean: np.ndarray  # (ny, nx) expected counts of the specimen, all frames, t = 0 frame
    background: np.ndarray  # (ny, nx) expected background counts, all frames, t = 0 frame
    drift: np.ndarray  # (n_frame, 2) specimen shift at the start of each frame [pixel]


def vibration_in_image(euler: np.ndarray, amplitude: float) -> tuple[float, float]:
    """Direction [deg] and in-image amplitude [Å] of a vibration along the sample z axis."""
    R = euler_to_matrix(euler)
    vx, vy = R[0, 2], R[1, 2]
    direction = float(np.rad2deg(np.arctan2(vy, vx)) % 180.0)
    return direction, float(amplitude * np.hypot(vx, vy))


def draw_distortions(
    euler: np.ndarray,
    *,
    drift_max: float,
    offset_max: float,
    pixel_size: float,
    vibration_amplitude: float,
    vibration_width: float,
    rng: np.random.Generator | int | None = None,
) -> list[TiltDistortions]:
    """Draw the distortions of every tilt.

    Drift speeds are uniform in ``[0.3, 1] * drift_max`` pixel per frame in a random
    direction; offsets uniform in a disc of ``offset_max`` pixels; the vibration is
    the sheet's vertical motion of amplitude ``vibration_amplitude`` seen at each tilt.
    """
    rng = np.random.default_rng(rng)
    out = []
    for e in np.atleast_2d(euler):
        speed = drift_max * rng.uniform(0.3, 1.0)
        angle = rng.uniform(0, 2 * np.pi)
        radius = offset_max * np.sqrt(rng.uniform())
        angle2 = rng.uniform(0, 2 * np.pi)
        direction, amplitude = vibration_in_image(e, vibration_amplitude)
        out.append(
            TiltDistortions(
                velocity=speed * np.array([np.cos(angle), np.sin(angle)]),
                offset=radius * pixel_size * np.array([np.cos(angle2), np.sin(angle2)]),
                vibration_direction=direction,
                vibration_amplitude=amplitude,
                vibration_width=float(vibration_width),
                background_seed=int(rng.integers(2**31)),
            )
        )
    return out


@dataclass(frozen=True)
class TiltCanvas:
    """The grid one tilt is drawn on: twice as fine as the detector, with a margin.

    Fine-grid index ``K`` (per axis) sits at detector index ``K / 2 - margin``; the
    specimen is drawn so that the rotation centre, shifted by the tilt's ``offset``,
    lands at the image centre ``(nx // 2, ny // 2)`` (:mod:`hpcaet.geometry`).
    """

    shape: tuple[int, int]  # detector image (ny, nx) [pixel]
    pixel_size: float  # [Å]
    margin: int  # [detector pixel] on every side, for the drift
    offset: np.ndarray  # (x, y) [Å]: the tilt's misalignment

    @property
    def fine(self) -> float:
        """Fine-grid spacing [Å]."""
        return self.pixel_size / _OVERSAMPLE

    @property
    def big(self) -> tuple[int, int]:
        """Fine-grid shape ``(rows, cols)``."""
        ny, nx = self.shape
        return (_OVERSAMPLE * (ny + 2 * self.margin), _OVERSAMPLE * (nx + 2 * self.margin))

    @property
    def render_offset(self) -> np.ndarray:
        """``offsets`` of :func:`hpcaet.forward.project_atoms` on the fine grid [Å]:
        the tilt's offset plus the shift from the renderer's centre (``K = N // 2``)
        to the fine index of the image centre."""
        s, (ny, nx), (by, bx) = _OVERSAMPLE, self.shape, self.big
        shift = np.array(
            [(bx // 2 - s * (self.margin + nx // 2)), (by // 2 - s * (self.margin + ny // 2))]
        )
        return np.asarray(self.offset, float) + shift * self.fine

    def probe_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Microscope-frame ``x`` and ``y`` [Å] of the detector-spaced samples of the
        fine grid (every second fine index, from 0): where a dynamical simulation puts
        its probe positions."""
        by, bx = self.big
        x = (np.arange(0, bx, _OVERSAMPLE) - bx // 2) * self.fine - self.render_offset[0]
        y = (np.arange(0, by, _OVERSAMPLE) - by // 2) * self.fine - self.render_offset[1]
        return x, y


def tilt_canvas(
    distortions: TiltDistortions, *, shape: tuple[int, int], pixel_size: float, frames: int
) -> TiltCanvas:
    """The canvas of one tilt: wide enough for its drift and vibration blur."""
    velocity = np.asarray(distortions.velocity, dtype=float)
    travel = np.abs(velocity).max() * (frames + 1)
    margin = int(np.ceil(travel + 4 + (distortions.vibration_amplitude + 4 * 0.6) / pixel_size))
    return TiltCanvas(
        shape=(int(shape[0]), int(shape[1])),
        pixel_size=float(pixel_size),
        margin=margin,
        offset=np.asarray(distortions.offset, float),
    )


def render_linear(
    positions: np.ndarray,
    weights: np.ndarray,
    b_factors: np.ndarray,
    euler: np.ndarray,
    canvas: TiltCanvas,
    *,
    probe_fwhm: float,
) -> np.ndarray:
    """The linear model's picture of the specimen on the canvas (fraction of a probe
    electron on the detector per probe position), the probe a Gaussian of
    ``probe_fwhm`` [Å] added to every atom's B-factor."""
    b_eff = np.asarray(b_factors, float) + probe_b_factor(probe_fwhm)
    return project_atoms(
        positions,
        weights,
        b_eff,
        np.asarray(euler, float)[None],
        shape=canvas.big,
        pixel_size=canvas.fine,
        offsets=canvas.render_offset[None],
    )[0]


def upsample_probe_image(image: np.ndarray) -> np.ndarray:
    """Fine-grid picture from probe positions at every second fine index.

    An ADF image is band-limited in the probe position (to twice the aperture), so
    sampled at its Nyquist step it is interpolated exactly by zero-padding its
    spectrum; the image is mirrored first so that its edges do not ring.

    Parameters
    ----------
    image : ndarray of shape (ry, rx)

    Returns
    -------
    ndarray of shape (2 ry, 2 rx)
        Sample ``[2 i, 2 j]`` is ``image[i, j]``.
    """
    ry, rx = image.shape
    mirrored = np.block([[image, image[:, ::-1]], [image[::-1], image[::-1, ::-1]]])
    spectrum = np.fft.fftshift(np.fft.fft2(mirrored))
    wide = np.zeros((4 * ry, 4 * rx), dtype=complex)
    wide[ry : 3 * ry, rx : 3 * rx] = spectrum
    fine = np.fft.ifft2(np.fft.ifftshift(wide)).real * 4.0
    return fine[: 2 * ry, : 2 * rx]


def record_tilt(
    specimen: np.ndarray,
    distortions: TiltDistortions,
    canvas: TiltCanvas,
    *,
    frames: int,
    dose_per_frame: float,
    read_noise: float,
    background_level: float,
    background_scale: float,
    rng: np.random.Generator | int | None = None,
) -> TiltResult:
    """Record the frames of one tilt from the specimen's picture on its canvas.

    The picture is blurred by the vertical vibration of the sheet, a smooth background
    is added, and each frame's raster samples it while the specimen drifts; the
    expected counts at the dose get Poisson and Gaussian detector noise.

    Parameters
    ----------
    specimen : ndarray of shape ``canvas.big``
        Fraction of one probe electron on the detector per probe position.
    distortions, canvas
        The tilt's distortions and the grid ``specimen`` is on.
    frames, dose_per_frame, read_noise, background_level, background_scale, rng
        As in :func:`simulate_tilt`.
    """
    if frames < 1:
        raise InputError(f"frames must be >= 1; got {frames}.")
    if not dose_per_frame > 0:
        raise InputError(f"dose per frame must be positive [e/Å²]; got {dose_per_frame}.")
    if specimen.shape != canvas.big:
        raise InputError(
            f"the specimen picture has shape {specimen.shape}; its canvas needs {canvas.big}."
        )
    rng = np.random.default_rng(rng)
    s, fine, margin = _OVERSAMPLE, canvas.fine, canvas.margin
    ny, nx = canvas.shape
    pixel_size = canvas.pixel_size
    velocity = np.asarray(distortions.velocity, dtype=float)
    if distortions.vibration_amplitude > 0 or distortions.vibration_width > 0:
        kernel = vibration_kernel(
            distortions.vibration_direction,
            distortions.vibration_amplitude,
            distortions.vibration_width,
            pixel_size=fine,
        )
        specimen = signal.fftconvolve(specimen, kernel, mode="same")
    background = _smooth_background(canvas.big, fine, background_scale, distortions.background_seed)
    inner = (slice(s * margin, s * (margin + ny), s), slice(s * margin, s * (margin + nx), s))
    mean_signal = max(float(specimen[inner].mean()), 1e-12)
    background *= background_level * mean_signal
    electrons = dose_per_frame * pixel_size**2  # probe electrons per pixel per frame

    coeff_spec = ndimage.spline_filter(specimen, order=3)
    coeff_bg = ndimage.spline_filter(background, order=3)
    rows, cols = np.mgrid[0:ny, 0:nx].astype(float)
    out = np.empty((frames, ny, nx), dtype=np.float32)
    drift = np.empty((frames, 2))
    for f in range(frames):
        t = f + (rows + cols / nx) / ny
        drift[f] = velocity * f
        coords = [s * (rows - velocity[1] * t + margin), s * (cols - velocity[0] * t + margin)]
        expected = electrons * (
            ndimage.map_coordinates(coeff_spec, coords, order=3, prefilter=False)
            + ndimage.map_coordinates(coeff_bg, coords, order=3, prefilter=False)
        )
        expected = np.clip(expected, 0.0, None)
        noisy = rng.poisson(expected) + rng.normal(0.0, read_noise, expected.shape)
        out[f] = noisy.astype(np.float32)
    return TiltResult(
        frames=out,
        clean=(frames * electrons * specimen[inner]).astype(np.float32),
        background=(frames * electrons * background[inner]).astype(np.float32),
        drift=drift,
    )


def simulate_tilt(
    positions: np.ndarray,
    weights: np.ndarray,
    b_factors: np.ndarray,
    euler: np.ndarray,
    distortions: TiltDistortions,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    frames: int,
    dose_per_frame: float,
    read_noise: float,
    probe_fwhm: float,
    background_level: float,
    background_scale: float,
    rng: np.random.Generator | int | None = None,
) -> TiltResult:
    """Simulate the frames of one tilt with the linear image model.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions in the sample frame [Å].
    weights : ndarray of shape (n,)
        Integrated ADF cross-sections [Å²] (0 for vacancies).
    b_factors : ndarray of shape (n,)
        B' factors [Å²].
    euler : ndarray of shape (3,)
        True orientation [deg].
    distortions : TiltDistortions
        Drift, misalignment, vibration and background seed of this tilt.
    shape : (int, int)
        Image size ``(ny, nx)`` [pixel].
    pixel_size : float
        [Å].
    frames : int
        Raster scans at this tilt.
    dose_per_frame : float
        Electron dose of one frame [e/Å²].
    read_noise : float
        Standard deviation of the Gaussian detector noise per pixel [counts].
    probe_fwhm : float
        Probe intensity FWHM [Å]; widens every atom's Gaussian.
    background_level : float
        Mean of the background as a fraction of the specimen's mean signal.
    background_scale : float
        Correlation length of the background [Å].
    rng : numpy.random.Generator or int or None
        Source of the counting and detector noise.

    Returns
    -------
    TiltResult
    """
    if frames < 1:
        raise InputError(f"frames must be >= 1; got {frames}.")
    canvas = tilt_canvas(distortions, shape=shape, pixel_size=pixel_size, frames=frames)
    specimen = render_linear(positions, weights, b_factors, euler, canvas, probe_fwhm=probe_fwhm)
    return record_tilt(
        specimen,
        distortions,
        canvas,
        frames=frames,
        dose_per_frame=dose_per_frame,
        read_noise=read_noise,
        background_level=background_level,
        background_scale=background_scale,
        rng=rng,
    )


def _smooth_background(shape, spacing, scale, seed) -> np.ndarray:
    """Positive smooth random field with unit mean and correlation length ``scale``."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(shape[0], spacing)[:, None]
    kx = np.fft.rfftfreq(shape[1], spacing)[None, :]
    taper = np.exp(-2 * np.pi**2 * scale**2 * (kx**2 + ky**2))
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * taper, s=shape)
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-12)
    return 0.5 + field / max(float(field.mean()), 1e-12) * 0.5
