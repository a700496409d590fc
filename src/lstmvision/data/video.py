"""Video classification data: video files and frame folders, clip sampling, clip transforms, the layouts
of class-per-folder sets, UCF101, HMDB51 and the KTH videos, a dataset and a LightningDataModule.

A *video* is a file (``.mp4``, ``.avi``, ``.mkv``, ``.webm``, ``.mov``, ``.mpg`` by default), decoded with
PyAV, or a folder of frame images (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``) read with Pillow in natural
order (``frame_2`` before ``frame_10``). Both go through the same dataset, :class:`VideoClips`, which
cuts one clip of ``num_frames`` frames, ``frame_stride`` apart, per item: at a random start in training,
at ``test_clips`` uniformly spaced starts in evaluation (:func:`clip_indices`, :func:`uniform_starts`,
:func:`random_start`). Frames are decoded in ``__getitem__``, so in DataLoader workers, and a video file
is decoded sequentially only up to the last frame a clip needs.

The layouts are read by :func:`read_folder_splits`, :func:`read_ucf101_splits`,
:func:`read_hmdb51_splits` and :func:`read_kth_video_splits`; each returns :class:`VideoSplits`
(lists of ``(path, label)`` per set, and the class names). :class:`VideoDataModule` picks one by its
``layout`` argument. docs/data.md ("Video files and frame folders") describes layouts, sampling,
transforms and error handling. Errors name the file (and line, for split files) and what was expected:
``FileNotFoundError`` when something is missing, ``ValueError`` otherwise.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import VideoReformatter
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from lstmvision.data._common import SetsDataModule, check_loader_args, sets_for_stage
from lstmvision.data.kth import KTH_ACTIONS, KTH_TEST_PERSONS, KTH_TRAIN_PERSONS

__all__ = [
    "FRAME_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ClipTransform",
    "VideoClips",
    "VideoDataModule",
    "VideoSample",
    "VideoSplits",
    "clip_indices",
    "clip_span",
    "count_frames",
    "random_start",
    "read_folder_splits",
    "read_frames",
    "read_hmdb51_splits",
    "read_kth_video_splits",
    "read_ucf101_splits",
    "scan_class_folders",
    "uniform_starts",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = ("mp4", "avi", "mkv", "webm", "mov", "mpg")
"""File extensions read as video files by default (any letter case)."""
FRAME_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "bmp")
"""File extensions of the frame images in a frame folder (any letter case)."""

ShortClips = Literal["pad", "loop", "reject"]
OnCorrupt = Literal["raise", "skip"]
Layout = Literal["folders", "ucf101", "hmdb51", "kth"]

# ITU-R 601-2 luma, the weights of Pillow's convert("L"), so gray frames match Pillow's.
_LUMA = (0.299, 0.587, 0.114)
# What Pillow raises on a damaged, truncated or unreadable image.
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)
_UCF101_NAME = re.compile(r"v_([A-Za-z0-9]+)_g(\d+)_c(\d+)\.[A-Za-z0-9]+")
_HMDB51_SPLIT_FILE = re.compile(r"(.+)_test_split(\d+)\.txt")
_KTH_VIDEO_NAME = re.compile(r"person(\d{2})_([a-z]+)_(d[1-4])(?:_uncomp)?")


class VideoSample(NamedTuple):
    """One video: a video file or a frame folder, and its label."""

    path: Path
    label: int


class VideoSplits(NamedTuple):
    """The videos of each set and the class names (a label indexes ``class_names``).

    ``val`` may hold the very same videos as ``test`` where a layout is asked for no held-out validation
    videos (``val_fraction=0``, or no validation persons for KTH).
    """

    train: list[VideoSample]
    val: list[VideoSample]
    test: list[VideoSample]
    class_names: list[str]


# --------------------------------------------------------------------------------------------------
# Argument checks (shared by the functions, the dataset and the data module)
# --------------------------------------------------------------------------------------------------


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_size(name: str, value: int | Sequence[int] | None) -> int | tuple[int, int] | None:
    """An int, an ``(H, W)`` pair (a YAML list is accepted) or ``None``."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    if (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return (value[0], value[1])
    raise ValueError(f"{name} must be an integer >= 1, a pair (height, width) of them or None, got {value!r}")


def _check_fraction(name: str, value: float, *, zero_ok: bool) -> None:
    low_ok = value >= 0.0 if zero_ok else value > 0.0
    if not (low_ok and value < 1.0):
        interval = "[0, 1)" if zero_ok else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def _check_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        raise ValueError(f"extensions must be a list of file extensions, got the string {extensions!r}")
    cleaned = tuple(str(ext).lower().lstrip(".") for ext in extensions)
    bad = [ext for ext in cleaned if not ext.isalnum()]
    if not cleaned or bad:
        raise ValueError(
            f"extensions must be non-empty alphanumeric extensions like 'mp4', got {extensions!r}"
        )
    return cleaned


def _check_persons(persons: Sequence[int], what: str) -> tuple[int, ...]:
    if not isinstance(persons, (list, tuple, range)):
        raise TypeError(f"{what} must be a list of KTH persons 1-25, got {persons!r}")
    bad = [p for p in persons if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 25]
    if bad:
        raise ValueError(f"{what} must be KTH persons 1-25, got {bad}")
    return tuple(sorted(set(persons)))


