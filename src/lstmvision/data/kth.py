"""KTH Actions: frame folders in the layout of the PredRNN / E3D-LSTM releases, a dataset and a LightningDataModule.

KTH Actions (Schüldt, Laptev & Caputo, "Recognizing Human Actions: A Local SVM Approach", ICPR 2004,
https://www.csc.kth.se/cvap/actions/) shows 25 persons performing 6 actions in 4 scenarios (d1-d4).
Video prediction work (PredRNN, E3D-LSTM) reads it as extracted frames::

    <root>/<action>/person<NN>_<action>_<scenario>[_uncomp]/image_<number>.png (or .jpg)

with persons 1-16 for training and 17-25 for testing. A sequence is ``seq_length`` frames with
consecutive numbers from one folder; where sequences start follows the releases' rule (see
:func:`sequence_starts`). Frames are decoded lazily, in ``__getitem__``: the scan only lists folders.

docs/data.md ("KTH Actions") gives the layout, the split, the cutting rule and every deviation from
the releases. Errors name the path and what is wrong with it (``FileNotFoundError`` when it is missing,
``ValueError`` otherwise).
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lstmvision.data._common import check_loader_args, sets_for_stage
from lstmvision.data._sharding import test_set_sampler

__all__ = [
    "KTH_ACTIONS",
    "KTH_FAST_ACTIONS",
    "KTH_TEST_PERSONS",
    "KTH_TRAIN_PERSONS",
    "KTHDataModule",
    "KTHFrames",
    "KTHVideo",
    "scan_kth_frames",
    "sequence_starts",
]

logger = logging.getLogger(__name__)

KTH_ACTIONS: tuple[str, ...] = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
"""The six actions; an action's label is its index here."""
KTH_FAST_ACTIONS: tuple[str, ...] = ("jogging", "running")
"""Actions whose sequences start ``fast_stride`` frames apart under the releases' rule (the others:
``seq_length`` apart). The releases put walking with the slow group."""
KTH_TRAIN_PERSONS: tuple[int, ...] = tuple(range(1, 17))
KTH_TEST_PERSONS: tuple[int, ...] = tuple(range(17, 26))
_ALL_PERSONS: tuple[int, ...] = tuple(range(1, 26))
_SCENARIOS = ("d1", "d2", "d3", "d4")

# The releases' folders keep the "_uncomp" of the original video names (person01_boxing_d1_uncomp.avi).
_VIDEO_NAME = re.compile(r"person(\d{2})_([a-z]+)_(d\d)(?:_uncomp)?")
_FRAME_NAME = re.compile(r"image_(\d+)\.(?:png|jpe?g|bmp)", re.IGNORECASE)
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

OnCorrupt = Literal["raise", "skip"]


class KTHVideo(NamedTuple):
    """One video folder: its frames sorted by the number in their file name."""

    path: Path
    action: str
    label: int
    person: int
    scenario: str
    frames: tuple[Path, ...]


# --------------------------------------------------------------------------------------------------
# Argument checks (shared by the dataset and the data module)
# --------------------------------------------------------------------------------------------------


def _check_persons(persons: Sequence[int], what: str) -> tuple[int, ...]:
    if not isinstance(persons, (list, tuple, range)):
        raise TypeError(f"{what} must be a list of KTH persons 1-25, got {persons!r}")
    chosen = tuple(sorted(set(persons)))
    if not chosen:
        raise ValueError(f"{what} must name at least one person (1-25), got {tuple(persons)}")
    bad = [p for p in chosen if not isinstance(p, int) or not 1 <= p <= 25]
    if bad:
        raise ValueError(f"{what} must be KTH persons 1-25, got {bad}")
    return chosen


