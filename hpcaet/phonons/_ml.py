"""Machine-learned universal potentials whose weights ship inside their PyPI wheels.

Both are graph networks trained on the Materials Project trajectories (PBE, MPtrj) and
run offline on CPU; ``pip install 'hpcaet[ml]'`` installs them (install the CPU build of
torch first, or pip fetches the CUDA one). Each process builds its own model with one
torch thread (or ``threads``, or ``OMP_NUM_THREADS``): the work is spread over
snapshots, one MPI rank per core. Two torch threads per process on a shared 2-core
machine made a CHGNet call 20 times slower than one.

``"chgnet"``
    CHGNet 0.3.0 (B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023)), ``pip install
    chgnet``: about 0.3 s per force call on 143 atoms on one core.
``"7net-0"``, ``"7net-l3i5"``
    SevenNet-0 and its larger l3i5 variant (Y. Park et al., J. Chem. Theory Comput.
    20, 4857 (2024)), ``pip install sevenn``: about 1.1 and 2.7 s per call.
"""

from __future__ import annotations

import logging
import os
import warnings

from ase.data import chemical_symbols

from hpcaet.errors import InputError

log = logging.getLogger(__name__)

#: The 89 elements of MPtrj, the training set of both potentials (H–Pu less Po–Ra).
MPTRJ_ELEMENTS: tuple[str, ...] = tuple(
    s for s in chemical_symbols[1:95] if s not in ("Po", "At", "Rn", "Fr", "Ra")
)

#: Calculator name -> (package, the model it loads).
ML_MODELS: dict[str, tuple[str, str]] = {
    "chgnet": ("chgnet", "0.3.0"),
    "7net-0": ("sevenn", "7net-0"),
    "7net-l3i5": ("sevenn", "7net-l3i5"),
}


def _set_threads(threads: int | None) -> int:
    import torch

    n = threads or int(os.environ.get("OMP_NUM_THREADS") or 1)
    torch.set_num_threads(n)
    return n


def ml_calculator(name: str, *, device: str = "cpu", threads: int | None = None):
    """The ASE calculator of a machine-learned potential.

    Parameters
    ----------
    name : {"chgnet", "7net-0", "7net-l3i5"}
        Which potential (:data:`ML_MODELS`).
    device : str, default "cpu"
        Torch device (``"cuda"`` where a GPU is).
    threads : int, optional
        Torch threads; default ``OMP_NUM_THREADS``, else 1.

    Returns
    -------
    ase.calculators.calculator.Calculator

    Raises
    ------
    InputError
        The package is not installed.
    """
    package, model = ML_MODELS[name]
    try:
        __import__(package)
    except ImportError:
        raise InputError(
            f"phonons.calculator {name!r} needs the {package} package; install the CPU build "
            f"of torch, then {package} (pip install torch; pip install 'hpcaet[ml]'), or use "
            "the default 'sw'."
        ) from None
    n = _set_threads(threads)
    log.info("phonons: %s (%s) on %s with %d torch thread(s)", name, model, device, n)
    if package == "chgnet":
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        net = CHGNet.load(model_name=model, use_device=device, verbose=False)
        return CHGNetCalculator(net, use_device=device, on_isolated_atoms="ignore")
    from sevenn.calculator import SevenNetCalculator

    with warnings.catch_warnings():  # its tensor-product accelerators are GPU-only
        warnings.filterwarnings("ignore", "No tensor product accelerator", UserWarning)
        return SevenNetCalculator(model, device=device)
