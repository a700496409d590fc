"""Data modules for video captioning: batches of frames or features with their captions.

Two sources share one batch format (:class:`CaptionBatch`) and one collate function:

- :class:`CaptionedDigitsDataModule`: the embedded captioned digit set (frames, no download);
- :class:`CaptionFeaturesDataModule`: pre-extracted frame features in an HDF5 file (written by
  ``lstmvision extract-features``) with the captions of MSVD, MSR-VTT or a generic JSON file.

Both build the vocabulary from the training captions only (``min_count``, ``max_vocab_size``); the
captioning task saves it in its checkpoints. A training item's target is one of its references, drawn
at random every time the item is loaded; validation and test items carry all their raw references.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmvision.data._common import SetsDataModule, check_loader_args, sets_for_stage
from lstmvision.data.captioned_digits import CaptionedDigits
from lstmvision.data.captions import (
    SPLITS,
    CaptionSet,
    Vocabulary,
    encode_captions,
    read_caption_json,
    read_msrvtt,
    read_msvd_csv,
    tokenize,
)
from lstmvision.data.moving_mnist import EpochSampler, Split
from lstmvision.data.video import _check_positive

__all__ = [
    "CaptionBatch",
    "CaptionCollate",
    "CaptionFeatures",
    "CaptionFeaturesDataModule",
    "CaptionedDigitsDataModule",
    "most_frequent_caption",
    "uniform_frame_indices",
]

log = logging.getLogger(__name__)

VOCABULARY_CLIPS = 4000
"""The embedded set's vocabulary and most frequent caption come from at least this many training clips."""

CaptionItem = tuple[Tensor, list[str], str]  # (frames or features (T, ...), raw references, video id)


class CaptionBatch(NamedTuple):
    """A batch of videos with their captions.

    Attributes:
        inputs: features ``(B, T, D)`` or frames ``(B, T, C, H, W)``, zero after each video's length.
        lengths: valid steps of every video ``(B,)``.
        tokens: one target caption per video ``(B, L)``: ``<bos>`` ids ``<eos>``, then ``<pad>``.
        references: every video's raw reference captions (what the metrics score against).
        video_ids: the videos' ids.
    """

    inputs: Tensor
    lengths: Tensor
    tokens: Tensor
    references: list[list[str]]
    video_ids: list[str]


class CaptionCollate:
    """Pad a list of ``(inputs (T, ...), references, video_id)`` items into a :class:`CaptionBatch`.

    The target of each video is one of its references, drawn with torch's generator (seeded per
    DataLoader worker by Lightning's ``seed_everything``) when ``sample_target`` is true, else its first
    reference. A picklable object, so that it works in DataLoader worker processes."""

    def __init__(self, vocabulary: Vocabulary, max_caption_length: int, *, sample_target: bool) -> None:
        self.vocabulary = vocabulary
        self.max_caption_length = max_caption_length
        self.sample_target = sample_target

    def __call__(self, items: Sequence[CaptionItem]) -> CaptionBatch:
        if not items:
            raise ValueError("CaptionCollate: empty batch")
        shapes = {tuple(inputs.shape[1:]) for inputs, _, _ in items}
        if len(shapes) != 1:
            raise ValueError(
                f"CaptionCollate: the videos of a batch differ in shape per step: {sorted(shapes)}"
            )
        lengths = torch.tensor([inputs.shape[0] for inputs, _, _ in items], dtype=torch.long)
        first = items[0][0]
        batch = first.new_zeros(len(items), int(lengths.max()), *first.shape[1:])  # (B, T_max, ...)
        for b, (inputs, _, _) in enumerate(items):
            batch[b, : inputs.shape[0]] = inputs
        targets = []
        for _, references, video_id in items:
            if not references:
                raise ValueError(f"CaptionCollate: video {video_id!r} has no caption")
            pick = int(torch.randint(len(references), ())) if self.sample_target else 0
            targets.append(references[pick])
        tokens, _ = encode_captions(self.vocabulary, targets, self.max_caption_length)
        return CaptionBatch(
            batch,
            lengths,
            tokens,
            [list(references) for _, references, _ in items],
            [video_id for _, _, video_id in items],
        )


