r"""Weight gradients of a cell's convolutions computed once per sequence (private; the switch is public).

A recurrent cell applies the same convolution at every step of a sequence, so autograd computes that
convolution's weight gradient once per step, each from a batch of B, and adds up the T results. On the
CPU, oneDNN's bf16 weight-gradient kernel runs far below its forward rate at such small batches: 19 steps
of B = 16, 16×16 positions, 5×5 kernels, 1.0-1.5 TFLOP/s per step against 1.7-2.0 TFLOP/s for one call
over all 304 samples (docs/precision.md, "Pooled weight gradients").

Inside :func:`sequence_pass` (entered by the predictors' and the sequence wrappers' time loops)
every convolution that a cell runs through :func:`conv` or :func:`module_conv` computes, per step, only
its input's gradient in the backward pass. The weight's and the bias's gradients come from one
``convolution_backward`` call over all the steps, made by a node every step's convolution depends on
(``_PoolGrads``); autograd runs it after all of them. Each step's output gradient is copied into a slab
as it arrives, and a weight keeps its slabs for its next pass. The result is the same sum; in bf16 it is
accumulated in float32 inside one kernel, where autograd added T bf16 gradients in bf16, so it lies
closer to the fp32 gradient.

It applies where the weight is a leaf that needs a gradient, gradients are being recorded, the tensors
are on the CPU, the convolution runs in bf16 or fp16 (fp32 measured slower pooled), it does enough work
per copied value (``_MIN_MACS_PER_VALUE``), pooling is on (:func:`set_weight_grad_pooling`;
``LSTMVISION_POOL_WEIGHT_GRADS=0`` turns it off at import), and nobody is scripting, tracing or compiling
the caller. On CUDA it is off: it is unmeasured there. A module with forward hooks, or a subclass of
``nn.Conv2d``/``nn.Conv3d``, is called as a module.

The slabs hold T·B·(C_in + C_out)·H·W values per pooled convolution while its weight lives. Second
derivatives through a pooled convolution raise an error (``create_graph=True``): turn pooling off for them.

A scope also keeps weights that a cell builds from its parameters (:func:`joined_weight`: a cell's input
convolution joined with its recurrent ones, in the ConvLSTM and ST-LSTM cells), made at their first use
in a pass.

Without gradients (validation, forecasts) the same scope keeps each fp32 weight's autocast cast: CPU
autocast caches its casts only for tensors that record gradients, and otherwise cast every weight again
at every step (129 casts of ConvLSTM-S's 512×128×5×5 weights in one forecast, 8 % of its time).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.cells.common import env_switch

__all__ = ["sequence_pass", "set_weight_grad_pooling", "weight_grad_pooling"]

_ENV = "LSTMVISION_POOL_WEIGHT_GRADS"


_enabled = env_switch(_ENV, "weight-gradient pooling")
# the pools of the innermost active scope, per thread (DataParallel runs replicas in threads); None outside
_scope = threading.local()
# by id of a weight, the slab its last pool used, kept for the next pass while the weight lives: a fresh
# slab of tens of MB was paged in at every training step, which cost as much as the pooling saved
_slabs: dict[tuple[int, str], Tensor] = {}


def set_weight_grad_pooling(enabled: bool) -> None:
    """Turn the pooled weight gradients of every cell's convolutions on or off (process-wide; default on)."""
    global _enabled
    if not isinstance(enabled, bool):
        raise ValueError(f"set_weight_grad_pooling expects True or False, got {enabled!r}")
    _enabled = enabled


@contextlib.contextmanager
def weight_grad_pooling(enabled: bool) -> Iterator[None]:
    """Context manager: :func:`set_weight_grad_pooling` inside the block, the previous setting after it."""
    previous = _enabled
    set_weight_grad_pooling(enabled)
    try:
        yield
    finally:
        set_weight_grad_pooling(previous)


@contextlib.contextmanager
def sequence_pass() -> Iterator[None]:
    """The scope of one pass over a sequence, for the convolutions run through :func:`conv` and
    :func:`module_conv` inside it. With gradients they share one weight-gradient computation per weight
    (where pooling applies); without (validation, forecasts) under CPU autocast each fp32 weight is cast
    to autocast's dtype once, not at every call (autocast keeps its casts only for tensors that record
    gradients). Nested scopes join the outermost one."""
    if getattr(_scope, "active", False):
        yield
        return
    traced = torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()
    grad = torch.is_grad_enabled()
    _scope.active = True
    _scope.pools = {} if _enabled and grad and not traced else None
    _scope.casts = {} if not grad and not traced else None
    _scope.joined = None if traced else {}
    try:
        yield
    finally:
        _scope.active, _scope.pools, _scope.casts, _scope.joined = False, None, None, None


