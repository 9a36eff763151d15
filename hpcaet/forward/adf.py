"""Dynamical ADF-STEM images by multislice (abTEM), one tile of probe positions at a time.

The linear model of :mod:`hpcaet.forward.gaussian` is a fit, not the physics: at 60 kV
with a 50 mrad inner angle a stacked S pair scatters more than two separate S atoms, and
a W column moves the apparent position of its neighbours. This module draws what the
microscope would record: an aberration-free probe of the configured convergence
semi-angle is propagated through the projected potential of the (tilted) atoms, slice by
slice, and the fraction of the electron that lands on the annular detector is recorded
at each probe position. The unit is the same as the linear model's image (fraction of
one probe electron), so the two are interchangeable in the simulator.

A field is split into square tiles of probe positions. Each tile is imaged in its own
periodic cell: the tile plus ``padding`` on every side, holding only the atoms inside
that cell, so the cost of a probe position does not grow with the field and tiles are
independent tasks (:func:`adf_tile`). Every tile uses a cell of the same size and the
same grid, so FFT plans are made once per worker. Tiles with no atom inside their cell
record zero (vacuum) without a simulation.

The ADF image of any specimen is band-limited in the probe position to twice the
aperture, ``2 α / λ`` (the incident wave depends on the position only through phase
factors of the aperture's beams), so probe positions on a grid of step ``λ / (4 α)``
(0.32 Å at 60 kV, 38 mrad) sample the image completely.

abTEM (``pip install "hpcaet[multislice]"``) computes the potentials (Lobato
parametrisation, finite projection by default so that a z move changes the potential
continuously) and the wave propagation, plain multislice or PRISM.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from hpcaet.errors import InputError
from hpcaet.forward.multislice import _abtem, electron_wavelength
from hpcaet.geometry import euler_to_matrix

__all__ = [
    "ADFOptics",
    "ADFSettings",
    "adf_tile",
    "adf_scan",
    "check_adf",
    "cell_gpts",
    "nyquist_step",
]

log = logging.getLogger(__name__)

_ENGINES = ("multislice", "prism")
_PROJECTIONS = ("finite", "infinite")
#: abTEM keeps the Fourier components within this fraction of the grid's Nyquist
#: frequency (its antialiasing aperture): scattering beyond ``λ · cutoff / (2 s)``
#: is lost.
_ANTIALIAS = 2.0 / 3.0


@dataclass(frozen=True)
class ADFOptics:
    """The microscope.

    Attributes
    ----------
    voltage : float
        Accelerating voltage [kV].
    convergence_angle : float
        Probe convergence semi-angle [mrad] (aberration-free probe).
    detector : (float, float)
        Inner and outer collection semi-angles of the annular detector [mrad].
    """

    voltage: float
    convergence_angle: float
    detector: tuple[float, float]


@dataclass(frozen=True)
class ADFSettings:
    """How the multislice is computed (accuracy against cost).

    Attributes
    ----------
    engine : {"multislice", "prism"}
        Plain multislice (one propagation per probe position) or PRISM (one per
        plane wave of the aperture, then a sum per position).
    sampling : float
        Real-space sampling of the wave [Å]; must resolve the outer detector angle.
    slice_thickness : float
        Multislice step [Å].
    padding : float
        Atoms this far beyond a tile are in its cell [Å].
    tile : int
        Tile side [probe positions].
    prism_interpolation : int
        PRISM interpolation factor (1: exact; 2: the cell is cut to half per position).
    projection : {"finite", "infinite"}
        abTEM's potential projection: ``finite`` integrates each atom's potential over
        each slice; ``infinite`` puts its whole projected potential in one slice.
    """

    engine: str = "multislice"
    sampling: float = 0.07
    slice_thickness: float = 0.5
    padding: float = 4.0
    tile: int = 16
    prism_interpolation: int = 1
    projection: str = "finite"


def nyquist_step(optics: ADFOptics) -> float:
    """Largest probe step [Å] that samples an ADF image completely: ``λ / (4 α)``."""
    return electron_wavelength(optics.voltage) / (4e-3 * optics.convergence_angle)


def check_adf(optics: ADFOptics, settings: ADFSettings, *, step: float) -> None:
    """Refuse settings that cannot give a right image, before any work starts.

    Parameters
    ----------
    optics : ADFOptics
    settings : ADFSettings
    step : float
        Probe step (the image's pixel size) [Å].

    Raises
    ------
    InputError
        Naming the value, what was expected and the fix.
    """
    inner, outer = (float(a) for a in optics.detector)
    if not 0 < optics.convergence_angle < inner < outer:
        raise InputError(
            "expected 0 < convergence angle < detector inner angle < outer angle [mrad] "
            f"(annular dark field); got {optics.convergence_angle}, {inner}, {outer}."
        )
    if settings.engine not in _ENGINES:
        raise InputError(f"multislice engine must be one of {_ENGINES}; got {settings.engine!r}.")
    if settings.projection not in _PROJECTIONS:
        raise InputError(
            f"multislice projection must be one of {_PROJECTIONS}; got {settings.projection!r}."
        )
    for name in ("sampling", "slice_thickness", "padding"):
        if not getattr(settings, name) > 0:
            raise InputError(
                f"multislice {name} must be positive [Å]; got {getattr(settings, name)}."
            )
    if int(settings.tile) != settings.tile or settings.tile < 1:
        raise InputError(
            f"multislice tile must be a positive integer [positions]; got {settings.tile}."
        )
    if (
        int(settings.prism_interpolation) != settings.prism_interpolation
        or settings.prism_interpolation < 1
    ):
        raise InputError(
            "multislice prism_interpolation must be a positive integer; "
            f"got {settings.prism_interpolation}."
        )
    wavelength = electron_wavelength(optics.voltage)
    limit = 1e3 * wavelength * _ANTIALIAS / (2.0 * settings.sampling)
    if outer > limit:
        fix = wavelength * _ANTIALIAS / (2e-3 * outer)
        raise InputError(
            f"multislice sampling {settings.sampling} Å keeps scattering up to {limit:.0f} mrad "
            f"at {optics.voltage} kV, below the detector's outer angle {outer} mrad; use a "
            f"sampling of at most {fix:.4f} Å."
        )
    nyquist = nyquist_step(optics)
    if step > nyquist * (1 + 1e-6):
        log.warning(
            "probe step %.3f Å is coarser than the ADF image's Nyquist step %.3f Å "
            "(λ / 4α): the image is undersampled, as a microscope at this pixel size would "
            "record it",
            step,
            nyquist,
        )


def cell_gpts(length: float, sampling: float, multiple: int = 1) -> int:
    """Grid points for a cell: at least ``length / sampling``, a multiple of ``multiple``,
    with no prime factor above 7 (a prime-factor grid is several times slower)."""
    n = int(np.ceil(length / sampling))
    while True:
        if n % multiple == 0:
            m = n
            for p in (2, 3, 5, 7):
                while m % p == 0:
                    m //= p
            if m == 1:
                return n
        n += 1


def _pin_threads() -> None:
    """One thread per task: a task that starts its own pool competes with the others."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def adf_tile(
    positions: np.ndarray,
    symbols: np.ndarray,
    *,
    origin: tuple[float, float],
    shape: tuple[int, int],
    step: float,
    optics: ADFOptics,
    settings: ADFSettings,
    euler: np.ndarray | None = None,
) -> np.ndarray:
    """ADF signal of one tile of probe positions, by multislice.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions [Å]: in the sample frame when ``euler`` is given, else in the
        microscope frame (beam along +z), the sample already rotated to this tilt.
    symbols : ndarray of str, shape (n,)
        Chemical symbols.
    origin : (float, float)
        ``x, y`` of the tile's first probe position [Å].
    shape : (int, int)
        Probe positions ``(rows, cols)`` along ``y, x``; at most ``settings.tile`` each.
    step : float
        Probe step [Å].
    optics, settings
        The microscope and the numerics.
    euler : ndarray of shape (3,), optional
        The tilt [deg] (:mod:`hpcaet.geometry`): the atoms are rotated by it here
        (abTEM's ``tilt=`` is a small beam tilt, not a specimen tilt).

    Returns
    -------
    ndarray of shape (rows, cols)
        Fraction of one probe electron that reaches the detector, float64.
    """
    rows, cols = (int(v) for v in shape)
    if rows > settings.tile or cols > settings.tile or min(rows, cols) < 1:
        raise InputError(
            f"tile shape must be between 1 and {settings.tile} positions per side; got {shape}."
        )
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    if euler is not None:
        positions = positions @ euler_to_matrix(euler).T
    symbols = np.asarray(symbols).astype(str)
    length = settings.tile * step + 2.0 * settings.padding
    corner = np.asarray(origin, dtype=float) - settings.padding
    inside = np.all((positions[:, :2] >= corner) & (positions[:, :2] < corner + length), axis=1)
    if not inside.any():
        return np.zeros((rows, cols))
    _pin_threads()
    abtem = _abtem()
    import ase

    local = positions[inside].copy()
    local[:, :2] -= corner
    local[:, 2] -= local[:, 2].min() - settings.slice_thickness
    depth = float(local[:, 2].max()) + settings.slice_thickness
    atoms = ase.Atoms(list(symbols[inside]), positions=local, cell=[length, length, depth])
    multiple = settings.prism_interpolation if settings.engine == "prism" else 1
    n = cell_gpts(length, settings.sampling, multiple)
    potential = abtem.Potential(
        atoms,
        gpts=(n, n),
        slice_thickness=settings.slice_thickness,
        projection=settings.projection,
    ).build()
    scan = abtem.GridScan(
        start=(settings.padding, settings.padding),
        end=(settings.padding + cols * step, settings.padding + rows * step),
        gpts=(cols, rows),
        endpoint=False,
    )
    signal = adf_scan(potential, scan, optics=optics, settings=settings)
    # abTEM orders the scan axes (x, y); images are [row = y, col = x].
    return np.asarray(signal, dtype=float).reshape(cols, rows).T


