"""Video captioning (SA-LSTM and any model with its interface) as a LightningModule."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lstmvision.data import CaptionBatch
from lstmvision.metrics import CaptionScores, fp32, score_caption_sets, score_captions
from lstmvision.tasks.base import Interval, Task
from lstmvision.tasks.outputs import CountedRows, RowMeans, announce, gather_on_rank_zero
from lstmvision.tasks.reliability import NonFinitePolicy
from lstmvision.text import Vocabulary
from lstmvision.viz import save_attention_map

__all__ = ["CaptioningPlateau", "CaptioningTask", "attention_rows", "write_captions"]

log = logging.getLogger(__name__)

MONITOR = "val/CIDEr"
# the key under which a checkpoint keeps what `lstmvision caption` needs besides the weights
CHECKPOINT_KEY = "captioning"
# the loss reduction runs in float32 outside autocast whatever the network's precision (docs/precision.md)
_cross_entropy = fp32(F.cross_entropy)


class _Captioner(Protocol):
    """What the task needs of a captioning model (SALSTM has it)."""

    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int

    def __call__(
        self, inputs: Tensor, tokens: Tensor, lengths: Tensor, *, teacher_forcing: float
    ) -> Tensor: ...

    def decode(
        self,
        inputs: Tensor,
        lengths: Tensor,
        *,
        beam_size: int,
        max_length: int | None,
        length_penalty: float,
    ) -> Sequence[Any]: ...


class CaptioningPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """The captioning task's default schedule: ReduceLROnPlateau halving the rate when ``val/CIDEr`` has not
    risen for 2 validations (torch's own defaults are a factor of 0.1 after 10). Only the defaults differ."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: Literal["min", "max"] = "max",
        factor: float = 0.5,
        patience: int = 2,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(
            optimizer,
            mode=mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            min_lr=min_lr,
            eps=eps,
        )


def _batch(batch: Any) -> CaptionBatch:
    if not isinstance(batch, CaptionBatch):
        raise ValueError(
            "CaptioningTask expects CaptionBatch batches (inputs, lengths, tokens, references, video_ids) "
            f"from a captioning data module, got {type(batch).__name__}"
        )
    return batch


def _rows(batch: CaptionBatch, keep: Tensor) -> CaptionBatch:
    """The rows of ``batch`` where the bool mask ``keep`` is true."""
    listed = keep.tolist()
    return CaptionBatch(
        inputs=batch.inputs[keep.to(batch.inputs.device)],
        lengths=batch.lengths[keep.to(batch.lengths.device)],
        tokens=batch.tokens[keep.to(batch.tokens.device)],
        references=[refs for refs, kept in zip(batch.references, listed) if kept],
        video_ids=[video_id for video_id, kept in zip(batch.video_ids, listed) if kept],
    )


class CaptioningTask(Task):
    """Train and evaluate a video captioner such as :class:`~lstmvision.models.SALSTM`.

    The model maps ``(inputs, tokens, lengths, teacher_forcing=r)`` to next-token logits ``(B, L-1, V)``
    and decodes with ``decode(inputs, lengths, beam_size=, max_length=, length_penalty=)``; it has
    ``vocab_size``, ``pad_id``, ``bos_id`` and ``eos_id`` attributes, which must agree with the data
    module's vocabulary (built from the training captions; the task keeps it in every checkpoint).

    Training minimises the cross-entropy of the next token (``<pad>`` ignored, optional
    ``label_smoothing``) under teacher forcing; with ``teacher_forcing_final`` the ratio of ground-truth
    inputs falls linearly from ``teacher_forcing`` to it over ``teacher_forcing_steps`` steps (scheduled
    sampling, Bengio et al. 2015). Gradients are clipped to ``max_grad_norm`` (unless the trainer's
    ``gradient_clip_val`` is set, which then wins). Validation logs ``val/loss``, the training loss
    (teacher forcing 1) averaged over every token of the set, and decodes every video (beam
    ``val_beam_size``) to log BLEU-1..4, ROUGE-L and CIDEr (``val/CIDEr`` picks the best checkpoint
    and drives the plateau schedule); these use the Python tokenizer and no METEOR, so that validation
    needs no Java. The test decodes with ``beam_size`` and scores with the full COCO evaluation
    (:func:`~lstmvision.metrics.score_captions`: the Java PTB tokenizer and METEOR when Java is found),
    beside a baseline that gives every video the most frequent training caption. It writes
    ``scores.json``, ``captions.json``, ``captions.csv`` and, for the first ``attention_maps`` test
    videos, ``attention/<video id>.png``. ``predict`` writes ``captions.json`` and ``captions.csv``.

    Args:
        model: the captioner.
        optimizer: builds the optimiser (default Adam, lr 1e-3); any torch optimiser (docs/optimisers.md).
        lr_scheduler: builds the learning-rate scheduler; default :class:`CaptioningPlateau` (halve the
            rate when ``val/CIDEr`` has not risen for 2 validations); None: a constant rate.
        lr_scheduler_interval: when the scheduler steps (``"auto"``: see docs/optimisers.md).
        label_smoothing: label smoothing of the cross-entropy, in [0, 1).
        max_grad_norm: clip the gradients' global norm to this (None: no clipping).
        teacher_forcing, teacher_forcing_final, teacher_forcing_steps: the ratio of ground-truth inputs
            (see above).
        beam_size, length_penalty, max_length: test and predict decoding (``max_length`` None: the
            model's).
        val_beam_size: decoding during validation (1: greedy).
        attention_maps: how many test videos get an attention-map picture.
        on_nonfinite_loss: a NaN/inf training loss ``"raise"``s or ``"skip"``s the batch.
        ema_decay: evaluate (validate, test, predict) an exponential moving average of the weights
            with this constant decay in (0, 1), updated after every optimiser step and kept in the
            checkpoints (docs/optimisers.md, "Weight average"); None (default): no average.
    """

    monitor = MONITOR
    monitor_mode = "max"

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = CaptioningPlateau,
        lr_scheduler_interval: Interval = "auto",
        label_smoothing: float = 0.0,
        max_grad_norm: float | None = 5.0,
        teacher_forcing: float = 1.0,
        teacher_forcing_final: float | None = None,
        teacher_forcing_steps: int = 0,
        beam_size: int = 5,
        length_penalty: float = 0.0,
        max_length: int | None = None,
        val_beam_size: int = 1,
        attention_maps: int = 4,
        on_nonfinite_loss: NonFinitePolicy = "raise",
        ema_decay: float | None = None,
    ) -> None:
        for name in ("vocab_size", "pad_id", "bos_id", "eos_id"):
            if not isinstance(getattr(model, name, None), int):
                raise ValueError(f"CaptioningTask: the model {type(model).__name__} has no integer {name!r}")
        if not length_penalty >= 0:
            raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or null, got {max_grad_norm}")
        for key, ratio in (
            ("teacher_forcing", teacher_forcing),
            ("teacher_forcing_final", teacher_forcing_final),
        ):
            if ratio is not None and not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {ratio}")
        if teacher_forcing_steps < 0:
            raise ValueError(f"teacher_forcing_steps must be >= 0, got {teacher_forcing_steps}")
        for key, size in (("beam_size", beam_size), ("val_beam_size", val_beam_size)):
            if size < 1:
                raise ValueError(f"{key} must be >= 1, got {size}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 or null, got {max_length}")
        if attention_maps < 0:
            raise ValueError(f"attention_maps must be >= 0, got {attention_maps}")
        super().__init__(
            model,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            on_nonfinite_loss=on_nonfinite_loss,
            ema_decay=ema_decay,
        )
        self.label_smoothing, self.max_grad_norm = label_smoothing, max_grad_norm
        self.teacher_forcing, self.teacher_forcing_final = teacher_forcing, teacher_forcing_final
        self.teacher_forcing_steps = teacher_forcing_steps
        self.beam_size, self.length_penalty, self.max_length = beam_size, length_penalty, max_length
        self.val_beam_size, self.attention_maps = val_beam_size, attention_maps
        self.vocabulary: Vocabulary | None = None
        self.baseline_caption: str | None = None
        self.input_spec: dict[str, Any] = {}
        self._decoded: list[tuple[str, str, list[str]]] = []  # (video id, caption, references)
        self._val_rows = CountedRows("val")
        self._val_means = RowMeans("loss", "tokens")  # per video: its tokens' summed loss, its tokens
        self._maps_written = 0
        self._test_dir: Path | None = None

    @property
    def captioner(self) -> _Captioner:
        return cast(_Captioner, self.model)

    # ------------------------------------------------------------------------------------ vocabulary
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        vocabulary = getattr(datamodule, "vocabulary", None)
        if self.vocabulary is None:
            if vocabulary is None:
                raise ValueError(
                    "CaptioningTask needs a captioning data module with a vocabulary (CaptionedDigitsDataModule, "
                    f"CaptionFeaturesDataModule), got {type(datamodule).__name__}"
                )
            self.vocabulary = vocabulary
        if datamodule is not None:
            self.baseline_caption = getattr(datamodule, "baseline_caption", None) or self.baseline_caption
            if hasattr(datamodule, "input_spec"):
                self.input_spec = datamodule.input_spec()
        self._check_vocabulary(self.vocabulary)

    def _check_vocabulary(self, vocabulary: Vocabulary) -> None:
        model = self.captioner
        if len(vocabulary) != model.vocab_size:
            raise ValueError(
                f"the training captions give a vocabulary of {len(vocabulary)} tokens but the model has "
                f"vocab_size={model.vocab_size}: set the model's vocab_size to {len(vocabulary)} (or change the "
                "data module's min_count / max_vocab_size)"
            )
        specials = (vocabulary.PAD, vocabulary.BOS, vocabulary.EOS)
        if (model.pad_id, model.bos_id, model.eos_id) != specials:
            raise ValueError(
                f"the model's pad/bos/eos ids {(model.pad_id, model.bos_id, model.eos_id)} differ from the "
                f"vocabulary's {specials}"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)  # the weight average, if any
        if self.vocabulary is not None:
            checkpoint[CHECKPOINT_KEY] = {
                "vocabulary": self.vocabulary.to_dict(),
                "inputs": self.input_spec,
                "baseline_caption": self.baseline_caption,
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            return
        self.vocabulary = Vocabulary.from_dict(saved["vocabulary"])
        self._check_vocabulary(self.vocabulary)
        self.baseline_caption = saved.get("baseline_caption") or self.baseline_caption
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and getattr(datamodule, "vocabulary", None) is not None:
            datamodule.vocabulary = self.vocabulary  # training targets of a resumed run use the saved ids

    def _words(self, ids: list[int]) -> str:
        assert self.vocabulary is not None  # set in setup()
        return self.vocabulary.decode(ids)

    # -------------------------------------------------------------------------------------- training
    def teacher_forcing_ratio(self) -> float:
        """The ratio of ground-truth inputs at the current step."""
        if self.teacher_forcing_final is None:
            return self.teacher_forcing
        if self.teacher_forcing_steps == 0:
            return self.teacher_forcing_final
        progress = min(1.0, self.global_step / self.teacher_forcing_steps)
        return self.teacher_forcing + (self.teacher_forcing_final - self.teacher_forcing) * progress

    def _loss(
        self, batch: CaptionBatch, teacher_forcing: float, reduction: Literal["mean", "none"] = "mean"
    ) -> Tensor:
        """The next-token cross-entropy: the mean over the batch's tokens (``<pad>`` left out), or with
        ``reduction="none"`` each token's ``(B, L-1)``, 0 at ``<pad>``."""
        logits = self.captioner(batch.inputs, batch.tokens, batch.lengths, teacher_forcing=teacher_forcing)
        targets = batch.tokens[:, 1:]  # logits[:, t] predicts tokens[:, t + 1]
        loss = _cross_entropy(
            logits.flatten(0, 1),  # (B*(L-1), V)
            targets.flatten(),
            ignore_index=self.captioner.pad_id,
            label_smoothing=self.label_smoothing,
            reduction=reduction,
        )
        return loss if reduction == "mean" else loss.view_as(targets)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        batch = _batch(batch)
        ratio = self.teacher_forcing_ratio()
        loss = self._loss(batch, ratio)
        if not self.finite(loss):
            return None
        size = len(batch.video_ids)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if self.teacher_forcing_final is not None:
            self.log("train/teacher_forcing", ratio, batch_size=size)
        return loss

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        if gradient_clip_val is None and self.max_grad_norm is not None:
            gradient_clip_val, gradient_clip_algorithm = self.max_grad_norm, "norm"
        self.clip_gradients(
            optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm
        )

    # ------------------------------------------------------------------------------------ decoding
    def _decode(self, batch: CaptionBatch, beam_size: int) -> list[Any]:
        # beam search ranks hypotheses by summed log-probabilities: in bf16 (3 significant digits) near
        # ties flip, so decoding runs in float32 outside autocast whatever the trainer's precision
        return list(
            fp32(self.captioner.decode)(
                batch.inputs,
                batch.lengths,
                beam_size=beam_size,
                max_length=self.max_length,
                length_penalty=self.length_penalty,
            )
        )

    def _collect(self, batch: CaptionBatch, captions: list[Any]) -> None:
        for video_id, caption, references in zip(batch.video_ids, captions, batch.references):
            self._decoded.append((video_id, self._words(caption.tokens), references))

    def _gathered(self) -> list[tuple[str, str, list[str]]]:
        items = gather_on_rank_zero(self.trainer, self._decoded)
        self._decoded = []
        return items

    def on_validation_epoch_start(self) -> None:
        self._decoded = []
        self._val_rows.start(self._trainer)
        self._val_means.reset()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        batch = _batch(batch)
        # a row served in place of a video skipped as unusable, or repeated by a DDP sampler: not counted
        own = self._val_rows.own(len(batch.video_ids))
        if own is not None:
            batch = _rows(batch, own)
        if not batch.video_ids:
            return
        losses = self._loss(batch, 1.0, reduction="none")
        tokens = (batch.tokens[:, 1:] != self.captioner.pad_id).sum()
        self._val_means.add(len(batch.video_ids), loss=losses.sum(), tokens=tokens)
        self._collect(batch, self._decode(batch, self.val_beam_size))

    def on_validation_epoch_end(self) -> None:
        # the training loss over every token of the set, whichever process or batch each video was in
        per_video = self._val_means.means(self._trainer)
        if per_video.get("tokens"):
            self.log("val/loss", per_video["loss"] / per_video["tokens"], sync_dist=True)
        items = self._gathered()
        scores: dict[str, float] = {}
        if self.trainer.is_global_zero and items:
            scores = _score(items, tokenizer="python", meteor=False).scores
        scores = self.trainer.strategy.broadcast(scores, src=0)
        for name, value in scores.items():
            self.log(f"val/{name}", value, prog_bar=name in ("CIDEr", "BLEU-4"))

    # -------------------------------------------------------------------------------------- testing
    def on_test_epoch_start(self) -> None:
        self._decoded = []
        self._maps_written = 0
        # every rank asks: the run directory is a collective under DDP (Trainer.log_dir broadcasts), so
        # rank 0 alone asking for it later would wait for the other ranks forever
        self._test_dir = self.run_folder()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        batch = _batch(batch)
        captions = self._decode(batch, self.beam_size)
        self._collect(batch, captions)
        if self.trainer.is_global_zero:
            self._attention_maps(batch, captions)

    def _attention_maps(self, batch: CaptionBatch, captions: list[Any]) -> None:
        out = self._test_dir
        if out is None:
            return
        for b, caption in enumerate(captions):
            if self._maps_written >= self.attention_maps:
                return
            n = int(batch.lengths[b])
            assert self.vocabulary is not None  # set in setup()
            frames = batch.inputs[b, :n] if batch.inputs.dim() == 5 else None
            video_id = batch.video_ids[b]
            save_attention_map(
                out / "attention" / f"{_safe_name(video_id)}.png",
                caption.attention[:, :n].float().cpu(),
                attention_rows(self.vocabulary, caption),
                None if frames is None else frames.float().cpu(),
                title=f"{video_id}: {self._words(caption.tokens)}",
            )
            self._maps_written += 1

    def on_test_epoch_end(self) -> None:
        items = self._gathered()
        summary: dict[str, float] = {}
        if self.trainer.is_global_zero and items:
            summary = self._write_test_outputs(items)
        summary = self.trainer.strategy.broadcast(summary, src=0)
        for name, value in summary.items():
            self.log(f"test/{name}", value)

    def _write_test_outputs(self, items: list[tuple[str, str, list[str]]]) -> dict[str, float]:
        references = {video_id: refs for video_id, _, refs in items}
        sets = {"model": {video_id: caption for video_id, caption, _ in items}}
        if self.baseline_caption is not None:
            sets["most_frequent_caption"] = dict.fromkeys(references, self.baseline_caption)
        # one call: one METEOR process for both sets
        scored = score_caption_sets(references, sets)
        model = scored["model"]
        result: dict[str, Any] = {
            "num_videos": len(items),
            "beam_size": self.beam_size,
            "tokenizer": model.tokenizer,
            "skipped": model.skipped,
            "model": model.scores,
        }
        if self.baseline_caption is not None:
            baseline = scored["most_frequent_caption"]
            result["most_frequent_caption"] = baseline.scores
            result["baseline_caption"] = self.baseline_caption
            if baseline.scores.get("CIDEr", 0.0) > 0:
                result["cider_ratio_to_baseline"] = model.scores["CIDEr"] / baseline.scores["CIDEr"]
        out = self._test_dir
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "scores.json").write_text(json.dumps(result, indent=2) + "\n")
            write_captions(out, items, model)
            log.info("test scores written to %s", out / "scores.json")
        return dict(model.scores)

    # ------------------------------------------------------------------------------------ predicting
    def on_predict_epoch_start(self) -> None:
        self._decoded = []

    def predict_step(self, batch: Any, batch_idx: int) -> list[str]:
        batch = _batch(batch)
        captions = self._decode(batch, self.beam_size)
        self._collect(batch, captions)
        return [self._words(caption.tokens) for caption in captions]

    def on_predict_epoch_end(self) -> None:
        items = self._gathered()
        out = self.run_folder()
        if self.trainer.is_global_zero and out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_captions(out, items, None)
            announce("captions", out / "captions.json")