class _ConvArgs(NamedTuple):
    """A convolution's arguments after the tensors (padding as numbers)."""

    stride: list[int]
    padding: list[int]
    dilation: list[int]
    groups: int


class _Pool:
    """One weight's convolution within one scope: the weight and bias in the dtype the convolution runs
    in, its arguments, and, during the backward pass, what the steps left for the weight's gradient."""

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None,
        args: _ConvArgs,
        bias_grad: bool,
        owner: Tensor,
        joined: bool = False,
    ) -> None:
        self.weight, self.bias, self.args, self.owner = weight, bias, args, id(owner)
        # the slabs' names under the owner: a joined weight's apart from those of the owner's own convolution
        # (which a sequence's first step may run), so that neither takes the other's every pass
        self.grad_key, self.input_key = ("joined grad", "joined input") if joined else ("grad", "input")
        # what the weight-gradient calls compute: no input gradient, the weight's, the bias's if it needs one
        self.mask = (False, True, bias_grad)
        self.steps = 0  # convolutions run in the scope
        self.token: Tensor | None = None
        self._clear()

    def _clear(self) -> None:
        slab: Tensor | None = getattr(self, "slab", None)
        if slab is not None:  # kept for the weight's next pass
            _slabs[self.owner, self.grad_key] = slab
        self.inputs: dict[int, Tensor] = {}  # by step, the inputs of the steps whose gradient came in
        # the steps' output gradients, step s at rows s*N:(s+1)*N, copied in as each arrives (still in the
        # cache then; gathered at the end they were read back from memory, which cost more than pooling saved)
        self.slab: Tensor | None = None
        self.rows = 0  # N, the batch of one step
        # gradients of steps whose shape differs from the first's (none in the cells' sequences)
        self.odd: list[tuple[Tensor | None, Tensor | None]] = []

    def forward(self, x: Tensor) -> Tensor:
        run = F.conv2d if self.weight.dim() == 4 else F.conv3d
        return run(x, self.weight, self.bias, *self.args)

    def backward(
        self, grad: Tensor, x: Tensor, mask: tuple[bool, bool, bool]
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        # the gradients of the input, the weight and the bias that ``mask`` asks for (None for the others)
        bias_sizes = [self.weight.shape[0]] if mask[2] else None
        zeros = [0] * (self.weight.dim() - 2)
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, x, self.weight, bias_sizes, self.args.stride, self.args.padding, self.args.dilation, False,
            zeros, self.args.groups, list(mask),
        )  # fmt: skip
        return grad_x, grad_w, grad_b

    def receive(self, step: int, x: Tensor, grad: Tensor) -> Tensor:
        """Keep step ``step``'s input and output gradient for the weight's gradient; returns the output
        gradient in the input's memory format (its rows of the slab), for the input's gradient."""
        if self.slab is None:
            shape = (self.steps * grad.shape[0], *grad.shape[1:])
            self.slab = _slab((self.owner, self.grad_key), shape, grad.dtype, grad.device, _format(x))
            self.rows = grad.shape[0]
        if grad.shape != (self.rows, *self.slab.shape[1:]) or grad.dtype != self.slab.dtype:
            _, odd_w, odd_b = self.backward(grad, x, self.mask)
            self.odd.append((odd_w, odd_b))
            return grad
        # a gradient in the other format (the ST-LSTM's gate gradients come back from the compiled gates
        # contiguous) is converted here once, where convolution_backward would convert it again
        rows = self.slab[step * self.rows : (step + 1) * self.rows]
        rows.copy_(grad)
        self.inputs[step] = x  # by step: a step run twice (retained graph) is counted once
        return rows

    def gradients(self) -> tuple[Tensor | None, Tensor | None]:
        """The weight's and the bias's gradients from every step received, then forget them (a second
        backward pass through a retained graph brings its own)."""
        steps = sorted(self.inputs)
        grad_w = grad_b = None
        if steps and self.slab is not None:
            slab = self.slab
            if len(steps) < self.steps:  # this backward pass reached some steps only
                slab = slab.unflatten(0, (self.steps, self.rows))[steps].flatten(0, 1)
            xs = [self.inputs[s] for s in steps]
            if len(xs) == 1:
                x = xs[0]
            else:  # (T*N, C_in, ...)
                shape = (sum(t.shape[0] for t in xs), *xs[0].shape[1:])
                out = _slab((self.owner, self.input_key), shape, xs[0].dtype, xs[0].device, _format(xs[0]))
                x = torch.cat(xs, out=out)
            _, grad_w, grad_b = self.backward(slab, x, self.mask)
            if len(xs) > 1:
                _slabs[self.owner, self.input_key] = x
        for odd_w, odd_b in self.odd:
            grad_w = odd_w if grad_w is None or odd_w is None else grad_w + odd_w
            grad_b = odd_b if grad_b is None or odd_b is None else grad_b + odd_b
        self._clear()
        return grad_w, grad_b


