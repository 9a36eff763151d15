"""Tilt-angle calibration from tracked metal columns (the paper's equation 1).

Given the image positions ``x_ij`` of metal column ``i`` in image ``j``,
:func:`calibrate_angles` minimises

.. math::

    E = \\sum_{ij} \\left| P R(\\mathbf{e}_j) \\mathbf{r}_i + \\mathbf{s}_j
        - \\mathbf{x}_{ij} \\right|^2

over the 3D positions ``r_i`` [Å], the Euler angles ``e_j`` [deg] and an in-image shift
``s_j`` [Å] per image (the images are not yet aligned), with
:func:`scipy.optimize.least_squares` (trust-region reflective, analytic sparse
Jacobian, a soft-L1 loss against mismatched columns, then one pass without the
outliers), starting from the nominal angles and a flat sheet.

Gauge
-----
A rotation ``G`` of every position together with ``R_j -> R_j G^T``, and a translation
of every position absorbed by the shifts, leave E unchanged: 6 of the unknowns are not
observable. During the fit the reference image's angles stay at their nominal values
and the mean position is held at the origin. Afterwards the sample frame is set to the
*sheet frame*: origin at the centroid of the tracked metals, z along the normal of
their best-fitting plane (on the side of the nominal frame's +z), x along the zigzag
direction of the metal lattice (the bond direction, modulo 60°, nearest to the nominal
frame's x). This is the frame the phantom is built in, except for the tilt of the
best-fitting plane of a rippled sheet (a few tenths of a degree on the paper-scale
phantom), which no image can reveal. :func:`gauge_aligned` removes the gauge for
scoring: it rotates a solution onto the truth by the best global rotation.

References
----------
Tian et al., Methods, "Angle calibration", equation (1); Table S2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from hpcaet.errors import ConvergenceError, InputError
from hpcaet.geometry import euler_to_matrix, matrix_to_euler

__all__ = ["AngleCalibration", "calibrate_angles", "sheet_frame", "gauge_aligned"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AngleCalibration:
    """Result of :func:`calibrate_angles`.

    Attributes
    ----------
    euler : ndarray of shape (n_tilt, 3)
        Calibrated Euler angles in the sheet frame [deg].
    shift : ndarray of shape (n_tilt, 2)
        Image position ``(x, y)`` of the sample origin (centroid of the tracked
        metals) in each image [Å].
    positions : ndarray of shape (n_track, 3)
        3D positions of the tracked metals in the sheet frame [Å].
    residual : ndarray of shape (n_tilt,)
        RMS distance between measured and fitted column positions per image [Å].
    inliers : ndarray of bool, shape (n_tilt, n_track)
        Observations used in the final fit.
    iterations : int
        Function evaluations of the final fit.
    """

    euler: np.ndarray
    shift: np.ndarray
    positions: np.ndarray
    residual: np.ndarray
    inliers: np.ndarray
    iterations: int

    def project(self) -> np.ndarray:
        """Fitted image positions ``(x, y)`` of every column, shape (n_tilt, n_track, 2) [Å]."""
        R = euler_to_matrix(self.euler)[:, :2, :]
        return np.einsum("jab,ib->jia", R, self.positions) + self.shift[:, None, :]


def calibrate_angles(
    observed: ArrayLike,
    euler: ArrayLike,
    *,
    reference: int = 0,
    lattice_constant: float | None = None,
    f_scale: float = 0.1,
    outlier: float = 5.0,
    max_nfev: int = 200,
) -> AngleCalibration:
    """Calibrate the Euler angles of a tilt series from tracked columns.

    Parameters
    ----------
    observed : array_like of shape (n_tilt, n_track, 2)
        Image positions ``(x, y)`` [Å] of each tracked column, in the geometry
        convention of :mod:`hpcaet.geometry`; NaN where a column was not seen.
    euler : array_like of shape (n_tilt, 3)
        Nominal Euler angles [deg], the starting point.
    reference : int, default 0
        Image whose angles are held during the fit (best: the least tilted one, whose
        positions start the 3D model).
    lattice_constant : float, optional
        Metal–metal distance [Å], for the in-plane axis of the sheet frame; without it
        the in-plane orientation of the nominal frame is kept.
    f_scale : float, default 0.1
        Scale of the soft-L1 loss [Å]: residuals well above it count linearly.
    outlier : float, default 5.0
        Observations with a residual above ``outlier`` robust standard deviations are
        dropped for the final fit.
    max_nfev : int, default 200
        Budget of function evaluations per fit.

    Returns
    -------
    AngleCalibration

    Raises
    ------
    InputError
        Wrong shapes, fewer than two images, a missing angle, or a column seen in
        fewer than two images.
    ConvergenceError
        When the optimiser fails.
    """
    x = np.asarray(observed, dtype=float)
    e0 = np.asarray(euler, dtype=float)
    if x.ndim != 3 or x.shape[2] != 2 or x.shape[0] < 2:
        raise InputError(f"observed must have shape (n_tilt >= 2, n_track, 2) in Å; got {x.shape}.")
    if e0.shape != (x.shape[0], 3):
        raise InputError(
            f"need one Euler triple per image: {x.shape[0]} images but euler has shape "
            f"{e0.shape}. Give the nominal (z, y, x) angles of every image."
        )
    if not np.all(np.isfinite(e0)):
        bad = np.unique(np.argwhere(~np.isfinite(e0))[:, 0]).tolist()
        raise InputError(f"the nominal angles of image(s) {bad} are missing (NaN); give them.")
    seen = np.isfinite(x).all(axis=2)
    if not seen[reference].all():
        raise InputError(f"every column must be seen in the reference image {reference}.")
    if (seen.sum(axis=0) < 2).any():
        raise InputError("every column must be seen in at least two images.")
    n_tilt, n_atom = seen.shape
    R0 = euler_to_matrix(e0)
    # start: the reference positions on the plane z = 0 of the nominal frame.
    r0 = np.column_stack([x[reference] @ np.linalg.inv(R0[reference, :2, :2]).T, np.zeros(n_atom)])
    r0 -= r0.mean(axis=0)
    s0 = np.array([np.nanmean(x[j] - r0 @ R0[j, :2, :].T, axis=0) for j in range(n_tilt)])
    problem = _Problem(x, seen, reference, e0[reference])
    p0 = problem.pack(np.deg2rad(e0), s0, r0)
    fit = _solve(problem, p0, seen, loss="soft_l1", f_scale=f_scale, max_nfev=max_nfev)
    angles, shifts, positions = problem.unpack(fit.x)
    resid = problem.residual_vectors(fit.x)
    sigma = 1.4826 * np.median(np.hypot(*resid[seen].T)) + 1e-12
    inliers = seen & (np.hypot(resid[..., 0], resid[..., 1]) < outlier * sigma)
    inliers[reference] = seen[reference]  # keep the reference complete
    final = _Problem(x, inliers, reference, e0[reference])
    fit = _solve(final, fit.x, inliers, loss="linear", f_scale=f_scale, max_nfev=max_nfev)
    angles, shifts, positions = final.unpack(fit.x)
    resid = final.residual_vectors(fit.x)
    per_image = np.array(
        [
            np.sqrt(np.mean(np.sum(resid[j, inliers[j]] ** 2, axis=1)))
            if inliers[j].any()
            else np.nan
            for j in range(n_tilt)
        ]
    )
    R = euler_to_matrix(np.rad2deg(angles))
    G, centre = sheet_frame(positions, lattice_constant=lattice_constant)
    positions = (positions - centre) @ G.T
    shifts = shifts + np.einsum("jab,b->ja", R[:, :2, :], centre)
    euler_out = matrix_to_euler(R @ G.T)
    log.info(
        "angle calibration: %d columns, %d observations (%d outliers), residual %.3f Å RMS",
        n_atom,
        int(seen.sum()),
        int((seen & ~inliers).sum()),
        float(np.sqrt(np.nanmean(per_image**2))),
    )
    return AngleCalibration(
        euler=euler_out,
        shift=shifts,
        positions=positions,
        residual=per_image,
        inliers=inliers,
        iterations=int(fit.nfev),
    )


def sheet_frame(
    positions: ArrayLike, *, lattice_constant: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and origin of the sheet frame of a set of metal positions.

    Parameters
    ----------
    positions : array_like of shape (n, 3)
        Metal positions in the current frame [Å].
    lattice_constant : float, optional
        Metal–metal distance [Å]; the x axis follows the zigzag bonds when given.

    Returns
    -------
    G : ndarray of shape (3, 3)
        Rows are the new x, y, z axes in current coordinates (``r_new = G (r - c)``).
    centre : ndarray of shape (3,)
        Centroid ``c`` [Å].
    """
    r = np.asarray(positions, dtype=float)
    centre = r.mean(axis=0)
    _, _, vt = np.linalg.svd(r - centre, full_matrices=False)
    normal = vt[2] * np.sign(vt[2, 2] or 1.0)
    ex = np.array([1.0, 0.0, 0.0]) - normal[0] * normal
    ex /= np.linalg.norm(ex)
    ey = np.cross(normal, ex)
    if lattice_constant:
        local = (r - centre) @ np.column_stack([ex, ey])
        pairs = cKDTree(local).query_pairs(1.2 * lattice_constant, output_type="ndarray")
        v = local[pairs[:, 1]] - local[pairs[:, 0]]
        v = v[np.hypot(*v.T) > 0.8 * lattice_constant]
        if len(v):
            alpha = np.angle(np.exp(6j * np.arctan2(v[:, 1], v[:, 0])).mean()) / 6
            ex, ey = (
                np.cos(alpha) * ex + np.sin(alpha) * ey,
                -np.sin(alpha) * ex + np.cos(alpha) * ey,
            )
    return np.vstack([ex, ey, normal]), centre


