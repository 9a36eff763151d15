"""Refine atom positions and per-species parameters against the measured images.

Following the Methods of Tian et al. ("Refinement of 3D atomic coordinates"), the
traced model is refined by minimising the misfit between the measured images and the
images the linear forward model (:func:`hpcaet.forward.project_atoms`) computes from it
at the calibrated angles:

.. math::

    L = \\frac12 \\sum_j \\sum_{p \\in S_j}
        \\left(s_j A_j(\\mathbf r, w, B)_p + c_j - I_{jp}\\right)^2

over the atom positions ``r``, the per-species cross-sections ``w`` (the model's
weights) and B-factors ``B``, and optionally a per-image shift of the projections
(residual misalignment). The per-image scale ``s_j`` (the dose per pixel: images are in
counts, the model is dimensionless) and offset ``c_j`` are solved in closed form at
every evaluation (variable projection), so the outer problem only sees the structural
parameters. ``S_j`` is the support of image ``j``: pixels within ``margin`` of a
projected site, so vacuum does not dilute the fit or the R factors.

The gradient comes from :func:`hpcaet.forward.project_atoms_vjp`; a species' gradient
is the sum of its atoms' gradients. The minimiser is L-BFGS-B (scipy), with positions
preconditioned by each atom's expected curvature ``w_i / s_i²``. Images are split into
chunks whose losses and gradients add up, so a ``mapper`` can spread the chunks over a
cluster; without one they run here, in turn.

Quality is reported as R1 (Yang et al., Nature 542, 75 (2017), eq. 5) and R (Tian et
al., Table S1 footnote b):

.. math::

    R_1 = \\frac{\\sum |I_{meas} - I_{calc}|}{\\sum |I_{meas}|},\\qquad
    R = \\frac{\\sum \\big||F_{meas}| - |F_{calc}|\\big|}{\\sum |F_{meas}|}.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from hpcaet.atoms.blur import blur_images, check_kernels
from hpcaet.atoms.objective import (
    chunk_objective,
    pixel_weights,
    r_sums,
    split_images,
    support_mask,
)
from hpcaet.errors import InputError
from hpcaet.forward import project_atoms
from hpcaet.geometry import euler_to_matrix
from hpcaet.materials import VACANCY
from hpcaet.parallel.progress import Progress
from hpcaet.parallel.tasks import Mapper, serial_map

__all__ = ["RefineResult", "refine_atoms"]

log = logging.getLogger(__name__)


_B_BOUNDS = (0.5, 300.0)  # [Å²]


class RefineResult(NamedTuple):
    """Output of :func:`refine_atoms`.

    Attributes
    ----------
    position : ndarray of shape (n, 3)
        Refined positions [Å] (vacancy sites unchanged).
    weights, b_factors : dict of str to float
        Refined cross-section [model units: Å²] and B-factor [Å²] of each species.
    scale, offset : ndarray of shape (m,)
        Per-image scale [counts per unit model] and offset [counts].
    shifts : ndarray of shape (m, 2)
        Per-image shift of the projections ``(x, y)`` [Å].
    history : ndarray of shape (n_iter + 1, 2)
        Loss (relative to ``sum(measured**2)`` over the support) and R1 after each
        iteration, the start first.
    R1, R : float
        Final R factors over the support.
    """

    position: np.ndarray
    weights: dict[str, float]
    b_factors: dict[str, float]
    scale: np.ndarray
    offset: np.ndarray
    shifts: np.ndarray
    history: np.ndarray
    R1: float
    R: float


def refine_atoms(
    images: ArrayLike,
    euler: ArrayLike,
    position: ArrayLike,
    species: ArrayLike,
    *,
    pixel_size: float,
    weights: Mapping[str, float],
    b_factors: Mapping[str, float],
    iterations: int = 100,
    tolerance: float = 1e-7,
    fit_positions: bool = True,
    fit_species: bool = True,
    fit_shifts: bool = True,
    shifts: ArrayLike | None = None,
    margin: float = 3.0,
    noise: str = "poisson",
    chunk: int = 4,
    kernels: Sequence[np.ndarray | None] | None = None,
    footprint: np.ndarray | None = None,
    mapper: Mapper | None = None,
) -> RefineResult:
    """Refine positions, per-species cross-sections and B-factors against images.

    Parameters
    ----------
    images : array_like of shape (m, ny, nx)
        Measured images [counts], background subtracted, aligned.
    euler : array_like of shape (m, 3)
        Calibrated Euler angles [deg].
    position : array_like of shape (n, 3)
        Initial sites [Å]; sites of species ``"vac"`` are kept fixed and add nothing.
    species : array_like of str, shape (n,)
    pixel_size : float
        [Å]; also the voxel size of the volume the sites were traced in.
    weights, b_factors : mapping of str to float
        Initial cross-section [Å²] and B-factor [Å²] of every species present.
    iterations : int, default 100
        Largest number of L-BFGS iterations.
    tolerance : float, default 1e-7
        Stop when an iteration lowers the loss by less than this fraction of the
        starting loss.
    fit_positions, fit_species, fit_shifts : bool, default True
        Which parameters move.
    shifts : array_like of shape (m, 2), optional
        Initial per-image shifts [Å]; zero by default.
    margin : float, default 3.0
        Support of the fit: pixels within this distance of a projected site [Å].
    noise : {"poisson", "uniform"}, default "poisson"
        Pixel weights of the loss: ``"poisson"`` weighs each pixel by the inverse of its
        noise variance, estimated as the locally smoothed counts plus the variance of
        the vacuum pixels (counting plus detector noise: the maximum-likelihood fit of
        raw counts); ``"uniform"`` weighs all pixels of the support alike (plain least
        squares, for images whose noise was changed by denoising).
    chunk : int, default 4
        Images per chunk (one task each with a ``mapper``).
    kernels : sequence of m ndarrays of odd shape (k, k) or None, optional
        Blur of each calculated image before it is compared with the measured one
        (the vibration kernels of images that were not deconvolved, from
        :func:`~hpcaet.atoms.blur.vibration_kernels`); None: no blur.
    footprint : ndarray of bool, shape (m, ny, nx), optional
        Pixels that may be fitted at all (:func:`~hpcaet.atoms.objective.footprint_mask`:
        those that see no atom beyond the model); None: every pixel.
    mapper : callable, optional
        ``mapper(func, jobs, shared)`` (:data:`hpcaet.parallel.Mapper`) returns
        ``[chunk_objective(c, **params) for c in chunks]``, possibly computed elsewhere
        (:class:`hpcaet.parallel.TaskMapper` over a Dask executor); default: here.

    Returns
    -------
    RefineResult

    Raises
    ------
    InputError
        On inconsistent shapes, unknown species, or no atom to refine.
    """
    y = np.asarray(images, dtype=float)
    angles = np.asarray(euler, dtype=float)
    r0 = np.asarray(position, dtype=float)
    spec = np.asarray(species).astype(str)
    if y.ndim != 3 or angles.shape != (len(y), 3):
        raise InputError(
            f"images must be (m, ny, nx) with euler (m, 3); got {y.shape} and {angles.shape}."
        )
    if r0.ndim != 2 or r0.shape[1] != 3 or spec.shape != (len(r0),):
        raise InputError(
            f"position (n, 3) and species (n,) must agree; got {r0.shape} and {spec.shape}."
        )
    atom = spec != VACANCY
    if not atom.any():
        raise InputError("no atom to refine: every site is a vacancy.")
    names = sorted(set(spec[atom]))
    unknown = [s for s in names if s not in weights or s not in b_factors]
    if unknown:
        raise InputError(
            f"weights and b_factors need a value for species {unknown}; got "
            f"{sorted(weights)} and {sorted(b_factors)}."
        )
    sidx = np.searchsorted(names, spec[atom])
    n_sp, m = len(names), len(y)
    w0 = np.array([float(weights[s]) for s in names])
    b0 = np.array([float(b_factors[s]) for s in names])
    t0 = np.zeros((m, 2)) if shifts is None else np.asarray(shifts, float).reshape(m, 2)
    if noise not in ("poisson", "uniform"):
        raise InputError(f"noise must be 'poisson' or 'uniform'; got {noise!r}.")
    mask = support_mask(
        r0, angles, shape=y.shape[1:], pixel_size=pixel_size, margin=margin, shifts=t0
    )
    if footprint is not None:
        footprint = np.asarray(footprint, dtype=bool)
        if footprint.shape != y.shape:
            raise InputError(
                f"footprint must have the images' shape {y.shape}; got {footprint.shape}."
            )
        mask &= footprint
    weight = pixel_weights(y, mask) if noise == "poisson" else mask.astype(float)
    kernels = check_kernels(kernels, m)
    chunks = split_images(y, angles, weight, chunk=chunk, kernels=kernels)
    run = mapper or serial_map
    norm = max(float(np.sum(weight * y**2)), 1e-300)
    ra = r0[atom]
    sigma2 = b0[sidx] / (8 * np.pi**2)
    precond = w0[sidx] / sigma2
    precond = precond / np.median(precond)
    # The projections constrain z less than x and y (tilts of a few tens of degrees):
    # scale the axes by the square root of sum_j R_j^T P^T P R_j.
    rot = euler_to_matrix(angles)[:, :2, :]
    geom = np.einsum("jai,jak->ik", rot, rot) / m
    evals, evecs = np.linalg.eigh(geom)
    axes = evecs * np.sqrt(np.maximum(evals, 1e-3 * evals.max()))  # geom = axes @ axes.T

    # Parameter vector: scaled positions, log weights, log B-factors, shifts.
    sizes = [
        3 * len(ra) if fit_positions else 0,
        n_sp if fit_species else 0,
        n_sp if fit_species else 0,
        2 * m if fit_shifts else 0,
    ]
    bounds_at = np.cumsum([0] + sizes)

    def unpack(x):
        p = (
            (x[bounds_at[0] : bounds_at[1]].reshape(-1, 3) @ np.linalg.inv(axes)) / precond[:, None]
            if fit_positions
            else ra
        )
        lw = x[bounds_at[1] : bounds_at[2]] if fit_species else np.log(w0)
        lb = x[bounds_at[2] : bounds_at[3]] if fit_species else np.log(b0)
        t = x[bounds_at[3] : bounds_at[4]].reshape(m, 2) if fit_shifts else t0
        return p, np.exp(lw), np.exp(lb), t

    x0 = np.concatenate(
        [
            ((ra * precond[:, None]) @ axes).ravel() if fit_positions else [],
            np.log(w0) if fit_species else [],
            np.log(b0) if fit_species else [],
            t0.ravel() if fit_shifts else [],
        ]
    )
    state: dict = {}

    def objective(x):
        p, w, b, t = unpack(x)
        params = {
            "position": p,
            "weight": w[sidx],
            "b_factor": b[sidx],
            "shifts": t,
            "pixel_size": pixel_size,
        }
        terms = run(chunk_objective, [(c,) for c in chunks], params)
        loss = sum(tm.loss for tm in terms)
        g = []
        if fit_positions:
            g.append(
                (
                    (sum(tm.d_positions for tm in terms) / precond[:, None]) @ np.linalg.inv(axes).T
                ).ravel()
            )
        if fit_species:
            dw = np.bincount(sidx, sum(tm.d_weights for tm in terms), minlength=n_sp)
            db = np.bincount(sidx, sum(tm.d_b_factors for tm in terms), minlength=n_sp)
            g += [dw * w, db * b]
        if fit_shifts:
            d_t = np.zeros((m, 2))
            for c, tm in zip(chunks, terms, strict=True):
                d_t[c.index] = tm.d_shifts
            g.append(d_t.ravel())
        state["scale"] = np.concatenate([tm.scale for tm in terms])
        state["offset"] = np.concatenate([tm.offset for tm in terms])
        state["r1"] = sum(tm.abs_residual for tm in terms) / max(
            sum(tm.abs_measured for tm in terms), 1e-300
        )
        state["loss"] = loss / norm
        return loss / norm, np.concatenate(g) / norm if g else np.zeros(0)

    bounds = (
        [(None, None)] * (sizes[0] + sizes[1])
        + [tuple(np.log(_B_BOUNDS))] * sizes[2]
        + [(None, None)] * sizes[3]
    )
    f0, _ = objective(x0)
    history = [(f0, state["r1"])]

    progress = Progress(
        "atoms: refine", int(iterations), unit="iterations (at most)", log_end=False
    )

    def record(_x):
        history.append((state["loss"], state["r1"]))
        progress.advance()

    if len(x0) and iterations > 0:
        res = minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            callback=record,
            options={
                "maxiter": int(iterations),
                "maxcor": 20,
                "ftol": tolerance * f0,
                "gtol": 1e-12,
            },
        )
        x = res.x
        progress.finish()
        log.info(
            "refine: %d iterations, loss %.5g -> %.5g, R1 %.4f -> %.4f (%s)",
            res.nit,
            f0,
            res.fun,
            history[0][1],
            history[-1][1],
            res.message,
        )
    else:
        x = x0
    p, w, b, t = unpack(x)
    if fit_shifts and fit_positions:
        # A translation of all atoms by u and shifts t_j - P R_j u give the same images:
        # keep the images' frame by moving the mean translation of the shifts onto
        # the atoms (then the shifts hold no common translation).
        u = np.linalg.solve(geom * m, np.einsum("jai,ja->i", rot, t - t0))
        p, t = p + u, t - np.einsum("jai,i->ja", rot, u)
        x = np.concatenate(
            [((p * precond[:, None]) @ axes).ravel(), x[bounds_at[1] : bounds_at[3]], t.ravel()]
        )
    objective(x)  # scales and offsets at the solution
    out = r0.copy()
    out[atom] = p
    r1, r = _final_r(chunks, p, w[sidx], b[sidx], t, state["scale"], state["offset"], pixel_size)
    return RefineResult(
        position=out,
        weights={s: float(v) for s, v in zip(names, w, strict=True)},
        b_factors={s: float(v) for s, v in zip(names, b, strict=True)},
        scale=state["scale"],
        offset=state["offset"],
        shifts=t,
        history=np.asarray(history),
        R1=r1,
        R=r,
    )


def _final_r(chunks, position, weight, b_factor, shifts, scale, offset, pixel_size):
    """R1 and R of the model over all chunks (computed here: one pass)."""
    sums = np.zeros(4)
    for c in chunks:
        calc = project_atoms(
            position,
            weight,
            b_factor,
            c.euler,
            shape=c.images.shape[1:],
            pixel_size=pixel_size,
            offsets=shifts[c.index],
        )
        calc = blur_images(calc, c.kernels)
        calc = scale[c.index, None, None] * calc + offset[c.index, None, None]
        sums += r_sums(c.images, calc, c.weight > 0)
    return float(sums[0] / max(sums[1], 1e-300)), float(sums[2] / max(sums[3], 1e-300))