class _PoolGrads(torch.autograd.Function):
    """The pool node: forward returns a scalar token every step's convolution takes as an input; backward
    computes the weight's and the bias's gradients from all the steps' inputs and output gradients."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, bias: Tensor | None, pool: _Pool) -> Tensor:
        ctx.pool = pool
        ctx.dtypes = weight.dtype, None if bias is None else bias.dtype
        ctx.set_materialize_grads(False)
        return weight.new_zeros(())

    @staticmethod
    def backward(ctx: Any, _token: Tensor | None) -> tuple[Tensor | None, Tensor | None, None]:
        if torch.is_grad_enabled():  # create_graph=True: the pooled call records no graph to go on with
            raise RuntimeError(
                "lstmvision: second derivatives through the pooled weight gradients of a cell's "
                "convolutions are not supported; turn pooling off with "
                "lstmvision.cells.set_weight_grad_pooling(False) (or LSTMVISION_POOL_WEIGHT_GRADS=0)"
            )
        pool: _Pool = ctx.pool
        grad_w, grad_b = pool.gradients()
        w_dtype, b_dtype = ctx.dtypes
        return (
            None if grad_w is None else grad_w.to(w_dtype),
            None if grad_b is None else grad_b.to(b_dtype),
            None,
        )


def _slab(
    key: tuple[int, str],
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    fmt: torch.memory_format,
) -> Tensor:
    # the slab the key's last pass left if it fits, else a new one; popped, so a second pool of the same
    # weight in flight gets its own
    slab = _slabs.pop(key, None)
    if (
        slab is None
        or slab.shape != shape
        or slab.dtype != dtype
        or not slab.is_contiguous(memory_format=fmt)
    ):
        slab = torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)
    return slab


def _format(x: Tensor) -> torch.memory_format:
    # a batch in the other format than the convolution's input is converted inside convolution_backward;
    # a sequence's first step comes from the eager gate function, in the contiguous format
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


class _PooledConv(torch.autograd.Function):
    """One step's convolution: backward gives the input's gradient and leaves its (input, output
    gradient) to the pool."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, token: Tensor, pool: _Pool) -> Tensor:
        ctx.pool, ctx.step, ctx.x_dtype = pool, pool.steps, x.dtype
        pool.steps += 1
        x_run = x.to(pool.weight.dtype)  # autocast's cast of the input
        ctx.save_for_backward(x_run)
        return pool.forward(x_run)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        pool: _Pool = ctx.pool
        (x_run,) = ctx.saved_tensors
        grad = pool.receive(ctx.step, x_run, grad)
        if not ctx.needs_input_grad[0]:
            return None, None, None
        grad_x, _, _ = pool.backward(grad, x_run, (True, False, False))
        return None if grad_x is None else grad_x.to(ctx.x_dtype), None, None


# Pool a convolution only where its weight gradient has at least this many multiply-adds per value that
# pooling copies (C_in·C_out·k^d / (C_in + C_out) per position, input and output gradient). Measured in bf16
# (benchmarks/weight_grads.py): the demo's 5×5 convolutions, 355 and 640, gained nothing in the step,
# as the copies and two autograd functions per call ate the faster kernel; PredRNN 4x64's (1,280 and up)
# and ConvLSTM-S's (2,560) gained 5-14 %
_MIN_MACS_PER_VALUE = 1000


