"""Linear incoherent ADF image model: projected Gaussian atoms.

Atom ``i`` sits at ``r_i`` [Å] in the sample frame, carries an integrated scattering
cross-section ``w_i`` [Å²] (its *weight*; a vacancy has ``w_i = 0``) and a B-factor
``B_i`` [Å²]. Its density is an isotropic Gaussian of variance ``s_i² = B_i / (8π²)``
per axis (the Debye-Waller relation ``B = 8π²⟨u²⟩``), so its projection along the
beam has the same shape for every orientation. Image ``j`` is

.. math::

    I_j(\\mathbf{x}) = \\sum_i \\frac{w_i}{2\\pi s_i^2}
        \\exp\\left(-\\frac{|\\mathbf{x} - \\mathbf{p}_{ij}|^2}{2 s_i^2}\\right),
    \\qquad \\mathbf{p}_{ij} = P R_j \\mathbf{r}_i + \\mathbf{o}_j,

point-sampled at the pixel centres of :mod:`hpcaet.geometry`, with ``R_j`` the rotation
of the image's Euler angles, ``P`` the projection onto the microscope x-y plane and
``o_j`` an optional in-image shift [Å]. Images are dimensionless (the fraction of probe
electrons scattered onto the detector per Å² of dose), and ``sum(I_j) * pixel_size**2``
equals ``sum(w)`` for atoms well inside the field of view.

Each Gaussian is truncated to ``|x - p| <= cutoff * s`` and ``|y - p| <= cutoff * s``
(a square window) and evaluated on a local patch as the outer product of two 1D
factors, so the cost is ``O(n_atoms * n_images * patch_width**2)`` whatever the image
size. Patches that reach past the image border are clipped.

References
----------
E. J. Kirkland, *Advanced Computing in Electron Microscopy*, 3rd ed., Springer (2020),
chapter on incoherent (ADF-STEM) imaging.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from hpcaet.errors import InputError
from hpcaet.forward._patches import _CHUNK_SAMPLES, _axis_window, _patch_width, _scatter_add, _sigma
from hpcaet.forward._validate import (
    _check_atoms,
    _check_dtype,
    _check_images,
    _check_orientations,
    _check_positive,
    _check_shape,
)
from hpcaet.geometry import euler_to_matrix, position_to_pixel, project_points

__all__ = [
    "ProjectionGradient",
    "project_atoms",
    "project_atoms_adjoint",
    "project_atoms_vjp",
    "projection_loss",
    "species_table",
]


class ProjectionGradient(NamedTuple):
    """Vector-Jacobian product of :func:`project_atoms` (unpacks as a 4-tuple).

    Attributes
    ----------
    positions : ndarray of shape (n, 3)
        With respect to the atom positions [1/Å × cotangent units].
    weights : ndarray of shape (n,)
        With respect to the weights [1/Å² × cotangent units].
    b_factors : ndarray of shape (n,)
        With respect to the B-factors [1/Å² × cotangent units].
    offsets : ndarray of shape (m, 2)
        With respect to the per-image shifts ``(x, y)`` [1/Å × cotangent units].
    """

    positions: np.ndarray
    weights: np.ndarray
    b_factors: np.ndarray
    offsets: np.ndarray


def project_atoms(
    positions: ArrayLike,
    weights: ArrayLike,
    b_factors: ArrayLike,
    euler: ArrayLike,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    offsets: ArrayLike | None = None,
    cutoff: float = 4.0,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """Project Gaussian atoms into images (the forward model ``A(r, w, B)``).

    Parameters
    ----------
    positions : array_like of shape (n, 3)
        Atom positions ``x, y, z`` in the sample frame [Å]. An empty list (``n = 0``)
        is allowed and gives zero images.
    weights : array_like of shape (n,) or scalar
        Integrated scattering cross-sections [Å²]; a scalar applies to every atom.
    b_factors : array_like of shape (n,) or scalar
        B-factors [Å²], strictly positive; ``s = sqrt(B / (8π²))`` [Å].
    euler : array_like of shape (m, 3) or (3,)
        Euler angles ``(phi, theta, psi)`` of each image [degrees], convention of
        :mod:`hpcaet.geometry`. A single triple means ``m = 1``.
    shape : tuple of int
        Image shape ``(ny, nx)`` [pixels].
    pixel_size : float
        Pixel size [Å].
    offsets : array_like of shape (m, 2), optional
        In-image shift ``(x, y)`` [Å] added to every projected position of image ``j``.
    cutoff : float, default 4.0
        Truncation radius of each Gaussian, per axis, in standard deviations.
    dtype : data-type, default float64
        Floating dtype of the output; the computation is always float64.

    Returns
    -------
    ndarray of shape (m, ny, nx)
        Images, dimensionless, even when ``euler`` has shape (3,).

    Raises
    ------
    InputError
        On a wrong shape, a non-finite value, a non-positive B-factor, pixel size or
        cutoff, or a number of offsets different from the number of images.

    Examples
    --------
    >>> import numpy as np
    >>> img = project_atoms([[0.0, 0.0, 0.0]], [1.0], [15.0], [0.0, 0.0, 0.0],
    ...                     shape=(32, 32), pixel_size=0.32)
    >>> img.shape
    (1, 32, 32)
    >>> [int(i) for i in np.unravel_index(img[0].argmax(), (32, 32))]
    [16, 16]
    >>> round(float(img.sum()) * 0.32**2, 3)
    1.0
    """
    r, (w, b) = _check_atoms(positions, weights, b_factors)
    angles, shifts = _check_orientations(euler, offsets)
    ny, nx = _check_shape(shape, ndim=2)
    _check_positive("pixel_size", pixel_size, "Å")
    _check_positive("cutoff", cutoff, "standard deviations")
    out_dtype = _check_dtype(dtype)
    m = len(angles)
    out = np.zeros(m * ny * nx)
    if len(r):
        sigma = _sigma(b)
        amplitude = w / (2.0 * np.pi * sigma**2)
        centres = _image_positions(r, angles, shifts)
        for win in _windows(centres, sigma, (ny, nx), pixel_size, cutoff):
            values = (amplitude[win.atom, None] * win.gy)[:, :, None] * win.gx[:, None, :]
            _scatter_add(out, win.flat_indices(), values)
    return out.reshape(m, ny, nx).astype(out_dtype, copy=False)


def project_atoms_adjoint(
    images: ArrayLike,
    positions: ArrayLike,
    b_factors: ArrayLike,
    euler: ArrayLike,
    *,
    pixel_size: float,
    offsets: ArrayLike | None = None,
    cutoff: float = 4.0,
) -> np.ndarray:
    """Back-project images onto atom sites: the adjoint of ``weights -> images``.

    For fixed positions and B-factors :func:`project_atoms` is linear in the weights,
    ``images = A w``; this returns ``A^T y``, so that
    ``<A w, y> = <w, A^T y>`` to rounding.

    Parameters
    ----------
    images : array_like of shape (m, ny, nx), or (ny, nx) when m = 1
        Images to back-project (dimensionless).
    positions : array_like of shape (n, 3)
        Atom positions in the sample frame [Å].
    b_factors : array_like of shape (n,) or scalar
        B-factors [Å²], strictly positive.
    euler : array_like of shape (m, 3) or (3,)
        Euler angles of each image [degrees].
    pixel_size : float
        Pixel size [Å].
    offsets : array_like of shape (m, 2), optional
        In-image shifts ``(x, y)`` [Å].
    cutoff : float, default 4.0
        Truncation radius in standard deviations, as in :func:`project_atoms`.

    Returns
    -------
    ndarray of shape (n,)
        ``A^T y`` [1/Å²]; empty when there are no atoms.

    Raises
    ------
    InputError
        As :func:`project_atoms`, and when the number of images differs from the
        number of Euler triples.
    """
    r, (b,) = _check_atoms(positions, b_factors, names=("b_factors",))
    angles, shifts = _check_orientations(euler, offsets)
    y = _check_images(images, len(angles), "images")
    _check_positive("pixel_size", pixel_size, "Å")
    _check_positive("cutoff", cutoff, "standard deviations")
    n = len(r)
    if n == 0:
        return np.zeros(0)
    sigma = _sigma(b)
    per_item = np.zeros((len(angles), n))
    y_flat = y.ravel()
    for win in _windows(
        _image_positions(r, angles, shifts), sigma, y.shape[1:], pixel_size, cutoff
    ):
        patch = y_flat[win.flat_indices()]
        u = np.matmul(patch, win.gx[:, :, None])[:, :, 0]
        per_item[win.image, win.atom] = np.einsum("cr,cr->c", win.gy, u)
    return per_item.sum(axis=0) / (2.0 * np.pi * sigma**2)


def project_atoms_vjp(
    cotangent: ArrayLike,
    positions: ArrayLike,
    weights: ArrayLike,
    b_factors: ArrayLike,
    euler: ArrayLike,
    *,
    pixel_size: float,
    offsets: ArrayLike | None = None,
    cutoff: float = 4.0,
) -> ProjectionGradient:
    """Vector-Jacobian product of :func:`project_atoms`.

    Returns ``J^T c`` for the Jacobian ``J`` of the images with respect to positions,
    weights, B-factors and offsets. With ``cotangent = project_atoms(...) - measured``
    it is the gradient of ``0.5 * ||project_atoms(...) - measured||²``. The truncation
    window is treated as fixed (its edges move the image by ``exp(-cutoff²/2)`` of the
    peak at most), so this is the exact derivative almost everywhere.

    Parameters
    ----------
    cotangent : array_like of shape (m, ny, nx), or (ny, nx) when m = 1
        Vector in image space (dimensionless, e.g. a residual).
    positions : array_like of shape (n, 3)
        Atom positions in the sample frame [Å].
    weights : array_like of shape (n,) or scalar
        Integrated cross-sections [Å²].
    b_factors : array_like of shape (n,) or scalar
        B-factors [Å²], strictly positive.
    euler : array_like of shape (m, 3) or (3,)
        Euler angles of each image [degrees].
    pixel_size : float
        Pixel size [Å].
    offsets : array_like of shape (m, 2), optional
        In-image shifts ``(x, y)`` [Å]; zero when omitted (the gradient with respect
        to them is returned all the same).
    cutoff : float, default 4.0
        Truncation radius in standard deviations, as in :func:`project_atoms`.

    Returns
    -------
    ProjectionGradient
        Named tuple ``(positions (n, 3), weights (n,), b_factors (n,), offsets (m, 2))``;
        unpack it as ``d_r, d_w, d_b, d_o = project_atoms_vjp(...)``.

    Raises
    ------
    InputError
        As :func:`project_atoms_adjoint`.
    """
    r, (w, b) = _check_atoms(positions, weights, b_factors)
    angles, shifts = _check_orientations(euler, offsets)
    y = _check_images(cotangent, len(angles), "cotangent")
    _check_positive("pixel_size", pixel_size, "Å")
    _check_positive("cutoff", cutoff, "standard deviations")
    m, n = len(angles), len(r)
    if n == 0:
        return ProjectionGradient(np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros((m, 2)))
    sigma = _sigma(b)
    # Per (image, atom) contractions of the cotangent with the separable patch:
    # s0 = sum gy*c*gx, sx = sum gy*c*gx*dx, sxx = sum gy*c*gx*dx^2 (and y alike).
    s0, sx, sy, sxx, syy = np.zeros((5, m, n))
    y_flat = y.ravel()
    for win in _windows(
        _image_positions(r, angles, shifts), sigma, y.shape[1:], pixel_size, cutoff
    ):
        patch = y_flat[win.flat_indices()]
        u = np.matmul(patch, win.gx[:, :, None])[:, :, 0]  # summed over columns
        v = np.matmul(win.gy[:, None, :], patch)[:, 0, :]  # summed over rows
        gyu, vgx = win.gy * u, v * win.gx
        idx = (win.image, win.atom)
        s0[idx] = gyu.sum(axis=1)
        sy[idx] = np.einsum("cr,cr->c", gyu, win.dy)
        syy[idx] = np.einsum("cr,cr->c", gyu, win.dy**2)
        sx[idx] = np.einsum("ck,ck->c", vgx, win.dx)
        sxx[idx] = np.einsum("ck,ck->c", vgx, win.dx**2)
    norm = 1.0 / (2.0 * np.pi * sigma**2)
    amplitude = w * norm
    d_weights = norm * s0.sum(axis=0)
    d_centres = np.stack([sx, sy], axis=-1) * (amplitude / sigma**2)[:, None]  # (m, n, 2)
    d_sigma = amplitude * (-2.0 * s0.sum(axis=0) / sigma + (sxx + syy).sum(axis=0) / sigma**3)
    d_b = d_sigma / (16.0 * np.pi**2 * sigma)  # ds/dB = 1 / (16 π² s)
    rotation = euler_to_matrix(angles)[:, :2, :]  # (m, 2, 3)
    d_positions = np.einsum("jab,jia->ib", rotation, d_centres)
    return ProjectionGradient(d_positions, d_weights, d_b, d_centres.sum(axis=1))


def projection_loss(
    measured: ArrayLike,
    positions: ArrayLike,
    weights: ArrayLike,
    b_factors: ArrayLike,
    euler: ArrayLike,
    *,
    pixel_size: float,
    offsets: ArrayLike | None = None,
    cutoff: float = 4.0,
) -> tuple[float, ProjectionGradient]:
    """Least-squares misfit ``0.5 * ||project_atoms(...) - measured||²`` and its gradient.

    Parameters
    ----------
    measured : array_like of shape (m, ny, nx), or (ny, nx) when m = 1
        Measured images (dimensionless), on the same grid as the model.
    positions, weights, b_factors, euler, pixel_size, offsets, cutoff
        As in :func:`project_atoms`.

    Returns
    -------
    loss : float
        Half the sum of squared residuals (dimensionless).
    grads : ProjectionGradient
        Gradient of ``loss`` with respect to positions, weights, B-factors and offsets,
        as returned by :func:`project_atoms_vjp`.

    Raises
    ------
    InputError
        As :func:`project_atoms_adjoint`.
    """
    angles = _check_orientations(euler, offsets)[0]
    y = _check_images(measured, len(angles), "measured")
    options = {"pixel_size": pixel_size, "offsets": offsets, "cutoff": cutoff}
    model = project_atoms(positions, weights, b_factors, euler, shape=y.shape[1:], **options)
    residual = model - y
    loss = 0.5 * float(np.vdot(residual, residual))
    return loss, project_atoms_vjp(residual, positions, weights, b_factors, euler, **options)


def species_table(species: ArrayLike, table: Mapping[str, float]) -> np.ndarray:
    """Per-atom values looked up from a species table.

    Parameters
    ----------
    species : array_like of str, shape (n,)
        Species label of each atom, e.g. ``'Mo'``, ``'W'``, ``'S'``, ``'Se'``, ``'vac'``.
    table : mapping of str to float
        Value of each species, e.g. cross-sections [Å²] or B-factors [Å²].

    Returns
    -------
    ndarray of shape (n,)
        ``table[species[i]]`` for each atom, as float64.

    Raises
    ------
    InputError
        When a species is missing from ``table`` or a value is not a number.

    Examples
    --------
    >>> species_table(["Mo", "S", "vac"], {"Mo": 1.2, "S": 0.3, "vac": 0.0})
    array([1.2, 0.3, 0. ])
    """
    labels = np.asarray(species, dtype=str)
    known = {str(key): value for key, value in table.items()}
    unique, inverse = np.unique(labels, return_inverse=True)
    missing = [str(s) for s in unique if str(s) not in known]
    if missing:
        raise InputError(
            f"unknown species {missing}; the table knows {sorted(known)}. Add them to the "
            "table or relabel the atoms."
        )
    try:
        values = np.array([float(known[str(s)]) for s in unique])
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"species table values must be numbers; got {dict(known)!r}. Fix the table."
        ) from exc
    return values[inverse].reshape(labels.shape)


# --------------------------------------------------------------------------- helpers


class _Window(NamedTuple):
    """Separable patch of a chunk of (image, atom) pairs, patch width ``k``."""

    image: np.ndarray  # (c,) image index
    atom: np.ndarray  # (c,) atom index
    row_base: np.ndarray  # (c, k) flat index of each patch row's first pixel
    cols: np.ndarray  # (c, k) column indices, clipped into the image
    dy: np.ndarray  # (c, k) pixel-centre y minus atom y [Å]
    dx: np.ndarray  # (c, k) pixel-centre x minus atom x [Å]
    gy: np.ndarray  # (c, k) exp(-dy²/2s²), zero outside the window or the image
    gx: np.ndarray  # (c, k) exp(-dx²/2s²), zero outside the window or the image

    def flat_indices(self) -> np.ndarray:
        """Flat indices into the ``(m, ny, nx)`` stack, shape (c, k, k)."""
        return self.row_base[:, :, None] + self.cols[:, None, :]


def _windows(
    centres: np.ndarray,
    sigma: np.ndarray,
    shape: tuple[int, int],
    pixel_size: float,
    cutoff: float,
) -> Iterator[_Window]:
    """Yield separable patches of all (image, atom) pairs in memory-bounded chunks.

    ``centres`` is (m, n, 2) image positions [Å]. Atoms are visited in order of
    increasing width, so a chunk's patch width fits its own atoms, not the widest.
    """
    m, n = centres.shape[:2]
    ny, nx = shape
    rowcol = position_to_pixel(centres, shape, pixel_size)  # (m, n, 2) fractional
    half = cutoff * sigma / pixel_size  # window half-width [pixels]
    order = np.argsort(half, kind="stable")
    chunk = max(1, _CHUNK_SAMPLES // _patch_width(half.max()) ** 2)
    for start in range(0, m * n, chunk):
        item = np.arange(start, min(start + chunk, m * n))
        image, atom = item // n, order[item % n]
        h = half[atom]
        width = _patch_width(h.max())
        rows, dy, gy = _axis_window(rowcol[image, atom, 0], h, ny, width)
        cols, dx, gx = _axis_window(rowcol[image, atom, 1], h, nx, width)
        s = sigma[atom, None]
        dy *= pixel_size
        dx *= pixel_size
        gy *= np.exp(-0.5 * (dy / s) ** 2)
        gx *= np.exp(-0.5 * (dx / s) ** 2)
        row_base = (image[:, None] * ny + rows) * nx
        yield _Window(image, atom, row_base, cols, dy, dx, gy, gx)


def _image_positions(r: np.ndarray, angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Projected positions ``(x, y)`` [Å] of every atom in every image, (m, n, 2)."""
    return project_points(r, angles) + shifts[:, None, :]
