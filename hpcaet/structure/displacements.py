"""Atomic displacements from the fitted ideal lattice of each material (Tian et al.).

The model is split into its MoS2 and WSe2 regions (from the ``region`` labels, unknown
sites resolved from the metals), each region is fitted to its ideal 2H lattice by least
squares (:func:`~hpcaet.structure.lattice.fit_ideal_lattice`), and the displacement of
a site is its position minus its fitted ideal site.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.spatial import cKDTree

from hpcaet.errors import InputError
from hpcaet.structure.lattice import CHALCOGENS, METALS, LatticeFit, fit_ideal_lattice

__all__ = ["resolve_regions", "atomic_displacements"]

log = logging.getLogger(__name__)

_MIN_METALS = 6


def _check_sites(
    caller: str, positions: np.ndarray, species: np.ndarray, layer: np.ndarray, region: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the per-site arrays of an atom model passed to ``caller``.

    Parameters
    ----------
    caller : str
        Name of the public function, for the error message.
    positions : array_like of shape (n, 3)
        Positions [Å].
    species, layer, region : array_like of shape (n,)
        Chemical symbols, layer index and region index of each site.

    Returns
    -------
    positions : ndarray of float64, shape (n, 3)
    species : ndarray of str, shape (n,)
    layer : ndarray, shape (n,)

    Raises
    ------
    InputError
        When the shapes do not match.
    """
    pos = np.asarray(positions, dtype=float)
    species = np.asarray(species).astype(str)
    layer = np.asarray(layer)
    n = len(pos)
    if (
        pos.shape != (n, 3)
        or species.shape != (n,)
        or layer.shape != (n,)
        or np.shape(region) != (n,)
    ):
        raise InputError(
            f"{caller} needs positions (n, 3) and species, layer, region (n,); got "
            f"{pos.shape}, {species.shape}, {layer.shape}, {np.shape(region)}."
        )
    return pos, species, layer


def resolve_regions(
    positions: np.ndarray,
    species: np.ndarray,
    region: np.ndarray,
    *,
    metals: Sequence[str] = ("Mo", "W"),
) -> np.ndarray:
    """Material region of every site, unknown ones (-1) filled in from the metals.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Positions [Å].
    species : ndarray of str, shape (n,)
        Chemical symbols (``"vac"`` for vacancy sites).
    region : ndarray of int, shape (n,)
        Index into the materials (0 MoS2, 1 WSe2), -1 unknown.
    metals : sequence of str, default ("Mo", "W")
        The metal of each region (:attr:`hpcaet.materials.Materials.metals`).

    Returns
    -------
    ndarray of int8, shape (n,)
        A metal of unknown region takes the region of its element (0 if none); any
        other unknown site takes the region of its nearest metal (in x, y).
    """
    species = np.asarray(species).astype(str)
    out = np.asarray(region).astype(np.int8).copy()
    metal = np.isin(species, METALS)
    if not metal.any():
        raise InputError("the model has no metal atom; its regions cannot be told apart.")
    fill = metal & (out < 0)
    index = {name: k for k, name in enumerate(metals)}
    out[fill] = [index.get(name, 0) for name in species[fill]]
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
    metals: Sequence[str] = ("Mo", "W"),
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
    metals : sequence of str, default ("Mo", "W")
        The metal of each region, for sites of unknown region (:func:`resolve_regions`).

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
    pos, species, layer = _check_sites("atomic_displacements", positions, species, layer, region)
    reg = resolve_regions(pos, species, region, metals=metals)
    metal = np.isin(species, METALS)
    counts = {int(r): int(np.sum(metal & (reg == r))) for r in np.unique(reg)}
    largest = max(counts, key=counts.get)
    for r, c in counts.items():
        if c < _MIN_METALS and r != largest:
            log.warning(
                "region %d has only %d metal atom(s), too few for a lattice fit; "
                "its %d sites are fitted with region %d",
                r,
                c,
                int(np.sum(reg == r)),
                largest,
            )
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
        fit = fit_ideal_lattice(
            pos[sel],
            is_metal=metal[sel],
            layer=layer[sel],
            lattice_constant=lattice_constant[r],
            height=height[r],
            fit_lattice_constant=fit_lattice_constant,
            weights=weights,
        )
        displacement[sel] = pos[sel] - fit.ideal
        fits[r] = fit
        log.info(
            "region %d: %d sites, a = %.4f Å, rms displacement %.3f Å",
            r,
            len(sel),
            fit.lattice_constant,
            fit.rms,
        )
    return displacement, reg, fits
