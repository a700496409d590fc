"""MSR-VTT (Xu et al., 2016) captions and sets: ``train_val_videodatainfo.json`` and
``test_videodatainfo.json``. docs/captioning_data.md has the format."""

from __future__ import annotations

import logging
from pathlib import Path

from lstmvision.data.formats.captions import SPLITS, CaptionSet, caption_set, expect_type, read_json

__all__ = ["read_msrvtt"]

logger = logging.getLogger(__name__)

_MSRVTT_SPLITS = {"train": "train", "validate": "val", "test": "test"}


def _read_msrvtt_file(
    path: Path, splits: dict[str, list[str]], video_split: dict[str, str], captions: dict[str, list[str]]
) -> None:
    data = read_json(path)
    expect_type(path, "top level", data, dict, 'an object with "videos" and "sentences"')
    for key in ("videos", "sentences"):
        if key not in data:
            raise ValueError(f"{path}: missing the key {key!r}")
        expect_type(path, key, data[key], list, "a list")
    videos: list[str] = []
    for index, video in enumerate(data["videos"]):
        where = f"videos[{index}]"
        expect_type(path, where, video, dict, 'an object with "video_id" and "split"')
        for key in ("video_id", "split"):
            expect_type(path, f"{where}.{key}", video.get(key), str, "a string")
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
        expect_type(path, where, sentence, dict, 'an object with "video_id" and "caption"')
        for key in ("video_id", "caption"):
            expect_type(path, f"{where}.{key}", sentence.get(key), str, "a string")
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
    return caption_set(files[-1], captions, splits)
