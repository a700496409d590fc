"""Tiny real video files for the tests, written with PyAV (shared by tests/data and the CLI tests)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_video(
    path: Path, frames: np.ndarray, codec: str = "libx264", options: dict[str, str] | None = None
) -> Path:
    """Encode RGB frames ``(T, H, W, 3)`` uint8 at 25 fps; libx264 defaults to lossless (``qp=0``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"qp": "0"} if options is None and codec == "libx264" else (options or {})
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path