def most_frequent_caption(captions: Sequence[Sequence[str]]) -> str:
    """The reference caption that occurs most often (compared after tokenising, so case and punctuation
    do not split a caption in two), written as its most frequent raw form; ties go to the caption seen
    first. The baseline the captioning task scores beside the model."""
    counts: Counter[str] = Counter()
    raw: dict[str, Counter[str]] = {}
    for references in captions:
        for caption in references:
            key = " ".join(tokenize(caption))
            counts[key] += 1
            raw.setdefault(key, Counter())[caption] += 1
    if not counts:
        raise ValueError("most_frequent_caption: no captions given")
    best = max(counts, key=lambda key: counts[key])  # max keeps the first of equal counts
    return raw[best].most_common(1)[0][0]


def _build_vocabulary(
    owner: str, captions: Sequence[Sequence[str]], min_count: int, max_size: int | None
) -> Vocabulary:
    vocabulary = Vocabulary.build(
        (caption for references in captions for caption in references), min_count=min_count, max_size=max_size
    )
    log.info("%s: vocabulary of %d tokens from the training captions", owner, len(vocabulary))
    return vocabulary


class _CaptionsDataModule(SetsDataModule):
    """What both captioning data modules share: the vocabulary, the baseline caption, the collate
    functions (a random target per training item), and the description of the inputs that the task saves
    in its checkpoints so that ``lstmvision caption`` can prepare new videos the same way."""

    min_count: int
    max_vocab_size: int | None
    max_caption_length: int
    vocabulary: Vocabulary | None = None
    baseline_caption: str | None = None

    def _check_caption_args(
        self, min_count: int, max_vocab_size: int | None, max_caption_length: int
    ) -> None:
        owner = type(self).__name__
        if min_count < 1:
            raise ValueError(f"{owner}: min_count must be >= 1, got {min_count}")
        if max_vocab_size is not None and max_vocab_size < 5:
            raise ValueError(
                f"{owner}: max_vocab_size must be >= 5 (4 special tokens + 1 word), got {max_vocab_size}"
            )
        if max_caption_length < 2:
            raise ValueError(
                f"{owner}: max_caption_length must be >= 2 (<bos> and <eos>), got {max_caption_length}"
            )
        self.min_count, self.max_vocab_size, self.max_caption_length = (
            min_count,
            max_vocab_size,
            max_caption_length,
        )

    def _train_captions(self) -> list[list[str]]:
        raise NotImplementedError

    def input_spec(self) -> dict[str, Any]:
        """How a video becomes the model's input (plain values, saved in checkpoints)."""
        raise NotImplementedError

    def _prepare_vocabulary(self) -> None:
        if self.vocabulary is None:
            captions = self._train_captions()
            self.vocabulary = _build_vocabulary(
                type(self).__name__, captions, self.min_count, self.max_vocab_size
            )
            self.baseline_caption = most_frequent_caption(captions)

    def loader_collate(self, which: str) -> CaptionCollate:
        if self.vocabulary is None:
            raise RuntimeError(f"{type(self).__name__}: no vocabulary yet; call setup() first")
        return CaptionCollate(self.vocabulary, self.max_caption_length, sample_target=which == "train")

    def train_dataloader(self) -> Any:
        self.collate_fn = self.loader_collate("train")
        return super().train_dataloader()

    def val_dataloader(self) -> Any:
        self.collate_fn = self.loader_collate("val")
        return super().val_dataloader()

    def test_dataloader(self) -> Any:
        self.collate_fn = self.loader_collate("test")
        return super().test_dataloader()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.vocabulary is None else {"vocabulary": self.vocabulary.to_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("vocabulary")
        if saved is None:
            return
        vocabulary = Vocabulary.from_dict(saved)
        if self.vocabulary is not None and vocabulary != self.vocabulary:
            log.warning(
                "%s: the checkpoint's vocabulary (%d tokens) differs from the one built from the training "
                "captions (%d tokens); the checkpoint's is used",
                type(self).__name__,
                len(vocabulary),
                len(self.vocabulary),
            )
        self.vocabulary = vocabulary


class CaptionedDigitsDataModule(_CaptionsDataModule):
    """The embedded captioned digit set (:class:`~lstmvision.data.CaptionedDigits`) for captioning.

    Training clips use the train digit pool and are new every epoch (an
    :class:`~lstmvision.data.EpochSampler`); validation and test clips use the disjoint test pool and are
    the same every time (random streams 0, 1 and 2 of ``seed``). The vocabulary and the most frequent
    training caption come from the references of the first epoch's training clips, and of at least
    :data:`VOCABULARY_CLIPS` of them (clip k does not depend on ``train_size``), so that the vocabulary
    is the whole grammar's (46 tokens with the defaults) whatever the set's size.

    Args:
        image_size, seq_length, num_digits, motions, num_references: see
            :func:`~lstmvision.data.generate_captioned_clip`.
        train_size, val_size, test_size: clips per set (per epoch for training).
        batch_size, num_workers: DataLoader settings.
        seed: base seed.
        min_count, max_vocab_size: vocabulary settings (:meth:`Vocabulary.build`).
        max_caption_length: the longest target in tokens, ``<bos>`` and ``<eos>`` included.
        mnist_path: MNIST idx files to draw digits from instead of the shipped asset.

    Batches are :class:`CaptionBatch` with frames ``(B, seq_length, 1, image_size, image_size)``.
    """

    _STREAMS: ClassVar[dict[str, int]] = {"train": 0, "val": 1, "test": 2}

    def __init__(
        self,
        *,
        image_size: int = 64,
        seq_length: int = 16,
        num_digits: int | list[int] = [1, 2],  # noqa: B006 - read only; a list so that YAML can set it
        motions: list[str] | None = None,
        num_references: int = 5,
        train_size: int = 8000,
        val_size: int = 200,
        test_size: int = 500,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        min_count: int = 1,
        max_vocab_size: int | None = None,
        max_caption_length: int = 24,
        mnist_path: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_loader_args(
            owner,
            num_workers=num_workers,
            seed=seed,
            train_size=train_size,
            val_size=val_size,
            test_size=test_size,
            batch_size=batch_size,
        )
        self._check_caption_args(min_count, max_vocab_size, max_caption_length)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.image_size, self.seq_length = image_size, seq_length
        self._clip_args: dict[str, Any] = dict(
            image_size=image_size,
            seq_length=seq_length,
            num_digits=num_digits,
            motions=motions,
            num_references=num_references,
            seed=seed,
            mnist_path=mnist_path,
        )
        self._make("val")  # checks the clip arguments now, not at the first loader

    def _make(self, which: str) -> CaptionedDigits:
        split: Split = "train" if which == "train" else "test"
        return CaptionedDigits(self.sizes[which], split=split, stream=self._STREAMS[which], **self._clip_args)

    def setup(self, stage: str | None = None) -> None:
        for which in sets_for_stage(type(self).__name__, stage):
            if which not in self.datasets:
                self.datasets[which] = self._make(which)  # items: (frames, references, video id)
        self._prepare_vocabulary()

    def _train_captions(self) -> list[list[str]]:
        # clip k of the first epoch does not depend on the set's length, so a small train_size still gets
        # the vocabulary of the whole grammar (and a config's vocab_size fits every size)
        clips = self._make("train")
        count = max(len(clips), VOCABULARY_CLIPS)
        return [clips.captions(index) for index in range(count)]

    def train_order(self, dataset: Any) -> EpochSampler:
        return EpochSampler(len(dataset))  # fresh clips every epoch

    def input_spec(self) -> dict[str, Any]:
        return {"kind": "frames", "frames": self.seq_length, "image_size": self.image_size, "channels": 1}


def uniform_frame_indices(num_video_frames: int, frames: int) -> list[int]:
    """The centre steps of ``frames`` equal segments of a video: ``floor((2k + 1) * T / (2 * frames))``
    for ``k = 0 .. frames - 1``, ``T = num_video_frames``. A video shorter than ``frames`` repeats
    steps (each index appears ``frames / T`` times, rounded)."""
    _check_positive(num_video_frames=num_video_frames, frames=frames)
    return [(2 * k + 1) * num_video_frames // (2 * frames) for k in range(frames)]


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


def _check_feature_file(path: Path, ids: Sequence[str], on_missing: str) -> tuple[list[str], int]:
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


class CaptionFeaturesDataModule(_CaptionsDataModule):
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
            present, self.feature_size = _check_feature_file(self.features, ids, self.on_missing)
            self._present = set(present)
        for which in sets_for_stage(type(self).__name__, stage):
            if which not in self.datasets:
                captions = {k: v for k, v in self._split(which).items() if k in self._present}
                if not captions:
                    raise ValueError(f"{self.features}: the {which} split has no video with features")
                self.datasets[which] = CaptionFeatures(self.features, captions, num_frames=self.num_frames)
        self._prepare_vocabulary()

    def _train_captions(self) -> list[list[str]]:
        return [v for k, v in self._split("train").items() if k in self._present]

    def input_spec(self) -> dict[str, Any]:
        with h5py.File(self.features, "r") as handle:
            attributes = {key: _plain(value) for key, value in handle.attrs.items()}
        return {
            "kind": "features",
            "feature_size": self.feature_size,
            "num_frames": self.num_frames,
            **attributes,
        }


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes become int/float/str)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