def gauge_aligned(euler: ArrayLike, truth: ArrayLike) -> np.ndarray:
    """``euler`` rotated by the global rotation that best matches ``truth``.

    Solves ``min_G sum_j ||R_j G - T_j||_F`` (orthogonal Procrustes) and returns the
    Euler angles of ``R_j G`` [deg], to score a calibration modulo its gauge.
    """
    R = euler_to_matrix(np.asarray(euler, float))
    T = euler_to_matrix(np.asarray(truth, float))
    u, _, vt = np.linalg.svd(np.einsum("jab,jac->bc", R, T))
    d = np.sign(np.linalg.det(u @ vt))
    G = u @ np.diag([1.0, 1.0, d]) @ vt
    return matrix_to_euler(R @ G)


class _Problem:
    """Residuals and sparse Jacobian of equation (1); parameters in radians and Å."""

    def __init__(self, x, seen, reference, reference_euler):
        self.x = x
        self.n_tilt, self.n_atom = seen.shape
        self.ref = reference
        self.ref_angles = np.deg2rad(reference_euler)
        self.free = np.array([j for j in range(self.n_tilt) if j != reference])
        self.jj, self.ii = np.nonzero(seen)
        self.target = x[self.jj, self.ii]
        self.n_obs = len(self.jj)
        self.weight = np.sqrt(self.n_obs)  # of the centroid constraint

    def pack(self, angles, shifts, positions):
        return np.concatenate([angles[self.free].ravel(), shifts.ravel(), positions.ravel()])

    def unpack(self, p):
        nf = len(self.free)
        angles = np.empty((self.n_tilt, 3))
        angles[self.free] = p[: 3 * nf].reshape(nf, 3)
        angles[self.ref] = self.ref_angles
        shifts = p[3 * nf : 3 * nf + 2 * self.n_tilt].reshape(self.n_tilt, 2)
        positions = p[3 * nf + 2 * self.n_tilt :].reshape(self.n_atom, 3)
        return angles, shifts, positions

    def residual_vectors(self, p):
        angles, shifts, positions = self.unpack(p)
        R = _rotations(angles)[0][:, :2, :]
        return np.einsum("jab,ib->jia", R, positions) + shifts[:, None, :] - self.x

    def fun(self, p):
        angles, shifts, positions = self.unpack(p)
        R = _rotations(angles)[0][self.jj, :2, :]
        res = np.einsum("nab,nb->na", R, positions[self.ii]) + shifts[self.jj] - self.target
        return np.concatenate([res.ravel(), self.weight * positions.mean(axis=0)])

    def jac(self, p):
        angles, _, positions = self.unpack(p)
        R, dR = _rotations(angles)
        nf = len(self.free)
        col_of_tilt = np.full(self.n_tilt, -1)
        col_of_tilt[self.free] = np.arange(nf)
        rows, cols, vals = [], [], []
        obs_rows = 2 * np.arange(self.n_obs)
        r = positions[self.ii]
        for a in range(2):  # x and y residual of each observation
            row = obs_rows + a
            # angles of free images
            fc = col_of_tilt[self.jj]
            has = fc >= 0
            for k in range(3):
                rows.append(row[has])
                cols.append(3 * fc[has] + k)
                vals.append(np.einsum("nb,nb->n", dR[self.jj[has], k, a, :], r[has]))
            # shifts
            rows.append(row)
            cols.append(3 * nf + 2 * self.jj + a)
            vals.append(np.ones(self.n_obs))
            # positions
            for b in range(3):
                rows.append(row)
                cols.append(3 * nf + 2 * self.n_tilt + 3 * self.ii + b)
                vals.append(R[self.jj, a, b])
        base = 2 * self.n_obs
        for b in range(3):  # centroid constraint
            rows.append(np.full(self.n_atom, base + b))
            cols.append(3 * nf + 2 * self.n_tilt + 3 * np.arange(self.n_atom) + b)
            vals.append(np.full(self.n_atom, self.weight / self.n_atom))
        shape = (base + 3, 3 * nf + 2 * self.n_tilt + 3 * self.n_atom)
        return sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
        )


