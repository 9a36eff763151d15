"""GENFIRE for one window: Fourier gridding, then error reduction with constraints.

GENeralized Fourier Iterative REconstruction (Pryor et al., Sci. Rep. 7, 10409 (2017)),
written for hpcaet. The projections are gridded onto the oversampled 3D Fourier grid
(:func:`hpcaet.reconstruct.fourier.grid_projections`); the iteration then alternates
between the measured Fourier values and the real-space constraints:

.. math::

    \\rho_{t+1} = P_{+}\\left(\\rho_t + P_S\\,\\mathcal{F}^{-1}
    \\left[c\\,a_t\\,(M - \\mathcal{F}\\rho_t)\\right]\\right),

with ``M`` the gridded values, ``P_S`` the support (a slab of ``support_z`` voxels round
the window centre; zero elsewhere in the ``n^3`` oversampled array), ``P_+`` positivity,
``c`` each point's gridding confidence and ``a_t`` the resolution-extension mask. With
``c = a_t = 1`` this is GENFIRE's error reduction (measured values replace the current
ones, the rest of Fourier space is free).

Weighting and resolution extension (our design)
------------------------------------------------
* *Confidence weighting*: a point whose value was gridded from a sample at distance
  ``d`` is only pulled a fraction ``c = 1 - (d / r)^2`` of the way to it (the sum of
  the weights when several samples meet, capped at 1). Points on a projection plane
  (``d = 0``) are enforced fully; far, poorly interpolated points less. The update is
  then a projected gradient step on ``sum c |F rho - M|^2`` with unit step, which
  converges for any ``0 < c <= 1``.
* *Resolution extension*: during the first ``extension`` fraction of the iterations
  only points with ``|g| <= q_t (n / 2)`` are enforced, ``q_t`` rising linearly from
  0.1 to 1; the low frequencies settle the mass and the sheet's position before the
  fine detail is fitted. ``extension = 0`` enforces everything from the start.

The error of iteration ``t`` is ``sum |M - F rho_t| / sum |M|`` over the enforced
(non-withheld) points, and the R-free the same sum over ``rfree_fraction`` of the
points withheld at random within 10 resolution shells (never enforced).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.fft as sfft

from hpcaet.errors import ConvergenceError, InputError
from hpcaet.reconstruct._common import (
    SheetSupport,
    WindowResult,
    check_fraction,
    check_iterations,
    check_projections,
    sheet_support,
)
from hpcaet.reconstruct.fourier import GriddedData, grid_projections
from hpcaet.reconstruct.slab_transform import Z_TRANSFORMS, SlabTransform

__all__ = ["genfire", "genfire_operator"]

_RFREE_SHELLS = 10
_EXTENSION_START = 0.1


def genfire(
    images: np.ndarray,
    euler: np.ndarray,
    *,
    support_z: int,
    iterations: int = 1000,
    oversampling: float = 3.0,
    interpolation_radius: float = 0.3,
    gridding: str = "dft",
    positivity: bool = True,
    confidence_weighting: bool = False,
    extension: float = 0.0,
    rfree_fraction: float = 0.05,
    sheet: SheetSupport | None = None,
    rng: np.random.Generator | int | None = None,
    workers: int = 1,
    z_transform: str = "auto",
) -> WindowResult:
    """Reconstruct one window with GENFIRE.

    Parameters
    ----------
    images : ndarray of shape (p, m, m)
        Window projections, centre pixel ``(m // 2, m // 2)`` on the window centre
        (:func:`hpcaet.reconstruct.crop_window`) [image units].
    euler : ndarray of shape (p, 3)
        Euler angles (Z, Y, X) of each projection [deg], :mod:`hpcaet.geometry`.
    support_z : int
        Thickness of the support slab round the window centre [voxels] (33 for a
        monolayer at 0.32 Å).
    iterations : int, default 1000
        Error-reduction iterations.
    oversampling : float, default 3
        Edge of the oversampled grid over the larger of the window edge and the slab
        thickness: ``n = round(oversampling max(m, support_z))``, rounded up to the next
        length with no prime factor above 11 (fast FFTs; 180 for the paper's windows).
    interpolation_radius : float, default 0.3
        Gridding radius [grid units], in (0, 0.5).
    gridding : {"dft", "fft"}, default "dft"
        How the projections reach the grid (:func:`~hpcaet.reconstruct.fourier.grid_projections`):
        exact DFTs at the grid points near each plane, or nearest-point FFT samples.
    positivity : bool, default True
        Clip negative densities after each update.
    confidence_weighting : bool, default False
        Scale each point's correction by its gridding confidence (see module notes);
        False (the default, as in ``defaults.yaml``) replaces the values outright, as the
        original GENFIRE.
    extension : float, default 0
        Fraction of the iterations over which the enforced resolution grows from 0.1
        to 1 of Nyquist (resolution extension); 0 disables it.
    rfree_fraction : float, default 0.05
        Fraction of the gridded points withheld for the R-free; 0 withholds none.
    sheet : SheetSupport, optional
        Shrink the support from the flat slab to the sheet's measured surface after
        ``sheet.start`` of the iterations; None keeps the flat slab throughout.
    rng : numpy.random.Generator or int or None
        Chooses the withheld points.
    workers : int, default 1
        Threads of the FFTs.
    z_transform : {"auto", "sparse", "fft"}, default "auto"
        The transform along z of :class:`~hpcaet.reconstruct.slab_transform.SlabTransform`:
        a sparse DFT at the points (thin slabs), zero-padded FFTs (thick slabs), or the
        cheaper of the two for these sizes. Both are exact; only time and memory differ.

    Returns
    -------
    WindowResult
        The support slab (``support_z, m, m``) in image units per voxel, the error and
        the R-free per iteration.

    Raises
    ------
    InputError
        Bad shapes or counts, NaN pixels, or parameters out of range.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((2, 16, 16), np.float32); img[:, 8, 8] = 1.0
    >>> out = genfire(img, [[0, 0, 0], [0, 20, 0]], support_z=5, iterations=20)
    >>> out.volume.shape, np.unravel_index(out.volume.argmax(), out.volume.shape)
    ((5, 16, 16), (np.int64(2), np.int64(8), np.int64(8)))
    """
    imgs, rotations = check_projections(images, euler, support_z=support_z)
    iterations = check_iterations(iterations)
    check_fraction("rfree_fraction", rfree_fraction, upper=0.5)
    check_fraction("extension", extension, closed=True)
    _check_oversampling(oversampling)
    start = time.perf_counter()
    data, op = _operator(
        imgs,
        rotations,
        support_z,
        oversampling,
        interpolation_radius,
        gridding,
        workers,
        z_transform,
    )
    m = imgs.shape[1]
    withheld = _withhold(data, rfree_fraction, np.random.default_rng(rng))

    measured = data.values
    weight = data.confidence if confidence_weighting else np.ones_like(data.confidence)
    weight = np.where(withheld, 0.0, weight).astype(np.float32)
    resolution = data.resolution
    norm_work = float(np.abs(measured[~withheld]).sum()) or 1.0
    norm_free = float(np.abs(measured[withheld]).sum())
    error = np.empty(iterations)
    rfree = np.full(iterations, np.nan)
    volume = np.zeros((support_z, m, m), dtype=np.float32)
    ramp = extension * iterations
    active, cutoff = weight, 1.0
    SheetSupport.check(sheet)
    switch = sheet.switch_iteration(iterations) if sheet is not None else iterations
    outside = None
    begin = time.perf_counter()
    for t in range(iterations):
        if t == switch:
            outside = ~sheet_support(volume, thickness=sheet.thickness, smoothing=sheet.smoothing)
            volume[outside] = 0.0
        if ramp > 0 and (t == 0 or cutoff < 1.0):
            cutoff = _EXTENSION_START + (1 - _EXTENSION_START) * min(1.0, t / ramp)
            active = np.where(resolution <= cutoff, weight, 0.0).astype(np.float32)
        diff = measured - op.forward(volume)
        size = np.abs(diff)
        error[t] = size[~withheld].sum() / norm_work
        if norm_free > 0:
            rfree[t] = size[withheld].sum() / norm_free
        volume += op.inverse(active * diff)
        if positivity:
            np.maximum(volume, 0.0, out=volume)
        if outside is not None:
            volume[outside] = 0.0
    if not np.all(np.isfinite(volume)):
        raise ConvergenceError(
            f"GENFIRE produced non-finite voxels after {iterations} iterations; check the "
            "projections for extreme values."
        )
    end = time.perf_counter()
    return WindowResult(
        volume=volume,
        error=error,
        rfree=rfree,
        setup_seconds=begin - start,
        iteration_seconds=end - begin,
    )


def genfire_operator(
    images: np.ndarray,
    euler: np.ndarray,
    *,
    support_z: int,
    oversampling: float = 3.0,
    interpolation_radius: float = 0.3,
    gridding: str = "dft",
    workers: int = 1,
    z_transform: str = "auto",
) -> tuple[GriddedData, SlabTransform]:
    """The gridded data and the pruned transform that :func:`genfire` iterates with.

    Exposed for benchmarks and tests (e.g. timing the transforms alone); the options are
    those of :func:`genfire`.
    """
    imgs, rotations = check_projections(images, euler, support_z=support_z)
    _check_oversampling(oversampling)
    return _operator(
        imgs,
        rotations,
        support_z,
        oversampling,
        interpolation_radius,
        gridding,
        workers,
        z_transform,
    )


def _check_oversampling(oversampling: float) -> None:
    if not (np.isfinite(oversampling) and oversampling >= 1):
        raise InputError(f"oversampling must be a number >= 1; got {oversampling!r}.")


def _operator(imgs, rotations, support_z, oversampling, radius, gridding, workers, z_transform):
    if z_transform not in Z_TRANSFORMS:  # before the gridding, which takes the time
        raise InputError(f"z_transform must be one of {Z_TRANSFORMS}; got {z_transform!r}.")
    m = imgs.shape[1]
    # the grid is oversampled along z too: a slab thicker than the window sets its size;
    # a prime factor in n would make every FFT ~2.5x slower, so n is rounded up to the
    # next 2-3-5-7-11-smooth length (180 for the paper's 60-voxel windows stays 180)
    n = sfft.next_fast_len(int(round(oversampling * max(m, support_z))))
    data = grid_projections(imgs, rotations, n=n, radius=radius, method=gridding, workers=workers)
    op = SlabTransform(
        m, support_z, n, data.gz, data.gy, data.gx, workers=workers, z_transform=z_transform
    )
    return data, op


def _withhold(data: GriddedData, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """R-free mask: ``fraction`` of the points of each resolution shell, drawn at random.

    A point on the ``gx = 0`` plane is withheld together with its Hermitian partner
    ``-g``, and the origin never is.
    """
    mask = np.zeros(len(data.values), dtype=bool)
    if fraction == 0:
        return mask
    n = data.n
    key = _canonical(data.gz, data.gy, data.gx, n)
    canon, inverse = np.unique(key, return_inverse=True)
    first = np.zeros(len(canon), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(key))[::-1]
    shell = np.minimum((data.resolution[first] * _RFREE_SHELLS).astype(int), _RFREE_SHELLS - 1)
    chosen = np.zeros(len(canon), dtype=bool)
    for s in range(_RFREE_SHELLS):
        members = np.flatnonzero(shell == s)
        take = int(np.floor(fraction * len(members)))
        chosen[rng.permutation(members)[:take]] = True
    origin = (data.gz == 0) & (data.gy == 0) & (data.gx == 0)
    return chosen[inverse] & ~origin


def _canonical(gz, gy, gx, n):
    """One key per Hermitian pair of the ``gx = 0`` plane, the flat index elsewhere."""
    flat = ((gz % n) * n + gy % n) * n + gx
    mirror = ((-gz % n) * n + (-gy) % n) * n + gx
    return np.where(gx == 0, np.minimum(flat, mirror), flat)
