"""Atomic displacements and the full 3D strain tensor (Tian et al., Methods; ref. 19).

The procedure of the paper, step by step:

1. :func:`~hpcaet.structure.displacements.atomic_displacements` splits the model
   into its MoS2 and WSe2 regions and fits each to its ideal 2H lattice by least
   squares (:func:`~hpcaet.structure.lattice.fit_ideal_lattice`); the displacement of
   an atom is its position minus its fitted ideal site.
2. :func:`interpolate_displacements` interpolates the displacements of one region to
   a cubic grid with radial basis functions (``scipy.interpolate.RBFInterpolator``).
3. :func:`strain_from_displacement` smooths the gridded field with a 3D Gaussian
   (sigma 3.16 Å in the paper) and differentiates it:
   ``e_ij = (du_i/dx_j + du_j/dx_i) / 2`` (tensor shear components, not engineering
   shear).
4. :func:`strain_tensor` runs 2–3 for each region: the RBF is evaluated only inside
   the sample (voxels within ``mask_distance`` of an atom, and up to ``padding``
   in-plane past the region's last atoms, where it extrapolates smoothly), then
   :func:`extend_field` continues each voxel column linearly in z past the sheet's
   surfaces, so that the Gaussian sees neither a jump nor the RBF's decay away from a
   sheet three atoms thick (which would bias e_zz, e_xz and e_yz at the chalcogen
   layers). Every voxel takes the strain of the region of its nearest atom; voxels
   farther than ``mask_distance`` from every atom are NaN. Each region is handled
   alone because the two reference lattices differ: one interpolant across the
   interface would turn the jump of reference into a spurious strain spike.

The grid evaluation (step 2) is the costly part; :func:`strain_tensor` hands it out
as independent tiles through an optional ``mapper`` so that a stage layer can spread
them over a cluster; without one they run here in turn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.parallel.tasks import Mapper, serial_map
from hpcaet.structure.fields import (
    extend_field,
    interpolate_displacements,
    strain_from_displacement,
    strain_grid,
)

__all__ = [
    "StrainField",
    "strain_tensor",
    "layer_strain_maps",
]

log = logging.getLogger(__name__)

_TILE_VOXELS = 40_000  # voxels per RBF evaluation tile


@dataclass(frozen=True)
class StrainField:
    """The strain tensor on a cubic grid.

    Attributes
    ----------
    z, y, x : ndarray
        Voxel centres [Å].
    strain : ndarray of shape (6, nz, ny, nx)
        Components xx, yy, zz, xy, xz, yz [1]; NaN outside the sample.
    displacement : ndarray of shape (3, nz, ny, nx)
        Smoothed displacement field [Å]; NaN outside the sample.
    region : ndarray of int8, shape (nz, ny, nx)
        Region whose fit each voxel's strain comes from; -1 outside the sample.
    spacing, sigma : float
        Voxel size and Gaussian smoothing [Å].
    """

    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    strain: np.ndarray
    displacement: np.ndarray
    region: np.ndarray
    spacing: float
    sigma: float

    def at(self, points: np.ndarray) -> np.ndarray:
        """Strain at arbitrary points by trilinear interpolation.

        Parameters
        ----------
        points : ndarray of shape (n, 3)
            Positions (x, y, z) [Å].

        Returns
        -------
        ndarray of shape (n, 6)
            Components xx, yy, zz, xy, xz, yz; NaN where a neighbouring voxel is NaN.
        """
        pts = np.asarray(points, dtype=float)
        idx = [
            (pts[:, 2] - self.z[0]) / self.spacing,
            (pts[:, 1] - self.y[0]) / self.spacing,
            (pts[:, 0] - self.x[0]) / self.spacing,
        ]
        return np.column_stack(
            [
                ndimage.map_coordinates(c, idx, order=1, mode="nearest", cval=np.nan)
                for c in self.strain
            ]
        )


def strain_tensor(
    positions: np.ndarray,
    displacement: np.ndarray,
    region: np.ndarray,
    *,
    spacing: float,
    sigma: float,
    padding: float,
    mask_distance: float,
    min_coverage: float = 0.0,
    use: np.ndarray | None = None,
    kernel: str = "thin_plate_spline",
    rbf_smoothing: float = 0.0,
    finite: bool = False,
    mapper: Mapper | None = None,
) -> StrainField:
    """The 3D strain tensor field of an atom model, region by region.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions [Å].
    displacement : ndarray of shape (n, 3)
        Their displacements [Å] (:func:`atomic_displacements`).
    region : ndarray of int, shape (n,)
        Region of each atom (each is interpolated on its own).
    spacing : float
        Voxel size of the grid [Å]; at most ``sigma / 2``.
    sigma : float
        Gaussian smoothing [Å] (3.16 Å in the paper).
    padding : float
        Margin of the grid around the atoms of each region [Å]; about ``2 sigma`` keeps
        the Gaussian away from the grid faces.
    mask_distance : float
        Voxels farther than this from every atom are outside the sample (NaN) [Å].
    min_coverage : float, default 0
        Columns where less than this fraction of the in-plane Gaussian (``sigma``) falls
        on the sheet (columns within ``mask_distance`` of an atom) are NaN: the smoothed
        field there is made mostly of its extension beyond the last atoms. At a straight
        edge the fraction is 1/2; 0.9 masks about 1.3 ``sigma`` in from the edge.
    use : ndarray of bool, shape (n,), optional
        Atoms whose displacements enter (e.g. not the vacancy sites). Default: all.
    kernel, rbf_smoothing :
        Passed to :func:`interpolate_displacements`.
    finite : bool
        Euler–Almansi finite strain instead of the linear strain
        (:func:`strain_from_displacement`).
    mapper : callable, optional
        ``mapper(func, jobs, shared) -> list`` runs ``func(**shared, **job)`` for each
        job (one tile of the grid); default: in turn, here.

    Returns
    -------
    StrainField

    Raises
    ------
    InputError
        Mismatched shapes, ``spacing > sigma / 2``, or a field smaller than the
        smoothing kernel (an in-plane extent under ``4 sigma``: the smoothed field would
        be all edge).
    """
    pos = np.asarray(positions, dtype=float)
    disp = np.asarray(displacement, dtype=float)
    reg = np.asarray(region)
    n = len(pos)
    if pos.shape != (n, 3) or disp.shape != (n, 3) or reg.shape != (n,):
        raise InputError(
            f"strain_tensor needs positions and displacement (n, 3) and region (n,); got "
            f"{pos.shape}, {disp.shape}, {reg.shape}."
        )
    use = np.ones(n, bool) if use is None else np.asarray(use, bool)
    if not (sigma > 0 and 0 < spacing <= sigma / 2 and mask_distance > 0 and padding >= 0):
        raise InputError(
            f"need sigma > 0, 0 < spacing <= sigma / 2, mask_distance > 0, padding >= 0; got "
            f"sigma {sigma}, spacing {spacing}, mask_distance {mask_distance}, padding "
            f"{padding} Å. Use a finer grid spacing."
        )
    extent = np.ptp(pos[use, :2], axis=0)
    if extent.min() < 4 * sigma:
        raise InputError(
            f"the field spans {extent[0]:.3g} x {extent[1]:.3g} Å in x, y, less than four "
            f"times the smoothing sigma = {sigma} Å ({4 * sigma:.3g} Å): the smoothed strain "
            "would be edge effect everywhere. Use a smaller sigma or a larger field."
        )
    mapper = mapper or serial_map
    z, y, x = strain_grid(pos[use], spacing=spacing, padding=padding)
    shape = (len(z), len(y), len(x))
    # Region of the nearest atom, and the sample mask.
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    voxels = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()])
    near_d, near_i = cKDTree(pos[use]).query(voxels)
    owner = reg[use][near_i].reshape(shape).astype(np.int8)
    inside = (near_d <= mask_distance).reshape(shape)
    owner[~inside] = -1
    columns = np.column_stack([xx[0].ravel(), yy[0].ravel()])

    strain = np.full((6, *shape), np.nan)
    smooth = np.full((3, *shape), np.nan)
    for r in np.unique(reg[use]):
        sel = use & (reg == r)
        if np.sum(sel) < 10:
            log.warning("region %d: only %d atoms; its voxels stay NaN", r, int(np.sum(sel)))
            continue
        rext = np.ptp(pos[sel, :2], axis=0)
        if rext.min() < 4 * sigma:
            log.warning(
                "region %d spans only %.3g x %.3g Å, under 4 sigma = %.3g Å: its "
                "strain is mostly edge effect",
                r,
                rext[0],
                rext[1],
                4 * sigma,
            )
        rz, ry, rx = strain_grid(pos[sel], spacing=spacing, padding=padding)
        block = tuple(_subrange(c, rc) for c, rc in ((z, rz), (y, ry), (x, rx)))
        # Evaluate inside the sample, up to `padding` in-plane from this region's atoms,
        # filling z gaps so that every column holds one run.
        reach, _ = cKDTree(pos[sel, :2]).query(columns)
        known = _fill_runs(inside[block], (reach <= padding).reshape(shape[1:])[block[1:]])
        targets = np.column_stack([xx[block][known], yy[block][known], zz[block][known]])
        values = _tiled(
            pos[sel],
            disp[sel],
            targets,
            kernel=kernel,
            smoothing=rbf_smoothing,
            mapper=mapper,
            label=int(r),
        )
        field = np.zeros((3, *known.shape))
        field[:, known] = values.T
        field = extend_field(field, known, rz)
        e, u = strain_from_displacement(field, spacing=spacing, sigma=sigma, finite=finite)
        mine = owner[block] == r
        strain[(slice(None), *block)] = np.where(mine, e, strain[(slice(None), *block)])
        smooth[(slice(None), *block)] = np.where(mine, u, smooth[(slice(None), *block)])
    if min_coverage > 0:
        # the field is computed as before; only what it says near the edge is withheld
        sheet, _ = cKDTree(pos[use, :2]).query(columns)
        sheet = (sheet <= mask_distance).reshape(shape[1:]).astype(float)
        # zero beyond the grid: the grid's padding lies outside the sheet anyway
        cover = ndimage.gaussian_filter(sheet, sigma / spacing, mode="constant")
        strain[:, :, cover < min_coverage] = np.nan
    return StrainField(
        z=z,
        y=y,
        x=x,
        strain=strain,
        displacement=smooth,
        region=owner,
        spacing=float(spacing),
        sigma=float(sigma),
    )


def _subrange(full: np.ndarray, part: np.ndarray) -> slice:
    start = int(np.argmin(np.abs(full - part[0])))
    return slice(start, start + len(part))


def _fill_runs(mask: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Voxels to evaluate: in each wanted (y, x) column one run in z.

    A column crossing the sample runs from its first to its last sample voxel; a wanted
    column off the sample (past its edge) takes the run of the nearest sample column, so
    the interpolant is extrapolated in-plane there.
    """
    has = mask.any(0)
    nz = mask.shape[0]
    lo = np.argmax(mask, axis=0)
    hi = nz - 1 - np.argmax(mask[::-1], axis=0)
    if not has.all():
        _, (nj, ni) = ndimage.distance_transform_edt(~has, return_indices=True)
        lo, hi = lo[nj, ni], hi[nj, ni]
    k = np.arange(nz)[:, None, None]
    return (columns & has.any())[None] & (k >= lo[None]) & (k <= hi[None])


