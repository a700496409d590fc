"""Class-per-folder videos, ``root/<class>/<video file or frame folder>``, with or without
``train``/``val``/``test`` subfolders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lstmvision.data.checks import check_extensions, check_fraction, check_root
from lstmvision.data.io.clips import VideoSample
from lstmvision.data.io.frames import VIDEO_EXTENSIONS, videos_in
from lstmvision.data.layouts.splits import VideoSplits, split_by_class

__all__ = ["read_folder_splits", "scan_class_folders"]


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
    exts = check_extensions(extensions)
    check_root(root, "video")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no class folder; expected <root>/<class>/<video file or frame folder>")
    names = [p.name for p in folders] if class_names is None else list(class_names)
    samples: list[VideoSample] = []
    for folder in folders:
        if folder.name not in names:
            raise ValueError(f"{folder}: class '{folder.name}' is not one of the training classes {names}")
        videos = videos_in(folder, exts)
        if not videos:
            raise ValueError(
                f"{folder}: empty class folder; expected video files ({', '.join(exts)}) or frame folders"
            )
        samples.extend(VideoSample(video, names.index(folder.name)) for video in videos)
    samples.sort(key=lambda s: s.label)  # stable: natural order within a class
    return samples, names


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
    check_fraction("val_fraction", val_fraction, zero_ok=True)
    check_root(root, "video")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, names = scan_class_folders(root / "train", extensions=extensions)
        test, _ = scan_class_folders(root / "test", extensions=extensions, class_names=names)
        if (root / "val").is_dir():
            val, _ = scan_class_folders(root / "val", extensions=extensions, class_names=names)
        elif val_fraction > 0:
            val, train = split_by_class(train, [val_fraction], seed, names, root / "train")
        else:
            val = test
        return VideoSplits(train, val, test, names)
    check_fraction("test_fraction", test_fraction, zero_ok=False)
    samples, names = scan_class_folders(root, extensions=extensions)
    test, val, train = split_by_class(samples, [test_fraction, val_fraction], seed, names, root)
    return VideoSplits(train, val if val_fraction > 0 else test, test, names)