def _pool(
    x: Tensor, weight: Tensor, bias: Tensor | None, args: _ConvArgs, owner: Tensor | None = None
) -> _Pool | None:
    # the active scope's pool of this weight (made on its first call), or None where pooling does not apply.
    # owner: the parameter a weight built from parameters (joined_weight) keeps its slabs under
    if torch.compiler.is_compiling():  # a compiled step inside an eager loop (compile: true) stays plain
        return None
    pools: dict[tuple[int, torch.dtype], _Pool] | None = getattr(_scope, "pools", None)
    if pools is None or x.device.type != "cpu" or not weight.requires_grad:
        return None
    if owner is None and not weight.is_leaf:
        return None
    dtype = weight.dtype
    if torch.is_autocast_enabled("cpu") and dtype in (torch.float32, torch.bfloat16, torch.float16):
        dtype = torch.get_autocast_dtype("cpu")  # conv2d/conv3d run in autocast's dtype
    if dtype not in (torch.bfloat16, torch.float16):
        # fp32 measured slower pooled: its per-step weight gradients run closer to its peak, and the
        # copies into the slabs cost more than the one call saves (docs/precision.md)
        return None
    c_out, c_in = weight.shape[0], weight.shape[1] * args.groups
    if weight.numel() < _MIN_MACS_PER_VALUE * (c_in + c_out):  # numel: multiply-adds per position
        return None  # too little weight-gradient work per value copied into the slabs
    pool = pools.get((id(weight), dtype))
    if pool is None:
        keeper = weight if owner is None else owner  # whose lifetime the slabs follow
        with torch.no_grad():
            cast_b = None if bias is None else bias.to(dtype)
            bias_grad = bias is not None and bias.requires_grad
            pool = _Pool(weight.to(dtype), cast_b, args, bias_grad, keeper, joined=owner is not None)
        if id(keeper) not in _finalizers:
            _finalizers[id(keeper)] = weakref.finalize(keeper, _forget, id(keeper))
        pool.token = _PoolGrads.apply(weight, bias, pool)
        pools[(id(weight), dtype)] = pool
    return pool


def _cast(weight: Tensor, bias: Tensor | None, x: Tensor) -> tuple[Tensor, Tensor | None] | None:
    # the weight and bias in autocast's dtype, cast once per scope, where the scope keeps casts (no
    # gradients) and CPU autocast would cast them; None otherwise
    if torch.compiler.is_compiling():
        return None
    casts: dict[int, tuple[Tensor, Tensor | None]] | None = getattr(_scope, "casts", None)
    if casts is None or x.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    if not torch.is_autocast_enabled("cpu"):
        return None
    cast = casts.get(id(weight))
    if cast is None:
        dtype = torch.get_autocast_dtype("cpu")
        cast = casts[id(weight)] = (weight.to(dtype), None if bias is None else bias.to(dtype))
    return cast


def conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
    *,
    owner: Tensor | None = None,
) -> Tensor:
    """``F.conv2d`` / ``F.conv3d`` (by the weight's dimensions) with explicit padding; inside
    :func:`sequence_pass`, the weight's gradient pooled or its autocast cast kept where that applies.
    ``owner``: for a weight made by :func:`joined_weight`, the parameter whose slabs its pool reuses
    from one pass to the next (the joined weight itself is new every pass)."""
    if getattr(_scope, "pools", None) is not None:  # only a scope that pools needs the arguments bundled
        args = _ConvArgs(list(stride), list(padding), list(dilation), groups)
        pool = _pool(x, weight, bias, args, owner)
        if pool is not None:
            return _PooledConv.apply(x, pool.token, pool)
    cast = _cast(weight, bias, x)
    if cast is not None:
        weight, bias = cast
    run = F.conv2d if weight.dim() == 4 else F.conv3d
    return run(x, weight, bias, stride, padding, dilation, groups)  # type: ignore[arg-type]


