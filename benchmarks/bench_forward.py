"""Time the Gaussian-atom projector, its adjoint and its vector-Jacobian product.

Run ``python benchmarks/bench_forward.py``; it prints one row per problem size with the
best wall time of a few repeats [s]. The reference case is 2,000 atoms, 12 tilts,
512 x 512 pixels of 0.32 Å and B = 15 Å² (s = 0.44 Å).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from hpcaet.forward import project_atoms, project_atoms_adjoint, project_atoms_vjp

PIXEL = 0.32  # [Å]


def _best_time(func: Callable[[], object], repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _case(n_atoms: int, n_images: int, size: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    half_field = 0.45 * size * PIXEL
    positions = rng.uniform(-half_field, half_field, (n_atoms, 3))
    positions[:, 2] *= 0.05  # a few-layer sheet
    weights = rng.uniform(0.5, 2.0, n_atoms)
    b_factors = rng.normal(15.0, 1.0, n_atoms).clip(5.0)
    euler = np.column_stack(
        [np.full(n_images, 20.0), np.linspace(-60.0, 60.0, n_images), np.zeros(n_images)]
    )
    options = {"pixel_size": PIXEL}
    images = project_atoms(positions, weights, b_factors, euler, shape=(size, size), **options)
    return {
        "n_atoms": n_atoms,
        "n_images": n_images,
        "shape": f"{size}x{size}",
        "project": _best_time(
            lambda: project_atoms(
                positions, weights, b_factors, euler, shape=(size, size), **options
            ),
            repeats,
        ),
        "adjoint": _best_time(
            lambda: project_atoms_adjoint(images, positions, b_factors, euler, **options),
            repeats,
        ),
        "vjp": _best_time(
            lambda: project_atoms_vjp(images, positions, weights, b_factors, euler, **options),
            repeats,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best kept)")
    args = parser.parse_args()
    cases = [(200, 1, 256), (2000, 1, 512), (2000, 12, 512), (20000, 12, 512)]
    header = f"{'n_atoms':>8} {'n_images':>8} {'shape':>9} {'project':>9} {'adjoint':>9} {'vjp':>9}"
    print(header)
    print("-" * len(header))
    for n_atoms, n_images, size in cases:
        row = _case(n_atoms, n_images, size, args.repeats)
        print(
            f"{row['n_atoms']:>8} {row['n_images']:>8} {row['shape']:>9} "
            f"{row['project']:>8.3f}s {row['adjoint']:>8.3f}s {row['vjp']:>8.3f}s"
        )


if __name__ == "__main__":
    main()
