"""The ConvLSTM video predictor: patching, autoregression, horizon, fed true frames, input checks.

The scheduled-sampling schedules moved to the prediction task: tests/tasks/test_schedules.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmvision.models import ConvLSTMPredictor
from lstmvision.models.predictor import to_frames, to_patches


def _model(**overrides: object) -> ConvLSTMPredictor:
    torch.manual_seed(0)
    kwargs: dict = dict(num_hidden=[4, 4], filter_size=3, patch_size=2, input_length=3, total_length=6)
    kwargs.update(overrides)
    return ConvLSTMPredictor(**kwargs).eval()


def _reference(
    model: ConvLSTMPredictor, frames: torch.Tensor, fed: list[torch.Tensor | None]
) -> torch.Tensor:
    """Step-by-step rollout written out plainly: fed[t] is the frame given at step t (None = own prediction)."""
    p = model.patch_size
    states = [None] * len(model.cells)
    outs, last = [], None
    for given in fed:
        frame = given if given is not None else last
        x = F.pixel_unshuffle(frame, p)
        for i, cell in enumerate(model.cells):
            x, states[i] = cell(x, states[i])
        last = F.pixel_shuffle(model.head(x), p)
        outs.append(last)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_patches_are_pixel_unshuffle_and_frames_pixel_shuffle(p: int) -> None:
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 3, 4 * p, 5 * p)  # (B, T, C, H, W), three channels
    patches = to_patches(frames, p)
    assert torch.equal(patches, F.pixel_unshuffle(frames.flatten(0, 1), p).unflatten(0, (2, 3)))
    assert torch.equal(to_frames(patches, p), frames)
    # the rollout stacks the head's outputs, channels-last under bf16 autocast: any strides
    steps = [torch.rand(2, 3 * p * p, 4, 5).contiguous(memory_format=torch.channels_last) for _ in range(3)]
    stacked = torch.stack(steps, dim=1)  # (B, T, C*p*p, h, w)
    expected = F.pixel_shuffle(stacked.flatten(0, 1), p).unflatten(0, (2, 3))
    assert torch.equal(to_frames(stacked, p), expected)


def test_forecast_equals_a_plain_rollout_and_ignores_future_frames() -> None:
    model = _model()
    frames = torch.rand(2, 6, 1, 8, 8)
    with torch.no_grad():
        out = model(frames)
        ref = _reference(model, frames, [frames[:, 0], frames[:, 1], frames[:, 2], None, None])
        changed = frames.clone()
        changed[:, 3:] = torch.rand_like(changed[:, 3:])
        out_changed = model(changed)
    assert out.shape == (2, 5, 1, 8, 8)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(out, out_changed, rtol=0, atol=0)


def test_horizon_can_change_at_inference() -> None:
    model = _model()
    frames = torch.rand(1, 3, 1, 8, 8)
    with torch.no_grad():
        short = model(frames, future=2)
        long = model(frames, future=7)
    assert long.shape == (1, 2 + 7, 1, 8, 8)
    torch.testing.assert_close(long[:, : short.shape[1]], short, rtol=0, atol=1e-6)


def test_sampling_probability_one_feeds_every_true_frame() -> None:
    model = _model()
    frames = torch.rand(2, 6, 1, 8, 8)
    with torch.no_grad():
        out = model(frames, sampling_prob=1.0)
        ref = _reference(model, frames, [frames[:, t] for t in range(5)])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_input_sampling_probability_zero_feeds_own_predictions_from_step_one() -> None:
    model = _model()
    frames = torch.rand(2, 6, 1, 8, 8)
    with torch.no_grad():
        out = model(frames, input_sampling_prob=0.0)
        ref = _reference(model, frames, [frames[:, 0], None, None, None, None])
        mixed = model(frames, input_sampling_prob=0.0, sampling_prob=1.0)
        ref_mixed = _reference(model, frames, [frames[:, 0], None, None, frames[:, 3], frames[:, 4]])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed, ref_mixed, rtol=0, atol=1e-6)


def test_sampling_draws_are_per_clip_and_step() -> None:
    model = _model()
    frames = torch.rand(64, 6, 1, 8, 8)
    torch.manual_seed(3)
    with torch.no_grad():
        out = model(frames, sampling_prob=0.5)
        own = model(frames)
        truth = model(frames, sampling_prob=1.0)
    # step 3 reads frame 3 or the prediction: its output (frame 4's prediction) matches one of the two
    as_truth = (out[:, 3] - truth[:, 3]).flatten(1).abs().amax(1) < 1e-6
    as_own = (out[:, 3] - own[:, 3]).flatten(1).abs().amax(1) < 1e-6
    assert bool((as_truth | as_own).all()) and 10 < int(as_truth.sum()) < 54


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_length=5, total_length=5), "total_length must be greater than input_length"),
        (dict(num_hidden=[]), "num_hidden must be a non-empty list"),
        (dict(patch_size=0), "patch_size must be >= 1"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model(**kwargs)


@pytest.mark.parametrize(
    ("frames", "kwargs", "message"),
    [
        (torch.rand(2, 6, 8, 8), {}, r"expects frames \(B, T, C, H, W\), got shape \(2, 6, 8, 8\)"),
        (torch.rand(2, 6, 3, 8, 8), {}, "expects 1 channels, got 3"),
        (
            torch.rand(2, 6, 1, 9, 8),
            {},
            "patch_size=2 must divide the frame height and width .*, got frames of 9x8",
        ),
        (torch.rand(2, 6, 1, 0, 8), {}, "expects frames of at least 1x1 pixels, got 0x8"),
        (torch.rand(0, 6, 1, 0, 0), {}, "expects frames of at least 1x1 pixels, got 0x0"),
        (torch.rand(2, 2, 1, 8, 8), {}, "needs at least input_length=3 frames, got 2"),
        (torch.zeros(2, 6, 1, 8, 8, dtype=torch.uint8), {}, "a floating-point input, got dtype torch.uint8"),
        (
            torch.rand(2, 4, 1, 8, 8),
            dict(sampling_prob=0.5),
            r"input_length \+ future - 1 = 5 frames .*, got 4",
        ),
        (torch.rand(2, 6, 1, 8, 8), dict(future=0), "future must be >= 1"),
        (
            torch.rand(2, 6, 1, 8, 8),
            dict(input_sampling_prob=1.5),
            r"input_sampling_prob must be in \[0, 1\]",
        ),
    ],
)
def test_bad_input_is_refused(frames: torch.Tensor, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model()(frames, **kwargs)
