"""MSVD (Chen & Dolan, 2011) captions: ``MSR Video Description Corpus.csv``, the clip order of
``youtube_mapping.txt`` and the standard 1200 / 100 / 670 split. docs/captioning_data.md has the format."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from lstmvision.data.formats.captions import CaptionSet, caption_set, read_split_file, read_text

__all__ = ["MSVD_SPLIT_SIZES", "msvd_splits", "read_msvd_csv", "read_youtube_mapping"]

logger = logging.getLogger(__name__)

MSVD_SPLIT_SIZES: dict[str, int] = {"train": 1200, "val": 100, "test": 670}
"""The standard MSVD split (Venugopalan et al. 2015, Yao et al. 2015): consecutive blocks of the 1970
videos in the order of youtube_mapping.txt (``vid1`` .. ``vid1970``)."""

_MSVD_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
_MAPPING_LINE = re.compile(r"(\S+)\s+vid(\d+)")


def read_youtube_mapping(path: str | Path) -> list[str]:
    """The MSVD clip ids (``VideoID_Start_End``) of youtube_mapping.txt, ordered by their number.

    Each line is ``<clip id> vid<N>``; the numbers must be 1..n, each once (blank lines are skipped).
    """
    path = Path(path)
    numbered: dict[int, str] = {}
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        match = _MAPPING_LINE.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"{path}: line {line_number}: expected '<clip id> vid<N>', got {line.strip()!r}")
        number = int(match.group(2))
        if number in numbered:
            raise ValueError(f"{path}: line {line_number}: vid{number} appears twice")
        numbered[number] = match.group(1)
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        gaps = sorted(set(range(1, len(numbered) + 1)) - set(numbered))[:5]
        raise ValueError(f"{path}: expected vid1..vid{len(numbered)} each once, missing {gaps}")
    ids = [numbered[number] for number in sorted(numbered)]
    if len(set(ids)) != len(ids):
        duplicated = [video_id for video_id, count in Counter(ids).items() if count > 1][:5]
        raise ValueError(f"{path}: clip ids mapped twice: {duplicated}")
    return ids


def msvd_splits(
    video_ids_in_order: Sequence[str], split_file: str | Path | None = None
) -> dict[str, list[str]]:
    """The train/val/test video ids of MSVD.

    With ``split_file`` (a JSON ``{"train": [...], "val": [...], "test": [...]}`` or a folder holding
    ``train_list.txt``, ``val_list.txt`` and ``test_list.txt``, one video id a line) the sets are read
    from it; every id in it must be one of ``video_ids_in_order``. Without it, ``video_ids_in_order``
    must be exactly the 1970 MSVD videos in the standard order (youtube_mapping.txt, see
    :func:`read_youtube_mapping`): the first 1200 are the training set, the next 100 the validation set
    and the last 670 the test set (Venugopalan et al. 2015; Yao et al. 2015).
    """
    ids = list(video_ids_in_order)
    duplicated = [video_id for video_id, count in Counter(ids).items() if count > 1]
    if duplicated:
        raise ValueError(f"msvd_splits: video ids listed twice: {duplicated[:5]}")
    if split_file is not None:
        return read_split_file(split_file, ids)
    total = sum(MSVD_SPLIT_SIZES.values())
    if len(ids) != total:
        raise ValueError(
            f"msvd_splits: the standard MSVD split needs the {total} videos in youtube_mapping.txt order, got "
            f"{len(ids)} videos; give a split_file for another set of videos"
        )
    train, val = MSVD_SPLIT_SIZES["train"], MSVD_SPLIT_SIZES["val"]
    return {"train": ids[:train], "val": ids[train : train + val], "test": ids[train + val :]}


def _digits(path: Path, line: int, column: str, value: str) -> str:
    if not value.isdigit() or not value.isascii():
        raise ValueError(f"{path}: line {line}: {column} must be a whole number of seconds, got {value!r}")
    return value


def _read_msvd_rows(path: Path) -> dict[str, list[str]]:
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in _MSVD_COLUMNS if name not in header]
        if missing:
            raise ValueError(f"{path}: line 1: header misses the columns {missing}, got {header}")
        column = {name: header.index(name) for name in _MSVD_COLUMNS}
        description_last = column["Description"] == len(header) - 1
        captions: dict[str, list[str]] = {}
        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue
            if len(row) > len(header) and description_last:
                # an unquoted description with commas in it: the extra fields are the rest of it
                row = [*row[: len(header) - 1], ",".join(row[len(header) - 1 :])]
            if len(row) != len(header):
                raise ValueError(f"{path}: line {line}: expected {len(header)} fields, got {len(row)}")
            description = row[column["Description"]].strip()
            if row[column["Language"]].strip() != "English" or not description:
                continue
            video = row[column["VideoID"]].strip()
            if not video:
                raise ValueError(f"{path}: line {line}: VideoID is empty")
            start = _digits(path, line, "Start", row[column["Start"]].strip())
            end = _digits(path, line, "End", row[column["End"]].strip())
            captions.setdefault(f"{video}_{start}_{end}", []).append(description)
    except csv.Error as exc:
        raise ValueError(f"{path}: line {reader.line_num}: not valid CSV: {exc}") from None
    return captions


def read_msvd_csv(
    path: str | Path, *, split_file: str | Path | None = None, mapping_file: str | Path | None = None
) -> CaptionSet:
    """The English captions of ``MSR Video Description Corpus.csv`` and the MSVD sets.

    Rows whose Language is ``English`` and whose Description is not blank are kept; a video's id is
    ``f"{VideoID}_{Start}_{End}"``. The sets come from ``split_file`` if given (see
    :func:`msvd_splits`), else from the standard split over the order of ``mapping_file``
    (youtube_mapping.txt; every clip in it must have English captions, captioned clips not in it are
    left out), else over the order in which the videos first appear in the CSV, which is *not* the
    standard order (a warning says so).
    """
    path = Path(path)
    captions = _read_msvd_rows(path)
    if split_file is not None:
        return caption_set(path, captions, msvd_splits(list(captions), split_file))
    if mapping_file is None:
        logger.warning(
            "%s: no mapping_file: splitting MSVD in the CSV's order, not the standard youtube_mapping.txt order",
            path,
        )
        order = list(captions)
    else:
        order = read_youtube_mapping(mapping_file)
        uncaptioned = [video_id for video_id in order if video_id not in captions]
        if uncaptioned:
            raise ValueError(
                f"{mapping_file}: {len(uncaptioned)} clips have no English caption in {path}: "
                f"{uncaptioned[:5]}"
            )
    try:
        splits = msvd_splits(order)
    except ValueError as exc:
        raise ValueError(f"{mapping_file or path}: {exc}") from None
    return caption_set(path, captions, splits)
