"""ClassificationMetrics against hand-computed values, scikit-learn (when installed) and a plain loop."""

from __future__ import annotations

import io
import math

import pytest
import torch

from lstmvision.metrics import ClassificationMetrics

# 6 samples, 3 classes; the true class is in brackets, the argmax is marked with *:
#   sample 0 [0]: 0.9*  0.1   0.0   -> correct
#   sample 1 [0]: 0.2   0.7*  0.1   -> predicted 1, true class second -> top-2 hit
#   sample 2 [1]: 0.1   0.8*  0.1   -> correct
#   sample 3 [1]: 0.5*  0.1   0.4   -> predicted 0, true class third -> top-2 miss
#   sample 4 [1]: 0.3   0.3   0.4*  -> predicted 2; true class ties class 0, which ranks first -> top-2 miss
#   sample 5 [0]: 0.2   0.2   0.6*  -> predicted 2; true class 0 ties class 1 and ranks first -> top-2 hit
LOGITS = torch.tensor(
    [
        [0.9, 0.1, 0.0],
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.5, 0.1, 0.4],
        [0.3, 0.3, 0.4],
        [0.2, 0.2, 0.6],
    ]
)
LABELS = torch.tensor([0, 0, 1, 1, 1, 0])


def test_hand_computed_values() -> None:
    metrics = ClassificationMetrics(3, top_k=(1, 2, 5))
    pred = metrics.update(LOGITS, LABELS)
    assert pred.tolist() == [0, 1, 1, 0, 2, 2]
    assert metrics.confusion.tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    result = metrics.compute()
    assert metrics.top_k == (1, 2), "top-5 of a 3-class problem is skipped"
    assert set(result) == {"accuracy", "top1", "top2", "per_class_accuracy", "mean_class_accuracy", "count"}
    assert result["count"] == 6
    assert result["accuracy"] == pytest.approx(2 / 6)
    assert result["top1"] == pytest.approx(2 / 6)
    assert result["top2"] == pytest.approx(4 / 6)  # samples 0, 1, 2, 5
    # class 2 has no sample: nan, and left out of the mean
    assert result["per_class_accuracy"][:2] == pytest.approx([1 / 3, 1 / 3])
    assert math.isnan(result["per_class_accuracy"][2])
    assert result["mean_class_accuracy"] == pytest.approx(1 / 3)


