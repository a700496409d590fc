r"""Fused gate arithmetic and memory layout of the recurrent cells (private; the switch is public).

After its convolutions (or matrix products) a recurrent cell runs a dozen pointwise operations on the
gates: σ, tanh, products and sums that produce the memories and the hidden state. Run op by op, each
reads and writes a full tensor; under CPU bf16 autocast the four gates are strided channel slices of a
channels-last tensor and those bf16 ops are slow (docs/convlstm.md, "Performance"). Here each cell's
pointwise math is one function that inductor compiles, on first use, into one loop per output. On
the CPU the function is traced and compiled once, called without dynamo, and its backward is the
compiled vector-Jacobian product (``_traced``: dynamo's guards and AOTAutograd's wrappers had cost a
third of the gate functions' time at the demo size); on CUDA, and where tracing fails, it goes through
:func:`torch.compile`. The same function, uncompiled, is the eager path, so all compute the same thing
(except that on the CPU the compiled form writes tanh as 2σ(2x) - 1, within 2.4e-7 of it in float32,
as inductor's own CPU tanh is slow; see ``_tanh_via_sigmoid``):

.. math::
    c_t = σ(f) ∘ c_{t-1} + σ(i) ∘ \tanh(g), \qquad h_t = σ(o) ∘ \tanh(c_t)

in float32 when the gates are bf16 or fp16 (float64 stays float64). Memories (``c``, ``m``) are
returned in :func:`state_dtype`:
float32 under autocast (they accumulate over the whole sequence), otherwise the gates' dtype; a hidden
state has the gates' dtype, which is what the next convolution reads.

When the compiled form is used (:func:`fusion_applies`): fusion is on (:func:`set_gate_fusion`,
``LSTMVISION_GATE_FUSION=0`` turns it off at import), the tensors are on CUDA or run in a reduced
precision (bf16/fp16 tensors or autocast) — fp32 on this CPU measured no faster compiled, see
docs/convlstm.md —, no previous state is missing (the first step of a sequence runs eagerly rather
than needing its own compilation), and nobody is scripting, tracing or already compiling the caller
(a whole-model ``torch.compile`` fuses the eager function itself).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

import torch
from torch import Tensor, nn

from lstmvision.cells import _traced
from lstmvision.cells.common import env_switch

__all__ = ["gate_fusion", "gate_fusion_enabled", "match_weight_layout", "set_gate_fusion"]

logger = logging.getLogger(__name__)

_ENV = "LSTMVISION_GATE_FUSION"
_R = TypeVar("_R")
_Pointwise = Callable[[Tensor], Tensor]


_enabled = env_switch(_ENV, "gate fusion")
# the torch.compile backend; tests swap in a cheaper one where the compiler itself is not under test
_backend = "inductor"
# set once any compilation failed: every fused function then runs eagerly, with one warning per process
_broken = False
# set once tracing a function failed (_traced): the functions then go through torch.compile
_traced_broken = False
# forms traced and compiled since the last _reset (tests count recompilations with it)
_forms_compiled = 0


def set_gate_fusion(enabled: bool) -> None:
    """Turn the compiled gate arithmetic of every cell on or off (process-wide; default on).

    Off, every cell runs the same gate function eagerly. ``LSTMVISION_GATE_FUSION=0`` in the environment
    turns it off when lstmvision is imported.
    """
    global _enabled
    if not isinstance(enabled, bool):
        raise ValueError(f"set_gate_fusion expects True or False, got {enabled!r}")
    _enabled = enabled


def gate_fusion_enabled() -> bool:
    """Whether the cells may use their compiled gate arithmetic (see :func:`set_gate_fusion`)."""
    return _enabled


@contextlib.contextmanager
def gate_fusion(enabled: bool) -> Iterator[None]:
    """Context manager: :func:`set_gate_fusion` inside the block, the previous setting after it."""
    previous = _enabled
    set_gate_fusion(enabled)
    try:
        yield
    finally:
        set_gate_fusion(previous)


def state_dtype(gates: Tensor) -> torch.dtype:
    """The dtype a cell keeps its memories in: float32 under autocast, else the gates' dtype."""
    low = gates.dtype in (torch.bfloat16, torch.float16)
    return torch.float32 if low and torch.is_autocast_enabled(gates.device.type) else gates.dtype


