"""CountedRows: which rows of the test batches the metrics count when a data set skips unusable samples."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from lstmvision.data import SkippedSamples, SkipsUnusable
from lstmvision.data.datamodules.sharding import UnrepeatedShardSampler
from lstmvision.tasks.outputs import CountedRows


class _Ten(SkipsUnusable, Dataset[torch.Tensor]):
    """Ten samples; those in ``bad`` are flagged when read, as the readers do before serving the next."""

    def __init__(self, bad: set[int], skip: bool = True) -> None:
        self.bad = bad
        self._skips = SkippedSamples(10) if skip else None

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> torch.Tensor:
        if index in self.bad and self._skips is not None:
            self._skips.add(index)
        return torch.tensor(index)


def _masks(loader: DataLoader) -> tuple[list[list[bool] | None], int]:
    rows = CountedRows("test")
    rows.start(SimpleNamespace(test_dataloaders=[loader]))
    masks = []
    for batch in loader:  # the batch is read before its rows are asked about, as in a test loop
        own = rows.own(len(batch))
        masks.append(None if own is None else own.tolist())
    return masks, rows.left_out


def test_rows_follow_the_set_in_order() -> None:
    masks, left_out = _masks(DataLoader(_Ten({3, 4, 9}), batch_size=4))
    assert masks == [[True, True, True, False], [False, True, True, True], [True, False]]
    assert left_out == 3


def test_rows_of_a_process_start_at_its_block() -> None:
    # under DDP process 1 of 2 reads samples 5..9: its first row is sample 5, not sample 0
    dataset = _Ten({1, 6})
    masks, left_out = _masks(DataLoader(dataset, batch_size=2, sampler=UnrepeatedShardSampler(dataset, 2, 1)))
    assert masks == [[True, False], None, None] and left_out == 1


def test_rows_follow_an_interleaving_distributed_sampler() -> None:
    # the sampler Lightning gives a plain test loader under DDP: process 1 of 2 reads 1, 3, 5, 7, 9
    dataset = _Ten({3, 4})
    sampler = DistributedSampler(dataset, num_replicas=2, rank=1, shuffle=False)
    masks, left_out = _masks(DataLoader(dataset, batch_size=2, sampler=sampler))
    assert masks == [[True, False], None, None] and left_out == 1


def test_a_loader_in_no_fixed_order_counts_every_row_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    dataset = _Ten({3})
    loader = DataLoader(dataset, batch_size=4, sampler=RandomSampler(dataset))
    rows = CountedRows("test")
    rows.start(SimpleNamespace(test_dataloaders=loader))
    assert [rows.own(len(batch)) for batch in loader] == [None, None, None]
    with caplog.at_level("WARNING", logger="lstmvision"):
        assert rows.total_left_out(None) == 0
    assert "RandomSampler reads the set in no fixed order" in caplog.text
    assert "1 skipped sample(s)" in caplog.text


def test_every_row_counts_without_skipping() -> None:
    assert _masks(DataLoader(_Ten({3}, skip=False), batch_size=4)) == ([None, None, None], 0)
    plain = DataLoader(torch.arange(5), batch_size=2)  # a data set that never skips
    assert _masks(plain) == ([None, None, None], 0)
