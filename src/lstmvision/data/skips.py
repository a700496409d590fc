"""Which samples of a data set were found unusable (``on_corrupt: skip``), seen by every process reading it.

A data set that skips an unusable sample serves the next usable one in its place, and logs a warning in
the process that found it. The record is a shared-memory flag per sample, so the DataLoader workers that
find the bad samples and the main process that writes the predictions read the same flags: a prediction
written under a skipped sample's name can be marked as not being that sample's (``predictions.csv``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["SkippedSamples", "SkipsUnusable", "usable_item"]

logger = logging.getLogger(__name__)
_Item = TypeVar("_Item")


class SkippedSamples:
    """One flag per sample of a data set of ``size`` samples, shared with the processes it is pickled to.

    ``index in skips``, ``skips.add(index)``, ``len(skips)`` (samples flagged), :meth:`indices`. The flags
    live in shared memory: DataLoader workers, forked or spawned, receive the data set through torch's
    multiprocessing, which passes shared tensors by reference, so a flag set in a worker is seen by the
    main process. (A plain ``pickle``/``copy.deepcopy`` copies the flags instead.)
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"SkippedSamples needs a data set of at least one sample, got size {size}")
        self._flags = torch.zeros(size, dtype=torch.bool).share_memory_()

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and bool(self._flags[index])

    def add(self, index: int) -> None:
        """Flag sample ``index`` as unusable."""
        self._flags[index] = True

    def __len__(self) -> int:
        return int(self._flags.sum())

    def indices(self) -> list[int]:
        """The flagged samples, in increasing order."""
        return self._flags.nonzero().flatten().tolist()

    def among(self, indices: list[int]) -> torch.Tensor:
        """The flags of samples ``indices``, in their order (a bool copy, one per index)."""
        return self._flags[torch.tensor(indices, dtype=torch.int64)]


class SkipsUnusable:
    """Mixin of the data sets with ``on_corrupt``: ``self._skips`` is a :class:`SkippedSamples` in
    ``"skip"`` mode, else None."""

    _skips: SkippedSamples | None

    @property
    def skipped(self) -> int:
        """Samples found unusable and skipped so far (``on_corrupt="skip"``) by any process reading this
        data set, its DataLoader workers included; each counts once."""
        return 0 if self._skips is None else len(self._skips)

    def skipped_indices(self) -> list[int]:
        """The samples found unusable so far, in increasing order: item ``i`` of them served the next
        usable sample instead (empty with ``on_corrupt="raise"``)."""
        return [] if self._skips is None else self._skips.indices()

    def skipped_among(self, indices: list[int]) -> torch.Tensor | None:
        """Bool flags of samples ``indices``, True for those found unusable so far (their items were the
        next usable sample); None with ``on_corrupt="raise"``."""
        return None if self._skips is None else self._skips.among(indices)


def usable_item(
    index: int,
    skips: SkippedSamples | None,
    item: Callable[[int], _Item],
    *,
    size: int,
    unusable: type[Exception],
    noun: str,
    exhausted: str,
) -> _Item:
    """``item(index)`` of a data set of ``size`` samples; with a record of skips (``on_corrupt="skip"``) a
    sample whose ``item`` raises ``unusable`` is reported once (a warning naming it, counted as a
    ``noun``), flagged in ``skips`` and replaced by the next usable one (by index, wrapping around), so
    the replacement depends only on which samples are bad. ``RuntimeError(exhausted)`` when none is."""
    if not -size <= index < size:
        raise IndexError(f"{noun} index {index} out of range for {size} {noun}s")
    index %= size
    if skips is None:  # on_corrupt="raise"
        return item(index)
    for offset in range(size):
        candidate = (index + offset) % size
        if candidate in skips:
            continue
        try:
            return item(candidate)
        except unusable as exc:
            skips.add(candidate)
            logger.warning("%s; %s skipped, %d unusable %s(s) met so far", exc, noun, len(skips), noun)
    raise RuntimeError(exhausted)
