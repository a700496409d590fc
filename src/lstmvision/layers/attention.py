"""Soft attention over the steps of a sequence."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmvision._checks import check_lengths, check_tensor

__all__ = ["TemporalAttentionPooling", "length_mask", "temporal_mean"]


def length_mask(lengths: Tensor | None, B: int, T: int, device: torch.device) -> Tensor | None:
    """``(B, T)`` booleans, True at the valid steps ``t < lengths[b]``; None when every step is valid."""
    lengths = check_lengths(lengths, B, T, device)
    if lengths is None:
        return None
    return torch.arange(T, device=device) < lengths[:, None]  # (B, T)


def temporal_mean(x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Mean of ``(B, T, *)`` over the valid steps ``t < lengths[b]`` of each sequence: ``(B, *)``."""
    check_tensor("temporal_mean", x)
    B, T = x.shape[:2]
    mask = length_mask(lengths, B, T, x.device)
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype) / mask.sum(dim=1, keepdim=True)  # (B, T), rows sum to 1
    return torch.einsum("bt,bt...->b...", weights, x)


class TemporalAttentionPooling(nn.Module):
    """Weighted mean of a feature sequence with learnt weights (additive attention, Bahdanau et al. 2015).

    ``e_t = wᵀ tanh(W x_t + b)``, ``α = softmax_t(e)`` over the valid steps only, output ``Σ_t α_t x_t``.
    Padded steps (``t >= lengths[b]``) get weight exactly 0. The weights are returned too, so they
    can be plotted.

    Args:
        input_size: D, the size of a step's features.
        attention_size: the size of ``W x_t`` (default: ``input_size``).

    Shape:
        - x: ``(B, T, D)``; lengths: ``(B,)`` integers in ``[1, T]`` or None.
        - output: ``(B, D)`` and the weights ``(B, T)``.
    """

    def __init__(self, input_size: int, attention_size: int | None = None) -> None:
        super().__init__()
        attention_size = input_size if attention_size is None else attention_size
        if input_size < 1 or attention_size < 1:
            raise ValueError(
                f"input_size and attention_size must be >= 1, got {input_size} and {attention_size}"
            )
        self.input_size = input_size
        self.project = nn.Linear(input_size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)  # a bias would shift every score alike

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The attention-weighted mean of ``x`` over its valid steps and the weights ``(B, T)``."""
        check_tensor("TemporalAttentionPooling", x)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"TemporalAttentionPooling expects (B, T, D={self.input_size}), got shape {tuple(x.shape)}"
            )
        B, T, _ = x.shape
        scores = self.score(torch.tanh(self.project(x))).squeeze(-1)  # (B, T)
        mask = length_mask(lengths, B, T, x.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=1)  # (B, T); every clip has >= 1 valid step, so no NaN
        pooled = torch.einsum("bt,btd->bd", weights, x)  # Σ_t α_t x_t
        return pooled, weights
