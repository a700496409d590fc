"""The data module of the embedded multi-view digit actions (:mod:`lstmvision.data.embedded.multiview`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lstmvision.data.datamodules.base import check_loader_args
from lstmvision.data.datamodules.generated import GeneratedSetsDataModule
from lstmvision.data.embedded.digits import Split
from lstmvision.data.embedded.moving_actions import action_class_names, check_clip_args
from lstmvision.data.embedded.multiview import (
    SCENE_MARGIN,
    TRANSLATION_ACTIONS,
    MultiViewDigitActions,
    check_level,
    check_occlusion,
)

__all__ = ["MultiViewDigitActionsDataModule"]


class MultiViewDigitActionsDataModule(GeneratedSetsDataModule):
    """The embedded multi-view set for training, validation, testing and prediction.

    Training clips use the train digit pool and are new every epoch; validation and test clips use the
    disjoint test pool and are the same every time (random streams 0, 1 and 2 of ``seed``). All sets
    share the cameras of ``camera_seed``.

    Args:
        num_views, image_size, seq_length, speed, num_distractors, occlusion, classes, camera_seed:
            see :class:`MultiViewDigitActions`.
        train_size, val_size, test_size: clips per set (per epoch for training).
        batch_size, num_workers: DataLoader settings.
        seed: base seed of the clips.
        mnist_path: MNIST idx directory or images file instead of the shipped asset.

    Batches are ``(clips float32 (B, V, seq_length, 1, image_size, image_size) in [0, 1], labels int64
    (B,))``. ``predict_dataloader`` serves the test set.
    """

    def __init__(
        self,
        *,
        num_views: int = 3,
        image_size: int = 32,
        seq_length: int = 12,
        speed: float | tuple[float, float] = (1.5, 3.0),
        num_distractors: int = 0,
        occlusion: tuple[float, float] = (0.4, 0.6),
        occluder_level: float = 0.2,
        classes: Sequence[str] | None = None,
        camera_seed: int = 0,
        train_size: int = 6000,
        val_size: int = 400,
        test_size: int = 1000,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        mnist_path: str | None = None,
    ) -> None:
        super().__init__()
        name = "MultiViewDigitActionsDataModule"
        check_loader_args(
            name,
            num_workers=num_workers,
            seed=seed,
            train_size=train_size,
            val_size=val_size,
            test_size=test_size,
            batch_size=batch_size,
            num_views=num_views,
        )
        if camera_seed < 0:
            raise ValueError(f"{name}: camera_seed must be >= 0, got {camera_seed}")
        self.occlusion = check_occlusion(occlusion)
        check_clip_args(math.ceil(image_size * SCENE_MARGIN), seq_length, speed, num_distractors)
        self._class_names = action_class_names(TRANSLATION_ACTIONS if classes is None else classes)
        self.save_hyperparameters()
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.clip_args: dict[str, Any] = {
            "num_views": num_views,
            "image_size": image_size,
            "seq_length": seq_length,
            "speed": speed,
            "num_distractors": num_distractors,
            "occlusion": self.occlusion,
            "occluder_level": check_level(occluder_level),
            "classes": self._class_names,
            "camera_seed": camera_seed,
            "mnist_path": mnist_path,
        }
        self.num_views = num_views
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def make_set(self, length: int, split: Split, stream: int) -> MultiViewDigitActions:
        return MultiViewDigitActions(length, split=split, seed=self.seed, stream=stream, **self.clip_args)