def fusion_applies(x: Tensor) -> bool:
    """Whether the compiled gate function should run for gates ``x`` (see the module docstring)."""
    if not _enabled or _broken or torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if torch.compiler.is_compiling():
        return False
    if x.device.type == "cpu":
        # fp32 on the CPU: the compiled gates measured no faster than eager ones (docs/convlstm.md)
        return x.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled("cpu")
    return True


# fp32 convolutions with at least this many input channels run NCHW on a CPU with AMX tiles
# (docs/convlstm.md, "Precision")
_NCHW_FROM = 128


@functools.cache
def _nchw_cpu() -> bool:
    """Whether this CPU is of the kind on which fp32 NCHW convolutions measured faster from
    ``_NCHW_FROM`` input channels: a Xeon with AMX tiles. An AVX-512 Xeon without them measured
    channels-last faster at every width (docs/convlstm.md)."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)  # CPUID, as torch reads it
    return bool(check()) if callable(check) else False


def channels_last_conv(in_channels: int, x: Tensor) -> bool:
    """Whether a 2-D convolution with ``in_channels`` inputs should read ``x`` channels-last.

    oneDNN convolves channels-last faster in bf16 at every width. In fp32 it did so up to 64 input
    channels on a CPU with AMX, where NCHW was 1.38x faster at 128, and at every width on a CPU without
    AMX (1.16-1.35x at 128 and 256); so fp32 from 128 input channels runs NCHW where the CPU has AMX
    (docs/convlstm.md). On CUDA channels-last stays.
    """
    fp32 = x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    return _channels_last_rule(in_channels, x.device.type, fp32)


def _channels_last_rule(in_channels: int, device_type: str, fp32: bool) -> bool:
    # channels_last_conv for a device and a precision rather than a tensor
    if device_type != "cpu" or in_channels < _NCHW_FROM:
        return True
    return not fp32 or not _nchw_cpu()


def match_weight_layout(module: nn.Module, *, fp32: bool, device_type: str = "cpu") -> int:
    """Store the convolution weights of every recurrent cell in ``module`` in the memory format its
    convolutions run in (:func:`channels_last_conv` for 2-D, channels-last for the E3D cell's 3-D ones)
    for a run in ``fp32`` or not (reduced precision, autocast) on ``device_type``.

    A weight in the other format is converted by the convolution at every call (and its gradient back):
    at the demo size under bf16 autocast that was 174 weight copies a training step. Values, parameter
    objects and state-dict keys do not change; only the strides. Returns how many weights changed format.
    """
    # the cells' classes are those whose convolutions read conv_layout'd inputs; imported here, as the
    # cells import this module
    from lstmvision.cells.convlstm import ConvLSTMCell
    from lstmvision.cells.e3dlstm import Eidetic3DLSTMCell
    from lstmvision.cells.stlstm import SpatioTemporalLSTMCell

    changed = 0
    with torch.no_grad():
        for cell in module.modules():
            if not isinstance(cell, (ConvLSTMCell, SpatioTemporalLSTMCell, Eidetic3DLSTMCell)):
                continue
            for conv in cell.modules():
                if isinstance(conv, nn.Conv3d):
                    layout = torch.channels_last_3d
                elif isinstance(conv, nn.Conv2d):
                    cl = _channels_last_rule(conv.in_channels, device_type, fp32)
                    layout = torch.channels_last if cl else torch.contiguous_format
                else:
                    continue
                weight = conv.weight
                if not weight.is_contiguous(memory_format=layout):
                    # .data keeps the Parameter, so optimizers and hooks holding it are unaffected
                    weight.data = weight.data.contiguous(memory_format=layout)
                    changed += 1
    return changed


def conv_layout(in_channels: int, x: Tensor) -> Tensor:
    """``x`` in the memory format :func:`channels_last_conv` picks; no copy when it already is."""
    if channels_last_conv(in_channels, x):
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()


class _Fused(Generic[_R]):
    """A pointwise function compiled on its first fused call; the plain function where fusion does not apply.

    On the CPU the compiled form is traced and compiled once and called directly, its backward the
    compiled vector-Jacobian product (``_traced``); elsewhere, or where that fails, it is
    ``torch.compile``'s."""

    def __init__(
        self, fn: Callable[..., _R], compiled_form: Callable[..., _R], *, single: bool = False
    ) -> None:
        # compiled_form: fn with the compiled form's tanh, a function of its own. Dynamo keeps its graphs
        # and its recompile limit (8) per code object: a functools.partial or closures from one factory
        # would share a single one among all the gate functions. single: fn returns one tensor, not a tuple
        self.eager = fn
        self._fast = compiled_form
        self._single = single
        self._compiled: Callable[..., _R] | None = None
        # by the positions of the tensor arguments and the values of the others, the traced forms
        self._traced: dict[tuple[Any, ...], _traced.Compiled] = {}

    def __call__(self, *args: Any, eager: bool = False) -> _R:
        """``fn(*args)``, compiled where :func:`fusion_applies` to ``args[0]``; ``eager=True`` forces the
        plain function (a sequence's first step, whose missing state would need its own compilation)."""
        if eager or not fusion_applies(args[0]):
            return self.eager(*args)
        if args[0].device.type == "cpu" and not _traced_broken:
            try:
                return self._call_traced(args)
            except Exception as error:  # a torch without the pieces, no C++ compiler, an inductor bug
                _traced_failed(error)
        if self._compiled is None:
            # dynamic shapes: one compilation serves every batch size, resolution and horizon
            self._compiled = torch.compile(self._fast, dynamic=True, fullgraph=True, backend=_backend)
        try:
            return self._compiled(*args)
        except Exception as error:  # no C++ compiler, an unsupported platform, an inductor bug
            _give_up(error)
            return self.eager(*args)

    def _call_traced(self, args: tuple[Any, ...]) -> _R:
        positions = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor))
        # the other arguments (dims, dtypes, flags, missing states) are part of the trace
        fixed = tuple(None if isinstance(a, Tensor) else a for a in args)
        compiled = self._traced.get((positions, fixed))
        if compiled is None:
            pure = _with_fixed(self._fast, fixed, positions)
            compiled = self._traced[positions, fixed] = _traced.Compiled(pure, _compile_graph)
        tensors = [args[i] for i in positions]
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            outputs = _traced.GateFunction.apply(compiled, _traced_failed, *tensors)
        else:
            outputs = compiled.forward(*tensors)
        return cast(_R, outputs[0] if self._single else outputs)

    def reset(self) -> None:
        """Forget the compiled forms (tests); the next fused call compiles again."""
        self._compiled = None
        self._traced.clear()


