"""Video input: frame listing and natural order, PyAV/Pillow reading, clip sampling, clip transforms,
and the clip datasets built on them (single view and multi-view)."""

from lstmvision.data.io.clips import VideoClips, VideoSample
from lstmvision.data.io.frames import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, natural_key
from lstmvision.data.io.multiview_clips import MultiViewClips, MultiViewSample
from lstmvision.data.io.reading import count_frames, read_frames
from lstmvision.data.io.sampling import (
    clip_indices,
    clip_span,
    random_start,
    uniform_frame_indices,
    uniform_starts,
)
from lstmvision.data.io.transforms import ClipTransform

__all__ = [
    "FRAME_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ClipTransform",
    "MultiViewClips",
    "MultiViewSample",
    "VideoClips",
    "VideoSample",
    "clip_indices",
    "clip_span",
    "count_frames",
    "natural_key",
    "random_start",
    "read_frames",
    "uniform_frame_indices",
    "uniform_starts",
]
