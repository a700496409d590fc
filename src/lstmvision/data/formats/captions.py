"""Caption annotation files: the caption set every reader returns, the file access they share (errors
name the file, the line or the JSON key path), split files, and the generic caption JSON.

The MSVD and MSR-VTT readers are :mod:`~lstmvision.data.formats.msvd` and
:mod:`~lstmvision.data.formats.msrvtt`. docs/captioning_data.md describes the formats, the split rules
and every error: ``FileNotFoundError`` when a file is missing, ``ValueError`` otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

__all__ = [
    "SPLITS",
    "CaptionSet",
    "caption_set",
    "expect_type",
    "read_caption_json",
    "read_json",
    "read_split_file",
    "read_text",
]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The names of the sets of a :class:`CaptionSet`, in order."""
_SPLIT_LIST_FILES = {name: f"{name}_list.txt" for name in SPLITS}


@dataclass(frozen=True)
class CaptionSet:
    """Raw captions per video and the ordered video ids of each set.

    Args:
        captions: video id -> its captions, as written in the file (surrounding blanks stripped).
            Videos in no set may be present.
        splits: "train", "val" and "test" (all three, nothing else) -> video ids in order; a set may be
            empty. No id is in two sets or twice in one, and every id has at least one caption.
    """

    captions: dict[str, list[str]]
    splits: dict[str, list[str]]

    def __post_init__(self) -> None:
        if set(self.splits) != set(SPLITS):
            raise ValueError(f"CaptionSet: splits must have the keys {list(SPLITS)}, got {list(self.splits)}")
        seen: dict[str, str] = {}
        for name in SPLITS:
            for video_id in self.splits[name]:
                if video_id in seen:
                    raise ValueError(
                        f"CaptionSet: video {video_id!r} is in the {seen[video_id]} set and again in the {name} set"
                    )
                seen[video_id] = name
                if not self.captions.get(video_id):
                    raise ValueError(f"CaptionSet: video {video_id!r} of the {name} set has no captions")

    def split_captions(self, split: str) -> dict[str, list[str]]:
        """The captions of the videos of one set, in the set's order."""
        if split not in SPLITS:
            raise ValueError(f"CaptionSet: split must be one of {list(SPLITS)}, got {split!r}")
        return {video_id: self.captions[video_id] for video_id in self.splits[split]}


def caption_set(path: Path, captions: dict[str, list[str]], splits: dict[str, list[str]]) -> CaptionSet:
    """A :class:`CaptionSet` whose errors name ``path``."""
    try:
        return CaptionSet(captions, splits)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path`` (a BOM tolerated); an error names the file and the line."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: expected a file, got a folder or other non-file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; an error names the file, line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None


def _kind(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def expect_type(path: Path, key: str, value: object, kind: type, what: str) -> None:
    """``value`` (at ``key`` in ``path``) an instance of ``kind``, or a ValueError saying ``what`` was expected."""
    if not isinstance(value, kind):
        raise ValueError(f"{path}: {key}: expected {what}, got {_kind(value)}")


def _string_list(path: Path, key: str, value: object) -> list[str]:
    expect_type(path, key, value, list, "a list of strings")
    items = cast("list[object]", value)
    for index, item in enumerate(items):
        expect_type(path, f"{key}[{index}]", item, str, "a string")
    return cast("list[str]", list(items))


# --------------------------------------------------------------------------------------------------
# Split files
# --------------------------------------------------------------------------------------------------


# one set of a split file: the file, then (where in it, video id) per id
_SplitList = tuple[Path, list[tuple[str, str]]]


def _read_split_lists(folder: Path) -> dict[str, _SplitList]:
    lists: dict[str, _SplitList] = {}
    for name, filename in _SPLIT_LIST_FILES.items():
        path = folder / filename
        lines = enumerate(read_text(path).splitlines(), start=1)
        lists[name] = (path, [(f"line {number}", line.strip()) for number, line in lines if line.strip()])
    return lists


def _read_split_json(path: Path) -> dict[str, _SplitList]:
    data = read_json(path)
    expect_type(path, "top level", data, dict, 'an object {"train": [...], "val": [...], "test": [...]}')
    unknown = sorted(set(data) - set(SPLITS))
    missing = [name for name in SPLITS if name not in data]
    if unknown or missing:
        raise ValueError(f"{path}: expected the keys {list(SPLITS)}, missing {missing}, unknown {unknown}")
    lists: dict[str, _SplitList] = {}
    for name in SPLITS:
        ids = _string_list(path, f'["{name}"]', data[name])
        lists[name] = (path, [(f'["{name}"][{index}]', video_id) for index, video_id in enumerate(ids)])
    return lists


def read_split_file(split_file: str | Path, known: Iterable[str]) -> dict[str, list[str]]:
    """The sets of a split file: a JSON object or a folder of ``{train,val,test}_list.txt``. Every id must
    be in ``known`` and in one set only; known ids in no set are left out (logged)."""
    source = Path(split_file)
    lists = _read_split_lists(source) if source.is_dir() else _read_split_json(source)
    known_ids = set(known)
    seen: dict[str, str] = {}
    for name in SPLITS:
        path, entries = lists[name]
        for where, video_id in entries:
            if video_id not in known_ids:
                raise ValueError(f"{path}: {where}: video {video_id!r} has no captions")
            if video_id in seen:
                raise ValueError(
                    f"{path}: {where}: video {video_id!r} is already in the {seen[video_id]} set"
                )
            seen[video_id] = name
    left_out = len(known_ids) - len(seen)
    if left_out:
        logger.info("%s: %d captioned videos are in no set and are left out", source, left_out)
    return {name: [video_id for _, video_id in lists[name][1]] for name in SPLITS}


def read_caption_json(path: str | Path, split_file: str | Path | None = None) -> CaptionSet:
    """Captions from a JSON object ``{video_id: [caption, ...], ...}`` and sets from ``split_file``.

    Blank captions are dropped; a video must keep at least one. ``split_file`` is a JSON
    ``{"train": [...], "val": [...], "test": [...]}`` or a folder of ``{train,val,test}_list.txt`` (see
    :func:`msvd_splits`); videos in no set are left out (logged), ids without captions are an error.
    Without ``split_file`` every video is a training video, in the file's order.
    """
    path = Path(path)
    data = read_json(path)
    expect_type(path, "top level", data, dict, "an object {video_id: [caption, ...]}")
    captions: dict[str, list[str]] = {}
    for video_id, texts in data.items():
        kept = [
            text.strip() for text in _string_list(path, f"[{json.dumps(video_id)}]", texts) if text.strip()
        ]
        if not kept:
            raise ValueError(f"{path}: [{json.dumps(video_id)}]: expected at least one non-blank caption")
        captions[video_id] = kept
    if split_file is None:
        splits = {"train": list(captions), "val": [], "test": []}
    else:
        splits = read_split_file(split_file, captions)
    return caption_set(path, captions, splits)