def _with_fixed(
    fn: Callable[..., Any], fixed: tuple[Any, ...], positions: tuple[int, ...]
) -> Callable[..., tuple[Tensor, ...]]:
    # fn as a function of its tensor arguments alone, the others fixed; it returns a tuple
    def pure(*tensors: Tensor) -> tuple[Tensor, ...]:
        args = list(fixed)
        for i, t in zip(positions, tensors):
            args[i] = t
        out = fn(*args)
        return (out,) if isinstance(out, Tensor) else tuple(out)

    return pure


def _compile_graph(graph: torch.fx.GraphModule, fakes: list[Tensor], fake_mode: Any) -> Callable[..., Any]:
    # inductor's code for a traced gate graph. Under a test backend other than inductor the graph itself
    # runs op by op, which checks the tracing, the guards and the backward without a C++ compiler
    global _forms_compiled
    _forms_compiled += 1
    if _backend != "inductor":
        return graph
    from torch._guards import TracingContext, tracing
    from torch._inductor.compile_fx import compile_fx

    with tracing(TracingContext(fake_mode)):
        return cast(Callable[..., Any], compile_fx(graph, fakes))


def _traced_failed(error: Exception) -> None:
    # the traced path is off for the rest of the process; the functions go through torch.compile
    global _traced_broken
    if not _traced_broken:
        logger.info(
            "lstmvision: tracing the fused gate arithmetic failed (%s: %s); it goes through torch.compile",
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
        )
    _traced_broken = True


