"""How the data modules split a test set across processes.

Under DDP Lightning replaces a loader's sampler with a ``DistributedSampler`` that pads the set to a
multiple of the number of processes by repeating items: harmless for training, but a repeated test
item is counted twice in the test metrics. The test loaders therefore use :class:`UnrepeatedShardSampler`
(a ``DistributedSampler``, so Lightning keeps it): every item exactly once over all processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler, SequentialSampler

__all__ = ["UnrepeatedShardSampler", "test_set_sampler"]


class UnrepeatedShardSampler(DistributedSampler):
    """Process ``rank`` of ``num_replicas`` reads the contiguous block ``[rank*n//w, (rank+1)*n//w)``.

    Contiguous blocks (not every w-th item) keep rank 0's first items the set's first items, so the
    pictures rank 0 draws show the same clips as one process, and the ranks' outputs concatenated in
    rank order are in the set's order. Blocks differ in size by at most one item; nothing is repeated.
    """

    def __init__(self, dataset: Dataset[Any], num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        n = len(dataset)  # type: ignore[arg-type]  # every data set here is sized
        self.start, self.stop = rank * n // num_replicas, (rank + 1) * n // num_replicas
        self.num_samples, self.total_size = self.stop - self.start, n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def test_set_sampler(dataset: Dataset[Any]) -> Sampler[int]:
    """A :class:`UnrepeatedShardSampler` inside a process group of several processes, else sequential order."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return UnrepeatedShardSampler(dataset, dist.get_world_size(), dist.get_rank())
    return SequentialSampler(dataset)  # type: ignore[arg-type]  # every data set here is sized
