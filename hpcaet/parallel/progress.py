"""Progress of Dask work, as log lines (and a bar when the CLI asks for one)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

__all__ = ["gather_with_progress"]

log = logging.getLogger(__name__)


def gather_with_progress(futures: Sequence, *, label: str, every: float = 5.0) -> list:
    """Wait for futures, logging progress at most every ``every`` seconds.

    Returns the results in the order of ``futures``; the first failure is raised.
    """
    from distributed import as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    start = last = time.perf_counter()
    for done, future in enumerate(as_completed(futures), start=1):
        results[index[future.key]] = future.result()
        now = time.perf_counter()
        if now - last >= every or done == len(futures):
            log.info("%s: %d/%d done (%.1f s)", label, done, len(futures), now - start)
            last = now
    return results