def _tiled(points, values, targets, *, kernel, smoothing, mapper, label):
    """Interpolate at the targets in tiles (one job each) and reassemble."""
    jobs = [
        {"targets": targets[s : s + _TILE_VOXELS], "tile": f"region{label}-{s}"}
        for s in range(0, len(targets), _TILE_VOXELS)
    ]
    shared = {"points": points, "values": values, "kernel": kernel, "smoothing": smoothing}
    return np.concatenate(mapper(_tile, jobs, shared), axis=0)


def _tile(*, points, values, targets, kernel, smoothing, tile):
    """One tile of :func:`interpolate_displacements` (``tile`` names it for task keys)."""
    return interpolate_displacements(points, values, targets, kernel=kernel, smoothing=smoothing)


def layer_strain_maps(
    field: StrainField, positions: np.ndarray, layer: np.ndarray, *, use: np.ndarray | None = None
) -> np.ndarray:
    """The strain on the surface of each atomic layer, as 2D maps.

    Parameters
    ----------
    field : StrainField
    positions : ndarray of shape (n, 3)
        Atom positions [Å].
    layer : ndarray of int, shape (n,)
        -1 bottom chalcogen, 0 metal, 1 top chalcogen.
    use : ndarray of bool, shape (n,), optional
        Atoms that define the layer surfaces (default: all).

    Returns
    -------
    ndarray of shape (3, 6, ny, nx)
        For the bottom, metal and top layer (in that order), the six components on the
        grid's (y, x) at the height of the layer; NaN where no atom of the layer lies
        within one spacing of the layer, or outside the sample.

    Notes
    -----
    The height of a layer at a grid column is the Gaussian-weighted mean z of its
    nearest atoms (width half their spacing), a smooth surface through the layer.
    """
    pos = np.asarray(positions, dtype=float)
    layer = np.asarray(layer)
    use = np.ones(len(pos), bool) if use is None else np.asarray(use, bool)
    yy, xx = np.meshgrid(field.y, field.x, indexing="ij")
    columns = np.column_stack([xx.ravel(), yy.ravel()])
    out = np.full((3, 6, len(field.y), len(field.x)), np.nan)
    for k, lay in enumerate((-1, 0, 1)):
        sel = use & (layer == lay)
        if sel.sum() < 7:
            continue
        tree = cKDTree(pos[sel, :2])
        spacing = float(np.median(tree.query(pos[sel, :2], k=2)[0][:, 1]))
        dist, idx = tree.query(columns, k=6)
        w = np.exp(-(dist**2 - dist[:, :1] ** 2) / (2 * (spacing / 2) ** 2))
        height = np.sum(w * pos[sel, 2][idx], axis=1) / np.sum(w, axis=1)
        ok = dist[:, 0] <= spacing
        values = np.full((len(columns), 6), np.nan)
        values[ok] = field.at(np.column_stack([columns[ok], height[ok]]))
        out[k] = values.T.reshape(6, len(field.y), len(field.x))
    return out
