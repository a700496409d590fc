"""Moving MNIST: the embedded generator, readers of the public files, datasets and a LightningDataModule.

Moving MNIST (Srivastava, Mansimov & Salakhutdinov, "Unsupervised Learning of Video Representations
using LSTMs", ICML 2015, https://arxiv.org/abs/1502.04681) shows handwritten digits bouncing inside a
small frame. Three sources of sequences are supported:

- generated on the fly from real MNIST digits (the 5,000-digit sample shipped in ``assets/`` or MNIST
  idx files the user names), reproducible from ``(seed, stream, epoch, index)``;
- ``mnist_test_seq.npy``, the standard fixed set of 10,000 sequences, ``uint8 (T, N, H, W)``;
- the ``.npz`` files of the PredRNN / E3D-LSTM releases (keys ``clips``, ``dims``, ``input_raw_data``).

docs/data.md gives the exact layout of every format. Every reader raises ``ValueError`` naming the file
and what is wrong with it (``FileNotFoundError`` when it does not exist).
"""

from __future__ import annotations

import functools
import gzip
import logging
import math
import zipfile
import zlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lstmvision.data._common import check_generated_set, check_loader_args, sets_for_stage
from lstmvision.data._sharding import test_set_sampler

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

logger = logging.getLogger(__name__)

DIGIT_SIZE = 28
"""Height and width of an MNIST digit in pixels."""

_ASSET_NAME = "mnist_digits.npz"
_ASSET_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
_IDX_MAGIC = {2051: 3, 2049: 1}  # magic number -> number of dimensions (images, labels)
# Names used by the official MNIST distribution, then the dotted variant found on common mirrors.
_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
}
# A single idx file given as the digit source is split like the shipped asset: first 80 % train.
_SINGLE_FILE_TRAIN_FRACTION = 0.8
# Errors numpy / zipfile / gzip raise on a damaged file; each is turned into a ValueError naming it.
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)

Split = Literal["train", "test"]


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path}: expected a {what} file, got a directory or special file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: {what} file is empty")
    return path


def _check_seq_length(path: Path, available: int, seq_length: int | None) -> int:
    """Return the number of frames to keep, refusing files whose sequences are too short."""
    if available < 1:
        raise ValueError(f"{path}: sequences hold no frame")
    if seq_length is None:
        return available
    if seq_length < 1:
        raise ValueError(f"seq_length must be >= 1, got {seq_length}")
    if available < seq_length:
        raise ValueError(f"{path}: sequences have {available} frames, fewer than seq_length={seq_length}")
    return seq_length


def read_moving_mnist_npy(
    path: str | Path, *, seq_length: int | None = None, mmap: bool = True
) -> np.ndarray:
    """Read the standard Moving MNIST file ``mnist_test_seq.npy``.

    The file holds one ``uint8`` array shaped ``(T, N, H, W)`` (20, 10000, 64, 64 for the published file):
    sequence ``n`` is ``array[:, n]``.

    Args:
        path: the ``.npy`` file.
        seq_length: keep the first ``seq_length`` frames of every sequence; ``None`` keeps all. A file
            with fewer frames raises ``ValueError``.
        mmap: memory-map the file instead of reading it (the published file is 820 MB).

    Returns:
        A ``uint8`` view shaped ``(N, T, 1, H, W)`` (sequence-major with a channel axis, read-only when
        memory-mapped). Divide by 255 for values in [0, 1].
    """
    path = _existing_file(path, "Moving MNIST .npy")
    # The header is checked by hand so that a truncated file is reported as such; a memory map of a
    # short file would otherwise fail later with an unrelated message.
    try:
        with path.open("rb") as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            data_offset = fp.tell()
    except _READ_ERRORS as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from exc
    if dtype != np.uint8:
        raise ValueError(f"{path}: expected dtype uint8 (pixel values 0-255), got {dtype}")
    if len(shape) != 4:
        raise ValueError(f"{path}: expected 4 dims (T, N, H, W), got shape {tuple(shape)}")
    if min(shape) < 1:
        raise ValueError(f"{path}: expected a non-empty (T, N, H, W) array, got shape {tuple(shape)}")
    expected_bytes = math.prod(shape) * dtype.itemsize
    got_bytes = path.stat().st_size - data_offset
    if got_bytes < expected_bytes:
        raise ValueError(
            f"{path}: truncated: shape {tuple(shape)} needs {expected_bytes} data bytes, got {got_bytes}"
        )
    keep = _check_seq_length(path, shape[0], seq_length)
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ValueError(f"{path}: cannot read the array ({exc})") from exc
    # (T, N, H, W) -> (N, T, 1, H, W): a view, the file is never copied.
    return array[:keep].transpose(1, 0, 2, 3)[:, :, None]


