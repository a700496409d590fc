"""The Moving MNIST data module: each of the three sets read from a file (``.npy`` or ``.npz``) or
generated from real MNIST digits (docs/data.md, "Moving MNIST")."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from lstmvision.data.datamodules.base import SetsDataModule, check_loader_args
from lstmvision.data.embedded.moving_mnist import (
    EpochSampler,
    GeneratedMovingMNIST,
    check_generator_args,
    speed_range,
)
from lstmvision.data.formats.moving_mnist import MovingMNISTArray

__all__ = ["MovingMNISTDataModule"]


class MovingMNISTDataModule(SetsDataModule):
    """Moving MNIST for training, validation, testing and prediction.

    Each of the three sets comes from a file when its ``*_path`` is given (``.npy``: standard
    ``mnist_test_seq.npy`` layout; ``.npz``: E3D-LSTM/PredRNN layout) and is generated otherwise.
    Generated training sequences are new every epoch (see :class:`EpochSampler`); generated
    validation and test sequences are fixed. Generated training sequences use the train digit pool;
    validation and test sequences use the disjoint test pool, with different seeds.

    Args:
        train_path, val_path, test_path: files of sequences, or ``None`` to generate the set.
        mnist_path: MNIST idx directory or images file to draw generated digits from instead of the
            shipped 5,000-digit asset (see :func:`load_digits`).
        num_digits: digits per generated sequence.
        image_size: frame height and width; files must match it.
        seq_length: frames per sequence; longer file sequences are cut, shorter ones are an error.
        speed: pixels per frame of generated digits, a number or a ``(low, high)`` range.
        combine: how overlapping generated digits merge, ``"max"`` or clipped ``"sum"``.
        train_size, val_size, test_size: sequences per generated set (ignored for files).
        batch_size, num_workers: DataLoader settings.
        seed: base seed of the generated sets.

    Batches are ``float32 (B, seq_length, C, H, W)`` in [0, 1] (C = 1 for Moving MNIST).
    ``predict_dataloader`` serves the test set.
    """

    # Random streams keep the three generated sets independent under one seed.
    _STREAMS: ClassVar[dict[str, int]] = {"train": 0, "val": 1, "test": 2}

    def __init__(
        self,
        *,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        mnist_path: str | None = None,
        num_digits: int = 2,
        image_size: int = 64,
        seq_length: int = 20,
        speed: float | tuple[float, float] = (2.0, 4.0),
        combine: Literal["max", "sum"] = "max",
        train_size: int = 10000,
        val_size: int = 500,
        test_size: int = 1000,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_loader_args(
            "MovingMNISTDataModule",
            num_workers=num_workers,
            seed=seed,
            train_size=train_size,
            val_size=val_size,
            test_size=test_size,
            batch_size=batch_size,
            seq_length=seq_length,
        )
        if combine not in ("max", "sum"):
            raise ValueError(f"MovingMNISTDataModule: combine must be 'max' or 'sum', got {combine!r}")
        check_generator_args(num_digits, image_size, seq_length)
        self.save_hyperparameters()
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.mnist_path = mnist_path
        self.num_digits, self.image_size, self.seq_length = num_digits, image_size, seq_length
        self.speed = speed_range(speed)
        self.combine: Literal["max", "sum"] = combine
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _build(self, which: str) -> GeneratedMovingMNIST | MovingMNISTArray:
        path = self.paths[which]
        if path is not None:
            if not Path(path).exists():
                raise FileNotFoundError(f"MovingMNISTDataModule: {which}_path file not found: {path}")
            return MovingMNISTArray(path, seq_length=self.seq_length, image_size=self.image_size)
        return GeneratedMovingMNIST(
            self.sizes[which],
            split="train" if which == "train" else "test",
            num_digits=self.num_digits,
            image_size=self.image_size,
            seq_length=self.seq_length,
            speed=self.speed,
            combine=self.combine,
            seed=self.seed,
            stream=self._STREAMS[which],
            mnist_path=self.mnist_path,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open (and check) the sets that ``stage`` needs; all three when ``stage`` is ``None``."""
        self.build_sets(stage, self._build)

    def train_order(self, dataset: Any) -> EpochSampler | None:
        """Generated training sequences are new every epoch; a file's are shuffled."""
        return EpochSampler(len(dataset)) if isinstance(dataset, GeneratedMovingMNIST) else None
