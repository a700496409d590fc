"""The video classification dataset: clips of videos (files or frame folders) with a class label.

:class:`VideoClips` cuts one clip per item (:mod:`~lstmvision.data.io.sampling`), decodes it in
``__getitem__`` (so in DataLoader workers, :mod:`~lstmvision.data.io.reading`) and transforms it
(:class:`~lstmvision.data.io.transforms.ClipTransform`). The layouts (:mod:`lstmvision.data.layouts`)
list the :class:`VideoSample` items it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmvision.data.checks import check_choice, check_positive
from lstmvision.data.io.frames import frame_files
from lstmvision.data.io.reading import (
    BadVideoError,
    OnCorrupt,
    decode_video,
    read_image,
    stack_frames,
    video_frame_hint,
)
from lstmvision.data.io.sampling import ShortClips, clip_indices, clip_span, random_start, uniform_starts
from lstmvision.data.io.transforms import ClipTransform
from lstmvision.data.skips import SkippedSamples, SkipsUnusable, usable_item

__all__ = ["VideoClips", "VideoSample"]

logger = logging.getLogger(__name__)


class VideoSample(NamedTuple):
    """One video: a video file or a frame folder, and its label."""

    path: Path
    label: int


class VideoClips(SkipsUnusable, Dataset[tuple[Tensor, Tensor]]):
    """Clips of ``num_frames`` frames, ``frame_stride`` apart, from videos with a class label.

    Item ``i`` is a clip of video ``i``. In training (``train=True``) its start is drawn uniformly from
    the valid starts (:func:`random_start`, torch's global generator), then the crop position and the
    flip (:class:`ClipTransform`): every epoch shows another clip. In evaluation the clip is the centre
    clip, or ``test_clips`` clips at :func:`uniform_starts`, with a centre crop and no flip. Videos
    shorter than the span are padded, looped or rejected (``short_clips``, see :func:`clip_indices`).

    A video file is decoded in ``__getitem__`` (so in DataLoader workers), sequentially from its start
    and only up to the last frame the item needs. Its length comes first from the container (or a
    count of packets, for containers without a count); when decoding ends before that, the true
    length is kept and the clip drawn again from it. Lengths are cached per process.

    Args:
        samples: ``(path, label)`` pairs; a path is a video file or a frame folder.
        num_frames: frames per clip.
        frame_stride: distance between consecutive clip frames in the video.
        train: random clips, crops and flips, or fixed ones.
        test_clips: clips per video in evaluation, stacked on a new axis when more than one.
        resize, crop_size, flip, grayscale: see :class:`ClipTransform` (``flip`` in training only).
        short_clips: ``"pad"`` (repeat the last frame), ``"loop"`` or ``"reject"`` videos shorter than
            the span.
        on_corrupt: a video that cannot be decoded (or is rejected as short) raises a ``ValueError``
            naming it (``"raise"``), or (``"skip"``) is logged as a warning, counted in
            :attr:`skipped` and replaced by the next usable video (by index, wrapping around), so an
            epoch never stops; bad videos are remembered (:meth:`skipped_indices`) and not decoded again
            by any process reading the set, DataLoader workers included.

    Shape:
        item: ``(clip, label)``; clip ``float32 (T, C, H, W)`` in [0, 1], or ``(K, T, C, H, W)`` with
        ``K = test_clips > 1`` in evaluation; ``C`` is 3, or 1 with ``grayscale``; label ``int64``
        scalar.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str | Path, int]],
        *,
        num_frames: int = 16,
        frame_stride: int = 1,
        train: bool = False,
        test_clips: int = 1,
        resize: int | tuple[int, int] | None = 128,
        crop_size: int | tuple[int, int] | None = 112,
        flip: bool = True,
        grayscale: bool = False,
        short_clips: ShortClips = "pad",
        on_corrupt: OnCorrupt = "raise",
    ) -> None:
        check_positive(num_frames=num_frames, frame_stride=frame_stride, test_clips=test_clips)
        check_choice("short_clips", short_clips, ("pad", "loop", "reject"))
        check_choice("on_corrupt", on_corrupt, ("raise", "skip"))
        if train and test_clips != 1:
            raise ValueError(
                f"test_clips applies to evaluation (train=False); got {test_clips} with train=True"
            )
        self.samples = [VideoSample(Path(path), int(label)) for path, label in samples]
        if not self.samples:
            raise ValueError("VideoClips needs at least one (path, label) sample, got none")
        self.num_frames, self.frame_stride = num_frames, frame_stride
        self.train, self.test_clips = train, test_clips
        self.short_clips: ShortClips = short_clips
        self.on_corrupt: OnCorrupt = on_corrupt
        self.transform = ClipTransform(
            resize=resize, crop_size=crop_size, train=train, flip=flip, grayscale=grayscale
        )
        self._lengths: dict[Path, int] = {}  # video -> frame count (a hint until decoding corrects it)
        self._frame_lists: dict[Path, list[Path]] = {}  # frame folder -> its frame files
        # videos found unusable ("skip" mode), shared with the DataLoader workers
        self._skips = SkippedSamples(len(self.samples)) if on_corrupt == "skip" else None

    def __len__(self) -> int:
        return len(self.samples)

    def _length(self, path: Path) -> int:
        if path not in self._lengths:
            if path.is_dir():
                self._frame_lists[path] = frame_files(path)
                self._lengths[path] = len(self._frame_lists[path])
            else:
                self._lengths[path] = video_frame_hint(path)
            if self._lengths[path] == 0:
                kind = "frame images" if path.is_dir() else "frames"
                raise BadVideoError(f"{path}: the video holds no {kind}", path)
        return self._lengths[path]

    def _clip_indices(self, path: Path, length: int) -> list[list[int]]:
        span = clip_span(self.num_frames, self.frame_stride)
        if length < span and self.short_clips == "reject":
            raise BadVideoError(
                f"{path}: {length} frames, shorter than the clip span of {span} frames (num_frames="
                f"{self.num_frames}, frame_stride={self.frame_stride}) and short_clips='reject'",
                path,
            )
        if self.train:
            starts = [random_start(length, self.num_frames, self.frame_stride)]
        else:
            starts = uniform_starts(length, self.num_frames, self.frame_stride, self.test_clips)
        return [
            clip_indices(length, self.num_frames, self.frame_stride, start, short_clips=self.short_clips)
            for start in starts
        ]

    def _read(self, path: Path) -> np.ndarray:
        """``uint8 (K*T, H, W, 3)``: the frames of the item's clips, clip after clip."""
        while True:
            length = self._length(path)
            clips = self._clip_indices(path, length)
            flat = [index for clip in clips for index in clip]
            if path.is_dir():
                files = self._frame_lists[path]
                images = {index: read_image(files[index]) for index in set(flat)}
            else:
                images, decoded = decode_video(path, flat)
                if decoded <= max(flat):
                    # The container overstated the length: keep the true one and draw the clip again.
                    logger.debug("%s: %d frames, not %d as its header says", path, decoded, length)
                    self._lengths[path] = decoded
                    continue
            return stack_frames(path, [images[index] for index in flat])

    def _item(self, sample: VideoSample) -> tuple[Tensor, Tensor]:
        frames = torch.from_numpy(self._read(sample.path))  # (K*T, H, W, 3) uint8
        clip = self.transform(frames.permute(0, 3, 1, 2))  # (K*T, C, H', W')
        if not self.train and self.test_clips > 1:
            clip = clip.unflatten(0, (self.test_clips, self.num_frames))  # (K, T, C, H', W')
        return clip, torch.tensor(sample.label, dtype=torch.int64)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"video index {index} out of range for {n} videos")
        skips = self._skips
        if skips is None:  # on_corrupt="raise"
            try:
                return self._item(self.samples[index])
            except BadVideoError as exc:
                raise BadVideoError(
                    f"{exc}; `on_corrupt: skip` in the data config skips such videos"
                ) from exc
        return usable_item(
            index,
            skips,
            lambda i: self._item(self.samples[i]),
            size=n,
            unusable=BadVideoError,
            noun="video",
            exhausted=f"every one of the {n} videos is unusable (corrupt, empty or rejected as short)",
        )
