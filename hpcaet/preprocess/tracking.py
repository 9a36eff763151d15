"""Match the metal columns of every image of a tilt series to those of a reference image.

For a flat sheet in the sample x-y plane, image ``j`` is an affine map of the
reference image: ``x_j = A_j x_ref + t_j``, nominally ``A_j = M_j M_ref^-1`` with
``M = R[:2, :2]`` of the Euler angles. Nominal angles off by a few degrees misplace
columns at the edge of the field by a good part of a lattice constant, so
:func:`track_columns` measures ``A_j`` instead: the three bond directions of the
projected metal lattice (mean nearest-neighbour vectors) of view ``j`` are matched to
those of the reference, the nominal map deciding which is which. The translation
``t_j`` (misalignment) cannot come from the periodic lattice alone, so image ``j`` is
warped onto the reference with ``A_j`` and the two whole images are cross-correlated
(the flake edges and the brighter WSe2 region pin it). Columns are then matched as
mutual nearest neighbours within a tolerance, the map is refitted from the matches
(affine, then quadratic to absorb the parallax of the ripple), and matched again.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.geometry import euler_to_matrix
from hpcaet.preprocess.registration import register_translation

__all__ = ["Tracks", "track_columns", "reference_view", "bright_tracks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tracks:
    """Positions of the same columns in every image.

    Attributes
    ----------
    rc : ndarray of shape (n_tilt, n_track, 2)
        ``(row, col)`` of each tracked column in each image [pixel]; NaN where the
        column was not matched.
    reference : int
        Index of the image the tracks start from.
    """

    rc: np.ndarray
    reference: int

    @property
    def seen(self) -> np.ndarray:
        """Boolean (n_tilt, n_track): where a column was matched."""
        return np.isfinite(self.rc[..., 0])


def reference_view(euler: ArrayLike) -> int:
    """Index of the image closest to looking along the sheet normal (largest R_zz)."""
    R = euler_to_matrix(np.asarray(euler, dtype=float))
    return int(np.argmax(np.abs(R[:, 2, 2])))


def bright_tracks(
    tracks: Tracks,
    columns: list[np.ndarray],
    intensities: list[np.ndarray],
    *,
    radius: float = 0.5,
) -> np.ndarray:
    """Which tracked metal columns are the bright species (W next to Mo).

    Each column's fitted intensity is divided by the median of its image; the median of
    that ratio over the images where the column was tracked is split into two classes
    (the threshold that minimises the within-class variance of its logarithm).

    Parameters
    ----------
    tracks : Tracks
        The tracked columns.
    columns : list of ndarray of shape (n_j, 2)
        Fitted column centres ``(row, col)`` of each image [pixel].
    intensities : list of ndarray of shape (n_j,)
        Their fitted intensities [counts].
    radius : float, default 0.5
        Largest distance between a track and a fitted column to take its intensity
        [pixel].

    Returns
    -------
    ndarray of bool, shape (n_track,)
        True for the bright columns. All False when the intensities do not split
        (the brighter class less than 1.3 times the darker one, e.g. one species).
    """
    n_tilt, n_track, _ = tracks.rc.shape
    if len(columns) != n_tilt or len(intensities) != n_tilt:
        raise InputError(
            f"need the columns and intensities of all {n_tilt} images; got "
            f"{len(columns)} and {len(intensities)}."
        )
    ratio = np.full((n_tilt, n_track), np.nan)
    for j in range(n_tilt):
        seen = np.isfinite(tracks.rc[j, :, 0])
        points = np.asarray(columns[j], float)
        values = np.asarray(intensities[j], float)
        if points.reshape(-1, 2).shape != points.shape or values.shape != (len(points),):
            raise InputError(
                f"image {j}: columns must be (n, 2) [pixel] with one intensity each; got "
                f"shapes {points.shape} and {values.shape}."
            )
        if not seen.any() or len(points) == 0:
            continue
        distance, index = cKDTree(points).query(tracks.rc[j, seen])
        v = values[index] / max(float(np.median(values)), 1e-300)
        v[distance > radius] = np.nan
        ratio[j, seen] = v
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.log(np.nanmedian(ratio, axis=0))
    ok = np.isfinite(level)
    out = np.zeros(n_track, dtype=bool)
    values = np.sort(level[ok])
    if len(values) < 4:
        return out
    best, split = np.inf, None
    for t in values[1:]:
        low, high = values[values < t], values[values >= t]
        cost = low.var() * len(low) + high.var() * len(high)
        if cost < best:
            best, split = cost, t
    low, high = values[values < split], values[values >= split]
    if np.exp(high.mean() - low.mean()) < 1.3:
        return out
    out[ok] = level[ok] >= split
    return out


def track_columns(
    columns: list[np.ndarray],
    images: ArrayLike,
    euler: ArrayLike,
    *,
    spacing: float,
    reference: int | None = None,
    tolerance: float = 0.3,
    min_views: int = 3,
) -> Tracks:
    """Track metal columns across a tilt series.

    Parameters
    ----------
    columns : list of ndarray of shape (n_j, 2)
        Column centres ``(row, col)`` found in each image [pixel].
    images : array_like of shape (n_tilt, ny, nx)
        The images the columns come from (background-subtracted), used to find the
        translation between views.
    euler : array_like of shape (n_tilt, 3)
        Nominal Euler angles [deg].
    spacing : float
        Metal–metal distance (lattice constant) [pixel].
    reference : int, optional
        Image to start from; :func:`reference_view` when omitted.
    tolerance : float, default 0.3
        Matching radius [lattice constants].
    min_views : int, default 3
        Keep columns matched in at least this many images.

    Returns
    -------
    Tracks

    Raises
    ------
    InputError
        Mismatched numbers of images, angles and column lists, or too few matches.
    """
    stack = np.asarray(images, dtype=float)
    angles = np.asarray(euler, dtype=float)
    n = len(columns)
    if stack.ndim != 3 or len(stack) != n or angles.shape != (n, 3):
        raise InputError(
            f"track_columns needs one image and one Euler triple per column list; got "
            f"{n} column lists, images of shape {stack.shape} and angles of shape "
            f"{angles.shape}."
        )
    ref = reference_view(angles) if reference is None else int(reference)
    ref_pts = np.asarray(columns[ref], dtype=float)
    M = euler_to_matrix(angles)[:, :2, :2]
    centre = np.array(stack.shape[1:], dtype=float) // 2
    rc = np.full((n, len(ref_pts), 2), np.nan)
    rc[ref] = ref_pts
    for j in range(n):
        if j == ref:
            continue
        # affine of (x, y) between views, in (row, col) order.
        nominal = _swap(M[j] @ np.linalg.inv(M[ref]))
        A = _measured_affine(ref_pts, columns[j], nominal, spacing)
        shift = _translation(stack[ref], stack[j], A, centre)
        predicted = (ref_pts - centre + shift) @ A.T + centre
        pts = np.asarray(columns[j], dtype=float)
        for step, (radius, degree) in enumerate(
            ((0.4, 1), (0.3, 1), (tolerance, 2), (tolerance, 2))
        ):
            match = _match(predicted, pts, radius * spacing)
            ok = match >= 0
            if ok.sum() < (6 if degree == 1 else 12):
                raise InputError(
                    f"image {j}: only {int(ok.sum())} of {len(ref_pts)} columns matched the "
                    f"reference image {ref} (pass {step + 1}); the nominal angles "
                    f"{angles[j].tolist()} may be far off, or the image has no lattice."
                )
            predicted = _polyfit(ref_pts[ok] - centre, pts[match[ok]], degree, ref_pts - centre)
        rc[j, ok] = pts[match[ok]]
        log.debug("tracking: image %d, %d of %d columns matched", j, ok.sum(), len(ref_pts))
    keep = np.isfinite(rc[..., 0]).sum(axis=0) >= min_views
    return Tracks(rc=rc[:, keep], reference=ref)


def _bond_vectors(points: np.ndarray, spacing: float) -> np.ndarray:
    """Vectors between columns 0.6 to 1.3 ``spacing`` apart, each pair once."""
    pairs = cKDTree(points).query_pairs(1.3 * spacing, output_type="ndarray")
    v = points[pairs[:, 1]] - points[pairs[:, 0]]
    v = v[np.hypot(*v.T) > 0.6 * spacing]
    return np.where((v[:, 1] < 0)[:, None], -v, v)  # fold to col >= 0


def _directions(vectors: np.ndarray, guess: np.ndarray, cone: float = 15.0) -> np.ndarray:
    """Mean bond vector near each guessed direction (sign as the guess); NaN if none."""
    out = np.full_like(guess, np.nan, dtype=float)
    unit = vectors / np.hypot(*vectors.T)[:, None]
    for k, g in enumerate(guess):
        gu = g / np.hypot(*g)
        cos = unit @ gu
        near = np.abs(cos) > np.cos(np.deg2rad(cone))
        if near.sum() >= 3:
            out[k] = (vectors[near] * np.sign(cos[near])[:, None]).mean(axis=0)
    return out


def _reference_directions(vectors: np.ndarray) -> np.ndarray:
    """The three bond directions of a projected hexagonal lattice (histogram peaks)."""
    angle = np.rad2deg(np.arctan2(vectors[:, 0], vectors[:, 1])) % 180.0
    hist, _ = np.histogram(angle, bins=180, range=(0, 180))
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2.0, mode="wrap")
    peaks = []
    for k in np.argsort(hist)[::-1]:
        if all(min(abs(k - q), 180 - abs(k - q)) > 20 for q in peaks):
            peaks.append(int(k))
        if len(peaks) == 3:
            break
    theta = np.deg2rad(np.array(peaks) + 0.5)
    return np.column_stack([np.sin(theta), np.cos(theta)])


def _measured_affine(ref_pts, pts, nominal: np.ndarray, spacing: float) -> np.ndarray:
    """(row, col) affine from the reference lattice to another view's, from bond vectors."""
    ref_v = _bond_vectors(np.asarray(ref_pts, float), spacing)
    view_v = _bond_vectors(np.asarray(pts, float), spacing)
    if len(ref_v) < 10 or len(view_v) < 10:
        return nominal
    ref_dir = _directions(ref_v, _reference_directions(ref_v))
    view_dir = _directions(view_v, ref_dir @ nominal.T)
    ok = np.isfinite(ref_dir[:, 0]) & np.isfinite(view_dir[:, 0])
    if ok.sum() < 2:
        return nominal
    # view_dir = A ref_dir  ->  least squares for A.
    At, *_ = np.linalg.lstsq(ref_dir[ok], view_dir[ok], rcond=None)
    return At.T


