"""Datasets, LightningDataModules, readers of public file formats and the embedded generators."""

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
    "EpochSampler",
    "GeneratedMovingMNIST",
    "MNISTDigits",
    "MovingMNISTArray",
    "MovingMNISTDataModule",
    "generate_moving_digits",
    "load_digits",
    "read_e3d_npz",
    "read_mnist_idx",
    "read_moving_mnist_npy",
]
