"""Clip sampling: which frames of a video a clip takes (pure functions of the lengths, no I/O).

A clip is ``num_frames`` frames ``frame_stride`` apart; its *span* is the frames of the video it covers.
Training draws a random start (:func:`random_start`), evaluation takes uniformly spaced starts
(:func:`uniform_starts`); :func:`uniform_frame_indices` spreads a fixed number of frames over a whole
video instead.
"""

from __future__ import annotations

from typing import Literal

import torch

from lstmvision.data.checks import check_choice, check_positive

__all__ = [
    "ShortClips",
    "clip_indices",
    "clip_span",
    "random_start",
    "uniform_frame_indices",
    "uniform_starts",
]

ShortClips = Literal["pad", "loop", "reject"]
"""What a clip does with a video shorter than its span: repeat the last frame, loop, or raise."""


def clip_span(num_frames: int, frame_stride: int = 1) -> int:
    """Frames of the video a clip covers: ``(num_frames - 1) * frame_stride + 1``."""
    check_positive(num_frames=num_frames, frame_stride=frame_stride)
    return (num_frames - 1) * frame_stride + 1


def clip_indices(
    num_video_frames: int,
    num_frames: int,
    frame_stride: int = 1,
    start: int = 0,
    *,
    short_clips: ShortClips = "pad",
) -> list[int]:
    """Indices of the frames of the clip starting at ``start``: ``start, start + frame_stride, ...``.

    Valid starts are ``0 .. num_video_frames - span`` (see :func:`clip_span`). A video shorter than the
    span has the single start 0 and is handled by ``short_clips``: ``"pad"`` repeats its last frame,
    ``"loop"`` plays it again from the beginning (index modulo its length), ``"reject"`` raises
    ``ValueError``.

    Returns:
        ``num_frames`` indices into the video's frames.
    """
    check_positive(num_video_frames=num_video_frames)
    check_choice("short_clips", short_clips, ("pad", "loop", "reject"))
    span = clip_span(num_frames, frame_stride)
    last_start = num_video_frames - span
    if last_start >= 0:
        if not 0 <= start <= last_start:
            raise ValueError(
                f"start must be in [0, {last_start}] for a clip spanning {span} of {num_video_frames} "
                f"frames, got {start}"
            )
        return list(range(start, start + span, frame_stride))
    if start != 0:
        raise ValueError(
            f"start must be 0 for a video of {num_video_frames} frames, shorter than the clip span of "
            f"{span} frames, got {start}"
        )
    if short_clips == "reject":
        raise ValueError(
            f"a video of {num_video_frames} frames is shorter than the clip span of {span} frames "
            f"(num_frames={num_frames}, frame_stride={frame_stride}) and short_clips='reject'"
        )
    steps = range(0, span, frame_stride)
    if short_clips == "pad":
        return [min(step, num_video_frames - 1) for step in steps]
    return [step % num_video_frames for step in steps]


def uniform_starts(
    num_video_frames: int, num_frames: int, frame_stride: int = 1, count: int = 1
) -> list[int]:
    """``count`` clip starts spread uniformly over the valid starts ``0 .. last`` (``last =
    max(num_video_frames - span, 0)``): the centres of ``count`` equal parts of that range,
    ``floor((2k + 1) * last / (2 * count))`` for ``k = 0 .. count - 1``. One clip is the centre clip."""
    check_positive(num_video_frames=num_video_frames, count=count)
    last = max(num_video_frames - clip_span(num_frames, frame_stride), 0)
    return [(2 * k + 1) * last // (2 * count) for k in range(count)]


def random_start(
    num_video_frames: int, num_frames: int, frame_stride: int = 1, *, generator: torch.Generator | None = None
) -> int:
    """A clip start drawn uniformly from the valid starts (0 for a video shorter than the span).

    Draws from ``generator``, or from torch's global generator when ``None``: DataLoader workers seed it
    from the main process (``seed_everything`` makes a run reproducible) with a different seed per
    worker, and it advances from epoch to epoch."""
    check_positive(num_video_frames=num_video_frames)
    last = max(num_video_frames - clip_span(num_frames, frame_stride), 0)
    return int(torch.randint(last + 1, (1,), generator=generator).item())


def uniform_frame_indices(num_video_frames: int, frames: int) -> list[int]:
    """The centre steps of ``frames`` equal segments of a video: ``floor((2k + 1) * T / (2 * frames))``
    for ``k = 0 .. frames - 1``, ``T = num_video_frames``. A video shorter than ``frames`` repeats
    steps (each index appears ``frames / T`` times, rounded)."""
    check_positive(num_video_frames=num_video_frames, frames=frames)
    return [(2 * k + 1) * num_video_frames // (2 * frames) for k in range(frames)]
