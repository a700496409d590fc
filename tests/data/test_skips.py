"""The record of skipped samples: shared between a data set and its DataLoader workers, forked or spawned."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lstmvision.data import SkippedSamples, SkipsUnusable


class _Flagging(SkipsUnusable, Dataset[torch.Tensor]):
    """Six samples, of which 1 and 4 are flagged as unusable when read."""

    def __init__(self, skip: bool = True) -> None:
        self._skips = SkippedSamples(6) if skip else None

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> torch.Tensor:
        if index in (1, 4) and self._skips is not None:
            self._skips.add(index)
        return torch.tensor(index)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_flags_set_in_workers_reach_the_main_process(context: str) -> None:
    # spawn is the default start method on macOS and Windows: the data set is pickled to the workers
    dataset = _Flagging()
    loader = DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context=context)
    assert torch.cat(list(loader)).tolist() == list(range(6))
    assert dataset.skipped_indices() == [1, 4] and dataset.skipped == 2


def test_the_record_in_one_process() -> None:
    skips = SkippedSamples(3)
    assert len(skips) == 0 and 2 not in skips and skips.indices() == []
    skips.add(2)
    skips.add(2)  # a sample counts once
    assert len(skips) == 1 and 2 in skips and 1 not in skips and skips.indices() == [2]
    assert "2" not in skips, "only sample indices are members"
    plain = _Flagging(skip=False)
    plain[1]
    assert plain.skipped == 0 and plain.skipped_indices() == [], "on_corrupt='raise' keeps no record"


def test_an_empty_data_set_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one sample, got size 0"):
        SkippedSamples(0)
