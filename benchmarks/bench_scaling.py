"""Strong scaling of the demo reconstruction, 1 -> 2 workers, and the task layer's cost.

Prints, for the demo field's 16 reconstruction windows (GENFIRE, ``--iterations`` each):

1. on a LocalCluster of 1 and 2 workers: wall time, speed-up and efficiency ``T1 / (2 T2)``;
2. the same on SLURM worker jobs (one single-threaded worker per job), when ``--slurm``
   names a SLURM config dir (``.ci/slurm.sh up DIR`` starts a one-node test SLURM there)
   or ``SLURM_CONF`` is set: the profile ``configs/cluster/test-slurm.yaml``;
3. the task layer's overhead per task: a map of no-op tasks, serial and on 2 workers.

The demo's processed images come from ``--run`` (a run directory with processed.nc),
else ``hpcaet run --config demo --stages simulate,preprocess`` makes one under ``--out``.
The load average is printed: on a shared machine every number moves with what else runs.

    python benchmarks/bench_scaling.py --out /tmp/bench_scaling
    .ci/slurm.sh up /tmp/slurm && SLURM_CONF=/tmp/slurm/slurm.conf \\
        python benchmarks/bench_scaling.py --out /tmp/bench_scaling --slurm
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _work(run: Path, iterations: int):
    from hpcaet.config import load_config
    from hpcaet.parallel.scaling import reconstruct_work
    from hpcaet.pipeline import RunDirectory
    from hpcaet.reconstruct.stage import algorithm_options, field_inputs

    config = load_config(run / "config.yaml")
    images, euler, _, _, plan = field_inputs(config, RunDirectory(run))
    options = {**algorithm_options(config.reconstruct), "iterations": iterations}
    return reconstruct_work(
        images,
        euler,
        plan,
        algorithm=config.reconstruct.algorithm,
        options=options,
        seed=config.seed,
    )


def _print(title: str, table) -> None:
    print(f"\n== {title} ==")
    print(f"{'workers':>8} {'tasks':>6} {'time [s]':>9} {'speed-up':>9} {'efficiency':>11}")
    for w, k, s, p, e in zip(
        table.workers, table.tasks, table.seconds, table.speedup, table.efficiency, strict=True
    ):
        print(f"{w:>8} {k:>6} {s:>9.2f} {p:>9.2f} {100 * e:>10.1f}%")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="working folder")
    p.add_argument("--run", default=None, help="a run directory with processed.nc")
    p.add_argument("--iterations", type=int, default=200, help="GENFIRE iterations per window")
    p.add_argument("--repeats", type=int, default=2, help="runs per size; the best counts")
    p.add_argument("--slurm", action="store_true", help="also on SLURM (needs SLURM_CONF)")
    args = p.parse_args(argv)
    from hpcaet.cli import main as cli
    from hpcaet.config import load_config
    from hpcaet.parallel import dask_client
    from hpcaet.parallel.scaling import scaling_study, time_per_task, write_table

    out = Path(args.out).resolve()
    run = Path(args.run).resolve() if args.run else out / "demo"
    if not (run / "processed.nc").exists():
        code = cli(
            ["run", "--config", "demo", "--out", str(run), "--stages", "simulate,preprocess"]
        )
        if code:
            raise SystemExit(f"making the demo's processed images failed (exit {code})")
    func, jobs, shared = _work(run, args.iterations)
    print(
        f"cores: {os.cpu_count()}; {_load()}; {len(jobs)} windows, {args.iterations} "
        "GENFIRE iterations each"
    )
    local = load_config(overrides={"parallel": {"memory_limit": "3GB"}})
    table = scaling_study(
        func, jobs, shared, local, workers=[1, 2], repeats=args.repeats, reports=out / "local"
    )
    write_table(table, out / "local")
    _print("LocalCluster", table)
    print(_load())
    if args.slurm:
        if not os.environ.get("SLURM_CONF"):
            raise SystemExit("--slurm needs SLURM_CONF (e.g. .ci/slurm.sh up /tmp/slurm)")
        profile = ROOT / "configs" / "cluster" / "test-slurm.yaml"
        (out / "slurm").mkdir(parents=True, exist_ok=True)
        os.chdir(out / "slurm")  # the worker jobs' slurm-<id>.out logs land here
        slurm = load_config(
            overrides={
                "parallel": {
                    "scheduler": "slurm",
                    "slurm": {"profile": str(profile), "interface": "lo"},
                }
            }
        )
        table = scaling_study(
            func, jobs, shared, slurm, workers=[1, 2], repeats=args.repeats, reports=out / "slurm"
        )
        write_table(table, out / "slurm")
        _print("SLURM worker jobs (test cluster, one node)", table)
        print(_load())
    print("\n== task layer overhead per task ==")
    print(f"serial: {1e6 * time_per_task(tasks=2000):.1f} µs")
    with dask_client(load_config(overrides={"parallel": {"workers": 2}}).parallel) as client:
        client.run(lambda: None)
        time_per_task(client, tasks=50)  # warm up
        print(f"LocalCluster, 2 workers: {1e3 * time_per_task(client, tasks=500):.2f} ms")


if __name__ == "__main__":
    main()
