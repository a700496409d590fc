"""One set of argument and tensor checks for the whole package: every error names the argument (or the
module refusing an input), what it expects and what it got."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "check_channels",
    "check_fraction",
    "check_input_dtype",
    "check_lengths",
    "check_rate",
    "check_tensor",
    "check_width_multiplier",
]


def check_tensor(who: str, x: object, name: str = "x") -> None:
    """A TypeError naming the expected and the received type unless ``x`` is a ``torch.Tensor``.

    The first check of every entry point: a NumPy array or a list would otherwise fail later with
    "object has no attribute 'dim'", which says nothing about what to pass instead.
    """
    if isinstance(x, Tensor):
        return
    hint = " (convert it with torch.from_numpy(x))" if type(x).__module__ == "numpy" else ""
    raise TypeError(
        f"{who} expects {name} to be a torch.Tensor, got {type(x).__module__}.{type(x).__name__}{hint}"
    )


def check_channels(who: str, x: Tensor, channels: int, axis: int) -> None:
    """A ValueError unless ``x.shape[axis] == channels``; for a likely channels-last input (the last axis
    holds ``channels``) the message shows the ``permute`` that moves it into place."""
    axis = axis % x.dim()
    if x.shape[axis] == channels:
        return
    message = f"{who} expects {channels} channels, got {x.shape[axis]} in {tuple(x.shape)}"
    if x.shape[-1] == channels and axis != x.dim() - 1:
        # channels last, e.g. (B, T, H, W, C) from NumPy or Keras: move the last axis to `axis`
        order = [*range(axis), x.dim() - 1, *range(axis, x.dim() - 1)]
        message += f"; it looks channels-last: use x.permute({', '.join(map(str, order))})"
    raise ValueError(message)


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


def check_rate(value: float, name: str) -> None:
    """A dropout rate in [0, 1), or a ValueError naming the key."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def check_fraction(value: float, name: str) -> None:
    """A fraction in (0, 1], or a ValueError naming the key."""
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def check_width_multiplier(owner: str, width_multiplier: float) -> None:
    """A positive width multiplier of an encoder, or a ValueError naming the encoder."""
    if not width_multiplier > 0:
        raise ValueError(f"{owner}: width_multiplier must be > 0, got {width_multiplier}")