# --------------------------------------------------------------------------------------------------
# Clip sampling (pure functions)
# --------------------------------------------------------------------------------------------------


def clip_span(num_frames: int, frame_stride: int = 1) -> int:
    """Frames of the video a clip covers: ``(num_frames - 1) * frame_stride + 1``."""
    _check_positive(num_frames=num_frames, frame_stride=frame_stride)
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
    _check_positive(num_video_frames=num_video_frames)
    _check_choice("short_clips", short_clips, ("pad", "loop", "reject"))
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
    _check_positive(num_video_frames=num_video_frames, count=count)
    last = max(num_video_frames - clip_span(num_frames, frame_stride), 0)
    return [(2 * k + 1) * last // (2 * count) for k in range(count)]


def random_start(
    num_video_frames: int, num_frames: int, frame_stride: int = 1, *, generator: torch.Generator | None = None
) -> int:
    """A clip start drawn uniformly from the valid starts (0 for a video shorter than the span).

    Draws from ``generator``, or from torch's global generator when ``None``: DataLoader workers seed it
    from the main process (``seed_everything`` makes a run reproducible) with a different seed per
    worker, and it advances from epoch to epoch."""
    _check_positive(num_video_frames=num_video_frames)
    last = max(num_video_frames - clip_span(num_frames, frame_stride), 0)
    return int(torch.randint(last + 1, (1,), generator=generator).item())


# --------------------------------------------------------------------------------------------------
# Transforms (one call on a whole clip, so every frame gets the same crop and flip)
# --------------------------------------------------------------------------------------------------


class ClipTransform:
    """Resize, crop, flip and (optionally) gray a clip, identically on every frame, in one call.

    Steps, in order: ``resize`` (bilinear with antialiasing, ``torch.nn.functional.interpolate``): an
    int sets the shorter side keeping the aspect ratio (the longer side is rounded), a pair sets
    ``(H, W)`` exactly; ``crop_size`` (int: square): a random position in training, the centre
    otherwise; horizontal flip with probability 0.5 in training when ``flip``; ``uint8`` values are
    divided by 255; ``grayscale`` takes the ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B, Pillow's
    weights). A ``uint8`` clip is resized as ``uint8`` (each value rounded to the nearest of the 256
    levels, like the decoded frames themselves): torch's kernel for it was 13x faster than on float
    (64 frames, 320x240 to 171x128, one thread).
    Random draws, in this order: crop top, crop left, flip, from ``generator`` or torch's global
    generator.

    Args:
        resize: shorter side, ``(H, W)``, or ``None`` to keep the frames' size.
        crop_size: crop side, ``(H, W)``, or ``None`` for no crop.
        train: random crop and flip (``True``) or centre crop and no flip.
        flip: flip horizontally with probability 0.5 (training only).
        grayscale: one luma channel instead of RGB.

    Shape:
        input ``(T, C, H, W)``, ``uint8`` or float in [0, 1], ``C`` 3 (or 1); output ``float32 (T, C', H',
        W')`` in [0, 1] with ``C'`` 1 when ``grayscale`` else ``C``.
    """

    def __init__(
        self,
        *,
        resize: int | tuple[int, int] | None = None,
        crop_size: int | tuple[int, int] | None = None,
        train: bool = False,
        flip: bool = False,
        grayscale: bool = False,
    ) -> None:
        self.resize = _check_size("resize", resize)
        crop = _check_size("crop_size", crop_size)
        self.crop_size = (crop, crop) if isinstance(crop, int) else crop
        if isinstance(self.resize, tuple) and self.crop_size is not None:
            if self.crop_size[0] > self.resize[0] or self.crop_size[1] > self.resize[1]:
                raise ValueError(
                    f"crop_size {self.crop_size} does not fit in the resized frames {self.resize} (H, W)"
                )
        self.train, self.flip, self.grayscale = train, flip, grayscale

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        if self.resize is None:
            return height, width
        if isinstance(self.resize, tuple):
            return self.resize
        if height <= width:
            return self.resize, max(1, round(width * self.resize / height))
        return max(1, round(height * self.resize / width)), self.resize

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if clip.dim() != 4 or clip.shape[1] not in (1, 3):
            raise ValueError(
                f"ClipTransform expects a clip (T, C, H, W) with C 1 or 3, got {tuple(clip.shape)}"
            )
        x = clip
        size = self._resized_size(x.shape[-2], x.shape[-1])
        if size != tuple(x.shape[-2:]):
            if x.dtype == torch.uint8:
                # the fast uint8 kernel wants channels-last; decoded (T, H, W, 3) frames permuted already are
                x = x.contiguous(memory_format=torch.channels_last)
            else:
                x = x.to(torch.float32)
            # antialias: without it, shrinking 320x240 to 128 skips pixels and aliases fine texture
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        if self.crop_size is not None:
            (height, width), (crop_h, crop_w) = x.shape[-2:], self.crop_size
            if crop_h > height or crop_w > width:
                raise ValueError(
                    f"crop_size {self.crop_size} is larger than the (resized) frames {(height, width)} (H, W)"
                )
            if self.train:
                top = int(torch.randint(height - crop_h + 1, (1,), generator=generator).item())
                left = int(torch.randint(width - crop_w + 1, (1,), generator=generator).item())
            else:
                top, left = (height - crop_h) // 2, (width - crop_w) // 2
            x = x[..., top : top + crop_h, left : left + crop_w]
        if self.train and self.flip and torch.rand((), generator=generator).item() < 0.5:
            x = x.flip(-1)
        # to float only now, on the (smaller) cropped frames
        x = x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)
        if self.grayscale and x.shape[1] == 3:
            luma = x.new_tensor(_LUMA).view(1, 3, 1, 1)
            x = (x * luma).sum(dim=1, keepdim=True)  # (T, 1, H', W')
        return x.contiguous()


