"""Accuracy and speed of the structure analysis against planted truths.

Run ``python benchmarks/bench_structure.py`` (about a minute on one core). It prints

1. strain recovered from an ideal MoS2 sheet (``ase.build.mx2``) carrying an analytic
   displacement field (uniform gradient + sinusoids + a 0.3 Å ripple), against the
   Gaussian-smoothed analytic strain, for atoms over 3 sigma from the field's edges, at
   several levels of position noise;
2. ripple amplitude and wavelength planted in straight-interface phantoms and fitted;
3. top/bottom bond-angle differences planted with ``top_bottom_asymmetry`` in flat
   phantoms, against the analytic value, per material;
4. the paper-scale phantom (configs/paper.yaml): timings, peak memory, and the mean
   strain of the metals in bands on each side of the interface, next to the phantom's
   own strain (local least-squares gradients of its exact geometry, relative to each
   material's lattice): the in-plane misfit field, the ripple part 1/2 dw/da dw/db and
   the membrane stretch along the sheet; measured with and without the ripple, linear
   and finite strain, and the finite strain's split into ripple and in-plane parts.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from hpcaet.config import config_to_dict, load_config, packaged_config
from hpcaet.materials import Materials
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.structure import (
    analyse_structure,
    atomic_displacements,
    bond_angles,
    detrend_plane,
    find_interface,
    fit_ripple,
    ideal_bond_angle,
    interface_distance,
    layer_difference,
    strain_tensor,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "structure"))
from structure_sheets import field, sheet, strain  # noqa: E402

SIGMA = 3.16
COMP = ("xx", "yy", "zz", "xy", "xz", "yz")


def _species(atoms):
    return np.array(["vac" if s == "X" else s for s in atoms.get_chemical_symbols()])


def analytic_strain(half: float, noises: list[float]) -> None:
    print(
        f"\n1. Analytic field on a {2 * half:.0f} x {2 * half:.0f} Å MoS2 sheet, sigma "
        f"{SIGMA} Å, grid 1 Å; error vs smoothed truth, atoms > 3 sigma from edges [%]"
    )
    pos0, species, layer = sheet(half=half)
    print(
        f"   {'noise [Å]':>9} {'atoms':>6} {'time [s]':>8}  "
        + "  ".join(f"max|d{c}| rms" for c in COMP)
    )
    for noise in noises:
        pos = pos0 + field(pos0) + np.random.default_rng(1).normal(0, noise, pos0.shape)
        start = time.perf_counter()
        disp, region, _ = atomic_displacements(
            pos,
            species,
            layer,
            np.zeros(len(pos), int),
            lattice_constant={0: 3.16},
            height={0: 1.56},
        )
        got = strain_tensor(
            pos, disp, region, spacing=1.0, sigma=SIGMA, padding=6.0, mask_distance=2.0
        ).at(pos)
        elapsed = time.perf_counter() - start
        inner = np.all(np.abs(pos0[:, :2]) < half - 3 * SIGMA, axis=1)
        err = (got - strain(pos, SIGMA))[inner] * 100
        cols = "  ".join(
            f"{np.abs(err[:, k]).max():6.3f} {np.sqrt(np.mean(err[:, k] ** 2)):5.3f}"
            for k in range(6)
        )
        print(f"   {noise:9.3f} {len(pos):6d} {elapsed:8.2f}  {cols}")


def ripples() -> None:
    print("\n2. Ripple along a straight zigzag interface (90 x 60 Å phantom, 0.05 Å noise)")
    print(
        f"   {'A planted':>9} {'A found':>8} {'err':>6} {'λ planted':>9} {'λ found':>8} {'err':>6}"
    )
    for amp, lam, seed in ((1.5, 50.0, 0), (0.8, 30.0, 1), (1.0, 25.0, 2), (2.0, 70.0, 3)):
        spec = HeterojunctionSpec(
            field=(90.0, 60.0),
            ripple_amplitude=amp,
            ripple_wavelength=lam,
            region_polygon=((-1, -1), (-1, 0.05), (1, 0.05), (1, -1)),
        )
        atoms = build_heterojunction(spec, rng=seed)
        species = _species(atoms)
        metals = np.isin(species, ("Mo", "W"))
        d, arc = interface_distance(atoms.positions, find_interface(atoms.positions, species))
        h = detrend_plane(atoms.positions, mask=metals)
        band = metals & (np.abs(d) <= 3.2)
        fit = fit_ripple(arc[band], h[band])
        print(
            f"   {amp:9.2f} {fit.amplitude:8.3f} {100 * (fit.amplitude / amp - 1):+5.1f}% "
            f"{lam:9.1f} {fit.wavelength:8.2f} {100 * (fit.wavelength / lam - 1):+5.1f}%"
        )


def bonds() -> None:
    print(
        "\n3. Planted top/bottom asymmetry (flat 100 x 100 Å phantom, 0.05 Å noise, "
        "misfit, vacancies); bottom - top [deg], paired"
    )
    print(
        f"   {'delta [Å]':>9} {'seed':>4} {'material':>8} {'expected':>8} {'X-M-X':>7} {'M-X-M':>7}"
    )
    for delta in (0.1, 0.3):
        for seed in (0, 1):
            spec = HeterojunctionSpec(
                field=(100.0, 100.0), ripple_amplitude=0.0, top_bottom_asymmetry=delta
            )
            atoms = build_heterojunction(spec, rng=seed)
            angles = bond_angles(
                atoms.positions, _species(atoms), atoms.arrays["layer"], bond_cutoff=3.0
            )
            region = atoms.arrays["region"]
            for r, (name, a, h) in enumerate((("MoS2", 3.16, 1.56), ("WSe2", 3.28, 1.67))):
                want = ideal_bond_angle(a, h) - ideal_bond_angle(a, h + delta)
                got = [
                    layer_difference(angles, kind=k, atoms=region == r)["difference"]
                    for k in ("XMX", "MXM")
                ]
                print(
                    f"   {delta:9.2f} {seed:4d} {name:>8} {want:8.3f} {got[0]:7.3f} {got[1]:7.3f}"
                )


def _phantom_strain(config) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The phantom's own strain at each metal, relative to its material's lattice [1].

    The phantom without misfit (a_WSe2 = a_MoS2), ripple, noise or vacancies sits on its
    reference lattice ``r0``, with the same sites in the same order as the noise-free
    phantom with misfit and ripple, whose metals are at ``p``. The gradient
    ``G = dp/dr0`` (3 x 2) is fitted by least squares over the metals within 3.5 Å of
    each metal. Returned (xx, yy, xy): ``in_plane`` from the x, y rows of G (the in-plane
    displacement field alone, i.e. the misfit, less the ripple's mean stretch when the
    phantom keeps its area: ``(1 + G_aa) f - 1``, ``(G_xy + G_yx) f / 2``), ``ripple`` the ripple
    part ``1/2 G_za G_zb``, and ``membrane`` the stretch along the sheet
    ``|G_a| f - 1`` (the metric of the rippled surface), ``f`` = 1 / (1 + misfit) in
    WSe2, 1 in MoS2.
    """
    base = dict(config_to_dict(config.phantom), thermal_rms=0.0, vacancies=0, substitutions=0)
    base["field"] = tuple(base["field"])
    base["region_polygon"] = tuple(map(tuple, base["region_polygon"]))
    host, guest = config.materials.regions
    strained = build_heterojunction(HeterojunctionSpec(materials=config.materials, **base), rng=0)
    flat = Materials(
        (
            host,
            dataclasses.replace(
                guest,
                lattice_constant=host.lattice_constant,
                chalcogen_height=host.chalcogen_height,
            ),
        )
    )
    ref = build_heterojunction(
        HeterojunctionSpec(materials=flat, **{**base, "ripple_amplitude": 0.0}), rng=0
    )
    metal = strained.arrays["layer"] == 0
    r0 = ref.positions[metal, :2]
    p = strained.positions[metal]
    misfit = guest.lattice_constant / host.lattice_constant - 1
    out = {k: np.zeros((len(r0), 3)) for k in ("in_plane", "ripple", "membrane")}
    for i, nb in enumerate(cKDTree(r0).query_ball_point(r0, 3.5)):
        g, *_ = np.linalg.lstsq(r0[nb] - r0[i], p[nb] - p[i], rcond=None)  # g[a, k] = dp_k/dr0_a
        f = 1.0 / (1 + misfit) if strained.arrays["region"][metal][i] == 1 else 1.0
        gt = g.T  # gt[k, a]
        out["in_plane"][i] = [gt[0, 0] * f - 1, gt[1, 1] * f - 1, 0.5 * (gt[0, 1] + gt[1, 0]) * f]
        out["ripple"][i] = 0.5 * np.array([gt[2, 0] ** 2, gt[2, 1] ** 2, gt[2, 0] * gt[2, 1]])
        c = gt.T @ gt
        out["membrane"][i] = [
            np.sqrt(c[0, 0]) * f - 1,
            np.sqrt(c[1, 1]) * f - 1,
            0.5 * c[0, 1] * f**2,
        ]
    return p, out


