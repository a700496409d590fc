"""Video captioning annotations: the MSVD and MSR-VTT readers, a generic caption JSON, the tokenizer and
the vocabulary.

A reader returns a :class:`CaptionSet`: the raw captions of each video (kept raw: they are the metrics'
references) and the ordered video ids of the "train", "val" and "test" sets. :func:`tokenize` splits a
caption into lower-case PTB words with the punctuation removed, as pycocoevalcap's PTBTokenizer does
before scoring. :class:`Vocabulary` is built from the training captions only and turns captions
into token ids (:meth:`Vocabulary.encode`, :func:`encode_captions`) and back (:meth:`Vocabulary.decode`).

docs/captioning_data.md describes the formats, the split rules and every error. Errors name the file
(with the line for CSV rows and the key path for JSON values) and what was expected:
``FileNotFoundError`` when a file is missing, ``ValueError`` otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

__all__ = [
    "MSVD_SPLIT_SIZES",
    "SPLITS",
    "CaptionSet",
    "Vocabulary",
    "encode_captions",
    "msvd_splits",
    "read_caption_json",
    "read_msrvtt",
    "read_msvd_csv",
    "read_youtube_mapping",
    "tokenize",
]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The names of the sets of a :class:`CaptionSet`, in order."""
MSVD_SPLIT_SIZES: dict[str, int] = {"train": 1200, "val": 100, "test": 670}
"""The standard MSVD split (Venugopalan et al. 2015, Yao et al. 2015): consecutive blocks of the 1970
videos in the order of youtube_mapping.txt (``vid1`` .. ``vid1970``)."""

_MSVD_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
_MSRVTT_SPLITS = {"train": "train", "validate": "val", "test": "test"}
_SPLIT_LIST_FILES = {name: f"{name}_list.txt" for name in SPLITS}
_MAPPING_LINE = re.compile(r"(\S+)\s+vid(\d+)")