# --------------------------------------------------------------------------------------------------
# Reading frames: video files through PyAV, frame folders through Pillow
# --------------------------------------------------------------------------------------------------


class _BadVideoError(ValueError):
    """A video that cannot be used: not decodable, no frames, or too short under ``"reject"``. The
    one-argument constructor keeps it re-raisable by DataLoader workers (they rebuild it from its
    message)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def _natural_key(name: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    # Digit runs compare as numbers (frame_2 < frame_10); the tag keeps ints and strs apart.
    # isdecimal, not isdigit: int() refuses digits such as superscripts that isdigit accepts
    parts = tuple((0, int(p)) if p.isdecimal() else (1, p.lower()) for p in re.split(r"(\d+)", name) if p)
    return parts, name


def _frame_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower().lstrip(".") in FRAME_EXTENSIONS and p.is_file()
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))  # decodes the whole file, so truncation shows here
    except _IMAGE_ERRORS as exc:
        raise _BadVideoError(f"{path}: cannot decode the frame image ({exc})", path) from exc


def _video_frame_hint(path: Path) -> int:
    """The container's frame count, else the count of the video stream's packets (cheap: no decoding).
    Either may be wrong; callers correct it when decoding ends early."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise _BadVideoError(f"{path}: no video stream in the file", path)
            stream = container.streams.video[0]
            if stream.frames > 0:
                return int(stream.frames)
            # Matroska/WebM headers carry no frame count; a packet holds at most one shown frame for
            # the common codecs, so this overestimates at worst (VP8 hidden frames).
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except av.FFmpegError as exc:
        raise _BadVideoError(f"{path}: cannot open the video ({exc})", path) from exc


def _decode_video(path: Path, wanted: Sequence[int]) -> tuple[dict[int, np.ndarray], int]:
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
                raise _BadVideoError(f"{path}: no video stream in the file", path)
            for frame in container.decode(container.streams.video[0]):
                # converting (and copying) a frame adds ~15% to its decoding: only the kept ones
                if count in keep:
                    frames[count] = reformatter.reformat(frame, format="rgb24").to_ndarray()
                count += 1
                if count > last:
                    break
    except av.FFmpegError as exc:
        raise _BadVideoError(f"{path}: cannot decode the video ({exc})", path) from exc
    if count == 0:
        raise _BadVideoError(f"{path}: no frame could be decoded from the video", path)
    return frames, count


def _stack(path: Path, frames: Sequence[np.ndarray]) -> np.ndarray:
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise _BadVideoError(f"{path}: frames of different sizes {sorted(shapes)}", path)
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
        return len(_frame_files(path))
    if not exact:
        hint = _video_frame_hint(path)
        if hint > 0:
            return hint
    _, count = _decode_video(path, [2**62])  # an index past any end: decode everything, keep nothing
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
        files = _frame_files(path)
        if max(indices) >= len(files):
            raise ValueError(f"{path}: frame {max(indices)} requested, the folder holds {len(files)} frames")
        images = {i: _read_image(files[i]) for i in set(indices)}
    else:
        images, count = _decode_video(path, indices)
        if max(indices) >= count:
            raise ValueError(f"{path}: frame {max(indices)} requested, the video has {count} frames")
    return _stack(path, [images[i] for i in indices])


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


