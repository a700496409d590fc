"""Temporal attention pooling and masked means: padded steps get no weight."""

from __future__ import annotations

import pytest
import torch

from lstmvision.layers import TemporalAttentionPooling, length_mask, temporal_mean

pytestmark = pytest.mark.usefixtures("one_thread")


def test_attention_equals_its_equations() -> None:
    torch.manual_seed(0)
    pool = TemporalAttentionPooling(4, attention_size=3)
    x = torch.randn(2, 5, 4)
    pooled, weights = pool(x)
    W, b, w = pool.project.weight, pool.project.bias, pool.score.weight[0]
    for i in range(2):
        scores = torch.stack([w @ torch.tanh(W @ x[i, t] + b) for t in range(5)])
        alpha = torch.exp(scores) / torch.exp(scores).sum()
        torch.testing.assert_close(weights[i], alpha)
        torch.testing.assert_close(pooled[i], (alpha[:, None] * x[i]).sum(0))


def test_padded_steps_get_zero_weight_and_do_not_matter() -> None:
    torch.manual_seed(0)
    pool = TemporalAttentionPooling(4)
    x = torch.randn(2, 6, 4)
    lengths = torch.tensor([3, 6])
    pooled, weights = pool(x, lengths)
    assert weights[0, 3:].abs().max() == 0
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    x2 = x.clone()
    x2[0, 3:] = 100.0  # padding content must not leak into the result
    torch.testing.assert_close(pool(x2, lengths)[0], pooled)
    torch.testing.assert_close(pool(x[:1, :3])[0][0], pooled[0])


def test_attention_errors() -> None:
    pool = TemporalAttentionPooling(4)
    with pytest.raises(ValueError, match=r"expects \(B, T, D=4\), got shape \(2, 5, 3\)"):
        pool(torch.rand(2, 5, 3))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=5\]"):
        pool(torch.rand(2, 5, 4), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="input_size and attention_size must be >= 1"):
        TemporalAttentionPooling(0)


def test_temporal_mean_over_valid_steps() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    torch.testing.assert_close(temporal_mean(x), x.mean(1))
    got = temporal_mean(x, torch.tensor([1, 2]))
    torch.testing.assert_close(got, torch.stack([x[0, 0], x[1, :2].mean(0)]))
    assert length_mask(None, 2, 3, x.device) is None
    assert length_mask(torch.tensor([1, 3]), 2, 3, x.device).tolist() == [[True, False, False], [True] * 3]
