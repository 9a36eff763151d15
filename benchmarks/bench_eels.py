"""Accuracy and speed of the vibrational-EELS analysis on synthetic line scans.

Prints, for the paper's scan (40 points, 1.6 nm, 0.44 meV/channel) at several
signal-to-noise ratios, the recovered peak table beside the truth (Table S3 centres),
the worst centre error over seeds, the boundary errors, and the time per scan.

    python benchmarks/bench_eels.py [--seeds 3] [--snr 30 100] [--mode joint subtracted]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hpcaet.eels import analyse_spectra, synthetic_line_scan
from hpcaet.eels.synthetic import TABLE_S3_EELS_ERROR


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--snr", type=float, nargs="+", default=[30.0, 100.0])
    p.add_argument("--mode", nargs="+", default=["joint", "subtracted"])
    p.add_argument("--delocalisation", type=float, default=1.6, help="[nm]")
    args = p.parse_args()
    for snr in args.snr:
        for mode in args.mode:
            errors, bounds, ses, times = [], [], [], []
            for seed in range(args.seeds):
                scan = synthetic_line_scan(snr=snr, delocalisation=args.delocalisation, rng=seed)
                start = time.perf_counter()
                fit_range = (16.0, 70.0) if mode == "joint" else (20.0, 60.0)
                result = analyse_spectra(
                    scan.spectra,
                    scan.energy,
                    peak_background=mode,
                    fit_range=fit_range,
                    initial_width=2.4,
                    fit_starts=5,
                    rng=seed,
                )
                times.append(time.perf_counter() - start)
                centre = np.array([f.centre for f in result.fits])
                errors.append(centre - scan.peak_centre)
                ses.append([f.centre_error for f in result.fits])
                bounds.append(result.regions.starts - scan.starts)
                if seed == 0:
                    first = (scan, centre, np.array(ses[-1]))
            errors = np.array(errors)
            print(
                f"\n== SNR {snr:g}, peak background '{mode}', fit range {fit_range} meV, "
                f"delocalisation {args.delocalisation} nm, {args.seeds} seeds =="
            )
            print(f"time per scan: {np.mean(times):.2f} s (min {np.min(times):.2f} s)")
            print(
                f"region starts (truth {first[0].starts.tolist()}): worst error "
                f"{int(np.abs(bounds).max())} step(s)"
            )
            scan, centre, se = first
            print(
                f"{'region':<10} {'peak':>4} {'truth':>6} {'seed 0 fit ± SE':>16} "
                f"{'paper SE':>8} {'max|err|':>8} {'<=0.5':>5}"
            )
            for g, name in enumerate(scan.regions):
                for k in range(scan.peak_centre.shape[1]):
                    worst = np.abs(errors[:, g, k]).max()
                    print(
                        f"{name:<10} {k + 1:>4} {scan.peak_centre[g, k]:>6.1f} "
                        f"{centre[g, k]:>8.2f} ± {se[g, k]:<5.2f} "
                        f"{TABLE_S3_EELS_ERROR[name][k]:>8.1f} {worst:>8.2f} "
                        f"{'yes' if worst <= 0.5 else 'no':>5}"
                    )
            ok = np.abs(errors).max(axis=0) <= 0.5
            print(f"peaks within ±0.5 meV in every seed: {int(ok.sum())} of {ok.size}")


if __name__ == "__main__":
    main()
