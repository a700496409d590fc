"""Classification metrics: confusion matrix, top-k accuracy, per-class and mean class accuracy.

:class:`ClassificationMetrics` accumulates integer counts over batches of logits ``(N, K)`` and labels
``(N,)``: the confusion matrix and, for every requested ``k``, the number of samples whose true class is
among the ``k`` highest logits. Counts are all it keeps, so the state of several processes (or of the
halves of a data set) adds up to the state of the whole, and the derived accuracies never suffer from
averaging per-batch or per-process means of unequal sizes.

**Ties.** The predicted class is ``argmax`` of the logits, which takes the *lowest* class index among
equal maxima. Top-k uses the same rule: a sample's rank is the number of classes whose logit is greater
than the true class's, plus the number of classes with an equal logit and a lower index; the sample is
correct at ``k`` when its rank is below ``k``. So top-1 always equals the accuracy read off the confusion
matrix's diagonal, and a model that outputs constant logits is credited only for class 0, not for every
class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lstmvision.metrics._fp32 import fp32

__all__ = ["ClassificationMetrics"]

_STATE_KEYS = ("confusion", "topk_correct")


class ClassificationMetrics:
    """Accumulates a confusion matrix and top-k hit counts over batches.

    :meth:`compute` returns:

    - ``accuracy``: top-1 accuracy, the confusion matrix's trace over its sum;
    - ``top{k}`` for every ``k`` in ``top_k`` with ``k <= num_classes`` (``top1`` equals ``accuracy``);
    - ``per_class_accuracy``: for each class, the fraction of its samples predicted as it (recall);
      ``nan`` for a class with no sample;
    - ``mean_class_accuracy``: the mean of ``per_class_accuracy`` over the classes that have samples
      (the "mean class accuracy" of UCF101/HMDB51 papers);
    - ``count``: samples seen.

    Ties between logits follow the rule in the module docstring (lowest class index first, as
    ``argmax``). Counts live on the device of the first batch, so nothing leaves the GPU until
    :meth:`compute` or :attr:`confusion` is read. The state (:meth:`state_dict`) is two int64 tensors
    that may be summed across processes.

    Args:
        num_classes: number of classes K.
        top_k: the ``k`` of the top-k accuracies to report; values above ``num_classes`` are skipped
            (top-5 of a 3-class problem is meaningless).
    """

    def __init__(self, num_classes: int, *, top_k: Sequence[int] = (1, 5)) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        ks = list(top_k)
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(f"top_k must hold integers >= 1, got {ks}")
        if len(set(ks)) != len(ks):
            raise ValueError(f"top_k must not repeat a value, got {ks}")
        self.num_classes = num_classes
        #: The k of the reported top-k accuracies: those of ``top_k`` that are <= ``num_classes``, sorted.
        self.top_k: tuple[int, ...] = tuple(sorted(k for k in ks if k <= num_classes))
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        K = self.num_classes
        self._confusion = torch.zeros(K, K, dtype=torch.int64)
        self._topk_correct = torch.zeros(len(self.top_k), dtype=torch.int64)
        self._placed = False  # the first update moves the counts to the device of its logits

    # --------------------------------------------------------------------------------------- updating
    def _check(self, logits: Tensor, labels: Tensor) -> None:
        if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
            raise TypeError(
                "ClassificationMetrics expects torch.Tensor logits and labels, got "
                f"{type(logits).__name__} and {type(labels).__name__}"
            )
        K = self.num_classes
        if logits.dim() != 2 or logits.shape[1] != K:
            raise ValueError(f"logits must be (N, num_classes) = (N, {K}), got shape {tuple(logits.shape)}")
        if not logits.is_floating_point():
            raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
        if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
            raise ValueError(
                f"labels must be (N,) = ({logits.shape[0]},) to match logits {tuple(logits.shape)}, "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        if labels.numel() == 0:
            return
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= K:
            raise ValueError(
                f"labels must lie in [0, {K}) (num_classes={K}), got values from {low} to {high}"
            )
        if not torch.isfinite(logits).all():
            raise ValueError("logits must be finite, got NaN or inf: the ranking of classes is undefined")

    @torch.no_grad()
    @fp32  # bf16 logits widen exactly, so ranks and ties are those of the values the model produced
    def update(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Add a batch: ``logits`` ``(N, K)`` float, ``labels`` ``(N,)`` int; returns the predictions ``(N,)``."""
        self._check(logits, labels)
        K = self.num_classes
        labels = labels.to(device=logits.device, dtype=torch.int64)
        pred = logits.argmax(dim=1)  # (N,): the first maximum, as the tie rule says
        # one bincount over the flat (true, predicted) cell index fills the whole matrix
        confusion = torch.bincount(labels * K + pred, minlength=K * K).view(K, K)  # (K, K)
        true_logit = logits.gather(1, labels[:, None])  # (N, 1)
        classes = torch.arange(K, device=logits.device)
        # (N, K): the classes ranked before the true one (greater logit, or equal logit and lower index)
        ahead = (logits > true_logit) | ((logits == true_logit) & (classes < labels[:, None]))
        rank = ahead.sum(dim=1)  # (N,): 0 = the true class is the prediction
        ks = torch.tensor(self.top_k, device=logits.device, dtype=torch.int64)
        topk_correct = (rank[:, None] < ks).sum(dim=0)  # (len(top_k),)

        if not self._placed:
            self._confusion = self._confusion.to(logits.device)
            self._topk_correct = self._topk_correct.to(logits.device)
            self._placed = True
        self._confusion += confusion.to(self._confusion.device)
        self._topk_correct += topk_correct.to(self._topk_correct.device)
        return pred

    def merge(self, other: ClassificationMetrics) -> ClassificationMetrics:
        """Add ``other``'s counts into this accumulator; returns ``self``."""
        if other.num_classes != self.num_classes or other.top_k != self.top_k:
            raise ValueError(
                f"cannot merge ClassificationMetrics(num_classes={other.num_classes}, top_k={other.top_k}) "
                f"into ClassificationMetrics(num_classes={self.num_classes}, top_k={self.top_k})"
            )
        self._confusion += other._confusion.to(self._confusion.device)
        self._topk_correct += other._topk_correct.to(self._topk_correct.device)
        return self

    # -------------------------------------------------------------------------------------- reading
    @property
    def confusion(self) -> Tensor:
        """The confusion matrix ``(K, K)`` int64: rows are true classes, columns predicted classes."""
        return self._confusion.clone()

    @property
    def count(self) -> int:
        """Number of samples accumulated."""
        return int(self._confusion.sum())

    def compute(self) -> dict[str, Any]:
        """The metrics as Python numbers (see the class docstring for the keys)."""
        confusion = self._confusion.to(device="cpu", dtype=torch.float64)
        count = int(confusion.sum())
        if count == 0:
            raise RuntimeError("ClassificationMetrics has no data: call update() before compute()")
        support = confusion.sum(dim=1)  # (K,): samples of each true class
        # 0 / 0 = nan for a class with no sample, which nanmean then leaves out
        per_class = confusion.diagonal() / support  # (K,)
        result: dict[str, Any] = {"accuracy": (confusion.trace() / count).item()}
        for k, hits in zip(self.top_k, self._topk_correct.tolist()):
            result[f"top{k}"] = hits / count
        result["per_class_accuracy"] = per_class.tolist()
        result["mean_class_accuracy"] = per_class.nanmean().item()
        result["count"] = count
        return result

    # ----------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Tensor]:
        """The counts as plain int64 tensors: ``confusion`` ``(K, K)`` and ``topk_correct`` ``(len(top_k),)``."""
        return {"confusion": self._confusion.clone(), "topk_correct": self._topk_correct.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Replace the counts with ones returned by :meth:`state_dict` (or a sum of such)."""
        if set(state) != set(_STATE_KEYS):
            raise ValueError(
                f"ClassificationMetrics state must have keys {sorted(_STATE_KEYS)}, got {sorted(state)}"
            )
        K = self.num_classes
        expected = {"confusion": (K, K), "topk_correct": (len(self.top_k),)}
        for key, shape in expected.items():
            value = state[key]
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"ClassificationMetrics state {key!r} must have shape {shape}, got {got}")
            if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
                raise ValueError(
                    f"ClassificationMetrics state {key!r} must hold integer counts, got {value.dtype}"
                )
        self._confusion = state["confusion"].to(torch.int64).clone()
        # keep both counts on one device so that update() never mixes devices
        self._topk_correct = (
            state["topk_correct"].to(dtype=torch.int64, device=self._confusion.device).clone()
        )
        self._placed = True
