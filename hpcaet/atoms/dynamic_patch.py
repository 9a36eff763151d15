"""The calculated image of one crop at one trial position of one atom, by multislice.

A crop of ``crop × crop`` pixels of one image is centred on the scanned atom's
projection. Its calculated image at a trial position ``g`` of the atom is

``C_g = blur(B + paste_P(S_g - S_0))``

* ``B`` is the *baseline*: the multislice ADF image of the crop (plus a margin for the
  blur) with every atom but the scanned one, drawn tile by tile once per atom and image
  (:func:`hpcaet.forward.adf.adf_tile`);
* ``P`` is the *patch*: the probe positions within ``patch_radius`` of the atom's
  projection at any grid point (95 % of the image change from moving one S atom lies
  within about 3 Å of it); it is the same set of pixels at every grid point;
* ``S_g`` is the ADF signal at the patch's probe positions computed in one small
  periodic cell around the patch (the patch plus ``padding`` on every side) holding
  the atoms of that cell, the scanned atom at ``g``; ``S_0`` is the same without the
  scanned atom. Their difference is the scanned atom's effect, dynamical scattering
  with its neighbours included, and the errors of the small cell (wrap-around,
  missing far atoms) cancel in it to first order;
* the projected potential of the other atoms of the cell is built once per atom and
  image (:func:`patch_setup`) and the scanned atom's own potential (abTEM, finite
  projection: a z move changes it continuously) is added to it at every grid point
  (projected potentials add exactly), so a scan point costs the propagation of the
  patch's probes only;
* ``blur`` is the incoherent Gaussian of the run and each image's vibration kernel.

Every approximation (the patch, the cell, the baseline) is the same at every grid
point of one atom: only the scanned atom moves. Each image's scale and offset against
the measured crop are solved in closed form, and ``R1 = Σ|meas − (k C + c)| / Σ|meas|``
over the crops of all images (:func:`scan_point`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from hpcaet.forward.adf import ADFOptics, ADFSettings, adf_scan, cell_gpts
from hpcaet.forward.multislice import _abtem

__all__ = ["patch_setup", "atom_potential", "patch_signal", "calculated_crops", "scan_point"]


def _atoms(symbols, positions, cell):
    import ase

    return ase.Atoms(list(np.asarray(symbols).astype(str)), positions=positions, cell=cell)


def atom_potential(
    symbols: np.ndarray,
    positions: np.ndarray,
    *,
    extent: float,
    depth: float,
    gpts: int,
    settings: ADFSettings,
) -> np.ndarray:
    """Sliced projected potential of atoms in a cell, by abTEM (Lobato parametrisation).

    Parameters
    ----------
    symbols : ndarray of str, shape (n,)
    positions : ndarray of shape (n, 3)
        Positions in the cell, z along the beam from the cell's top [Å].
    extent : float
        Side of the square cell [Å].
    depth : float
        Depth of the cell [Å]: ``ceil(depth / slice_thickness)`` slices.
    gpts : int
        Grid points per side.
    settings : ADFSettings

    Returns
    -------
    ndarray of float32, shape (n_slices, gpts, gpts)
        [V Å] per slice.
    """
    abtem = _abtem()
    cell = [extent, extent, depth]
    if len(positions) == 0:  # an empty cell: the slices of the same cell, zero
        empty = abtem.Potential(
            _atoms(["S"], [[0.0, 0.0, 0.0]], cell),
            gpts=(gpts, gpts),
            slice_thickness=settings.slice_thickness,
        )
        return np.zeros((empty.num_slices, gpts, gpts), np.float32)
    potential = abtem.Potential(
        _atoms(symbols, positions, cell),
        gpts=(gpts, gpts),
        slice_thickness=settings.slice_thickness,
        projection=settings.projection,
    ).build()
    return np.asarray(
        potential.compute(scheduler="synchronous", progress_bar=False).array, np.float32
    )


def patch_signal(
    potential: np.ndarray,
    probes: np.ndarray,
    *,
    extent: float,
    optics: ADFOptics,
    settings: ADFSettings,
) -> np.ndarray:
    """ADF signal of probes in a cell of given sliced potential (multislice or PRISM).

    Parameters
    ----------
    potential : ndarray of shape (n_slices, g, g)
        [V Å] per slice (:func:`atom_potential`).
    probes : ndarray of shape (k, 2)
        Probe positions ``x, y`` in the cell [Å].
    extent : float
        Side of the square cell [Å].
    optics, settings
        The microscope and the numerics (``engine``, ``slice_thickness``,
        ``prism_interpolation``).

    Returns
    -------
    ndarray of shape (k,)
        Fraction of one probe electron on the detector.
    """
    abtem = _abtem()
    array = abtem.PotentialArray(
        np.asarray(potential, np.float32),
        slice_thickness=settings.slice_thickness,
        extent=(extent, extent),
    )
    scan = abtem.CustomScan(np.asarray(probes, float).reshape(-1, 2))
    return adf_scan(array, scan, optics=optics, settings=settings).reshape(-1)


def patch_setup(
    symbols: np.ndarray,
    positions: np.ndarray,
    probes: np.ndarray,
    *,
    extent: float,
    depth: float,
    optics: ADFOptics,
    settings: ADFSettings,
) -> dict[str, np.ndarray]:
    """What a patch reuses at every grid point: the other atoms' potential and ``S_0``.

    Parameters
    ----------
    symbols, positions
        The other atoms of the cell, in cell coordinates [Å] (:func:`atom_potential`).
    probes : ndarray of shape (k, 2)
        The patch's probe positions in the cell [Å].
    extent, depth : float
        Cell side and depth [Å].
    optics, settings

    Returns
    -------
    dict
        ``potential`` (n_slices, g, g) float32 [V Å] and ``without`` (k,) the signal
        of the patch without the scanned atom.
    """
    multiple = settings.prism_interpolation if settings.engine == "prism" else 1
    gpts = cell_gpts(extent, settings.sampling, multiple)
    potential = atom_potential(
        symbols, positions, extent=extent, depth=depth, gpts=gpts, settings=settings
    )
    without = patch_signal(potential, probes, extent=extent, optics=optics, settings=settings)
    return {"potential": potential, "without": without}


def calculated_crops(
    baselines: np.ndarray,
    changes: list[np.ndarray],
    patch_index: list[np.ndarray],
    *,
    sigma: float,
    kernels: np.ndarray,
    margin: int,
) -> np.ndarray:
    """Baselines with each patch's change pasted in, blurred, cut to the crops.

    Parameters
    ----------
    baselines : ndarray of shape (m, w, w)
        Signal of the crop plus ``margin`` pixels on every side, without the atom.
    changes : list of m ndarrays of shape (k_j,)
        ``S_g - S_0`` at each image's patch pixels.
    patch_index : list of m ndarrays of int, shape (k_j,)
        Flat indices of the patch pixels in the ``(w, w)`` window.
    sigma : float
        Incoherent Gaussian blur [pixel]; 0 for none.
    kernels : ndarray of shape (m, q, q)
        Vibration kernel of each image (odd ``q``, a centred delta for none).
    margin : int
        Pixels cut from every side after the blur.

    Returns
    -------
    ndarray of shape (m, w - 2 margin, w - 2 margin)
    """
    m, w, _ = baselines.shape
    out = []
    for j in range(m):
        image = baselines[j].copy().ravel()
        image[patch_index[j]] += changes[j]
        image = image.reshape(w, w)
        if sigma > 0:
            image = ndimage.gaussian_filter(image, sigma, mode="nearest")
        image = signal.fftconvolve(image, kernels[j], mode="same")
        out.append(image[margin : w - margin, margin : w - margin])
    return np.asarray(out)


def _r1_terms(measured: np.ndarray, calc: np.ndarray) -> tuple[float, float, float, float]:
    """Closed-form scale and offset of ``calc`` to ``measured``; |residual| and |measured| sums."""
    a = np.stack([calc.ravel(), np.ones(calc.size)], axis=1)
    (k, c), *_ = np.linalg.lstsq(a, measured.ravel(), rcond=None)
    residual = measured - (k * calc + c)
    return float(np.abs(residual).sum()), float(np.abs(measured).sum()), float(k), float(c)


def scan_point(
    offset: np.ndarray,
    *,
    symbol: str,
    start: np.ndarray,
    rotation: np.ndarray,
    potentials: np.ndarray,
    n_slices: np.ndarray,
    depth: np.ndarray,
    extent: float,
    probes: np.ndarray,
    patch_index: np.ndarray,
    patch_count: np.ndarray,
    without: np.ndarray,
    baselines: np.ndarray,
    measured: np.ndarray,
    kernels: np.ndarray,
    sigma: float,
    margin: int,
    optics: ADFOptics,
    settings: ADFSettings,
) -> dict[str, np.ndarray]:
    """R1 terms of every image with the scanned atom displaced by ``offset``: one task.

    Parameters
    ----------
    offset : ndarray of shape (3,)
        Displacement of the atom in the sample frame [Å].
    symbol : str
        The scanned atom's species.
    start : ndarray of shape (m, 3)
        The atom's undisplaced position in each image's cell [Å].
    rotation : ndarray of shape (m, 3, 3)
        Each image's rotation (sample to microscope frame).
    potentials : ndarray of shape (m, n_max, g, g)
        The other atoms' potential in each image's cell, zero slices after ``n_slices``.
    n_slices, depth : ndarray of shape (m,)
        Slices and depth [Å] of each image's cell.
    extent : float
        Side of the cells [Å].
    probes : ndarray of shape (K, 2)
        The patches' probe positions in their cells, image after image [Å].
    patch_index : ndarray of int, shape (K,)
        Their flat indices in the baseline window.
    patch_count : ndarray of int, shape (m,)
        Probe positions per image.
    without : ndarray of shape (K,)
        ``S_0`` at every probe position.
    baselines : ndarray of shape (m, w, w)
    measured : ndarray of shape (m, crop, crop)
        The measured crops.
    kernels, sigma, margin
        As in :func:`calculated_crops`.
    optics, settings
        The microscope and the multislice numerics.

    Returns
    -------
    dict
        Per image (m,): ``residual`` Σ|meas − (k C + c)|, ``measured`` Σ|meas|,
        ``scale`` k and ``offset`` c.
    """
    bounds = np.concatenate([[0], np.cumsum(patch_count)])
    changes, index = [], []
    g = potentials.shape[-1]
    for j in range(len(start)):
        here = slice(bounds[j], bounds[j + 1])
        position = start[j] + rotation[j] @ np.asarray(offset, float)
        atom = atom_potential(
            np.array([symbol]),
            position[None],
            extent=extent,
            depth=float(depth[j]),
            gpts=g,
            settings=settings,
        )
        total = potentials[j, : int(n_slices[j])] + atom
        moved = patch_signal(total, probes[here], extent=extent, optics=optics, settings=settings)
        changes.append(moved - without[here])
        index.append(patch_index[here])
    calc = calculated_crops(baselines, changes, index, sigma=sigma, kernels=kernels, margin=margin)
    terms = np.array([_r1_terms(measured[j], calc[j]) for j in range(len(calc))])
    return {
        "residual": terms[:, 0],
        "measured": terms[:, 1],
        "scale": terms[:, 2],
        "offset": terms[:, 3],
    }
