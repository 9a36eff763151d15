"""A synthetic monolayer lateral heterojunction (the paper's MoS2–WSe2) with known atoms.

The two materials are those of :class:`hpcaet.materials.Materials` (region 0 the host,
region 1 inside a polygon; with a single material there is no region 1 and no
misfit, and the polygon's edges only guide the ripple and the vacancies).
The flake is one coherent 2H lattice: every site has lattice indices shared by both
materials (epitaxy), and the misfit (5.5 % for MoS2–WSe2) enters as a smooth
dilatation field. From the *reference lattice* (region 0's constant, indices
``n1, n2``) the builder

1. marks region 1 (a polygon whose edges along x are zigzag and along y armchair),
   so metals are region 1's (W) inside and region 0's (Mo) outside, and chalcogens are
   region 1's (Se) only where all three metal neighbours are region 1's (W–S bonds at
   the interface);
2. displaces every site by ``u = grad(phi)`` with ``laplace(phi) = 2 m(r)``, where the
   misfit ``m`` steps from 0 (region 0) to ``a_1 / a_0 - 1`` (region 1) over
   ``interface_width``: the strain is isotropic inside each region and relaxes away
   from the interface (for MoS2–WSe2 tension on the MoS2 side, compression on the
   WSe2 side);
3. adds an out-of-plane ripple ``z = A cos(2 pi t / lambda) envelope(d)``, ``t`` the
   arc length along the interface (blended round corners, so the sheet is continuous)
   and ``d`` the distance to it, with chalcogens placed
   along the local normal of the rippled sheet; lifting a site by ``w`` stretches the
   sheet by ``grad(w) grad(w) / 2`` (the membrane strain of Föppl–von Kármán), and with
   ``ripple_keeps_area`` the sites are also pulled in by ``grad(psi)``,
   ``laplace(psi) = -|grad(w)|² / 2``, which cancels that stretch's trace (the sheet's
   area is kept to second order in the slope; a shear part remains, since a sheet with
   curvature in two directions cannot be laid on a plane without it);
4. turns chalcogen sites into vacancies (explicit sites, symbol ``X``) with a density
   decaying away from the interface, puts a few of region 1's chalcogen (Se) on
   region 0's chalcogen sites (S), and adds Gaussian thermal displacements.

All fields are defined on the reference lattice, so they are known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import ase
import numpy as np
from scipy import ndimage
from scipy.special import erf

from hpcaet.errors import InputError
from hpcaet.materials import PAPER, Materials

__all__ = [
    "HeterojunctionSpec",
    "build_heterojunction",
    "LAYER_BOTTOM",
    "LAYER_METAL",
    "LAYER_TOP",
    "REGION_MOS2",
    "REGION_WSE2",
]

LAYER_BOTTOM, LAYER_METAL, LAYER_TOP = -1, 0, 1
REGION_UNKNOWN, REGION_MOS2, REGION_WSE2 = -1, 0, 1
_GRID_STEP = 0.5  # [Å] sampling of the misfit potential
_RIPPLE_BLEND = 0.5  # [Å] smoothing of the ripple's phase round interface corners


@dataclass(frozen=True)
class HeterojunctionSpec:
    """Geometry of a heterojunction phantom; lengths in Å.

    Field names and meanings follow the ``phantom`` section of ``defaults.yaml``.
    """

    field: tuple[float, float] = (74.0, 74.0)
    materials: Materials = PAPER
    region_polygon: tuple[tuple[float, float], ...] = (
        (-1, -1),
        (-1, 0.07),
        (-0.08, 0.07),
        (-0.08, -1),
    )
    interface_width: float = 12.0
    ripple_amplitude: float = 1.5
    ripple_wavelength: float = 50.0
    ripple_decay: float = 25.0
    ripple_floor: float = 0.3
    ripple_keeps_area: bool = True
    vacancies: int = 16
    vacancy_decay: float = 12.0
    substitutions: int = 2
    thermal_rms: float = 0.05
    top_bottom_asymmetry: float = 0.0
    extend: float = 0.0


def build_heterojunction(
    spec: HeterojunctionSpec, *, rng: np.random.Generator | int | None = None
) -> ase.Atoms:
    """Build the phantom.

    Parameters
    ----------
    spec : HeterojunctionSpec
        Geometry; see the module docstring for what each part does.
    rng : numpy.random.Generator or int or None
        Source of the vacancy, substitution and thermal randomness.

    Returns
    -------
    ase.Atoms
        Positions [Å] centred on the origin in x and y, metal plane near z = 0.
        Vacancies are atoms with symbol ``"X"``. Per-atom arrays: ``layer``
        (-1 bottom, 0 metal, 1 top), ``region`` (0 or 1, the index into
        ``spec.materials.regions``), ``pair`` (index of the top/bottom partner site, -1
        for metals), ``interface_distance`` (signed distance to the interface on the
        reference lattice, > 0 in region 1 [Å]),
        ``ripple`` (height of the sheet at the site [Å]).
    """
    rng = np.random.default_rng(rng)
    fx, fy = spec.field
    host, guest = spec.materials.regions[0], spec.materials.other()
    a = host.lattice_constant
    a1, a2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
    polygon = np.asarray(spec.region_polygon, dtype=float) * [fx, fy]
    if not spec.extend >= 0:
        raise InputError(f"extend must be >= 0 Å; got {spec.extend!r}.")
    # The sheet continues `extend` beyond the field: polygon vertices beyond the field's
    # edge move out by as much, so the regions run on and no new interface appears.
    ex, ey = fx / 2 + spec.extend, fy / 2 + spec.extend
    outside = np.abs(polygon) > [fx / 2, fy / 2]
    polygon = polygon + np.where(outside, np.sign(polygon) * spec.extend, 0.0)
    segments = _clip_polyline_to_box(polygon, ex, ey)
    if len(segments) == 0:
        raise InputError(
            f"the region polygon {np.asarray(spec.region_polygon).tolist()} has no edge inside "
            f"the {fx} x {fy} Å field, so there is no interface; move a vertex inside."
        )

    # Reference sites: metals at n1 a1 + n2 a2, chalcogens at the triangle centre.
    n2max = int(np.ceil(2 * ey / (a * np.sqrt(3) / 2))) + 2
    n1max = int(np.ceil(2 * ex / a)) + n2max + 2
    n1, n2 = np.meshgrid(np.arange(-n1max, n1max + 1), np.arange(-n2max, n2max + 1))
    n1, n2 = n1.ravel(), n2.ravel()
    metal0 = n1[:, None] * a1 + n2[:, None] * a2
    chalc0 = metal0 + (a1 + a2) / 3
    half = np.array([ex, ey])
    keep_m = np.all(np.abs(metal0) <= half, axis=1)
    keep_c = np.all(np.abs(chalc0) <= half, axis=1)

    inside = _inside_polygon
    is_w = inside(metal0, polygon) & spec.materials.pair
    all_w = is_w & inside(metal0 + a1, polygon) & inside(metal0 + a2, polygon)

    metal0, is_w = metal0[keep_m], is_w[keep_m]
    chalc0, all_w = chalc0[keep_c], all_w[keep_c]
    nm, nc = len(metal0), len(chalc0)

    sites = np.concatenate([metal0, chalc0, chalc0])
    layer = np.concatenate(
        [np.full(nm, LAYER_METAL), np.full(nc, LAYER_TOP), np.full(nc, LAYER_BOTTOM)]
    ).astype(np.int8)
    region = np.concatenate([is_w, all_w, all_w]).astype(np.int8)  # 1 = region 1 (WSe2)
    chalcogen = np.where(all_w, guest.chalcogen, host.chalcogen)
    symbols = np.concatenate(
        [np.where(is_w, guest.metal, host.metal), chalcogen, chalcogen]
    ).astype(object)
    pair = np.concatenate([np.full(nm, -1), nm + nc + np.arange(nc), nm + np.arange(nc)])

    # Distances to the interface, signed (> 0 inside region 1), and arc length along it.
    dist, _ = _distance_to_polyline(sites, segments)
    signed = np.where(inside(sites, polygon), dist, -dist)

    # Out-of-plane ripple of the sheet.
    def sheet(xy):
        d, t = _distance_to_polyline(xy, segments, blend=_RIPPLE_BLEND)
        env = spec.ripple_floor + (1 - spec.ripple_floor) * np.exp(-d / spec.ripple_decay)
        return spec.ripple_amplitude * np.cos(2 * np.pi * t / spec.ripple_wavelength) * env

    # In-plane displacement: misfit dilatation, less the ripple's stretch if asked.
    misfit = guest.lattice_constant / host.lattice_constant - 1.0
    u = _misfit_displacement(
        sites,
        polygon,
        segments,
        half,
        misfit,
        spec.interface_width,
        sheet=sheet if spec.ripple_keeps_area and spec.ripple_amplitude > 0 else None,
    )

    h = 0.05
    w0 = sheet(sites)
    dwdx = (sheet(sites + [h, 0]) - sheet(sites - [h, 0])) / (2 * h)
    dwdy = (sheet(sites + [0, h]) - sheet(sites - [0, h])) / (2 * h)
    normal = np.column_stack([-dwdx, -dwdy, np.ones_like(w0)])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)

    height = np.where(region == REGION_WSE2, guest.chalcogen_height, host.chalcogen_height)
    height = height + np.where(layer == LAYER_TOP, spec.top_bottom_asymmetry, 0.0)
    positions = np.column_stack([sites + u, w0]) + (layer * height)[:, None] * normal

    # Vacancies near the interface; region 1's chalcogen on region 0's chalcogen sites.
    # (defects only inside the field: the configured counts are those of the field)
    in_field = np.all(np.abs(sites) <= [fx / 2, fy / 2], axis=1)
    chalc = np.flatnonzero((layer != LAYER_METAL) & in_field)
    n_vac = int(spec.vacancies)
    if n_vac > len(chalc):
        raise InputError(
            f"phantom.vacancies = {n_vac} exceeds the {len(chalc)} chalcogen sites of the "
            "field; lower it or enlarge the field."
        )
    p = np.exp(-np.abs(signed[chalc]) / spec.vacancy_decay)
    vac = rng.choice(chalc, size=n_vac, replace=False, p=p / p.sum()) if n_vac else []
    symbols[vac] = "X"
    s_sites = np.flatnonzero(
        (symbols == host.chalcogen) & (region == REGION_MOS2) & (np.abs(signed) > a) & in_field
    )
    n_sub = int(spec.substitutions)
    if n_sub and not spec.materials.pair:
        raise InputError(
            f"phantom.substitutions = {n_sub} needs a second material's chalcogen; the sheet "
            f"is {host.name} alone. Set phantom.substitutions: 0."
        )
    if n_sub > len(s_sites):
        raise InputError(
            f"phantom.substitutions = {n_sub} exceeds the {len(s_sites)} {host.chalcogen} "
            "sites available."
        )
    symbols[rng.choice(s_sites, size=n_sub, replace=False)] = guest.chalcogen

    positions = positions + rng.normal(0.0, spec.thermal_rms, positions.shape)

    atoms = ase.Atoms(symbols=list(symbols), positions=positions, pbc=False)
    atoms.set_array("layer", layer)
    atoms.set_array("region", region)
    atoms.set_array("pair", pair.astype(np.int32))
    atoms.set_array("interface_distance", signed)
    atoms.set_array("ripple", w0)
    atoms.info["interface_segments"] = segments
    atoms.info["misfit"] = misfit
    return atoms


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test, vectorised over points."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (np.sum(crosses & (x < xc), axis=1) % 2).astype(bool)


def _clip_polyline_to_box(polygon: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """Parts of the polygon's edges inside the box |x| <= hx, |y| <= hy (Liang–Barsky)."""
    out = []
    for p0, p1 in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        d = p1 - p0
        t0, t1 = 0.0, 1.0
        ok = True
        for pk, qk in (
            (-d[0], p0[0] + hx),
            (d[0], hx - p0[0]),
            (-d[1], p0[1] + hy),
            (d[1], hy - p0[1]),
        ):
            if pk == 0:
                if qk < 0:
                    ok = False
                    break
                continue
            r = qk / pk
            if pk < 0:
                t0 = max(t0, r)
            else:
                t1 = min(t1, r)
        if ok and t1 - t0 > 1e-9:
            out.append([p0 + t0 * d, p0 + t1 * d])
    return np.asarray(out, dtype=float).reshape(-1, 2, 2)