def _npz_array(data: Any, path: Path, key: str) -> np.ndarray:
    if key not in data.files:
        raise ValueError(f"{path}: missing key '{key}' (found keys {sorted(data.files)})")
    try:
        return np.asarray(data[key])
    except _READ_ERRORS as exc:
        raise ValueError(f"{path}: cannot read key '{key}' ({exc})") from exc


def _check_raw_frames(path: Path, key: str, raw: np.ndarray, dims: np.ndarray) -> np.ndarray:
    if raw.ndim != 4:
        raise ValueError(f"{path}: '{key}' expected 4 dims (frames, C, H, W), got shape {raw.shape}")
    if tuple(raw.shape[1:]) != tuple(int(d) for d in dims):
        raise ValueError(f"{path}: '{key}' frames shaped {raw.shape[1:]} but 'dims' says {tuple(dims)}")
    if not np.issubdtype(raw.dtype, np.floating):
        raise ValueError(f"{path}: '{key}' expected floating-point frames in [0, 1], got dtype {raw.dtype}")
    if raw.size:
        low, high = float(raw.min()), float(raw.max())
        # written this way round so that NaN fails the check
        if not (low >= 0.0 and high <= 1.0):
            raise ValueError(f"{path}: '{key}' expected values in [0, 1], got range [{low}, {high}]")
    return raw.astype(np.float32, copy=False)


def read_e3d_npz(path: str | Path, *, seq_length: int | None = None) -> np.ndarray:
    """Read a Moving MNIST ``.npz`` in the format of the PredRNN and E3D-LSTM releases.

    Keys (as read by their ``data_provider/mnist.py``):

    - ``clips``: integers shaped ``(2, N, 2)``; ``clips[0, n]`` = (start, length) of the input clip of
      sequence ``n`` and ``clips[1, n]`` that of its output clip, both indexing frames of
      ``input_raw_data``;
    - ``dims``: shaped ``(1, 3)``, the (C, H, W) of a frame; a ``(2, 3)`` ``dims`` means the output clips
      index a separate ``output_raw_data`` whose frames are shaped ``dims[1]``;
    - ``input_raw_data``: ``(frames, C, H, W)``, float in [0, 1].

    A sequence is its input clip's frames followed by its output clip's frames.

    Args:
        path: the ``.npz`` file.
        seq_length: keep the first ``seq_length`` frames of every sequence; ``None`` keeps all, which
            requires every sequence to have the same length.

    Returns:
        ``float32`` array shaped ``(N, T, C, H, W)``; a read-only view of ``input_raw_data`` when the
        sequences lie in it at a constant stride (as in the published files), a copy otherwise.
    """
    path = _existing_file(path, "E3D-LSTM/PredRNN .npz")
    try:
        npz = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive, got a single array (.npy content)")
    with npz:
        clips = _npz_array(npz, path, "clips")
        dims = _npz_array(npz, path, "dims")
        if dims.shape not in ((1, 3), (2, 3)) or not np.issubdtype(dims.dtype, np.integer):
            raise ValueError(
                f"{path}: 'dims' expected integers shaped (1, 3) or (2, 3), got {dims.shape} {dims.dtype}"
            )
        raw_in = _check_raw_frames(path, "input_raw_data", _npz_array(npz, path, "input_raw_data"), dims[0])
        raw_out = raw_in
        if dims.shape == (2, 3):
            if tuple(dims[0]) != tuple(dims[1]):
                raise ValueError(
                    f"{path}: input frames {tuple(dims[0])} and output frames {tuple(dims[1])} "
                    "differ, so they cannot form one sequence"
                )
            raw_out = _check_raw_frames(
                path, "output_raw_data", _npz_array(npz, path, "output_raw_data"), dims[1]
            )
    if clips.ndim != 3 or clips.shape[0] != 2 or clips.shape[2] != 2:
        raise ValueError(f"{path}: 'clips' expected shape (2, N, 2), got {clips.shape}")
    if not np.issubdtype(clips.dtype, np.integer):
        raise ValueError(f"{path}: 'clips' expected integer (start, length) pairs, got dtype {clips.dtype}")
    if clips.shape[1] == 0:
        raise ValueError(f"{path}: 'clips' holds no sequences")
    clips = clips.astype(np.int64)
    starts, lengths = clips[..., 0], clips[..., 1]  # each (2, N): row 0 input clips, row 1 output clips
    for side, raw, name in ((0, raw_in, "input"), (1, raw_out, "output")):
        # compared as start > frames - length: start + length could overflow int64 and wrap round
        bad = (starts[side] < 0) | (lengths[side] < 0) | (starts[side] > len(raw) - lengths[side])
        if bad.any():
            n = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: {name} clip of sequence {n} (start {starts[side, n]}, length "
                f"{lengths[side, n]}) lies outside the {len(raw)} stored frames"
            )
    totals = lengths.sum(axis=0)  # (N,) frames per sequence
    if seq_length is None and (totals != totals[0]).any():
        raise ValueError(
            f"{path}: sequences have different lengths ({totals.min()}..{totals.max()}); "
            "pass seq_length to cut them to a common length"
        )
    keep = _check_seq_length(path, int(totals.min()), seq_length)

    # Concatenate the two frame stores so one integer index addresses every frame.
    offset = 0
    if raw_out is not raw_in:
        offset = len(raw_in)
        raw_in = np.concatenate([raw_in, raw_out])
    t = np.arange(keep)  # (T,)
    in_len = lengths[0][:, None]  # (N, 1)
    index = np.where(t < in_len, starts[0][:, None] + t, starts[1][:, None] + offset + (t - in_len))  # (N, T)

    n_seq = index.shape[0]
    stride = int(index[1, 0] - index[0, 0]) if n_seq > 1 else keep
    tiled = (
        stride >= 0
        and bool((index == index[:, :1] + t).all())
        and bool((index[:, 0] == index[0, 0] + stride * np.arange(n_seq)).all())
    )
    if tiled:
        # The published files store sequence n at frames [20 n, 20 n + 20): a strided view avoids a
        # multi-GB copy. Read-only because sequences may overlap.
        base = raw_in[index[0, 0] :]
        s_frame = base.strides[0]
        return np.lib.stride_tricks.as_strided(
            base,
            shape=(n_seq, keep, *base.shape[1:]),
            strides=(stride * s_frame, *base.strides),
            writeable=False,
        )
    return raw_in[index]  # (N, T, C, H, W)


