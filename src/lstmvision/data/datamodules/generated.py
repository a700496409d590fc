"""The base of the data modules of generated clip sets (the embedded action sets): new training clips
every epoch, fixed validation and test clips, three random streams of one seed."""

from __future__ import annotations

from typing import Any, ClassVar

from torch.utils.data import Dataset

from lstmvision.data.datamodules.base import SetsDataModule
from lstmvision.data.embedded.digits import Split
from lstmvision.data.embedded.moving_mnist import EpochSampler

__all__ = ["GeneratedSetsDataModule"]


class GeneratedSetsDataModule(SetsDataModule):
    """A data module of generated clip sets (the embedded action sets): training clips use the train
    digit pool and are new every epoch (see :class:`~lstmvision.data.EpochSampler`); validation and
    test clips use the disjoint test pool and are the same every time. The three sets use random
    streams 0, 1 and 2 of ``seed``. Subclasses build one set in :meth:`make_set`."""

    _STREAMS: ClassVar[dict[str, int]] = {"train": 0, "val": 1, "test": 2}
    _class_names: list[str]
    sizes: dict[str, int]
    seed: int

    @property
    def class_names(self) -> list[str]:
        """Action names in label order."""
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        return len(self._class_names)

    def make_set(self, length: int, split: Split, stream: int) -> Dataset[Any]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Create the sets that ``stage`` needs (all three when ``stage`` is ``None``)."""
        self.build_sets(stage, self._make)

    def _make(self, which: str) -> Dataset[Any]:
        split: Split = "train" if which == "train" else "test"
        return self.make_set(self.sizes[which], split, self._STREAMS[which])

    def train_order(self, dataset: Any) -> EpochSampler:
        return EpochSampler(len(dataset))  # fresh clips every epoch