def _check_actions(actions: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(actions)
    if not chosen:
        raise ValueError(f"actions must name at least one of {KTH_ACTIONS}, got none")
    unknown = [a for a in chosen if a not in KTH_ACTIONS]
    if unknown:
        raise ValueError(f"unknown KTH actions {unknown}; known actions are {KTH_ACTIONS}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"actions must not repeat, got {chosen}")
    return chosen


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _check_on_corrupt(on_corrupt: str) -> None:
    if on_corrupt not in ("raise", "skip"):
        raise ValueError(f"on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")


# --------------------------------------------------------------------------------------------------
# Scanning the folders (listing only, no image is opened)
# --------------------------------------------------------------------------------------------------


def _frame_number(path: Path) -> int:
    match = _FRAME_NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{path}: not a frame file name; expected image_<number>.png/.jpg/.jpeg/.bmp")
    return int(match.group(1))


def _list_frames(folder: Path) -> tuple[Path, ...]:
    numbered: dict[int, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _FRAME_NAME.fullmatch(entry.name)
            if match is None or not entry.is_file():
                continue  # stray files (Thumbs.db, .DS_Store, notes) are not frames
            number = int(match.group(1))
            if number in numbered:
                raise ValueError(
                    f"{folder}: two files hold frame {number}: {numbered[number].name} and {entry.name}"
                )
            numbered[number] = folder / entry.name
    return tuple(numbered[n] for n in sorted(numbered))


def _parse_video_folder(folder: Path, action: str) -> tuple[int, str]:
    match = _VIDEO_NAME.fullmatch(folder.name)
    if match is None:
        raise ValueError(
            f"{folder}: not a KTH video folder name; expected person<NN>_{action}_<d1-d4> "
            "(optionally ending in _uncomp)"
        )
    person, found_action, scenario = int(match.group(1)), match.group(2), match.group(3)
    if found_action != action:
        raise ValueError(f"{folder}: a '{found_action}' video inside the '{action}' folder")
    if not 1 <= person <= 25:
        raise ValueError(f"{folder}: person {person:02d} is outside the KTH persons 01-25")
    if scenario not in _SCENARIOS:
        raise ValueError(f"{folder}: scenario '{scenario}' is not one of {_SCENARIOS}")
    return person, scenario


def _check_root(root: Path) -> None:
    if not root.exists():
        raise FileNotFoundError(f"KTH root folder not found: {root}")
    if not root.is_dir():
        raise ValueError(f"{root}: expected the KTH root folder (one subfolder per action), got a file")


def scan_kth_frames(
    root: str | Path, *, persons: Sequence[int] = _ALL_PERSONS, actions: Sequence[str] = KTH_ACTIONS
) -> list[KTHVideo]:
    """List the video folders of ``persons`` under ``root`` (frame-folder layout of the releases).

    Every folder inside each action folder is checked, whatever its person: a folder whose name does
    not parse as ``person<NN>_<action>_<d1-d4>`` (optionally ``_uncomp``), or that holds another
    action, is an error. Files and hidden entries (``.DS_Store``) in an action folder are ignored,
    as are files in a video folder not named ``image_<number>.<png|jpg|jpeg|bmp>``. Only the folders
    of ``persons`` are listed; no image is opened.

    Args:
        root: the folder holding one subfolder per action.
        persons: KTH persons (1-25) to keep.
        actions: action folders to read, all six by default; each must exist.

    Returns:
        One :class:`KTHVideo` per folder, ordered by (label, person, scenario); its ``frames`` are
        sorted by frame number (``image_2`` before ``image_10``). Empty folders are included.
    """
    root = Path(root)
    wanted = set(_check_persons(persons, "persons"))
    chosen = _check_actions(actions)
    _check_root(root)
    videos: list[KTHVideo] = []
    found_persons: set[int] = set()
    for action in chosen:
        action_dir = root / action
        if not action_dir.exists():
            raise FileNotFoundError(f"{root}: action folder '{action}' not found (expected {action_dir})")
        if not action_dir.is_dir():
            raise ValueError(f"{action_dir}: expected the folder of action '{action}', got a file")
        seen: dict[tuple[int, str], Path] = {}
        for folder in sorted(action_dir.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            person, scenario = _parse_video_folder(folder, action)
            if (person, scenario) in seen:
                raise ValueError(f"{folder}: the same video as {seen[person, scenario].name}")
            seen[person, scenario] = folder
            found_persons.add(person)
            if person in wanted:
                label = KTH_ACTIONS.index(action)
                videos.append(KTHVideo(folder, action, label, person, scenario, _list_frames(folder)))
    if not videos:
        raise ValueError(
            f"{root}: no video folder of persons {sorted(wanted)} for actions {list(chosen)}; "
            f"the folders there are of persons {sorted(found_persons) or 'none'}"
        )
    videos.sort(key=lambda video: (video.label, video.person, video.scenario))
    return videos


def sequence_starts(frame_numbers: Sequence[int], seq_length: int, stride: int) -> list[int]:
    """Positions in a folder's sorted frame list where sequences start, by the releases' rule.

    The PredRNN / E3D-LSTM loaders (``data_provider/kth_action.py``) walk each folder backwards from
    its last frame: the ``seq_length`` frames ending at the current frame form a sequence when their
    numbers are consecutive (no frame missing in between); the walk then moves back ``stride`` frames
    (``seq_length`` for boxing, hand clapping, hand waving and walking, 3 for jogging and running).
    Where the frames are not consecutive it moves back one frame and tries again. Sequences are
    therefore aligned with the folder's end and never cross a gap in the numbering.

    Returns:
        Start positions (indices into ``frame_numbers``), ascending.
    """
    _check_positive(seq_length=seq_length, stride=stride)
    starts: list[int] = []
    last = len(frame_numbers) - 1  # position of the candidate sequence's last frame
    while last >= seq_length - 1:
        first = last - seq_length + 1
        if frame_numbers[last] - frame_numbers[first] == seq_length - 1:  # numbers are sorted and unique
            starts.append(first)
            last -= stride
        else:
            last -= 1
    starts.reverse()
    return starts


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


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


class KTHFrames(Dataset[tuple[torch.Tensor, torch.Tensor]]):
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
            around) that decodes, and a warning names the file and counts the corrupt files this
            process has met. Known-bad files are remembered, so they are not decoded twice.

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
        _check_positive(seq_length=seq_length, image_size=image_size, stride=stride, fast_stride=fast_stride)
        _check_on_corrupt(on_corrupt)
        self.root = Path(root)
        self.persons = _check_persons(persons, "persons")
        self.seq_length, self.image_size = seq_length, image_size
        self.stride, self.fast_stride = stride, fast_stride
        self.on_corrupt: OnCorrupt = on_corrupt
        self.videos: list[KTHVideo] = []
        self.index: list[tuple[int, int]] = []  # sequence -> (position in self.videos, first frame)
        self._corrupt: set[Path] = set()  # files found undecodable by this process ("skip" mode)

        scanned = scan_kth_frames(self.root, persons=self.persons, actions=actions)
        skipped: list[str] = []
        for video in scanned:
            numbers = [_frame_number(frame) for frame in video.frames]
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
        logger.info(
            "KTH %s: %d sequences of %d frames from %d videos of persons %s",
            self.root,
            len(self.index),
            seq_length,
            len(self.videos),
            list(self.persons),
        )

    @property
    def skipped(self) -> int:
        """Corrupt frame files this process has met and skipped (``on_corrupt="skip"``); each counts once.
        DataLoader workers keep their own count."""
        return len(self._corrupt)

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
        video, start = self.locate(index)
        frames = video.frames[start : start + self.seq_length]
        if self.on_corrupt == "raise":
            return self._clip(frames), torch.tensor(video.label, dtype=torch.int64)
        # "skip": try index, index + 1, ... so the replacement depends only on which files are bad.
        n = len(self)
        for offset in range(n):
            candidate = (index + offset) % n
            video, start = self.locate(candidate)
            frames = video.frames[start : start + self.seq_length]
            if self._corrupt.intersection(frames):
                continue
            try:
                clip = self._clip(frames)
            except _CorruptFrameError as exc:
                self._corrupt.add(exc.path or frames[0])
                logger.warning(
                    "%s; sequence %d skipped, %d corrupt file(s) met so far in this process",
                    exc,
                    candidate,
                    len(self._corrupt),
                )
                continue
            if offset:
                logger.debug("sequence %d replaced by sequence %d (corrupt frames)", index, candidate)
            return clip, torch.tensor(video.label, dtype=torch.int64)
        raise RuntimeError(f"{self.root}: every one of the {n} sequences holds a corrupt frame")


# --------------------------------------------------------------------------------------------------
# LightningDataModule
# --------------------------------------------------------------------------------------------------


class KTHDataModule(L.LightningDataModule):
    """KTH Actions for video prediction and (early) action recognition.

    Training sequences come from ``train_persons`` (shuffled every epoch by the DataLoader), test
    sequences from ``test_persons``. Validation uses ``val_persons`` when given; by default
    (``None``) it uses the test persons, as the PredRNN / E3D-LSTM releases do, so model selection
    then looks at the test set: pass ``val_persons`` (and take them out of ``train_persons``) to keep
    the test set untouched. The three person sets must not overlap. ``predict_dataloader`` serves the
    test set.

    Args:
        root: the KTH root folder (``<root>/<action>/person<NN>_<action>_<scenario>/image_<n>.png``).
        image_size: frame height and width (frames are squashed to a square).
        seq_length: frames per sequence: 20 for 10→10 prediction, 30 for 10→20, 50 for 10→40.
        train_persons, val_persons, test_persons: KTH persons (1-25) of each set.
        train_stride: frames between sequence starts in training videos; ``None`` follows the releases
            (``seq_length`` for boxing, hand clapping, hand waving and walking, ``fast_stride`` for
            jogging and running).
        test_stride: the same for validation and test videos.
        fast_stride: jogging and running stride under the releases' rule.
        batch_size, num_workers: DataLoader settings.
        actions: actions to read (labels stay indices into :data:`KTH_ACTIONS`).
        on_corrupt: ``"raise"`` on a frame that cannot be decoded, or ``"skip"`` the sequence holding
            it (see :class:`KTHFrames`).

    Batches are ``(clips, labels)``: ``float32 (B, seq_length, 1, image_size, image_size)`` in [0, 1]
    and ``int64 (B,)``.
    """

    def __init__(
        self,
        *,
        root: str,
        image_size: int = 128,
        seq_length: int = 20,
        train_persons: Sequence[int] = KTH_TRAIN_PERSONS,
        val_persons: Sequence[int] | None = None,
        test_persons: Sequence[int] = KTH_TEST_PERSONS,
        train_stride: int | None = None,
        test_stride: int | None = None,
        fast_stride: int = 3,
        batch_size: int = 8,
        num_workers: int = 0,
        actions: Sequence[str] = KTH_ACTIONS,
        on_corrupt: OnCorrupt = "raise",
    ) -> None:
        super().__init__()
        _check_positive(
            image_size=image_size,
            seq_length=seq_length,
            train_stride=train_stride,
            test_stride=test_stride,
            fast_stride=fast_stride,
            batch_size=batch_size,
        )
        check_loader_args("KTHDataModule", num_workers=num_workers)
        _check_on_corrupt(on_corrupt)
        self.persons: dict[str, tuple[int, ...] | None] = {
            "train": _check_persons(train_persons, "train_persons"),
            "val": None if val_persons is None else _check_persons(val_persons, "val_persons"),
            "test": _check_persons(test_persons, "test_persons"),
        }
        named = [(which, set(p)) for which, p in self.persons.items() if p is not None]
        for i, (which_a, set_a) in enumerate(named):
            for which_b, set_b in named[i + 1 :]:
                if set_a & set_b:
                    raise ValueError(
                        f"KTHDataModule: {which_a}_persons and {which_b}_persons share persons "
                        f"{sorted(set_a & set_b)}; the sets must be disjoint"
                    )
        self.actions = _check_actions(actions)
        self.save_hyperparameters()
        self.root = root
        self.image_size, self.seq_length = image_size, seq_length
        self.strides = {"train": train_stride, "val": test_stride, "test": test_stride}
        self.fast_stride = fast_stride
        self.batch_size, self.num_workers = batch_size, num_workers
        self.on_corrupt: OnCorrupt = on_corrupt
        self.datasets: dict[str, KTHFrames] = {}

    @property
    def class_names(self) -> list[str]:
        """:data:`KTH_ACTIONS`, in label order (labels keep these indices when ``actions`` is a subset)."""
        return list(KTH_ACTIONS)

    @property
    def num_classes(self) -> int:
        return len(KTH_ACTIONS)

    def _build(self, which: str) -> KTHFrames:
        persons = self.persons[which]
        if persons is None:  # validation on the test persons, as in the releases: one shared set
            if "test" not in self.datasets:
                self.datasets["test"] = self._build("test")
            return self.datasets["test"]
        return KTHFrames(
            self.root,
            persons=persons,
            seq_length=self.seq_length,
            image_size=self.image_size,
            stride=self.strides[which],
            fast_stride=self.fast_stride,
            actions=self.actions,
            on_corrupt=self.on_corrupt,
        )

    def setup(self, stage: str | None = None) -> None:
        """Scan (and check) the folders of the sets that ``stage`` needs; all three when ``None``."""
        wanted = sets_for_stage("KTHDataModule", stage)
        for which in wanted:
            if which not in self.datasets:
                self.datasets[which] = self._build(which)

    def _dataset(self, which: str) -> KTHFrames:
        if which not in self.datasets:
            raise RuntimeError(f"KTHDataModule: the {which} set is not set up; call setup() first")
        return self.datasets[which]

    def _loader(self, dataset: KTHFrames, **kwargs: Any) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        return self._loader(self._dataset("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        return self._loader(self._dataset("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        # under DDP each process tests its own block of the set, no clip repeated (see _sharding.py)
        dataset = self._dataset("test")
        return self._loader(dataset, sampler=test_set_sampler(dataset))

    def predict_dataloader(self) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        return self.test_dataloader()
