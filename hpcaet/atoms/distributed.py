"""Spread the refinement's image chunks over a Dask cluster.

The only Dask-aware code of :mod:`hpcaet.atoms`: the numerical cores take a ``mapper``
callable and run serially without one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hpcaet.atoms.objective import ImageChunk

__all__ = ["DaskMapper"]


class DaskMapper:
    """Run chunk functions on a Dask cluster; the chunks are scattered once.

    Calling ``mapper(chunks, func, params)`` returns ``[func(c, **params) for c in
    chunks]`` computed by the workers, with deterministic task keys
    ``atoms-<tag>-<call>-<chunk>``.

    Parameters
    ----------
    client : distributed.Client
    tag : str
        Prefix of the task keys (e.g. the step name).
    """

    def __init__(self, client, tag: str) -> None:
        self.client = client
        self.tag = tag
        self.calls = 0
        self._scattered: tuple[Sequence[ImageChunk], list] | None = None

    def __call__(self, chunks: Sequence[ImageChunk], func: Callable, params: dict) -> list:
        if self._scattered is None or self._scattered[0] is not chunks:
            self._scattered = (chunks, self.client.scatter(list(chunks)))
        futures = [
            self.client.submit(
                func, fut, key=f"atoms-{self.tag}-{self.calls}-{k}", pure=False, **params
            )
            for k, fut in enumerate(self._scattered[1])
        ]
        self.calls += 1
        return self.client.gather(futures)
