"""All structural results of one atom model, in one call (no I/O).

:func:`analyse_structure` chains the steps of :mod:`hpcaet.structure` the way the
paper does (Figs. 1D–F, 2, S3) and gathers the numbers into a JSON-ready dict. It
takes plain arrays and the settings of the ``structure`` config section as keywords;
the stage layer (:mod:`hpcaet.structure.stage`) reads the files, passes a Dask mapper
and writes the outputs.

A model with only one material has no interface: the interface, strip-roughness,
ripple and vacancy results are then None (with a logged warning) and the bond angles
and strain are computed for the whole model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from hpcaet.errors import InputError
from hpcaet.materials import PAPER, VACANCY, Materials
from hpcaet.structure.bonds import BondAngles, bond_angles, ideal_bond_angle, layer_difference
from hpcaet.structure.displacements import _check_sites, atomic_displacements
from hpcaet.structure.fields import COMPONENTS
from hpcaet.structure.interface import (
    Interface,
    find_interface,
    interface_chalcogens,
    interface_distance,
    vacancy_profile,
)
from hpcaet.structure.lattice import CHALCOGENS, METALS, LatticeFit
from hpcaet.structure.membrane import ripple_strain, sheet_slope, tangent_frame
from hpcaet.structure.ripples import RippleFit, detrend_plane, fit_ripple, strip_roughness
from hpcaet.structure.strain import Mapper, StrainField, layer_strain_maps, strain_tensor

__all__ = ["StructureAnalysis", "analyse_structure"]

log = logging.getLogger(__name__)

#: Distance bands (|d| in Å) on each side of the interface for the strain summary.
_BANDS = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0))
_MEMBRANE = ("xx", "yy", "xy")  # components of the ripple / in-plane split


@dataclass(frozen=True)
class StructureAnalysis:
    """Everything :func:`analyse_structure` found.

    Attributes
    ----------
    interface : Interface or None
        None for a single-material model.
    distance, arc : ndarray of shape (n,) or None
        Signed distance to the interface (> 0 in region 1, WSe2) and arc length along
        it [Å].
    height : ndarray of shape (n,)
        z above the least-squares plane of the metals [Å].
    strips : dict or None
        :func:`~hpcaet.structure.ripples.strip_roughness` of the metals.
    ripple : RippleFit or None
        Sinusoid fit of the metal heights along the interface.
    ripple_atoms : ndarray of bool, shape (n,) or None
        The metals that entered the ripple fit.
    angles : BondAngles
    displacement : ndarray of shape (n, 3)
        Displacement from the fitted ideal lattice [Å].
    region : ndarray of int8, shape (n,)
        Region of each site used for the fits.
    fits : dict of int to LatticeFit
    field : StrainField
    atom_strain : ndarray of shape (n, 6)
        Strain at each site (NaN where the grid is NaN next to it).
    layer_maps : ndarray of shape (3, 6, ny, nx)
        Strain on the bottom, metal and top layer surfaces.
    results : dict
        The numbers, JSON-ready (see :func:`analyse_structure`).
    slope : ndarray of shape (n, 2) or None
        Slope ``(dw/dx, dw/dy)`` of the metal sheet at each site, above the metals'
        least-squares plane, Gaussian-weighted with the strain's sigma
        (:func:`~hpcaet.structure.membrane.sheet_slope`).
    ripple_strain : ndarray of shape (n, 3) or None
        The ripple part ``1/2 d_a w d_b w`` (xx, yy, xy) of the membrane strain at each
        site (:func:`~hpcaet.structure.membrane.ripple_strain`). The in-plane part
        is ``atom_strain`` rotated into the sheet's tangent frame
        (:func:`~hpcaet.structure.membrane.tangent_frame`) minus it (finite strain
        only).
    """

    interface: Interface | None
    distance: np.ndarray | None
    arc: np.ndarray | None
    height: np.ndarray
    strips: dict | None
    ripple: RippleFit | None
    ripple_atoms: np.ndarray | None
    angles: BondAngles
    displacement: np.ndarray
    region: np.ndarray
    fits: dict[int, LatticeFit]
    field: StrainField
    atom_strain: np.ndarray
    layer_maps: np.ndarray
    results: dict
    slope: np.ndarray | None = None
    ripple_strain: np.ndarray | None = None


def analyse_structure(
    positions: np.ndarray,
    species: np.ndarray,
    layer: np.ndarray,
    region: np.ndarray,
    *,
    materials: Materials = PAPER,
    fit_lattice_constant: bool,
    interface_cutoff: float,
    vacancy_bin: float,
    strips: int,
    strip_min_atoms: int,
    ripple_band: float,
    bond_cutoff: float,
    grid_spacing: float,
    sigma: float,
    padding: float,
    mask_distance: float,
    min_coverage: float = 0.0,
    rbf_kernel: str,
    rbf_smoothing: float,
    finite_strain: bool,
    exclude: np.ndarray | None = None,
    mapper: Mapper | None = None,
) -> StructureAnalysis:
    """Interface, ripples, bond distortion, displacements and strain of an atom model.

    Parameters
    ----------
    positions : ndarray of shape (n, 3)
        Sites [Å], vacancies included.
    species : ndarray of str, shape (n,)
        Elements of the materials (Mo, W, S, Se) or ``"vac"``.
    layer : ndarray of int, shape (n,)
        -1 bottom chalcogen, 0 metal, 1 top chalcogen.
    region : ndarray of int, shape (n,)
        Index into ``materials.regions`` (0 MoS2, 1 WSe2), -1 unknown.
    materials : Materials, default the paper's MoS2–WSe2
        The sheet (:mod:`hpcaet.materials`): names, and the ideal lattices [Å].
    fit_lattice_constant : bool
        Fit each region's lattice constant too.
    interface_cutoff : float
        Chalcogens and vacancies within this distance are *at* the interface [Å].
    vacancy_bin : float
        Bin width of the vacancy profile [Å].
    strips, strip_min_atoms : int
        Number of strips parallel to the interface, and the fewest metals a strip needs
        for a roughness.
    ripple_band : float
        Metals within this distance of the interface enter the ripple fit [Å].
    bond_cutoff : float
        Metal–chalcogen bond cutoff [Å].
    grid_spacing, sigma, padding, mask_distance : float
        Strain grid, Gaussian smoothing, grid margin and sample mask [Å].
    min_coverage : float, default 0
        Strain is NaN where less of the in-plane smoothing kernel falls on the sheet
        (:func:`~hpcaet.structure.strain_tensor`).
    rbf_kernel : str
        Kernel of the RBF interpolation.
    rbf_smoothing : float
        Smoothing of the RBF interpolation.
    finite_strain : bool
        Euler–Almansi finite strain instead of the linear strain.
    exclude : ndarray of bool, shape (n,), optional
        Sites not to trust (e.g. the AtomModel's ``off_layer`` flag): they are left out
        of the interface, counts, bonds, ripples, lattice fits and strain field, but
        still get a displacement. Default: none.
    mapper : callable, optional
        Runs the grid-interpolation tiles (see :func:`~hpcaet.structure.strain_tensor`).

    Returns
    -------
    StructureAnalysis
        ``results`` holds: ``counts`` (sites per species), ``interface`` (segments
        with kind and length, zigzag direction, interface chalcogens, vacancies near
        the interface and the vacancy profile), ``roughness`` (per strip), ``ripple``
        (amplitude, wavelength), ``bond_angles`` (per kind: all, and near the
        interface; ideal angles), ``lattice`` (fit per region), ``strain`` (mean of
        each component over the metals in distance bands on each side of the
        interface, and for the finite strain its split into the ripple part
        ``1/2 d_a w d_b w`` and the in-plane part (tangent-frame strain minus the
        ripple part; xx, yy, xy); extremes per component; ``paper_signs`` of the
        total and ``paper_signs_in_plane``) and ``timings`` [s].
    """
    timings = {}
    pos, species, layer = _check_sites("analyse_structure", positions, species, layer, region)
    n = len(pos)
    excluded = np.zeros(n, bool) if exclude is None else np.asarray(exclude, bool)
    if excluded.shape != (n,):
        raise InputError(f"exclude must have shape ({n},); got {excluded.shape}.")
    counts = {s: int(np.sum(species == s)) for s in (*materials.elements, VACANCY)}
    counts["excluded"] = int(excluded.sum())
    if excluded.any():
        log.info("%d flagged site(s) left out of the analysis", int(excluded.sum()))
    # An excluded site gets a label no step knows, so every step passes it by.
    species = np.where(excluded, "excluded", species)
    is_metal = np.isin(species, METALS)
    results: dict = {"material_names": list(materials.names), "counts": counts}

    start = time.perf_counter()
    height = detrend_plane(pos, mask=is_metal)
    interface = distance = arc = strip_result = ripple = ripple_atoms = None
    metal_counts = {m: counts[m] for m in materials.metals}
    if materials.pair and all(metal_counts.values()):
        interface = find_interface(pos, species, inside=materials.regions[1].metal)
        distance, arc = interface_distance(pos, interface)
        results["interface"] = _interface_results(
            interface, pos, species, distance, cutoff=interface_cutoff, bin_width=vacancy_bin
        )
        strip_result = strip_roughness(
            height[is_metal], distance[is_metal], n_strips=strips, min_atoms=strip_min_atoms
        )
        results["roughness"] = _plain(strip_result)
        ripple_atoms = is_metal & (np.abs(distance) <= ripple_band)
        try:
            ripple = fit_ripple(arc[ripple_atoms], height[ripple_atoms])
            results["ripple"] = {
                "amplitude": ripple.amplitude,
                "wavelength": ripple.wavelength,
                "phase": ripple.phase,
                "rms": ripple.rms,
                "n_atoms": ripple.n_atoms,
            }
        except InputError as exc:
            log.warning("no ripple fit: %s", exc)
            results["ripple"] = None
    else:
        log.warning(
            "only one material (%s): no interface, strips, ripple or vacancy profile",
            ", ".join(f"{v} {k}" for k, v in metal_counts.items()),
        )
        results.update(interface=None, roughness=None, ripple=None)
    timings["interface_and_ripples"] = time.perf_counter() - start

    start = time.perf_counter()
    angles = bond_angles(pos, species, layer, bond_cutoff=bond_cutoff)
    near = None if distance is None else np.abs(distance) <= interface_cutoff
    bonds = {}
    for kind in ("XMX", "MXM"):
        bonds[kind] = {"all": layer_difference(angles, kind=kind)}
        if near is not None:
            bonds[kind]["interface"] = layer_difference(angles, kind=kind, atoms=near)
    bonds["ideal"] = {
        m.name: ideal_bond_angle(m.lattice_constant, m.chalcogen_height) for m in materials.regions
    }
    results["bond_angles"] = bonds
    timings["bonds"] = time.perf_counter() - start

    start = time.perf_counter()
    displacement, used_region, fits = atomic_displacements(
        pos,
        species,
        layer,
        region,
        lattice_constant=dict(enumerate(materials.lattice_constants)),
        height=dict(enumerate(materials.heights)),
        metals=materials.metals,
        fit_lattice_constant=fit_lattice_constant,
    )
    timings["lattice_fit"] = time.perf_counter() - start
    start = time.perf_counter()
    measured = np.isin(species, METALS + CHALCOGENS)
    field = strain_tensor(
        pos,
        displacement,
        used_region,
        spacing=grid_spacing,
        sigma=sigma,
        padding=padding,
        mask_distance=mask_distance,
        min_coverage=min_coverage,
        use=measured,
        kernel=rbf_kernel,
        rbf_smoothing=rbf_smoothing,
        finite=finite_strain,
        mapper=mapper,
    )
    atom_strain = field.at(pos)
    maps = layer_strain_maps(field, pos, layer, use=measured)
    sheet = is_metal & measured
    slope = lab_slope = np.full((n, 2), np.nan)
    if sheet.sum() >= 3:
        slope = sheet_slope(pos[sheet], pos, sigma=sigma)
        # The local fits are linear in the heights and exact for a plane, so the lab
        # slope is the ripple's plus the metals' least-squares plane.
        design = np.column_stack([np.ones(sheet.sum()), pos[sheet, :2]])
        plane = np.linalg.lstsq(design, pos[sheet, 2], rcond=None)[0][1:]
        lab_slope = slope + plane
    ripple_part = ripple_strain(slope)
    timings["strain"] = time.perf_counter() - start
    names = dict(enumerate(materials.names))
    results["lattice"] = {
        names.get(r, str(r)): {
            "lattice_constant": f.lattice_constant,
            "height": f.height,
            "sublattice": f.sublattice,
            "rms": f.rms,
            "sites": int(np.sum(used_region == r)),
        }
        for r, f in fits.items()
    }
    results["strain"] = _strain_results(
        atom_strain,
        is_metal & measured,
        used_region,
        distance,
        finite=finite_strain,
        slope=slope,
        lab_slope=lab_slope,
        materials=materials,
    )
    results["timings"] = timings
    return StructureAnalysis(
        interface=interface,
        distance=distance,
        arc=arc,
        height=height,
        strips=strip_result,
        ripple=ripple,
        ripple_atoms=ripple_atoms,
        angles=angles,
        displacement=displacement,
        region=used_region,
        fits=fits,
        field=field,
        atom_strain=atom_strain,
        layer_maps=maps,
        results=results,
        slope=slope,
        ripple_strain=ripple_part,
    )


def _interface_results(interface, pos, species, distance, *, cutoff, bin_width) -> dict:
    lengths = np.linalg.norm(interface.segments[:, 1] - interface.segments[:, 0], axis=1)
    vac = species == VACANCY
    profile = vacancy_profile(distance, species, bin_width=bin_width)
    return {
        "zigzag_angle": interface.zigzag_angle,
        "spacing": interface.spacing,
        "segments": [
            {
                "start": s[0].tolist(),
                "end": s[1].tolist(),
                "kind": str(k),
                "length": float(length),
                "deviation": float(d),
            }
            for s, k, length, d in zip(
                interface.segments, interface.kind, lengths, interface.deviation, strict=True
            )
        ],
        "length": interface.length,
        "chalcogens": interface_chalcogens(pos, species, distance, cutoff=cutoff),
        "vacancies": {
            "total": int(vac.sum()),
            "at_interface": int(np.sum(vac & (np.abs(distance) <= cutoff))),
            "cutoff": cutoff,
        },
        "vacancy_profile": _plain(profile),
    }


def _strain_results(
    atom_strain, metals, region, distance, *, finite, slope, lab_slope, materials
) -> dict:
    """Mean strain of the metals in distance bands on each side, and extremes [%].

    For the finite strain each band also gets its split (xx, yy, xy) into the ripple
    part ``1/2 d_a w d_b w`` and the in-plane part: the strain in the sheet's local
    tangent frame (t1t1, t2t2, t1t2) minus the ripple part. The linear strain holds
    the rotation's spurious ``theta^2 / 2`` as well, so it is not split (``None``).
    """
    out: dict = {
        "kind": "Euler-Almansi" if finite else "linear",
        "units": "%",
        "components": list(COMPONENTS),
    }
    finite_rows = metals & np.all(np.isfinite(atom_strain), axis=1)
    out["max_abs"] = (
        {
            c: float(np.nanmax(np.abs(atom_strain[finite_rows, k])) * 100)
            for k, c in enumerate(COMPONENTS)
        }
        if finite_rows.any()
        else None
    )
    names = dict(enumerate(materials.names))
    out["mean_by_region"] = {
        names.get(int(r), str(r)): {
            c: float(np.mean(atom_strain[sel, k]) * 100) for k, c in enumerate(COMPONENTS)
        }
        for r in np.unique(region)
        if (sel := finite_rows & (region == r)).any()
    }
    if distance is None:
        out["near_interface"] = None
        out["paper_signs"] = out["paper_signs_in_plane"] = None
        return out
    ripple = ripple_strain(slope)
    in_plane = tangent_frame(atom_strain, lab_slope)[:, [0, 1, 3]] - ripple
    bands = []
    for lo, hi in _BANDS:
        for side, name in ((-1, names[0]), (1, names[1])):
            sel = finite_rows & (side * distance > lo) & (side * distance <= hi)
            row = {"side": name, "from": lo, "to": hi, "metals": int(sel.sum())}
            row.update(
                {
                    c: float(np.mean(atom_strain[sel, k]) * 100) if sel.any() else None
                    for k, c in enumerate(COMPONENTS)
                }
            )
            for key, table in (("ripple", ripple), ("in_plane", in_plane)):
                ok = sel & np.all(np.isfinite(table), axis=1)
                row[key] = (
                    {c: float(np.mean(table[ok, k]) * 100) for k, c in enumerate(_MEMBRANE)}
                    if finite and ok.any()
                    else None
                )
            bands.append(row)
    out["near_interface"] = bands
    first = {b["side"]: b for b in bands if b["from"] == _BANDS[0][0]}
    # The paper's signs: the smaller lattice is stretched next to the interface (MoS2
    # e_xx, e_yy > 0), the larger compressed (WSe2 < 0).
    small, large = sorted(materials.regions, key=lambda m: m.lattice_constant)
    keys = (f"exx_eyy_positive_{small.name}", f"exx_eyy_negative_{large.name}")
    out["paper_signs"] = {
        keys[0]: _both(first[small.name], lambda v: v > 0),
        keys[1]: _both(first[large.name], lambda v: v < 0),
    }
    out["paper_signs_in_plane"] = (
        {
            keys[0]: _both(first[small.name]["in_plane"], lambda v: v > 0),
            keys[1]: _both(first[large.name]["in_plane"], lambda v: v < 0),
        }
        if finite
        else None
    )
    return out


def _both(row, test) -> bool | None:
    if row is None:
        return None
    values = (row["xx"], row["yy"])
    if any(v is None for v in values):
        return None
    return bool(all(test(v) for v in values))


def _plain(table: dict) -> dict:
    return {
        k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in table.items()
    }
