"""Moving MNIST files: the standard ``mnist_test_seq.npy`` and the ``.npz`` files of the PredRNN /
E3D-LSTM releases, and the dataset of fixed sequences read from either.

Moving MNIST: Srivastava, Mansimov & Salakhutdinov, "Unsupervised Learning of Video Representations
using LSTMs", ICML 2015, https://arxiv.org/abs/1502.04681. docs/data.md gives the exact layout of every
format. Every reader raises ``ValueError`` naming the file and what is wrong with it
(``FileNotFoundError`` when it does not exist).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lstmvision.data.formats.files import READ_ERRORS, existing_file, npz_array

__all__ = ["MovingMNISTArray", "read_e3d_npz", "read_moving_mnist_npy"]

logger = logging.getLogger(__name__)


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
    path = existing_file(path, "Moving MNIST .npy")
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
    except READ_ERRORS as exc:
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
    except READ_ERRORS as exc:
        raise ValueError(f"{path}: cannot read the array ({exc})") from exc
    # (T, N, H, W) -> (N, T, 1, H, W): a view, the file is never copied.
    return array[:keep].transpose(1, 0, 2, 3)[:, :, None]


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
    path = existing_file(path, "E3D-LSTM/PredRNN .npz")
    try:
        npz = np.load(path, allow_pickle=False)
    except READ_ERRORS as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive, got a single array (.npy content)")
    with npz:
        clips = npz_array(npz, path, "clips")
        dims = npz_array(npz, path, "dims")
        if dims.shape not in ((1, 3), (2, 3)) or not np.issubdtype(dims.dtype, np.integer):
            raise ValueError(
                f"{path}: 'dims' expected integers shaped (1, 3) or (2, 3), got {dims.shape} {dims.dtype}"
            )
        raw_in = _check_raw_frames(path, "input_raw_data", npz_array(npz, path, "input_raw_data"), dims[0])
        raw_out = raw_in
        if dims.shape == (2, 3):
            if tuple(dims[0]) != tuple(dims[1]):
                raise ValueError(
                    f"{path}: input frames {tuple(dims[0])} and output frames {tuple(dims[1])} "
                    "differ, so they cannot form one sequence"
                )
            raw_out = _check_raw_frames(
                path, "output_raw_data", npz_array(npz, path, "output_raw_data"), dims[1]
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