# The PTB tokenizer (CoreNLP 3.4.1, as pycocoevalcap runs it) on ordinary English text, as one regex over
# the original-case text: the first alternative that matches at a position wins, so the special cases
# come before the generic word. Some rules are case-sensitive because CoreNLP's are.
_ABBREVIATIONS = (
    "mr|mrs|ms|drs?|profs?|sens?|reps?|gov|lt|col|gen|adm|rev|maj|sgt|capt|mt|st|ave|pres|jr|sr|rd|"
    "blvd|bros|inc|corp|cos?|ltd|etc|vs|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|mon|tue|tues|"
    "wed|thu|thurs|fri"
)
_PTB_TOKEN = re.compile(
    r"(?<!\w)[A-HJ-XZ]'[A-Za-z]{2,}"  # O'Neil, D'Arcy: kept whole (not after I or Y)
    r"|(?<!\w)[dlno]'[a-z]{2,}"  # o'clock, l'amour, d'oh
    r"|(?<!\w)[jyJY]'(?=[A-Za-z])"  # elisions split after the apostrophe: y'all -> y' all
    r"|(?<!\w)[a-z]*[aeiouy]'[aeiou][a-z]*"  # ma'am
    r"|'n'|'n(?![\w'])"  # rock'n'roll -> rock 'n' roll
    r"|(?i:'(?:s|re|ve|ll|d|m|em)(?![^\W_]))"  # clitics: man's -> man 's
    r"|(?i:'t(?=(?:is|was)\b))"  # 'tis -> 't is
    r"|'[2-9]0s"  # '90s
    r"|(?i:n't)(?!\w)"  # the n't of don't
    r"|(?i:(?<![\w.])ph\.d\.)"
    r"|(?<![\w.])[A-Za-z](?:\.[A-Za-z])+(?!\w)\.?"  # acronyms keep their periods: u.s., a.m.
    rf"|(?i:(?<![\w.])(?:{_ABBREVIATIONS})\.)"  # mr., st., etc.
    r"|(?i:(?<![\w.])nos?\.(?=\s*\d))"  # no. 5
    r"|[A-Z]+&[A-Z]+"  # AT&T (upper case only: at&t splits)
    r"|@[A-Za-z_]\w*|\#[A-Za-z]+"  # @user, #tag
    r"|\d+(?::\d+)+"  # 3:30, 10:30:45 (12:00pm -> 12:00 pm)
    r"|\w+(?=(?i:n't)(?!\w))"  # the do of don't, ca of can't
    # a word or number: letters/digits joined by - / . (and , between digits), maybe a sign or a
    # leading decimal point: t-shirt, cat/dog, 1/2, 2.5, 1,000, -5, .5, www.x.com
    r"|(?:(?<![\w.])-?\.(?=\d)|(?<![\w.])-(?=\d))?\w+(?:(?:[-/.]|(?<=\d),(?=\d))\w+)*"
    r"|[!?]{2,}"  # !!! and ?! are tokens pycocoevalcap keeps
    r"|\S"
)
# CoreNLP splits these words in two.
_SPLIT_WORDS = {
    "cannot": ["can", "not"],
    "gonna": ["gon", "na"],
    "gotta": ["got", "ta"],
    "wanna": ["wan", "na"],
    "lemme": ["lem", "me"],
    "gimme": ["gim", "me"],
}
# Single characters pycocoevalcap drops: its list (. ? ! , : ; - ' `) plus what CoreNLP turns into a
# dropped token first (" -> `` or '', ‘ “ ” -> quotes, – — -> --, … -> ...).
_PUNCTUATION = frozenset(".,?!:;-'\"`\u2018\u201c\u201d\u2026\u2013\u2014")
# CoreNLP writes brackets as -LRB- etc. and lower-cases them; pycocoevalcap's list holds the upper-case
# -LRB- -RRB- -LCB- -RCB- only, so after -lowerCase the brackets stay in the tokenized captions.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def tokenize(text: str, *, keep_brackets: bool = False) -> list[str]:
    """Lower-case PTB words of ``text`` with the punctuation dropped, as pycocoevalcap's PTBTokenizer
    (Stanford CoreNLP 3.4.1 with ``-lowerCase``, then its punctuation removal) gives on ordinary English.

    ``"A man's riding a horse, isn't he?"`` -> ``["a", "man", "'s", "riding", "a", "horse", "is", "n't",
    "he"]``. Clitics split off as in the Penn Treebank (``'s 're 've 'll 'd 'm n't``: ``can't`` ->
    ``ca n't``; ``cannot gonna gotta wanna`` -> ``can not``, ``gon na`` ...); hyphenated and slashed
    words (``t-shirt``, ``cat/dog``), numbers (``2.5``, ``1,000``, ``-5``, ``1/2``, ``3:30``),
    acronyms and common abbreviations with their periods (``u.s.``, ``a.m.``, ``mr.``, ``etc.``) and
    ``o'clock``, ``AT&T`` stay whole. The tokens ``. , ? ! : ; - ' " `` (and curly quotes, dashes,
    ``…``) are dropped; ``!!!``, ``?!`` and symbols such as ``& $ % /`` are kept.

    Brackets are dropped unless ``keep_brackets``: pycocoevalcap keeps them, as ``-lrb- -rrb- -lsb-
    -rsb- -lcb- -rcb-`` (its punctuation list holds only the upper-case forms), so scoring uses
    ``keep_brackets=True`` while the vocabulary does without them.

    Known differences from CoreNLP, on unusual text: URLs, e-mail addresses and SGML tags (``<b>``) are
    split at their symbols; CoreNLP's longer abbreviation list (``Messrs.``, ``Esq.`` ...) and its
    sentence-boundary guess after an abbreviation followed by a capital (``etc. The``) are not
    reproduced; ``somethin'``, ``ol'``, ``c'mon``, ``li'l`` split at or lose their apostrophe; runs such as ``a..b`` and ``__init__``
    split differently.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    tokens: list[str] = []
    for piece in _PTB_TOKEN.findall(text.translate(_APOSTROPHES)):
        if piece in _BRACKETS:
            if keep_brackets:
                tokens.append(_BRACKETS[piece])
            continue
        if len(piece) == 1 and piece in _PUNCTUATION:
            continue
        word = piece.lower()
        tokens.extend(_SPLIT_WORDS.get(word, [word]))
    return tokens


# --------------------------------------------------------------------------------------------------
# The caption set
# --------------------------------------------------------------------------------------------------


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


def _caption_set(path: Path, captions: dict[str, list[str]], splits: dict[str, list[str]]) -> CaptionSet:
    try:
        return CaptionSet(captions, splits)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# File access (errors name the file)
# --------------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
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


def _read_json(path: Path) -> Any:
    text = _read_text(path)
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


def _expect(path: Path, key: str, value: object, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"{path}: {key}: expected {what}, got {_kind(value)}")


def _string_list(path: Path, key: str, value: object) -> list[str]:
    _expect(path, key, value, list, "a list of strings")
    items = cast("list[object]", value)
    for index, item in enumerate(items):
        _expect(path, f"{key}[{index}]", item, str, "a string")
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
        lines = enumerate(_read_text(path).splitlines(), start=1)
        lists[name] = (path, [(f"line {number}", line.strip()) for number, line in lines if line.strip()])
    return lists


def _read_split_json(path: Path) -> dict[str, _SplitList]:
    data = _read_json(path)
    _expect(path, "top level", data, dict, 'an object {"train": [...], "val": [...], "test": [...]}')
    unknown = sorted(set(data) - set(SPLITS))
    missing = [name for name in SPLITS if name not in data]
    if unknown or missing:
        raise ValueError(f"{path}: expected the keys {list(SPLITS)}, missing {missing}, unknown {unknown}")
    lists: dict[str, _SplitList] = {}
    for name in SPLITS:
        ids = _string_list(path, f'["{name}"]', data[name])
        lists[name] = (path, [(f'["{name}"][{index}]', video_id) for index, video_id in enumerate(ids)])
    return lists


def _read_splits(split_file: str | Path, known: Iterable[str]) -> dict[str, list[str]]:
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


# --------------------------------------------------------------------------------------------------
# MSVD
# --------------------------------------------------------------------------------------------------


def read_youtube_mapping(path: str | Path) -> list[str]:
    """The MSVD clip ids (``VideoID_Start_End``) of youtube_mapping.txt, ordered by their number.

    Each line is ``<clip id> vid<N>``; the numbers must be 1..n, each once (blank lines are skipped).
    """
    path = Path(path)
    numbered: dict[int, str] = {}
    for line_number, line in enumerate(_read_text(path).splitlines(), start=1):
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
        return _read_splits(split_file, ids)
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
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
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
        return _caption_set(path, captions, msvd_splits(list(captions), split_file))
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
    return _caption_set(path, captions, splits)


# --------------------------------------------------------------------------------------------------
# MSR-VTT
# --------------------------------------------------------------------------------------------------


def _read_msrvtt_file(
    path: Path, splits: dict[str, list[str]], video_split: dict[str, str], captions: dict[str, list[str]]
) -> None:
    data = _read_json(path)
    _expect(path, "top level", data, dict, 'an object with "videos" and "sentences"')
    for key in ("videos", "sentences"):
        if key not in data:
            raise ValueError(f"{path}: missing the key {key!r}")
        _expect(path, key, data[key], list, "a list")
    videos: list[str] = []
    for index, video in enumerate(data["videos"]):
        where = f"videos[{index}]"
        _expect(path, where, video, dict, 'an object with "video_id" and "split"')
        for key in ("video_id", "split"):
            _expect(path, f"{where}.{key}", video.get(key), str, "a string")
        video_id, split = video["video_id"], video["split"]
        if split not in _MSRVTT_SPLITS:
            raise ValueError(f"{path}: {where}.split: expected one of {list(_MSRVTT_SPLITS)}, got {split!r}")
        if video_id in video_split:
            raise ValueError(f"{path}: {where}.video_id: video {video_id!r} is listed twice")
        video_split[video_id] = _MSRVTT_SPLITS[split]
        splits[_MSRVTT_SPLITS[split]].append(video_id)
        videos.append(video_id)
    for index, sentence in enumerate(data["sentences"]):
        where = f"sentences[{index}]"
        _expect(path, where, sentence, dict, 'an object with "video_id" and "caption"')
        for key in ("video_id", "caption"):
            _expect(path, f"{where}.{key}", sentence.get(key), str, "a string")
        if sentence["video_id"] not in video_split:
            raise ValueError(
                f"{path}: {where}.video_id: video {sentence['video_id']!r} is not in any videos list"
            )
        if sentence["caption"].strip():
            captions.setdefault(sentence["video_id"], []).append(sentence["caption"].strip())
    uncaptioned = [video_id for video_id in videos if video_id not in captions]
    if uncaptioned:
        raise ValueError(f"{path}: {len(uncaptioned)} videos have no caption: {uncaptioned[:5]}")


def read_msrvtt(train_val_json: str | Path, test_json: str | Path | None = None) -> CaptionSet:
    """The captions and sets of MSR-VTT from ``train_val_videodatainfo.json`` (and
    ``test_videodatainfo.json``).

    Each file is an object with ``videos`` (``{"video_id": ..., "split": "train" | "validate" | "test"}``)
    and ``sentences`` (``{"video_id": ..., "caption": ...}``); other keys are ignored. A video's set is
    its ``split`` ("validate" is "val"); the standard split is 6513 / 497 / 2990. A sentence of a video
    that no videos list of the files read so far holds is an error, and so is a video with no caption.
    """
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    video_split: dict[str, str] = {}
    captions: dict[str, list[str]] = {}
    files = [Path(train_val_json)] + ([] if test_json is None else [Path(test_json)])
    for path in files:
        _read_msrvtt_file(path, splits, video_split, captions)
    sizes = {name: len(ids) for name, ids in splits.items()}
    logger.info("MSR-VTT: %s videos per set (standard: 6513 / 497 / 2990)", sizes)
    return _caption_set(files[-1], captions, splits)


# --------------------------------------------------------------------------------------------------
# Generic caption JSON
# --------------------------------------------------------------------------------------------------


def read_caption_json(path: str | Path, split_file: str | Path | None = None) -> CaptionSet:
    """Captions from a JSON object ``{video_id: [caption, ...], ...}`` and sets from ``split_file``.

    Blank captions are dropped; a video must keep at least one. ``split_file`` is a JSON
    ``{"train": [...], "val": [...], "test": [...]}`` or a folder of ``{train,val,test}_list.txt`` (see
    :func:`msvd_splits`); videos in no set are left out (logged), ids without captions are an error.
    Without ``split_file`` every video is a training video, in the file's order.
    """
    path = Path(path)
    data = _read_json(path)
    _expect(path, "top level", data, dict, "an object {video_id: [caption, ...]}")
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
        splits = _read_splits(split_file, captions)
    return _caption_set(path, captions, splits)


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------


class Vocabulary:
    """Words <-> token ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, then the words.

    Args:
        words: all entries in id order, the four specials first.
    """

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
    _FORMAT = "lstmvision.vocabulary"
    _VERSION = 1

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if tuple(words[: len(self.SPECIALS)]) != self.SPECIALS:
            raise ValueError(f"Vocabulary: the first words must be {list(self.SPECIALS)}, got {words[:4]}")
        bad = [
            word for word in words if not isinstance(word, str) or not word or any(c.isspace() for c in word)
        ]
        if bad:
            raise ValueError(f"Vocabulary: words must be non-empty strings without blanks, got {bad[:5]}")
        duplicated = [word for word, count in Counter(words).items() if count > 1]
        if duplicated:
            raise ValueError(f"Vocabulary: words listed twice: {duplicated[:5]}")
        self.words: list[str] = words
        self.index: dict[str, int] = {word: i for i, word in enumerate(words)}

    @classmethod
    def build(cls, captions: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """The vocabulary of the (training) ``captions``: the words seen at least ``min_count`` times, by
        descending count then alphabetically, at most ``max_size`` entries in all (the specials
        included)."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"Vocabulary.build: min_count must be an integer >= 1, got {min_count!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 4
        ):
            raise ValueError(
                f"Vocabulary.build: max_size must be an integer >= 4 (the specials) or None, got {max_size!r}"
            )
        if isinstance(captions, str):
            raise ValueError("Vocabulary.build: captions must be a list of captions, got a single string")
        counts = Counter(token for caption in captions for token in tokenize(caption))
        for special in cls.SPECIALS:
            counts.pop(special, None)
        ranked = sorted(
            (word for word, count in counts.items() if count >= min_count), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(cls.SPECIALS)]
        return cls([*cls.SPECIALS, *ranked])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container: equal by value, not hashable

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries)"

    def encode(self, caption: str, max_length: int | None = None) -> list[int]:
        """``<bos>``, the ids of ``tokenize(caption)`` (``<unk>`` for unknown words), ``<eos>``; cut to
        ``max_length`` (>= 2) ids keeping the final ``<eos>``."""
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2
        ):
            raise ValueError(
                f"Vocabulary.encode: max_length must be an integer >= 2 or None, got {max_length!r}"
            )
        ids = [self.BOS, *(self.index.get(token, self.UNK) for token in tokenize(caption)), self.EOS]
        if max_length is not None and len(ids) > max_length:
            ids = [*ids[: max_length - 1], self.EOS]
        return ids

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The words of ``ids`` joined by spaces, up to the first ``<eos>``; ``<pad>`` and ``<bos>`` are
        skipped, ``<unk>`` is written as ``<unk>``."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    f"Vocabulary.decode expects one sequence of ids (L,), got shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        words: list[str] = []
        for token_id in ids:
            token_id = int(token_id)
            if not 0 <= token_id < len(self.words):
                raise ValueError(f"Vocabulary.decode: id {token_id} is outside [0, {len(self.words) - 1}]")
            if token_id == self.EOS:
                break
            if token_id not in (self.PAD, self.BOS):
                words.append(self.words[token_id])
        return " ".join(words)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for checkpoints loaded with ``torch.load(weights_only=True)``)."""
        return {"format": self._FORMAT, "version": self._VERSION, "words": list(self.words)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """The vocabulary written by :meth:`to_dict`; a ValueError names what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Vocabulary.from_dict: expected a dict, got {type(data).__name__}")
        if data.get("format") != cls._FORMAT or data.get("version") != cls._VERSION:
            raise ValueError(
                f"Vocabulary.from_dict: expected format {cls._FORMAT!r} version {cls._VERSION}, got format "
                f"{data.get('format')!r} version {data.get('version')!r}"
            )
        words = data.get("words")
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise ValueError(
                f"Vocabulary.from_dict: 'words' must be a list of strings, got {type(words).__name__}"
            )
        return cls(words)


def encode_captions(vocab: Vocabulary, captions: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    """Token ids of ``captions`` padded with ``<pad>`` to the longest of them.

    Returns:
        ``(ids, lengths)``: a LongTensor ``(N, L)`` with ``L <= max_length`` and the lengths ``(N,)``
        (``<bos>`` and ``<eos>`` counted).
    """
    if isinstance(captions, str):
        raise ValueError("encode_captions: captions must be a list of captions, got a single string")
    encoded = [vocab.encode(caption, max_length) for caption in captions]
    lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
    width = max((len(ids) for ids in encoded), default=0)
    out = torch.full((len(encoded), width), vocab.PAD, dtype=torch.long)  # (N, L)
    for row, ids in enumerate(encoded):
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out, lengths
