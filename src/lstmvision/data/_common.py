"""What the data modules share (private): which data sets a stage needs, their loader arguments' checks,
the loaders themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler

from lstmvision.data._sharding import test_set_sampler

_STAGE_SETS: dict[str, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),  # every data module predicts on its test set
}


def sets_for_stage(owner: str, stage: str | None) -> tuple[str, ...]:
    """The data sets ``setup(stage)`` must build (all three for ``None``), or a ValueError naming ``owner``."""
    if stage is None:
        return ("train", "val", "test")
    if stage not in _STAGE_SETS:
        raise ValueError(f"{owner}.setup: stage must be one of {sorted(_STAGE_SETS)} or None, got {stage!r}")
    return _STAGE_SETS[stage]


def check_loader_args(owner: str, *, num_workers: int, seed: int | None = None, **sizes: int) -> None:
    """A ValueError naming ``owner`` and the key: ``sizes`` (set and batch sizes, …) must be >= 1,
    ``num_workers`` and ``seed`` >= 0 (numpy's SeedSequence takes no negative seed)."""
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{owner}: {name} must be >= 1, got {value}")
    if num_workers < 0:
        raise ValueError(f"{owner}: num_workers must be >= 0, got {num_workers}")
    if seed is not None and seed < 0:
        raise ValueError(f"{owner}: seed must be >= 0, got {seed}")


def check_generated_set(length: int, **seeds: int) -> None:
    """The arguments of a generated data set: ``length`` >= 1 and every seed >= 0 (numpy's SeedSequence
    takes no negative seed), or a ValueError naming the key."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    for name, value in seeds.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (numpy SeedSequence), got {value}")


class SetsDataModule(L.LightningDataModule):
    """The loaders of a data module whose ``setup`` fills ``self.datasets`` with its "train", "val" and
    "test" sets: training in ``train_order`` (shuffled unless a subclass gives a sampler), validation in
    order, test and predict on the test set, which under DDP each process tests a block of with no
    sample repeated (see _sharding.py). Subclasses set ``batch_size``, ``num_workers`` and, if their
    items need one, ``collate_fn``."""

    batch_size: int
    num_workers: int
    collate_fn: Callable[[list[Any]], Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Any] = {}

    def _dataset(self, which: str) -> Any:
        if which not in self.datasets:
            raise RuntimeError(f"{type(self).__name__}: the {which} set is not set up; call setup() first")
        return self.datasets[which]

    def _loader(self, dataset: Dataset[Any], **kwargs: Any) -> DataLoader[Any]:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn,
            **kwargs,
        )

    def train_order(self, dataset: Any) -> Sampler[int] | None:
        """The sampler of the training set; None shuffles it."""
        return None

    def train_dataloader(self) -> DataLoader[Any]:
        dataset = self._dataset("train")
        sampler = self.train_order(dataset)
        return self._loader(dataset, sampler=sampler, shuffle=sampler is None)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        dataset = self._dataset("test")
        return self._loader(dataset, sampler=test_set_sampler(dataset))

    def predict_dataloader(self) -> DataLoader[Any]:
        return self.test_dataloader()
