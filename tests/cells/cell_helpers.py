"""Helpers of the cell tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def max_err(a: Tensor, b: Tensor) -> float:
    return (a - b).abs().max().item()


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Every parameter random: biases, peepholes and norm parameters start at 0 or 1, which would hide bugs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) - 0.5)