def _give_up(error: Exception) -> None:
    global _broken
    if not _broken:
        logger.warning(
            "lstmvision: compiling the fused gate arithmetic failed (%s: %s); the cells run it eagerly. "
            "Set %s=0 to skip the attempt.",
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
            _ENV,
        )
    _broken = True


def _reset() -> None:
    """Forget every compiled gate function and a past failure (tests)."""
    global _broken, _traced_broken, _forms_compiled
    _broken = _traced_broken = False
    _forms_compiled = 0
    for fused in (lstm_gates, dual_memory, dual_memory_increments, output_gate, mp_gates):
        fused.reset()


def _tanh_via_sigmoid(x: Tensor) -> Tensor:
    # the tanh of the compiled gate functions: on the CPU written through the sigmoid, tanh(x) = 2σ(2x) - 1.
    # With torch 2.13 inductor's CPU tanh loop ran 4-5x slower than ATen's torch.tanh (its sigmoid 1.7x),
    # and a fused ConvLSTM step's gates took 359 µs this way against 550 with tanh (docs/precision.md). In
    # float32 the two agree within 2.4e-7. The eager functions, and so every reference test and a
    # whole-model torch.compile (which traces them), keep torch.tanh
    return 2 * torch.sigmoid(2 * x) - 1 if x.device.type == "cpu" else torch.tanh(x)


def _up(x: Tensor) -> Tensor:
    # the math runs in at least float32: bf16/fp16 are widened, float64 stays float64
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def _lstm(
    gates: Tensor,
    c_prev: Tensor | None,
    dim: int,
    dtype: torch.dtype,
    gates_h: Tensor | None = None,
    *,
    tanh: _Pointwise = torch.tanh,
) -> tuple[Tensor, Tensor]:
    # gates: (..., 4*H, ...) with (i, f, g, o) along dim, plus the recurrent term gates_h where given
    # (summed here, in float32, rather than in a pass of its own); returns h in the gates' dtype and c in
    # dtype
    pre = _up(gates) if gates_h is None else _up(gates) + _up(gates_h)
    i, f, g, o = pre.chunk(4, dim)
    c = torch.sigmoid(i) * tanh(g)
    if c_prev is not None:
        c = c + torch.sigmoid(f) * _up(c_prev)
    h = torch.sigmoid(o) * tanh(c)
    return h.to(gates.dtype), c.to(dtype)


