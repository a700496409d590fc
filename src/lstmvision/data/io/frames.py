"""Listing videos and frames: the file extensions read, the one natural order of names, and the
listings of frame folders, video folders and subfolders that every layout uses.

Natural order compares digit runs as numbers and the rest without letter case (``frame_2`` before
``frame_10``, ``Frame_3`` between them); names equal under that rule keep their exact order.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "FRAME_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "frame_files",
    "natural_key",
    "subfolders",
    "videos_in",
]

VIDEO_EXTENSIONS: tuple[str, ...] = ("mp4", "avi", "mkv", "webm", "mov", "mpg")
"""File extensions read as video files by default (any letter case)."""
FRAME_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "bmp")
"""File extensions of the frame images in a frame folder (any letter case)."""


def natural_key(name: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """The sort key of ``name`` in natural order (see the module docstring)."""
    # Digit runs compare as numbers (frame_2 < frame_10); the tag keeps ints and strs apart.
    # isdecimal, not isdigit: int() refuses digits such as superscripts that isdigit accepts
    parts = tuple((0, int(p)) if p.isdecimal() else (1, p.lower()) for p in re.split(r"(\d+)", name) if p)
    return parts, name


def frame_files(folder: Path) -> list[Path]:
    """The frame images of ``folder`` (by extension, hidden files left out), in natural order."""
    files = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower().lstrip(".") in FRAME_EXTENSIONS and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def videos_in(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Video files (by extension) and frame folders (subfolders) of ``folder``, hidden entries and
    other files left out, in natural order."""
    found = [
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(".")
        and (entry.is_dir() or (entry.is_file() and entry.suffix.lower().lstrip(".") in extensions))
    ]
    return sorted(found, key=lambda p: natural_key(p.name))


def subfolders(folder: Path) -> list[Path]:
    """The subfolders of ``folder``, hidden ones left out, in natural order."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )
