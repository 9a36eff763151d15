"""The demo chain on other materials: the paper's MoS2–WSe2, MoS2 alone, WS2–MoSe2.

Each config (``configs/demo.yaml``, ``demo_mos2.yaml``, ``demo_ws2_mose2.yaml``: the same
40 x 40 Å field, seed and imaging, only ``materials`` and the substitutions differ) runs
the whole chain, simulate -> preprocess -> reconstruct -> atoms -> structure, in a fresh
directory, and its ``scores.json`` (the atoms stage's scores against the phantom, in the
field of view less the edge band) is printed side by side. Example::

    python benchmarks/bench_materials.py --out /tmp/bench_materials
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from hpcaet.cli import main

CONFIGS = ("demo", "demo_mos2", "demo_ws2_mose2")


def run_chain(name: str, out: Path) -> tuple[dict, float]:
    """Run one config's chain into ``out/name``; its scores and wall time [s]."""
    run = out / name
    shutil.rmtree(run, ignore_errors=True)
    config = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    start = time.perf_counter()
    code = main(["run", "--config", str(config), "--out", str(run)])
    if code:
        raise SystemExit(f"the chain of {name} failed in {run} (exit {code})")
    elapsed = time.perf_counter() - start
    return json.loads((run / "scores.json").read_text()), elapsed


def table(results: dict[str, tuple[dict, float]]) -> str:
    """Rows: RMSD and species accuracy per element, defects, wall time."""
    lines = [f"{'':<28}" + "".join(f"{name:>16}" for name in results)]

    def row(label, get):
        cells = []
        for scores, elapsed in results.values():
            try:
                cells.append(get(scores, elapsed))
            except KeyError:
                cells.append("-")
        lines.append(f"{label:<28}" + "".join(f"{c:>16}" for c in cells))

    elements = dict.fromkeys(e for s, _ in results.values() for e in s["species"])
    for e in elements:
        row(f"{e} RMSD [pm]", lambda s, _, e=e: f"{s['species'][e]['rmsd_pm']:.1f}")
        row(
            f"{e} species right / true",
            lambda s, _, e=e: f"{s['species'][e]['species_correct']}/{s['species'][e]['n_true']}",
        )
    row(
        "vacancies found / true", lambda s, _: f"{s['vacancies']['found']}/{s['vacancies']['true']}"
    )
    row("false vacancies", lambda s, _: str(s["vacancies"]["false"]))
    row(
        "substitutions found / true",
        lambda s, _: f"{s['substitutions']['found']}/{s['substitutions']['true']}",
    )
    row("false substitutions", lambda s, _: str(s["substitutions"]["false"]))
    row("extra / missing atoms", lambda s, _: f"{s['extra_atoms']}/{s['missing_atoms']}")
    row("wall time [s]", lambda _, t: f"{t:.0f}")
    return "\n".join(lines)


def main_bench(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="working folder")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {name: run_chain(name, out) for name in args.configs.split(",")}
    print(table(results))


if __name__ == "__main__":
    main_bench()
