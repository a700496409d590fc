"""Every task's metrics and losses are computed in float32, whatever the precision the network ran in.

Each test hands a task fixed network outputs in bfloat16 (what a network returns under ``bf16-mixed``)
and runs its steps inside CPU bf16 autocast and outside it: the logged values and accumulated metrics
must agree, and equal the float32 computation on the same (widened) outputs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.data import CaptionBatch
from lstmvision.metrics import frame_mse, frame_ssim
from lstmvision.tasks import CaptioningTask, VideoClassificationTask, VideoPredictionTask


def _contexts() -> dict[str, Any]:
    return {"fp32": contextlib.nullcontext, "bf16 autocast": lambda: torch.autocast("cpu", torch.bfloat16)}


def _capture_logs(task: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Tensor]:
    logged: dict[str, Tensor] = {}

    def log(name: str, value: Any, **_: Any) -> None:
        logged[name] = torch.as_tensor(value).detach().clone()

    monkeypatch.setattr(task, "log", log)
    return logged


class _FixedPredictor(nn.Module):
    """A predictor whose forecasts are fixed bf16 frames, as a network under bf16-mixed returns them."""

    input_length, total_length = 3, 6

    def __init__(self, frames: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))  # the forecasts depend on it, so the loss has a gradient
        self.frames = frames.to(torch.bfloat16)  # (B, total_length - 1, C, H, W)

    def sampling_probability(self, iteration: int) -> float:
        return 0.0

    def input_sampling_probability(self, iteration: int) -> float:
        return 1.0

    def forward(self, frames: Tensor, *, future: int | None = None, **_: Any) -> Tensor:
        steps = self.input_length - 1 + (future or self.total_length - self.input_length)
        return (self.frames[:, :steps] * self.weight.to(torch.bfloat16)).to(torch.bfloat16)


def test_prediction_metrics_and_loss_do_not_depend_on_the_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    clips = torch.rand(2, 6, 1, 16, 16, generator=g)
    # forecasts near the truth: SSIM's E[x^2] - E[x]^2 then cancels, where bf16 arithmetic fails worst
    noisy = (clips[:, 1:] + 0.01 * torch.randn(clips[:, 1:].shape, generator=g)).clamp(0, 1)
    task = VideoPredictionTask(_FixedPredictor(noisy), gif_samples=0)
    logged = _capture_logs(task, monkeypatch)
    pred = task.predictor.frames[:, 2:].float()  # exactly what the task gets, widened
    truth = clips[:, 3:]
    results = {}
    for name, context in _contexts().items():
        with context():
            loss = task.training_step(clips, 0)
            task.on_validation_epoch_start()
            task.validation_step(clips, 0)
            task.on_validation_epoch_end()
            task.on_test_epoch_start()
            task.test_step(clips, 0)
        assert loss is not None and loss.dtype == torch.float32, name
        assert loss.requires_grad, "the gradient still flows through the float32 reduction"
        results[name] = {
            "loss": loss.detach(),
            **{k: v for k, v in logged.items() if k.startswith("val/")},
            **{f"test/{k}": v for k, v in task._metrics["model"].compute().items()},
        }
    expected = {
        "loss": F.mse_loss(task.predictor.frames.float(), clips[:, 1:]),
        "val/mse": frame_mse(pred, truth).mean(),
        "val/ssim": frame_ssim(pred, truth).mean(),
    }
    for name, values in results.items():
        for key, value in values.items():
            other = results["fp32"][key]
            assert value.dtype in (torch.float32, torch.float64), f"{key} under {name}: {value.dtype}"
            assert torch.isfinite(value), f"{key} under {name}: {value}"
            assert abs(float(value) - float(other)) <= 1e-6 * max(1.0, abs(float(other))), (
                f"{key}: {float(value)} under {name}, {float(other)} in fp32"
            )
            if key in expected:
                assert float(value) == pytest.approx(float(expected[key]), rel=1e-6, abs=1e-7), key


class _FixedClassifier(nn.Module):
    """Returns fixed bf16 logits for every clip (with a weight, so the loss has a gradient)."""

    num_classes = 5

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.logits = logits.to(torch.bfloat16)

    def forward(self, clips: Tensor) -> Tensor:
        return self.logits[: clips.shape[0]] * self.weight.to(torch.bfloat16)


def test_classification_metrics_and_loss_do_not_depend_on_the_precision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(6, 5, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    clips = torch.rand(6, 2, 1, 4, 4, generator=g)
    task = VideoClassificationTask(_FixedClassifier(logits), top_k=(1, 3), label_smoothing=0.1)
    logged = _capture_logs(task, monkeypatch)
    widened = task.model.logits.float()
    results = {}
    for name, context in _contexts().items():
        with context():
            loss = task.training_step((clips, labels), 0)
            task.on_validation_epoch_start()
            task.validation_step((clips, labels), 0)
            task.on_validation_epoch_end()
            task.on_test_epoch_start()
            task.test_step((clips, labels), 0)
        assert loss is not None and loss.dtype == torch.float32 and loss.requires_grad, name
        results[name] = (loss.item(), float(logged["val/loss"]), task._metrics.compute())
    expected_loss = F.cross_entropy(widened, labels, label_smoothing=0.1).item()
    for name, (loss_value, val_loss, metrics) in results.items():
        assert loss_value == pytest.approx(expected_loss, rel=1e-6), name
        assert val_loss == pytest.approx(expected_loss, rel=1e-6), name
        assert metrics == results["fp32"][2], name
    assert results["fp32"][2]["accuracy"] == (widened.argmax(1) == labels).float().mean().item()


class _FixedCaptioner(nn.Module):
    """Returns fixed bf16 next-token logits (B, L-1, V)."""

    vocab_size, pad_id, bos_id, eos_id = 7, 0, 1, 2

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.logits = logits.to(torch.bfloat16)

    def forward(self, inputs: Tensor, tokens: Tensor, lengths: Tensor, *, teacher_forcing: float) -> Tensor:
        return self.logits * self.weight.to(torch.bfloat16)

    def decode(self, *args: Any, **kwargs: Any) -> list[Any]:
        raise NotImplementedError


def test_captioning_loss_does_not_depend_on_the_precision() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2, 4, 7, generator=g)
    tokens = torch.tensor([[1, 3, 4, 2, 0], [1, 5, 6, 3, 2]])  # the first caption ends in padding
    batch = CaptionBatch(torch.zeros(2, 3, 8), torch.tensor([3, 3]), tokens, [["a"], ["b"]], ["v0", "v1"])
    task = CaptioningTask(_FixedCaptioner(logits))
    losses, per_token = {}, {}
    for name, context in _contexts().items():
        with context():
            losses[name] = task._loss(batch, 1.0)
            per_token[name] = task._loss(batch, 1.0, reduction="none")  # what validation sums
    flat = task.model.logits.float().flatten(0, 1)
    expected = F.cross_entropy(flat, tokens[:, 1:].flatten(), ignore_index=0).item()
    each = F.cross_entropy(flat, tokens[:, 1:].flatten(), ignore_index=0, reduction="none").view(2, 4)
    for name, loss in losses.items():
        assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected, rel=1e-6), name
        assert per_token[name].dtype == torch.float32, name
        torch.testing.assert_close(per_token[name], each, rtol=1e-6, atol=0, msg=name)
