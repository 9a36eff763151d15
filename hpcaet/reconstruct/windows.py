"""Scanning windows of sAET: plan them, crop their projections, stitch their centres.

The stitched volume has ``support_z`` voxels along z (centred on the sheet, z = 0) and
``tiles * step`` voxels along y and x, centred on the rotation centre as every hpcaet
grid (voxel ``i`` at ``(i - n // 2) * voxel_size``). Tile ``(r, c)`` is the block of
``step x step`` columns ``[r step, (r + 1) step) x [c step, (c + 1) step)``; its window
is the cube of ``window`` voxels whose central ``step x step`` columns are that tile
(``margin = (window - step) // 2`` voxels of overlap on the low side). Only the tile is
kept, as in the paper's Methods (60³ windows, step 30, central 30 x 30 x 33 voxels).

The projection of a window is cropped from each image round the point where the
window centre projects at that image's angles (:func:`hpcaet.geometry.project_points`),
so the crop differs per tilt; it is resampled with cubic splines so that the window
centre falls exactly on the crop's centre pixel ``(window // 2, window // 2)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from hpcaet.errors import InputError
from hpcaet.geometry import position_to_pixel, project_points

__all__ = [
    "Window",
    "WindowPlan",
    "plan_windows",
    "check_field",
    "spline_coefficients",
    "crop_window",
    "stitch",
]


@dataclass(frozen=True)
class Window:
    """One window of a plan.

    Attributes
    ----------
    row, col : int
        Tile indices along y and x.
    centre : tuple of float
        Window centre ``(x, y, z)`` in the sample frame [Å].
    """

    row: int
    col: int
    centre: tuple[float, float, float]

    @property
    def key(self) -> str:
        """Stable name of the window, e.g. ``"y002x005"``."""
        return f"y{self.row:03d}x{self.col:03d}"


@dataclass(frozen=True)
class WindowPlan:
    """How a field is cut into windows and stitched back.

    Attributes
    ----------
    window : int
        Edge of a window [voxels].
    step : int
        Scan step along x and y [voxels]; also the edge of each stitched tile.
    support_z : int
        Voxels along z of the support slab and of the stitched volume.
    tiles : tuple of int
        Tiles along y and x.
    voxel_size : float
        [Å], equal to the pixel size.
    """

    window: int
    step: int
    support_z: int
    tiles: tuple[int, int]
    voxel_size: float

    @property
    def margin(self) -> int:
        """Window voxels before the tile, along x and y."""
        return (self.window - self.step) // 2

    @property
    def shape(self) -> tuple[int, int, int]:
        """Stitched volume ``(nz, ny, nx)`` [voxels]."""
        return (self.support_z, self.tiles[0] * self.step, self.tiles[1] * self.step)

    def windows(self) -> list[Window]:
        """Every window, row by row."""
        _, ny, nx = self.shape
        out = []
        for r in range(self.tiles[0]):
            for c in range(self.tiles[1]):
                iy = r * self.step - self.margin + self.window // 2 - ny // 2
                ix = c * self.step - self.margin + self.window // 2 - nx // 2
                out.append(Window(r, c, (ix * self.voxel_size, iy * self.voxel_size, 0.0)))
        return out

    def to_json(self) -> str:
        """The plan as a JSON string (stored in the Volume's ``window_plan`` attr)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WindowPlan:
        d = json.loads(text)
        return cls(
            window=d["window"],
            step=d["step"],
            support_z=d["support_z"],
            tiles=tuple(d["tiles"]),
            voxel_size=d["voxel_size"],
        )


def check_field(images: ArrayLike, euler: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check a tilt series before any work: shapes, counts and finite pixels.

    Parameters
    ----------
    images : array_like of shape (n_tilt, ny, nx)
        One image per tilt [image units].
    euler : array_like of shape (n_tilt, 3)
        Euler angles (Z, Y, X) [deg].

    Returns
    -------
    images : ndarray, float32
    euler : ndarray, float64

    Raises
    ------
    InputError
        When the counts differ, the shapes are wrong, or a pixel or angle is not finite.
    """
    imgs = np.asarray(images)
    angles = np.asarray(euler, dtype=float)
    if imgs.ndim != 3:
        raise InputError(f"images must have shape (n_tilt, ny, nx); got {imgs.shape}.")
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise InputError(f"euler must have shape (n_tilt, 3) in degrees; got {angles.shape}.")
    if len(angles) != len(imgs):
        raise InputError(
            f"{len(angles)} Euler angle triples for {len(imgs)} images; the tilt series "
            "needs exactly one (Z, Y, X) triple per image."
        )
    if not np.all(np.isfinite(angles)):
        raise InputError(f"Euler angles must be finite; got {angles.tolist()}.")
    bad = ~np.isfinite(imgs)
    if bad.any():
        j, r, c = np.argwhere(bad)[0]
        raise InputError(
            f"image {j} has a non-finite pixel ({float(imgs[j, r, c])!r} at row {r}, col {c}; "
            f"{int(bad.sum())} in all); fill or mask them before reconstructing."
        )
    return np.asarray(imgs, dtype=np.float32), angles


def plan_windows(
    image_shape: tuple[int, int],
    euler: ArrayLike,
    *,
    pixel_size: float,
    window: int = 60,
    step: int = 30,
    support_z: int = 33,
    tiles: tuple[int, int] | None = None,
) -> WindowPlan:
    """Plan the windows of a field so that every crop lies inside every image.

    Parameters
    ----------
    image_shape : tuple of int
        ``(ny, nx)`` of the images [pixels].
    euler : array_like of shape (n_tilt, 3)
        Euler angles of the images [deg].
    pixel_size : float
        [Å]; the voxel size.
    window : int, default 60
        Window edge [voxels].
    step : int, default 30
        Scan step [voxels], ``1 <= step <= window``.
    support_z : int, default 33
        Slab thickness [voxels]; it may exceed the window (a thick film).
    tiles : tuple of int, optional
        Tiles along y and x. By default the most tiles whose crops fit in the images.

    Returns
    -------
    WindowPlan

    Raises
    ------
    InputError
        A window larger than the images, a step larger than the window, or tiles
        whose crops leave the images.
    """
    ny, nx = (int(s) for s in image_shape)
    angles = np.atleast_2d(np.asarray(euler, dtype=float))
    for name, value in (("window", window), ("step", step), ("support_z", support_z)):
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer [voxels]; got {value!r}.")
    if window < 4:
        raise InputError(f"window must be at least 4 voxels; got {window}.")
    if window > min(ny, nx):
        raise InputError(
            f"window of {window} voxels is larger than the field of {ny} x {nx} pixels; "
            "use a smaller reconstruct.window or larger images."
        )
    if step > window:
        raise InputError(
            f"step of {step} voxels is larger than the window of {window}: the windows "
            "would leave gaps. Use step <= window (the paper: window 60, step 30)."
        )
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"pixel_size must be a positive number of Å; got {pixel_size!r}.")

    def plan(ty, tx):
        return WindowPlan(
            int(window), int(step), int(support_z), (int(ty), int(tx)), float(pixel_size)
        )

    if tiles is not None:
        ty, tx = (int(t) for t in tiles)
        if ty < 1 or tx < 1:
            raise InputError(f"tiles must be two positive integers; got {tiles!r}.")
        out = _outside(plan(ty, tx), angles, (ny, nx))
        if out:
            raise InputError(
                f"with tiles {tiles!r} the crop of window {out[0]} leaves the "
                f"{ny} x {nx} images at tilt {out[1]}; use fewer tiles (or tiles: null "
                "to take the most that fit)."
            )
        return plan(ty, tx)
    ty, tx = max(1, (ny - window) // step + 1), max(1, (nx - window) // step + 1)
    while ty >= 1 and tx >= 1:
        out = _outside(plan(ty, tx), angles, (ny, nx))
        if not out:
            return plan(ty, tx)
        if out[2] == "y":
            ty -= 1
        else:
            tx -= 1
    raise InputError(
        f"no window of {window} voxels fits in the {ny} x {nx} images at every tilt; "
        "use a smaller reconstruct.window."
    )


def _outside(plan: WindowPlan, euler: np.ndarray, shape: tuple[int, int]):
    """First (window key, tilt, axis) whose crop leaves the images, or None."""
    wins = plan.windows()
    centres = np.array([w.centre for w in wins])
    rc = position_to_pixel(project_points(centres, euler), shape, plan.voxel_size)  # (t,w,2)
    lo = rc - plan.window // 2
    hi = lo + plan.window - 1
    for axis, name in ((0, "y"), (1, "x")):
        bad = (lo[..., axis] < 0) | (hi[..., axis] > shape[axis] - 1)
        if bad.any():
            t, w = np.argwhere(bad)[0]
            return wins[w].key, int(t), name
    return None


def spline_coefficients(images: np.ndarray) -> np.ndarray:
    """Cubic-spline coefficients of each image (mirror boundary), for :func:`crop_window`."""
    imgs = np.asarray(images, dtype=np.float32)
    return np.stack(
        [ndimage.spline_filter(im, order=3, mode="mirror", output=np.float32) for im in imgs]
    )


def crop_window(
    images: np.ndarray,
    euler: ArrayLike,
    centre: ArrayLike,
    *,
    window: int,
    pixel_size: float,
    prefiltered: bool = False,
) -> np.ndarray:
    """Crop the projection of a window from every image.

    Parameters
    ----------
    images : ndarray of shape (n_tilt, ny, nx)
        The images, or their :func:`spline_coefficients` with ``prefiltered=True``.
    euler : array_like of shape (n_tilt, 3)
        Euler angles of the images [deg].
    centre : array_like of shape (3,)
        Window centre ``(x, y, z)`` in the sample frame [Å].
    window : int
        Crop edge [pixels].
    pixel_size : float
        [Å].
    prefiltered : bool, default False
        ``images`` already holds spline coefficients (saves the filtering per window).

    Returns
    -------
    ndarray of shape (n_tilt, window, window), float32
        Crop ``j`` shows image ``j`` round the projection of ``centre``, which sits at
        pixel ``(window // 2, window // 2)``.
    """
    coeffs = images if prefiltered else spline_coefficients(images)
    n_tilt, ny, nx = coeffs.shape
    rc = position_to_pixel(
        project_points(np.asarray(centre, float)[None], euler)[:, 0], (ny, nx), pixel_size
    )  # (n_tilt, 2)
    grid = np.arange(window) - window // 2
    out = np.empty((n_tilt, window, window), dtype=np.float32)
    for j in range(n_tilt):
        rows, cols = np.meshgrid(rc[j, 0] + grid, rc[j, 1] + grid, indexing="ij")
        ndimage.map_coordinates(
            coeffs[j], [rows, cols], output=out[j], order=3, mode="mirror", prefilter=False
        )
    return out


def stitch(plan: WindowPlan, tiles: dict[str, np.ndarray]) -> np.ndarray:
    """Assemble the stitched volume from the tiles of every window.

    Parameters
    ----------
    plan : WindowPlan
    tiles : dict
        Window key -> tile of shape (support_z, step, step).

    Returns
    -------
    ndarray of shape plan.shape, float32
    """
    volume = np.zeros(plan.shape, dtype=np.float32)
    s = plan.step
    for w in plan.windows():
        volume[:, w.row * s : (w.row + 1) * s, w.col * s : (w.col + 1) * s] = tiles[w.key]
    return volume


def central_tile(plan: WindowPlan, slab: np.ndarray) -> np.ndarray:
    """The ``(support_z, step, step)`` block of a window's slab that is stitched."""
    lo = plan.margin
    return np.ascontiguousarray(slab[:, lo : lo + plan.step, lo : lo + plan.step])
