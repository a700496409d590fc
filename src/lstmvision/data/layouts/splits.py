"""What every layout reader returns, and the seeded rules that split samples into sets.

A layout lists :class:`~lstmvision.data.io.clips.VideoSample` items (single view) or
:class:`~lstmvision.data.io.multiview_clips.MultiViewSample` items (several views); the single-view
readers return them as :class:`VideoSplits`. Held-out sets are drawn with
``numpy.random.default_rng(seed)``: the same files and seed give the same split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lstmvision.data.io.clips import VideoSample
from lstmvision.data.io.frames import natural_key
from lstmvision.data.io.multiview_clips import MultiViewSample

__all__ = ["SET_NAMES", "VideoSplits", "assign_groups", "held_out", "split_by_class", "split_groups"]

SET_NAMES: tuple[str, ...] = ("train", "val", "test")
"""The sets a layout is split into, in order."""


class VideoSplits(NamedTuple):
    """The videos of each set and the class names (a label indexes ``class_names``).

    ``val`` may hold the very same videos as ``test`` where a layout is asked for no held-out validation
    videos (``val_fraction=0``, or no validation persons for KTH).
    """

    train: list[VideoSample]
    val: list[VideoSample]
    test: list[VideoSample]
    class_names: list[str]


def held_out(n: int, fraction: float) -> int:
    """Items of ``n`` held out for a ``fraction``: none for 0, else ``round(n * fraction)`` and at least one."""
    return 0 if fraction == 0 else max(1, round(n * fraction))


def split_by_class(
    samples: list[VideoSample], fractions: Sequence[float], seed: int, names: list[str], where: Path
) -> list[list[VideoSample]]:
    """Hold out ``fractions`` of every class (at least one video each when a fraction is > 0), drawn
    with ``numpy.random.default_rng(seed)``; the rest is returned last."""
    rng = np.random.default_rng(seed)
    parts: list[list[VideoSample]] = [[] for _ in range(len(fractions) + 1)]
    for label, name in enumerate(names):
        videos = [s for s in samples if s.label == label]
        counts = [held_out(len(videos), f) for f in fractions]
        if sum(counts) >= len(videos):
            raise ValueError(
                f"{where}: class '{name}' has {len(videos)} videos; holding out {counts} of them "
                f"(fractions {list(fractions)}) leaves none for training"
            )
        order = rng.permutation(len(videos))
        first = 0
        for part, count in zip(parts, [*counts, len(videos) - sum(counts)]):
            part.extend(videos[i] for i in sorted(order[first : first + count]))
            first += count
    return parts


def split_groups(
    groups: Sequence[str], val_fraction: float, test_fraction: float, seed: int, where: str, what: str
) -> dict[str, str]:
    """Group -> set: ``test_fraction`` and ``val_fraction`` of the groups (at least one each when the
    fraction is > 0) drawn with ``numpy.random.default_rng(seed)``, the rest training."""
    ordered = sorted(set(groups), key=natural_key)
    n_test, n_val = held_out(len(ordered), test_fraction), held_out(len(ordered), val_fraction)
    if n_test + n_val >= len(ordered):
        raise ValueError(
            f"{where}: {len(ordered)} {what}; holding out {n_val} for validation and {n_test} for "
            "testing leaves none for training"
        )
    order = np.random.default_rng(seed).permutation(len(ordered))
    which: dict[str, str] = {}
    for rank, index in enumerate(order):
        which[ordered[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return which


def assign_groups(
    samples: Sequence[MultiViewSample], key_of: Callable[[MultiViewSample], str], which: Mapping[str, str]
) -> dict[str, list[MultiViewSample]]:
    """The samples of each set: a sample goes to ``which[key_of(sample)]``, or to no set when its key
    is not in ``which``."""
    sets: dict[str, list[MultiViewSample]] = {s: [] for s in SET_NAMES}
    for sample in samples:
        key = key_of(sample)
        if key in which:
            sets[which[key]].append(sample)
    return sets