def _rotations(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R = Rz Ry Rx and its derivatives with respect to (phi, theta, psi) [rad]."""
    f, t, s = angles[:, 0], angles[:, 1], angles[:, 2]
    z, o = np.zeros_like(f), np.ones_like(f)

    def rz(a, d=False):
        c, si = np.cos(a), np.sin(a)
        if d:
            return np.stack([[-si, -c, z], [c, -si, z], [z, z, z]]).transpose(2, 0, 1)
        return np.stack([[c, -si, z], [si, c, z], [z, z, o]]).transpose(2, 0, 1)

    def ry(a, d=False):
        c, si = np.cos(a), np.sin(a)
        if d:
            return np.stack([[-si, z, c], [z, z, z], [-c, z, -si]]).transpose(2, 0, 1)
        return np.stack([[c, z, si], [z, o, z], [-si, z, c]]).transpose(2, 0, 1)

    def rx(a, d=False):
        c, si = np.cos(a), np.sin(a)
        if d:
            return np.stack([[z, z, z], [z, -si, -c], [z, c, -si]]).transpose(2, 0, 1)
        return np.stack([[o, z, z], [z, c, -si], [z, si, c]]).transpose(2, 0, 1)

    Rz, Ry, Rx = rz(f), ry(t), rx(s)
    R = Rz @ Ry @ Rx
    dR = np.stack([rz(f, True) @ Ry @ Rx, Rz @ ry(t, True) @ Rx, Rz @ Ry @ rx(s, True)], axis=1)
    return R, dR


def _solve(problem: _Problem, p0, seen, *, loss, f_scale, max_nfev):
    try:
        fit = least_squares(
            problem.fun,
            p0,
            jac=problem.jac,
            method="trf",
            loss=loss,
            f_scale=f_scale,
            x_scale="jac",
            max_nfev=max_nfev,
            tr_solver="lsmr",
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise ConvergenceError(f"angle calibration failed: {exc}") from exc
    if not np.all(np.isfinite(fit.x)):
        raise ConvergenceError(
            f"angle calibration diverged after {fit.nfev} evaluations with {int(seen.sum())} "
            "observations; check the tracked columns and the nominal angles."
        )
    return fit