def _distance_to_polyline(points: np.ndarray, segments: np.ndarray, *, blend: float = 0.0):
    """Distance to the nearest segment and the arc length along the polyline.

    With ``blend = 0`` the arc length is that of the nearest point, which jumps across
    the bisector of a corner. With ``blend > 0`` [Å] it is the average of every
    segment's arc length weighted by ``exp(-(d_segment - d_nearest) / (blend +
    d_nearest))``: continuous everywhere, equal to the nearest point's on the polyline
    away from its corners, and turning round a corner over a wedge (used for the
    ripple's phase).
    """
    p0, p1 = segments[:, 0], segments[:, 1]
    d = p1 - p0
    length = np.linalg.norm(d, axis=1)
    start = np.concatenate([[0.0], np.cumsum(length)[:-1]])
    rel = points[:, None, :] - p0[None]
    t = np.clip(np.einsum("nsk,sk->ns", rel, d) / length**2, 0.0, 1.0)
    foot = p0[None] + t[..., None] * d[None]
    dist = np.linalg.norm(points[:, None, :] - foot, axis=2)
    arc = start[None] + t * length[None]
    k = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    nearest = dist[rows, k]
    if blend <= 0:
        return nearest, arc[rows, k]
    weight = np.exp(-(dist - nearest[:, None]) / (blend + nearest[:, None]))
    return nearest, (weight * arc).sum(axis=1) / weight.sum(axis=1)


