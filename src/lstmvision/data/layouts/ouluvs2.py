"""OuluVS2 (Anina et al., FG 2015): ``<root>/<speaker>/<view>/<utterance>``, each leaf a video file or
a frame folder, and the labels of its utterances (phrases u31-u60, digit sequences u1-u30).

docs/multiview_data.md describes the layout and every error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from lstmvision.data.checks import check_root
from lstmvision.data.io.frames import subfolders

__all__ = [
    "OULUVS2_DIGIT_SEQUENCES",
    "OULUVS2_PHRASES",
    "OULUVS2_VIEW_ANGLES",
    "custom_utterance_classes",
    "ouluvs2_utterance_classes",
    "parse_number",
    "scan_ouluvs2",
]


OULUVS2_PHRASES: tuple[str, ...] = (
    "Excuse me",
    "Goodbye",
    "Hello",
    "How are you",
    "Nice to meet you",
    "See you",
    "I am sorry",
    "Thank you",
    "Have a good time",
    "You are welcome",
)
"""The ten OuluVS2 phrases; utterances ``u31 + 3k .. u33 + 3k`` are phrase ``k`` (see the docs' source)."""
OULUVS2_DIGIT_SEQUENCES: tuple[str, ...] = (
    "1 7 3 5 1 6 2 6 6 7",
    "4 0 2 9 1 8 5 9 0 4",
    "1 9 0 7 8 8 0 3 2 8",
    "4 9 1 2 1 1 8 5 5 1",
    "8 6 3 5 4 0 2 1 1 2",
    "2 3 9 0 0 1 6 7 6 4",
    "5 2 7 1 6 1 3 6 7 0",
    "9 7 4 4 4 3 5 5 8 7",
    "6 3 8 5 3 9 8 5 6 5",
    "7 3 2 4 0 1 9 9 5 0",
)
"""The ten OuluVS2 digit sequences; utterances ``u1 + 3k .. u3 + 3k`` are sequence ``k``."""
OULUVS2_VIEW_ANGLES: dict[str, int] = {"1": 0, "2": 30, "3": 45, "4": 60, "5": 90}
"""OuluVS2 view number -> camera angle in degrees (0 is frontal, 90 the profile)."""

_OULU_SPEAKER = re.compile(r"s?([0-9]+)", re.ASCII)
_OULU_VIEW = re.compile(r"v?([0-9]+)", re.ASCII)
_OULU_LEAF = re.compile(r"(?:s([0-9]+)_v([0-9]+)_)?u?([0-9]+)", re.ASCII)


def parse_number(value: str | int, prefix: str, what: str) -> str:
    """``12``, ``"12"``, ``"012"`` or ``"<prefix>12"`` -> ``"12"``; anything else is a ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    match = re.fullmatch(rf"{prefix}?([0-9]+)", str(value), re.ASCII) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{what} must be a number or '{prefix}<number>', got {value!r}")
    return str(int(match.group(1)))


def ouluvs2_utterance_classes(task: Literal["phrases", "digits"] = "phrases") -> dict[str, str]:
    """Utterance number (``"31"``) -> class name: ``"phrases"`` maps u31-u60 to :data:`OULUVS2_PHRASES`
    (three consecutive utterances per phrase), ``"digits"`` u1-u30 to :data:`OULUVS2_DIGIT_SEQUENCES`."""
    if task == "phrases":
        return {str(31 + i): OULUVS2_PHRASES[i // 3] for i in range(30)}
    if task == "digits":
        return {str(1 + i): OULUVS2_DIGIT_SEQUENCES[i // 3] for i in range(30)}
    raise ValueError(f"task must be 'phrases' or 'digits', got {task!r}")


def custom_utterance_classes(utterance_classes: Mapping[str, str]) -> dict[str, str]:
    """A user's mapping utterance (``31``, ``"31"`` or ``"u31"``) -> class name, keys normalised to ``"31"``."""
    if not isinstance(utterance_classes, Mapping) or not utterance_classes:
        raise ValueError(
            f"utterance_classes must be a non-empty mapping utterance -> class name, got {utterance_classes!r}"
        )
    mapping: dict[str, str] = {}
    for key, name in utterance_classes.items():
        utterance = parse_number(key, "u", "utterance_classes: an utterance")
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"utterance_classes: the class of utterance {key!r} must be a name, got {name!r}"
            )
        if utterance in mapping:
            raise ValueError(f"utterance_classes: utterance {utterance} is given twice")
        mapping[utterance] = name
    return mapping


def scan_ouluvs2(root: Path, extensions: tuple[str, ...]) -> dict[tuple[str, str], dict[str, Path]]:
    """(speaker, utterance) -> {view: video file or frame folder}, every name checked."""
    check_root(root, "OuluVS2")
    speakers = subfolders(root)
    if not speakers:
        raise ValueError(f"{root}: no speaker folder; expected <root>/<speaker>/<view>/<utterance>")
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for speaker_dir in speakers:
        match = _OULU_SPEAKER.fullmatch(speaker_dir.name)
        if match is None:
            raise ValueError(f"{speaker_dir}: expected a speaker folder named <number> or s<number>")
        speaker = str(int(match.group(1)))
        view_dirs = subfolders(speaker_dir)
        if not view_dirs:
            raise ValueError(f"{speaker_dir}: no view folder; expected <speaker>/<view>/<utterance>")
        for view_dir in view_dirs:
            match = _OULU_VIEW.fullmatch(view_dir.name)
            if match is None:
                raise ValueError(f"{view_dir}: expected a view folder named <number> or v<number>")
            view = str(int(match.group(1)))
            leaves = [
                p
                for p in view_dir.iterdir()
                if not p.name.startswith(".")
                and (p.is_dir() or (p.is_file() and p.suffix.lower().lstrip(".") in extensions))
            ]
            if not leaves:
                raise ValueError(
                    f"{view_dir}: empty view folder; expected video files ({', '.join(extensions)}) or "
                    "frame folders"
                )
            for leaf in leaves:
                match = _OULU_LEAF.fullmatch(leaf.name if leaf.is_dir() else leaf.stem)
                if match is None:
                    raise ValueError(
                        f"{leaf}: expected an utterance named s<speaker>_v<view>_u<number>, u<number> or "
                        "<number> (a video file, or a frame folder named so)"
                    )
                named_speaker, named_view, number = match.groups()
                if named_speaker is not None and (
                    str(int(named_speaker)) != speaker or str(int(named_view)) != view
                ):
                    raise ValueError(
                        f"{leaf}: the name says speaker {int(named_speaker)} view {int(named_view)}, the "
                        f"folders say speaker {speaker} view {view}"
                    )
                views = found.setdefault((speaker, str(int(number))), {})
                if view in views:
                    raise ValueError(f"{leaf}: utterance {int(number)} of view {view} also in {views[view]}")
                views[view] = leaf
    return found
