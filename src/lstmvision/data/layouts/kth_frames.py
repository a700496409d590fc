"""The KTH frame-folder dataset: fixed sequences of consecutive frames with their action label, cut by
the PredRNN / E3D-LSTM releases' rule and decoded lazily in ``__getitem__``."""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lstmvision.data.io.reading import OnCorrupt
from lstmvision.data.layouts.kth import (
    KTH_ACTIONS,
    KTH_FAST_ACTIONS,
    KTHVideo,
    check_at_least_one,
    check_on_corrupt,
    check_persons,
    frame_number,
    scan_kth_frames,
    sequence_starts,
)
from lstmvision.data.skips import SkippedSamples, SkipsUnusable, usable_item

__all__ = ["KTHFrames"]

logger = logging.getLogger(__name__)

# What Pillow raises on a damaged, truncated or unreadable image; each becomes a ValueError naming it.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


class _CorruptFrameError(ValueError):
    """A frame Pillow cannot decode. The one-argument constructor keeps it re-raisable by DataLoader
    workers (they rebuild the exception from its message)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def _decode_frame(path: Path, image_size: int) -> np.ndarray:
    """Read one frame as ``uint8 (image_size, image_size)`` grayscale, squashed to a square."""
    try:
        with Image.open(path) as image:
            gray = image.convert("L")  # ITU-R 601-2 luma; decodes the whole file, so truncation shows here
    except _DECODE_ERRORS as exc:
        raise _CorruptFrameError(f"{path}: cannot decode the image ({exc})", path) from exc
    if gray.size != (image_size, image_size):
        gray = gray.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(gray)


class KTHFrames(SkipsUnusable, Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Fixed sequences of KTH frames with their action label.

    The folders of ``persons`` are listed once (:func:`scan_kth_frames`); each is cut into sequences
    of ``seq_length`` consecutive frames by :func:`sequence_starts`. Sequence ``i`` is always the
    same ``(video, start)`` (see :meth:`locate`): videos in (label, person, scenario) order, starts
    ascending within a video. Folders that give no sequence (fewer than ``seq_length`` frames, or
    gaps in the numbering) are skipped with one logged warning that counts them; an error is raised
    when no sequence is left.

    Frames are decoded in ``__getitem__`` (so in DataLoader workers): converted to grayscale
    (Pillow's ``"L"``), resized to ``image_size × image_size`` with bilinear filtering without
    keeping the aspect ratio (160×120 KTH frames are squashed, as in the releases), divided by 255.

    Args:
        root: the KTH root folder (one subfolder per action).
        persons: KTH persons (1-25) whose videos form the set.
        seq_length: frames per sequence (20 for 10→10 prediction, 30 for 10→20, 50 for 10→40).
        image_size: output height and width.
        stride: frames between consecutive sequence starts in every video; ``None`` follows the
            releases: ``seq_length`` (no overlap) for boxing, hand clapping, hand waving and walking,
            ``fast_stride`` for jogging and running.
        fast_stride: the stride of jogging and running when ``stride`` is ``None``.
        actions: actions to read; labels stay indices into :data:`KTH_ACTIONS` whatever the subset.
        on_corrupt: what a frame that cannot be decoded does: ``"raise"`` a ``ValueError`` naming it,
            or ``"skip"``: the sequence holding it is replaced by the next sequence (by index, wrapping
            around) that decodes, and a warning names the file and the sequence and counts the sequences
            skipped so far. Known-bad files are remembered, so they are not decoded twice; the skipped
            sequences are counted in :attr:`skipped` and listed by :meth:`skipped_indices`, for every
            process reading the set.

    Shape:
        item: ``(clip, label)``: clip ``float32 (seq_length, 1, image_size, image_size)`` in [0, 1],
        label an ``int64`` scalar tensor.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        persons: Sequence[int],
        seq_length: int = 20,
        image_size: int = 128,
        stride: int | None = None,
        fast_stride: int = 3,
        actions: Sequence[str] = KTH_ACTIONS,
        on_corrupt: OnCorrupt = "raise",
    ) -> None:
        check_at_least_one(
            seq_length=seq_length, image_size=image_size, stride=stride, fast_stride=fast_stride
        )
        check_on_corrupt(on_corrupt)
        self.root = Path(root)
        self.persons = check_persons(persons, "persons")
        self.seq_length, self.image_size = seq_length, image_size
        self.stride, self.fast_stride = stride, fast_stride
        self.on_corrupt: OnCorrupt = on_corrupt
        self.videos: list[KTHVideo] = []
        self.index: list[tuple[int, int]] = []  # sequence -> (position in self.videos, first frame)
        self._corrupt: set[Path] = set()  # files found undecodable by this process ("skip" mode)
        self._skips: SkippedSamples | None = None  # sequences skipped, shared with DataLoader workers

        scanned = scan_kth_frames(self.root, persons=self.persons, actions=actions)
        skipped: list[str] = []
        for video in scanned:
            numbers = [frame_number(frame) for frame in video.frames]
            starts = sequence_starts(numbers, seq_length, self.stride_of(video.action))
            if not starts:
                skipped.append(video.path.name)
                continue
            position = len(self.videos)
            self.videos.append(video)
            self.index.extend((position, start) for start in starts)
        if skipped:
            shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
            logger.warning(
                "%s: skipped %d of %d video folders with no %d consecutive frames (too short or with gaps "
                "in the numbering): %s",
                self.root,
                len(skipped),
                len(scanned),
                seq_length,
                shown,
            )
        if not self.index:
            raise ValueError(
                f"{self.root}: no sequence of seq_length={seq_length} consecutive frames in any of the "
                f"{len(scanned)} video folders of persons {list(self.persons)}"
            )
        if on_corrupt == "skip":
            self._skips = SkippedSamples(len(self.index))
        logger.info(
            "KTH %s: %d sequences of %d frames from %d videos of persons %s",
            self.root,
            len(self.index),
            seq_length,
            len(self.videos),
            list(self.persons),
        )

    def stride_of(self, action: str) -> int:
        """Frames between consecutive sequence starts in a video of ``action``."""
        if self.stride is not None:
            return self.stride
        return self.fast_stride if action in KTH_FAST_ACTIONS else self.seq_length

    def __len__(self) -> int:
        return len(self.index)

    def locate(self, index: int) -> tuple[KTHVideo, int]:
        """The video of sequence ``index`` and the position of its first frame in ``video.frames``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sequence index {index} out of range for {len(self)} sequences")
        position, start = self.index[index]
        return self.videos[position], start

    def _clip(self, frames: tuple[Path, ...]) -> torch.Tensor:
        stack = np.stack([_decode_frame(frame, self.image_size) for frame in frames])  # (T, S, S) uint8
        clip = torch.from_numpy(stack).to(torch.float32).div_(255.0)
        return clip.unsqueeze(1)  # (T, 1, S, S)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # "skip": index, index + 1, ... until one decodes, so the replacement depends only on which files
        # are bad (lstmvision.data.skips)
        n = len(self)
        return usable_item(
            index,
            self._skips,
            self._sequence,
            size=n,
            unusable=_CorruptFrameError,
            noun="sequence",
            exhausted=f"{self.root}: every one of the {n} sequences holds a corrupt frame",
        )

    def _sequence(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, start = self.locate(index)
        frames = video.frames[start : start + self.seq_length]
        known = sorted(self._corrupt.intersection(frames))
        if known:  # a file another sequence found corrupt: not decoded again
            raise _CorruptFrameError(f"{known[0]}: found corrupt before (sequence {index})", known[0])
        try:
            clip = self._clip(frames)
        except _CorruptFrameError as exc:
            if self._skips is not None:  # "skip": remember the file
                self._corrupt.add(exc.path or frames[0])
            raise _CorruptFrameError(f"{exc} (sequence {index})", exc.path) from exc
        return clip, torch.tensor(video.label, dtype=torch.int64)
