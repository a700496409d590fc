"""Argument checks shared by the cells and their sequence wrappers (private)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def layer_channels(hidden_channels: int | Sequence[int], num_layers: int) -> list[int]:
    """Hidden channels per layer from one int or ``num_layers`` ints, or a ValueError naming the mismatch."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    hidden = [hidden_channels] * num_layers if isinstance(hidden_channels, int) else list(hidden_channels)
    if len(hidden) != num_layers:
        raise ValueError(
            f"hidden_channels must be an int or {num_layers} ints (num_layers), got {hidden_channels!r}"
        )
    return hidden


def memory_channels_of(in_channels: int, hidden_channels: int, memory_channels: int | None) -> int:
    """Channels of a cell's incoming spatiotemporal memory (default: its own hidden channels), checked."""
    memory = hidden_channels if memory_channels is None else memory_channels
    if min(in_channels, hidden_channels, memory) < 1:
        raise ValueError(
            "in_channels, hidden_channels and memory_channels must be >= 1, got "
            f"in_channels={in_channels}, hidden_channels={hidden_channels}, memory_channels={memory}"
        )
    return memory


def check_lengths(lengths: Tensor | None, B: int, T: int, device: torch.device) -> Tensor | None:
    """Per-clip valid lengths ``(B,)`` as integers in ``[1, T]`` on ``device``, or a ValueError saying why not."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (B,) or lengths.is_floating_point() or lengths.is_complex():
        raise ValueError(
            f"lengths must be integers of shape ({B},), got {lengths.dtype} {tuple(lengths.shape)}"
        )
    if int(lengths.min()) < 1 or int(lengths.max()) > T:
        raise ValueError(f"lengths must be in [1, T={T}], got {lengths.tolist()}")
    return lengths.to(device)


def check_input_dtype(who: str, x: Tensor, module: nn.Module) -> None:
    """A floating-point input of the module's weight dtype (any float under autocast), or a ValueError.

    Without this, a float64 clip into float32 weights fails deep inside a convolution with torch's own
    message; under ``torch.autocast`` mixed dtypes are the point, so only the float check applies.
    """
    if not x.is_floating_point():
        raise ValueError(f"{who} expects a floating-point input, got dtype {x.dtype}")
    weight = next((p for p in module.parameters() if p.is_floating_point()), None)
    if weight is None or x.dtype == weight.dtype or torch.is_autocast_enabled(x.device.type):
        return
    raise ValueError(
        f"{who} expects {weight.dtype} input (the dtype of its weights), got {x.dtype}: convert the input "
        f"(x.to({weight.dtype})), the model (model.to({x.dtype})), or run under torch.autocast"
    )
