"""The text split lists of UCF101 and HMDB51: reading their lines, finding the videos they name, and
the checks both layouts make."""

from __future__ import annotations

from pathlib import Path

from lstmvision.data.io.clips import VideoSample

__all__ = ["check_every_class", "check_split", "listed_video", "split_lines"]


def split_lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of the non-blank lines (CRLF and a BOM tolerated)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {what} is not UTF-8 text ({exc})") from exc
    return [(number, line.split()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def listed_video(root: Path, relative: str, where: str) -> Path:
    """``root/relative``, or the frame folder named like it without the extension."""
    path = root / relative
    if path.is_file():
        return path
    folder = path.with_suffix("")
    if folder.is_dir():
        return folder
    raise FileNotFoundError(f"{where}: listed video {path} not found (nor a frame folder {folder})")


def check_split(split: int) -> None:
    """``split`` one of the three official splits."""
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split!r}")


def check_every_class(samples: list[VideoSample], names: list[str], where: Path) -> None:
    """Every class of ``names`` has a training video in ``samples``."""
    present = {s.label for s in samples}
    missing = [name for label, name in enumerate(names) if label not in present]
    if missing:
        raise ValueError(f"{where}: no training video of classes {missing}")
