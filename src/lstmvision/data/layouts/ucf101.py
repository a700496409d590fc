"""UCF101 (Soomro, Zamir & Shah, 2012) with its official split files ``classInd.txt``,
``trainlist0N.txt`` and ``testlist0N.txt``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from lstmvision.data.checks import check_fraction, check_root
from lstmvision.data.io.clips import VideoSample
from lstmvision.data.layouts.split_lists import check_every_class, check_split, listed_video, split_lines
from lstmvision.data.layouts.splits import VideoSplits, held_out

__all__ = ["read_ucf101_splits"]

logger = logging.getLogger(__name__)

_UCF101_NAME = re.compile(r"v_([A-Za-z0-9]+)_g(\d+)_c(\d+)\.[A-Za-z0-9]+")


def _read_ucf101_classes(path: Path) -> list[str]:
    names: list[str] = []
    for number, fields in split_lines(path, "UCF101 class index (classInd.txt)"):
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
    for number, fields in split_lines(path, "UCF101 split list"):
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
        entries.append((VideoSample(listed_video(root, fields[0], where), label), int(match.group(2))))
    if not entries:
        raise ValueError(f"{path}: no video listed")
    return entries


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
    check_split(split)
    check_fraction("val_fraction", val_fraction, zero_ok=True)
    check_root(root, "UCF101")
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
    check_every_class([s for s, _ in train], names, train_list)
    if val_fraction == 0:
        return VideoSplits([s for s, _ in train], test, test, names)
    groups = sorted({group for _, group in train})
    count = held_out(len(groups), val_fraction)
    if count >= len(groups):
        raise ValueError(
            f"{train_list}: {len(groups)} groups; val_fraction={val_fraction} would hold out {count} of them "
            "and leave none for training"
        )
    held = set(np.random.default_rng(seed).choice(groups, size=count, replace=False).tolist())
    logger.info("UCF101 split %d: groups %s held out of training for validation", split, sorted(held))
    val = [s for s, group in train if group in held]
    return VideoSplits([s for s, group in train if group not in held], val, test, names)
