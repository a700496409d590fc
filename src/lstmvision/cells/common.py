"""What the recurrent cells share: channels per layer, views, time reversal, pairs of sizes, and the
refusal of ``torch.jit.script``. Argument and tensor checks used across the package live in
:mod:`lstmvision._checks`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import NoReturn

import torch
from torch import Tensor, nn

from lstmvision._checks import check_input_dtype

logger = logging.getLogger(__name__)


def env_switch(name: str, what: str) -> bool:
    """An on/off switch read from the environment variable ``name``, on when unset. A value that is not
    0/1/true/false/on/off/yes/no leaves it on with a warning naming ``what``: a typo must not stop the
    import of the library."""
    value = os.environ.get(name, "1").strip().lower()
    if value in ("0", "false", "off", "no"):
        return False
    if value not in ("1", "true", "on", "yes", ""):
        logger.warning("%s=%r is not 0/1/true/false/on/off; %s stays on", name, value, what)
    return True


def layer_channels(hidden_channels: int | Sequence[int], num_layers: int | None = None) -> list[int]:
    """Hidden channels per layer: one int repeated ``num_layers`` times (default 1), or one per layer.

    A list sets the number of layers by its length (``ConvLSTM(1, [32, 16], 3)`` has two), so
    ``num_layers`` may be left out; given, it must agree, or the ValueError names both numbers.
    """
    if num_layers is not None and (isinstance(num_layers, bool) or not isinstance(num_layers, int)):
        raise ValueError(f"num_layers must be an int >= 1 or None, got {num_layers!r}")
    if isinstance(hidden_channels, bool) or not isinstance(hidden_channels, (int, Sequence)):
        raise ValueError(f"hidden_channels must be an int or a list of ints, got {hidden_channels!r}")
    if isinstance(hidden_channels, int):
        hidden = [hidden_channels] * (1 if num_layers is None else num_layers)
    else:
        hidden = list(hidden_channels)
        if num_layers is not None and len(hidden) != num_layers:
            raise ValueError(
                f"hidden_channels {hidden} sets {len(hidden)} layer(s) but num_layers={num_layers}: "
                "leave num_layers out or make them agree"
            )
    if num_layers is not None and num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if not hidden:
        raise ValueError("hidden_channels must list at least one layer, got []")
    if not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden):
        raise ValueError(f"hidden_channels must be >= 1 (an int, or one per layer), got {hidden_channels!r}")
    return hidden


class NotScriptable:
    """Mixin for modules that refuse ``torch.jit.script`` with a message saying what to use instead.

    TorchScript is deprecated since PyTorch 2.x (``torch.jit.script`` warns so) and cannot compile these
    modules (keyword-only arguments, NamedTuple states under postponed annotations, the lazily compiled
    gate functions); ``torch.compile`` handles them, and ONNX export traces them (docs/convlstm.md).
    ``torch.jit.script`` calls ``__prepare_scriptable__`` on the module and every submodule first.
    """

    def __prepare_scriptable__(self) -> NoReturn:
        raise RuntimeError(
            f"{type(self).__name__} does not support torch.jit.script (TorchScript is deprecated in "
            "PyTorch 2.x): use torch.compile(module) to speed it up, or lstmvision.export_onnx / "
            "torch.jit.trace to export it; see docs/convlstm.md"
        )


def memory_channels_of(in_channels: int, hidden_channels: int, memory_channels: int | None) -> int:
    """Channels of a cell's incoming spatiotemporal memory (default: its own hidden channels), checked."""
    memory = hidden_channels if memory_channels is None else memory_channels
    if min(in_channels, hidden_channels, memory) < 1:
        raise ValueError(
            "in_channels, hidden_channels and memory_channels must be >= 1, got "
            f"in_channels={in_channels}, hidden_channels={hidden_channels}, memory_channels={memory}"
        )
    return memory


def view_sizes(input_size: int | Sequence[int], num_views: int) -> list[int]:
    """The input size of each of ``num_views`` views from one int or one per view, or a ValueError."""
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    sizes = [input_size] * num_views if isinstance(input_size, int) else list(input_size)
    if len(sizes) != num_views or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes
    ):
        raise ValueError(
            f"input_size must be an int >= 1 or {num_views} of them (one per view), got {input_size!r}"
        )
    return sizes


def split_views(
    who: str,
    module: nn.Module,
    x: Tensor | Sequence[Tensor],
    sizes: list[int],
    rank: int,
    view_axis: int,
    layout: str,
) -> list[Tensor]:
    """The V views of ``x`` (a tensor with V on ``view_axis``, or V tensors of ``rank`` axes), checked."""
    V = len(sizes)
    if isinstance(x, Tensor):
        if x.dim() != rank + 1:
            raise ValueError(f"{who} expects x {layout}, got shape {tuple(x.shape)}")
        views = list(x.unbind(view_axis))  # (B, V, D) -> V x (B, D); (B, V, T, D) -> V x (B, T, D)
    elif isinstance(x, (list, tuple)) and all(isinstance(v, Tensor) for v in x):
        views = list(x)
        bad = [tuple(v.shape) for v in views if v.dim() != rank]
        if bad:
            raise ValueError(f"{who} expects x {layout}, got a view of shape {bad[0]}")
    else:
        # a NumPy array or a list of them: the wrong type, whatever its shape
        got = type(x).__name__
        if isinstance(x, (list, tuple)):
            got += " of " + ", ".join(sorted({type(v).__name__ for v in x}))
        raise TypeError(f"{who} expects x {layout} as torch.Tensor(s), got {got}")
    if len(views) != V:
        raise ValueError(f"{who} expects {V} views, got {len(views)}")
    for k, (view, size) in enumerate(zip(views, sizes)):
        check_input_dtype(f"{who} (view {k})", view, module)
        if view.shape[-1] != size:
            raise ValueError(f"{who} view {k} expects {size} features, got {view.shape[-1]}")
    if len({v.shape[:-1] for v in views}) > 1:
        raise ValueError(
            f"{who} views must share the batch size and time length, got {[tuple(v.shape) for v in views]}"
        )
    return views


def reversal_index(lengths: Tensor | None, T: int, device: torch.device) -> Tensor | None:
    """``(B, T)`` time index that reverses each sequence within its own valid steps (padding stays in
    place), for :func:`reverse_time`; None when every sequence has all T steps (a plain flip)."""
    if lengths is None or int(lengths.min()) == T:
        return None
    steps = torch.arange(T, device=device)[None, :]  # (1, T)
    return torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (B, T)


def reverse_time(x: Tensor, index: Tensor | None) -> Tensor:
    """Reverse time (dim 1) of ``(B, T, ...)``; with a :func:`reversal_index`, each sequence within its
    valid steps (an involution)."""
    if index is None:
        return x.flip(1)
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]  # (B, T, ...)


def pair(value: int | Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    """``(value, value)`` for an int, the pair itself for two ints; each at least ``minimum``."""
    # anything but an int or a sequence (a float from a config) falls through to the error below
    both = (
        (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    )
    if len(both) != 2 or not all(isinstance(v, int) and v >= minimum for v in both):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return both  # type: ignore[return-value]
