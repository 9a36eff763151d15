"""Paper-scale phantom and tilt series: counts, dose statistics, time and memory.

Run: ``python benchmarks/bench_simulate.py [--workers 2]``. Prints a table.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter

import numpy as np

from hpcaet.config import load_config, packaged_config
from hpcaet.parallel import dask_client
from hpcaet.phantom.stage import make_phantom, simulate_tilt_series
from hpcaet.phantom.tables import TABLE_S1_COUNTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config(packaged_config("paper"), overrides={"parallel": {"workers": args.workers}})

    t0 = time.perf_counter()
    model = make_phantom(cfg)
    t_phantom = time.perf_counter() - t0
    counts = Counter(model["species"].values.astype(str))
    print("\nPhantom (configs/paper.yaml) vs Table S1")
    print(f"{'species':<8}{'phantom':>9}{'paper':>8}{'diff %':>9}")
    for name, ref in TABLE_S1_COUNTS.items():
        print(f"{name:<8}{counts[name]:>9}{ref:>8}{100 * (counts[name] - ref) / ref:>9.2f}")
    print(f"built in {t_phantom:.2f} s")

    with dask_client(cfg.parallel) as client:
        t0 = time.perf_counter()
        series = simulate_tilt_series(model, cfg, client=client)
        t_sim = time.perf_counter() - t0

    im = cfg.imaging
    frames = series["frames"].values
    expected_total = float((series["clean_images"] + series["true_background"]).sum())
    n_tilt = series.sizes["tilt"]
    dose_frame = im.dose / (n_tilt * im.frames)
    weights = model["cross_section"].to_series()
    sigma_sum = sum(weights.get(s, 0.0) for s in model["species"].values.astype(str))
    print("\nTilt series (12 tilts x 10 frames x 512 x 512)")
    print(f"{'quantity':<44}{'value':>14}")
    rows = [
        ("dose per frame [e/Å²]", f"{dose_frame:.4g}"),
        ("probe electrons per pixel per frame", f"{dose_frame * im.pixel_size**2:.4g}"),
        ("mean counts per pixel per frame", f"{frames.mean():.4g}"),
        ("counts / expected (all frames)", f"{frames.sum() / expected_total:.4f}"),
        (
            "specimen counts / (dose x sum of sigma)",
            f"{float(series['clean_images'].sum()) / (im.dose * sigma_sum):.4f}",
        ),
        ("simulation wall time [s]", f"{t_sim:.1f}"),
        (
            "peak memory of this process [MB]",
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
        ),
    ]

    # Noise statistics: one tilt without drift, where each frame's expectation is known.
    still = load_config(
        packaged_config("paper"),
        overrides={"imaging": {"drift_max": 0.0, "angles": [[0.0, 0.0, 0.0], [0.0, 10.0, 0.0]]}},
    )
    s2 = simulate_tilt_series(model, still)
    exp = ((s2["clean_images"] + s2["true_background"]) / im.frames).values[:, None]
    z = (s2["frames"].values - exp) / np.sqrt(exp + im.read_noise**2)
    rows += [
        ("noise z-score mean (expect 0)", f"{z.mean():.4f}"),
        ("noise z-score std (expect 1)", f"{z.std():.4f}"),
    ]
    for name, value in rows:
        print(f"{name:<44}{value:>14}")


if __name__ == "__main__":
    main()
