"""``precision: auto``: train in bf16 where the hardware runs it fast, in fp32 everywhere else.

:func:`resolve_precision` turns the trainer's ``precision`` value into one Lightning accepts. ``"auto"``
becomes ``"bf16-mixed"`` on a CUDA device that supports bf16 and on a CPU with AMX bf16 units or
AVX512-BF16 instructions, and ``"32-true"`` otherwise; any other valid value is returned unchanged.
The CPU check (docs/precision.md):

- the CPU flags ``amx_bf16`` / ``avx512_bf16`` from ``/proc/cpuinfo`` (Linux lists a flag only when the
  kernel also enabled the unit), else torch's own cpuinfo checks where there is no ``/proc/cpuinfo``;
- and oneDNN, which runs torch's CPU bf16 convolutions and matrix products, must report bf16 support
  (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``). That check alone is not enough: it is true on any
  AVX512 CPU, where oneDNN emulates bf16 and runs it slower than fp32; so is the
  ``"AVX512"`` of ``torch.backends.cpu.get_cpu_capability()``, which says nothing about bf16.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator
from lightning.pytorch.trainer.connectors.accelerator_connector import _PRECISION_INPUT

__all__ = ["AUTO", "PrecisionChoice", "PrecisionInput", "cpu_bf16_units", "resolve_precision"]

log = logging.getLogger(__name__)

AUTO = "auto"

#: What the trainer's ``precision`` key accepts: Lightning's values, ``"auto"``, or None (Lightning's default).
PrecisionInput = _PRECISION_INPUT | Literal["auto"] | None


def _valid_values() -> list[Any]:
    values: list[Any] = [AUTO]
    for group in get_args(_PRECISION_INPUT):
        values.extend(get_args(group))
    return values


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and, when it came from ``"auto"``, why."""

    requested: Any
    precision: Any
    reason: str | None = None

    def __str__(self) -> str:
        if self.reason is None:
            return f"precision {self.precision}"
        return f"precision {self.requested} -> {self.precision} ({self.reason})"


@cache
def _proc_cpu_flags() -> frozenset[str] | None:
    """The CPU flags Linux lists in ``/proc/cpuinfo``, or None where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":  # every core lists the same flags: the first line is enough
            return frozenset(value.split())
    return None


def _onednn_bf16() -> bool:
    """Whether the oneDNN in this torch build can run bf16 kernels on this CPU."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the check
        return False


def _torch_cpu_check(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    return bool(check()) if callable(check) else False


def cpu_bf16_units() -> str | None:
    """``"AMX bf16 units"`` or ``"AVX512-BF16 instructions"`` when this CPU runs bf16 natively, else None."""
    if not _onednn_bf16():
        return None
    flags = _proc_cpu_flags()
    if flags is not None:
        amx, avx512_bf16 = "amx_bf16" in flags, "avx512_bf16" in flags
    else:
        # no /proc/cpuinfo (macOS, Windows): torch's cpuinfo reads the CPUID bits itself
        amx = _torch_cpu_check("_is_amx_tile_supported")
        avx512_bf16 = _torch_cpu_check("_is_avx512_bf16_supported")
    if amx:
        return "AMX bf16 units"
    if avx512_bf16:
        return "AVX512-BF16 instructions"
    return None


def _cuda_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _device_kind(accelerator: Any) -> str:
    """``"cuda"``, ``"cpu"`` or another name: the device the trainer's ``accelerator`` value runs on."""
    if isinstance(accelerator, CUDAAccelerator):
        return "cuda"
    if isinstance(accelerator, CPUAccelerator):
        return "cpu"
    if not isinstance(accelerator, str):
        return type(accelerator).__name__
    name = accelerator.lower()
    if name == "gpu":
        # Lightning's "gpu" is CUDA where there is CUDA, else Apple's MPS
        return "cuda" if torch.cuda.is_available() else "mps"
    if name == "auto":
        # Lightning's order for "auto" among the devices this function knows: MPS, CUDA, then the CPU
        if torch.backends.mps.is_available():
            return "mps"
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def resolve_precision(requested: Any, accelerator: Any = "auto") -> PrecisionChoice:
    """The trainer's ``precision`` value for a run on ``accelerator`` (the trainer's ``accelerator`` value).

    ``"auto"`` resolves to ``"bf16-mixed"`` on a bf16-capable CUDA device and on a CPU with AMX or
    AVX512-BF16 (see the module docstring), else to ``"32-true"``; the returned choice says why. Any
    other Lightning value (``"32-true"``, ``"bf16-mixed"``, ``16``, ...) and None (Lightning's default)
    are returned unchanged. Anything else is a ValueError naming ``trainer.precision``.
    """
    valid = _valid_values()
    if requested is not None and (isinstance(requested, bool) or requested not in valid):
        listed = ", ".join(repr(v) for v in valid)
        raise ValueError(f"trainer.precision must be one of {listed} or null, got {requested!r}")
    if requested != AUTO:
        return PrecisionChoice(requested, requested)
    device = _device_kind(accelerator)
    if device == "cuda":
        if _cuda_bf16():
            return PrecisionChoice(AUTO, "bf16-mixed", "CUDA device supports bf16")
        return PrecisionChoice(AUTO, "32-true", "CUDA device without bf16 support")
    if device == "cpu":
        units = cpu_bf16_units()
        if units is not None:
            return PrecisionChoice(AUTO, "bf16-mixed", f"CPU has {units}")
        return PrecisionChoice(AUTO, "32-true", "CPU has neither AMX nor AVX512-BF16")
    return PrecisionChoice(
        AUTO, "32-true", f"bf16 is chosen automatically only on CPU and CUDA, not {device}"
    )