def adf_scan(potential, scan, *, optics: ADFOptics, settings: ADFSettings) -> np.ndarray:
    """The annular detector's signal for each probe position of a scan, by abTEM.

    Parameters
    ----------
    potential : abtem potential
        A ``Potential`` (built or not) or ``PotentialArray`` of the cell.
    scan : abtem scan
        The probe positions (``GridScan``, ``CustomScan``), in the cell's frame [Å].
    optics, settings
        The microscope; ``settings.engine`` and ``prism_interpolation`` choose plain
        multislice or PRISM.

    Returns
    -------
    ndarray
        Fraction of one probe electron on the detector, in abTEM's scan order.
    """
    _pin_threads()
    abtem = _abtem()
    detector = abtem.AnnularDetector(inner=optics.detector[0], outer=optics.detector[1])
    energy = 1e3 * optics.voltage
    if settings.engine == "prism":
        smatrix = abtem.SMatrix(
            potential=potential,
            energy=energy,
            semiangle_cutoff=optics.convergence_angle,
            interpolation=settings.prism_interpolation,
        )
        measured = smatrix.scan(scan=scan, detectors=detector)
    else:
        probe = abtem.Probe(energy=energy, semiangle_cutoff=optics.convergence_angle)
        probe.grid.match(potential)
        measured = probe.scan(potential, scan=scan, detectors=detector)
    return np.asarray(measured.compute(scheduler="synchronous", progress_bar=False).array, float)
