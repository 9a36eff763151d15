"""Atomic-scale ripples: roughness in strips along the interface and a sinusoid fit.

Following Tian et al. (Fig. 1D–F), the field is cut into strips parallel to the
interface (equal ranges of the signed distance to it) and the roughness of a strip is
the standard deviation of the z coordinates of its atoms; the out-of-plane ripple
along the interface is the fit of ``z = c + A cos(2 pi t / lambda + phase)`` to the
heights of the metal atoms next to the interface, ``t`` the arc length along it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from hpcaet.errors import ConvergenceError, InputError

__all__ = ["strip_roughness", "fit_ripple", "RippleFit", "detrend_plane"]

log = logging.getLogger(__name__)


def detrend_plane(positions: np.ndarray, *, mask: np.ndarray | None = None) -> np.ndarray:
    """Heights above the least-squares plane ``z = c0 + c1 x + c2 y``.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Positions [Å].
    mask : ndarray of bool, shape (n,), optional
        Atoms the plane is fitted to (e.g. the metals). Default: all.

    Returns
    -------
    ndarray of shape (n,)
        z minus the plane, for every atom [Å]. A sample tilt is arbitrary in a
        reconstruction, so roughness is measured about the mean plane.
    """
    pos = np.asarray(positions, dtype=float)
    sel = np.ones(len(pos), bool) if mask is None else np.asarray(mask, bool)
    if sel.sum() < 3:
        raise InputError(f"a plane needs at least 3 atoms; got {int(sel.sum())}.")
    design = np.column_stack([np.ones(len(pos)), pos[:, 0], pos[:, 1]])
    coef, *_ = np.linalg.lstsq(design[sel], pos[sel, 2], rcond=None)
    return pos[:, 2] - design @ coef


def strip_roughness(
    height: np.ndarray,
    distance: np.ndarray,
    *,
    n_strips: int = 9,
    extent: tuple[float, float] | None = None,
    min_atoms: int = 3,
) -> dict[str, np.ndarray]:
    """Standard deviation of the height in strips parallel to the interface.

    Parameters
    ----------
    height : ndarray of shape (n,)
        Height of each atom [Å] (e.g. :func:`detrend_plane` of the metals).
    distance : ndarray of shape (n,)
        Signed distance of each atom to the interface [Å], > 0 on the WSe2 side.
    n_strips : int
        Number of strips of equal width.
    extent : (float, float), optional
        Range of signed distance the strips cover [Å]. Default: the range of the atoms
        given.
    min_atoms : int
        A strip with fewer atoms than this has roughness NaN (it is reported, not
        dropped, so strips stay aligned with their distances).

    Returns
    -------
    dict
        ``edges`` (n_strips + 1,), ``centre`` (n_strips,) [Å], ``roughness``
        (n_strips,) [Å], ``count`` (n_strips,) atoms per strip.

    Raises
    ------
    InputError
        Mismatched shapes, ``n_strips < 1``, an empty extent, or no strip with
        ``min_atoms`` atoms.
    """
    h = np.asarray(height, dtype=float)
    d = np.asarray(distance, dtype=float)
    if h.shape != d.shape or h.ndim != 1:
        raise InputError(f"height and distance must be 1D of one shape; got {h.shape}, {d.shape}.")
    if n_strips < 1 or min_atoms < 2:
        raise InputError(f"n_strips must be >= 1 and min_atoms >= 2; got {n_strips}, {min_atoms}.")
    lo, hi = (d.min(), d.max()) if extent is None else extent
    if not hi > lo:
        raise InputError(f"the strips' extent must have hi > lo; got ({lo}, {hi}) Å.")
    edges = np.linspace(lo, hi, n_strips + 1)
    which = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, n_strips - 1)
    inside = (d >= lo) & (d <= hi)
    count = np.bincount(which[inside], minlength=n_strips)
    rough = np.full(n_strips, np.nan)
    for k in range(n_strips):
        sel = inside & (which == k)
        if count[k] >= min_atoms:
            rough[k] = np.std(h[sel])
    if np.all(np.isnan(rough)):
        raise InputError(
            f"no strip has {min_atoms} atoms or more ({len(h)} atoms in {n_strips} strips "
            f"over {lo:.3g} .. {hi:.3g} Å); use fewer strips."
        )
    thin = np.flatnonzero(count < min_atoms)
    if len(thin):
        log.warning(
            "strips %s hold fewer than %d atoms; their roughness is NaN", thin.tolist(), min_atoms
        )
    return {
        "edges": edges,
        "centre": 0.5 * (edges[1:] + edges[:-1]),
        "roughness": rough,
        "count": count,
    }


@dataclass(frozen=True)
class RippleFit:
    """A sinusoid ``z = offset + amplitude cos(2 pi t / wavelength + phase)``.

    Attributes
    ----------
    amplitude, wavelength, offset : float
        [Å]; the amplitude is >= 0.
    phase : float
        [rad].
    rms : float
        Root-mean-square residual of the fit [Å].
    n_atoms : int
        Atoms the fit used.
    """

    amplitude: float
    wavelength: float
    phase: float
    offset: float
    rms: float
    n_atoms: int

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Height of the fitted ripple at arc length ``t`` [Å]."""
        return self.offset + self.amplitude * np.cos(
            2 * np.pi * np.asarray(t) / self.wavelength + self.phase
        )