def join_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype in which a cell joins its convolutions for input ``x`` (:func:`joined_weight`): autocast's
    under CPU autocast, bf16 or fp16 where ``x`` has it, ``None`` elsewhere (fp32 or float64 without
    autocast, where joining was not measured faster; another device, where it was not measured)."""
    if x.device.type != "cpu":
        return None
    if torch.is_autocast_enabled("cpu") and x.dtype in (torch.float32, torch.bfloat16, torch.float16):
        return torch.get_autocast_dtype("cpu")
    return x.dtype if x.dtype in (torch.bfloat16, torch.float16) else None


def join_weights(
    weights: Sequence[Tensor], bias: Tensor | None, dtype: torch.dtype
) -> tuple[Tensor, Tensor | None]:
    """Convolution weights side by side along their input channels, in ``dtype`` and channels-last, and
    ``bias`` in ``dtype``: the weight and bias of one convolution over the inputs concatenated in the
    same order (what a cell's :func:`joined_weight` builds)."""
    weight = torch.cat(list(weights), dim=1).to(dtype).contiguous(memory_format=torch.channels_last)
    return weight, None if bias is None else bias.to(dtype)


def joined_conv(
    inputs: Sequence[Tensor],
    joined: tuple[Tensor, Tensor | None],
    padding: Sequence[int],
    owner: Tensor,
    pad: tuple[int, ...] | None = None,
) -> Tensor:
    """The stride-1 convolution of a joined weight and bias (:func:`join_weights`) over ``inputs``
    concatenated along their channels in the weight's dtype, channels-last: ``F.pad`` by ``pad`` first
    where given (an even kernel's "same"), then ``padding``. Inside :func:`sequence_pass` its pooled
    weight gradient keeps its slabs under ``owner`` (see :func:`conv`)."""
    weight, bias = joined
    x = torch.cat([t.to(weight.dtype) for t in inputs], dim=1)
    x = (x if pad is None else F.pad(x, pad)).contiguous(memory_format=torch.channels_last)
    ones = [1] * (weight.dim() - 2)
    return conv(x, weight, bias, ones, padding, ones, owner=owner)


def joined_weight(
    key: tuple[int, str], build: Callable[[], tuple[Tensor, Tensor | None]]
) -> tuple[Tensor, Tensor | None] | None:
    """The weight and bias ``build()`` makes from parameters (a cell's convolutions joined into one),
    made on the first call inside :func:`sequence_pass` and kept for the pass's other steps; ``None``
    outside a pass (or where it is traced or compiled), where the caller runs its convolutions apart.

    Made once a pass, the joined weight costs one concatenation (and one cast under autocast) per pass,
    not per step, and its gradient reaches the parameters through that one node."""
    joined: dict[tuple[int, str], tuple[Tensor, Tensor | None]] | None = getattr(_scope, "joined", None)
    if joined is None or torch.compiler.is_compiling():
        return None
    made = joined.get(key)
    if made is None:
        made = joined[key] = build()
    return made


_finalizers: dict[int, weakref.finalize] = {}


def _forget(key: int) -> None:
    # the weight is gone: its slabs go, and its id may be reused by another tensor
    for kind in ("grad", "input", "joined grad", "joined input"):
        _slabs.pop((key, kind), None)
    _finalizers.pop(key, None)


def module_conv(module: nn.Conv2d | nn.Conv3d, x: Tensor) -> Tensor:
    """``module(x)``, with the weight's gradient pooled where :func:`conv` would pool it. A module with
    hooks, a subclass (a parametrised weight, say) or padding other than zeros given as numbers or
    "valid" is called as it is."""
    padding = (0,) * (x.dim() - 2) if module.padding == "valid" else module.padding
    if not bare(module) or isinstance(padding, str):
        return module(x)
    return conv(x, module.weight, module.bias, module.stride, padding, module.dilation, module.groups)


def bare(module: nn.Module) -> bool:
    """Whether a convolution module may be run by its weight alone (:func:`module_conv`, or joined with
    another by a cell): a plain ``nn.Conv2d``/``nn.Conv3d`` (not a subclass, whose weight may be
    parametrised), zero padding, and no forward hook that must see the call."""
    plain = type(module) in (nn.Conv2d, nn.Conv3d) and getattr(module, "padding_mode", None) == "zeros"
    return plain and not _hooked(module)


def _hooked(module: nn.Module) -> bool:
    # any forward (pre-)hook, the module's own or a global one, must see the call
    hooks = (module._forward_hooks, module._forward_pre_hooks)
    global_hooks = (nn.modules.module._global_forward_hooks, nn.modules.module._global_forward_pre_hooks)
    return any(len(h) > 0 for h in (*hooks, *global_hooks))
