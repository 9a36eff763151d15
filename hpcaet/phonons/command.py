"""``hpcaet phonons``: the phonon stage on a run directory, serial or under MPI."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hpcaet.errors import HpcaetError

__all__ = ["phonons_parser", "demo_phonons"]

log = logging.getLogger(__name__)


def phonons_parser(sub) -> argparse.ArgumentParser:
    """Add the ``phonons`` command to the CLI's subparsers."""
    p = sub.add_parser(
        "phonons",
        help="phonons of a cell stitched across a zigzag interface of the atom model",
        description="Stitch a periodic cell across the longest zigzag interface of the run's "
        "atom model (atoms.nc, else truth_atoms.nc), compute forces on displaced snapshots "
        "(the default calculator: Stillinger–Weber through LAMMPS, offline), fit force "
        "constants with phonopy and write RUN/phonons.nc (DOS, PDOS, unfolded spectral "
        "function, participation ratios, NNLS bulk decomposition) and figures. Under MPI "
        "('mpiexec -n N hpcaet phonons --run RUN --mpi') the snapshots are spread over the "
        "ranks; finished ones are checkpointed, so a killed job resumes.",
    )
    p.add_argument("--run", required=True, help="run directory with atoms.nc or truth_atoms.nc")
    p.add_argument(
        "--config", default=None, help="config to use instead of the run directory's config.yaml"
    )
    p.add_argument(
        "--mpi", action="store_true", help="spread the force calls over MPI.COMM_WORLD's ranks"
    )
    p.add_argument(
        "--rows", type=int, default=None, help="metal rows across the interface (phonons.rows)"
    )
    p.add_argument(
        "--width", type=int, default=None, help="periods along the interface (phonons.width)"
    )
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the relaxed crystallographic interface (phonons.reference: false)",
    )
    p.set_defaults(func=_cmd_phonons)
    return p


def _cmd_phonons(args) -> int:
    from hpcaet.cli import _load, _print_outputs
    from hpcaet.phonons.stage import run_phonons

    config_path = args.config or Path(args.run) / "config.yaml"
    if args.config is None and not Path(config_path).exists():
        raise HpcaetError(
            f"{config_path} not found; make the run directory first with "
            f"'hpcaet simulate --config CONFIG --out {args.run}' or pass --config."
        )
    config = _load(config_path, args)
    changes = {k: v for k, v in (("rows", args.rows), ("width", args.width)) if v is not None}
    if args.no_reference:
        changes["reference"] = False
    if changes:
        import dataclasses

        config = dataclasses.replace(config, phonons=dataclasses.replace(config.phonons, **changes))
    comm = None
    if args.mpi:
        try:
            from mpi4py import MPI
        except ImportError:
            raise HpcaetError(
                "--mpi needs mpi4py and an MPI library: pip install 'hpcaet[mpi]' mpich"
            ) from None
        comm = MPI.COMM_WORLD
        log.info("phonons: rank %d of %d", comm.Get_rank(), comm.Get_size())
    outputs = run_phonons(config, args.run, comm=comm)
    if outputs:
        _print_outputs(args.run, outputs)
    return 0


def demo_phonons(config, out) -> dict[str, Path]:
    """The phonon stage on the demo's model (a small stitched cell), then the report."""
    import time

    from hpcaet.phonons.stage import run_phonons
    from hpcaet.report import write_report

    start = time.perf_counter()
    written = run_phonons(config, out)
    log.info("phonons: finished in %.1f s", time.perf_counter() - start)
    write_report(out)
    return written