def _misfit_displacement(sites, polygon, segments, half, misfit, width, *, sheet=None):
    """In-plane displacement ``grad(phi)``, ``laplace(phi) = 2 m``, by FFT on a padded grid.

    With ``sheet`` (a callable giving the ripple height ``w`` [Å] at (n, 2) points) the
    dilatation is ``2 m - |grad w|² / 2``: the sites are pulled in by as much as lifting
    them into the ripple stretches the sheet, on average over directions.
    """
    n = [int(np.ceil(3 * 2 * h / _GRID_STEP)) // 2 * 2 for h in half]
    gx = (np.arange(n[0]) - n[0] // 2) * _GRID_STEP
    gy = (np.arange(n[1]) - n[1] // 2) * _GRID_STEP
    X, Y = np.meshgrid(gx, gy)
    pts = np.column_stack([X.ravel(), Y.ravel()])
    dist, _ = _distance_to_polyline(pts, segments)
    signed = np.where(_inside_polygon(pts, polygon), dist, -dist)
    step = 0.5 * (1 + erf(signed / (width / 2)))
    in_field = np.all(np.abs(pts) <= half + width, axis=1)
    m = (misfit * step * in_field).reshape(X.shape)
    if sheet is not None:
        w = sheet(pts).reshape(X.shape)
        wy, wx = np.gradient(w, _GRID_STEP)
        m = m - 0.25 * (wx**2 + wy**2) * in_field.reshape(X.shape)
    mean = m.mean()
    ky = 2 * np.pi * np.fft.fftfreq(n[1], _GRID_STEP)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(n[0], _GRID_STEP)[None, :]
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0
    phi_hat = -2 * np.fft.fft2(m - mean) / k2
    phi_hat[0, 0] = 0.0
    ux = np.fft.ifft2(1j * kx * phi_hat).real
    uy = np.fft.ifft2(1j * ky * phi_hat).real
    idx = [sites[:, 1] / _GRID_STEP + n[1] // 2, sites[:, 0] / _GRID_STEP + n[0] // 2]
    u = np.column_stack(
        [
            ndimage.map_coordinates(ux, idx, order=3, mode="nearest"),
            ndimage.map_coordinates(uy, idx, order=3, mode="nearest"),
        ]
    )
    return u + mean * sites
