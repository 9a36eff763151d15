"""Atomic displacements and the full 3D strain tensor (Tian et al., Methods; ref. 19).

The procedure of the paper, step by step:

1. :func:`atomic_displacements` splits the model into its MoS2 and WSe2 regions and
   fits each to its ideal 2H lattice by least squares
   (:func:`~hpcaet.structure.lattice.fit_ideal_lattice`); the displacement of an atom
   is its position minus its fitted ideal site.
2. :func:`interpolate_displacements` interpolates the displacements of one region to
   a cubic grid with radial basis functions (``scipy.interpolate.RBFInterpolator``).
3. :func:`strain_from_displacement` smooths the gridded field with a 3D Gaussian
   (sigma 3.16 Å in the paper) and differentiates it:
   ``e_ij = (du_i/dx_j + du_j/dx_i) / 2`` (tensor shear components, not engineering
   shear).
4. :func:`strain_tensor` runs 2–3 for each region on a grid padded around its atoms,
   so the RBF extrapolates smoothly past the sample's surfaces and the Gaussian sees no
   jump there, and gives every voxel the strain of the region of its nearest atom;
   voxels farther than ``mask_distance`` from every atom are NaN. Each region is
   handled alone because the two reference lattices differ: one interpolant across
   the interface would turn the jump of reference into a spurious strain spike.

The grid evaluation (step 2) is the costly part; :func:`strain_tensor` hands it out
as independent tiles through an optional ``mapper`` so that a stage layer can spread
them over a cluster; without one they run here in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.interpolate import RBFInterpolator, griddata
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.structure.lattice import CHALCOGENS, METALS, LatticeFit, fit_ideal_lattice

__all__ = [
    "COMPONENTS",
    "StrainField",
    "resolve_regions",
    "atomic_displacements",
    "strain_grid",
    "interpolate_displacements",
    "strain_from_displacement",
    "strain_tensor",
    "layer_strain_maps",
]

log = logging.getLogger(__name__)

#: Strain components in the order of the Strain schema.
COMPONENTS = ("xx", "yy", "zz", "xy", "xz", "yz")
_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))  # (i, j) of each component
_MIN_METALS = 6
_TILE_VOXELS = 40_000  # voxels per RBF evaluation tile


def resolve_regions(positions: np.ndarray, species: np.ndarray,
                    region: np.ndarray) -> np.ndarray:
    """Material region of every site, unknown ones (-1) filled in from the metals.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Positions [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols (``"vac"`` for vacancy sites).
    region : ndarray of int, shape (n,)
        0 MoS2, 1 WSe2, -1 unknown.

    Returns
    -------
    ndarray of int8, shape (n,)
        A metal of unknown region is 1 if W, else 0; any other unknown site takes the
        region of its nearest metal (in x, y).
    """
    species = np.asarray(species).astype(str)
    out = np.asarray(region).astype(np.int8).copy()
    metal = np.isin(species, METALS)
    if not metal.any():
        raise InputError("the model has no Mo or W atom; its regions cannot be told apart.")
    fill = metal & (out < 0)
    out[fill] = np.where(species[fill] == "W", 1, 0)
    rest = np.flatnonzero(~metal & (out < 0))
    if len(rest):
        _, near = cKDTree(positions[metal, :2]).query(positions[rest, :2])
        out[rest] = out[np.flatnonzero(metal)[near]]
    return out


def atomic_displacements(
    positions: np.ndarray,
    species: np.ndarray,
    layer: np.ndarray,
    region: np.ndarray,
    *,
    lattice_constant: Mapping[int, float],
    height: Mapping[int, float],
    fit_lattice_constant: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[int, LatticeFit]]:
    """Displacement of every site from the fitted ideal lattice of its material.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Sites (x, y, z) [Å], vacancies included.
    species : ndarray of str, shape (n,)
        Chemical symbols, ``"vac"`` for a vacancy site.
    layer : ndarray of int, shape (n,)
        -1 bottom chalcogen, 0 metal, 1 top chalcogen.
    region : ndarray of int, shape (n,)
        0 MoS2, 1 WSe2, -1 unknown (see :func:`resolve_regions`).
    lattice_constant, height : mapping of int to float
        Lattice constant and chalcogen height of each region's ideal lattice [Å], e.g.
        ``{0: 3.16, 1: 3.28}`` and ``{0: 1.56, 1: 1.67}``.
    fit_lattice_constant : bool
        Also fit each region's lattice constant (the displacements then carry the
        strain relative to the region's mean lattice, not to the bulk material).

    Returns
    -------
    displacement : ndarray of shape (n, 3)
        Position minus fitted ideal site [Å]. Vacancy sites get one too (their
        position minus their ideal site) but carry no weight in the fits.
    region : ndarray of int8, shape (n,)
        The regions used (unknowns resolved; a region with fewer than six metals is
        merged into the largest one, with a warning).
    fits : dict of int to LatticeFit
        The fit of each region.

    Raises
    ------
    InputError
        Mismatched shapes, fewer than six metals in all, or a region without a lattice
        constant or height.
    """
    pos = np.asarray(positions, dtype=float)
    species = np.asarray(species).astype(str)
    layer = np.asarray(layer)
    n = len(pos)
    if pos.shape != (n, 3) or species.shape != (n,) or layer.shape != (n,) \
            or np.shape(region) != (n,):
        raise InputError(
            f"atomic_displacements needs positions (n, 3) and species, layer, region (n,); "
            f"got {pos.shape}, {species.shape}, {layer.shape}, {np.shape(region)}."
        )
    reg = resolve_regions(pos, species, region)
    metal = np.isin(species, METALS)
    counts = {int(r): int(np.sum(metal & (reg == r))) for r in np.unique(reg)}
    largest = max(counts, key=counts.get)
    for r, c in counts.items():
        if c < _MIN_METALS and r != largest:
            log.warning("region %d has only %d metal atom(s), too few for a lattice fit; "
                        "its %d sites are fitted with region %d", r, c,
                        int(np.sum(reg == r)), largest)
            reg[reg == r] = largest
    displacement = np.zeros_like(pos)
    fits: dict[int, LatticeFit] = {}
    for r in np.unique(reg):
        r = int(r)
        if r not in lattice_constant or r not in height:
            raise InputError(
                f"no lattice constant or height for region {r}; got lattice_constant for "
                f"{sorted(lattice_constant)} and height for {sorted(height)}."
            )
        sel = np.flatnonzero(reg == r)
        weights = np.isin(species[sel], METALS + CHALCOGENS).astype(float)
        fit = fit_ideal_lattice(pos[sel], is_metal=metal[sel], layer=layer[sel],
                                lattice_constant=lattice_constant[r], height=height[r],
                                fit_lattice_constant=fit_lattice_constant, weights=weights)
        displacement[sel] = pos[sel] - fit.ideal
        fits[r] = fit
        log.info("region %d: %d sites, a = %.4f Å, rms displacement %.3f Å", r, len(sel),
                 fit.lattice_constant, fit.rms)
    return displacement, reg, fits


def strain_grid(positions: np.ndarray, *, spacing: float, padding: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of a cubic grid around the atoms.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Atom positions [Å].
    spacing : float
        Voxel size [Å].
    padding : float
        Margin around the atoms' bounding box [Å].

    Returns
    -------
    z, y, x : ndarray
        Voxel centres [Å], increasing, on the lattice ``k * spacing`` (so grids of
        different boxes share voxels).
    """
    pos = np.asarray(positions, dtype=float)
    if not (spacing > 0 and padding >= 0):
        raise InputError(f"spacing must be > 0 and padding >= 0; got {spacing}, {padding} Å.")
    lo = np.floor((pos.min(0) - padding) / spacing).astype(int)
    hi = np.ceil((pos.max(0) + padding) / spacing).astype(int)
    x, y, z = (np.arange(lo[k], hi[k] + 1) * spacing for k in range(3))
    return z, y, x


def interpolate_displacements(
    points: np.ndarray,
    values: np.ndarray,
    *,
    z: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    kernel: str = "thin_plate_spline",
    smoothing: float = 0.0,
) -> np.ndarray:
    """Radial-basis-function interpolation of atomic displacements to a grid.

    Parameters
    ----------
    points : ndarray of shape (n, 3)
        Atom positions (x, y, z) [Å].
    values : ndarray of shape (n, 3)
        Their displacements (x, y, z) [Å].
    z, y, x : ndarray
        Grid coordinates [Å].
    kernel : str
        Kernel of ``scipy.interpolate.RBFInterpolator`` (with its default polynomial
        degree, 1 for the thin-plate spline, so a uniform strain is reproduced exactly).
    smoothing : float
        Its smoothing parameter (0 interpolates).

    Returns
    -------
    ndarray of shape (3, nz, ny, nx)
        Displacement components x, y, z on the grid [Å].
    """
    pts = np.asarray(points, dtype=float)
    vals = np.asarray(values, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3 or vals.shape != pts.shape:
        raise InputError(
            f"points and values must both have shape (n, 3); got {pts.shape}, {vals.shape}."
        )
    if len(pts) < 5:
        raise InputError(f"RBF interpolation needs at least 5 atoms; got {len(pts)}.")
    rbf = RBFInterpolator(pts, vals, kernel=kernel, smoothing=smoothing)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    grid = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()])
    out = rbf(grid)
    return np.moveaxis(out, -1, 0).reshape(3, len(z), len(y), len(x))