def fit_ripple(
    arc: np.ndarray,
    height: np.ndarray,
    *,
    min_wavelength: float | None = None,
    max_wavelength: float | None = None,
) -> RippleFit:
    """Fit a sinusoid to heights along the interface.

    Parameters
    ----------
    arc : ndarray of shape (n,)
        Arc length of each atom along the interface [Å].
    height : ndarray of shape (n,)
        Height of each atom [Å].
    min_wavelength, max_wavelength : float, optional
        Wavelengths searched [Å]. Default: from four times the median spacing of the
        atoms along the arc to four times the length covered (a longer wavelength is a
        tilt, not a ripple, over the field).

    Returns
    -------
    RippleFit

    Raises
    ------
    InputError
        Fewer than 6 atoms, or an arc shorter than ``min_wavelength``.
    ConvergenceError
        The nonlinear refinement fails.

    Notes
    -----
    For each trial wavelength on a grid the model is linear in (offset, cos, sin), so
    the best wavelength of the grid is found by linear least squares; it is then
    refined together with the other parameters (``scipy.optimize.least_squares``).
    """
    t = np.asarray(arc, dtype=float)
    z = np.asarray(height, dtype=float)
    if t.shape != z.shape or t.ndim != 1 or len(t) < 6:
        raise InputError(
            f"fit_ripple needs arc and height of one 1D shape with >= 6 atoms; got {t.shape} "
            f"and {z.shape}."
        )
    span = float(t.max() - t.min())
    step = float(np.median(np.diff(np.sort(t)))) if len(t) > 1 else 0.0
    lo = 4 * max(step, 1e-3) if min_wavelength is None else float(min_wavelength)
    hi = 4 * span if max_wavelength is None else float(max_wavelength)
    if not 0 < lo < hi or span <= 0:
        raise InputError(
            f"the wavelengths searched must satisfy 0 < min < max; got {lo:.3g} .. {hi:.3g} Å "
            f"for an interface covered over {span:.3g} Å."
        )
    trials = np.geomspace(lo, hi, 400)
    best = None
    for lam in trials:
        k = 2 * np.pi / lam
        design = np.column_stack([np.ones_like(t), np.cos(k * t), np.sin(k * t)])
        coef, *_ = np.linalg.lstsq(design, z, rcond=None)
        cost = float(np.sum((design @ coef - z) ** 2))
        if best is None or cost < best[0]:
            best = (cost, lam, coef)
    _, lam0, (c0, ca, cb) = best
    start = [c0, np.hypot(ca, cb), lam0, np.arctan2(-cb, ca)]

    def residual(p):
        return p[0] + p[1] * np.cos(2 * np.pi * t / p[2] + p[3]) - z

    result = least_squares(
        residual, start, bounds=([-np.inf, 0, lo, -np.inf], [np.inf, np.inf, hi, np.inf])
    )
    if not result.success:
        raise ConvergenceError(f"the ripple fit did not converge: {result.message}")
    c, amp, lam, phase = result.x
    rms = float(np.sqrt(np.mean(result.fun**2)))
    log.info(
        "ripple: amplitude %.3f Å, wavelength %.2f Å (rms %.3f Å, %d atoms)", amp, lam, rms, len(t)
    )
    return RippleFit(
        amplitude=float(amp),
        wavelength=float(lam),
        phase=float(np.mod(phase + np.pi, 2 * np.pi) - np.pi),
        offset=float(c),
        rms=rms,
        n_atoms=len(t),
    )
