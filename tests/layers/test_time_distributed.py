"""TimeDistributed folds time into the batch: same result as a loop over frames, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmvision.encoders import SmallCNN
from lstmvision.layers import TimeDistributed, stack_frames

pytestmark = pytest.mark.usefixtures("one_thread")


def test_equals_a_loop_over_frames() -> None:
    torch.manual_seed(0)
    encoder = SmallCNN(in_channels=2, channels=(4, 6), pool_size=2, feature_dim=5).eval()
    x = torch.rand(3, 4, 2, 12, 10)
    maps, pooled = TimeDistributed(encoder, input_rank=5)(x)
    with torch.no_grad():
        per_frame = [encoder(x[:, t]) for t in range(4)]
    loop_maps = torch.stack([m for m, _ in per_frame], dim=1)
    loop_pooled = torch.stack([p for _, p in per_frame], dim=1)
    assert maps.shape == (3, 4, 6, 3, 3) and pooled.shape == (3, 4, 5)
    err = max((maps - loop_maps).abs().max().item(), (pooled - loop_pooled).abs().max().item())
    assert err < 1e-6, f"folded differs from the loop by {err}"


def test_one_call_over_all_frames() -> None:
    calls: list[tuple[int, ...]] = []
    linear = nn.Linear(3, 2)
    linear.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    x = torch.rand(4, 7, 3)
    out = TimeDistributed(linear)(x)
    assert calls == [(28, 3)]
    torch.testing.assert_close(out[2, 5], linear(x[2, 5]))


def test_tuple_outputs_and_none_pass_through() -> None:
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor]:
            return x * 2, None, x.sum(-1)

    doubled, nothing, sums = TimeDistributed(Pair())(torch.ones(2, 3, 4))
    assert nothing is None
    torch.testing.assert_close(doubled, torch.full((2, 3, 4), 2.0))
    torch.testing.assert_close(sums, torch.full((2, 3), 4.0))


def test_gradients_reach_the_module() -> None:
    linear = nn.Linear(3, 2)
    TimeDistributed(linear)(torch.rand(2, 5, 3)).sum().backward()
    assert linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0


def test_wrong_rank_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"TimeDistributed\(Linear\) expects \(B, T, \.\.\.\) with at least 3"
    ):
        TimeDistributed(nn.Linear(3, 2))(torch.rand(4, 3))
    with pytest.raises(
        ValueError, match=r"expects a rank-5 input \(B, T, \.\.\.\), got shape \(2, 3, 8, 8\)"
    ):
        TimeDistributed(nn.Conv2d(3, 2, 3), input_rank=5)(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="input_rank must be >= 3"):
        TimeDistributed(nn.Linear(3, 2), input_rank=2)


def test_the_rank_is_read_from_the_module_when_not_given() -> None:
    # a Conv2d takes (N, C, H, W) steps, so the sequence must be (B, T, C, H, W); a rank-4 clip would
    # otherwise be folded to (B*C, H, W) and fail inside the convolution
    encoder = SmallCNN(in_channels=3, channels=(4,), pool_size=2, feature_dim=5)
    with pytest.raises(
        ValueError,
        match=r"TimeDistributed\(SmallCNN\) expects a rank-5 input \(B, T, C, H, W\) .*got shape \(2, 3, 8, 8\)",
    ):
        TimeDistributed(encoder)(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"expects a rank-4 input \(B, T, C, L\) .*got shape \(2, 3, 4\)"):
        TimeDistributed(nn.Conv1d(4, 2, 3))(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"expects a rank-6 input \(B, T, C, D, H, W\)"):
        TimeDistributed(nn.Sequential(nn.BatchNorm3d(2), nn.Conv3d(2, 2, 1)))(torch.rand(2, 3, 2, 4, 4))
    # the right rank runs, and a Linear first accepts any rank >= 3
    maps, _ = TimeDistributed(encoder)(torch.rand(2, 3, 3, 8, 8))
    assert maps.shape[:3] == (2, 3, 4)
    out = TimeDistributed(nn.Sequential(nn.Linear(4, 2), nn.ReLU()))(torch.ones(2, 3, 5, 4))
    assert out.shape == (2, 3, 5, 2)


def test_a_numpy_input_is_a_type_error() -> None:
    with pytest.raises(
        TypeError, match=r"TimeDistributed\(Linear\) expects x to be a torch\.Tensor, got numpy"
    ):
        TimeDistributed(nn.Linear(3, 2))(torch.rand(2, 5, 3).numpy())
    with pytest.raises(
        TypeError, match=r"stack_frames expects frames to be a torch\.Tensor, got builtins\.list"
    ):
        stack_frames([[0.0]], 1)  # type: ignore[arg-type]


def test_a_module_returning_something_else_is_named() -> None:
    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> dict:
            return {"x": x}

    with pytest.raises(TypeError, match="returned dict; expected a tensor or a tuple/list of tensors"):
        TimeDistributed(Bad())(torch.rand(2, 3, 4))


def test_stack_frames_puts_consecutive_frames_in_channels() -> None:
    frames = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 6, 1, 1, 1).expand(2, 6, 2, 3, 3)
    stacks = stack_frames(frames, 3)
    assert stacks.shape == (2, 4, 6, 3, 3)
    # step t holds frames t, t+1, t+2 (oldest first), each with its 2 channels
    assert stacks[1, 2, :, 0, 0].tolist() == [8.0, 8.0, 9.0, 9.0, 10.0, 10.0]
    torch.testing.assert_close(stack_frames(frames, 1), frames)


def test_stack_frames_errors() -> None:
    with pytest.raises(ValueError, match="shorter than the stack size 5"):
        stack_frames(torch.rand(1, 4, 1, 2, 2), 5)
    with pytest.raises(ValueError, match=r"expects frames \(B, T, C, H, W\), got shape \(4, 1, 2, 2\)"):
        stack_frames(torch.rand(4, 1, 2, 2), 2)
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        stack_frames(torch.rand(1, 4, 1, 2, 2), 0)