def _dual_memory_increments(
    gates: Tensor,
    gates_m: Tensor,
    c_add: Tensor | None,
    c_prev: Tensor | None,
    carried: Tensor | None,
    dtype: torch.dtype,
    gates_h: Tensor | None = None,
    gates_mem: Tensor | None = None,
    *,
    tanh: _Pointwise = torch.tanh,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    # gates (B, 3*Hc, ...) = i, f (or E3D's r), g (the caller splits o off for output_gate); gates_m
    # (B, 3*Hc, ...) = i', f', g'; gates_h and gates_mem: the hidden and memory convolutions' terms of
    # each where the caller left them apart (summed here in float32, not in a pass of their own).
    # c = σ(i)·tanh(g) + c_add + σ(f)·c_prev and m = σ(i')·tanh(g') + σ(f')·carried; returns (c, m, [c, m],
    # Δc, Δm) with [c, m] in the gates' dtype, which the output convolutions read, and the increments
    # Δc = σ(i)·tanh(g), Δm = σ(i')·tanh(g') (PredRNN-v2's decoupling loss reads them) in dtype
    pre = _up(gates) if gates_h is None else _up(gates) + _up(gates_h)
    pre_m = _up(gates_m) if gates_mem is None else _up(gates_m) + _up(gates_mem)
    i, f, g = pre.chunk(3, 1)
    i_m, f_m, g_m = pre_m.chunk(3, 1)
    delta_c = torch.sigmoid(i) * tanh(g)
    c = delta_c
    if c_add is not None:
        c = c + _up(c_add)
    if c_prev is not None:
        c = c + torch.sigmoid(f) * _up(c_prev)
    delta_m = torch.sigmoid(i_m) * tanh(g_m)
    m = delta_m
    if carried is not None:
        m = m + torch.sigmoid(f_m) * _up(carried)
    cm = torch.cat([c, m], dim=1).to(gates.dtype)
    return c.to(dtype), m.to(dtype), cm, delta_c.to(dtype), delta_m.to(dtype)


def _dual_memory(
    gates: Tensor,
    gates_m: Tensor,
    c_add: Tensor | None,
    c_prev: Tensor | None,
    carried: Tensor | None,
    dtype: torch.dtype,
    gates_h: Tensor | None = None,
    gates_mem: Tensor | None = None,
    *,
    tanh: _Pointwise = torch.tanh,
) -> tuple[Tensor, Tensor, Tensor]:
    # the same arithmetic without the increments: (c, m, [c, m]); the increments are intermediates of
    # it, so the eager path computes nothing more, and the compiled one drops the unused outputs
    c, m, cm, _, _ = _dual_memory_increments(
        gates, gates_m, c_add, c_prev, carried, dtype, gates_h, gates_mem, tanh=tanh
    )
    return c, m, cm


def _output_gate(
    o: Tensor, o_term: Tensor, cell: Tensor, o_h: Tensor | None = None, *, tanh: _Pointwise = torch.tanh
) -> Tensor:
    # h = σ(o + W * [C, M]) ∘ tanh(W_1x1 * [C, M]), in o's dtype; o_h: the hidden convolution's o term
    # where the caller left it apart
    pre = _up(o) + _up(o_term) if o_h is None else _up(o) + _up(o_h) + _up(o_term)
    h = torch.sigmoid(pre) * tanh(_up(cell))
    return h.to(o.dtype)


def _mp(
    gates: Tensor, c_prev: Tensor | None, mean: bool, dtype: torch.dtype, *, tanh: _Pointwise = torch.tanh
) -> tuple[Tensor, Tensor, Tensor]:
    # MP-LSTM without peepholes: gates (B, V, 4H); the memory passes through the V views in order.
    # Returns h_t (B, H) and y (B, V, H) in the gates' dtype and c_t (B, H) in dtype.
    i, f, g, o = _up(gates).chunk(4, -1)  # each (B, V, H)
    inflow, forget = (torch.sigmoid(i) * tanh(g)).unbind(1), torch.sigmoid(f).unbind(1)  # V x (B, H)
    c = inflow[0] if c_prev is None else inflow[0] + forget[0] * _up(c_prev)
    for k in range(1, len(inflow)):  # the memory passes through the views in order
        c = inflow[k] + forget[k] * c
    y = torch.sigmoid(o) * tanh(c).unsqueeze(1)  # (B, V, H)
    h = y.mean(1) if mean else y.sum(1)
    return h.to(gates.dtype), y.to(gates.dtype), c.to(dtype)


lstm_gates = _Fused(_lstm, lambda *a: _lstm(*a, tanh=_tanh_via_sigmoid))
dual_memory = _Fused(_dual_memory, lambda *a: _dual_memory(*a, tanh=_tanh_via_sigmoid))
dual_memory_increments = _Fused(
    _dual_memory_increments, lambda *a: _dual_memory_increments(*a, tanh=_tanh_via_sigmoid)
)
output_gate = _Fused(_output_gate, lambda *a: _output_gate(*a, tanh=_tanh_via_sigmoid), single=True)
mp_gates = _Fused(_mp, lambda *a: _mp(*a, tanh=_tanh_via_sigmoid))
