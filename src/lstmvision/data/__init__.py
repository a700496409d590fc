"""Datasets, LightningDataModules, readers of public file formats and the embedded generators."""

from lstmvision.data.kth import (
    KTH_ACTIONS,
    KTH_FAST_ACTIONS,
    KTH_TEST_PERSONS,
    KTH_TRAIN_PERSONS,
    KTHDataModule,
    KTHFrames,
    KTHVideo,
    scan_kth_frames,
    sequence_starts,
)
from lstmvision.data.moving_actions import (
    MOVING_ACTIONS,
    MovingDigitActions,
    MovingDigitActionsDataModule,
    generate_action_clip,
)
from lstmvision.data.moving_mnist import (
    DIGIT_SIZE,
    EpochSampler,
    GeneratedMovingMNIST,
    MNISTDigits,
    MovingMNISTArray,
    MovingMNISTDataModule,
    generate_moving_digits,
    load_digits,
    read_e3d_npz,
    read_mnist_idx,
    read_moving_mnist_npy,
)

__all__ = [
    "DIGIT_SIZE",
    "KTH_ACTIONS",
    "KTH_FAST_ACTIONS",
    "KTH_TEST_PERSONS",
    "KTH_TRAIN_PERSONS",
    "MOVING_ACTIONS",
    "EpochSampler",
    "GeneratedMovingMNIST",
    "KTHDataModule",
    "KTHFrames",
    "KTHVideo",
    "MNISTDigits",
    "MovingDigitActions",
    "MovingDigitActionsDataModule",
    "MovingMNISTArray",
    "MovingMNISTDataModule",
    "generate_action_clip",
    "generate_moving_digits",
    "load_digits",
    "read_e3d_npz",
    "read_mnist_idx",
    "read_moving_mnist_npy",
    "scan_kth_frames",
    "sequence_starts",
]
