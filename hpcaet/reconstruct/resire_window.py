"""A RESIRE-style real-space reconstructor for one window.

RESIRE (Pham et al., Sci. Rep. 13, 5624 (2023)) minimises the projection error
``sum_j |A_j rho - b_j|^2`` in real space by gradient steps, with a projector ``A``
and its exact transpose as back-projector. Here, written for hpcaet:

* The projector is voxel-driven: each voxel centre is rotated into the microscope frame
  (:mod:`hpcaet.geometry`) and its value shared among the pixels round its projected
  position with the weights of Keys' cubic convolution kernel (or bilinear ones). Two
  implementations, chosen by ``projector``:

  ``"matrix"``
      :func:`~hpcaet.reconstruct.projector.slab_projector`: ``A`` and ``A.T`` as explicit
      sparse matrices, 16 entries per voxel and tilt for Keys' kernel (22 M for the
      paper's 60 x 60 x 33 window and 12 tilts; ~20 bytes per entry while building).
  ``"shear-warp"``
      :func:`~hpcaet.reconstruct.shear_warp.shear_warp_projector`: per tilt a shear of the
      slices onto a base plane and a 2D warp of that plane onto the detector, small
      sparse factors applied slice by slice. Memory grows with the slice area, not the
      volume (for 128³ and 60 tilts: 75 MB of factors and a 0.3 GB peak for all of
      RESIRE, where the matrix would be built from 16 GB of indices and weights) and a
      product costs ~8 multiply-adds per voxel and tilt; the price is a second
      interpolation (model error on Gaussian atoms ~1.5x that of the explicit matrix:
      1.0 % against 0.7 % at three tilts of a 32-voxel window). Its factors only bound
      ``|A|`` from above, so its step is also sized by a power estimate of the norm
      (:func:`_sirt_scaling`).
  ``"auto"`` (default)
      ``"matrix"`` up to 2^25 entries (33 M, ~0.7 GB while building; the paper's
      windows, whose results and speed are those of the explicit matrix), else
      ``"shear-warp"``.

  Either way ``A^T`` is the exact adjoint (dot-product identity to rounding).
* :func:`resire` iterates ``rho <- P(rho + tau C A^T R (b - A rho))`` with ``R`` the
  inverse row sums and ``C`` the inverse column sums of ``A`` over the fitted pixels
  (the diagonal scaling of SIRT; ``tau`` is reduced by the weighted Schur bound of the
  kernel's negative lobes so that ``tau`` in (0, 2) stays a stable step), ``P``
  positivity on the slab.
  With ``momentum`` the step is taken from Nesterov's extrapolated point (FISTA, Beck
  & Teboulle, SIAM J. Imaging Sci. 2, 183 (2009)), which needs ``tau <= 1`` and on a
  12-tilt phantom window reaches in 100 steps what the plain iteration reaches in
  over 500.
* Which pixels are fitted is a setting (``fit_pixels``). ``"consistent"``: those whose
  ray crosses the slab without leaving the window's x-y footprint. At a tilt, the crop's
  border pixels of a window cut from a larger sheet also see the sheet outside the
  window, which no density inside the window can explain; they are left out rather
  than forced into the border voxels. That is right for a thin slab, but with a thick
  support every ray at a high tilt leaves the footprint (a 64³ volume with tilts to
  ±70° kept no pixel of 16 of its 41 tilts), so ``"all"`` fits every pixel, as for an
  object that lies wholly inside the volume. ``"auto"`` (the default) takes
  ``"consistent"`` while every tilt keeps at least a quarter of its pixels (the paper's
  33-voxel slab in 60-voxel windows keeps 45-100 % at its tilts) and ``"all"``
  otherwise. The fraction fitted per tilt is logged.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from hpcaet.errors import ConvergenceError, InputError
from hpcaet.reconstruct._common import (
    SheetSupport,
    WindowResult,
    check_fraction,
    check_iterations,
    check_projections,
    sheet_support,
)
from hpcaet.reconstruct.projector import SlabProjector, check_kernel, slab_projector
from hpcaet.reconstruct.shear_warp import ShearWarpProjector, shear_warp_projector

__all__ = [
    "SlabProjector",
    "slab_projector",
    "build_projector",
    "fitted_pixels",
    "resire",
    "FIT_PIXELS",
    "PROJECTORS",
]

log = logging.getLogger(__name__)

#: Accepted values of ``fit_pixels``.
FIT_PIXELS = ("auto", "consistent", "all")

#: Accepted values of ``projector``.
PROJECTORS = ("auto", "matrix", "shear-warp")

# "auto" builds the explicit matrix up to this many entries (voxels x tilts x taps^2;
# ~20 bytes each while building), the shear-warp projector above
_MATRIX_ENTRIES = 2**25

# power iterations of the shear-warp step size, and the margin over their estimate
_POWER_ITERATIONS = 8
_NORM_MARGIN = 1.05

# "auto" fits the consistent pixels while every tilt keeps at least this fraction of its
# pixels, every pixel otherwise (a support so thick that high tilts would drop out)
_LEAST_CONSISTENT = 0.25


def _sirt_scaling(
    proj: SlabProjector | ShearWarpProjector, fit: np.ndarray, step: float, *, power: int = 0
):
    """SIRT's diagonal scalings ``R`` (rows) and ``tau C`` (columns), made safe.

    ``R`` and ``C`` are the inverse row and column sums of ``A`` over the fitted pixels:
    for an interpolation kernel (a partition of unity) these are ray lengths and
    projection counts, uniform across the slab, so they do not favour any height. With
    a kernel that has negative lobes, ``||R^1/2 A C^1/2||^2`` may exceed 1; by the
    weighted Schur test it is at most ``max_i R_i sum_j |a_ij| * max_j C_j sum_i |a_ij|``,
    and ``tau`` is divided by that bound. Where a signed sum is below half the absolute
    one (a voxel or ray that barely touches the data) the absolute sum is used.

    The shear-warp projector only gives upper bounds of the absolute sums (products of
    its factors' absolute values): its Schur bound is ~2.1 where the matrix's is ~1.4,
    while the norm itself is 1.00 for both (60 tilts to ±70°). With ``power > 0`` the
    norm is also estimated by that many power iterations from a random start (a lower
    bound that converges from below) and ``tau`` divided by the smaller of the Schur
    bound and 1.05 times the estimate, so the step is not needlessly halved.
    """
    ones = np.ones(proj.shape[1], dtype=np.float32)
    ray_abs, ray = proj.forward_abs(ones), proj.forward(ones)
    ray = np.where(ray >= 0.5 * ray_abs, ray, ray_abs)
    rows = np.where(fit & (ray_abs > 0), 1.0 / np.maximum(ray, 1e-12), 0.0)
    used = (rows > 0).astype(np.float32)
    col_abs, col = proj.adjoint_abs(used), proj.adjoint(used)
    col = np.where(col >= 0.5 * col_abs, col, col_abs)
    cols = np.where(col_abs > 0, 1.0 / np.maximum(col, 1e-12), 0.0)
    bound = float(np.max(rows * ray_abs, initial=1.0)) * float(np.max(cols * col_abs, initial=1.0))
    rows, cols = rows.astype(np.float32), cols.astype(np.float32)
    if power > 0:
        bound = min(bound, _NORM_MARGIN * _norm_estimate(proj, rows, cols, power))
    log.debug("resire: step bound %.3f", bound)
    return rows, (step / max(bound, 1.0) * cols).astype(np.float32)


def _norm_estimate(proj, rows: np.ndarray, cols: np.ndarray, iterations: int) -> float:
    """Power-iteration estimate of ``||R^1/2 A C^1/2||^2`` (from below)."""
    root = np.sqrt(cols)
    x = np.random.default_rng(0).standard_normal(proj.shape[1]).astype(np.float32)
    estimate = 0.0
    for _ in range(iterations):
        x /= np.linalg.norm(x)
        y = root * proj.adjoint(rows * proj.forward(root * x))
        estimate = float(np.dot(x, y))
        x = y
    return estimate


def build_projector(
    rotations: np.ndarray, *, m: int, nz: int, kernel: str = "cubic", projector: str = "auto"
) -> SlabProjector | ShearWarpProjector:
    """The projector :func:`resire` iterates with (module notes on the choice).

    Parameters
    ----------
    rotations : ndarray of shape (p, 3, 3)
        Rotation matrices of the projections.
    m, nz : int
        Window edge and slab thickness [voxels].
    kernel : {"cubic", "linear"}, default "cubic"
    projector : {"auto", "matrix", "shear-warp"}, default "auto"

    Returns
    -------
    SlabProjector or ShearWarpProjector
        Either has ``forward``, ``adjoint``, ``shape`` and ``consistent``.
    """
    if projector not in PROJECTORS:
        raise InputError(f"projector must be one of {PROJECTORS}; got {projector!r}.")
    taps = check_kernel(kernel)[1]
    entries = len(rotations) * nz * m * m * taps * taps
    if projector == "auto":
        projector = "matrix" if entries <= _MATRIX_ENTRIES else "shear-warp"
    log.debug("resire: %s projector (explicit matrix: %.3g entries)", projector, entries)
    build = slab_projector if projector == "matrix" else shear_warp_projector
    return build(rotations, m=m, nz=nz, kernel=kernel)


def fitted_pixels(consistent: np.ndarray, fit_pixels: str = "auto") -> np.ndarray:
    """The pixels :func:`resire` fits (module notes), with the fraction per tilt logged.

    Parameters
    ----------
    consistent : ndarray of shape (p, m, m), bool
        Pixels whose ray crosses the slab inside the window's footprint (the projector's
        ``consistent``).
    fit_pixels : {"auto", "consistent", "all"}, default "auto"

    Returns
    -------
    ndarray of shape (p, m, m), bool
    """
    if fit_pixels not in FIT_PIXELS:
        raise InputError(f"fit_pixels must be one of {FIT_PIXELS}; got {fit_pixels!r}.")
    if fit_pixels == "auto":
        least = float(consistent.mean(axis=(1, 2)).min())
        fit_pixels = "consistent" if least >= _LEAST_CONSISTENT else "all"
    used = consistent if fit_pixels == "consistent" else np.ones_like(consistent)
    fraction = used.mean(axis=(1, 2))
    log.log(
        logging.INFO if fraction.min() < 0.5 else logging.DEBUG,
        "resire: %s pixels fitted, per tilt %s %%",
        fit_pixels,
        " ".join(f"{100 * f:.0f}" for f in fraction),
    )
    return used


def resire(
    images: np.ndarray,
    euler: np.ndarray,
    *,
    support_z: int,
    iterations: int = 200,
    step: float = 1.0,
    momentum: bool = True,
    kernel: str = "cubic",
    positivity: bool = True,
    rfree_fraction: float = 0.05,
    sheet: SheetSupport | None = None,
    fit_pixels: str = "auto",
    projector: str = "auto",
    rng: np.random.Generator | int | None = None,
) -> WindowResult:
    """Reconstruct one window by gradient steps on the projection error (RESIRE style).

    Parameters
    ----------
    images : ndarray of shape (p, m, m)
        Window projections, centre pixel ``(m // 2, m // 2)`` on the window centre
        [image units].
    euler : ndarray of shape (p, 3)
        Euler angles (Z, Y, X) of each projection [deg], :mod:`hpcaet.geometry`.
    support_z : int
        Thickness of the support slab round the window centre [voxels].
    iterations : int, default 200
        Gradient steps.
    step : float, default 1
        Step ``tau`` of the SIRT-scaled gradient, in (0, 2), or (0, 1] with momentum.
    momentum : bool, default True
        Nesterov (FISTA) extrapolation between steps.
    kernel : {"cubic", "linear"}, default "cubic"
        Interpolation kernel of the projector (:func:`slab_projector`).
    positivity : bool, default True
        Clip negative densities after each step.
    rfree_fraction : float, default 0.05
        Fraction of the consistent pixels withheld from the fit for the R-free.
    sheet : SheetSupport, optional
        Shrink the support to the sheet's measured surface after ``sheet.start`` of the
        steps (the momentum restarts there); None keeps the flat slab throughout.
    fit_pixels : {"auto", "consistent", "all"}, default "auto"
        Pixels fitted (module notes): those whose ray stays inside the window's footprint
        across the slab, every pixel, or the first while every tilt keeps at least a
        quarter of its pixels and the second otherwise.
    projector : {"auto", "matrix", "shear-warp"}, default "auto"
        The explicit sparse matrix, the matrix-free shear-warp factorisation, or the
        first up to 2^25 matrix entries and the second above (module notes).
    rng : numpy.random.Generator or int or None
        Chooses the withheld pixels.

    Returns
    -------
    WindowResult
        The slab (``support_z, m, m``) in image units per voxel; the error
        ``sum |A rho - b| / sum |b|`` over the fitted pixels and the R-free over the
        withheld ones, per iteration, at the point each step starts from.

    Raises
    ------
    InputError
        Bad shapes or counts, NaN pixels, or parameters out of range.
    """
    imgs, rotations = check_projections(images, euler, support_z=support_z)
    if fit_pixels not in FIT_PIXELS:
        raise InputError(f"fit_pixels must be one of {FIT_PIXELS}; got {fit_pixels!r}.")
    iterations = check_iterations(iterations)
    check_fraction("rfree_fraction", rfree_fraction, upper=0.5)
    stable = (0 < step <= 1) if momentum else (0 < step < 2)
    if not (np.isfinite(step) and stable):
        bound = "(0, 1] with momentum" if momentum else "(0, 2)"
        raise InputError(f"step must be in {bound} for a stable SIRT step; got {step!r}.")
    start = time.perf_counter()
    m = imgs.shape[1]
    proj = build_projector(rotations, m=m, nz=support_z, kernel=kernel, projector=projector)
    b = imgs.ravel()
    used = fitted_pixels(proj.consistent, fit_pixels).ravel()
    withheld = np.zeros_like(used)
    if rfree_fraction > 0:
        candidates = np.flatnonzero(used)
        pick = np.random.default_rng(rng).permutation(candidates)
        withheld[pick[: int(rfree_fraction * len(candidates))]] = True
    fit = used & ~withheld
    power = _POWER_ITERATIONS if isinstance(proj, ShearWarpProjector) else 0
    row_scale, col_scale = _sirt_scaling(proj, fit, step, power=power)
    norm_fit = float(np.abs(b[fit]).sum()) or 1.0
    norm_free = float(np.abs(b[withheld]).sum())
    error = np.empty(iterations)
    rfree = np.full(iterations, np.nan)
    x = np.zeros(proj.shape[1], dtype=np.float32)
    y, speed = x, 1.0  # extrapolated point and FISTA's t_k
    SheetSupport.check(sheet)
    switch = sheet.switch_iteration(iterations) if sheet is not None else iterations
    outside = None
    begin = time.perf_counter()
    for t in range(iterations):
        if t == switch:
            outside = ~sheet_support(
                x.reshape(support_z, m, m), thickness=sheet.thickness, smoothing=sheet.smoothing
            ).ravel()
            x = np.where(outside, np.float32(0.0), x)
            y, speed = x, 1.0
        residual = b - proj.forward(y)
        size = np.abs(residual)
        error[t] = size[fit].sum() / norm_fit
        if norm_free > 0:
            rfree[t] = size[withheld].sum() / norm_free
        new = y + col_scale * proj.adjoint(row_scale * residual)
        if positivity:
            np.maximum(new, 0.0, out=new)
        if outside is not None:
            new[outside] = 0.0
        if momentum:
            faster = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * speed**2))
            y = new + np.float32((speed - 1.0) / faster) * (new - x)
            speed = faster
        else:
            y = new
        x = new
    if not np.all(np.isfinite(x)):
        raise ConvergenceError(
            f"RESIRE diverged (non-finite voxels after {iterations} steps with step "
            f"{step}); use a smaller step or momentum=False."
        )
    end = time.perf_counter()
    return WindowResult(
        volume=x.reshape(support_z, m, m),
        error=error,
        rfree=rfree,
        setup_seconds=begin - start,
        iteration_seconds=end - begin,
    )
