"""Apply a per-frame module to a whole sequence at once by folding time into the batch."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from lstmvision._checks import check_tensor

__all__ = ["TimeDistributed", "stack_frames"]


def _unfold(output: Any, batch: int, steps: int) -> Any:
    """(B*T, ...) -> (B, T, ...) for a tensor, or for every tensor of a tuple/list (None passes)."""
    if output is None:
        return None
    if isinstance(output, Tensor):
        # reshape, not unflatten: traced for ONNX, unflatten freezes B and T into the graph
        return output.reshape(batch, steps, *output.shape[1:])
    if isinstance(output, (tuple, list)):
        return type(output)(_unfold(item, batch, steps) for item in output)
    raise TypeError(
        f"TimeDistributed: the wrapped module returned {type(output).__name__}; expected a tensor or a "
        "tuple/list of tensors"
    )


_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def _sequence_layout(module: nn.Module) -> str | None:
    """The ``(B, T, ...)`` layout a module's steps need, read from its first convolution or 2-D/3-D
    batch norm (``Conv2d``: ``(B, T, C, H, W)``); None when a ``Linear`` comes first or there is none."""
    for layer in module.modules():
        if isinstance(layer, _ConvNd):
            return f"(B, T, C, {_SPATIAL[len(layer.kernel_size)]})"
        if isinstance(layer, (nn.BatchNorm2d, nn.BatchNorm3d)):
            return f"(B, T, C, {_SPATIAL[2 if isinstance(layer, nn.BatchNorm2d) else 3]})"
        if isinstance(layer, (nn.Linear, _BatchNorm)):  # any rank (BatchNorm1d: (N, C) or (N, C, L))
            return None
    return None


class TimeDistributed(nn.Module):
    """Apply ``module`` to every step of a ``(B, T, ...)`` sequence in one call over ``B·T`` items.

    The Keras ``TimeDistributed`` wrapper: time is folded into the batch (``(B, T, ...)`` ->
    ``(B*T, ...)``, a view when the input is contiguous), the module runs once, and every tensor it
    returns is unfolded back to ``(B, T, ...)``. One call over all frames is faster than a loop over
    them (``benchmarks/time_distributed.py``) and gives the same result when the module treats batch
    items independently (true of convolutions, and of BatchNorm in eval mode; in training mode
    BatchNorm's statistics are taken over all ``B·T`` frames, as in Keras).

    Args:
        module: the per-step module; it may return a tensor or a tuple/list of tensors (e.g. a
            :class:`~lstmvision.encoders.FrameEncoder`'s ``(maps, pooled)``).
        input_rank: the rank the sequence must have, e.g. 5 for frames ``(B, T, C, H, W)``;
            ``None``: read from the module's first convolution (or batch norm) when it has one
            (``Conv2d`` -> 5), else any rank >= 3.

    Shape:
        - input: ``(B, T, *)``
        - output: ``(B, T, *out)`` for each output ``(B*T, *out)`` of the module.
    """

    def __init__(self, module: nn.Module, *, input_rank: int | None = None) -> None:
        super().__init__()
        if input_rank is not None and input_rank < 3:
            raise ValueError(f"input_rank must be >= 3 (batch, time and at least one more), got {input_rank}")
        self.module = module
        self.input_rank = input_rank
        # what the wrapped module's first layer takes, so that a wrong rank is named here instead of
        # failing inside the module (a Conv2d reads a folded rank-4 clip as unbatched frames)
        self._layout = _sequence_layout(module)

    def forward(self, x: Tensor) -> Any:
        """Run the module once over the ``B·T`` steps of ``x`` and unfold its outputs to ``(B, T, ...)``."""
        name = type(self.module).__name__
        check_tensor(f"TimeDistributed({name})", x)
        if self.input_rank is not None and x.dim() != self.input_rank:
            raise ValueError(
                f"TimeDistributed({name}) expects a rank-{self.input_rank} input "
                f"(B, T, ...), got shape {tuple(x.shape)}"
            )
        if self.input_rank is None and self._layout is not None:
            rank = self._layout.count(",") + 1
            if x.dim() != rank:
                raise ValueError(
                    f"TimeDistributed({name}) expects a rank-{rank} input {self._layout} (its module's "
                    f"first layer takes rank-{rank - 1} steps), got shape {tuple(x.shape)}"
                )
        if x.dim() < 3:
            raise ValueError(
                f"TimeDistributed({name}) expects (B, T, ...) with at least 3 "
                f"dimensions, got shape {tuple(x.shape)}"
            )
        B, T = x.shape[:2]
        output = self.module(x.flatten(0, 1))  # (B*T, ...): every step in one call
        return _unfold(output, B, T)

    def extra_repr(self) -> str:
        return "" if self.input_rank is None else f"input_rank={self.input_rank}"


def stack_frames(frames: Tensor, size: int) -> Tensor:
    """Stack every ``size`` consecutive frames as channels: ``(B, T, C, H, W) -> (B, T-size+1, size*C, H, W)``.

    The input of lip-reading encoders that see a short window at once (VGG-M on 5 grey frames,
    Chung & Zisserman 2016). Step t of the output holds frames t .. t+size-1, oldest first.
    """
    check_tensor("stack_frames", frames, "frames")
    if frames.dim() != 5:
        raise ValueError(f"stack_frames expects frames (B, T, C, H, W), got shape {tuple(frames.shape)}")
    if size < 1:
        raise ValueError(f"stack_frames: size must be >= 1, got {size}")
    T = frames.shape[1]
    if T < size:
        raise ValueError(f"stack_frames: a clip of {T} frames is shorter than the stack size {size}")
    windows = frames.unfold(1, size, 1)  # (B, T-size+1, C, H, W, size)
    windows = windows.permute(0, 1, 5, 2, 3, 4)  # (B, T-size+1, size, C, H, W): oldest frame first
    return windows.flatten(2, 3)  # (B, T-size+1, size*C, H, W)