def _read_idx_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, so a renamed .gz still reads
        try:
            raw = gzip.decompress(raw)
        except _READ_ERRORS as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    return raw


def read_mnist_idx(path: str | Path) -> np.ndarray:
    """Read an MNIST idx file, plain or gzip-compressed.

    Format (http://yann.lecun.com/exdb/mnist/): a big-endian int32 magic number, 2051 for images
    (``idx3-ubyte``) and 2049 for labels (``idx1-ubyte``), then one big-endian int32 per dimension
    (N, rows, cols for images; N for labels), then the ``uint8`` data in C order.

    Returns:
        ``uint8`` images shaped ``(N, rows, cols)`` or labels shaped ``(N,)``.
    """
    path = _existing_file(path, "MNIST idx")
    raw = _read_idx_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated: {len(raw)} bytes, shorter than the 4-byte magic number")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _IDX_MAGIC:
        raise ValueError(f"{path}: expected magic number 2051 (images) or 2049 (labels), got {magic}")
    ndim = _IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header: expected {header} bytes, got {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if min(shape) < 0:
        raise ValueError(f"{path}: negative dims {shape} in the header")
    expected = math.prod(shape)
    got = len(raw) - header
    if got != expected:
        problem = "truncated" if got < expected else "trailing bytes"
        raise ValueError(f"{path}: {problem}: dims {shape} need {expected} data bytes, got {got}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


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
    asset = resources.files(__package__) / "assets" / _ASSET_NAME
    with resources.as_file(asset) as path:
        path = _existing_file(path, "MNIST digit asset")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: _npz_array(data, path, key) for key in _ASSET_KEYS}
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


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------


def _speed_range(speed: float | tuple[float, float]) -> tuple[float, float]:
    low, high = (speed, speed) if isinstance(speed, (int, float)) else tuple(speed)
    if not (0.0 <= low <= high):
        raise ValueError(
            f"speed must be a number >= 0 or a (low, high) range with 0 <= low <= high, got {speed!r}"
        )
    return float(low), float(high)


def _check_generator_args(num_digits: int, image_size: int, seq_length: int) -> None:
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
    _check_generator_args(num_digits, image_size, seq_length)
    low, high = _speed_range(speed)
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


# --------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------


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
        _check_generator_args(num_digits, image_size, seq_length)
        self.length = length
        self.speed = _speed_range(speed)
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


class MovingMNISTArray(Dataset[torch.Tensor]):
    """Fixed Moving MNIST sequences from a public file: ``.npy`` (standard) or ``.npz`` (E3D/PredRNN).

    Args:
        path: the file; its suffix picks the reader (:func:`read_moving_mnist_npy` or
            :func:`read_e3d_npz`).
        seq_length: keep the first ``seq_length`` frames; a file with shorter sequences is an error.
        image_size: when given, the frames must be ``image_size × image_size``.

    Shape:
        item: ``float32 (seq_length, C, H, W)`` in [0, 1].
    """

    def __init__(self, path: str | Path, *, seq_length: int = 20, image_size: int | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix not in (".npy", ".npz"):
            raise ValueError(
                f"{self.path}: expected a .npy (standard Moving MNIST) or .npz (E3D-LSTM/PredRNN) "
                f"file, got suffix '{self.path.suffix}'"
            )
        self.seq_length, self.image_size = seq_length, image_size
        self.sequences = self._read()

    def _read(self) -> np.ndarray:
        if self.path.suffix == ".npy":
            sequences = read_moving_mnist_npy(self.path, seq_length=self.seq_length)
        else:
            sequences = read_e3d_npz(self.path, seq_length=self.seq_length)
        height, width = sequences.shape[-2:]
        if self.image_size is not None and (height, width) != (self.image_size, self.image_size):
            raise ValueError(
                f"{self.path}: frames are {height}x{width}, expected image_size "
                f"{self.image_size}x{self.image_size}"
            )
        logger.info("read %d sequences of %d frames from %s", len(sequences), self.seq_length, self.path)
        return sequences

    def __getstate__(self) -> dict[str, Any]:
        # Spawned DataLoader workers re-open the file (a memory map costs nothing to reopen) instead of
        # receiving a pickled copy of every sequence.
        state = self.__dict__.copy()
        del state["sequences"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.sequences = self._read()

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> torch.Tensor:
        sequence = self.sequences[index]  # (T, C, H, W), possibly a strided read-only view
        if sequence.dtype == np.uint8:
            return torch.from_numpy(sequence.astype(np.float32) / np.float32(255.0))
        return torch.from_numpy(np.array(sequence, dtype=np.float32))  # copy: the view is read-only


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


# --------------------------------------------------------------------------------------------------
# LightningDataModule
# --------------------------------------------------------------------------------------------------


class MovingMNISTDataModule(L.LightningDataModule):
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
        _check_generator_args(num_digits, image_size, seq_length)
        self.save_hyperparameters()
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.mnist_path = mnist_path
        self.num_digits, self.image_size, self.seq_length = num_digits, image_size, seq_length
        self.speed = _speed_range(speed)
        self.combine: Literal["max", "sum"] = combine
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.datasets: dict[str, GeneratedMovingMNIST | MovingMNISTArray] = {}

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
        wanted = sets_for_stage("MovingMNISTDataModule", stage)
        for which in wanted:
            if which not in self.datasets:
                self.datasets[which] = self._build(which)

    def _dataset(self, which: str) -> GeneratedMovingMNIST | MovingMNISTArray:
        if which not in self.datasets:
            raise RuntimeError(f"MovingMNISTDataModule: the {which} set is not set up; call setup() first")
        return self.datasets[which]

    def _loader(self, dataset: Dataset[torch.Tensor], **kwargs: Any) -> DataLoader[torch.Tensor]:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader[torch.Tensor]:
        dataset = self._dataset("train")
        if isinstance(dataset, GeneratedMovingMNIST):
            return self._loader(dataset, sampler=EpochSampler(len(dataset)))
        return self._loader(dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader[torch.Tensor]:
        return self._loader(self._dataset("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader[torch.Tensor]:
        # under DDP each process tests its own block of the set, no clip repeated (see _sharding.py)
        dataset = self._dataset("test")
        return self._loader(dataset, sampler=test_set_sampler(dataset))

    def predict_dataloader(self) -> DataLoader[torch.Tensor]:
        return self.test_dataloader()
