"""The data module of the embedded moving digit actions (:mod:`lstmvision.data.embedded.moving_actions`)."""

from __future__ import annotations

from collections.abc import Sequence

from lstmvision.data.datamodules.base import check_loader_args
from lstmvision.data.datamodules.generated import GeneratedSetsDataModule
from lstmvision.data.embedded.digits import Split
from lstmvision.data.embedded.moving_actions import MovingDigitActions, action_class_names, check_clip_args

__all__ = ["MovingDigitActionsDataModule"]


class MovingDigitActionsDataModule(GeneratedSetsDataModule):
    """Moving digit actions for training, validation, testing and prediction.

    Training clips use the train digit pool and are new every epoch (see
    :class:`~lstmvision.data.EpochSampler`); validation and test clips use the disjoint test pool and
    are the same every time. The three sets use random streams 0, 1 and 2 of ``seed``.

    Args:
        image_size, seq_length, speed, num_distractors: see :func:`generate_action_clip`.
        classes: subset of :data:`MOVING_ACTIONS`, in label order; ``None`` uses all.
        train_size, val_size, test_size: clips per set (per epoch for training).
        batch_size, num_workers: DataLoader settings.
        seed: base seed.
        mnist_path: MNIST idx directory or images file to draw digits from instead of the shipped
            asset (see :func:`~lstmvision.data.load_digits`).

    Batches are ``(clips float32 (B, seq_length, 1, image_size, image_size) in [0, 1], labels int64
    (B,))``. ``predict_dataloader`` serves the test set.
    """

    def __init__(
        self,
        *,
        image_size: int = 64,
        seq_length: int = 20,
        speed: float | tuple[float, float] = (1.0, 3.0),
        num_distractors: int = 0,
        classes: Sequence[str] | None = None,
        train_size: int = 6000,
        val_size: int = 600,
        test_size: int = 1200,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        mnist_path: str | None = None,
    ) -> None:
        super().__init__()
        check_loader_args(
            "MovingDigitActionsDataModule",
            num_workers=num_workers,
            seed=seed,
            train_size=train_size,
            val_size=val_size,
            test_size=test_size,
            batch_size=batch_size,
        )
        self.speed = check_clip_args(image_size, seq_length, speed, num_distractors)
        self._class_names = action_class_names(classes)
        self.save_hyperparameters()
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.image_size, self.seq_length, self.num_distractors = image_size, seq_length, num_distractors
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.mnist_path = mnist_path

    def make_set(self, length: int, split: Split, stream: int) -> MovingDigitActions:
        return MovingDigitActions(
            length,
            split=split,
            image_size=self.image_size,
            seq_length=self.seq_length,
            speed=self.speed,
            num_distractors=self.num_distractors,
            seed=self.seed,
            stream=stream,
            mnist_path=self.mnist_path,
            classes=self._class_names,
        )