def strain_from_displacement(field: np.ndarray, *, spacing: float, sigma: float
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Smooth a gridded displacement field and differentiate it to the strain tensor.

    Parameters
    ----------
    field : ndarray of shape (3, nz, ny, nx)
        Displacement components x, y, z [Å].
    spacing : float
        Voxel size [Å].
    sigma : float
        Standard deviation of the 3D Gaussian smoothing [Å]; 0 skips smoothing.

    Returns
    -------
    strain : ndarray of shape (6, nz, ny, nx)
        Components xx, yy, zz, xy, xz, yz [1]; central differences inside, one-sided
        at the grid faces.
    smoothed : ndarray of shape (3, nz, ny, nx)
        The smoothed displacement field [Å].
    """
    u = np.asarray(field, dtype=float)
    if u.ndim != 4 or u.shape[0] != 3 or min(u.shape[1:]) < 2:
        raise InputError(f"field must have shape (3, nz, ny, nx) with n >= 2; got {u.shape}.")
    if not (spacing > 0 and sigma >= 0):
        raise InputError(f"spacing must be > 0 and sigma >= 0; got {spacing}, {sigma} Å.")
    s = sigma / spacing
    smooth = np.stack([ndimage.gaussian_filter(c, s, mode="nearest") if s > 0 else c
                       for c in u])
    # grad[i][j] = d u_i / d x_j, with axes (z, y, x) of the array = (x_2, x_1, x_0).
    grad = [[None] * 3 for _ in range(3)]
    for i in range(3):
        dz, dy, dx = np.gradient(smooth[i], spacing)
        grad[i] = [dx, dy, dz]
    strain = np.stack([0.5 * (grad[i][j] + grad[j][i]) for i, j in _PAIRS])
    return strain, smooth


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
        idx = [(pts[:, 2] - self.z[0]) / self.spacing, (pts[:, 1] - self.y[0]) / self.spacing,
               (pts[:, 0] - self.x[0]) / self.spacing]
        return np.column_stack([ndimage.map_coordinates(c, idx, order=1, mode="nearest",
                                                        cval=np.nan)
                                for c in self.strain])


#: A mapper runs ``func(**shared, **job)`` for every job and returns the results in order.
Mapper = Callable[[Callable, dict, Sequence[dict]], list]


def _serial(func: Callable, shared: dict, jobs: Sequence[dict]) -> list:
    return [func(**shared, **job) for job in jobs]


def strain_tensor(
    positions: np.ndarray,
    displacement: np.ndarray,
    region: np.ndarray,
    *,
    spacing: float,
    sigma: float,
    padding: float,
    mask_distance: float,
    use: np.ndarray | None = None,
    kernel: str = "thin_plate_spline",
    rbf_smoothing: float = 0.0,
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
    use : ndarray of bool, shape (n,), optional
        Atoms whose displacements enter (e.g. not the vacancy sites). Default: all.
    kernel, rbf_smoothing :
        Passed to :func:`interpolate_displacements`.
    mapper : callable, optional
        ``mapper(func, shared, jobs) -> list`` runs ``func(**shared, **job)`` for each
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
    mapper = mapper or _serial
    z, y, x = strain_grid(pos[use], spacing=spacing, padding=padding)
    shape = (len(z), len(y), len(x))
    # Region of the nearest atom, and the sample mask.
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    voxels = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()])
    near_d, near_i = cKDTree(pos[use]).query(voxels)
    owner = reg[use][near_i].reshape(shape).astype(np.int8)
    inside = (near_d <= mask_distance).reshape(shape)
    owner[~inside] = -1

    strain = np.full((6, *shape), np.nan)
    smooth = np.full((3, *shape), np.nan)
    for r in np.unique(reg[use]):
        sel = use & (reg == r)
        if np.sum(sel) < 5:
            log.warning("region %d: only %d atoms; its voxels stay NaN", r, int(np.sum(sel)))
            continue
        rext = np.ptp(pos[sel, :2], axis=0)
        if rext.min() < 4 * sigma:
            log.warning("region %d spans only %.3g x %.3g Å, under 4 sigma = %.3g Å: its "
                        "strain is mostly edge effect", r, rext[0], rext[1], 4 * sigma)
        rz, ry, rx = strain_grid(pos[sel], spacing=spacing, padding=padding)
        block = tuple(_subrange(c, rc) for c, rc in ((z, rz), (y, ry), (x, rx)))
        field = _tiled_interpolation(pos[sel], disp[sel], rz, ry, rx, kernel=kernel,
                                     smoothing=rbf_smoothing, mapper=mapper, label=int(r))
        e, u = strain_from_displacement(field, spacing=spacing, sigma=sigma)
        mine = owner[block] == r
        strain[(slice(None), *block)] = np.where(mine, e, strain[(slice(None), *block)])
        smooth[(slice(None), *block)] = np.where(mine, u, smooth[(slice(None), *block)])
    return StrainField(z=z, y=y, x=x, strain=strain, displacement=smooth, region=owner,
                       spacing=float(spacing), sigma=float(sigma))


def _subrange(full: np.ndarray, part: np.ndarray) -> slice:
    start = int(np.argmin(np.abs(full - part[0])))
    return slice(start, start + len(part))


def _tiled_interpolation(points, values, z, y, x, *, kernel, smoothing, mapper, label):
    """Interpolate on the grid in tiles along y (one job per tile) and reassemble."""
    rows = max(1, _TILE_VOXELS // (len(z) * len(x)))
    starts = list(range(0, len(y), rows))
    jobs = [{"y": y[s:s + rows], "tile": f"region{label}-y{s}"} for s in starts]
    shared = {"points": points, "values": values, "z": z, "x": x, "kernel": kernel,
              "smoothing": smoothing}
    tiles = mapper(_tile, shared, jobs)
    return np.concatenate(tiles, axis=2)


def _tile(*, points, values, z, y, x, kernel, smoothing, tile):
    """One tile of :func:`interpolate_displacements` (``tile`` names it for keys)."""
    return interpolate_displacements(points, values, z=z, y=y, x=x, kernel=kernel,
                                     smoothing=smoothing)


def layer_strain_maps(field: StrainField, positions: np.ndarray, layer: np.ndarray,
                      *, use: np.ndarray | None = None) -> np.ndarray:
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
        grid's (y, x) at the height of the layer, linearly interpolated between its
        atoms; NaN outside the layer's convex hull or the sample.
    """
    pos = np.asarray(positions, dtype=float)
    layer = np.asarray(layer)
    use = np.ones(len(pos), bool) if use is None else np.asarray(use, bool)
    yy, xx = np.meshgrid(field.y, field.x, indexing="ij")
    out = np.full((3, 6, len(field.y), len(field.x)), np.nan)
    for k, lay in enumerate((-1, 0, 1)):
        sel = use & (layer == lay)
        if sel.sum() < 3:
            continue
        height = griddata(pos[sel, :2], pos[sel, 2], (xx, yy), method="linear")
        ok = np.isfinite(height)
        pts = np.column_stack([xx[ok], yy[ok], height[ok]])
        values = field.at(pts)
        for c in range(6):
            out[k, c][ok] = values[:, c]
    return out
