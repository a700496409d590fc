"""Reading frames: video files through PyAV, frame folders through Pillow.

A video file is decoded sequentially from its start and only up to the last frame asked for. Every
error names the file: :class:`BadVideoError` (a ``ValueError``) for a video that cannot be used.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from lstmvision.data.io.frames import frame_files

__all__ = [
    "BadVideoError",
    "OnCorrupt",
    "count_frames",
    "decode_video",
    "read_frames",
    "read_image",
    "stack_frames",
    "video_frame_hint",
]

OnCorrupt = Literal["raise", "skip"]
"""What a reader does with an item it cannot read: raise an error naming it, or skip it."""

# What Pillow raises on a damaged, truncated or unreadable image.
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)


class BadVideoError(ValueError):
    """A video that cannot be used: not decodable, no frames, or too short under ``"reject"``. The
    one-argument constructor keeps it re-raisable by DataLoader workers (they rebuild it from its
    message)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def read_image(path: Path) -> np.ndarray:
    """One frame image as ``uint8 (H, W, 3)`` RGB, or a :class:`BadVideoError` naming it."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))  # decodes the whole file, so truncation shows here
    except _IMAGE_ERRORS as exc:
        raise BadVideoError(f"{path}: cannot decode the frame image ({exc})", path) from exc


def video_frame_hint(path: Path) -> int:
    """The container's frame count, else the count of the video stream's packets (cheap: no decoding).
    Either may be wrong; callers correct it when decoding ends early."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise BadVideoError(f"{path}: no video stream in the file", path)
            stream = container.streams.video[0]
            if stream.frames > 0:
                return int(stream.frames)
            # Matroska/WebM headers carry no frame count; a packet holds at most one shown frame for
            # the common codecs, so this overestimates at worst (VP8 hidden frames).
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except av.FFmpegError as exc:
        raise BadVideoError(f"{path}: cannot open the video ({exc})", path) from exc


def decode_video(path: Path, wanted: Sequence[int]) -> tuple[dict[int, np.ndarray], int]:
    """Decode ``path`` from its first frame up to ``max(wanted)`` and no further.

    Returns the ``uint8 (H, W, 3)`` RGB frames at ``wanted`` (those that exist) and how many frames
    were decoded: ``max(wanted) + 1``, or the video's true length when it ends before that."""
    last, keep = max(wanted), set(wanted)
    frames: dict[int, np.ndarray] = {}
    count = 0
    # One reformatter for the whole video: frame.to_ndarray(format=...) builds a new swscale context for
    # every frame, 5x to 40x slower than the conversion itself at 320x240 (benchmarks/video_loader.py).
    reformatter = VideoReformatter()
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise BadVideoError(f"{path}: no video stream in the file", path)
            for frame in container.decode(container.streams.video[0]):
                # converting (and copying) a frame adds ~15% to its decoding: only the kept ones
                if count in keep:
                    frames[count] = reformatter.reformat(frame, format="rgb24").to_ndarray()
                count += 1
                if count > last:
                    break
    except av.FFmpegError as exc:
        raise BadVideoError(f"{path}: cannot decode the video ({exc})", path) from exc
    if count == 0:
        raise BadVideoError(f"{path}: no frame could be decoded from the video", path)
    return frames, count


def stack_frames(path: Path, frames: Sequence[np.ndarray]) -> np.ndarray:
    """``frames`` of the video ``path`` stacked on a new first axis; frames of different sizes are a
    :class:`BadVideoError`."""
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise BadVideoError(f"{path}: frames of different sizes {sorted(shapes)}", path)
    return np.stack(frames)


def count_frames(path: str | Path, *, exact: bool = False) -> int:
    """Frames of a video file or a frame folder.

    For a folder, the count of its frame images. For a file with ``exact=False``, a hint: the
    container's count, or where its header has none (Matroska, WebM) the count of the video stream's
    packets, read without decoding; either can be wrong (truncated or re-muxed files). With
    ``exact=True`` the file is decoded to the end to count. Raises ``ValueError`` naming the file when
    it cannot be read."""
    path = Path(path)
    if path.is_dir():
        return len(frame_files(path))
    if not exact:
        hint = video_frame_hint(path)
        if hint > 0:
            return hint
    _, count = decode_video(path, [2**62])  # an index past any end: decode everything, keep nothing
    return count


def read_frames(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """The frames at ``indices`` (any order, repeats allowed) of a video file or frame folder.

    A file is decoded sequentially from its start up to ``max(indices)``, never further.

    Returns:
        ``uint8 (len(indices), H, W, 3)`` RGB.
    """
    path = Path(path)
    if not indices or min(indices) < 0:
        raise ValueError(f"indices must be a non-empty list of frame indices >= 0, got {list(indices)}")
    if path.is_dir():
        files = frame_files(path)
        if max(indices) >= len(files):
            raise ValueError(f"{path}: frame {max(indices)} requested, the folder holds {len(files)} frames")
        images = {i: read_image(files[i]) for i in set(indices)}
    else:
        images, count = decode_video(path, indices)
        if max(indices) >= count:
            raise ValueError(f"{path}: frame {max(indices)} requested, the video has {count} frames")
    return stack_frames(path, [images[i] for i in indices])
