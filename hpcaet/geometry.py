"""The geometry convention of hpcaet: Euler angles, rotations and projections.

Every projector, reconstructor, simulator and calibrator in the package goes through
this module, so that a tilt angle means the same thing everywhere.

Convention
----------
* Frames. The *sample frame* is fixed to the specimen: the monolayer lies in its
  x-y plane, z is its normal, the origin is the rotation centre. The *microscope
  frame* has the beam along +z; an image shows the microscope x-y plane.
* Rotation. A tilt is the active rotation ``r_mic = R @ r_sample``.
* Euler angles. Each image carries three angles ``(phi, theta, psi)`` about the
  microscope Z, Y and X axes, in this order, as in the paper's Table S2 (columns Z,
  Y, X), and ``R = Rz(phi) @ Ry(theta) @ Rx(psi)``: the rotation about X acts
  first, then Y, then Z. All rotations are right-handed. Angles are in degrees at
  every public interface.
* Projection. A point projects to the image position ``(x, y) = (r_mic[0], r_mic[1])``
  in Å; the projection of the origin sits on pixel ``(ny // 2, nx // 2)`` (the FFT
  centre), so pixel ``(row, col)`` has its centre at
  ``x = (col - nx // 2) * pixel_size`` and ``y = (row - ny // 2) * pixel_size``.
  Volumes use the same rule along z, y and x.
* Stage. A double-tilt holder reports ``alpha`` (goniometer, about ``[0, -1, 0]``)
  and ``beta`` (holder, about ``[-1, 0, 0]``), the axes of Table S2. The holder axis
  turns with the goniometer, so ``R_stage = R([0,-1,0], alpha) @ R([-1,0,0], beta)``.

Arrays of points are ``(..., 3)`` in ``x, y, z`` order; image positions are
``(..., 2)`` in ``x, y`` order; pixel indices are ``(..., 2)`` in ``row, col`` order
(arrays are indexed ``[y, x]``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hpcaet.errors import InputError

__all__ = [
    "EULER_AXES",
    "euler_to_matrix",
    "matrix_to_euler",
    "axis_angle_matrix",
    "stage_to_euler",
    "compose_euler",
    "invert_euler",
    "project_points",
    "position_to_pixel",
    "pixel_to_position",
    "grid_coordinates",
    "EULER_CONVENTIONS",
    "convert_euler",
]

#: Names of the three Euler angles, in the order they are stored (Table S2: Z, Y, X).
EULER_AXES = ("z", "y", "x")


def _as_angles(euler: ArrayLike) -> np.ndarray:
    angles = np.asarray(euler, dtype=float)
    if angles.shape[-1:] != (3,):
        raise InputError(
            f"Euler angles must have a last axis of length 3 (phi_z, theta_y, psi_x) in "
            f"degrees; got shape {angles.shape}. Pass one triple per image."
        )
    if not np.all(np.isfinite(angles)):
        raise InputError(f"Euler angles must be finite; got {angles.tolist()}.")
    return angles


def euler_to_matrix(euler: ArrayLike) -> np.ndarray:
    """Rotation matrices ``Rz(phi) @ Ry(theta) @ Rx(psi)`` from Euler angles.

    Parameters
    ----------
    euler : array_like of shape (..., 3)
        Angles ``(phi, theta, psi)`` about Z, Y and X [degrees].

    Returns
    -------
    ndarray of shape (..., 3, 3)
        Active rotation matrices, sample frame to microscope frame.

    Examples
    --------
    >>> import numpy as np
    >>> R = euler_to_matrix([90.0, 0.0, 0.0])
    >>> np.round(R @ [1.0, 0.0, 0.0], 12)
    array([0., 1., 0.])
    """
    phi, theta, psi = np.moveaxis(np.deg2rad(_as_angles(euler)), -1, 0)
    cf, sf = np.cos(phi), np.sin(phi)
    ct, st = np.cos(theta), np.sin(theta)
    cp, sp = np.cos(psi), np.sin(psi)
    R = np.empty(phi.shape + (3, 3))
    R[..., 0, 0] = cf * ct
    R[..., 0, 1] = cf * st * sp - sf * cp
    R[..., 0, 2] = cf * st * cp + sf * sp
    R[..., 1, 0] = sf * ct
    R[..., 1, 1] = sf * st * sp + cf * cp
    R[..., 1, 2] = sf * st * cp - cf * sp
    R[..., 2, 0] = -st
    R[..., 2, 1] = ct * sp
    R[..., 2, 2] = ct * cp
    return R


def matrix_to_euler(matrix: ArrayLike) -> np.ndarray:
    """Euler angles ``(phi, theta, psi)`` [degrees] of rotation matrices.

    The inverse of :func:`euler_to_matrix` on ``-90 < theta < 90``; at gimbal lock
    (``|theta| = 90``) ``psi`` is set to zero.

    Parameters
    ----------
    matrix : array_like of shape (..., 3, 3)
        Proper rotation matrices.

    Returns
    -------
    ndarray of shape (..., 3)
    """
    R = np.asarray(matrix, dtype=float)
    if R.shape[-2:] != (3, 3):
        raise InputError(f"rotation matrices must have shape (..., 3, 3); got {R.shape}.")
    det = np.linalg.det(R)
    orth = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max(axis=(-2, -1))
    if np.any(np.abs(det - 1) > 1e-6) or np.any(orth > 1e-6):
        raise InputError(
            "matrix_to_euler needs proper rotations (orthonormal, determinant +1); got "
            f"determinant(s) {np.atleast_1d(det)[:4]} and orthogonality error up to "
            f"{float(np.max(orth)):.2e}."
        )
    theta = np.arcsin(np.clip(-R[..., 2, 0], -1.0, 1.0))
    locked = np.abs(np.cos(theta)) < 1e-9
    phi = np.where(
        locked, np.arctan2(-R[..., 0, 1], R[..., 1, 1]), np.arctan2(R[..., 1, 0], R[..., 0, 0])
    )
    psi = np.where(locked, 0.0, np.arctan2(R[..., 2, 1], R[..., 2, 2]))
    return np.rad2deg(np.stack([phi, theta, psi], axis=-1))


def axis_angle_matrix(axis: ArrayLike, angle: ArrayLike) -> np.ndarray:
    """Right-handed rotation by ``angle`` [degrees] about ``axis`` (Rodrigues).

    Parameters
    ----------
    axis : array_like of shape (3,)
        Rotation axis; need not be normalised.
    angle : array_like of shape (...)
        Rotation angles [degrees].

    Returns
    -------
    ndarray of shape (..., 3, 3)
    """
    k = np.asarray(axis, dtype=float)
    norm = np.linalg.norm(k)
    if k.shape != (3,) or not np.isfinite(norm) or norm == 0:
        raise InputError(f"rotation axis must be a non-zero 3-vector; got {axis!r}.")
    k = k / norm
    a = np.deg2rad(np.asarray(angle, dtype=float))[..., None, None]
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * (K @ K)


#: Stage axes of a double-tilt holder (Table S2): alpha about [0,-1,0], beta about [-1,0,0].
STAGE_ALPHA_AXIS = (0.0, -1.0, 0.0)
STAGE_BETA_AXIS = (-1.0, 0.0, 0.0)


def stage_to_euler(alpha: ArrayLike, beta: ArrayLike) -> np.ndarray:
    """Euler angles of a double-tilt stage reading.

    Parameters
    ----------
    alpha, beta : array_like of shape (n,) or scalars
        Goniometer and holder tilts [degrees], axes as in Table S2.

    Returns
    -------
    ndarray of shape (n, 3) (or (3,) for scalars)
        ``(phi, theta, psi)`` [degrees] of ``R([0,-1,0], alpha) @ R([-1,0,0], beta)``.
    """
    alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
    R = axis_angle_matrix(STAGE_ALPHA_AXIS, alpha) @ axis_angle_matrix(STAGE_BETA_AXIS, beta)
    return matrix_to_euler(R)


#: Euler conventions :func:`convert_euler` understands.
EULER_CONVENTIONS = ("hpcaet", "genfire", "resire")

# Sample and image axes of GENFIRE/RESIRE in hpcaet's: their array axis 0 (image rows) is
# hpcaet's y, axis 1 (columns) hpcaet's x, and their beam axis hpcaet's -z (a proper
# rotation, so that zero angles mean the same image in both).
_SWAP_XY = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def convert_euler(euler: ArrayLike, convention: str) -> np.ndarray:
    """Euler angles of another tomography code in hpcaet's convention.

    Parameters
    ----------
    euler : array_like of shape (..., 3)
        ``(phi, theta, psi)`` [degrees] as the other code reads them.
    convention : {"hpcaet", "genfire", "resire"}
        ``"hpcaet"``: Z, Y, X (this module; returned as given). ``"genfire"``: GENFIRE's
        Z, Y, Z (``A = Rz(phi) Ry(theta) Rz(psi)``). ``"resire"``: the RESIRE scripts'
        default Z, Y, X (``A = Rz(phi) Ry(theta) Rx(psi)``). Both codes orient the
        detector in the object (a voxel at ``r``, array axes 0, 1, 2, lands on image
        row ``(Aᵀ r)[0]`` and column ``(Aᵀ r)[1]``, the beam along axis 2 at zero
        angles), the transpose of hpcaet's active rotation, with rows and columns
        swapped against hpcaet's ``(x, y)``.

    Returns
    -------
    ndarray of shape (..., 3)
        hpcaet's ``(phi, theta, psi)`` [degrees] for the same images, kept as stored
        (rows are rows). The sample frame is theirs with axes 0 and 1 swapped and the
        beam axis reversed: hpcaet ``(x, y, z)`` = their ``(r[1], r[0], -r[2])``.

    Raises
    ------
    InputError
        An unknown convention or angles that are not triples.
    """
    angles = _as_angles(euler)
    if convention == "hpcaet":
        return angles.copy()
    if convention not in EULER_CONVENTIONS:
        raise InputError(
            f"unknown Euler convention {convention!r}; expected one of {EULER_CONVENTIONS} "
            "(hpcaet: Z,Y,X; genfire: Z,Y,Z; resire: the RESIRE scripts' Z,Y,X)."
        )
    phi, theta, psi = (angles[..., k] for k in range(3))
    last = (0.0, 0.0, 1.0) if convention == "genfire" else (1.0, 0.0, 0.0)
    A = (
        axis_angle_matrix((0.0, 0.0, 1.0), phi)
        @ axis_angle_matrix((0.0, 1.0, 0.0), theta)
        @ axis_angle_matrix(last, psi)
    )
    return matrix_to_euler(_SWAP_XY @ np.swapaxes(A, -1, -2) @ _SWAP_XY.T)


def compose_euler(first: ArrayLike, then: ArrayLike) -> np.ndarray:
    """Euler angles of the rotation ``first`` followed by ``then`` [degrees]."""
    return matrix_to_euler(euler_to_matrix(then) @ euler_to_matrix(first))


def invert_euler(euler: ArrayLike) -> np.ndarray:
    """Euler angles of the inverse rotation [degrees]."""
    return matrix_to_euler(np.swapaxes(euler_to_matrix(euler), -1, -2))


def project_points(positions: ArrayLike, euler: ArrayLike) -> np.ndarray:
    """Project 3D points along the beam for one or several orientations.

    Parameters
    ----------
    positions : array_like of shape (n, 3)
        Points in the sample frame, ``x, y, z`` [Å].
    euler : array_like of shape (3,) or (m, 3)
        Euler angles per image [degrees].

    Returns
    -------
    ndarray of shape (n, 2) or (m, n, 2)
        Image positions ``x, y`` [Å] relative to the projected rotation centre.
    """
    r = np.asarray(positions, dtype=float)
    if r.ndim != 2 or r.shape[1] != 3:
        raise InputError(f"positions must have shape (n, 3) in Å; got {r.shape}.")
    R = euler_to_matrix(euler)
    return np.einsum("...ij,nj->...ni", R[..., :2, :], r)


def position_to_pixel(xy: ArrayLike, shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """Fractional pixel indices ``(row, col)`` of image positions ``(x, y)`` [Å]."""
    xy = np.asarray(xy, dtype=float)
    _check_pixel_size(pixel_size)
    ny, nx = shape
    return np.stack([xy[..., 1] / pixel_size + ny // 2, xy[..., 0] / pixel_size + nx // 2], -1)


def pixel_to_position(rc: ArrayLike, shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """Image positions ``(x, y)`` [Å] of fractional pixel indices ``(row, col)``."""
    rc = np.asarray(rc, dtype=float)
    _check_pixel_size(pixel_size)
    ny, nx = shape
    return np.stack([(rc[..., 1] - nx // 2) * pixel_size, (rc[..., 0] - ny // 2) * pixel_size], -1)


def grid_coordinates(n: int, pixel_size: float) -> np.ndarray:
    """Positions [Å] of the ``n`` pixel (or voxel) centres along one axis."""
    _check_pixel_size(pixel_size)
    if int(n) != n or n < 1:
        raise InputError(f"grid size must be a positive integer; got {n!r}.")
    return (np.arange(int(n)) - int(n) // 2) * float(pixel_size)


def _check_pixel_size(pixel_size: float) -> None:
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(
            f"pixel size must be a positive number of Å; got {pixel_size!r}. "
            "Check the file's calibration or pass pixel_size explicitly."
        )