def test_ties_go_to_the_lower_class_index_as_argmax() -> None:
    metrics = ClassificationMetrics(4, top_k=(1, 2, 3, 4))
    constant = torch.zeros(4, 4)  # a model with no preference: credited for class 0 only
    metrics.update(constant, torch.arange(4))
    result = metrics.compute()
    assert metrics.confusion[:, 0].tolist() == [1, 1, 1, 1]
    assert [result[f"top{k}"] for k in (1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1.0]


def test_unequal_class_sizes_separate_accuracy_from_mean_class_accuracy() -> None:
    metrics = ClassificationMetrics(2, top_k=(1,))
    logits = torch.tensor([[1.0, 0.0]] * 10)  # always class 0
    labels = torch.tensor([0] * 8 + [1] * 2)
    metrics.update(logits, labels)
    result = metrics.compute()
    assert result["accuracy"] == pytest.approx(0.8)
    assert result["per_class_accuracy"] == pytest.approx([1.0, 0.0])
    assert result["mean_class_accuracy"] == pytest.approx(0.5)


def _loop_reference(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> dict[str, object]:
    """One sample at a time with a stable descending sort: the documented tie rule, written plainly."""
    K = logits.shape[1]
    confusion = [[0] * K for _ in range(K)]
    hits = dict.fromkeys(ks, 0)
    for row, label in zip(logits.tolist(), labels.tolist()):
        order = sorted(range(K), key=lambda c: (-row[c], c))
        confusion[label][order[0]] += 1
        for k in ks:
            hits[k] += label in order[:k]
    return {"confusion": confusion, **{f"top{k}": hits[k] / len(labels) for k in ks}}


def test_random_batches_equal_a_plain_loop() -> None:
    g = torch.Generator().manual_seed(0)
    # rounded logits make ties common, so the tie rule is exercised on every batch
    logits = (torch.randn(300, 7, generator=g) * 2).round()
    labels = torch.randint(0, 7, (300,), generator=g)
    metrics = ClassificationMetrics(7, top_k=(1, 3, 5))
    for start in range(0, 300, 64):  # uneven last batch
        metrics.update(logits[start : start + 64], labels[start : start + 64])
    result = metrics.compute()
    ref = _loop_reference(logits, labels, (1, 3, 5))
    assert metrics.confusion.tolist() == ref["confusion"]
    for k in (1, 3, 5):
        assert result[f"top{k}"] == pytest.approx(ref[f"top{k}"]), f"top{k}"


def test_matches_scikit_learn() -> None:
    metrics_module = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 6, generator=g, dtype=torch.float64)  # continuous: no ties
    labels = torch.randint(0, 6, (500,), generator=g)
    ours = ClassificationMetrics(6, top_k=(1, 3, 5))
    ours.update(logits, labels)
    result = ours.compute()
    y, scores = labels.numpy(), logits.numpy()
    pred = scores.argmax(1)
    assert ours.confusion.tolist() == metrics_module.confusion_matrix(y, pred, labels=range(6)).tolist()
    assert result["accuracy"] == pytest.approx(metrics_module.accuracy_score(y, pred))
    for k in (3, 5):
        expected = metrics_module.top_k_accuracy_score(y, scores, k=k, labels=range(6))
        assert result[f"top{k}"] == pytest.approx(expected), f"top{k}"
    assert result["mean_class_accuracy"] == pytest.approx(metrics_module.balanced_accuracy_score(y, pred))
    recall = metrics_module.recall_score(y, pred, average=None, labels=range(6))
    assert result["per_class_accuracy"] == pytest.approx(recall.tolist())


def test_state_round_trip_and_halves_sum_to_the_whole() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(40, 5, generator=g)
    labels = torch.randint(0, 5, (40,), generator=g)
    whole, first, second = (ClassificationMetrics(5, top_k=(1, 2)) for _ in range(3))
    whole.update(logits, labels)
    first.update(logits[:17], labels[:17])
    second.update(logits[17:], labels[17:])

    # what the task does across processes: add the states key by key, load the sum
    summed = {key: first.state_dict()[key] + second.state_dict()[key] for key in first.state_dict()}
    restored = ClassificationMetrics(5, top_k=(1, 2))
    restored.load_state_dict(summed)
    assert all(restored.state_dict()[key].equal(value) for key, value in whole.state_dict().items())
    assert restored.compute() == whole.compute()  # the same counts give the same numbers, exactly
    assert all(value.dtype == torch.int64 for value in summed.values())

    # and through torch.save(weights_only=True), as a checkpoint would
    buffer = io.BytesIO()
    torch.save(whole.state_dict(), buffer)
    buffer.seek(0)
    reloaded = ClassificationMetrics(5, top_k=(1, 2))
    reloaded.load_state_dict(torch.load(buffer, weights_only=True))
    assert reloaded.confusion.equal(whole.confusion)
    assert reloaded.merge(first).count == 40 + 17


def test_reset_and_empty() -> None:
    metrics = ClassificationMetrics(3)
    metrics.update(LOGITS, LABELS)
    metrics.reset()
    assert metrics.count == 0
    with pytest.raises(RuntimeError, match="no data"):
        metrics.compute()


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (
            torch.zeros(4, 2),
            torch.zeros(4, dtype=torch.long),
            r"logits must be \(N, num_classes\) = \(N, 3\)",
        ),
        (torch.zeros(4, 3, 1), torch.zeros(4, dtype=torch.long), r"got shape \(4, 3, 1\)"),
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), "floating point, got"),
        (torch.zeros(4, 3), torch.zeros(5, dtype=torch.long), r"labels must be \(N,\) = \(4,\)"),
        (torch.zeros(4, 3), torch.zeros(4), "integer class indices, got dtype torch.float32"),
        (torch.zeros(4, 3), torch.tensor([0, 1, 3, 2]), r"lie in \[0, 3\).*from 0 to 3"),
        (torch.zeros(4, 3), torch.tensor([0, -1, 2, 2]), "from -1 to 2"),
        (torch.full((4, 3), math.nan), torch.zeros(4, dtype=torch.long), "must be finite"),
    ],
)
def test_bad_batches_are_refused(logits: torch.Tensor, labels: torch.Tensor, match: str) -> None:
    metrics = ClassificationMetrics(3)
    with pytest.raises(ValueError, match=match):
        metrics.update(logits, labels)
    assert metrics.count == 0, "a refused batch leaves no trace"


def test_bad_arguments_and_states_are_refused() -> None:
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 0"):
        ClassificationMetrics(0)
    with pytest.raises(ValueError, match=r"top_k must hold integers >= 1, got \[1, 0\]"):
        ClassificationMetrics(3, top_k=(1, 0))
    with pytest.raises(ValueError, match="must not repeat"):
        ClassificationMetrics(3, top_k=(1, 1))
    metrics = ClassificationMetrics(3, top_k=(1, 2))
    with pytest.raises(ValueError, match=r"keys \['confusion', 'topk_correct'\], got \['confusion'\]"):
        metrics.load_state_dict({"confusion": torch.zeros(3, 3, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"'confusion' must have shape \(3, 3\), got \(2, 2\)"):
        metrics.load_state_dict(
            {
                "confusion": torch.zeros(2, 2, dtype=torch.long),
                "topk_correct": torch.zeros(2, dtype=torch.long),
            }
        )
    with pytest.raises(ValueError, match=r"integer counts, got torch\.float32"):
        metrics.load_state_dict(
            {"confusion": torch.zeros(3, 3), "topk_correct": torch.zeros(2, dtype=torch.long)}
        )
    with pytest.raises(ValueError, match="cannot merge"):
        metrics.merge(ClassificationMetrics(4))
