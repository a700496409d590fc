"""Moving MNIST generated on the fly: digits bouncing inside a square frame, reproducible from
``(seed, stream, epoch, index)``, and the sampler that makes a generated training set new every epoch.

Moving MNIST: Srivastava, Mansimov & Salakhutdinov, "Unsupervised Learning of Video Representations
using LSTMs", ICML 2015, https://arxiv.org/abs/1502.04681. docs/data.md describes the generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lstmvision.data.checks import check_generated_set
from lstmvision.data.embedded.digits import DIGIT_SIZE, Split, load_digits

__all__ = [
    "EpochSampler",
    "GeneratedMovingMNIST",
    "check_generator_args",
    "generate_moving_digits",
    "speed_range",
]


def speed_range(speed: float | tuple[float, float]) -> tuple[float, float]:
    """``speed`` as a ``(low, high)`` range of pixels per frame, ``0 <= low <= high``."""
    low, high = (speed, speed) if isinstance(speed, (int, float)) else tuple(speed)
    if not (0.0 <= low <= high):
        raise ValueError(
            f"speed must be a number >= 0 or a (low, high) range with 0 <= low <= high, got {speed!r}"
        )
    return float(low), float(high)


def check_generator_args(num_digits: int, image_size: int, seq_length: int) -> None:
    """The arguments of :func:`generate_moving_digits`, or a ValueError naming the key."""
    if num_digits < 1:
        raise ValueError(f"num_digits must be >= 1, got {num_digits}")
    if image_size <= DIGIT_SIZE:
        raise ValueError(f"image_size must exceed the {DIGIT_SIZE}-pixel digits, got {image_size}")
    if seq_length < 1:
        raise ValueError(f"seq_length must be >= 1, got {seq_length}")


def generate_moving_digits(
    rng: np.random.Generator,
    digits: np.ndarray,
    *,
    num_digits: int = 2,
    image_size: int = 64,
    seq_length: int = 20,
    speed: float | tuple[float, float] = (2.0, 4.0),
    combine: Literal["max", "sum"] = "max",
) -> tuple[np.ndarray, np.ndarray]:
    """Render one sequence of digits bouncing inside a square frame.

    Each digit is drawn from ``digits`` at random and its 28×28 box starts at a uniform random
    position (top-left corner in ``[0, image_size - 28]`` on both axes), with a direction uniform on
    the circle and a speed uniform in ``speed`` pixels per frame, kept constant. A box that reaches a
    border is reflected elastically (the angle of incidence equals the angle of reflection). Positions
    are rounded to whole pixels. Overlapping digits are combined by their pixel-wise maximum
    (``"max"``) or by their sum clipped to 1 (``"sum"``).

    Args:
        rng: the random source; the sequence is a pure function of its state.
        digits: ``uint8`` pool shaped ``(N, 28, 28)``.

    Returns:
        ``frames``: ``float32 (seq_length, 1, image_size, image_size)`` in [0, 1], and the indices into
        ``digits`` of the digits shown, shaped ``(num_digits,)``.
    """
    check_generator_args(num_digits, image_size, seq_length)
    low, high = speed_range(speed)
    travel = float(image_size - DIGIT_SIZE)  # room for the box's top-left corner on each axis

    chosen = rng.integers(len(digits), size=num_digits)  # (D,)
    start = rng.uniform(0.0, travel, size=(num_digits, 2))  # (D, 2) as (y, x)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=num_digits)  # (D,)
    step = rng.uniform(low, high, size=num_digits)  # (D,) pixels per frame
    velocity = step[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=1)  # (D, 2)

    # Reflection in closed form: move freely along the line, then fold onto [0, travel] with a
    # triangle wave of period 2*travel. Equivalent to bouncing, with no per-frame loop.
    t = np.arange(seq_length, dtype=np.float64)[None, :, None]  # (1, T, 1)
    free = start[:, None, :] + velocity[:, None, :] * t  # (D, T, 2)
    folded = travel - np.abs(travel - np.mod(free, 2.0 * travel))  # (D, T, 2) in [0, travel]
    corner = np.rint(folded).astype(np.intp)  # (D, T, 2) whole-pixel top-left corners

    # Paste all D*T digit boxes in one fancy assignment: index arrays broadcast to (D, T, 28, 28).
    offs = np.arange(DIGIT_SIZE)
    rows = (corner[..., 0, None] + offs)[..., :, None]  # (D, T, 28, 1)
    cols = (corner[..., 1, None] + offs)[..., None, :]  # (D, T, 1, 28)
    layer = np.arange(num_digits)[:, None, None, None]  # (D, 1, 1, 1)
    time = np.arange(seq_length)[None, :, None, None]  # (1, T, 1, 1)
    canvas = np.zeros((num_digits, seq_length, image_size, image_size), dtype=np.uint8)  # (D, T, H, W)
    canvas[layer, time, rows, cols] = digits[chosen][:, None]  # values (D, 1, 28, 28)

    if combine == "max":
        merged = canvas.max(axis=0)  # (T, H, W)
    elif combine == "sum":
        merged = np.minimum(canvas.sum(axis=0, dtype=np.uint16), 255)  # (T, H, W)
    else:
        raise ValueError(f"combine must be 'max' or 'sum', got {combine!r}")
    frames = merged.astype(np.float32) / np.float32(255.0)
    return frames[:, None], chosen  # (T, 1, H, W)


class GeneratedMovingMNIST(Dataset[torch.Tensor]):
    """Moving MNIST sequences generated on demand, reproducible from ``(seed, stream, epoch, index)``.

    Item ``k`` is generated with ``np.random.default_rng((seed, stream, epoch, index))`` where
    ``epoch, index = divmod(k, length)``: indices ``0 .. length-1`` are epoch 0, and
    :class:`EpochSampler` asks for ``epoch * length + index`` to get fresh sequences every epoch.
    The result never depends on the worker, the order of requests or earlier requests.

    Args:
        length: number of sequences per epoch.
        split: digit pool, ``"train"`` or ``"test"`` (disjoint pools, see :func:`load_digits`).
        num_digits, image_size, seq_length, speed, combine: see :func:`generate_moving_digits`.
        seed: non-negative base seed.
        stream: separates independent sets drawn with the same seed (the data module uses 0 for
            training, 1 for validation and 2 for testing).
        mnist_path: MNIST idx files to draw digits from instead of the shipped asset.

    Shape:
        item: ``float32 (seq_length, 1, image_size, image_size)`` in [0, 1].
    """

    def __init__(
        self,
        length: int,
        *,
        split: Split = "train",
        num_digits: int = 2,
        image_size: int = 64,
        seq_length: int = 20,
        speed: float | tuple[float, float] = (2.0, 4.0),
        combine: Literal["max", "sum"] = "max",
        seed: int = 0,
        stream: int = 0,
        mnist_path: str | Path | None = None,
    ) -> None:
        check_generated_set(length, seed=seed, stream=stream)
        if combine not in ("max", "sum"):
            raise ValueError(f"combine must be 'max' or 'sum', got {combine!r}")
        check_generator_args(num_digits, image_size, seq_length)
        self.length = length
        self.speed = speed_range(speed)
        self.num_digits, self.image_size, self.seq_length = num_digits, image_size, seq_length
        self.combine: Literal["max", "sum"] = combine
        self.seed, self.stream = seed, stream
        self.digits = load_digits(split, mnist_path)

    def __len__(self) -> int:
        return self.length

    def generate(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Sequence ``index`` of ``epoch`` as ``(frames (T, 1, H, W), digit labels (num_digits,))``."""
        if index < 0 or epoch < 0:
            raise IndexError(f"index and epoch must be >= 0, got {index} and {epoch}")
        rng = np.random.default_rng((self.seed, self.stream, epoch, index))
        frames, chosen = generate_moving_digits(
            rng,
            self.digits.images,
            num_digits=self.num_digits,
            image_size=self.image_size,
            seq_length=self.seq_length,
            speed=self.speed,
            combine=self.combine,
        )
        return frames, self.digits.labels[chosen]

    def __getitem__(self, index: int) -> torch.Tensor:
        epoch, item = divmod(int(index), self.length)
        return torch.from_numpy(self.generate(item, epoch)[0])


class EpochSampler(Sampler[int]):
    """Yields ``epoch * n + i`` for ``i in range(n)``, so a :class:`GeneratedMovingMNIST` makes fresh
    sequences each epoch.

    The epoch travels inside the index, which is computed in the main process, so it reaches every
    DataLoader worker, persistent or not. Lightning calls :meth:`set_epoch` at the start of each
    training epoch (also after resuming, and through its distributed wrapper); without it, each pass
    over the sampler moves on to the next epoch by itself.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        first = self.epoch * self.length
        self.epoch += 1
        return iter(range(first, first + self.length))
