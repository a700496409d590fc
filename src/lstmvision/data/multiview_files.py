"""Multi-view recognition data from files: OuluVS2 recordings, light-field face sequences and per-view
features in HDF5.

:class:`MultiViewVideoDataModule` reads two layouts of synchronised views of one recording:

- ``layout="ouluvs2"``: OuluVS2 (Anina et al., FG 2015), ``<root>/<speaker>/<view>/<utterance>``, each
  leaf a video file or a frame folder; a sample is a (speaker, utterance) pair seen from every chosen
  view, labelled by its phrase (u31-u60), digit sequence (u1-u30) or a mapping the user gives;
- ``layout="lightfield"``: ``<root>/<subject>/<sample>/{horizontal,vertical}/``, two folders of
  sub-aperture images read as two perspectives of a sequence (the MP-LSTM paper's light-field faces),
  labelled by subject.

Frames are decoded by :func:`lstmvision.data.video.read_frames` and transformed by
:class:`lstmvision.data.video.ClipTransform` (the same resize and grayscale for every view), in
``__getitem__``, so in DataLoader workers. Every view of a sample is read at the same frame indices.

:class:`MultiViewFeaturesDataModule` reads pre-extracted per-view feature sequences from one HDF5 file.

docs/multiview_data.md describes the formats, the options and every error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmvision.data._common import SetsDataModule, check_loader_args, sets_for_stage
from lstmvision.data.video import (
    FRAME_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ClipTransform,
    clip_indices,
    count_frames,
    random_start,
    read_frames,
    uniform_starts,
)

__all__ = [
    "LIGHTFIELD_VIEWS",
    "OULUVS2_DIGIT_SEQUENCES",
    "OULUVS2_PHRASES",
    "OULUVS2_VIEW_ANGLES",
    "MultiViewClips",
    "MultiViewFeatures",
    "MultiViewFeaturesDataModule",
    "MultiViewSample",
    "MultiViewVideoDataModule",
    "ouluvs2_utterance_classes",
]

logger = logging.getLogger(__name__)

OULUVS2_PHRASES: tuple[str, ...] = (
    "Excuse me",
    "Goodbye",
    "Hello",
    "How are you",
    "Nice to meet you",
    "See you",
    "I am sorry",
    "Thank you",
    "Have a good time",
    "You are welcome",
)
"""The ten OuluVS2 phrases; utterances ``u31 + 3k .. u33 + 3k`` are phrase ``k`` (see the docs' source)."""
OULUVS2_DIGIT_SEQUENCES: tuple[str, ...] = (
    "1 7 3 5 1 6 2 6 6 7",
    "4 0 2 9 1 8 5 9 0 4",
    "1 9 0 7 8 8 0 3 2 8",
    "4 9 1 2 1 1 8 5 5 1",
    "8 6 3 5 4 0 2 1 1 2",
    "2 3 9 0 0 1 6 7 6 4",
    "5 2 7 1 6 1 3 6 7 0",
    "9 7 4 4 4 3 5 5 8 7",
    "6 3 8 5 3 9 8 5 6 5",
    "7 3 2 4 0 1 9 9 5 0",
)
"""The ten OuluVS2 digit sequences; utterances ``u1 + 3k .. u3 + 3k`` are sequence ``k``."""
OULUVS2_VIEW_ANGLES: dict[str, int] = {"1": 0, "2": 30, "3": 45, "4": 60, "5": 90}
"""OuluVS2 view number -> camera angle in degrees (0 is frontal, 90 the profile)."""
LIGHTFIELD_VIEWS: tuple[str, ...] = ("horizontal", "vertical")
"""The two perspectives of a light-field sample, in their default order."""

Layout = Literal["ouluvs2", "lightfield"]
Task = Literal["phrases", "digits", "custom"]
Sampling = Literal["window", "resample"]
ShortClips = Literal["pad", "loop", "reject"]
OnCorrupt = Literal["raise", "skip"]
OnMissingView = Literal["raise", "skip"]

_OULU_SPEAKER = re.compile(r"s?([0-9]+)", re.ASCII)
_OULU_VIEW = re.compile(r"v?([0-9]+)", re.ASCII)
_OULU_LEAF = re.compile(r"(?:s([0-9]+)_v([0-9]+)_)?u?([0-9]+)", re.ASCII)
_SPLITS = ("train", "val", "test")


class MultiViewSample(NamedTuple):
    """One sample: a video file or frame folder per view (in view order), its label, its group (the
    speaker or subject: no group is in two sets) and a name for messages."""

    name: str
    paths: tuple[Path, ...]
    label: int
    group: str


class _BadSampleError(ValueError):
    """A sample that cannot be used (a view not decodable, empty or too short under ``"reject"``); one
    argument, so DataLoader workers can re-raise it."""


_Item = TypeVar("_Item")


def _usable_item(index: int, n: int, on_corrupt: str, bad: set[int], item: Callable[[int], _Item]) -> _Item:
    """``item(index)``; with ``on_corrupt="skip"`` an unusable sample is reported once (a warning naming
    it), remembered in ``bad`` and replaced by the next usable one."""
    if not -n <= index < n:
        raise IndexError(f"sample index {index} out of range for {n} samples")
    index %= n
    if on_corrupt == "raise":
        return item(index)
    for offset in range(n):
        candidate = (index + offset) % n
        if candidate in bad:
            continue
        try:
            return item(candidate)
        except _BadSampleError as exc:
            bad.add(candidate)
            logger.warning("%s; sample skipped, %d unusable sample(s) met so far", exc, len(bad))
    raise RuntimeError(f"every one of the {n} multi-view samples is unusable")


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------


def _check_positive(owner: str, **values: int | None) -> None:
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def _check_choice(owner: str, name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {list(choices)}, got {value!r}")


def _check_fractions(owner: str, val_fraction: float, test_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"{owner}: val_fraction must be in [0, 1), got {val_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"{owner}: test_fraction must be in (0, 1), got {test_fraction!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"{owner}: val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )


def _check_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        raise ValueError(f"extensions must be a list of file extensions, got the string {extensions!r}")
    cleaned = tuple(str(ext).lower().lstrip(".") for ext in extensions)
    if not cleaned or not all(ext.isalnum() for ext in cleaned):
        raise ValueError(
            f"extensions must be non-empty alphanumeric extensions like 'mp4', got {extensions!r}"
        )
    return cleaned


def _number(value: str | int, prefix: str, what: str) -> str:
    """``12``, ``"12"``, ``"012"`` or ``"<prefix>12"`` -> ``"12"``; anything else is a ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    match = re.fullmatch(rf"{prefix}?([0-9]+)", str(value), re.ASCII) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{what} must be a number or '{prefix}<number>', got {value!r}")
    return str(int(match.group(1)))


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdecimal() else (1, p) for p in re.split(r"([0-9]+)", name) if p)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: _natural(p.name),
    )


def _check_root(root: Path, what: str) -> None:
    if not root.exists():
        raise FileNotFoundError(f"{what} root folder not found: {root}")
    if not root.is_dir():
        raise ValueError(f"{root}: expected the {what} root folder, got a file")


# --------------------------------------------------------------------------------------------------
# OuluVS2 labels
# --------------------------------------------------------------------------------------------------


def ouluvs2_utterance_classes(task: Literal["phrases", "digits"] = "phrases") -> dict[str, str]:
    """Utterance number (``"31"``) -> class name: ``"phrases"`` maps u31-u60 to :data:`OULUVS2_PHRASES`
    (three consecutive utterances per phrase), ``"digits"`` u1-u30 to :data:`OULUVS2_DIGIT_SEQUENCES`."""
    if task == "phrases":
        return {str(31 + i): OULUVS2_PHRASES[i // 3] for i in range(30)}
    if task == "digits":
        return {str(1 + i): OULUVS2_DIGIT_SEQUENCES[i // 3] for i in range(30)}
    raise ValueError(f"task must be 'phrases' or 'digits', got {task!r}")


def _custom_classes(utterance_classes: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(utterance_classes, Mapping) or not utterance_classes:
        raise ValueError(
            f"utterance_classes must be a non-empty mapping utterance -> class name, got {utterance_classes!r}"
        )
    mapping: dict[str, str] = {}
    for key, name in utterance_classes.items():
        utterance = _number(key, "u", "utterance_classes: an utterance")
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"utterance_classes: the class of utterance {key!r} must be a name, got {name!r}"
            )
        if utterance in mapping:
            raise ValueError(f"utterance_classes: utterance {utterance} is given twice")
        mapping[utterance] = name
    return mapping


# --------------------------------------------------------------------------------------------------
# Splits (pure functions over groups)
# --------------------------------------------------------------------------------------------------


def _held_out(n: int, fraction: float) -> int:
    return 0 if fraction == 0 else max(1, round(n * fraction))


def _split_groups(
    groups: Sequence[str], val_fraction: float, test_fraction: float, seed: int, where: str, what: str
) -> dict[str, str]:
    """Group -> set: ``test_fraction`` and ``val_fraction`` of the groups (at least one each when the
    fraction is > 0) drawn with ``numpy.random.default_rng(seed)``, the rest training."""
    ordered = sorted(set(groups), key=_natural)
    n_test, n_val = _held_out(len(ordered), test_fraction), _held_out(len(ordered), val_fraction)
    if n_test + n_val >= len(ordered):
        raise ValueError(
            f"{where}: {len(ordered)} {what}; holding out {n_val} for validation and {n_test} for "
            "testing leaves none for training"
        )
    order = np.random.default_rng(seed).permutation(len(ordered))
    which: dict[str, str] = {}
    for rank, index in enumerate(order):
        which[ordered[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return which


def _assign(
    samples: Sequence[MultiViewSample], key_of: Any, which: Mapping[str, str]
) -> dict[str, list[MultiViewSample]]:
    sets: dict[str, list[MultiViewSample]] = {s: [] for s in _SPLITS}
    for sample in samples:
        key = key_of(sample)
        if key in which:
            sets[which[key]].append(sample)
    return sets


# --------------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------------


def _scan_ouluvs2(root: Path, extensions: tuple[str, ...]) -> dict[tuple[str, str], dict[str, Path]]:
    """(speaker, utterance) -> {view: video file or frame folder}, every name checked."""
    _check_root(root, "OuluVS2")
    speakers = _subfolders(root)
    if not speakers:
        raise ValueError(f"{root}: no speaker folder; expected <root>/<speaker>/<view>/<utterance>")
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for speaker_dir in speakers:
        match = _OULU_SPEAKER.fullmatch(speaker_dir.name)
        if match is None:
            raise ValueError(f"{speaker_dir}: expected a speaker folder named <number> or s<number>")
        speaker = str(int(match.group(1)))
        view_dirs = _subfolders(speaker_dir)
        if not view_dirs:
            raise ValueError(f"{speaker_dir}: no view folder; expected <speaker>/<view>/<utterance>")
        for view_dir in view_dirs:
            match = _OULU_VIEW.fullmatch(view_dir.name)
            if match is None:
                raise ValueError(f"{view_dir}: expected a view folder named <number> or v<number>")
            view = str(int(match.group(1)))
            leaves = [
                p
                for p in view_dir.iterdir()
                if not p.name.startswith(".")
                and (p.is_dir() or (p.is_file() and p.suffix.lower().lstrip(".") in extensions))
            ]
            if not leaves:
                raise ValueError(
                    f"{view_dir}: empty view folder; expected video files ({', '.join(extensions)}) or "
                    "frame folders"
                )
            for leaf in leaves:
                match = _OULU_LEAF.fullmatch(leaf.name if leaf.is_dir() else leaf.stem)
                if match is None:
                    raise ValueError(
                        f"{leaf}: expected an utterance named s<speaker>_v<view>_u<number>, u<number> or "
                        "<number> (a video file, or a frame folder named so)"
                    )
                named_speaker, named_view, number = match.groups()
                if named_speaker is not None and (
                    str(int(named_speaker)) != speaker or str(int(named_view)) != view
                ):
                    raise ValueError(
                        f"{leaf}: the name says speaker {int(named_speaker)} view {int(named_view)}, the "
                        f"folders say speaker {speaker} view {view}"
                    )
                views = found.setdefault((speaker, str(int(number))), {})
                if view in views:
                    raise ValueError(f"{leaf}: utterance {int(number)} of view {view} also in {views[view]}")
                views[view] = leaf
    return found


def _scan_lightfield(root: Path) -> dict[tuple[str, str], dict[str, Path]]:
    """(subject, sample) -> {perspective folder name: folder}."""
    _check_root(root, "light-field")
    subjects = _subfolders(root)
    if not subjects:
        raise ValueError(f"{root}: no subject folder; expected <root>/<subject>/<sample>/horizontal/")
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for subject_dir in subjects:
        samples = _subfolders(subject_dir)
        if not samples:
            raise ValueError(f"{subject_dir}: no sample folder; expected <subject>/<sample>/horizontal/")
        for sample_dir in samples:
            found[(subject_dir.name, sample_dir.name)] = {p.name: p for p in _subfolders(sample_dir)}
    return found


class _Splits(NamedTuple):
    sets: dict[str, list[MultiViewSample]]
    class_names: list[str]
    views: list[str]
    val_is_test: bool


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


def _resample_indices(length: int, count: int) -> list[int]:
    """``count`` indices spread uniformly over ``length`` frames: the centres of ``count`` equal parts,
    ``floor((2k + 1) * length / (2 * count))`` (frames repeat evenly when ``length < count``)."""
    return [(2 * k + 1) * length // (2 * count) for k in range(count)]


class MultiViewClips(Dataset[tuple[Tensor, Tensor]]):
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
        _check_positive("MultiViewClips", num_frames=num_frames, frame_stride=frame_stride)
        _check_choice("MultiViewClips", "short_clips", short_clips, ("pad", "loop", "reject"))
        _check_choice("MultiViewClips", "sampling", sampling, ("window", "resample"))
        _check_choice("MultiViewClips", "on_corrupt", on_corrupt, ("raise", "skip"))
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
        self._bad: set[int] = set()

    @property
    def skipped(self) -> int:
        """Samples this process found unusable and skipped (``on_corrupt="skip"``); each counts once."""
        return len(self._bad)

    def __len__(self) -> int:
        return len(self.samples)

    def _length(self, sample: MultiViewSample, view: int) -> int:
        path = sample.paths[view]
        if path not in self._lengths:
            try:
                self._lengths[path] = count_frames(path)
            except ValueError as exc:
                raise _BadSampleError(f"sample {sample.name}, view {self.view_names[view]}: {exc}") from exc
            if self._lengths[path] == 0:
                raise _BadSampleError(
                    f"sample {sample.name}, view {self.view_names[view]}: {path} holds no frames"
                )
        return self._lengths[path]

    def _window(self, sample: MultiViewSample, length: int) -> list[int]:
        span = (self.num_frames - 1) * self.frame_stride + 1
        if length < span and self.short_clips == "reject":
            raise _BadSampleError(
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
                return [_resample_indices(min(lengths), self.num_frames)] * len(lengths)
            return [_resample_indices(n, self.num_frames) for n in lengths]
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
                            raise _BadSampleError(f"{where}: {again}") from again
                        if 0 < exact < self._lengths.get(path, 0):
                            self._lengths[path] = exact
                            break
                    raise _BadSampleError(f"{where}: {exc}") from exc
            else:
                return views

    def _item(self, sample: MultiViewSample) -> tuple[Tensor, Tensor]:
        clips = []
        for frames in self._read(sample):
            clip = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, H, W, 3) -> (T, 3, H, W)
            clips.append(self.transform(clip))  # (T, C, H', W')
        shapes = {tuple(c.shape) for c in clips}
        if len(shapes) > 1:
            sizes = ", ".join(f"{n}: {tuple(c.shape[-2:])}" for n, c in zip(self.view_names, clips))
            raise _BadSampleError(
                f"sample {sample.name}: views of different frame sizes ({sizes}); give resize=[H, W]"
            )
        return torch.stack(clips), torch.tensor(sample.label, dtype=torch.int64)  # (V, T, C, H, W)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return _usable_item(
            index, len(self.samples), self.on_corrupt, self._bad, lambda i: self._item(self.samples[i])
        )


# --------------------------------------------------------------------------------------------------
# Video data module
# --------------------------------------------------------------------------------------------------


class MultiViewVideoDataModule(SetsDataModule):
    """Multi-view clips of OuluVS2 or light-field face data (see the module docstring and
    docs/multiview_data.md).

    The layout is scanned and checked once, by ``setup()`` or by the first use of :attr:`class_names`,
    :attr:`num_classes` or :attr:`view_names`; no video is decoded then.

    Args:
        root: the data set's root folder.
        layout: ``"ouluvs2"`` or ``"lightfield"``.
        views: the views to read, in this order: OuluVS2 view numbers (``[1, 3]``, ``["1", "3"]`` or
            ``["v1", "v3"]``), light-field ``"horizontal"`` / ``"vertical"``; ``None``: every view found
            (OuluVS2, by number) or both perspectives (light field).
        on_missing_view: a sample without one of the views raises (``"raise"``) or is left out with a
            warning (``"skip"``).
        task: OuluVS2 labels: ``"phrases"`` (u31-u60), ``"digits"`` (u1-u30) or ``"custom"``
            (``utterance_classes``); other utterances are left out.
        utterance_classes: utterance -> class name, with ``task="custom"`` only; classes in order of
            first appearance.
        train_speakers, val_speakers, test_speakers: OuluVS2 speakers (``1`` or ``"s1"``); ``None``:
            a seeded split of the speakers by ``val_fraction`` / ``test_fraction``.
        train_samples, val_samples, test_samples: light-field sample names (``"<sample>"`` for that
            sample of every subject, or ``"<subject>/<sample>"``); ``None``: a seeded split of each
            subject's samples.
        val_fraction, test_fraction: groups held out (speakers, or each subject's samples); a
            ``val_fraction`` of 0 (or an empty validation list) validates on the test set.
        num_frames, frame_stride, short_clips, sampling: see :class:`MultiViewClips`.
        resize, grayscale: see :class:`~lstmvision.data.video.ClipTransform`.
        batch_size, num_workers: DataLoader settings.
        on_corrupt: ``"raise"`` on a sample that cannot be decoded, or ``"skip"`` it.
        seed: seed of the held-out draws (clip sampling follows torch's global generator).
        extensions: video file extensions (OuluVS2).

    Batches are ``(clips, labels)``: ``float32 (B, V, T, C, H, W)`` in [0, 1] and ``int64 (B,)``.
    """

    def __init__(
        self,
        root: str,
        *,
        layout: Layout = "ouluvs2",
        views: Sequence[str | int] | None = None,
        on_missing_view: OnMissingView = "raise",
        task: Task = "phrases",
        utterance_classes: Mapping[str, str] | None = None,
        train_speakers: Sequence[str | int] | None = None,
        val_speakers: Sequence[str | int] | None = None,
        test_speakers: Sequence[str | int] | None = None,
        train_samples: Sequence[str] | None = None,
        val_samples: Sequence[str] | None = None,
        test_samples: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_frames: int = 16,
        frame_stride: int = 1,
        resize: int | tuple[int, int] | None = (64, 64),
        grayscale: bool = False,
        short_clips: ShortClips = "pad",
        sampling: Sampling = "window",
        batch_size: int = 8,
        num_workers: int = 0,
        on_corrupt: OnCorrupt = "raise",
        seed: int = 0,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
    ) -> None:
        super().__init__()
        owner = "MultiViewVideoDataModule"
        _check_choice(owner, "layout", layout, ("ouluvs2", "lightfield"))
        _check_choice(owner, "on_missing_view", on_missing_view, ("raise", "skip"))
        _check_choice(owner, "task", task, ("phrases", "digits", "custom"))
        _check_choice(owner, "short_clips", short_clips, ("pad", "loop", "reject"))
        _check_choice(owner, "sampling", sampling, ("window", "resample"))
        _check_choice(owner, "on_corrupt", on_corrupt, ("raise", "skip"))
        _check_positive(owner, num_frames=num_frames, frame_stride=frame_stride, batch_size=batch_size)
        _check_fractions(owner, val_fraction, test_fraction)
        check_loader_args(owner, num_workers=num_workers, seed=seed)
        if sampling == "resample" and frame_stride != 1:
            raise ValueError(f"{owner}: frame_stride applies to sampling='window', got {frame_stride}")
        speakers = (train_speakers, val_speakers, test_speakers)
        sample_lists = (train_samples, val_samples, test_samples)
        if layout == "lightfield":
            if task != "phrases" or utterance_classes is not None or any(s is not None for s in speakers):
                raise ValueError(
                    f"{owner}: task, utterance_classes and *_speakers apply to layout 'ouluvs2', not "
                    "'lightfield'"
                )
            self._explicit = self._check_lists(sample_lists, "samples", lambda name: str(name))
        else:
            if any(s is not None for s in sample_lists):
                raise ValueError(f"{owner}: *_samples apply to layout 'lightfield', not 'ouluvs2'")
            self._explicit = self._check_lists(speakers, "speakers", lambda s: _number(s, "s", "a speaker"))
        if (task == "custom") != (utterance_classes is not None):
            raise ValueError(f"{owner}: utterance_classes is required with task='custom' and only then")
        self._utterance_classes: dict[str, str] = {}
        self._class_names: list[str] = []
        if utterance_classes is not None:
            self._utterance_classes = _custom_classes(utterance_classes)
        elif layout == "ouluvs2":
            self._utterance_classes = ouluvs2_utterance_classes("digits" if task == "digits" else "phrases")
        self._views = self._check_views(views, layout)
        self.save_hyperparameters()
        self.root, self.layout = Path(root), layout
        self.on_missing_view: OnMissingView = on_missing_view
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.extensions = _check_extensions(extensions)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.clip_options: dict[str, Any] = {
            "num_frames": num_frames,
            "frame_stride": frame_stride,
            "resize": resize,
            "grayscale": grayscale,
            "short_clips": short_clips,
            "sampling": sampling,
            "synchronised": layout == "ouluvs2",
            "on_corrupt": on_corrupt,
        }
        ClipTransform(resize=resize, grayscale=grayscale)  # checks resize
        self.missing_views = 0
        self.splits: _Splits | None = None

    @staticmethod
    def _check_lists(lists: Sequence[Sequence[Any] | None], what: str, norm: Any) -> list[list[str]] | None:
        owner = "MultiViewVideoDataModule"
        if all(x is None for x in lists):
            return None
        train, val, test = lists
        if train is None or test is None:
            raise ValueError(f"{owner}: give train_{what} and test_{what} together (val_{what} optional)")
        result: list[list[str]] = []
        for name, given in zip(_SPLITS, (train, val or [], test)):
            if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
                raise ValueError(f"{owner}: {name}_{what} must be a list, got {given!r}")
            result.append([norm(x) for x in given])
        if not result[0] or not result[2]:
            raise ValueError(f"{owner}: train_{what} and test_{what} must not be empty")
        for i, j in ((0, 1), (0, 2), (1, 2)):
            shared = sorted(set(result[i]) & set(result[j]), key=_natural)
            if shared:
                raise ValueError(
                    f"{owner}: {what} {shared} are in both {_SPLITS[i]}_{what} and {_SPLITS[j]}_{what}"
                )
        return result

    @staticmethod
    def _check_views(views: Sequence[str | int] | None, layout: Layout) -> list[str] | None:
        owner = "MultiViewVideoDataModule"
        if views is None:
            return None if layout == "ouluvs2" else list(LIGHTFIELD_VIEWS)
        if isinstance(views, (str, bytes)) or not isinstance(views, Sequence) or not views:
            raise ValueError(f"{owner}: views must be a non-empty list, got {views!r}")
        if layout == "ouluvs2":
            names = [_number(v, "v", f"{owner}: a view") for v in views]
        else:
            names = [str(v) for v in views]
            unknown = [v for v in names if v not in LIGHTFIELD_VIEWS]
            if unknown:
                raise ValueError(
                    f"{owner}: unknown light-field views {unknown}; the views are {list(LIGHTFIELD_VIEWS)}"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"{owner}: views {names} name a view twice")
        return names

    # -- scanning ------------------------------------------------------------------------------------

    def _chosen(self, found: Mapping[tuple[str, str], Mapping[str, Path]]) -> list[MultiViewSample]:
        """Samples with a path for every chosen view; missing views raise or are skipped."""
        views = self._views
        assert views is not None
        samples: list[MultiViewSample] = []
        for (group, key), paths in sorted(
            found.items(), key=lambda kv: (_natural(kv[0][0]), _natural(kv[0][1]))
        ):
            if self.layout == "ouluvs2":
                if key not in self._utterance_classes:
                    continue
                name = f"speaker {group} utterance {key}"
                label = self._class_names.index(self._utterance_classes[key])
            else:
                name = f"{group}/{key}"
                label = self._class_names.index(group)
            missing = [v for v in views if v not in paths]
            if missing:
                where = self.root / group / key if self.layout == "lightfield" else self.root
                message = (
                    f"{where}: {name} has no view {missing[0]} (views present: {sorted(paths, key=_natural)})"
                )
                if self.on_missing_view == "raise":
                    raise ValueError(message + "; choose other views or on_missing_view='skip'")
                logger.warning("%s; sample skipped", message)
                self.missing_views += 1
                continue
            samples.append(MultiViewSample(name, tuple(paths[v] for v in views), label, group))
        return samples

    def _read_ouluvs2(self) -> tuple[list[MultiViewSample], dict[str, list[MultiViewSample]] | None]:
        found = _scan_ouluvs2(self.root, self.extensions)
        present = sorted({v for paths in found.values() for v in paths}, key=_natural)
        if self._views is None:
            self._views = present
        unknown = [v for v in self._views if v not in present]
        if unknown:
            raise ValueError(
                f"{self.root}: no view {unknown[0]} folder under any speaker; views found: {present}"
            )
        self._class_names = list(dict.fromkeys(self._utterance_classes.values()))
        samples = self._chosen(found)
        if self._explicit is None:
            return samples, None
        speakers = {s.group for s in samples}
        for name, listed in zip(_SPLITS, self._explicit):
            absent = [s for s in listed if s not in speakers]
            if absent:
                raise ValueError(
                    f"{self.root}: {name}_speakers {absent} have no sample (speakers found: {sorted(speakers, key=_natural)})"
                )
        which = {s: name for name, listed in zip(_SPLITS, self._explicit) for s in listed}
        return samples, _assign(samples, lambda s: s.group, which)

    def _read_lightfield(self) -> tuple[list[MultiViewSample], dict[str, list[MultiViewSample]] | None]:
        found = _scan_lightfield(self.root)
        self._class_names = sorted({subject for subject, _ in found}, key=_natural)
        samples = self._chosen(found)
        for sample in samples:
            counts = []
            for view, folder in zip(self._views or [], sample.paths):
                n = count_frames(folder)
                if n == 0:
                    raise ValueError(
                        f"{folder}: no image ({', '.join(FRAME_EXTENSIONS)}) in the {view} folder"
                    )
                counts.append(n)
            if self.clip_options["sampling"] == "window" and len(set(counts)) > 1:
                sizes = ", ".join(f"{v}: {n}" for v, n in zip(self._views or [], counts))
                raise ValueError(
                    f"{self.root / sample.name}: the perspectives hold different numbers of images ({sizes}); "
                    "use sampling='resample' to resample each to num_frames"
                )
        if self._explicit is None:
            return samples, None
        full = {s.name for s in samples}
        bare = {s.name.split("/", 1)[1] for s in samples}
        which: dict[str, str] = {}
        for name, listed in zip(_SPLITS, self._explicit):
            for entry in listed:
                if entry not in full and entry not in bare:
                    raise ValueError(f"{self.root}: {name}_samples names '{entry}', which is no sample")
                for sample in samples:
                    if entry in (sample.name, sample.name.split("/", 1)[1]):
                        if which.get(sample.name, name) != name:
                            raise ValueError(
                                f"{self.root}: sample {sample.name} is in {which[sample.name]}_samples and {name}_samples"
                            )
                        which[sample.name] = name
        return samples, _assign(samples, lambda s: s.name, which)

    def _scan(self) -> _Splits:
        if self.splits is not None:
            return self.splits
        if self.layout == "ouluvs2":
            samples, sets = self._read_ouluvs2()
        else:
            samples, sets = self._read_lightfield()
        if not samples:
            raise ValueError(f"{self.root}: no sample with every view {self._views} (and a class)")
        if sets is None:
            if self.layout == "ouluvs2":  # speaker-disjoint
                which = _split_groups(
                    [s.group for s in samples],
                    self.val_fraction,
                    self.test_fraction,
                    self.seed,
                    str(self.root),
                    "speakers",
                )
                sets = _assign(samples, lambda s: s.group, which)
            else:  # a subject's samples are divided between the sets
                which = {}
                for subject in self._class_names:
                    names = [s.name for s in samples if s.group == subject]
                    if names:
                        where = f"{self.root / subject} (subject {subject})"
                        which |= _split_groups(
                            names, self.val_fraction, self.test_fraction, self.seed, where, "samples"
                        )
                sets = _assign(samples, lambda s: s.name, which)
        val_is_test = not sets["val"]
        if val_is_test:
            sets["val"] = sets["test"]
        for name in ("train", "test"):
            if not sets[name]:
                raise ValueError(f"{self.root}: the {name} set is empty")
        views = list(self._views or [])
        logger.info(
            "%s (%s): views %s, %d classes; %d training, %d validation and %d test samples",
            self.root,
            self.layout,
            views,
            len(self._class_names),
            len(sets["train"]),
            len(sets["val"]),
            len(sets["test"]),
        )
        self.splits = _Splits(sets, list(self._class_names), views, val_is_test)
        return self.splits

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (scans the layout on first use)."""
        return list(self._scan().class_names)

    @property
    def num_classes(self) -> int:
        return len(self._scan().class_names)

    @property
    def view_names(self) -> list[str]:
        """The views in batch order (OuluVS2 view numbers, or light-field perspectives)."""
        return list(self._scan().views)

    @property
    def num_views(self) -> int:
        return len(self._scan().views)

    def setup(self, stage: str | None = None) -> None:
        """Scan and check the layout, then build the sets ``stage`` needs (all three when ``None``)."""
        splits = self._scan()
        for which in sets_for_stage("MultiViewVideoDataModule", stage):
            if which not in self.datasets:
                self.datasets[which] = MultiViewClips(
                    splits.sets[which], splits.views, train=which == "train", **self.clip_options
                )


# --------------------------------------------------------------------------------------------------
# Features in HDF5
# --------------------------------------------------------------------------------------------------

Features = Tensor | tuple[Tensor, ...]


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, np.bytes_):
        return _text(bytes(value))
    if isinstance(value, (str, np.str_)):
        return str(value)
    return None


def _frame_indices(length: int, count: int | None) -> list[int] | None:
    """``count`` indices spread uniformly over ``length`` frames, the last frame repeated when shorter."""
    if count is None:
        return None
    if length >= count:
        return _resample_indices(length, count)
    return list(range(length)) + [length - 1] * (count - length)


class _Entry(NamedTuple):
    key: str
    label: int
    lengths: tuple[int, ...]


def _collate(batch: Sequence[tuple[Features, Tensor]]) -> tuple[Features, Tensor]:
    labels = torch.stack([label for _, label in batch])
    first = batch[0][0]
    if isinstance(first, Tensor):
        return torch.stack([f for f, _ in batch if isinstance(f, Tensor)]), labels  # (B, V, T, D)
    views = len(first)
    return tuple(torch.stack([f[v] for f, _ in batch]) for v in range(views)), labels  # V x (B, T, D_v)


class MultiViewFeatures(Dataset[tuple[Features, Tensor]]):
    """Per-view feature sequences of the samples ``entries`` of one HDF5 file.

    The file is opened on first use in each process (h5py handles are not picklable, and a handle
    opened before DataLoader workers fork must not be shared). Every view is read whole
    (``ds[()]``) and cut to ``num_frames`` indices (:func:`_frame_indices`), or kept whole when
    ``num_frames`` is ``None``.

    Shape:
        item ``(features, label)``: ``float32 (V, T, D)`` when every view has the same ``D``, else a
        tuple of ``V`` tensors ``(T, D_v)``; label ``int64`` scalar.
    """

    def __init__(
        self,
        path: str | Path,
        entries: Sequence[_Entry],
        views: Sequence[str],
        feature_sizes: Sequence[int],
        *,
        num_frames: int | None = None,
        on_corrupt: Literal["raise", "skip"] = "raise",
    ) -> None:
        self.path, self.entries, self.views = Path(path), list(entries), list(views)
        self.stack = len(set(feature_sizes)) == 1
        self.num_frames, self.on_corrupt = num_frames, on_corrupt
        self._file: h5py.File | None = None
        self._pid = -1
        self._bad: set[int] = set()

    @property
    def skipped(self) -> int:
        """Samples found unreadable so far (``on_corrupt="skip"``) in this process."""
        return len(self._bad)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, -1
        return state

    def __len__(self) -> int:
        return len(self.entries)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(f"{self.path}: cannot open the HDF5 file ({exc})") from exc
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, index: int) -> tuple[Features, Tensor]:
        return _usable_item(
            index, len(self.entries), self.on_corrupt, self._bad, lambda i: self._item(self.entries[i])
        )

    def _item(self, entry: _Entry) -> tuple[Features, Tensor]:
        handle = self._handle()
        views = []
        for view, length in zip(self.views, entry.lengths):
            key = f"{entry.key}/{view}"
            try:
                data = np.asarray(handle[key][()], dtype=np.float32)  # (T, D)
            except (OSError, KeyError, ValueError, TypeError) as exc:
                raise _BadSampleError(f"{self.path}: cannot read dataset '{key}' ({exc})") from exc
            if not np.isfinite(data).all():
                raise _BadSampleError(f"{self.path}: dataset '{key}' holds NaN or inf values")
            wanted = _frame_indices(length, self.num_frames)
            views.append(torch.from_numpy(data if wanted is None else data[wanted]))
        label = torch.tensor(entry.label, dtype=torch.int64)
        if self.stack:
            return torch.stack(views), label  # (V, T, D)
        return tuple(views), label


class MultiViewFeaturesDataModule(SetsDataModule):
    """Per-view pre-extracted features in one HDF5 file (format: docs/multiview_data.md).

    Every top-level group ``<sample>`` holds one dataset ``(T, D_view)`` per view and the attributes
    ``label`` (an int class index, or a class name: the classes are then the sorted names), optionally
    ``split`` (``"train"``, ``"val"`` or ``"test"``, on every sample or on none) and ``speaker`` or
    ``subject`` (then the seeded split keeps each speaker/subject in one set). The file is checked in
    ``setup()`` (shapes, dtypes and attributes only; no feature is read).

    Args:
        path: the HDF5 file.
        views: the views to read, in this order; ``None``: the first sample's datasets, sorted.
        num_frames: frames per sample: ``K`` indices spread uniformly over each view (the last frame
            repeated for shorter views); ``None``: every sample and view must have the same ``T``.
        val_fraction, test_fraction: samples (or speakers/subjects) held out when no ``split``
            attribute is given; a ``val_fraction`` of 0 validates on the test set.
        batch_size, num_workers, seed: DataLoader settings and the seed of the held-out draw.
        on_corrupt: a dataset that cannot be read, or holds NaN/inf, ``"raise"``s a ValueError naming
            the file and the key, or is ``"skip"``ped: a warning names it, the sample is replaced by
            the next readable one and counted (``MultiViewFeatures.skipped``).

    Batches are ``(features, labels)``: ``float32 (B, V, T, D)`` when every view has the same ``D``,
    else a tuple of ``V`` tensors ``(B, T, D_v)``; labels ``int64 (B,)``.
    """

    def __init__(
        self,
        path: str,
        *,
        views: Sequence[str] | None = None,
        num_frames: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        on_corrupt: Literal["raise", "skip"] = "raise",
    ) -> None:
        super().__init__()
        owner = "MultiViewFeaturesDataModule"
        _check_choice(owner, "on_corrupt", on_corrupt, ("raise", "skip"))
        self.on_corrupt = on_corrupt
        self.collate_fn = _collate  # per-view tuples when the views' feature sizes differ
        _check_positive(owner, num_frames=num_frames, batch_size=batch_size)
        _check_fractions(owner, val_fraction, test_fraction)
        check_loader_args(owner, num_workers=num_workers, seed=seed)
        if views is not None:
            if isinstance(views, (str, bytes)) or not isinstance(views, Sequence) or not views:
                raise ValueError(f"{owner}: views must be a non-empty list of view names, got {views!r}")
            if len(set(views)) != len(views):
                raise ValueError(f"{owner}: views {list(views)} name a view twice")
        self.save_hyperparameters()
        self.path = Path(path)
        self._views = None if views is None else [str(v) for v in views]
        self.num_frames = num_frames
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self._sets: dict[str, list[_Entry]] | None = None
        self._class_names: list[str] = []
        self._feature_sizes: list[int] = []

    def _check_sample(self, key: str, group: Any) -> tuple[object, str | None, str | None, tuple[int, ...]]:
        where = f"{self.path}: sample '{key}'"
        if not isinstance(group, h5py.Group):
            raise ValueError(f"{where} is a dataset; expected a group holding one dataset per view")
        views = self._views
        if views is None:
            views = self._views = sorted(group.keys())
            if not views:
                raise ValueError(f"{where} holds no view dataset")
        if "label" not in group.attrs:
            raise ValueError(f"{where} has no 'label' attribute")
        label = group.attrs["label"]
        if isinstance(label, np.ndarray) and label.shape == ():
            label = label[()]
        split = None
        if "split" in group.attrs:
            split = _text(group.attrs["split"])
            if split not in _SPLITS:
                raise ValueError(
                    f"{where}: attribute 'split' must be 'train', 'val' or 'test', got {group.attrs['split']!r}"
                )
        owner = None
        for name in ("speaker", "subject"):
            if name in group.attrs:
                value = group.attrs[name]
                owner = _text(value) if _text(value) is not None else str(value)
                break
        lengths = []
        for index, view in enumerate(views):
            if view not in group:
                raise ValueError(f"{where} has no view '{view}' (it holds {sorted(group.keys())})")
            ds = group[view]
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.dtype.kind not in "fiu":
                shape = getattr(ds, "shape", None)
                dtype = getattr(ds, "dtype", None)
                raise ValueError(
                    f"{where}, view '{view}': expected a numeric dataset (T, D), got shape {shape} dtype {dtype}"
                )
            frames, size = ds.shape
            if frames < 1 or size < 1:
                raise ValueError(f"{where}, view '{view}': empty features of shape {ds.shape}")
            if len(self._feature_sizes) <= index:
                self._feature_sizes.append(size)
            elif size != self._feature_sizes[index]:
                raise ValueError(
                    f"{where}, view '{view}': feature size D expected {self._feature_sizes[index]} (as in the first sample), got {size}"
                )
            lengths.append(frames)
        if self.num_frames is None and len(set(lengths)) > 1:
            counts = ", ".join(f"{v}: {t}" for v, t in zip(views, lengths))
            raise ValueError(
                f"{where}: views of different lengths T ({counts}); give num_frames to resample them"
            )
        return label, split, owner, tuple(lengths)

    def _scan(self) -> dict[str, list[_Entry]]:
        if self._sets is not None:
            return self._sets
        if not self.path.is_file():
            raise FileNotFoundError(f"HDF5 feature file not found: {self.path}")
        try:
            handle = h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot open the HDF5 file ({exc})") from exc
        with handle:
            try:
                keys = sorted(handle.keys(), key=_natural)
                rows = [(key, *self._check_sample(key, handle[key])) for key in keys]
            except (OSError, KeyError, RuntimeError) as exc:
                raise ValueError(f"{self.path}: cannot read the HDF5 file ({exc})") from exc
        if not rows:
            raise ValueError(f"{self.path}: no sample group in the file")
        if self.num_frames is None:
            first_key, first_lengths = rows[0][0], rows[0][4]
            for key, *_, lengths in rows:
                if lengths[0] != first_lengths[0]:
                    raise ValueError(
                        f"{self.path}: sample '{key}' has T={lengths[0]} frames, sample '{first_key}' "
                        f"T={first_lengths[0]}; every sample needs the same T, or give num_frames"
                    )
        labels = [row[1] for row in rows]
        names = [_text(label) for label in labels]
        if all(name is not None for name in names):
            self._class_names = sorted({n for n in names if n is not None})
            indices = [self._class_names.index(n) for n in names if n is not None]
        else:
            indices = []
            for (key, label, *_), name in zip(rows, names):
                if (
                    name is not None
                    or isinstance(label, (bool, np.bool_))
                    or not isinstance(label, (int, np.integer))
                    or label < 0
                ):
                    raise ValueError(
                        f"{self.path}: sample '{key}': attribute 'label' must be an int >= 0 or a class name (the same kind in every sample), got {label!r}"
                    )
                indices.append(int(label))
            self._class_names = [str(i) for i in range(max(indices) + 1)]
        entries = [_Entry(row[0], label, row[4]) for row, label in zip(rows, indices)]
        splits = [row[2] for row in rows]
        groups = [row[3] for row in rows]
        if any(s is not None for s in splits):
            absent = [row[0] for row, s in zip(rows, splits) if s is None]
            if absent:
                raise ValueError(
                    f"{self.path}: sample '{absent[0]}' has no 'split' attribute, other samples have one"
                )
            which = {e.key: s for e, s in zip(entries, splits) if s is not None}
        elif any(g is not None for g in groups):
            absent = [row[0] for row, g in zip(rows, groups) if g is None]
            if absent:
                raise ValueError(
                    f"{self.path}: sample '{absent[0]}' has no 'speaker'/'subject' attribute, other samples have one"
                )
            by_group = _split_groups(
                [g for g in groups if g is not None],
                self.val_fraction,
                self.test_fraction,
                self.seed,
                str(self.path),
                "speakers/subjects",
            )
            which = {e.key: by_group[g] for e, g in zip(entries, groups) if g is not None}
        else:
            which = _split_groups(
                [e.key for e in entries],
                self.val_fraction,
                self.test_fraction,
                self.seed,
                str(self.path),
                "samples",
            )
        sets: dict[str, list[_Entry]] = {s: [e for e in entries if which[e.key] == s] for s in _SPLITS}
        if not sets["val"]:
            sets["val"] = sets["test"]
        for name in ("train", "test"):
            if not sets[name]:
                raise ValueError(f"{self.path}: the {name} set is empty")
        self._sets = sets
        return sets

    @property
    def class_names(self) -> list[str]:
        self._scan()
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def view_names(self) -> list[str]:
        self._scan()
        return list(self._views or [])

    @property
    def num_views(self) -> int:
        return len(self.view_names)

    @property
    def feature_sizes(self) -> list[int]:
        """``D`` of each view, in view order."""
        self._scan()
        return list(self._feature_sizes)

    def setup(self, stage: str | None = None) -> None:
        """Check the file, then build the sets ``stage`` needs (all three when ``None``)."""
        sets = self._scan()
        for which in sets_for_stage("MultiViewFeaturesDataModule", stage):
            if which not in self.datasets:
                self.datasets[which] = MultiViewFeatures(
                    self.path,
                    sets[which],
                    self.view_names,
                    self._feature_sizes,
                    num_frames=self.num_frames,
                    on_corrupt=self.on_corrupt,
                )
