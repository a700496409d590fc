"""The captioning data module of pre-extracted frame features (HDF5, written by ``lstmvision
extract-features``) with MSVD, MSR-VTT or generic JSON captions (docs/captioning_data.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import h5py

from lstmvision.data.datamodules.base import check_loader_args
from lstmvision.data.datamodules.captioning import CaptionsDataModule
from lstmvision.data.formats.caption_features import (
    CaptionFeatures,
    check_caption_feature_file,
    plain_attribute,
)
from lstmvision.data.formats.captions import SPLITS, CaptionSet, read_caption_json
from lstmvision.data.formats.msrvtt import read_msrvtt
from lstmvision.data.formats.msvd import read_msvd_csv

__all__ = ["CaptionFeaturesDataModule"]


class CaptionFeaturesDataModule(CaptionsDataModule):
    """Pre-extracted frame features (HDF5) with MSVD, MSR-VTT or generic JSON captions.

    Args:
        features: the HDF5 file of ``lstmvision extract-features`` (key = video id, float (N, D)).
        dataset: the caption format: ``"msvd"`` (``captions`` = ``MSR Video Description Corpus.csv``;
            the split from ``split_file``, else from ``mapping_file`` = ``youtube_mapping.txt``),
            ``"msrvtt"`` (``captions`` = ``train_val_videodatainfo.json``, ``test_captions`` =
            ``test_videodatainfo.json``) or ``"json"`` (``{video_id: [captions]}`` with ``split_file``).
            See docs/captioning_data.md.
        num_frames: sample this many steps uniformly per video; None pads to the longest video of the
            batch with a mask (the model never attends to padding).
        on_missing: a captioned video absent from the features file ``"raise"``s an error naming it, or
            is left out with a warning (``"skip"``).
        min_count, max_vocab_size, max_caption_length: vocabulary and target settings.
        batch_size, num_workers: DataLoader settings.
    """

    def __init__(
        self,
        *,
        features: str,
        dataset: Literal["msvd", "msrvtt", "json"],
        captions: str,
        test_captions: str | None = None,
        split_file: str | None = None,
        mapping_file: str | None = None,
        num_frames: int | None = None,
        on_missing: Literal["raise", "skip"] = "raise",
        min_count: int = 1,
        max_vocab_size: int | None = None,
        max_caption_length: int = 30,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_loader_args(owner, num_workers=num_workers, batch_size=batch_size)
        if dataset not in ("msvd", "msrvtt", "json"):
            raise ValueError(f"{owner}: dataset must be 'msvd', 'msrvtt' or 'json', got {dataset!r}")
        if on_missing not in ("raise", "skip"):
            raise ValueError(f"{owner}: on_missing must be 'raise' or 'skip', got {on_missing!r}")
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"{owner}: num_frames must be >= 1 or null, got {num_frames}")
        if test_captions is not None and dataset != "msrvtt":
            raise ValueError(f"{owner}: test_captions is for dataset 'msrvtt' only, got dataset {dataset!r}")
        self._check_caption_args(min_count, max_vocab_size, max_caption_length)
        self.features, self.dataset, self.captions_path = Path(features), dataset, Path(captions)
        self.test_captions, self.split_file, self.mapping_file = test_captions, split_file, mapping_file
        self.num_frames, self.on_missing = num_frames, on_missing
        self.batch_size, self.num_workers = batch_size, num_workers
        self.caption_set: CaptionSet | None = None
        self.feature_size = 0

    def _read_captions(self) -> CaptionSet:
        if self.dataset == "msvd":
            return read_msvd_csv(
                self.captions_path, split_file=self.split_file, mapping_file=self.mapping_file
            )
        if self.dataset == "msrvtt":
            return read_msrvtt(self.captions_path, self.test_captions)
        return read_caption_json(self.captions_path, self.split_file)

    def _split(self, which: str) -> dict[str, list[str]]:
        assert self.caption_set is not None  # read in setup() before any split is asked for
        return self.caption_set.split_captions(which)

    def setup(self, stage: str | None = None) -> None:
        if self.caption_set is None:
            self.caption_set = self._read_captions()
            ids = [video_id for split in SPLITS for video_id in self.caption_set.splits.get(split, [])]
            present, self.feature_size = check_caption_feature_file(self.features, ids, self.on_missing)
            self._present = set(present)
        self.build_sets(stage, self._make)
        self._prepare_vocabulary()

    def _make(self, which: str) -> CaptionFeatures:
        captions = {k: v for k, v in self._split(which).items() if k in self._present}
        if not captions:
            raise ValueError(f"{self.features}: the {which} split has no video with features")
        return CaptionFeatures(self.features, captions, num_frames=self.num_frames)

    def _train_captions(self) -> list[list[str]]:
        return [v for k, v in self._split("train").items() if k in self._present]

    def input_spec(self) -> dict[str, Any]:
        with h5py.File(self.features, "r") as handle:
            attributes = {key: plain_attribute(value) for key, value in handle.attrs.items()}
        return {
            "kind": "features",
            "feature_size": self.feature_size,
            "num_frames": self.num_frames,
            **attributes,
        }