def _score(
    items: list[tuple[str, str, list[str]]],
    *,
    tokenizer: Literal["auto", "ptb", "python"] = "auto",
    meteor: bool = True,
) -> CaptionScores:
    references = {video_id: refs for video_id, _, refs in items}
    candidates = {video_id: caption for video_id, caption, _ in items}
    return score_captions(references, candidates, tokenizer=tokenizer, meteor=meteor)


def attention_rows(vocabulary: Vocabulary, caption: Any) -> list[str]:
    """The row labels of a decoded caption's attention map ``(steps, T)``: its words, then ``"<eos>"``
    when the step that generated eos is one of the steps (a caption cut at the maximum length has none)."""
    words = [vocabulary.decode([token]) for token in caption.tokens]
    return words + ["<eos>"] * (caption.attention.shape[0] - len(words))


def _safe_name(video_id: str) -> str:
    """A video id as a file name (path separators and other unsafe characters replaced)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in video_id) or "video"


def write_captions(out: Path, items: list[tuple[str, str, list[str]]], scores: CaptionScores | None) -> None:
    """``captions.json`` (video id, caption, references) and ``captions.csv`` (with the per-video BLEU-4
    and CIDEr when ``scores`` are given)."""
    rows = [
        {"video_id": video_id, "caption": caption, "references": refs} for video_id, caption, refs in items
    ]
    (out / "captions.json").write_text(json.dumps(rows, indent=2) + "\n")
    with (out / "captions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        per_video = scores.per_video if scores is not None else {}
        writer.writerow(["video_id", "caption", *(["BLEU-4", "CIDEr"] if per_video else [])])
        for video_id, caption, _ in items:
            extra = per_video.get(video_id, {})
            values = (
                [f"{extra.get('BLEU-4', 0.0):.6f}", f"{extra.get('CIDEr', 0.0):.6f}"] if per_video else []
            )
            writer.writerow([video_id, caption, *values])
