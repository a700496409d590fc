"""MNIST idx files (http://yann.lecun.com/exdb/mnist/), plain or gzip-compressed."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from lstmvision.data.formats.files import READ_ERRORS, existing_file

__all__ = ["read_mnist_idx"]

_IDX_MAGIC = {2051: 3, 2049: 1}  # magic number -> number of dimensions (images, labels)


def _read_idx_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, so a renamed .gz still reads
        try:
            raw = gzip.decompress(raw)
        except READ_ERRORS as exc:
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
    path = existing_file(path, "MNIST idx")
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
