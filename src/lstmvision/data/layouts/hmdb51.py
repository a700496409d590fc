"""HMDB51 (Kuehne et al., 2011) with its official split files ``<class>_test_split<N>.txt``."""

from __future__ import annotations

import re
from pathlib import Path

from lstmvision.data.checks import check_fraction, check_root
from lstmvision.data.io.clips import VideoSample
from lstmvision.data.layouts.split_lists import check_every_class, check_split, listed_video, split_lines
from lstmvision.data.layouts.splits import VideoSplits, split_by_class

__all__ = ["read_hmdb51_splits"]

_HMDB51_SPLIT_FILE = re.compile(r"(.+)_test_split(\d+)\.txt")


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
    check_split(split)
    check_fraction("val_fraction", val_fraction, zero_ok=True)
    check_root(root, "HMDB51")
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
        for number, fields in split_lines(files[name], "HMDB51 split file"):
            where = f"{files[name]}:{number}"
            if len(fields) != 2:
                raise ValueError(f"{where}: expected '<video name>.avi <0|1|2>', got {fields}")
            if fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{where}: marker '{fields[1]}' is not 0 (unused), 1 (training) or 2 (test)")
            if fields[1] == "0":
                continue
            sample = VideoSample(listed_video(root / name, fields[0], where), label)
            (train if fields[1] == "1" else test).append(sample)
    check_every_class(train, names, lists)
    if val_fraction == 0:
        return VideoSplits(train, test, test, names)
    val, train = split_by_class(train, [val_fraction], seed, names, lists)
    return VideoSplits(train, val, test, names)
