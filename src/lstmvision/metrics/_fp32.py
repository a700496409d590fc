"""Results in float32 whatever the network's precision (private; :func:`fp32` is re-exported).

A network trained under ``bf16-mixed`` hands its outputs over in bfloat16, and inside autocast even
float32 inputs of a convolution or matrix product are cast down. A metric or a loss reduction computed
that way is off by bf16's 3 significant digits (SSIM's variance ``E[x^2] - E[x]^2`` of nearly equal
numbers can even become ``inf``), so every metric and loss reduction runs through :func:`fp32`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import torch
from torch import Tensor

__all__ = ["fp32"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_LOW = (torch.bfloat16, torch.float16)


def _widen(value: Any) -> Any:
    # float64 stays float64 (an oracle may compute in it); only the half-width types are widened
    if isinstance(value, Tensor) and value.dtype in _LOW:
        return value.float()
    return value


@contextlib.contextmanager
def _autocast_off(devices: set[str]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for device in devices:
            if torch.is_autocast_enabled(device):
                stack.enter_context(torch.autocast(device, enabled=False))
        yield


def fp32(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` in float32 outside autocast: bf16/fp16 tensor arguments are cast to float32 (exactly:
    every bf16/fp16 value is a float32 value) and autocast is off on their devices and the CPU while
    ``fn`` runs. Gradients flow through the casts, so losses may use it too."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        devices = {"cpu"} | {v.device.type for v in (*args, *kwargs.values()) if isinstance(v, Tensor)}
        widened_args = tuple(_widen(v) for v in args)
        widened_kwargs = {key: _widen(v) for key, v in kwargs.items()}
        with _autocast_off(devices):
            return fn(*widened_args, **widened_kwargs)  # type: ignore[arg-type]

    return wrapper
