"""Files that appear whole or not at all.

Every file a stage writes (netCDF outputs, checkpoints, result tables) is written to a
temporary name beside its destination and moved onto it with :func:`os.replace`, so a
killed run never leaves a half-written file under the real name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` that becomes ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.

    Yields
    ------
    pathlib.Path
        ``.<stem>.<random>.<suffix>`` in the same folder (same suffix, so writers that
        append one, like :func:`numpy.save`, keep the name). Write the file there. When
        the block ends normally it is moved onto ``path``; when it raises, it is removed
        and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
