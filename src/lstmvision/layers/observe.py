"""How much of a clip an early-recognition model sees."""

from __future__ import annotations

import math

__all__ = ["observed_frames"]


def observed_frames(fraction: float, length: int) -> int:
    """The first ``ceil(fraction * length)`` frames, at least 1, for ``fraction`` in (0, 1]."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"observed_fraction must be in (0, 1], got {fraction}")
    # int(): under tracing (ONNX export) a shape is a tensor, which round() refuses; the count is a
    # constant of the traced graph either way, since the time loop it bounds is unrolled
    length = int(length)
    # rounded first: 0.3 * 10 is 3.0000000000000004 in floating point, and its ceil would be 4
    return max(1, math.ceil(round(fraction * length, 9)))
