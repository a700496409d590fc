"""Argument checks shared by the data readers, datasets and data modules.

Each raises a ``ValueError`` (``FileNotFoundError`` for a missing root folder) that names the key and
what it got; ``owner``, when given, starts the message (``"VideoDataModule: ..."``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "check_choice",
    "check_extensions",
    "check_fraction",
    "check_generated_set",
    "check_positive",
    "check_root",
    "check_split_fractions",
]


def _prefix(owner: str | None) -> str:
    return "" if owner is None else f"{owner}: "


def check_positive(*, owner: str | None = None, none_ok: bool = False, **values: object) -> None:
    """Every value an ``int >= 1`` (a bool is not an int here); ``None`` passes when ``none_ok``."""
    for name, value in values.items():
        if value is None and none_ok:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{_prefix(owner)}{name} must be an integer >= 1, got {value!r}")


def check_choice(name: str, value: object, choices: Sequence[object], *, owner: str | None = None) -> None:
    """``value`` one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{_prefix(owner)}{name} must be one of {list(choices)}, got {value!r}")


def check_fraction(name: str, value: float, *, zero_ok: bool, owner: str | None = None) -> None:
    """``value`` in [0, 1) when ``zero_ok``, else in (0, 1); NaN fails either way."""
    low_ok = value >= 0.0 if zero_ok else value > 0.0
    if not (low_ok and value < 1.0):
        interval = "[0, 1)" if zero_ok else "(0, 1)"
        raise ValueError(f"{_prefix(owner)}{name} must be in {interval}, got {value!r}")


def check_split_fractions(val_fraction: float, test_fraction: float, *, owner: str | None = None) -> None:
    """Validation and test fractions of a seeded split: val in [0, 1), test in (0, 1), sum < 1."""
    check_fraction("val_fraction", val_fraction, zero_ok=True, owner=owner)
    check_fraction("test_fraction", test_fraction, zero_ok=False, owner=owner)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"{_prefix(owner)}val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )


def check_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    """File extensions, lower-cased and without their dot: a non-empty list of alphanumeric ones."""
    if isinstance(extensions, str):
        raise ValueError(f"extensions must be a list of file extensions, got the string {extensions!r}")
    cleaned = tuple(str(ext).lower().lstrip(".") for ext in extensions)
    if not cleaned or not all(ext.isalnum() for ext in cleaned):
        raise ValueError(
            f"extensions must be non-empty alphanumeric extensions like 'mp4', got {extensions!r}"
        )
    return cleaned


def check_root(root: Path, what: str) -> None:
    """``root`` an existing folder: ``FileNotFoundError`` when missing, ``ValueError`` for a file."""
    if not root.exists():
        raise FileNotFoundError(f"{what} root folder not found: {root}")
    if not root.is_dir():
        raise ValueError(f"{root}: expected the {what} root folder, got a file")


def check_generated_set(length: int, **seeds: int) -> None:
    """The arguments of a generated data set: ``length`` >= 1 and every seed >= 0 (numpy's SeedSequence
    takes no negative seed), or a ValueError naming the key."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    for name, value in seeds.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (numpy SeedSequence), got {value}")
