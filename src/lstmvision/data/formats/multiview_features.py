"""Per-view features in one HDF5 file (format: docs/multiview_data.md): a group per sample holding one
``(T, D_view)`` dataset per view, and the dataset that reads them in DataLoader workers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmvision.data.io.multiview_clips import BadSampleError, multiview_item
from lstmvision.data.io.sampling import uniform_frame_indices
from lstmvision.data.skips import SkippedSamples, SkipsUnusable

__all__ = ["FeatureEntry", "Features", "MultiViewFeatures", "attribute_text", "collate_features"]

Features = Tensor | tuple[Tensor, ...]
"""A sample's features: ``(V, T, D)`` when every view has the same ``D``, else ``V`` tensors ``(T, D_v)``."""


def attribute_text(value: object) -> str | None:
    """An HDF5 attribute as text (UTF-8 bytes decoded), or None when it is no text."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, np.bytes_):
        return attribute_text(bytes(value))
    if isinstance(value, (str, np.str_)):
        return str(value)
    return None


def _frame_indices(length: int, count: int | None) -> list[int] | None:
    """``count`` indices spread uniformly over ``length`` frames, the last frame repeated when shorter."""
    if count is None:
        return None
    if length >= count:
        return uniform_frame_indices(length, count)
    return list(range(length)) + [length - 1] * (count - length)


class FeatureEntry(NamedTuple):
    """One sample of the file: its group key, its label and the length ``T`` of each view."""

    key: str
    label: int
    lengths: tuple[int, ...]


def collate_features(batch: Sequence[tuple[Features, Tensor]]) -> tuple[Features, Tensor]:
    """Stack a batch: ``(B, V, T, D)``, or per-view ``(B, T, D_v)`` tensors when the sizes differ."""
    labels = torch.stack([label for _, label in batch])
    first = batch[0][0]
    if isinstance(first, Tensor):
        return torch.stack([f for f, _ in batch if isinstance(f, Tensor)]), labels  # (B, V, T, D)
    views = len(first)
    return tuple(torch.stack([f[v] for f, _ in batch]) for v in range(views)), labels  # V x (B, T, D_v)


class MultiViewFeatures(SkipsUnusable, Dataset[tuple[Features, Tensor]]):
    """Per-view feature sequences of the samples ``entries`` of one HDF5 file.

    The file is opened on first use in each process (h5py handles are not picklable, and a handle
    opened before DataLoader workers fork must not be shared). Every view is read whole
    (``ds[()]``) and cut to ``num_frames`` indices (:func:`_frame_indices`), or kept whole when
    ``num_frames`` is ``None``.

    Shape:
        item ``(features, label)``: ``float32 (V, T, D)`` when every view has the same ``D``, else a
        tuple of ``V`` tensors ``(T, D_v)``; label ``int64`` scalar.
    """

    def __init__(
        self,
        path: str | Path,
        entries: Sequence[FeatureEntry],
        views: Sequence[str],
        feature_sizes: Sequence[int],
        *,
        num_frames: int | None = None,
        on_corrupt: Literal["raise", "skip"] = "raise",
    ) -> None:
        self.path, self.entries, self.views = Path(path), list(entries), list(views)
        self.stack = len(set(feature_sizes)) == 1
        self.num_frames, self.on_corrupt = num_frames, on_corrupt
        self._file: h5py.File | None = None
        self._pid = -1
        # samples found unreadable ("skip" mode), shared with the DataLoader workers
        self._skips = SkippedSamples(len(self.entries)) if on_corrupt == "skip" else None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, -1
        return state

    def __len__(self) -> int:
        return len(self.entries)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(f"{self.path}: cannot open the HDF5 file ({exc})") from exc
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, index: int) -> tuple[Features, Tensor]:
        return multiview_item(index, len(self.entries), self._skips, lambda i: self._item(self.entries[i]))

    def _item(self, entry: FeatureEntry) -> tuple[Features, Tensor]:
        handle = self._handle()
        views = []
        for view, length in zip(self.views, entry.lengths):
            key = f"{entry.key}/{view}"
            try:
                data = np.asarray(handle[key][()], dtype=np.float32)  # (T, D)
            except (OSError, KeyError, ValueError, TypeError) as exc:
                raise BadSampleError(f"{self.path}: cannot read dataset '{key}' ({exc})") from exc
            if not np.isfinite(data).all():
                raise BadSampleError(f"{self.path}: dataset '{key}' holds NaN or inf values")
            wanted = _frame_indices(length, self.num_frames)
            views.append(torch.from_numpy(data if wanted is None else data[wanted]))
        label = torch.tensor(entry.label, dtype=torch.int64)
        if self.stack:
            return torch.stack(views), label  # (V, T, D)
        return tuple(views), label