def paper_scale() -> None:
    print("\n4. Paper-scale phantom (configs/paper.yaml)")
    config = load_config(packaged_config("paper"))
    settings = config_to_dict(config.structure)
    from hpcaet.phantom.stage import make_phantom

    runs, metals = {}, {}
    for label, phantom, finite in (
        ("ripple-free", {"ripple_amplitude": 0.0}, True),
        ("paper, linear", {}, False),
        ("paper, finite", {}, True),
    ):
        cfg = load_config(
            packaged_config("paper"), overrides={"phantom": phantom} if phantom else None
        )
        model = make_phantom(cfg)
        start = time.perf_counter()
        result = analyse_structure(
            model["position"].values,
            model["species"].values.astype(str),
            model["layer"].values,
            model["region"].values,
            materials=cfg.materials,
            **{**settings, "finite_strain": finite},
        )
        total = time.perf_counter() - start
        runs[label] = result
        metals[label] = np.isin(model["species"].values.astype(str), ("Mo", "W"))
        t = result.results["timings"]
        print(
            f"   {label:<14} {model.sizes['atom']} sites: total {total:.2f} s (interface and "
            f"ripples {t['interface_and_ripples']:.2f}, bonds {t['bonds']:.2f}, lattice "
            f"{t['lattice_fit']:.2f}, strain {t['strain']:.2f}); grid "
            f"{result.field.strain.shape[1:]}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   peak resident memory of this process so far: {peak:.0f} MiB")
    r = runs["paper, linear"].results
    rip = r["ripple"]
    print(
        f"   ripple: amplitude {rip['amplitude']:.3f} Å (planted 1.5 at the interface), "
        f"wavelength {rip['wavelength']:.2f} Å (planted 50)"
    )
    itf = r["interface"]
    ch, vac = itf["chalcogens"]["bridging"], itf["vacancies"]
    segments = [(s["kind"], round(s["length"], 1)) for s in itf["segments"]]
    print(
        f"   interface: {segments}; chalcogens bonded to Mo and W: S {ch['S']}, Se "
        f"{ch['Se']}, vac {ch['vac']}; vacancies within {vac['cutoff']} Å: "
        f"{vac['at_interface']} of {vac['total']}"
    )
    for kind in ("XMX", "MXM"):
        b = r["bond_angles"][kind]
        print(
            f"   {kind} bottom - top: all {b['all']['difference']:+.2f}°, at the interface "
            f"{b['interface']['difference']:+.2f}° (no asymmetry planted)"
        )

    pos, truth = _phantom_strain(config)
    d_truth, _ = interface_distance(pos, runs["ripple-free"].interface)
    fin = runs["paper, finite"]
    measured = {
        "ripple-free total": (runs["ripple-free"], "atom_strain", (0, 1, 3)),
        "linear total": (runs["paper, linear"], "atom_strain", (0, 1, 3)),
        "finite total": (fin, "atom_strain", (0, 1, 3)),
        "finite ripple part": (fin, "ripple_strain", (0, 1, 2)),
    }
    print(
        "   mean strain xx/yy/xy of the metals by signed distance to the interface [%].\n"
        "   Truth (noise-free phantom, unsmoothed): in-plane = the in-plane displacement "
        "field alone\n   (the misfit, less the ripple's area with ripple_keeps_area), "
        "ripple = 1/2 dw/da dw/db,\n   membrane = stretch along the rippled sheet. "
        "Measured: the default settings (sigma 3.16 Å), finite strain unless 'linear'."
    )
    for lo, hi in ((0, 5), (5, 10), (10, 20)):
        for side, name in ((-1, "MoS2"), (1, "WSe2")):
            sel_t = (side * d_truth > lo) & (side * d_truth <= hi)
            print(f"   {name} {lo}-{hi} Å ({sel_t.sum()} metals)")
            for key in ("in_plane", "ripple", "membrane"):
                vals = "/".join(f"{100 * truth[key][sel_t, k].mean():+6.2f}" for k in range(3))
                print(f"      truth {key:<24} {vals}")
            for label, (res, attr, cols) in measured.items():
                table = getattr(res, attr)
                m = metals["paper, finite"]  # the same sites in every run
                sel = m & (side * res.distance > lo) & (side * res.distance <= hi)
                sel &= np.all(np.isfinite(table), axis=1)
                vals = "/".join(f"{100 * table[sel, k].mean():+6.2f}" for k in cols)
                print(f"      measured {label:<21} {vals}")
            band = next(
                b
                for b in fin.results["strain"]["near_interface"]
                if b["side"] == name and b["from"] == lo
            )
            vals = "/".join(f"{band['in_plane'][c]:+6.2f}" for c in ("xx", "yy", "xy"))
            print(f"      measured {'finite in-plane part':<21} {vals}")
    for label, res in runs.items():
        st = res.results["strain"]
        print(
            f"   {label:<14} paper signs near the interface (0-5 Å): total "
            f"{st['paper_signs']}; in-plane part {st['paper_signs_in_plane']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the paper-scale part")
    args = parser.parse_args()
    analytic_strain(30.0, [0.0, 0.01, 0.02, 0.05])
    ripples()
    bonds()
    if not args.quick:
        paper_scale()


if __name__ == "__main__":
    main()