def _swap(A: np.ndarray) -> np.ndarray:
    """An (x, y) matrix as a (row, col) matrix."""
    return A[::-1, ::-1]


def _translation(ref_image, image, A, centre) -> np.ndarray:
    """Shift (row, col) such that ref point p appears at A (p - c + shift) + c in ``image``."""
    offset = centre - A @ centre
    warped = ndimage.affine_transform(
        image, A, offset=offset, order=1, mode="constant", cval=float(np.median(image))
    )
    return register_translation(ref_image, warped, lowpass=1.0, window=0.2)


def _match(predicted: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """Index of the nearest point within ``radius`` of each prediction, mutual; -1 if none."""
    if len(points) == 0:
        return np.full(len(predicted), -1)
    distance, index = cKDTree(points).query(predicted, distance_upper_bound=radius)
    found = np.isfinite(distance)
    match = np.where(found, index, -1)
    # keep a point only for the prediction nearest to it
    back_distance, back_index = cKDTree(predicted).query(points)
    mutual = found & (back_index[np.clip(match, 0, len(points) - 1)] == np.arange(len(predicted)))
    return np.where(mutual, match, -1)


def _polyfit(src: np.ndarray, dst: np.ndarray, degree: int, at: np.ndarray) -> np.ndarray:
    """Least-squares polynomial map src -> dst (per coordinate), evaluated at ``at``."""

    def design(p):
        u, v = p[:, 0] / 100.0, p[:, 1] / 100.0
        cols = [np.ones_like(u), u, v]
        if degree >= 2:
            cols += [u * u, u * v, v * v]
        return np.column_stack(cols)

    coef, *_ = np.linalg.lstsq(design(src), dst, rcond=None)
    return design(at) @ coef
