"""The multi-view dataset: clips of every view of a sample (a video file or frame folder per view),
read at the same frame indices, and the skip-or-raise rule that the multi-view datasets share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmvision.data.checks import check_choice, check_positive
from lstmvision.data.io.reading import OnCorrupt, count_frames, read_frames
from lstmvision.data.io.sampling import (
    ShortClips,
    clip_indices,
    random_start,
    uniform_frame_indices,
    uniform_starts,
)
from lstmvision.data.io.transforms import ClipTransform
from lstmvision.data.skips import SkippedSamples, SkipsUnusable, usable_item

__all__ = ["BadSampleError", "MultiViewClips", "MultiViewSample", "Sampling", "multiview_item"]


Sampling = Literal["window", "resample"]
"""How a clip's frames are chosen: a window of consecutive strided frames, or spread over the whole."""


class MultiViewSample(NamedTuple):
    """One sample: a video file or frame folder per view (in view order), its label, its group (the
    speaker or subject: no group is in two sets) and a name for messages."""

    name: str
    paths: tuple[Path, ...]
    label: int
    group: str


class BadSampleError(ValueError):
    """A sample that cannot be used (a view not decodable, empty or too short under ``"reject"``); one
    argument, so DataLoader workers can re-raise it."""


_Item = TypeVar("_Item")


def multiview_item(index: int, n: int, skips: SkippedSamples | None, item: Callable[[int], _Item]) -> _Item:
    """``item(index)`` of ``n`` multi-view samples, skipping those that raise :class:`BadSampleError` when
    ``skips`` is given (:func:`~lstmvision.data.skips.usable_item`)."""
    return usable_item(
        index,
        skips,
        item,
        size=n,
        unusable=BadSampleError,
        noun="sample",
        exhausted=f"every one of the {n} multi-view samples is unusable",
    )


