"""Background refined against a model of the sheet built from the calibrated metals.

The hexagon-minimum map of :mod:`hpcaet.preprocess.background` has to guess how much of
the six neighbouring columns' tails sits in each hexagon, and at the paper's dose those
tails are as large as the background itself. Once the angles are calibrated the stage
knows much more: the 3D position of every tracked metal, which metals are the bright
species, each image's angles and in-image shift, and the vibration blur. From the
metals :func:`sheet_sites` builds the whole sheet (a chalcogen pair above and below the
centre of every metal triangle of one orientation, along that triangle's normal), and
:func:`refine_background` fits, by linear least squares on the drift-corrected frame
sum,

    I(r) = sum_k w_k M_k(r) + B(r),

with ``M_k`` the projection of the sites of class ``k`` (dark metal, bright metal, their
chalcogens) drawn with unit weight, their B-factors, the probe and the vibration kernel,
and ``B`` a tensor-product cubic B-spline with knots every ``knot_spacing`` Å and a
small second-difference penalty. The atoms' integrated intensity, which is what a
smooth background competes with, does not depend on where exactly each atom sits, so
the model does not have to be precise to pin the background. Parts of the image whose
specimen the model lacks (columns not tracked, e.g. at the field's edge) show up as a
positive residual after a first fit; they are masked and the fit repeated.

Which of the two triangle orientations holds the chalcogens is chosen by the fit (the
lower residual).

References
----------
Tian et al., Methods, "Drift correction, denoising and background subtraction"
(background from the lattice's hexagon minima, which this refines).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage, signal
from scipy.interpolate import BSpline
from scipy.spatial import Delaunay, QhullError

from hpcaet.errors import InputError
from hpcaet.forward import project_atoms
from hpcaet.forward.kernels import probe_b_factor, vibration_kernel
from hpcaet.geometry import _check_pixel_size
from hpcaet.preprocess._validate import _check_image

__all__ = ["SheetSites", "sheet_sites", "ModelBackground", "refine_background"]

_OVERSAMPLE = 2

#: site classes of :class:`SheetSites`
CLASSES = ("dark metal", "bright metal", "dark chalcogen", "bright chalcogen")


@dataclass(frozen=True)
class SheetSites:
    """The sheet's atoms inferred from its metals (result of :func:`sheet_sites`).

    Attributes
    ----------
    positions : ndarray of shape (n, 3)
        Sites in the frame of the metals [Å]: the metals first, then the chalcogen pairs
        of the first triangle orientation, then those of the second.
    kind : ndarray of int, shape (n,)
        Class of each site, an index into :data:`CLASSES`.
    orientation : ndarray of int, shape (n,)
        0 for metals, 1 or 2 for the chalcogens of the first or second triangle
        orientation.
    """

    positions: np.ndarray
    kind: np.ndarray
    orientation: np.ndarray


def sheet_sites(
    metals: ArrayLike,
    bright: ArrayLike,
    *,
    lattice_constant: float,
    chalcogen_height: tuple[float, float],
    max_edge: float = 1.3,
) -> SheetSites:
    """Metal and chalcogen sites of a transition-metal dichalcogenide sheet from its metals.

    Every triangle of the metals' Delaunay triangulation (in x, y) whose edges are all
    shorter than ``max_edge`` lattice constants is a unit of the sheet. The triangles
    come in two orientations; in the 2H monolayer one of them holds a chalcogen pair at
    its centroid, ``± h`` along the triangle's normal, the other is a hollow.

    Parameters
    ----------
    metals : array_like of shape (n, 3)
        Metal positions [Å].
    bright : array_like of bool, shape (n,)
        True for the bright metal species (W next to Mo).
    lattice_constant : float
        Metal–metal distance [Å] (the smaller of the two species').
    chalcogen_height : (float, float)
        Height of the chalcogens above the metal plane next to dark and bright metals [Å].
    max_edge : float, default 1.3
        Longest triangle edge kept [lattice constants].

    Returns
    -------
    SheetSites

    Raises
    ------
    InputError
        Fewer than 3 metals, no triangle of the lattice's size, a non-positive lattice
        constant or chalcogen heights that are not two numbers.
    """
    r = np.asarray(metals, float)
    bright = np.asarray(bright, bool)
    if not (np.isfinite(lattice_constant) and lattice_constant > 0):
        raise InputError(f"lattice_constant must be positive [Å]; got {lattice_constant!r}.")
    if np.shape(chalcogen_height) != (2,):
        raise InputError(
            f"chalcogen_height must be two heights [Å] (MoS2, WSe2); got {chalcogen_height!r}."
        )
    if r.ndim != 2 or r.shape[1] != 3 or len(r) < 3:
        raise InputError(f"need at least 3 metal positions (n, 3) [Å]; got shape {r.shape}.")
    if bright.shape != (len(r),):
        raise InputError(f"bright needs one flag per metal ({len(r)}); got {bright.shape}.")
    try:
        tri = Delaunay(r[:, :2]).simplices
    except QhullError as err:
        raise InputError(
            f"the {len(r)} metals do not span an area (collinear or coincident in x, y); "
            "a sheet needs metals in two dimensions."
        ) from err
    p = r[tri]  # (t, 3 vertices, 3)
    edges = np.linalg.norm(p - np.roll(p, 1, axis=1), axis=2)
    keep = np.all(edges < max_edge * lattice_constant, axis=1)
    if not keep.any():
        raise InputError(
            f"no metal triangle with edges below {max_edge} x {lattice_constant} Å; check "
            "the lattice constant and the metal positions' units (Å)."
        )
    tri, p = tri[keep], p[keep]
    centre = p.mean(axis=1)
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    normal *= np.sign(normal[:, 2:3] + 1e-12)
    # orientation: the angle of a vertex about the centroid, modulo 120 degrees, falls in
    # one of two classes 60 degrees apart
    d = p[:, 0, :2] - centre[:, :2]
    phase = np.exp(3j * np.arctan2(d[:, 1], d[:, 0]))
    axis = np.angle(np.mean(phase**2)) / 2
    first = np.real(phase * np.exp(-1j * axis)) > 0
    bright_tri = bright[tri].sum(axis=1) >= 2
    height = np.where(bright_tri, chalcogen_height[1], chalcogen_height[0])[:, None]
    pairs = np.concatenate([centre + height * normal, centre - height * normal])
    pair_kind = np.tile(np.where(bright_tri, 3, 2), 2)
    pair_orient = np.tile(np.where(first, 1, 2), 2)
    return SheetSites(
        positions=np.vstack([r, pairs]),
        kind=np.concatenate([bright.astype(int), pair_kind]),
        orientation=np.concatenate([np.zeros(len(r), int), pair_orient]),
    )


@dataclass(frozen=True)
class ModelBackground:
    """Result of :func:`refine_background`.

    Attributes
    ----------
    background : ndarray of shape (ny, nx)
        The fitted smooth background [image units].
    weights : ndarray of shape (4,)
        Fitted weight of each site class [image units per unit projection]; NaN for a
        class without sites.
    orientation : int
        The triangle orientation (1 or 2) that holds the chalcogens.
    masked : float
        Fraction of the pixels left out as specimen the model lacks.
    vacuum : float
        Fraction of the pixels outside the modelled sheet (full weight).
    residual : float
        RMS of ``image - model - background`` over the pixels used [image units].
    """

    background: np.ndarray
    weights: np.ndarray
    orientation: int
    masked: float
    vacuum: float
    residual: float


def refine_background(
    image: ArrayLike,
    sites: SheetSites,
    euler: ArrayLike,
    shift: ArrayLike,
    *,
    pixel_size: float,
    b_factors: ArrayLike,
    probe_fwhm: float,
    vibration: ArrayLike | None = None,
    knot_spacing: float = 20.0,
    penalty: float = 0.01,
    mask_threshold: float = 4.0,
    ratios: ArrayLike | None = None,
    sheet_weight: float = 0.01,
) -> ModelBackground:
    """Fit the sheet model and a smooth background to an image (least squares).

    Parameters
    ----------
    image : array_like of shape (ny, nx)
        Drift-corrected frame sum [counts] (not denoised: its noise is unbiased).
    sites : SheetSites
        The sheet's sites in the calibration's frame (:func:`sheet_sites`).
    euler : array_like of shape (3,)
        Calibrated Euler angles of the image [deg].
    shift : array_like of shape (2,)
        Image position ``(x, y)`` of the frame's origin [Å] (``AngleCalibration.shift``).
    pixel_size : float
        [Å].
    b_factors : array_like of shape (4,)
        B-factor of each site class [Å²], without the probe.
    probe_fwhm : float
        FWHM of the probe intensity [Å].
    vibration : array_like of shape (3,), optional
        ``(direction [deg], amplitude [Å], width [Å])`` of the image's vibration kernel;
        NaN or None for none.
    knot_spacing : float, default 20
        Distance between the B-spline knots of the background [Å].
    penalty : float, default 0.01
        Weight of the second-difference penalty on the spline coefficients, relative
        to the data's weight per coefficient; it decides the background where pixels
        are masked.
    mask_threshold : float, default 4
        Pixels whose residual after the first fit, smoothed over 1 Å and divided by the
        square root of the fit, exceeds this many robust standard deviations (positive:
        unmodelled specimen) are left out, with a margin, and the fit repeated; 0 turns
        this off.
    ratios : array_like of shape (4,), optional
        Relative weights of the site classes (e.g. the species' cross-sections [Å²]):
        the model is then one image with one fitted scale. Default: a free weight per
        class.
    sheet_weight : float, default 0.01
        Least-squares weight of the pixels within about 2 Å of the modelled sheet,
        relative to the vacuum's 1. Small values let the vacuum decide the background
        under the sheet (the model's integrated intensity is not precise enough to).

    Returns
    -------
    ModelBackground

    Raises
    ------
    InputError
        A bad image or pixel size, a vibration that is not three numbers, a knot
        spacing below 4 pixels, B-factors or ratios of the wrong length, or a sheet
        weight outside [0, 1].
    """
    a = _check_image(image, if_zero="there is no background to estimate.")
    _check_pixel_size(pixel_size)
    if vibration is not None and np.shape(vibration) != (3,):
        raise InputError(
            f"vibration must be (direction [deg], amplitude [Å], width [Å]) or None; got "
            f"{vibration!r}."
        )
    b = np.asarray(b_factors, float)
    if b.shape != (len(CLASSES),) or not np.all(np.isfinite(b)):
        raise InputError(f"b_factors needs {len(CLASSES)} finite values [Å²]; got {b!r}.")
    if ratios is not None:
        ratios = np.asarray(ratios, float)
        if ratios.shape != (len(CLASSES),) or not np.all(np.isfinite(ratios) & (ratios >= 0)):
            raise InputError(
                f"ratios needs {len(CLASSES)} finite non-negative weights, one per class "
                f"{CLASSES}; got {ratios!r}."
            )
    if not 0 <= sheet_weight <= 1:
        raise InputError(
            f"sheet_weight is a least-squares weight relative to the vacuum's 1, in [0, 1]; "
            f"got {sheet_weight!r}."
        )
    step = float(knot_spacing) / float(pixel_size)
    if not step >= 4:
        raise InputError(
            f"knot_spacing {knot_spacing!r} Å is under 4 pixels of {pixel_size} Å; the "
            "background must be smoother than the atoms. Use at least 10 Å."
        )
    shape = a.shape
    b_probe = probe_b_factor(probe_fwhm)
    basis = [_bspline_basis(n, step) for n in shape]
    best = None
    for orient in (1, 2):
        use = (sites.orientation == 0) | (sites.orientation == orient)
        models = _class_images(
            sites.positions[use],
            sites.kind[use],
            euler,
            shift,
            b + b_probe,
            shape,
            pixel_size,
            vibration,
        )
        present = np.array([m is not None for m in models])
        if ratios is not None:
            models = [sum(r * m for r, m in zip(ratios, models, strict=True) if m is not None)]
        models = [m for m in models if m is not None]
        coef, background = _fit(a, models, basis, np.ones(shape), penalty)
        specimen = sum(w * m for w, m in zip(coef, models, strict=True))
        sheet = _sheet_mask(specimen, pixel_size)
        weight = np.where(sheet, float(sheet_weight), 1.0)
        if mask_threshold > 0:
            weight *= _unmodelled_mask(a, specimen + background, pixel_size, mask_threshold)
        coef, background = _fit(a, models, basis, weight, penalty)
        specimen = sum(w * m for w, m in zip(coef, models, strict=True))
        used = weight > 0
        res = float(np.sqrt(np.mean((a - specimen - background)[used] ** 2)))
        if best is None or res < best.residual:
            weights = np.full(len(CLASSES), np.nan)
            if ratios is not None:
                weights[present] = coef[0] * ratios[present]
            else:
                weights[present] = coef
            best = ModelBackground(
                background=background,
                weights=weights,
                orientation=orient,
                masked=float(1 - used.mean()),
                vacuum=float(np.mean(weight == 1.0)),
                residual=res,
            )
    return best


def _class_images(positions, kind, euler, shift, b_eff, shape, pixel_size, vibration):
    """Projection of every site class with unit weight, blurred by the vibration kernel.

    Drawn on a grid ``_OVERSAMPLE`` times finer, convolved there and point-sampled at
    the pixel centres: a vibration of a few tenths of an ångström is not resolved by
    0.3 Å pixels, and convolving at the pixel grid changes the atoms' peak-to-mean
    ratio by about 2 %, which the background fit would take for background.
    """
    ov = _OVERSAMPLE
    fine = pixel_size / ov
    fshape = (ov * shape[0], ov * shape[1])
    start = [(ov * n) // 2 - ov * (n // 2) for n in shape]
    kernel = None
    if vibration is not None and np.all(np.isfinite(vibration)):
        d, amp, width = (float(v) for v in vibration)
        if amp > 0 or width > 0:
            kernel = vibration_kernel(d, amp, width, pixel_size=fine)
    out = []
    for k in range(len(CLASSES)):
        sel = kind == k
        if not sel.any():
            out.append(None)
            continue
        m = project_atoms(
            positions[sel],
            1.0,
            b_eff[k],
            np.asarray(euler, float)[None],
            shape=fshape,
            pixel_size=fine,
            offsets=np.asarray(shift, float)[None],
        )[0]
        if kernel is not None:
            m = signal.fftconvolve(m, kernel, mode="same")
        out.append(np.ascontiguousarray(m[start[0] :: ov, start[1] :: ov]))
    return out


def _bspline_basis(n: int, step: float) -> np.ndarray:
    """Cubic B-spline basis on ``n`` pixels with uniform knots about ``step`` apart."""
    intervals = max(1, int(np.ceil((n - 1) / step)))
    h = (n - 1) / intervals
    knots = (np.arange(intervals + 7) - 3) * h
    return BSpline.design_matrix(np.arange(n, dtype=float), knots, 3).toarray()


def _fit(image, models, basis, weight, penalty):
    """Weighted least squares of the class images plus the spline background."""
    phr, phc = basis
    nr, nc = phr.shape[1], phc.shape[1]
    ms = list(models)
    k = len(ms)
    wm = [weight * m for m in ms]
    # spline block: G[i,j,k,l] = sum_rc phr[r,i] phr[r,k] W[r,c] phc[c,j] phc[c,l]
    t = np.einsum("ri,rk,rc->ikc", phr, phr, weight, optimize=True)
    g = np.einsum("ikc,cj,cl->ijkl", t, phc, phc, optimize=True).reshape(nr * nc, nr * nc)
    cross = np.array([(phr.T @ x @ phc).ravel() for x in wm]).reshape(k, nr * nc)
    mm = np.array([[float(np.sum(x * y)) for y in ms] for x in wm]).reshape(k, k)
    rhs = np.concatenate(
        [[float(np.sum(x * image)) for x in wm], (phr.T @ (weight * image) @ phc).ravel()]
    )
    d2r, d2c = np.diff(np.eye(nr), 2, axis=0), np.diff(np.eye(nc), 2, axis=0)
    pen = np.kron(d2r.T @ d2r, np.eye(nc)) + np.kron(np.eye(nr), d2c.T @ d2c)
    scale = float(np.mean(np.diag(g))) * float(penalty)
    normal = np.block([[mm, cross], [cross.T, g + scale * pen]])
    sol = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    coef, c = sol[:k], sol[k:].reshape(nr, nc)
    return coef, phr @ c @ phc.T


def _sheet_mask(specimen, pixel_size) -> np.ndarray:
    """Pixels within about 2 Å of the modelled sheet."""
    sigma = 2.0 / pixel_size
    peak = max(float(specimen.max()), 1e-12)
    sheet = ndimage.gaussian_filter(specimen, sigma, mode="nearest") > 0.02 * peak
    return ndimage.binary_dilation(sheet, iterations=max(1, int(round(sigma))))


def _unmodelled_mask(image, fitted, pixel_size, threshold) -> np.ndarray:
    """Weights: 0 where the smoothed residual shows specimen the model lacks.

    The residual is smoothed by a Gaussian of 1 Å and divided by the square root of
    the smoothed fit (counting noise grows with the signal); the result is compared
    with its robust spread.
    """
    sigma = max(1.0, 1.0 / pixel_size)
    smooth = ndimage.gaussian_filter(image - fitted, sigma, mode="nearest")
    level = ndimage.gaussian_filter(np.abs(fitted), sigma, mode="nearest")
    z = smooth / np.sqrt(level + 1e-3 * max(float(level.max()), 1e-12))
    centre = np.median(z)
    spread = 1.4826 * np.median(np.abs(z - centre))
    bad = z - centre > threshold * max(spread, 1e-12)
    bad = ndimage.binary_dilation(bad, iterations=int(round(2 * sigma)))
    return np.where(bad, 0.0, 1.0)
