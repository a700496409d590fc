"""The base of every data module: which data sets a stage needs, the loader arguments' checks, and the
loaders themselves (:class:`SetsDataModule`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler

from lstmvision.data.datamodules.sharding import test_set_sampler

__all__ = ["LayoutDataModule", "SetsDataModule", "check_loader_args", "sets_for_stage"]

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


class SetsDataModule(L.LightningDataModule):
    """The loaders of a data module whose ``setup`` fills ``self.datasets`` with its "train", "val" and
    "test" sets: training in ``train_order`` (shuffled unless a subclass gives a sampler), validation in
    order, test and predict on the test set, which under DDP each process tests a block of with no
    sample repeated (see sharding.py). Subclasses set ``batch_size``, ``num_workers`` and, if their
    items need one, ``collate_fn``."""

    batch_size: int
    num_workers: int
    collate_fn: Callable[[list[Any]], Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Any] = {}

    def build_sets(self, stage: str | None, make: Callable[[str], Any]) -> None:
        """Build with ``make(which)`` each set ``stage`` needs (all three for ``None``) not built yet."""
        for which in sets_for_stage(type(self).__name__, stage):
            if which not in self.datasets:
                self.datasets[which] = make(which)

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


class LayoutDataModule(SetsDataModule):
    """A data module over a folder layout that it scans and checks once, in :meth:`_scan` (by ``setup()``
    or by the first use of :attr:`class_names` / :attr:`num_classes`); the scan's result has the
    ``class_names``."""

    def _scan(self) -> Any:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (scans the layout on first use)."""
        return list(self._scan().class_names)

    @property
    def num_classes(self) -> int:
        return len(self._scan().class_names)
