"""What the captioning data modules share: the batch (:class:`CaptionBatch`), its collate function (a
random target reference per training item), the baseline caption and the base data module that builds
the vocabulary from the training captions only and keeps it in checkpoints.

The two data modules are :mod:`~lstmvision.data.datamodules.captioned_digits` (the embedded set, frames)
and :mod:`~lstmvision.data.datamodules.caption_features` (pre-extracted features with MSVD, MSR-VTT or
generic JSON captions). Validation and test items carry all their raw references.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lstmvision.data.datamodules.base import SetsDataModule
from lstmvision.data.formats.caption_features import CaptionItem
from lstmvision.text import Vocabulary, encode_captions, tokenize

__all__ = ["CaptionBatch", "CaptionCollate", "CaptionsDataModule", "most_frequent_caption"]

log = logging.getLogger(__name__)


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


class CaptionsDataModule(SetsDataModule):
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