class MultiViewClips(SkipsUnusable, Dataset[tuple[Tensor, Tensor]]):
    """Clips of ``num_frames`` frames of every view of a sample, read at the same frame indices.

    ``sampling="window"``: frames ``frame_stride`` apart, starting at a random start in training
    (:func:`~lstmvision.data.video.random_start`, torch's global generator) and at the centre start
    otherwise (:func:`~lstmvision.data.video.uniform_starts`), on the smallest frame count of the
    sample's views; shorter samples are padded, looped or rejected (``short_clips``).
    ``sampling="resample"``: ``num_frames`` indices spread uniformly over the whole sequence (no
    randomness); over the smallest count when ``synchronised``, else over each view's own count.

    Args:
        samples: the samples; every sample has one path per view.
        view_names: names of the views, for messages.
        num_frames, frame_stride, short_clips: see above.
        train: random window starts.
        resize, grayscale: see :class:`~lstmvision.data.video.ClipTransform`; the same on every view.
        sampling, synchronised: see above.
        on_corrupt: a sample with a view that cannot be read raises a ``ValueError`` naming the sample
            and the file (``"raise"``), or (``"skip"``) is logged, counted in :attr:`skipped` and
            replaced by the next usable sample.

    Shape:
        item ``(clip, label)``: clip ``float32 (V, T, C, H, W)`` in [0, 1], ``C`` 3 (1 with
        ``grayscale``); label ``int64`` scalar.
    """

    def __init__(
        self,
        samples: Sequence[MultiViewSample],
        view_names: Sequence[str],
        *,
        num_frames: int = 16,
        frame_stride: int = 1,
        train: bool = False,
        resize: int | tuple[int, int] | None = None,
        grayscale: bool = False,
        short_clips: ShortClips = "pad",
        sampling: Sampling = "window",
        synchronised: bool = True,
        on_corrupt: OnCorrupt = "raise",
    ) -> None:
        check_positive(owner="MultiViewClips", none_ok=True, num_frames=num_frames, frame_stride=frame_stride)
        check_choice("short_clips", short_clips, ("pad", "loop", "reject"), owner="MultiViewClips")
        check_choice("sampling", sampling, ("window", "resample"), owner="MultiViewClips")
        check_choice("on_corrupt", on_corrupt, ("raise", "skip"), owner="MultiViewClips")
        self.samples = list(samples)
        if not self.samples:
            raise ValueError("MultiViewClips needs at least one sample, got none")
        self.view_names = list(view_names)
        if any(len(s.paths) != len(self.view_names) for s in self.samples):
            raise ValueError(f"MultiViewClips: every sample needs one path per view {self.view_names}")
        self.num_frames, self.frame_stride, self.train = num_frames, frame_stride, train
        self.short_clips: ShortClips = short_clips
        self.sampling: Sampling = sampling
        self.synchronised, self.on_corrupt = synchronised, on_corrupt
        self.transform = ClipTransform(resize=resize, grayscale=grayscale)
        self._lengths: dict[Path, int] = {}  # frame count per file (a hint until decoding corrects it)
        # samples found unusable ("skip" mode), shared with the DataLoader workers
        self._skips = SkippedSamples(len(self.samples)) if on_corrupt == "skip" else None

    def __len__(self) -> int:
        return len(self.samples)

    def _length(self, sample: MultiViewSample, view: int) -> int:
        path = sample.paths[view]
        if path not in self._lengths:
            try:
                self._lengths[path] = count_frames(path)
            except ValueError as exc:
                raise BadSampleError(f"sample {sample.name}, view {self.view_names[view]}: {exc}") from exc
            if self._lengths[path] == 0:
                raise BadSampleError(
                    f"sample {sample.name}, view {self.view_names[view]}: {path} holds no frames"
                )
        return self._lengths[path]

    def _window(self, sample: MultiViewSample, length: int) -> list[int]:
        span = (self.num_frames - 1) * self.frame_stride + 1
        if length < span and self.short_clips == "reject":
            raise BadSampleError(
                f"sample {sample.name}: {length} frames, shorter than the clip span of {span} frames "
                f"(num_frames={self.num_frames}, frame_stride={self.frame_stride}) and short_clips='reject'"
            )
        if self.train:
            start = random_start(length, self.num_frames, self.frame_stride)
        else:
            start = uniform_starts(length, self.num_frames, self.frame_stride)[0]
        return clip_indices(length, self.num_frames, self.frame_stride, start, short_clips=self.short_clips)

    def _indices(self, sample: MultiViewSample) -> list[list[int]]:
        lengths = [self._length(sample, v) for v in range(len(sample.paths))]
        if self.sampling == "resample":
            if self.synchronised:
                return [uniform_frame_indices(min(lengths), self.num_frames)] * len(lengths)
            return [uniform_frame_indices(n, self.num_frames) for n in lengths]
        # views of one recording are synchronised: one window on the shortest view
        return [self._window(sample, min(lengths))] * len(lengths)

    def _read(self, sample: MultiViewSample) -> list[np.ndarray]:
        while True:
            indices = self._indices(sample)
            views: list[np.ndarray] = []
            for view, (path, wanted) in enumerate(zip(sample.paths, indices)):
                where = f"sample {sample.name}, view {self.view_names[view]}"
                try:
                    views.append(read_frames(path, wanted))
                except ValueError as exc:
                    if path.is_file():
                        # the container's frame count may overstate: correct it and draw again
                        try:
                            exact = count_frames(path, exact=True)
                        except ValueError as again:
                            raise BadSampleError(f"{where}: {again}") from again
                        if 0 < exact < self._lengths.get(path, 0):
                            self._lengths[path] = exact
                            break
                    raise BadSampleError(f"{where}: {exc}") from exc
            else:
                return views

    def _item(self, sample: MultiViewSample) -> tuple[Tensor, Tensor]:
        clips = []
        for frames in self._read(sample):
            clip = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, H, W, 3) -> (T, 3, H, W)
            clips.append(self.transform(clip))  # (T, C, H', W')
        shapes = {tuple(c.shape) for c in clips}
        if len(shapes) > 1:
            # each view's file too: a damaged file can decode at a size of its own
            sizes = ", ".join(
                f"{n}: {tuple(c.shape[-2:])} {path}"
                for n, c, path in zip(self.view_names, clips, sample.paths)
            )
            raise BadSampleError(
                f"sample {sample.name}: views of different frame sizes ({sizes}); give resize=[H, W]"
            )
        return torch.stack(clips), torch.tensor(sample.label, dtype=torch.int64)  # (V, T, C, H, W)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return multiview_item(index, len(self.samples), self._skips, lambda i: self._item(self.samples[i]))
