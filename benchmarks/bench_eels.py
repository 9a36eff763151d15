"""Accuracy and speed of the vibrational-EELS analysis on synthetic line scans.

Prints, for the paper's scan (40 points, 1.6 nm, 0.44 meV/channel) at several
signal-to-noise ratios, the recovered peak table beside the truth (Table S3 centres),
the worst centre error over seeds, the boundary errors, and the time per scan. For each
peak it also prints the two limits of the paper's method on that scan:

* ``bias``: the error of the same analysis run on the noise-free scan (expected counts).
  It is what five Gaussians fitted to the group mean give without any noise: the
  delocalised signal of the neighbouring regions inside the group and the overlap of
  peaks closer than about one FWHM shift the fitted centres.
* ``CRB``: the Cramér–Rao bound of the centre (Poisson noise of the group mean, the
  five-Gaussian + power-law model at the noise-free fit), the smallest standard error
  any unbiased fit of that group mean can reach.

A peak can be within ±0.5 meV in (nearly) every seed only if ``|bias| + 2·CRB`` is below
0.5 meV. The last line compares the fitted standard errors with Table S3's: standard
errors scale as 1/SNR, so ``snr × median(SE / paper SE)`` is the per-spectrum SNR at which
this synthetic scan gives the paper's standard errors.

    python benchmarks/bench_eels.py [--seeds 3] [--snr 30 100] [--mode joint subtracted]
        [--peak-fwhm 5.7] [--delocalisation 1.6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hpcaet.eels import analyse_spectra, synthetic_line_scan
from hpcaet.eels.peaks import _model
from hpcaet.eels.synthetic import TABLE_S3_EELS_ERROR

#: Peak-fit range of each mode [meV].
DEFAULT_RANGE = {"joint": (16.0, 70.0), "subtracted": (20.0, 60.0)}


def _crb(analysis, n_peaks: int, joint: bool) -> np.ndarray:
    """Cramér–Rao bound of every fitted centre (n_group, n_peaks) [meV], on a noise-free fit."""
    out = []
    for g, fit in enumerate(analysis.fits):
        idx = np.searchsorted(analysis.energy, fit.energy)
        members = analysis.group == g
        n = members.sum()
        # variance of the group mean of Poisson spectra: sum of expectations / n^2
        var = analysis.spectra[members][:, idx].sum(0) / n**2
        p = np.column_stack([fit.centre, fit.width, fit.height]).ravel()
        if joint:
            p = np.r_[p, np.log(fit.power_law[0]), fit.power_law[1]]
        jac = np.empty((fit.energy.size, p.size))
        for k in range(p.size):
            h = 1e-6 * max(abs(p[k]), 1.0)
            dp = np.zeros_like(p)
            dp[k] = h
            jac[:, k] = (
                _model(p + dp, fit.energy, n_peaks, joint)
                - _model(p - dp, fit.energy, n_peaks, joint)
            ) / (2 * h)
        fisher = jac.T @ (jac / var[:, None])
        cov = np.linalg.inv(fisher)
        out.append(np.sqrt(np.diag(cov)[: 3 * n_peaks : 3]))
    return np.array(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--snr", type=float, nargs="+", default=[30.0, 100.0])
    p.add_argument("--mode", nargs="+", default=["joint", "subtracted"])
    p.add_argument("--delocalisation", type=float, default=1.6, help="[nm]")
    p.add_argument("--peak-fwhm", type=float, default=5.7, help="phonon peak FWHM [meV]")
    p.add_argument("--fit-range", type=float, nargs=2, default=None, help="[meV]; default per mode")
    p.add_argument("--starts", type=int, default=5, help="Levenberg-Marquardt starts")
    p.add_argument("--unweighted", action="store_true", help="fit without Poisson weights")
    args = p.parse_args()
    for snr in args.snr:
        for mode in args.mode:
            fit_range = tuple(args.fit_range or DEFAULT_RANGE[mode])
            options = dict(
                peak_background=mode,
                fit_range=fit_range,
                initial_width=2.4,
                fit_starts=args.starts,
                weighted=not args.unweighted,
            )
            scan_options = dict(
                snr=snr, delocalisation=args.delocalisation, peak_fwhm=args.peak_fwhm
            )
            errors, bounds, ses, times = [], [], [], []
            for seed in range(args.seeds):
                scan = synthetic_line_scan(**scan_options, rng=seed)
                start = time.perf_counter()
                result = analyse_spectra(scan.spectra, scan.energy, **options, rng=seed)
                times.append(time.perf_counter() - start)
                centre = np.array([f.centre for f in result.fits])
                errors.append(centre - scan.peak_centre)
                ses.append([f.centre_error for f in result.fits])
                bounds.append(result.regions.starts - scan.starts)
                if seed == 0:
                    first = (scan, centre, np.array(ses[-1]))
            # noise-free scan: same truth and drift as seed 0, expected counts
            scan = first[0]
            clean = analyse_spectra(scan.background + scan.signal, scan.energy, **options, rng=0)
            bias = np.array([f.centre for f in clean.fits]) - scan.peak_centre
            crb = _crb(clean, scan.peak_centre.shape[1], mode == "joint")
            errors = np.array(errors)
            print(
                f"\n== SNR {snr:g}, peak background '{mode}', fit range {fit_range} meV, "
                f"peak FWHM {args.peak_fwhm} meV, delocalisation {args.delocalisation} nm, "
                f"{args.seeds} seeds =="
            )
            print(f"time per scan: {np.mean(times):.2f} s (min {np.min(times):.2f} s)")
            print(
                f"region starts (truth {scan.starts.tolist()}): worst error "
                f"{int(np.abs(bounds).max())} step(s)"
            )
            scan, centre, se = first
            print(
                f"{'region':<10} {'peak':>4} {'truth':>6} {'seed 0 fit ± SE':>16} "
                f"{'paper SE':>8} {'bias':>6} {'CRB':>5} {'max|err|':>8} {'<=0.5':>5}"
            )
            ratio = []
            for g, name in enumerate(scan.regions):
                for k in range(scan.peak_centre.shape[1]):
                    worst = np.abs(errors[:, g, k]).max()
                    paper_se = TABLE_S3_EELS_ERROR[name][k]
                    ratio.append(np.mean(np.array(ses)[:, g, k]) / paper_se)
                    print(
                        f"{name:<10} {k + 1:>4} {scan.peak_centre[g, k]:>6.1f} "
                        f"{centre[g, k]:>8.2f} ± {se[g, k]:<5.2f} "
                        f"{paper_se:>8.1f} {bias[g, k]:>6.2f} {crb[g, k]:>5.2f} {worst:>8.2f} "
                        f"{'yes' if worst <= 0.5 else 'no':>5}"
                    )
            ok = np.abs(errors).max(axis=0) <= 0.5
            print(f"peaks within ±0.5 meV in every seed: {int(ok.sum())} of {ok.size}")
            feasible = np.abs(bias) + 2 * crb <= 0.5
            print(f"peaks with |bias| + 2 CRB <= 0.5 meV: {int(feasible.sum())} of {feasible.size}")
            print(
                f"SNR giving Table S3's standard errors: {snr * np.median(ratio):.2g} "
                f"(SE / paper SE: median {np.median(ratio):.3g}, "
                f"range {np.min(ratio):.3g}–{np.max(ratio):.3g})"
            )


if __name__ == "__main__":
    main()
