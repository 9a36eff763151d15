"""ADF cross-sections of single atoms by multislice (abTEM), beside the config's values.

The linear image model's per-species cross-sections set the counts per atom at a given
dose, and so the noise of every simulated image. This prints, for the imaging settings
of a config (voltage, probe convergence, detector), the multislice cross-section of each
species at the default grid and at a finer one (0.04 Å sampling, 0.05 Å slices, 0.2 Å
probe steps: a convergence check), the config's value and its ratio to the finer one.
Example::

    python benchmarks/bench_cross_sections.py --config paper
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hpcaet.config import load_config, packaged_config
from hpcaet.forward.multislice import adf_cross_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper", help="packaged config name or YAML path")
    args = parser.parse_args()
    path = args.config if Path(args.config).exists() else packaged_config(args.config)
    config = load_config(path)
    im = config.imaging
    settings = {
        "voltage": im.voltage,
        "convergence_angle": im.convergence_angle,
        "detector": (im.detector_inner_angle, im.detector_outer_angle),
    }
    print(
        f"ADF cross-sections, {im.voltage:g} kV, {im.convergence_angle:g} mrad probe, "
        f"{im.detector_inner_angle:g}-{im.detector_outer_angle:g} mrad detector"
    )
    print(
        f"{'species':<8}{'abTEM [Å²]':>12}{'finer [Å²]':>12}{'config [Å²]':>13}"
        f"{'config/finer':>14}{'time [s]':>10}"
    )
    for name, value in config.species.cross_section.items():
        t0 = time.perf_counter()
        sigma = adf_cross_section(name, **settings)
        fine = adf_cross_section(
            name, **settings, sampling=0.04, scan_step=0.2, slice_thickness=0.05
        )
        seconds = time.perf_counter() - t0
        print(
            f"{name:<8}{sigma:>12.4f}{fine:>12.4f}{value:>13.4f}{value / fine:>14.3f}"
            f"{seconds:>10.1f}"
        )


if __name__ == "__main__":
    main()
