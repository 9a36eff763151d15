"""Separable Gaussian patches shared by the projector and the volume renderer.

:mod:`hpcaet.forward.gaussian` and :mod:`hpcaet.forward.volume` both
truncate each Gaussian to a window of ``cutoff`` standard deviations per axis, evaluate
it as an outer product of 1D factors on integer sample indices, and accumulate the
patches into a flat output array.
"""

from __future__ import annotations

import numpy as np

#: Patch samples evaluated at once; bounds the temporaries to a few tens of MB. Each
#: operator module imports its own binding and reads it at call time, so a test can
#: lower it for one operator with ``monkeypatch.setattr(module, "_CHUNK_SAMPLES", ...)``.
_CHUNK_SAMPLES = 1 << 20


def _scatter_add(out: np.ndarray, flat: np.ndarray, values: np.ndarray) -> None:
    """``out[flat] += values`` in place, summing repeated indices.

    ``np.bincount`` over the touched index range is the fastest way when the patches
    are dense in it; ``np.add.at`` avoids allocating a large, mostly empty range.
    """
    flat, values = flat.ravel(), values.ravel()
    lo, hi = int(flat.min()), int(flat.max()) + 1
    if hi - lo > 4 * flat.size:
        np.add.at(out, flat, values)
    else:
        out[lo:hi] += np.bincount(flat - lo, values, minlength=hi - lo)


def _patch_width(half: float) -> int:
    """Samples that cover ``[c - half, c + half]`` for any ``c``, plus one for rounding."""
    return int(np.floor(2.0 * half)) + 2


def _axis_window(
    centre: np.ndarray, half: np.ndarray, size: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer sample indices around fractional centres along one axis.

    Returns the indices clipped into ``[0, size)`` (c, width), the offsets
    ``index - centre`` before clipping (c, width) [samples] and a float mask that is 1
    inside both the window ``|offset| <= half`` and the axis, 0 elsewhere.
    """
    # Clipping the start only matters for atoms far outside, whose samples all fall
    # off the axis and are masked anyway; it keeps the integers small.
    start = np.ceil(np.clip(centre - half, -width - 1.0, size + 1.0))
    index = start[:, None] + np.arange(width)
    offset = index - centre[:, None]
    inside = (np.abs(offset) <= half[:, None]) & (index >= 0) & (index < size)
    return np.clip(index, 0, size - 1).astype(np.intp), offset, inside.astype(float)


def _sigma(b_factors: np.ndarray) -> np.ndarray:
    """Standard deviation per axis [Å] of B-factors [Å²]: ``s² = B / (8π²)``."""
    return np.sqrt(b_factors / (8.0 * np.pi**2))
