"""CountedRows: which rows of the validation and test batches the metrics count (a data set that skips unusable
samples, a DDP sampler that repeats some); RowMeans: means over the rows counted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from lstmvision.data import SkippedSamples, SkipsUnusable
from lstmvision.data.datamodules.sharding import UnrepeatedShardSampler
from lstmvision.tasks.outputs import CountedRows, RowMeans


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


def _rows_of(loader: DataLoader) -> tuple[list[list[int]], list[list[bool] | None], CountedRows]:
    """The samples of each batch, the mask CountedRows gives it, and the CountedRows after the epoch."""
    rows = CountedRows("val")
    rows.start(SimpleNamespace(val_dataloaders=[loader]))
    batches, masks = [], []
    for batch in loader:  # the batch is read before its rows are asked about, as in a validation loop
        batches.append(batch.tolist())
        own = rows.own(len(batch))
        masks.append(None if own is None else own.tolist())
    return batches, masks, rows


def _masks(loader: DataLoader) -> tuple[list[list[bool] | None], int]:
    _, masks, rows = _rows_of(loader)
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


def test_the_rows_a_distributed_sampler_repeats_are_left_out_once() -> None:
    # 10 samples on 3 processes: the sampler pads the order to 12 with samples 0 and 1 again, dealt to
    # processes 1 and 2 as their last rows. Sample 0 is unusable: process 0 leaves its own row of it out
    # as skipped (its copy, sample 1, would count twice), process 1 its repeat of it as a repeat
    counted: list[int] = []
    for rank, expected_batches, expected_masks, repeats, left_out in [
        (0, [[0, 3, 6], [9]], [[False, True, True], None], 0, 1),
        (1, [[1, 4, 7], [0]], [None, [False]], 1, 0),
        (2, [[2, 5, 8], [1]], [None, [False]], 1, 0),
    ]:
        dataset = _Ten({0})
        sampler = DistributedSampler(dataset, num_replicas=3, rank=rank, shuffle=False)
        batches, masks, rows = _rows_of(DataLoader(dataset, batch_size=3, sampler=sampler))
        assert (batches, masks, rows.repeats, rows.left_out) == (
            expected_batches,
            expected_masks,
            repeats,
            left_out,
        )
        for batch, mask in zip(batches, masks, strict=True):
            counted += [
                sample for sample, keep in zip(batch, mask or [True] * len(batch), strict=True) if keep
            ]
    assert sorted(counted) == list(range(1, 10))  # every usable sample once, across the processes


def test_a_shuffled_distributed_sampler_and_one_that_divides_evenly() -> None:
    # shuffled, the padding still repeats the first samples of the (shuffled) order at its end
    dataset = torch.arange(10)
    seen = []
    for rank in range(4):
        sampler = DistributedSampler(dataset, num_replicas=4, rank=rank, shuffle=True, seed=3)
        batches, masks, rows = _rows_of(DataLoader(dataset, batch_size=2, sampler=sampler))
        assert rows.repeats == (1 if rank >= 2 else 0)
        for batch, mask in zip(batches, masks, strict=True):
            seen += [sample for sample, keep in zip(batch, mask or [True] * len(batch), strict=True) if keep]
    assert sorted(seen) == list(range(10))
    # 10 samples on 2 processes, or with drop_last: nothing is repeated, nothing left out
    for sampler in (
        DistributedSampler(dataset, num_replicas=2, rank=1, shuffle=False),
        DistributedSampler(dataset, num_replicas=3, rank=2, shuffle=False, drop_last=True),
    ):
        _, masks, rows = _rows_of(DataLoader(dataset, batch_size=2, sampler=sampler))
        assert all(mask is None for mask in masks) and rows.repeats == 0


def test_row_means_weigh_every_row_alike_and_check_their_keys() -> None:
    means = RowMeans("mse", "acc")
    assert means.means(None) == {}  # no row counted: nothing to log
    means.add(3, mse=torch.tensor(30.0), acc=torch.tensor(2))
    means.add(1, mse=torch.tensor(2.0, dtype=torch.bfloat16), acc=torch.tensor(1.0))
    assert means.means(None) == {"mse": 8.0, "acc": 0.75}  # (30 + 2) / 4 and 3 / 4: per row, not per batch
    with pytest.raises(ValueError, match=r"RowMeans takes the sums of \['acc', 'mse'\], got \['mse'\]"):
        means.add(1, mse=torch.tensor(1.0))
    means.reset()
    assert means.means(None) == {}
