"""KTH Actions (Schüldt, Laptev & Caputo, "Recognizing Human Actions: A Local SVM Approach", ICPR 2004,
https://www.csc.kth.se/cvap/actions/): 25 persons performing 6 actions in 4 scenarios (d1-d4).

Two layouts are read:

- the frame folders of the PredRNN / E3D-LSTM releases (:func:`scan_kth_frames`, for video prediction)::

      <root>/<action>/person<NN>_<action>_<scenario>[_uncomp]/image_<number>.png (or .jpg)

  cut into sequences by the releases' rule (:func:`sequence_starts`; the dataset is
  :class:`~lstmvision.data.layouts.kth_frames.KTHFrames`);
- the original videos, ``<root>/<action>/person<NN>_<action>_d<1-4>_uncomp.avi``
  (:func:`read_kth_video_splits`, for classification), split by person.

docs/data.md ("KTH Actions") gives the layout, the split, the cutting rule and every deviation from
the releases. Errors name the path and what is wrong with it (``FileNotFoundError`` when it is missing,
``ValueError`` otherwise).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from lstmvision.data.checks import check_extensions, check_fraction, check_root
from lstmvision.data.io.clips import VideoSample
from lstmvision.data.io.frames import VIDEO_EXTENSIONS, videos_in
from lstmvision.data.layouts.splits import VideoSplits, held_out

__all__ = [
    "KTH_ACTIONS",
    "KTH_FAST_ACTIONS",
    "KTH_TEST_PERSONS",
    "KTH_TRAIN_PERSONS",
    "KTHVideo",
    "check_actions",
    "check_at_least_one",
    "check_on_corrupt",
    "check_persons",
    "frame_number",
    "read_kth_video_splits",
    "scan_kth_frames",
    "sequence_starts",
]

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
_KTH_VIDEO_NAME = re.compile(r"person(\d{2})_([a-z]+)_(d[1-4])(?:_uncomp)?")


class KTHVideo(NamedTuple):
    """One video folder: its frames sorted by the number in their file name."""

    path: Path
    action: str
    label: int
    person: int
    scenario: str
    frames: tuple[Path, ...]


def check_persons(persons: Sequence[int], what: str) -> tuple[int, ...]:
    """A non-empty list of KTH persons 1-25, sorted and without repeats."""
    if not isinstance(persons, (list, tuple, range)):
        raise TypeError(f"{what} must be a list of KTH persons 1-25, got {persons!r}")
    chosen = tuple(sorted(set(persons)))
    if not chosen:
        raise ValueError(f"{what} must name at least one person (1-25), got {tuple(persons)}")
    bad = [p for p in chosen if not isinstance(p, int) or not 1 <= p <= 25]
    if bad:
        raise ValueError(f"{what} must be KTH persons 1-25, got {bad}")
    return chosen


def check_actions(actions: Sequence[str]) -> tuple[str, ...]:
    """A non-empty list of actions of :data:`KTH_ACTIONS`, without repeats."""
    chosen = tuple(actions)
    if not chosen:
        raise ValueError(f"actions must name at least one of {KTH_ACTIONS}, got none")
    unknown = [a for a in chosen if a not in KTH_ACTIONS]
    if unknown:
        raise ValueError(f"unknown KTH actions {unknown}; known actions are {KTH_ACTIONS}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"actions must not repeat, got {chosen}")
    return chosen


def check_at_least_one(**values: int | None) -> None:
    """Every value that is not None >= 1 (KTH's counts and strides)."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def check_on_corrupt(on_corrupt: str) -> None:
    """``on_corrupt`` is "raise" or "skip"."""
    if on_corrupt not in ("raise", "skip"):
        raise ValueError(f"on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")


def frame_number(path: Path) -> int:
    """The number in a frame file name ``image_<number>.<ext>``."""
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


def _check_kth_root(root: Path) -> None:
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
    wanted = set(check_persons(persons, "persons"))
    chosen = check_actions(actions)
    _check_kth_root(root)
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
    check_at_least_one(seq_length=seq_length, stride=stride)
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


def _video_persons(persons: Sequence[int], what: str) -> tuple[int, ...]:
    """KTH persons 1-25 of the video layout: an empty list is allowed (no validation persons)."""
    if not isinstance(persons, (list, tuple, range)):
        raise TypeError(f"{what} must be a list of KTH persons 1-25, got {persons!r}")
    bad = [p for p in persons if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 25]
    if bad:
        raise ValueError(f"{what} must be KTH persons 1-25, got {bad}")
    return tuple(sorted(set(persons)))


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
    exts = check_extensions(extensions)
    check_fraction("val_fraction", val_fraction, zero_ok=True)
    train_set = _video_persons(train_persons, "train_persons")
    test_set = _video_persons(test_persons, "test_persons")
    if val_persons is None:
        val_set = train_set[len(train_set) - held_out(len(train_set), val_fraction) :]
    else:
        val_set = _video_persons(val_persons, "val_persons")
    train_set = tuple(p for p in train_set if p not in val_set)
    if not train_set or not test_set:
        raise ValueError(
            f"KTH: no training persons left ({list(train_set)}) or no test persons ({list(test_set)})"
        )
    shared = sorted(set(test_set) & (set(train_set) | set(val_set)))
    if shared:
        raise ValueError(f"KTH: persons {shared} are both test and training/validation persons")
    check_root(root, "KTH")
    sets: dict[str, list[VideoSample]] = {"train": [], "val": [], "test": []}
    which = {p: "train" for p in train_set} | {p: "val" for p in val_set} | {p: "test" for p in test_set}
    for label, action in enumerate(KTH_ACTIONS):
        folder = root / action
        if not folder.is_dir():
            raise FileNotFoundError(f"{root}: action folder '{action}' not found (expected {folder})")
        for video in videos_in(folder, exts):
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
