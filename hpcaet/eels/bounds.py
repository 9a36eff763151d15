"""Cramér–Rao lower bound of fitted peak centres under Poisson noise.

For counts ``y_k ~ Poisson(λ_k(θ))`` the Fisher information is
``F = Jᵀ diag(1/λ) J`` with ``J = ∂λ/∂θ``; any unbiased estimator of θ has a covariance
of at least ``F⁻¹``. Here ``λ`` is the expected spectrum (a group sum, say) and θ holds
the centre, σ and height of every Gaussian peak (all free) and, optionally, the
amplitude and exponent of a power-law background fitted with them. The bound of a
centre is large where a neighbour lies within about one FWHM: the derivatives of two
such Gaussians are nearly collinear, so the data barely tell their centres apart.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.eels._checks import window_mask
from hpcaet.errors import InputError

__all__ = ["centre_crlb"]


def centre_crlb(
    energy: ArrayLike,
    expected: ArrayLike,
    centre: ArrayLike,
    width: ArrayLike,
    height: ArrayLike,
    *,
    power_law: tuple[float, float] | None = None,
    fit_range: tuple[float, float] = (17.0, 70.0),
) -> np.ndarray:
    """Cramér–Rao bound of the peak centres of a Poisson spectrum, every parameter free.

    Parameters
    ----------
    energy : array_like of shape (n_energy,)
        Energy axis [meV].
    expected : array_like of shape (n_energy,)
        Expected counts λ of the spectrum (all of its signal and background) [counts];
        for a group sum, the sum of its members' expectations.
    centre, width, height : array_like of shape (n_peaks,)
        The Gaussians' centres [meV], σ [meV] and heights in ``expected`` [counts].
    power_law : (float, float), optional
        ``(A, r)`` of a background ``A · E^-r`` whose two parameters are free too;
        None treats the background as known.
    fit_range : (float, float)
        Channels used [meV].

    Returns
    -------
    ndarray of shape (n_peaks,)
        Smallest standard deviation of each centre of an unbiased estimator [meV]; inf
        where the Fisher information is singular.

    Raises
    ------
    InputError
        Shapes that disagree, non-positive expectations in the range, non-positive widths.

    Examples
    --------
    An isolated Gaussian of σ = 2.4 meV and height 100 counts on a flat 100 counts, on
    0.44-meV channels: ``sqrt(λ · 2σΔ/√π) / h`` ≈ 0.11 meV (the peak adds to λ).

    >>> e = np.arange(0, 60, 0.44)
    >>> lam = 100 + 100 * np.exp(-0.5 * ((e - 30) / 2.4) ** 2)
    >>> float(np.round(centre_crlb(e, lam, [30], [2.4], [100], fit_range=(5, 55))[0], 2))
    0.13
    """
    energy = np.asarray(energy, dtype=float)
    lam = np.asarray(expected, dtype=float)
    c, s, h = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (centre, width, height))
    if lam.shape != energy.shape or energy.ndim != 1:
        raise InputError(
            f"expected must be 1D with the shape of energy {energy.shape}; got {lam.shape}."
        )
    if not (c.shape == s.shape == h.shape and c.ndim == 1):
        raise InputError(
            f"centre, width and height must be 1D of one length; got {c.shape}, {s.shape}, "
            f"{h.shape}."
        )
    if np.any(~(s > 0)):
        raise InputError(f"widths must be positive; got {s.tolist()} meV.")
    mask = window_mask(energy, fit_range, name="CRLB range")
    e, lam = energy[mask], lam[mask]
    if np.any(~(lam > 0)):
        raise InputError(
            f"expected counts must be positive in {list(fit_range)} meV; got a minimum of "
            f"{lam.min()!r}."
        )
    u = (e[None, :] - c[:, None]) / s[:, None]
    g = h[:, None] * np.exp(-0.5 * u**2)
    cols = [g * u / s[:, None], g * u**2 / s[:, None], np.exp(-0.5 * u**2)]
    jac = np.stack(cols, axis=1).reshape(3 * c.size, e.size)
    if power_law is not None:
        if e[0] <= 0:
            raise InputError(
                f"a power law needs positive energies; the range {list(fit_range)} meV "
                "starts at or below 0."
            )
        b = power_law[0] * e ** -power_law[1]
        jac = np.vstack([jac, b, -b * np.log(e)])
    fisher = (jac / lam[None, :]) @ jac.T
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        return np.full(c.size, np.inf)
    var = np.diag(cov)[: 3 * c.size : 3]
    return np.sqrt(np.where(var > 0, var, np.inf))
