"""The pool of real MNIST digits the embedded generators draw from: the 5,000-digit sample shipped in
``lstmvision/data/assets/`` or MNIST idx files the user names, split into disjoint train and test pools."""

from __future__ import annotations

import functools
import zipfile
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from lstmvision.data.formats.files import existing_file, npz_array
from lstmvision.data.formats.mnist_idx import read_mnist_idx

__all__ = ["DIGIT_SIZE", "MNISTDigits", "Split", "load_digits"]

DIGIT_SIZE = 28
"""Height and width of an MNIST digit in pixels."""

Split = Literal["train", "test"]
"""A digit pool: the two never share a digit."""

_ASSETS_PACKAGE = "lstmvision.data"  # the package whose assets/ folder holds the shipped digits
_ASSET_NAME = "mnist_digits.npz"
_ASSET_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
# Names used by the official MNIST distribution, then the dotted variant found on common mirrors.
_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
}
# A single idx file given as the digit source is split like the shipped asset: first 80 % train.
_SINGLE_FILE_TRAIN_FRACTION = 0.8


class MNISTDigits(NamedTuple):
    """A pool of MNIST digits: ``images`` uint8 ``(N, 28, 28)``, ``labels`` uint8 ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray


def _labels_path(images_path: Path) -> Path:
    name = images_path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    if name == images_path.name:
        raise ValueError(
            f"{images_path}: cannot derive the labels file name; expected an images file "
            "named like 'train-images-idx3-ubyte'"
        )
    return images_path.with_name(name)


def _find_idx_images(directory: Path, split: Split) -> Path:
    candidates = [directory / (name + ext) for name in _IDX_NAMES[split] for ext in ("", ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{directory}: no MNIST {split} images file; expected one of {[c.name for c in candidates]}"
    )


def _checked_digits(
    images: np.ndarray, labels: np.ndarray, images_file: Path, labels_file: Path
) -> MNISTDigits:
    if images.ndim != 3 or images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(f"{images_file}: expected images shaped (N, 28, 28), got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_file}: expected {len(images)} labels (one per image in {images_file.name}), "
            f"got shape {labels.shape}"
        )
    if len(images) == 0:
        raise ValueError(f"{images_file}: holds no digits")
    return MNISTDigits(images, labels)


@functools.lru_cache(maxsize=8)
def _load_idx_digits(mnist_path: str, split: Split) -> MNISTDigits:
    source = Path(mnist_path)
    if not source.exists():
        raise FileNotFoundError(f"MNIST idx path not found: {source}")
    images_file = _find_idx_images(source, split) if source.is_dir() else source
    labels_file = _labels_path(images_file)
    images, labels = read_mnist_idx(images_file), read_mnist_idx(labels_file)
    digits = _checked_digits(images, labels, images_file, labels_file)
    if not source.is_dir():
        # One file feeds both splits: cut it once so that train and test digits never coincide.
        cut = int(len(images) * _SINGLE_FILE_TRAIN_FRACTION)
        part = slice(0, cut) if split == "train" else slice(cut, None)
        digits = MNISTDigits(digits.images[part], digits.labels[part])
        if len(digits.images) == 0:
            raise ValueError(f"{images_file}: too few digits ({len(images)}) to split into train and test")
    return digits


@functools.lru_cache(maxsize=2)
def _load_asset_digits(split: Split) -> MNISTDigits:
    asset = resources.files(_ASSETS_PACKAGE) / "assets" / _ASSET_NAME
    with resources.as_file(asset) as path:
        path = existing_file(path, "MNIST digit asset")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: npz_array(data, path, key) for key in _ASSET_KEYS}
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: corrupt digit asset ({exc})") from exc
    return _checked_digits(arrays[f"{split}_images"], arrays[f"{split}_labels"], path, path)


def load_digits(split: Split = "train", mnist_path: str | Path | None = None) -> MNISTDigits:
    """The pool of MNIST digits the generator draws from.

    Args:
        split: ``"train"`` or ``"test"``; the two pools never share a digit.
        mnist_path: ``None`` uses the 5,000-digit asset shipped in the package (4,000 train / 1,000
            test). A directory uses its MNIST idx files (``train-images-idx3-ubyte`` for ``"train"``,
            ``t10k-images-idx3-ubyte`` for ``"test"``, optionally ``.gz``) with the matching labels
            files. A single images file is split: its first 80 % of digits are ``"train"``, the rest
            ``"test"``.

    Returns:
        Read-only ``uint8`` arrays (cached, shared between calls).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    digits = _load_asset_digits(split) if mnist_path is None else _load_idx_digits(str(mnist_path), split)
    for array in digits:
        array.flags.writeable = False  # the pool is cached and shared: guard it from in-place edits
    return digits
