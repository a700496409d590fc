"""The multi-view features data module: pre-extracted per-view feature sequences from one HDF5 file
(:mod:`~lstmvision.data.formats.multiview_features`; format: docs/multiview_data.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from lstmvision.data.checks import check_choice, check_positive, check_split_fractions
from lstmvision.data.datamodules.base import SetsDataModule, check_loader_args
from lstmvision.data.formats.multiview_features import (
    FeatureEntry,
    MultiViewFeatures,
    attribute_text,
    collate_features,
)
from lstmvision.data.io.frames import natural_key
from lstmvision.data.layouts.splits import SET_NAMES, split_groups

__all__ = ["MultiViewFeaturesDataModule"]


class MultiViewFeaturesDataModule(SetsDataModule):
    """Per-view pre-extracted features in one HDF5 file (format: docs/multiview_data.md).

    Every top-level group ``<sample>`` holds one dataset ``(T, D_view)`` per view and the attributes
    ``label`` (an int class index, or a class name: the classes are then the sorted names), optionally
    ``split`` (``"train"``, ``"val"`` or ``"test"``, on every sample or on none) and ``speaker`` or
    ``subject`` (then the seeded split keeps each speaker/subject in one set). The file is checked in
    ``setup()`` (shapes, dtypes and attributes only; no feature is read).

    Args:
        path: the HDF5 file.
        views: the views to read, in this order; ``None``: the first sample's datasets, sorted.
        num_frames: frames per sample: ``K`` indices spread uniformly over each view (the last frame
            repeated for shorter views); ``None``: every sample and view must have the same ``T``.
        val_fraction, test_fraction: samples (or speakers/subjects) held out when no ``split``
            attribute is given; a ``val_fraction`` of 0 validates on the test set.
        batch_size, num_workers, seed: DataLoader settings and the seed of the held-out draw.
        on_corrupt: a dataset that cannot be read, or holds NaN/inf, ``"raise"``s a ValueError naming
            the file and the key, or is ``"skip"``ped: a warning names it, the sample is replaced by
            the next readable one and counted (``MultiViewFeatures.skipped``).

    Batches are ``(features, labels)``: ``float32 (B, V, T, D)`` when every view has the same ``D``,
    else a tuple of ``V`` tensors ``(B, T, D_v)``; labels ``int64 (B,)``.
    """

    def __init__(
        self,
        path: str,
        *,
        views: Sequence[str] | None = None,
        num_frames: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        on_corrupt: Literal["raise", "skip"] = "raise",
    ) -> None:
        super().__init__()
        owner = "MultiViewFeaturesDataModule"
        check_choice("on_corrupt", on_corrupt, ("raise", "skip"), owner=owner)
        self.on_corrupt = on_corrupt
        self.collate_fn = collate_features  # per-view tuples when the views' feature sizes differ
        check_positive(owner=owner, none_ok=True, num_frames=num_frames, batch_size=batch_size)
        check_split_fractions(val_fraction, test_fraction, owner=owner)
        check_loader_args(owner, num_workers=num_workers, seed=seed)
        if views is not None:
            if isinstance(views, (str, bytes)) or not isinstance(views, Sequence) or not views:
                raise ValueError(f"{owner}: views must be a non-empty list of view names, got {views!r}")
            if len(set(views)) != len(views):
                raise ValueError(f"{owner}: views {list(views)} name a view twice")
        self.save_hyperparameters()
        self.path = Path(path)
        self._views = None if views is None else [str(v) for v in views]
        self.num_frames = num_frames
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self._sets: dict[str, list[FeatureEntry]] | None = None
        self._class_names: list[str] = []
        self._feature_sizes: list[int] = []

    def _check_sample(self, key: str, group: Any) -> tuple[object, str | None, str | None, tuple[int, ...]]:
        where = f"{self.path}: sample '{key}'"
        if not isinstance(group, h5py.Group):
            raise ValueError(f"{where} is a dataset; expected a group holding one dataset per view")
        views = self._views
        if views is None:
            views = self._views = sorted(group.keys())
            if not views:
                raise ValueError(f"{where} holds no view dataset")
        if "label" not in group.attrs:
            raise ValueError(f"{where} has no 'label' attribute")
        label = group.attrs["label"]
        if isinstance(label, np.ndarray) and label.shape == ():
            label = label[()]
        split = None
        if "split" in group.attrs:
            split = attribute_text(group.attrs["split"])
            if split not in SET_NAMES:
                raise ValueError(
                    f"{where}: attribute 'split' must be 'train', 'val' or 'test', got {group.attrs['split']!r}"
                )
        owner = None
        for name in ("speaker", "subject"):
            if name in group.attrs:
                value = group.attrs[name]
                owner = attribute_text(value) if attribute_text(value) is not None else str(value)
                break
        lengths = []
        for index, view in enumerate(views):
            if view not in group:
                raise ValueError(f"{where} has no view '{view}' (it holds {sorted(group.keys())})")
            ds = group[view]
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.dtype.kind not in "fiu":
                shape = getattr(ds, "shape", None)
                dtype = getattr(ds, "dtype", None)
                raise ValueError(
                    f"{where}, view '{view}': expected a numeric dataset (T, D), got shape {shape} dtype {dtype}"
                )
            frames, size = ds.shape
            if frames < 1 or size < 1:
                raise ValueError(f"{where}, view '{view}': empty features of shape {ds.shape}")
            if len(self._feature_sizes) <= index:
                self._feature_sizes.append(size)
            elif size != self._feature_sizes[index]:
                raise ValueError(
                    f"{where}, view '{view}': feature size D expected {self._feature_sizes[index]} (as in the first sample), got {size}"
                )
            lengths.append(frames)
        if self.num_frames is None and len(set(lengths)) > 1:
            counts = ", ".join(f"{v}: {t}" for v, t in zip(views, lengths))
            raise ValueError(
                f"{where}: views of different lengths T ({counts}); give num_frames to resample them"
            )
        return label, split, owner, tuple(lengths)

    def _scan(self) -> dict[str, list[FeatureEntry]]:
        if self._sets is not None:
            return self._sets
        if not self.path.is_file():
            raise FileNotFoundError(f"HDF5 feature file not found: {self.path}")
        try:
            handle = h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot open the HDF5 file ({exc})") from exc
        with handle:
            try:
                keys = sorted(handle.keys(), key=natural_key)
                rows = [(key, *self._check_sample(key, handle[key])) for key in keys]
            except (OSError, KeyError, RuntimeError) as exc:
                raise ValueError(f"{self.path}: cannot read the HDF5 file ({exc})") from exc
        if not rows:
            raise ValueError(f"{self.path}: no sample group in the file")
        if self.num_frames is None:
            first_key, first_lengths = rows[0][0], rows[0][4]
            for key, *_, lengths in rows:
                if lengths[0] != first_lengths[0]:
                    raise ValueError(
                        f"{self.path}: sample '{key}' has T={lengths[0]} frames, sample '{first_key}' "
                        f"T={first_lengths[0]}; every sample needs the same T, or give num_frames"
                    )
        labels = [row[1] for row in rows]
        names = [attribute_text(label) for label in labels]
        if all(name is not None for name in names):
            self._class_names = sorted({n for n in names if n is not None})
            indices = [self._class_names.index(n) for n in names if n is not None]
        else:
            indices = []
            for (key, label, *_), name in zip(rows, names):
                if (
                    name is not None
                    or isinstance(label, (bool, np.bool_))
                    or not isinstance(label, (int, np.integer))
                    or label < 0
                ):
                    raise ValueError(
                        f"{self.path}: sample '{key}': attribute 'label' must be an int >= 0 or a class name (the same kind in every sample), got {label!r}"
                    )
                indices.append(int(label))
            self._class_names = [str(i) for i in range(max(indices) + 1)]
        entries = [FeatureEntry(row[0], label, row[4]) for row, label in zip(rows, indices)]
        splits = [row[2] for row in rows]
        groups = [row[3] for row in rows]
        if any(s is not None for s in splits):
            absent = [row[0] for row, s in zip(rows, splits) if s is None]
            if absent:
                raise ValueError(
                    f"{self.path}: sample '{absent[0]}' has no 'split' attribute, other samples have one"
                )
            which = {e.key: s for e, s in zip(entries, splits) if s is not None}
        elif any(g is not None for g in groups):
            absent = [row[0] for row, g in zip(rows, groups) if g is None]
            if absent:
                raise ValueError(
                    f"{self.path}: sample '{absent[0]}' has no 'speaker'/'subject' attribute, other samples have one"
                )
            by_group = split_groups(
                [g for g in groups if g is not None],
                self.val_fraction,
                self.test_fraction,
                self.seed,
                str(self.path),
                "speakers/subjects",
            )
            which = {e.key: by_group[g] for e, g in zip(entries, groups) if g is not None}
        else:
            which = split_groups(
                [e.key for e in entries],
                self.val_fraction,
                self.test_fraction,
                self.seed,
                str(self.path),
                "samples",
            )
        sets: dict[str, list[FeatureEntry]] = {
            s: [e for e in entries if which[e.key] == s] for s in SET_NAMES
        }
        if not sets["val"]:
            sets["val"] = sets["test"]
        for name in ("train", "test"):
            if not sets[name]:
                raise ValueError(f"{self.path}: the {name} set is empty")
        self._sets = sets
        return sets

    @property
    def class_names(self) -> list[str]:
        self._scan()
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def view_names(self) -> list[str]:
        self._scan()
        return list(self._views or [])

    @property
    def num_views(self) -> int:
        return len(self.view_names)

    @property
    def feature_sizes(self) -> list[int]:
        """``D`` of each view, in view order."""
        self._scan()
        return list(self._feature_sizes)

    def setup(self, stage: str | None = None) -> None:
        """Check the file, then build the sets ``stage`` needs (all three when ``None``)."""
        sets = self._scan()
        self.build_sets(
            stage,
            lambda which: MultiViewFeatures(
                self.path,
                sets[which],
                self.view_names,
                self._feature_sizes,
                num_frames=self.num_frames,
                on_corrupt=self.on_corrupt,
            ),
        )
