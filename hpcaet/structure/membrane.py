"""The sheet as a membrane: its slope, the ripple's own strain and the tangent frame.

A monolayer is a membrane ``z = w(x, y)`` above its mean plane. To second order in the
slope its membrane (Green–Lagrange) strain splits as in the Föppl–von Kármán theory of
plates,

``e_ab = 1/2 (d_a u_b + d_b u_a + d_a u_c d_b u_c) + 1/2 d_a w d_b w``    (a, b = x, y),

an *in-plane* part, carried by the in-plane displacement ``u`` (the strain of the
lattice's projection on the mean plane: lattice misfit, dislocations), and the
*ripple* part ``1/2 d_a w d_b w``, the stretch a sheet gets when it is lifted into
ripples without being pulled in. The finite (Euler–Almansi) strain of
:func:`~hpcaet.structure.strain.strain_tensor` is the total; :func:`ripple_strain`
gives the ripple part from the sheet's slope, and the difference is the in-plane part.
A ripple of constant arc length has total ``0`` and in-plane part
``-1/2 d_a w d_b w`` (foreshortening); a ripple lifted without pulling in has in-plane
part ``0`` and total ``+1/2 d_a w d_b w``.

:func:`tangent_frame` rotates a strain tensor into the sheet's local frame (two
tangents and the normal), where ``e_t1t1``, ``e_t2t2`` are stretches along the
surface; the in-plane part is taken from these (tangent-frame total minus the ripple
part), so that a shear of the sheet's thickness (chalcogen layers sliding, which puts
``-1/2 w_a w_b`` into the lab components next to ``e_az = w_a / 2``) does not enter it.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from hpcaet.errors import InputError

__all__ = ["sheet_slope", "ripple_strain", "tangent_frame"]

_MIN_NEIGHBOURS = 6


def sheet_slope(
    surface: np.ndarray,
    points: np.ndarray,
    *,
    sigma: float,
    cutoff: float = 3.0,
    detrend: bool = True,
) -> np.ndarray:
    """Slope of a sheet, by Gaussian-weighted local linear fits of its height.

    Parameters
    ----------
    surface : ndarray of shape (m, 3)
        Atoms that define the sheet, e.g. the metals (x, y, z) [Å].
    points : ndarray of shape (n, 2) or (n, 3)
        Where to evaluate (x, y) [Å].
    sigma : float
        Gaussian width of the fit [Å] (the strain's smoothing, 3.16 Å, keeps the
        ripple part on the same footing as the smoothed total strain).
    cutoff : float
        Surface atoms farther than ``cutoff * sigma`` do not enter.
    detrend : bool
        Take heights above the surface atoms' least-squares plane (the slope of the
        ripple ``w``, 0 for a uniformly tilted flat sheet); False: the slope in the lab
        frame (for :func:`tangent_frame`).

    Returns
    -------
    ndarray of shape (n, 2)
        ``(dw/dx, dw/dy)`` [1] at each point; NaN where fewer than six surface atoms
        lie within the cutoff.

    Raises
    ------
    InputError
        Wrong shapes, fewer than three surface atoms or a non-positive sigma.

    Notes
    -----
    At a point the fit minimises ``sum_i g_i (w_i - c - s . (r_i - r))^2`` with
    ``g_i = exp(-|r_i - r|^2 / 2 sigma^2)``; it is exact for a plane and, unlike a
    plain Gaussian average of finite differences, unbiased for a linear slope at the
    sheet's edges.
    """
    surf = np.asarray(surface, dtype=float)
    pts = np.asarray(points, dtype=float)
    if surf.ndim != 2 or surf.shape[1] != 3 or len(surf) < 3:
        raise InputError(
            f"sheet_slope needs at least 3 surface atoms of shape (m, 3); got {surf.shape}."
        )
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise InputError(f"points must have shape (n, 2) or (n, 3); got {pts.shape}.")
    if not (sigma > 0 and cutoff > 0):
        raise InputError(f"sigma and cutoff must be positive; got {sigma} Å and {cutoff}.")
    design = np.column_stack([np.ones(len(surf)), surf[:, :2]])
    coef, *_ = np.linalg.lstsq(design, surf[:, 2], rcond=None)
    height = surf[:, 2] - design @ coef if detrend else surf[:, 2]
    tree = cKDTree(surf[:, :2])
    out = np.full((len(pts), 2), np.nan)
    for k, near in enumerate(tree.query_ball_point(pts[:, :2], cutoff * sigma)):
        if len(near) < _MIN_NEIGHBOURS:
            continue
        d = surf[near, :2] - pts[k, :2]
        g = np.sqrt(np.exp(-np.sum(d**2, axis=1) / (2 * sigma**2)))
        a = np.column_stack([np.ones(len(near)), d]) * g[:, None]
        sol, *_ = np.linalg.lstsq(a, height[near] * g, rcond=None)
        out[k] = sol[1:]
    return out


def ripple_strain(slope: np.ndarray) -> np.ndarray:
    """The ripple part ``1/2 d_a w d_b w`` of the membrane strain.

    Parameters
    ----------
    slope : ndarray of shape (n, 2)
        ``(dw/dx, dw/dy)`` [1] (:func:`sheet_slope`).

    Returns
    -------
    ndarray of shape (n, 3)
        Components xx, yy, xy [1] (tensor shear).
    """
    s = np.asarray(slope, dtype=float)
    if s.ndim != 2 or s.shape[1] != 2:
        raise InputError(f"slope must have shape (n, 2); got {s.shape}.")
    return 0.5 * np.column_stack([s[:, 0] ** 2, s[:, 1] ** 2, s[:, 0] * s[:, 1]])


def tangent_frame(strain: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Rotate strain tensors into the local frame of the sheet.

    Parameters
    ----------
    strain : ndarray of shape (n, 6)
        Components xx, yy, zz, xy, xz, yz in the lab frame [1].
    slope : ndarray of shape (n, 2)
        ``(dw/dx, dw/dy)`` of the sheet at the same points [1].

    Returns
    -------
    ndarray of shape (n, 6)
        Components t1t1, t2t2, nn, t1t2, t1n, t2n [1], where ``n`` is the unit normal
        ``(-dw/dx, -dw/dy, 1) / norm``, ``t1`` the unit tangent in the x-z plane
        (``(1, 0, dw/dx) / norm``) and ``t2 = n x t1``. For a flat sheet the frame is
        the lab frame.
    """
    e = np.asarray(strain, dtype=float)
    s = np.asarray(slope, dtype=float)
    if e.ndim != 2 or e.shape[1] != 6 or s.shape != (len(e), 2):
        raise InputError(
            f"tangent_frame needs strain (n, 6) and slope (n, 2); got {e.shape}, {s.shape}."
        )
    idx = ((0, 3, 4), (3, 1, 5), (4, 5, 2))
    tensor = e[:, idx]  # (n, 3, 3)
    normal = np.column_stack([-s[:, 0], -s[:, 1], np.ones(len(s))])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    t1 = np.column_stack([np.ones(len(s)), np.zeros(len(s)), s[:, 0]])
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normal, t1)
    q = np.stack([t1, t2, normal], axis=2)  # columns are the frame vectors
    local = np.einsum("nia,nij,njb->nab", q, tensor, q)
    return local[:, [0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]
