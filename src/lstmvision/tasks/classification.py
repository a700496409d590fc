"""Video classification (actions, early activity recognition) as a LightningModule."""

from __future__ import annotations

import csv
import inspect
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lstmvision.layers import observed_frames
from lstmvision.metrics import ClassificationMetrics, fp32
from lstmvision.tasks.base import Interval, Task
from lstmvision.tasks.outputs import (
    CountedRows,
    RowMeans,
    announce,
    gather_on_rank_zero,
    predicted_sample_names,
    skipped_rows,
)
from lstmvision.tasks.reliability import NonFinitePolicy
from lstmvision.viz import plot_accuracy_vs_observed, plot_confusion_matrix

__all__ = ["VideoClassificationTask"]

log = logging.getLogger(__name__)

# the loss reduction runs in float32 outside autocast whatever the network's precision (docs/precision.md)
_cross_entropy = fp32(F.cross_entropy)


def _fraction_key(fraction: float) -> str:
    return f"{fraction:g}"  # 0.25 -> "0.25", 1.0 -> "1"


def _accepts_observed_fraction(model: nn.Module) -> bool:
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a forward without a readable signature (some compiled modules)
        return False
    parameter = parameters.get("observed_fraction")
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def _shape_of(clips: Tensor | Sequence[Tensor]) -> object:
    return tuple(clips.shape) if isinstance(clips, Tensor) else [tuple(c.shape) for c in clips]


class _InputLayout:
    """Where a model wants its inputs' axes: models describe a non-default layout with ``input_rank``,
    ``time_dim`` and ``input_layout`` attributes (the multi-view models do); a model that has a
    ``num_views`` attribute and takes feature sequences also accepts a list of per-view tensors."""

    def __init__(self, model: nn.Module) -> None:
        self.rank: int = getattr(model, "input_rank", 5)
        self.time_dim: int = getattr(model, "time_dim", 1)
        self.text: str = getattr(model, "input_layout", "(B, T, C, H, W)")
        self.view_lists = getattr(model, "num_views", None) is not None and self.rank == 4

    def check(self, clips: Any) -> None:
        if self.view_lists and isinstance(clips, (tuple, list)):
            if clips and all(isinstance(c, Tensor) and c.dim() == 3 for c in clips):
                if len({c.shape[0] for c in clips}) == 1:
                    return
            shapes = [tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__ for c in clips]
            raise ValueError(
                f"VideoClassificationTask expects per-view features as a list of (B, T, D_v) tensors of one "
                f"batch size, got {shapes}"
            )
        if not isinstance(clips, Tensor) or clips.dim() not in (self.rank, self.rank + 1):
            shape = tuple(clips.shape) if isinstance(clips, Tensor) else type(clips).__name__
            raise ValueError(
                f"VideoClassificationTask expects clips {self.text} or, for multi-clip testing, "
                f"(B, K, {self.text[4:]}, got shape {shape}"
            )

    def batch_size(self, clips: Tensor | Sequence[Tensor]) -> int:
        return int(clips.shape[0] if isinstance(clips, Tensor) else clips[0].shape[0])

    def steps(self, clips: Tensor | Sequence[Tensor]) -> int:
        """Frames per clip."""
        if isinstance(clips, Tensor):
            return int(clips.shape[self.time_dim + (clips.dim() - self.rank)])
        return int(clips[0].shape[1])

    def first(self, clips: Tensor | Sequence[Tensor], frames: int) -> Tensor | list[Tensor]:
        """The first ``frames`` frames of every clip (single clips, not multi-clip batches)."""
        if isinstance(clips, Tensor):
            return clips.narrow(self.time_dim, 0, frames)
        return [c[:, :frames] for c in clips]


