"""Caption features in HDF5: one float dataset ``(N, D)`` per video id, as written by ``lstmvision
extract-features``; the check of a whole file and the dataset of features with their captions."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmvision.data.io.sampling import uniform_frame_indices

__all__ = ["CaptionFeatures", "CaptionItem", "check_caption_feature_file", "plain_attribute"]

log = logging.getLogger(__name__)

CaptionItem = tuple[Tensor, list[str], str]  # (frames or features (T, ...), raw references, video id)


class CaptionFeatures(Dataset[CaptionItem]):
    """The features of some videos in an HDF5 file (one dataset ``(N, D)`` per video id) with their captions.

    Args:
        path: the HDF5 file.
        captions: video id -> raw reference captions, in the set's order.
        num_frames: sample this many steps uniformly from every video (:func:`uniform_frame_indices`);
            None: every step (the collate function pads and the model masks).

    The file is opened lazily in each process (an h5py handle does not survive a fork).
    """

    def __init__(
        self, path: str | Path, captions: Mapping[str, list[str]], *, num_frames: int | None = None
    ) -> None:
        self.path = Path(path)
        self.ids = list(captions)
        self.captions = dict(captions)
        self.num_frames = num_frames
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def _handle(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = None  # each worker opens its own handle
        return state

    def __getitem__(self, index: int) -> CaptionItem:
        video_id = self.ids[index]
        values = np.asarray(self._handle()[video_id], dtype=np.float32)  # (N, D)
        if self.num_frames is not None:
            values = values[uniform_frame_indices(values.shape[0], self.num_frames)]
        return torch.from_numpy(values), self.captions[video_id], video_id


def check_caption_feature_file(path: Path, ids: Sequence[str], on_missing: str) -> tuple[list[str], int]:
    """The ids of ``ids`` present in the file (all of them with ``on_missing="raise"``) and the feature
    size; every dataset must be a float (N >= 1, D) array with one D for the whole file."""
    if not path.is_file():
        raise FileNotFoundError(f"features file not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from error
    with handle:
        missing = [video_id for video_id in ids if video_id not in handle]
        if missing and on_missing == "raise":
            shown = ", ".join(missing[:5]) + (f", ... ({len(missing) - 5} more)" if len(missing) > 5 else "")
            raise ValueError(
                f"{path}: no features for {len(missing)} of {len(ids)} captioned videos: {shown} "
                "(on_missing='skip' leaves them out)"
            )
        present = [video_id for video_id in ids if video_id in handle]
        sizes = set()
        for video_id in present:
            item = handle[video_id]
            if not isinstance(item, h5py.Dataset) or item.ndim != 2 or item.shape[0] < 1:
                shape = getattr(item, "shape", type(item).__name__)
                raise ValueError(f"{path}: {video_id!r} must be a (frames, features) dataset, got {shape}")
            if not np.issubdtype(item.dtype, np.floating):
                raise ValueError(f"{path}: {video_id!r} must hold floats, got dtype {item.dtype}")
            sizes.add(int(item.shape[1]))
        if len(sizes) > 1:
            raise ValueError(f"{path}: the videos' feature sizes differ: {sorted(sizes)}")
    if missing:
        log.warning("%s: %d captioned videos have no features and are left out", path, len(missing))
    return present, sizes.pop() if sizes else 0


def plain_attribute(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes become int/float/str)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
