"""The captioning data module of the embedded captioned digits
(:mod:`lstmvision.data.embedded.captioned_digits`): frames with their reference sentences."""

from __future__ import annotations

from typing import Any, ClassVar

from lstmvision.data.datamodules.base import check_loader_args
from lstmvision.data.datamodules.captioning import CaptionsDataModule
from lstmvision.data.embedded.captioned_digits import CaptionedDigits
from lstmvision.data.embedded.digits import Split
from lstmvision.data.embedded.moving_mnist import EpochSampler

__all__ = ["VOCABULARY_CLIPS", "CaptionedDigitsDataModule"]

VOCABULARY_CLIPS = 4000
"""The embedded set's vocabulary and most frequent caption come from at least this many training clips."""


class CaptionedDigitsDataModule(CaptionsDataModule):
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
        self.build_sets(stage, self._make)  # items: (frames, references, video id)
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