def _resolve_num_classes(model: nn.Module, num_classes: int | None) -> int:
    from_model = getattr(model, "num_classes", None)
    if num_classes is None:
        if from_model is None:
            raise ValueError(
                "num_classes is not given and the model has no 'num_classes' attribute: pass num_classes "
                f"to VideoClassificationTask (model {type(model).__name__})"
            )
        num_classes = from_model
    elif from_model is not None and from_model != num_classes:
        raise ValueError(
            f"num_classes={num_classes} disagrees with the model's num_classes={from_model} "
            f"({type(model).__name__})"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return num_classes


class VideoClassificationTask(Task):
    """Train and evaluate a video classifier; optionally measure early activity recognition.

    Batches are ``(clips, labels)`` with clips ``(B, T, C, H, W)`` and integer labels ``(B,)``. For
    multi-clip testing a batch may hold K clips of each video, ``(B, K, T, C, H, W)``: the K clips go
    through the model in one call and the video's logits are the mean of its clips' logits. A model
    that takes another layout says so with ``input_rank``, ``time_dim`` and ``input_layout`` attributes
    (the multi-view models of :mod:`lstmvision.models.multiview`: ``(B, V, T, C, H, W)`` frames or
    ``(B, V, T, D)`` features, time on axis 2, and lists of per-view ``(B, T, D_v)`` features); the
    task then checks, folds multi-clip batches and cuts observed fractions along that layout.

    Training minimises cross-entropy with ``label_smoothing``; validation logs the same loss and the
    top-1 accuracy (``val/acc``, which picks the best checkpoint and drives a ReduceLROnPlateau). The test accumulates a confusion
    matrix and top-k counts (:class:`~lstmvision.metrics.ClassificationMetrics`, summed over processes)
    and writes ``metrics.json`` and ``confusion_matrix.png`` into the run directory. With
    ``observed_fractions`` the test also classifies every clip from its first ``ceil(f * T)`` frames
    for each fraction f — through ``model(clips, observed_fraction=f)`` when the model's ``forward``
    takes that keyword (the model then chooses how to use the fraction), by cutting the clips otherwise
    — and writes ``early_recognition.json``, ``early_recognition.csv`` and
    ``accuracy_vs_observed.png``. ``predict`` writes ``predictions.csv`` (a row per video: its file, or
    ``test/<index>`` for a generated one, and its ``min(5, num_classes)`` most probable classes with their
    probabilities) and prints its path.

    Args:
        model: an ``nn.Module`` mapping clips ``(N, T, C, H, W)`` to logits ``(N, num_classes)``.
        num_classes: number of classes; ``None`` reads the model's ``num_classes`` attribute.
        class_names: one name per class for the written outputs (default: the data module's
            ``class_names`` when it has them, else ``"0"``, ``"1"``, ...).
        optimizer: builds the optimiser (default Adam, lr 1e-3); any torch optimiser, e.g.
            ``{class_path: torch.optim.SGD, init_args: {lr: 0.01, momentum: 0.9}}`` (docs/optimisers.md).
        lr_scheduler: builds the learning-rate scheduler (default None: a constant rate), e.g.
            CosineAnnealingLR over the whole run (``T_max`` filled in) or ReduceLROnPlateau on
            ``val/acc`` (mode ``"max"`` set by the task; needs a validation loop).
        lr_scheduler_interval: when the scheduler steps (``"auto"``: see docs/optimisers.md).
        label_smoothing: label smoothing of the cross-entropy, in [0, 1).
        top_k: the k of the top-k test accuracies; values above ``num_classes`` are skipped.
        observed_fractions: fractions of each clip, in (0, 1], to test early recognition on.
        train_observed_fractions: fractions of each clip, in (0, 1], to train on: every training batch
            sees only its first fraction, drawn uniformly from this list, so that one model learns to
            recognise from a partial observation (``None``: whole clips).
        on_nonfinite_loss: a NaN/inf training loss ``"raise"``s ``FloatingPointError`` naming the step, or
            ``"skip"``s the batch (no optimiser step) with a warning; ``skipped_batches`` counts them
            (logged as ``train/skipped_batches``).
        compile: compile the network with ``torch.compile`` (in place: parameter names and checkpoints
            do not change) once, when the trainer sets the task up (docs/precision.md). The first steps
            then wait for the compiler (36-136 s on this CPU), which only pays off in long runs; each new
            clip length (every observed fraction, the last short batch) compiles once more.
        ema_decay: evaluate (validate, test, predict) an exponential moving average of the weights
            with this constant decay in (0, 1), updated after every optimiser step and kept in the
            checkpoints (docs/optimisers.md, "Weight average"); None (default): no average.
    """

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Interval = "auto",
        label_smoothing: float = 0.0,
        top_k: Sequence[int] = (1, 5),
        observed_fractions: Sequence[float] | None = None,
        train_observed_fractions: Sequence[float] | None = None,
        on_nonfinite_loss: NonFinitePolicy = "raise",
        compile: bool = False,
        ema_decay: float | None = None,
    ) -> None:
        num_classes = _resolve_num_classes(model, num_classes)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
        if len(names) != num_classes:
            raise ValueError(f"class_names must hold num_classes={num_classes} names, got {len(names)}")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names must be distinct, got {names}")
        fractions = None if observed_fractions is None else [float(f) for f in observed_fractions]
        if fractions is not None:
            if not fractions or any(not 0.0 < f <= 1.0 for f in fractions):
                raise ValueError(
                    f"observed_fractions must be a non-empty list of values in (0, 1], got {fractions}"
                )
            if len(set(fractions)) != len(fractions):
                raise ValueError(f"observed_fractions must not repeat a value, got {fractions}")
        train_fractions = (
            None if train_observed_fractions is None else [float(f) for f in train_observed_fractions]
        )
        if train_fractions is not None and (
            not train_fractions or any(not 0.0 < f <= 1.0 for f in train_fractions)
        ):
            raise ValueError(
                f"train_observed_fractions must be a non-empty list of values in (0, 1], got {train_fractions}"
            )
        # ClassificationMetrics checks top_k (integers >= 1, no repeats) with messages naming it
        metrics = ClassificationMetrics(num_classes, top_k=top_k)
        super().__init__(
            model,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            on_nonfinite_loss=on_nonfinite_loss,
            compile=compile,
            ema_decay=ema_decay,
        )
        self.num_classes = num_classes
        self.class_names = names
        self.train_fractions = train_fractions
        self._names_given = class_names is not None
        self.label_smoothing = label_smoothing
        self.observed_fractions: tuple[float, ...] = tuple(sorted(fractions or ()))
        self._takes_fraction = _accepts_observed_fraction(model)
        self._layout = _InputLayout(model)
        self._metrics = metrics
        self._early = {f: ClassificationMetrics(num_classes, top_k=top_k) for f in self.observed_fractions}
        self._rows, self._val_rows = CountedRows("test"), CountedRows("val")
        self._val_means = RowMeans("loss", "acc")
        self._clip_lengths: set[int] = set()
        self._predictions: list[tuple[Tensor, Tensor]] = []  # (top-k classes, their probabilities)

    @property
    def top_k(self) -> tuple[int, ...]:
        """The k of the reported top-k accuracies (those of ``top_k`` that are <= ``num_classes``)."""
        return self._metrics.top_k

    # ---------------------------------------------------------------------------------------- batches
    def _labelled(self, batch: Any) -> tuple[Tensor, Tensor]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            got = type(batch).__name__
            if isinstance(batch, (tuple, list)):
                got += f" of length {len(batch)}"
            raise ValueError(f"VideoClassificationTask expects batches (clips, labels), got a {got}")
        clips, labels = batch
        self._layout.check(clips)
        B = self._layout.batch_size(clips)
        if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != B:
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(
                f"VideoClassificationTask expects labels (B,) = ({B},) for clips {_shape_of(clips)}, got {shape}"
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"VideoClassificationTask expects integer labels, got dtype {labels.dtype}")
        # checked here because an out-of-range label is a device-side assert inside cross_entropy on CUDA
        if labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                raise ValueError(
                    f"labels must lie in [0, {self.num_classes}) (num_classes), got values from {low} to {high}"
                )
        return clips, labels.long()

    def _logits(self, clips: Tensor | Sequence[Tensor], observed_fraction: float | None = None) -> Tensor:
        """Logits ``(B, num_classes)`` of single clips or of multi-clip batches (K clips per video)."""
        layout = self._layout
        layout.check(clips)
        multi = isinstance(clips, Tensor) and clips.dim() == layout.rank + 1
        # (B, K, ...) -> (B*K, ...): the K clips of every video in one call
        folded = clips.flatten(0, 1) if multi and isinstance(clips, Tensor) else clips
        if observed_fraction is None:
            logits = self.model(folded)
        elif self._takes_fraction:
            logits = self.model(folded, observed_fraction=observed_fraction)
        else:
            logits = self.model(
                layout.first(folded, observed_frames(observed_fraction, layout.steps(folded)))
            )
        expected = (layout.batch_size(folded), self.num_classes)
        if not isinstance(logits, Tensor) or tuple(logits.shape) != expected:
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(
                f"the model must map clips {_shape_of(folded)} to logits (N, num_classes) = {expected}, got {got}"
            )
        # float32 from here on (the clip mean, loss, metrics, probabilities): bf16 logits widen exactly
        logits = logits.float()
        if multi and isinstance(clips, Tensor):
            # (B*K, classes) -> (B, K, classes) -> (B, classes): a video's logits are its clips' mean
            logits = logits.unflatten(0, tuple(clips.shape[:2])).mean(dim=1)
        return logits

    # --------------------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        # the names the data module knows (KTH's actions, the embedded set's) label the outputs unless given
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(datamodule, "class_names", None)
        if self._names_given or names is None:
            return
        if len(names) != self.num_classes:
            raise ValueError(
                f"the data module has {len(names)} classes ({list(names)}), the task num_classes={self.num_classes}"
            )
        self.class_names = list(names)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        clips, labels = self._labelled(batch)
        fraction = None
        if self.train_fractions is not None:
            # torch's generator, so that seed_everything makes the draws repeatable
            fraction = self.train_fractions[int(torch.randint(len(self.train_fractions), ()))]
        logits = self._logits(clips, fraction)
        loss = _cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if not self.finite(loss):
            return None  # skipped: no backward pass, no optimiser step
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.log("train/acc", accuracy, batch_size=len(labels))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_rows.start(self._trainer)
        self._val_means.reset()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        # a row served in place of a video skipped as unusable, or repeated by a DDP sampler: not counted
        clips, labels = self._val_rows.counted(*self._labelled(batch))
        if not len(labels):
            return
        logits = self._logits(clips)
        # the training loss (label smoothing included), so that the two curves are comparable
        losses = _cross_entropy(logits, labels, label_smoothing=self.label_smoothing, reduction="none")
        correct = (logits.argmax(dim=1) == labels).sum()
        self._val_means.add(len(labels), loss=losses.sum(), acc=correct)

    def on_validation_epoch_end(self) -> None:
        # means over the videos of every process, the same on each (RowMeans); logged once an epoch
        for key, value in self._val_means.means(self._trainer).items():
            self.log(f"val/{key}", value, prog_bar=key == "acc", sync_dist=True)

    # ---------------------------------------------------------------------------------------- testing
    def on_test_epoch_start(self) -> None:
        self._metrics.reset()
        for metrics in self._early.values():
            metrics.reset()
        self._clip_lengths = set()
        self._rows.start(self._trainer)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        clips, labels = self._labelled(batch)
        # a row served in place of a video skipped as unusable repeats the next video: not counted
        clips, labels = self._rows.counted(clips, labels)
        if not len(labels):
            return
        logits = self._logits(clips)
        self._metrics.update(logits, labels)
        if not self._early:
            return
        self._clip_lengths.add(self._layout.steps(clips))
        for fraction, metrics in self._early.items():
            # a cut to all T frames is the clip itself: reuse its logits instead of a second model call
            whole = fraction == 1.0 and not self._takes_fraction
            metrics.update(logits if whole else self._logits(clips, fraction), labels)

    def _reduced(self, metrics: ClassificationMetrics) -> dict[str, Any]:
        # counts from every process, so each one reports the metrics of the whole test set
        state = {
            key: self.trainer.strategy.reduce(value.to(self.device), reduce_op="sum")
            for key, value in metrics.state_dict().items()
        }
        metrics.load_state_dict(state)
        return metrics.compute()

    def on_test_epoch_end(self) -> None:
        result = self._reduced(self._metrics)
        self.log("test/acc", result["accuracy"])
        for k in self.top_k:
            if k > 1:
                self.log(f"test/top{k}", result[f"top{k}"])
        self.log("test/mean_class_acc", result["mean_class_accuracy"])
        early = {}
        for fraction, metrics in self._early.items():
            early[fraction] = self._reduced(metrics)
            self.log(f"test/acc_observed_{_fraction_key(fraction)}", early[fraction]["accuracy"])
        self._write_test_outputs(result, early, self._rows.total_left_out(self._trainer))

    def _observed_frames_entry(self, fraction: float) -> int | list[int] | None:
        frames = sorted({observed_frames(fraction, length) for length in self._clip_lengths})
        if not frames:
            return None
        return frames[0] if len(frames) == 1 else frames

    def _write_test_outputs(
        self, result: dict[str, Any], early: dict[float, dict[str, Any]], skipped: int
    ) -> None:
        out = self.run_folder()
        if out is None or not self.trainer.is_global_zero or self.trainer.sanity_checking:
            return
        out.mkdir(parents=True, exist_ok=True)
        confusion = self._metrics.confusion.cpu()
        topk = {f"top{k}": result[f"top{k}"] for k in self.top_k}
        summary: dict[str, Any] = {
            "count": result["count"],
            "skipped_unusable": skipped,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "accuracy": result["accuracy"],
            **topk,
            "mean_class_accuracy": result["mean_class_accuracy"],
            # JSON has no NaN: a class with no test sample gets null
            "per_class_accuracy": {
                name: None if math.isnan(value) else value
                for name, value in zip(self.class_names, result["per_class_accuracy"])
            },
            "per_class_count": dict(zip(self.class_names, confusion.sum(dim=1).tolist())),
            "confusion_matrix": confusion.tolist(),
            "definitions": {
                "count": "test videos counted in the metrics",
                "skipped_unusable": "test videos found unusable and skipped (on_corrupt: skip), not counted",
                "accuracy": "fraction of test videos whose highest logit is the true class (top-1)",
                "top{k}": "fraction of test videos whose true class is among the k highest logits; "
                "ties go to the lower class index, as argmax",
                "mean_class_accuracy": "per-class accuracy averaged over the classes with test videos",
                "per_class_accuracy": "fraction of a class's test videos predicted as it (recall); "
                "null for a class with no test video",
                "confusion_matrix": "counts; row = true class, column = predicted class, in class_names order",
                "multi_clip": "a batch (B, K, T, C, H, W) is classified by the mean of its K clips' logits",
            },
        }
        plot_confusion_matrix(out / "confusion_matrix.png", confusion, self.class_names)
        if early:
            table = self._write_early_recognition(out, early)
            summary["early_recognition"] = table
            summary["definitions"]["early_recognition"] = (
                "metrics from the first ceil(f * T) frames of each clip, for each observed fraction f"
            )
        (out / "metrics.json").write_text(json.dumps(summary, indent=2))
        log.info("test outputs written to %s", out)

    def _write_early_recognition(self, out: Path, early: dict[float, dict[str, Any]]) -> dict[str, Any]:
        ks = [k for k in self.top_k if k > 1]
        table = {
            _fraction_key(fraction): {
                "observed_fraction": fraction,
                "observed_frames": self._observed_frames_entry(fraction),
                "accuracy": values["accuracy"],
                **{f"top{k}": values[f"top{k}"] for k in ks},
                "mean_class_accuracy": values["mean_class_accuracy"],
                "count": values["count"],
            }
            for fraction, values in early.items()
        }
        (out / "early_recognition.json").write_text(json.dumps(table, indent=2))

        columns = ["observed_fraction", "observed_frames", "accuracy", *[f"top{k}" for k in ks]]
        columns += ["mean_class_accuracy", "count"]
        with (out / "early_recognition.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in table.values():
                frames = row["observed_frames"]
                if isinstance(frames, list):  # clips of several lengths: their frame counts, space-separated
                    frames = " ".join(map(str, frames))
                writer.writerow({**row, "observed_frames": frames})

        header = ["observed", "frames", "accuracy", *[f"top-{k}" for k in ks]]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in table.values():
            cells = [f"{100 * row['observed_fraction']:g}%", str(row["observed_frames"])]
            cells += [f"{row['accuracy']:.4f}", *[f"{row[f'top{k}']:.4f}" for k in ks]]
            lines.append("| " + " | ".join(cells) + " |")
        log.info("early activity recognition:\n%s", "\n".join(lines))

        series = {"top-1": [row["accuracy"] for row in table.values()]}
        series |= {f"top-{k}": [row[f"top{k}"] for row in table.values()] for k in ks}
        plot_accuracy_vs_observed(out / "accuracy_vs_observed.png", list(early), series)
        return table

    # ------------------------------------------------------------------------------------- prediction
    @property
    def predict_top_k(self) -> int:
        """Classes listed per video in ``predictions.csv``: ``min(5, num_classes)``."""
        return min(5, self.num_classes)

    def on_predict_epoch_start(self) -> None:
        self._predictions = []

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """``{"predicted": (B,), "probability": (B,), "probabilities": (B, num_classes)}``."""
        # unlabelled batches are clips alone (or a 1-tuple); labels, if present, are not used
        clips = batch[0] if isinstance(batch, (tuple, list)) else batch
        probabilities = self._logits(clips).softmax(dim=1)  # (B, num_classes)
        probability, predicted = probabilities.max(dim=1)  # (B,) each; ties -> lowest index
        # stable: tied classes keep index order, so the first of the top k is always `predicted`
        top_p, top_class = probabilities.sort(dim=1, descending=True, stable=True)
        k = self.predict_top_k
        self._predictions.append((top_class[:, :k].cpu(), top_p[:, :k].cpu()))
        return {"predicted": predicted, "probability": probability, "probabilities": probabilities}

    def on_predict_epoch_end(self) -> None:
        out = self.run_folder()
        # every process's predictions, in the order of the set, reach rank 0, which alone writes them
        gathered = gather_on_rank_zero(self._trainer, self._predictions)
        skipped = set(skipped_rows(self._trainer))  # a collective too
        if out is None or not gathered or not self.trainer.is_global_zero:
            return
        out.mkdir(parents=True, exist_ok=True)
        classes = torch.cat([c for c, _ in gathered]).tolist()  # (N, k) class indices, most probable first
        probabilities = torch.cat([p for _, p in gathered]).tolist()  # (N, k)
        names = predicted_sample_names(self._trainer, len(classes))
        ranks = range(1, self.predict_top_k + 1)
        path = out / "predictions.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            # class_index / class_name / probability: the top-1 columns files written before top-k had
            header = ["index", "video", "class_index", "class_name", "probability"]
            writer.writerow(header + [f"top{r}_{key}" for r in ranks for key in ("class", "probability")])
            for index, (name, top, prob) in enumerate(zip(names, classes, probabilities)):
                if index in skipped:  # what the loader served here was the next usable video
                    writer.writerow([index, name] + [""] * (len(header) - 2 + 2 * len(top)))
                    continue
                row = [index, name, top[0], self.class_names[top[0]], f"{prob[0]:.6f}"]
                for cls, p in zip(top, prob):
                    row += [self.class_names[cls], f"{p:.6f}"]
                writer.writerow(row)
        if skipped:
            log.warning(
                "%d unusable video(s) skipped (on_corrupt: skip) have empty prediction cells in %s, "
                "the first: %s",
                len(skipped),
                path,
                names[min(skipped)],
            )
        log.info("%d predictions written to %s", len(classes) - len(skipped), path)
        announce("predictions", path)
