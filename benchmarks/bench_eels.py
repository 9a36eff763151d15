"""Accuracy, calibration and speed of the vibrational-EELS analysis; background estimators.

Default: synthetic line scans of the paper's kind (40 points, 1.6 nm, 0.44 meV/channel,
Table S3 peaks of 5.7 meV FWHM, 1.6-nm delocalisation) at SNR 7 per spectrum (the
paper's, derived in docs/eels.md) and 30, analysed with joint power law + five Gaussians
of one shared σ (``--free-widths``: every σ free, the paper's model), runs whose peaks
are not all 2 standard errors high set aside (``--min-significance``), delocalisation
corrected, 160 deterministic starts (``--rounds N``: up to N rounds of them while a round
still lowers χ² by more than χ²/dof). Per true peak it
prints Table S3's value and error bar, ``CRLB`` (Cramér–Rao bound of the centre for the
Poisson counts of the group sum, every peak parameter and a power law free), the mean
fitted centre, its bias and scatter (standard deviation over the seeds), scatter/CRLB,
the worst error, the tolerance max(0.5 meV, 2 CRLB), in how many seeds the centre is
within it, and how often the truth lies inside the reported ±1 standard error. Fitted
peaks are matched to the true ones by optimal assignment (statistical distance).

    python benchmarks/bench_eels.py [--seeds 20] [--snr 7 30] [--starts 160] [--save P]
        [--first-seed 0] [--fit-range 17 70]   # --save P: P_snr7.npz, rewritten per seed
    python benchmarks/bench_eels.py --merge P1_snr7.npz P2_snr7.npz   # table of the pieces
    python benchmarks/bench_eels.py --background ../shared/data/real/vEELS_BTO_SI.dm4 \
        [--figure background.png]          # estimators on the real file, HyperSpy beside
    python benchmarks/bench_eels.py --synthetic-background [--seeds 20]
    python benchmarks/bench_eels.py --misassignment --snr 3 5 7 10 15 30
    python benchmarks/bench_eels.py --real-noise ../shared/data/real
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from hpcaet.eels import analyse_spectra, centre_crlb, synthetic_line_scan
from hpcaet.eels.synthetic import TABLE_S3_EELS, TABLE_S3_EELS_ERROR


def truth_crlb(scan, fit_range: tuple[float, float]) -> np.ndarray:
    """CRLB of every true centre (n_region, n_peaks) [meV] for the group sums of the truth.

    The group is the true region; its expected sum is taken on the zero-loss-aligned
    axis (what the analysis fits), with the delocalised neighbour signal included in the
    counts; the five own peaks (centre, σ, height) and a power law are free.
    """
    e = scan.energy
    mask = (e >= fit_range[0]) & (e <= fit_range[1])
    out = []
    for g in range(len(scan.regions)):
        members = np.flatnonzero(scan.region == g)
        lam = np.zeros(e.size)
        bg = np.zeros(e.size)
        for i in members:
            lam += np.interp(e + scan.zlp_shift[i], e, scan.background[i] + scan.signal[i])
            bg += np.interp(e + scan.zlp_shift[i], e, scan.background[i])
        slope, log_a = np.polyfit(np.log(e[mask]), np.log(bg[mask]), 1)
        out.append(
            centre_crlb(
                e,
                lam,
                scan.peak_centre[g],
                scan.peak_width[g],
                scan.peak_height[g] * members.size,
                power_law=(float(np.exp(log_a)), float(-slope)),
                fit_range=fit_range,
            )
        )
    return np.array(out)


def real_noise(folder: str) -> None:
    """Variance over mean of real spectra's smooth pre-edge (360-445 eV): the detector gain.

    A cubic in log-log is removed from each spectrum; ``var/mean`` is 1 for electron
    counts. Also from channel-to-channel differences (less sensitive to the cubic).
    """
    from pathlib import Path

    from hpcaet.eels import read_spectra

    for name in ("DMReader_EELS_STO.dm3", "DMReader_SpectrumImage_SI-EELS.dm3"):
        ds = read_spectra(Path(folder) / name)
        e = ds["energy"].values / 1e3
        m = (e > 360) & (e < 445)
        ratio, diff = [], []
        for y in ds["spectra"].values[:, m]:
            if np.any(y <= 0):
                continue
            x = np.log(e[m])
            fit = np.exp(np.polyval(np.polyfit(x, np.log(y), 3), x))
            ratio.append(np.var(y - fit, ddof=4) / fit.mean())
            diff.append(np.mean(np.diff(y) ** 2) / 2 / fit.mean())
        print(
            f"{name}: {len(ratio)} spectra, {int(m.sum())} channels; var/mean median "
            f"{np.median(ratio):.3g}, from differences {np.median(diff):.3g}"
        )


#: The authors' background windows of the real BaTiO3 spectrum image [meV] (README of
#: ../shared/data/real; the first holds one 0.5-meV channel).
BTO_WINDOWS = ((8.5, 9.0), (72.0, 78.0), (105.0, 120.0))
#: Ranges of the subtracted intensity compared [meV] (the issue's).
BTO_RANGES = ((20.0, 70.0), (50.0, 65.0), (80.0, 95.0))


def hyperspy_power_law(spectra, energy, windows, *, loss="ML-poisson", start=None):
    """(A, r) per spectrum from HyperSpy's ``PowerLaw`` fitted on the window channels.

    An independent implementation of the same estimator: ``loss="ML-poisson"`` is the
    Poisson maximum likelihood (Nelder–Mead), ``"ls"`` unweighted least squares (LM).
    ``start`` = (A, r) arrays to start from (default HyperSpy's own estimate).
    """
    import hyperspy.api as hs

    s = hs.signals.Signal1D(np.asarray(spectra, dtype=float))
    axis = s.axes_manager.signal_axes[0]
    axis.offset, axis.scale, axis.is_binned = float(energy[0]), float(np.diff(energy).mean()), False
    m = s.create_model()
    law = hs.model.components1D.PowerLaw()
    m.append(law)
    mask = np.zeros(energy.size, bool)
    for lo, hi in windows:
        mask |= (energy >= lo) & (energy <= hi)
    m.set_signal_range_from_mask(mask)
    if start is not None:
        law.A.map["values"][:], law.r.map["values"][:] = start
        law.A.map["is_set"][:] = law.r.map["is_set"][:] = True
    if loss == "ML-poisson":
        m.multifit(
            optimizer="Nelder-Mead",
            loss_function="ML-poisson",
            fetch_only_fixed=False,
            iterpath="flyback",
            show_progressbar=False,
            options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000},
        )
    else:
        m.multifit(optimizer="lm", show_progressbar=False)
    return law.A.map["values"].copy(), law.r.map["values"].copy()


def real_background(path: str, *, every: int = 1, figure: str | None = None) -> None:
    """The four estimators on a real spectrum image, and HyperSpy's PowerLaw beside two.

    With ``figure``, a PNG of the mean spectrum, each estimator's mean background and the
    mean subtracted signal.
    """
    import warnings

    from hpcaet.eels import align_zero_loss, fit_power_law, power_law, read_spectra
    from hpcaet.eels._checks import EelsWarning

    ds = read_spectra(path)
    aligned = align_zero_loss(ds["spectra"].values[::every], ds["energy"].values)
    e, y = aligned.energy, aligned.spectra
    print(f"{path}: {len(y)} spectra, windows {BTO_WINDOWS} meV (the authors')")

    def subtracted(amplitude, exponent):
        out = []
        for lo, hi in BTO_RANGES:
            m = (e >= lo) & (e <= hi)
            out.append((y[:, m] - power_law(e[m], amplitude, exponent)).sum())
        return np.array(out)

    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EelsWarning)
        for name in ("poisson", "loglog", "two_area", "least_squares"):
            start = time.perf_counter()
            fits[name] = fit_power_law(y, e, windows=BTO_WINDOWS, estimator=name)
            took = time.perf_counter() - start
            print(f"  {name}: {took:.2f} s, mean r {fits[name].exponent.mean():.3f}")
    ref = subtracted(fits["poisson"].amplitude, fits["poisson"].exponent)
    print(
        "subtracted intensity relative to 'poisson' over "
        + ", ".join(f"{a:g}-{b:g}" for a, b in BTO_RANGES)
        + " meV:"
    )
    for name, f in fits.items():
        rel = 100 * (subtracted(f.amplitude, f.exponent) / ref - 1)
        print(f"  {name:<14}" + "".join(f"{v:>+8.1f} %" for v in rel))
    if figure:
        _background_figure(e, y, fits, figure)
    try:
        import hyperspy  # noqa: F401
    except ImportError:
        print("HyperSpy not installed: no independent reference (pip install hyperspy)")
        return
    mask = np.zeros(e.size, bool)
    for lo, hi in BTO_WINDOWS:
        mask |= (e >= lo) & (e <= hi)
    x = np.log(e[mask])
    for name, loss in (("poisson", "ML-poisson"), ("least_squares", "ls")):
        start = time.perf_counter()
        a, r = hyperspy_power_law(
            y, e, BTO_WINDOWS, loss=loss, start=(fits["loglog"].amplitude, fits["loglog"].exponent)
        )
        ours = subtracted(fits[name].amplitude, fits[name].exponent)
        theirs = subtracted(a, r)
        per_pixel = []
        for lo, hi in BTO_RANGES:
            m = (e >= lo) & (e <= hi)
            ps = (y[:, m] - power_law(e[m], fits[name].amplitude, fits[name].exponent)).sum(1)
            pt = (y[:, m] - power_law(e[m], a, r)).sum(1)
            per_pixel.append(np.median(np.abs(ps / pt - 1)) * 100)
        print(
            f"HyperSpy PowerLaw ({loss}) vs hpcaet '{name}': total subtracted intensity "
            + ", ".join(f"{100 * (o / t - 1):+.3f} %" for o, t in zip(ours, theirs, strict=True))
            + "; median per-pixel |difference| "
            + ", ".join(f"{v:.3f} %" for v in per_pixel)
            + f"; exponent max |diff| {np.max(np.abs(r - fits[name].exponent)):.2e} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    slope, intercept = np.polyfit(x, np.log(y[0, mask]), 1)
    print(
        "numpy.polyfit (log-log) vs hpcaet 'loglog', spectrum 0: r "
        f"{-slope:.6f} vs {fits['loglog'].exponent[0]:.6f}"
    )


def _background_figure(e, y, fits, path) -> None:
    from matplotlib.figure import Figure

    from hpcaet.eels import power_law

    show = (e >= 5) & (e <= 130)
    mean = y[:, show].mean(axis=0)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(e[show], mean, color="k", lw=1, label="mean spectrum")
    for name, fit in fits.items():
        law = power_law(e[show], fit.amplitude, fit.exponent).mean(axis=0)
        left.plot(e[show], law, lw=1, label=f"{name} (mean r {fit.exponent.mean():.2f})")
        right.plot(e[show], mean - law, lw=1, label=name)
    for ax in (left, right):
        for i, (lo, hi) in enumerate(BTO_WINDOWS):
            ax.axvspan(lo, hi, color="tab:blue", alpha=0.15, label="windows" if i == 0 else None)
        ax.set_xlabel("energy loss [meV]")
    left.set(yscale="log", ylabel="counts per channel", title="power-law backgrounds")
    right.axhline(0, color="grey", lw=0.6)
    right.set(ylabel="counts per channel", title="mean background-subtracted signal")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def synthetic_background(*, seeds: int = 20) -> None:
    """Bias and scatter of each estimator's background, where the truth is known.

    Spectra of the paper's line scan (SNR 7): (a) the error of the subtracted phonon
    intensity over 20-60 meV, relative to the true phonon intensity there (the windows
    hold some phonon signal: the 22-meV peaks reach into 16-20 meV); (b) Poisson counts
    of the background alone: the error of the fitted background over 20-60 meV relative
    to the true background, the estimator's own bias.
    """
    from hpcaet.eels import align_zero_loss, fit_power_law

    names = ("poisson", "loglog", "two_area", "least_squares")
    phonon = {name: [] for name in names}
    alone = {name: [] for name in names}
    for seed in range(seeds):
        scan = synthetic_line_scan(snr=7.0, rng=seed)
        e = scan.energy
        rng = np.random.default_rng(1000 + seed)
        aligned = align_zero_loss(scan.spectra, e)
        m = (aligned.energy >= 20) & (aligned.energy <= 60)
        shifted = [
            np.stack(
                [
                    np.interp(aligned.energy + s, e, t)
                    for s, t in zip(scan.zlp_shift, x, strict=True)
                ]
            )
            for x in (scan.signal, scan.background)
        ]
        true_signal, true_background = (x[:, m].sum(1) for x in shifted)
        counts = rng.poisson(shifted[1]).astype(float)  # the background alone, aligned
        for name in names:
            fit = fit_power_law(aligned.spectra, aligned.energy, estimator=name)
            phonon[name].append(fit.subtract(aligned.spectra)[:, m].sum(1) / true_signal - 1)
            fit = fit_power_law(counts, aligned.energy, estimator=name)
            alone[name].append(fit.background[:, m].sum(1) / true_background - 1)
    print("paper windows, SNR 7, per spectrum (mean ± std over spectra and seeds):")
    print(f"{'estimator':<14}{'(a) phonon intensity':>24}{'(b) background alone':>24}")
    for name in names:
        a, b = np.concatenate(phonon[name]), np.concatenate(alone[name])
        print(
            f"{name:<14}{100 * a.mean():>+12.1f} ± {100 * a.std():4.1f} %"
            f"{100 * b.mean():>+13.2f} ± {100 * b.std():4.2f} %"
        )


def match_peaks(fitted: np.ndarray, truth: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """Fitted centres reordered to the true peaks they belong to (optimal assignment).

    A fit may put its Gaussians in another order than the truth (e.g. one on a spurious
    feature while two near-degenerate true peaks share one): each true peak gets the
    fitted peak that minimises the sum of squared differences in units of the peak's
    tolerance (max(0.5 meV, 2 CRLB)), as targets are assigned by statistical distance.
    """
    cost = ((fitted[:, None] - truth[None, :]) / tolerance[None, :]) ** 2
    cost = np.where(np.isfinite(cost), cost, 1e6)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(truth.size, int)
    order[cols] = rows
    return order


def sd_interval(scatter, n, level: float = 0.9):
    """Confidence interval (lo, hi) of a standard deviation from n normal samples (χ², n−1)."""
    from scipy.stats import chi2

    dof = np.asarray(n, float) - 1
    q = (1 - level) / 2
    return scatter * np.sqrt(dof / chi2.ppf(1 - q, dof)), scatter * np.sqrt(dof / chi2.ppf(q, dof))


#: Settings saved with the centres (``--save``) and checked by ``--merge``.
SETTINGS = tuple("snr delocalisation peak_fwhm starts rounds free_widths min_significance".split())
SETTINGS += ("fit_range",)  # files saved before it: the 16–70 meV used then
PER_SEED = ("seeds", "centres", "errors", "times", "bounds")


def accuracy(args) -> None:
    """Done-when table: errors, coverage of ±1 SE and scatter against the CRLB, per SNR.

    The truth, its CRLB and the tolerance are those of seed 0's scan whatever the seeds
    run (``--first-seed``). With ``--save`` the file is rewritten after every seed.
    """
    options = dict(
        peak_background="joint",
        fit_range=tuple(args.fit_range),
        initial_width=2.4,
        fit_starts=args.starts,
        fit_rounds=args.rounds,
        correct_delocalisation=True,
        pixel_maps=False,
        shared_width=not args.free_widths,
        min_significance=args.min_significance,
    )
    for snr in args.snr:
        kw = dict(snr=snr, delocalisation=args.delocalisation, peak_fwhm=args.peak_fwhm)
        truth = synthetic_line_scan(**kw, rng=0)
        crlb = truth_crlb(truth, options["fit_range"])
        tol = np.maximum(0.5, 2 * crlb)
        seeds = np.arange(args.first_seed, args.first_seed + args.seeds)
        shape = (seeds.size, *truth.peak_centre.shape)
        run = dict(seeds=seeds, centres=np.full(shape, np.nan), errors=np.full(shape, np.nan))
        run |= dict(times=np.full(seeds.size, np.nan), bounds=np.zeros(seeds.size, int))
        run |= dict(crlb=crlb, truth=truth.peak_centre, regions=np.array(truth.regions))
        run |= {k: getattr(args, k) for k in SETTINGS[1:]} | {"snr": snr}
        for i, seed in enumerate(seeds.tolist()):
            scan = synthetic_line_scan(**kw, rng=seed)
            start = time.perf_counter()
            result = analyse_spectra(scan.spectra, scan.energy, **options, rng=seed)
            run["times"][i] = time.perf_counter() - start
            run["bounds"][i] = np.abs(result.regions.starts - scan.starts).max()
            for g, fit in enumerate(result.fits):
                order = match_peaks(fit.centre, scan.peak_centre[g], tol[g])
                run["centres"][i, g] = fit.centre[order]
                run["errors"][i, g] = fit.centre_error[order]
            print(f"seed {seed}: {run['times'][i]:.1f} s", file=sys.stderr, flush=True)
            if args.save:
                done = run | {k: run[k][: i + 1] for k in PER_SEED}
                np.savez(f"{args.save}_snr{snr:g}.npz", **done)
        report(run)


def merge(paths) -> None:
    """The accuracy table of runs saved with ``--save`` (pieces of seeds), per SNR."""
    runs = {}
    for path in paths:
        with np.load(path) as f:
            run = {k: f[k] for k in f.files}
        if "seeds" not in run:
            raise SystemExit(f"{path}: saved without seeds (before --merge existed)")
        run.setdefault("fit_range", np.array([16.0, 70.0]))
        key = tuple(str(run[k].tolist()) for k in SETTINGS)
        if key not in runs:
            runs[key] = run
            continue
        old = runs[key]
        if not np.allclose(np.stack([old["crlb"], old["truth"]]), [run["crlb"], run["truth"]]):
            raise SystemExit(f"{path}: another truth or CRLB than the files before it")
        if np.intersect1d(old["seeds"], run["seeds"]).size:
            raise SystemExit(f"{path}: seeds {np.intersect1d(old['seeds'], run['seeds'])} twice")
        for k in PER_SEED:
            old[k] = np.concatenate([old[k], run[k]])
    for run in runs.values():
        report(run)


def report(run) -> None:
    """Print the table of one SNR from the arrays of ``accuracy`` (or merged files)."""
    run = run | {k: run[k][np.argsort(run["seeds"], kind="stable")] for k in PER_SEED}
    centres, errors, crlb, truth = run["centres"], run["errors"], run["crlb"], run["truth"]
    seeds, times, bounds = run["seeds"], run["times"], run["bounds"]
    n_s, n_g, n_p = centres.shape
    tol = np.maximum(0.5, 2 * crlb)
    err = centres - truth[None]
    inside = np.abs(err) <= tol[None]
    covered = np.abs(err) <= errors
    scatter = np.nanstd(centres, axis=0, ddof=1)
    lo, hi = sd_interval(scatter, np.isfinite(centres).sum(0))
    ranges = np.split(seeds, np.flatnonzero(np.diff(seeds) != 1) + 1)
    ranges = ", ".join(f"{r[0]}–{r[-1]}" if r.size > 1 else f"{r[0]}" for r in ranges)
    print(
        f"\n== SNR {run['snr']:g} per spectrum, {n_s} seeds ({ranges}), peak FWHM "
        f"{run['peak_fwhm']} meV, delocalisation {run['delocalisation']} nm, {run['starts']} "
        f"starts × {run['rounds']} rounds, {'free σ' if run['free_widths'] else 'one shared σ'}, "
        f"peaks of at least {run['min_significance']:g} errors, fit range "
        f"{'–'.join(f'{v:g}' for v in np.ravel(run.get('fit_range', (16, 70))))} meV; "
        "centres [meV], fitted peaks matched to the truth by optimal assignment =="
    )
    print(
        f"{'region':<10}{'truth':>6}{'S3 ±':>10} |{'CRLB':>7}{'mean':>8}{'bias':>7}"
        f"{'scatter':>8}{'sc/CRLB':>8}{'90% CI':>12}{'worst':>7}{'tol':>7}{'in tol':>8}"
        f"{'±1SE':>6}"
    )
    for g, region in enumerate(run["regions"].tolist()):
        for k in range(n_p):
            paper = f"{TABLE_S3_EELS[region][k]:.1f}±{TABLE_S3_EELS_ERROR[region][k]:.1f}"
            e, c = err[:, g, k], crlb[g, k]
            print(
                f"{region:<10}{truth[g, k]:>6.1f}{paper:>10} |"
                f"{c:>7.2f}{np.nanmean(centres[:, g, k]):>8.2f}"
                f"{np.nanmean(e):>7.2f}{scatter[g, k]:>8.2f}{scatter[g, k] / c:>8.2f}"
                f"{lo[g, k] / c:>7.2f}–{hi[g, k] / c:<4.2f}{np.nanmax(np.abs(e)):>7.2f}"
                f"{tol[g, k]:>7.2f}{int(inside[:, g, k].sum()):>5}/{n_s:<2}"
                f"{100 * np.mean(covered[:, g, k]):>5.0f}%"
            )
    boot = np.random.default_rng(0).integers(0, n_s, (1000, n_s))
    print(
        f"every centre within max(0.5, 2 CRLB) in every seed: {int(inside.all(0).sum())} of "
        f"{n_g * n_p} peaks; truth inside ±1 SE: {100 * np.mean(covered):.1f} % of "
        f"{covered.size} fits (±{100 * covered[boot].mean((1, 2, 3)).std():.1f} from "
        f"resampling the seeds); scatter / CRLB <= 1.3 for "
        f"{int((scatter <= 1.3 * crlb).sum())} of {n_g * n_p} peaks (largest "
        f"{np.nanmax(scatter / crlb):.2f}), 90 % interval wholly above 1.3 for "
        f"{int((lo > 1.3 * crlb).sum())}, reaching above it for {int((hi > 1.3 * crlb).sum())}; "
        f"worst boundary error {int(np.max(bounds))} step(s); {np.mean(times):.1f} s per scan "
        f"(min {np.min(times):.1f}, max {np.max(times):.1f})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0, help="run seeds N, N+1, ...")
    p.add_argument("--merge", nargs="+", metavar="NPZ", help="only the table of --save files")
    p.add_argument("--snr", type=float, nargs="+", default=[7.0, 30.0])
    p.add_argument("--delocalisation", type=float, default=1.6, help="[nm]")
    p.add_argument("--peak-fwhm", type=float, default=5.7, help="phonon peak FWHM [meV]")
    p.add_argument("--starts", type=int, default=160, help="LM starts per group (per round)")
    p.add_argument("--rounds", type=int, default=1, help="search rounds while χ² still drops")
    p.add_argument("--free-widths", action="store_true", help="every σ free (the paper's model)")
    p.add_argument("--min-significance", type=float, default=2.0, help="peak height [errors]")
    p.add_argument("--fit-range", type=float, nargs=2, default=[17.0, 70.0], help="[meV]")
    p.add_argument("--save", metavar="PREFIX", help="also save the fitted centres (.npz)")
    p.add_argument("--misassignment", action="store_true", help="only count wrong k-means labels")
    p.add_argument("--real-noise", metavar="FOLDER", help="only the gain of the real DM files")
    p.add_argument("--background", metavar="FILE", help="only the estimators on a real file")
    p.add_argument("--figure", metavar="PNG", help="with --background: draw the comparison")
    p.add_argument(
        "--synthetic-background",
        action="store_true",
        help="only the background estimators on synthetic spectra with a known background",
    )
    args = p.parse_args()
    if args.merge:
        merge(args.merge)
    elif args.real_noise:
        real_noise(args.real_noise)
    elif args.background:
        real_background(args.background, figure=args.figure)
    elif args.synthetic_background:
        synthetic_background(seeds=args.seeds)
    elif args.misassignment:
        for snr in args.snr:
            wrong, bounds = [], []
            for seed in range(args.seeds):
                scan = synthetic_line_scan(
                    snr=snr, delocalisation=args.delocalisation, peak_fwhm=args.peak_fwhm, rng=seed
                )
                a = analyse_spectra(
                    scan.spectra, scan.energy, fit_starts=1, pixel_maps=False, rng=seed
                )
                wrong.append(int(np.sum(a.kmeans.labels != scan.region)))
                bounds.append(int(np.abs(a.regions.starts - scan.starts).max()))
            print(f"SNR {snr:g}: raw k-means labels wrong {wrong}, worst boundary error {bounds}")
    else:
        accuracy(args)


if __name__ == "__main__":
    main()