class VideoClips(Dataset[tuple[Tensor, Tensor]]):
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
            epoch never stops; bad videos are remembered and not decoded again in this process.

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
        _check_positive(num_frames=num_frames, frame_stride=frame_stride, test_clips=test_clips)
        _check_choice("short_clips", short_clips, ("pad", "loop", "reject"))
        _check_choice("on_corrupt", on_corrupt, ("raise", "skip"))
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
        self._bad: set[Path] = set()  # videos found unusable by this process ("skip" mode)

    @property
    def skipped(self) -> int:
        """Videos this process found unusable and skipped (``on_corrupt="skip"``); each counts once.
        DataLoader workers keep their own count."""
        return len(self._bad)

    def __len__(self) -> int:
        return len(self.samples)

    def _length(self, path: Path) -> int:
        if path not in self._lengths:
            if path.is_dir():
                self._frame_lists[path] = _frame_files(path)
                self._lengths[path] = len(self._frame_lists[path])
            else:
                self._lengths[path] = _video_frame_hint(path)
            if self._lengths[path] == 0:
                kind = "frame images" if path.is_dir() else "frames"
                raise _BadVideoError(f"{path}: the video holds no {kind}", path)
        return self._lengths[path]

    def _clip_indices(self, path: Path, length: int) -> list[list[int]]:
        span = clip_span(self.num_frames, self.frame_stride)
        if length < span and self.short_clips == "reject":
            raise _BadVideoError(
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
                images = {index: _read_image(files[index]) for index in set(flat)}
            else:
                images, decoded = _decode_video(path, flat)
                if decoded <= max(flat):
                    # The container overstated the length: keep the true one and draw the clip again.
                    logger.debug("%s: %d frames, not %d as its header says", path, decoded, length)
                    self._lengths[path] = decoded
                    continue
            return _stack(path, [images[index] for index in flat])

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
        if self.on_corrupt == "raise":
            try:
                return self._item(self.samples[index])
            except _BadVideoError as exc:
                raise _BadVideoError(
                    f"{exc}; `on_corrupt: skip` in the data config skips such videos"
                ) from exc
        # "skip": try index, index + 1, ... so the replacement depends only on which videos are bad.
        for offset in range(n):
            candidate = (index + offset) % n
            sample = self.samples[candidate]
            if sample.path in self._bad:
                continue
            try:
                return self._item(sample)
            except _BadVideoError as exc:
                self._bad.add(sample.path)
                logger.warning(
                    "%s; video skipped, %d unusable video(s) met so far in this process", exc, len(self._bad)
                )
        raise RuntimeError(f"every one of the {n} videos is unusable (corrupt, empty or rejected as short)")


# --------------------------------------------------------------------------------------------------
# Layouts: class-per-folder
# --------------------------------------------------------------------------------------------------


def _check_root(root: Path, what: str) -> None:
    if not root.exists():
        raise FileNotFoundError(f"{what} root folder not found: {root}")
    if not root.is_dir():
        raise ValueError(f"{root}: expected the {what} root folder, got a file")


def _videos_in(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Video files (by extension) and frame folders (subfolders) of ``folder``, hidden entries and
    other files left out, in natural order."""
    found = [
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(".")
        and (entry.is_dir() or (entry.is_file() and entry.suffix.lower().lstrip(".") in extensions))
    ]
    return sorted(found, key=lambda p: _natural_key(p.name))


def scan_class_folders(
    root: str | Path,
    *,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    class_names: Sequence[str] | None = None,
) -> tuple[list[VideoSample], list[str]]:
    """List ``root/<class>/<video>``: every subfolder of ``root`` is a class, every video file (by
    extension) or subfolder (a frame folder) in it a video. Hidden entries and other files are ignored.

    Args:
        root: the folder of class folders.
        extensions: video file extensions.
        class_names: the label order to use (another split's classes); a class folder not in it is an
            error. ``None``: the class folders sorted by name.

    Returns:
        ``(samples, class_names)``; samples by class, then in natural order of names.
    """
    root = Path(root)
    exts = _check_extensions(extensions)
    _check_root(root, "video")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no class folder; expected <root>/<class>/<video file or frame folder>")
    names = [p.name for p in folders] if class_names is None else list(class_names)
    samples: list[VideoSample] = []
    for folder in folders:
        if folder.name not in names:
            raise ValueError(f"{folder}: class '{folder.name}' is not one of the training classes {names}")
        videos = _videos_in(folder, exts)
        if not videos:
            raise ValueError(
                f"{folder}: empty class folder; expected video files ({', '.join(exts)}) or frame folders"
            )
        samples.extend(VideoSample(video, names.index(folder.name)) for video in videos)
    samples.sort(key=lambda s: s.label)  # stable: natural order within a class
    return samples, names


def _held_out(n: int, fraction: float) -> int:
    return 0 if fraction == 0 else max(1, round(n * fraction))


def _split_by_class(
    samples: list[VideoSample], fractions: Sequence[float], seed: int, names: list[str], where: Path
) -> list[list[VideoSample]]:
    """Hold out ``fractions`` of every class (at least one video each when a fraction is > 0), drawn
    with ``numpy.random.default_rng(seed)``; the rest is returned last."""
    rng = np.random.default_rng(seed)
    parts: list[list[VideoSample]] = [[] for _ in range(len(fractions) + 1)]
    for label, name in enumerate(names):
        videos = [s for s in samples if s.label == label]
        counts = [_held_out(len(videos), f) for f in fractions]
        if sum(counts) >= len(videos):
            raise ValueError(
                f"{where}: class '{name}' has {len(videos)} videos; holding out {counts} of them "
                f"(fractions {list(fractions)}) leaves none for training"
            )
        order = rng.permutation(len(videos))
        first = 0
        for part, count in zip(parts, [*counts, len(videos) - sum(counts)]):
            part.extend(videos[i] for i in sorted(order[first : first + count]))
            first += count
    return parts


def read_folder_splits(
    root: str | Path,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> VideoSplits:
    """Class-per-folder videos, ``root/<class>/<video>`` (see :func:`scan_class_folders`).

    When ``root/train`` and ``root/test`` exist they are the sets (each a class-per-folder tree; the
    classes are those of ``train``), with ``root/val`` the validation set if present. Otherwise every
    class of ``root`` is split: ``test_fraction`` and ``val_fraction`` of its videos (rounded, at
    least one each when the fraction is > 0) are held out, drawn with ``seed``; the same files and
    seed give the same split. Without ``root/val``, ``val_fraction`` of each training class is held
    out likewise; ``val_fraction=0`` validates on the test set.
    """
    root = Path(root)
    _check_fraction("val_fraction", val_fraction, zero_ok=True)
    _check_root(root, "video")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, names = scan_class_folders(root / "train", extensions=extensions)
        test, _ = scan_class_folders(root / "test", extensions=extensions, class_names=names)
        if (root / "val").is_dir():
            val, _ = scan_class_folders(root / "val", extensions=extensions, class_names=names)
        elif val_fraction > 0:
            val, train = _split_by_class(train, [val_fraction], seed, names, root / "train")
        else:
            val = test
        return VideoSplits(train, val, test, names)
    _check_fraction("test_fraction", test_fraction, zero_ok=False)
    samples, names = scan_class_folders(root, extensions=extensions)
    test, val, train = _split_by_class(samples, [test_fraction, val_fraction], seed, names, root)
    return VideoSplits(train, val if val_fraction > 0 else test, test, names)


# --------------------------------------------------------------------------------------------------
# Layouts: UCF101 and HMDB51 split files
# --------------------------------------------------------------------------------------------------


def _split_lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of the non-blank lines (CRLF and a BOM tolerated)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {what} is not UTF-8 text ({exc})") from exc
    return [(number, line.split()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _listed_video(root: Path, relative: str, where: str) -> Path:
    """``root/relative``, or the frame folder named like it without the extension."""
    path = root / relative
    if path.is_file():
        return path
    folder = path.with_suffix("")
    if folder.is_dir():
        return folder
    raise FileNotFoundError(f"{where}: listed video {path} not found (nor a frame folder {folder})")


def _check_split(split: int) -> None:
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split!r}")


def _read_ucf101_classes(path: Path) -> list[str]:
    names: list[str] = []
    for number, fields in _split_lines(path, "UCF101 class index (classInd.txt)"):
        where = f"{path}:{number}"
        if len(fields) != 2 or not (fields[0].isascii() and fields[0].isdigit()):
            raise ValueError(
                f"{where}: expected '<index> <ClassName>' (e.g. '1 ApplyEyeMakeup'), got {fields}"
            )
        if int(fields[0]) != len(names) + 1:
            raise ValueError(
                f"{where}: expected class index {len(names) + 1} (1-based, in order), got {fields[0]}"
            )
        if fields[1] in names:
            raise ValueError(f"{where}: class '{fields[1]}' listed twice")
        names.append(fields[1])
    if not names:
        raise ValueError(f"{path}: no class listed")
    return names


def _read_ucf101_list(
    path: Path, root: Path, names: list[str], index_file: Path, *, labelled: bool
) -> list[tuple[VideoSample, int]]:
    """(sample, group) of each line of a trainlist (``<Class>/<file> <label>``) or testlist (``<Class>/<file>``)."""
    entries: list[tuple[VideoSample, int]] = []
    for number, fields in _split_lines(path, "UCF101 split list"):
        where = f"{path}:{number}"
        # A testlist line may carry a label too (some copies add one); it is checked like a trainlist's.
        if len(fields) not in ((2,) if labelled else (1, 2)):
            expected = "<Class>/v_<Class>_gXX_cYY.avi" + (" <label>" if labelled else "")
            raise ValueError(f"{where}: expected '{expected}', got {fields}")
        parts = fields[0].split("/")
        if len(parts) != 2:
            raise ValueError(f"{where}: expected a path '<Class>/<file>', got '{fields[0]}'")
        class_name, file_name = parts
        if class_name not in names:
            raise ValueError(f"{where}: class '{class_name}' is not in {index_file}")
        label = names.index(class_name)
        if len(fields) == 2:
            if not (fields[1].isascii() and fields[1].isdigit()) or int(fields[1]) != label + 1:
                raise ValueError(
                    f"{where}: label '{fields[1]}' disagrees with {index_file}, which gives '{class_name}' "
                    f"label {label + 1}"
                )
        match = _UCF101_NAME.fullmatch(file_name)
        # Compared without letter case: UCF101's HandstandPushups folder holds v_HandStandPushups_* files.
        if match is None or match.group(1).lower() != class_name.lower():
            raise ValueError(f"{where}: expected a file name v_{class_name}_gXX_cYY.<ext>, got '{file_name}'")
        entries.append((VideoSample(_listed_video(root, fields[0], where), label), int(match.group(2))))
    if not entries:
        raise ValueError(f"{path}: no video listed")
    return entries


def _check_every_class(samples: list[VideoSample], names: list[str], where: Path) -> None:
    present = {s.label for s in samples}
    missing = [name for label, name in enumerate(names) if label not in present]
    if missing:
        raise ValueError(f"{where}: no training video of classes {missing}")


def read_ucf101_splits(
    root: str | Path,
    *,
    split: int = 1,
    splits_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> VideoSplits:
    """UCF101 (Soomro, Zamir & Shah, 2012) with its official split files.

    Videos are ``root/<Class>/v_<Class>_gXX_cYY.avi`` (or frame folders named without ``.avi``). The
    split files, in ``splits_dir`` (default: ``root/ucfTrainTestlist`` if it exists, else ``root``):
    ``classInd.txt`` (``1 ApplyEyeMakeup``: 1-based index and name, which give label and order),
    ``trainlist0<split>.txt`` (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``) and
    ``testlist0<split>.txt`` (the path only; the class is the folder's).

    Validation holds out whole groups ``gXX`` of the training list (a group is the clips cut from one
    recording: same actors and scene, so clips of a group must not be on both sides):
    ``round(val_fraction * groups)`` of its groups (at least one), drawn with ``seed``, across all
    classes. ``val_fraction=0`` validates on the test set.
    """
    root = Path(root)
    _check_split(split)
    _check_fraction("val_fraction", val_fraction, zero_ok=True)
    _check_root(root, "UCF101")
    if splits_dir is None:
        lists = root / "ucfTrainTestlist" if (root / "ucfTrainTestlist").is_dir() else root
    else:
        lists = Path(splits_dir)
    index_file = lists / "classInd.txt"
    names = _read_ucf101_classes(index_file)
    train_list = lists / f"trainlist0{split}.txt"
    train = _read_ucf101_list(train_list, root, names, index_file, labelled=True)
    test = [
        s
        for s, _ in _read_ucf101_list(
            lists / f"testlist0{split}.txt", root, names, index_file, labelled=False
        )
    ]
    _check_every_class([s for s, _ in train], names, train_list)
    if val_fraction == 0:
        return VideoSplits([s for s, _ in train], test, test, names)
    groups = sorted({group for _, group in train})
    count = _held_out(len(groups), val_fraction)
    if count >= len(groups):
        raise ValueError(
            f"{train_list}: {len(groups)} groups; val_fraction={val_fraction} would hold out {count} of them "
            "and leave none for training"
        )
    held = set(np.random.default_rng(seed).choice(groups, size=count, replace=False).tolist())
    logger.info("UCF101 split %d: groups %s held out of training for validation", split, sorted(held))
    val = [s for s, group in train if group in held]
    return VideoSplits([s for s, group in train if group not in held], val, test, names)


def read_hmdb51_splits(
    root: str | Path,
    *,
    split: int = 1,
    splits_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> VideoSplits:
    """HMDB51 (Kuehne et al., 2011) with its official split files.

    Videos are ``root/<class>/<name>.avi`` (or frame folders named without ``.avi``). The split files,
    in ``splits_dir`` (default: ``root/testTrainMulti_7030_splits`` if it exists, else ``root``), are
    ``<class>_test_split<split>.txt``, one per class, lines ``<name>.avi <marker>`` with marker ``1``
    (training), ``2`` (test) or ``0`` (unused in this split). The classes are those with a split file,
    sorted by name.

    Validation holds out ``val_fraction`` of each class's training videos (at least one), drawn with
    ``seed``; ``val_fraction=0`` validates on the test set.
    """
    root = Path(root)
    _check_split(split)
    _check_fraction("val_fraction", val_fraction, zero_ok=True)
    _check_root(root, "HMDB51")
    if splits_dir is None:
        default = root / "testTrainMulti_7030_splits"
        lists = default if default.is_dir() else root
    else:
        lists = Path(splits_dir)
    if not lists.is_dir():
        raise FileNotFoundError(f"HMDB51 split folder not found: {lists}")
    files: dict[str, Path] = {}
    for path in lists.iterdir():
        match = _HMDB51_SPLIT_FILE.fullmatch(path.name)
        if match is not None and int(match.group(2)) == split:
            files[match.group(1)] = path
    if not files:
        raise FileNotFoundError(f"{lists}: no HMDB51 split file <class>_test_split{split}.txt")
    names = sorted(files)
    train: list[VideoSample] = []
    test: list[VideoSample] = []
    for label, name in enumerate(names):
        for number, fields in _split_lines(files[name], "HMDB51 split file"):
            where = f"{files[name]}:{number}"
            if len(fields) != 2:
                raise ValueError(f"{where}: expected '<video name>.avi <0|1|2>', got {fields}")
            if fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{where}: marker '{fields[1]}' is not 0 (unused), 1 (training) or 2 (test)")
            if fields[1] == "0":
                continue
            sample = VideoSample(_listed_video(root / name, fields[0], where), label)
            (train if fields[1] == "1" else test).append(sample)
    _check_every_class(train, names, lists)
    if val_fraction == 0:
        return VideoSplits(train, test, test, names)
    val, train = _split_by_class(train, [val_fraction], seed, names, lists)
    return VideoSplits(train, val, test, names)


# --------------------------------------------------------------------------------------------------
# Layouts: KTH videos
# --------------------------------------------------------------------------------------------------


def read_kth_video_splits(
    root: str | Path,
    *,
    train_persons: Sequence[int] = KTH_TRAIN_PERSONS,
    val_persons: Sequence[int] | None = None,
    test_persons: Sequence[int] = KTH_TEST_PERSONS,
    val_fraction: float = 0.1,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> VideoSplits:
    """The original KTH Actions videos, ``root/<action>/person<NN>_<action>_d<1-4>_uncomp.avi``.

    Every action of :data:`~lstmvision.data.KTH_ACTIONS` needs its folder; the label is the action's
    index there. A video may also be a frame folder named like the file without extension, and
    ``_uncomp`` may be missing. Files with other extensions and hidden entries are ignored; any other
    name is an error.

    Persons: training ``train_persons`` minus ``val_persons``, validation ``val_persons``, test
    ``test_persons``. ``val_persons=None`` takes the ``round(val_fraction * len(train_persons))``
    highest-numbered training persons (15 and 16 by default); an empty ``val_persons`` (or
    ``val_fraction=0`` with ``None``) validates on the test set. Test persons must not be training or
    validation persons.
    """
    root = Path(root)
    exts = _check_extensions(extensions)
    _check_fraction("val_fraction", val_fraction, zero_ok=True)
    train_set = _check_persons(train_persons, "train_persons")
    test_set = _check_persons(test_persons, "test_persons")
    if val_persons is None:
        val_set = train_set[len(train_set) - _held_out(len(train_set), val_fraction) :]
    else:
        val_set = _check_persons(val_persons, "val_persons")
    train_set = tuple(p for p in train_set if p not in val_set)
    if not train_set or not test_set:
        raise ValueError(
            f"KTH: no training persons left ({list(train_set)}) or no test persons ({list(test_set)})"
        )
    shared = sorted(set(test_set) & (set(train_set) | set(val_set)))
    if shared:
        raise ValueError(f"KTH: persons {shared} are both test and training/validation persons")
    _check_root(root, "KTH")
    sets: dict[str, list[VideoSample]] = {"train": [], "val": [], "test": []}
    which = {p: "train" for p in train_set} | {p: "val" for p in val_set} | {p: "test" for p in test_set}
    for label, action in enumerate(KTH_ACTIONS):
        folder = root / action
        if not folder.is_dir():
            raise FileNotFoundError(f"{root}: action folder '{action}' not found (expected {folder})")
        for video in _videos_in(folder, exts):
            name = video.name if video.is_dir() else video.stem
            match = _KTH_VIDEO_NAME.fullmatch(name)
            if match is None or match.group(2) != action:
                raise ValueError(
                    f"{video}: expected a KTH video named person<NN>_{action}_d<1-4>_uncomp.<ext> "
                    "(or a frame folder named so, without extension)"
                )
            person = int(match.group(1))
            if not 1 <= person <= 25:
                raise ValueError(f"{video}: person {person:02d} is outside the KTH persons 01-25")
            if person in which:
                sets[which[person]].append(VideoSample(video, label))
    for key, persons in (("train", train_set), ("test", test_set), ("val", val_set)):
        if persons and not sets[key]:
            raise ValueError(f"{root}: no KTH video of the {key} persons {list(persons)}")
    val = sets["val"] if val_set else sets["test"]
    return VideoSplits(sets["train"], val, sets["test"], list(KTH_ACTIONS))


# --------------------------------------------------------------------------------------------------
# LightningDataModule
# --------------------------------------------------------------------------------------------------


class VideoDataModule(SetsDataModule):
    """Video classification data from video files or frame folders in one of four layouts.

    ``layout`` picks the reader: ``"folders"`` (:func:`read_folder_splits`), ``"ucf101"``
    (:func:`read_ucf101_splits`), ``"hmdb51"`` (:func:`read_hmdb51_splits`) or ``"kth"``
    (:func:`read_kth_video_splits`). The layout is scanned and checked once, by ``setup()`` or by the
    first use of :attr:`class_names` / :attr:`num_classes`; no video is decoded then.

    Training draws a random clip of every video each epoch, with a random crop and flip; validation and
    test take ``test_clips`` uniformly spaced clips with a centre crop (see :class:`VideoClips`).
    ``predict_dataloader`` serves the test set.

    Args:
        root: the data set's root folder.
        layout: how videos, classes and splits are laid out.
        split: the official split (1-3) of UCF101 and HMDB51.
        splits_dir: folder of the UCF101 / HMDB51 split files (default: see the readers).
        num_frames, frame_stride: frames per clip and their distance in the video.
        resize, crop_size, flip, grayscale: see :class:`ClipTransform`.
        short_clips: ``"pad"``, ``"loop"`` or ``"reject"`` videos shorter than the clip span.
        test_clips: clips per validation / test video; batches gain an axis K when > 1.
        val_fraction: videos (folders, HMDB51), groups (UCF101) or persons (KTH, when ``val_persons``
            is ``None``) held out of training for validation; 0 validates on the test set. Unused when
            ``root/val`` exists (folders layout).
        test_fraction: videos of each class held out for testing (folders layout without
            ``root/train`` and ``root/test``).
        train_persons, val_persons, test_persons: KTH persons (``layout="kth"`` only); ``None`` uses
            the defaults of :func:`read_kth_video_splits`.
        batch_size, num_workers: DataLoader settings (workers stay alive between epochs).
        on_corrupt: ``"raise"`` on a video that cannot be decoded, or ``"skip"`` it (see
            :class:`VideoClips`).
        seed: seed of the held-out validation / test draws (not of the clip sampling, which follows
            torch's global generator: use ``seed_everything``).
        extensions: video file extensions (folders and KTH layouts).

    Batches are ``(clips, labels)``: ``float32 (B, T, C, H, W)`` in [0, 1] (``(B, K, T, C, H, W)`` for
    validation and test with ``test_clips = K > 1``) and ``int64 (B,)``.
    """

    def __init__(
        self,
        root: str,
        *,
        layout: Layout = "folders",
        split: int = 1,
        splits_dir: str | None = None,
        num_frames: int = 16,
        frame_stride: int = 1,
        resize: int | tuple[int, int] | None = 128,
        crop_size: int | tuple[int, int] | None = 112,
        flip: bool = True,
        grayscale: bool = False,
        short_clips: ShortClips = "pad",
        test_clips: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        train_persons: Sequence[int] | None = None,
        val_persons: Sequence[int] | None = None,
        test_persons: Sequence[int] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        on_corrupt: OnCorrupt = "raise",
        seed: int = 0,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
    ) -> None:
        super().__init__()
        _check_choice("layout", layout, ("folders", "ucf101", "hmdb51", "kth"))
        _check_positive(
            num_frames=num_frames, frame_stride=frame_stride, test_clips=test_clips, batch_size=batch_size
        )
        _check_choice("short_clips", short_clips, ("pad", "loop", "reject"))
        _check_choice("on_corrupt", on_corrupt, ("raise", "skip"))
        _check_fraction("val_fraction", val_fraction, zero_ok=True)
        _check_fraction("test_fraction", test_fraction, zero_ok=False)
        check_loader_args("VideoDataModule", num_workers=num_workers, seed=seed)
        if layout in ("ucf101", "hmdb51"):
            _check_split(split)
        elif split != 1 or splits_dir is not None:
            raise ValueError(
                f"VideoDataModule: split and splits_dir apply to layouts ucf101 and hmdb51, not {layout!r}"
            )
        given = [
            n
            for n, p in (
                ("train_persons", train_persons),
                ("val_persons", val_persons),
                ("test_persons", test_persons),
            )
            if p is not None
        ]
        if given and layout != "kth":
            raise ValueError(f"VideoDataModule: {', '.join(given)} apply to layout 'kth', not {layout!r}")
        self.save_hyperparameters()
        self.root = Path(root)
        self.layout: Layout = layout
        self.split, self.splits_dir = split, splits_dir
        self.persons = (train_persons, val_persons, test_persons)
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.extensions = _check_extensions(extensions)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.clip_options: dict[str, Any] = {
            "num_frames": num_frames,
            "frame_stride": frame_stride,
            "resize": _check_size("resize", resize),
            "crop_size": _check_size("crop_size", crop_size),
            "flip": flip,
            "grayscale": grayscale,
            "short_clips": short_clips,
            "on_corrupt": on_corrupt,
        }
        self.test_clips = test_clips
        ClipTransform(resize=resize, crop_size=crop_size)  # checks that the crop fits an exact resize
        self.splits: VideoSplits | None = None

    def _read_splits(self) -> VideoSplits:
        if self.layout == "folders":
            return read_folder_splits(
                self.root,
                val_fraction=self.val_fraction,
                test_fraction=self.test_fraction,
                seed=self.seed,
                extensions=self.extensions,
            )
        if self.layout in ("ucf101", "hmdb51"):
            read = read_ucf101_splits if self.layout == "ucf101" else read_hmdb51_splits
            return read(
                self.root,
                split=self.split,
                splits_dir=self.splits_dir,
                val_fraction=self.val_fraction,
                seed=self.seed,
            )
        train_persons, val_persons, test_persons = self.persons
        return read_kth_video_splits(
            self.root,
            train_persons=KTH_TRAIN_PERSONS if train_persons is None else train_persons,
            val_persons=val_persons,
            test_persons=KTH_TEST_PERSONS if test_persons is None else test_persons,
            val_fraction=self.val_fraction,
            extensions=self.extensions,
        )

    def _scan(self) -> VideoSplits:
        if self.splits is None:
            splits = self._read_splits()
            shared = " (the test videos)" if splits.val is splits.test else ""
            logger.info(
                "%s (%s layout): %d classes; %d training, %d validation%s and %d test videos",
                self.root,
                self.layout,
                len(splits.class_names),
                len(splits.train),
                len(splits.val),
                shared,
                len(splits.test),
            )
            self.splits = splits
        return self.splits

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (scans the layout on first use)."""
        return list(self._scan().class_names)

    @property
    def num_classes(self) -> int:
        return len(self._scan().class_names)

    def setup(self, stage: str | None = None) -> None:
        """Scan and check the layout, then build the sets ``stage`` needs (all three when ``None``)."""
        splits = self._scan()
        for which in sets_for_stage("VideoDataModule", stage):
            if which not in self.datasets:
                self.datasets[which] = VideoClips(
                    getattr(splits, which),
                    train=which == "train",
                    test_clips=1 if which == "train" else self.test_clips,
                    **self.clip_options,
                )
