r"""Pointwise gate functions compiled once and called without dynamo, with their backward (private).

The cells' fused gate functions (``_fusion``) run a few hundred microseconds per step on the CPU. Called
through ``torch.compile`` each call also paid dynamo's guard check and AOTAutograd's wrappers, and the
backward that AOTAutograd derived wrote the gates' gradient twice, once in float32 and once per bf16
input: at the demo size (2 × 32 ConvLSTM, B = 16, bf16) the gate functions took 57 ms of a 211 ms
training step, a third of it outside the kernels (docs/precision.md, "Gate functions without dynamo").

Here a gate function is traced to an FX graph of aten operations (``make_fx``) on fake tensors whose
sizes are symbols, each dimension its own (no duck sizing: a batch of 16 on a 16 × 16 grid stays three
sizes), and inductor compiles that graph. The compiled form serves every size its shape guards admit,
so batch sizes, resolutions and horizons share it. The backward is the same kind of function: the
vector-Jacobian product of the gate function, traced through autograd, so it recomputes the gates'
activations from the saved inputs instead of storing them, and the gradients of inputs that received
the same value (a ConvLSTM's input and hidden convolutions both feed the gate sum) are one tensor.

:class:`Traced` holds the compiled forms of one function, :class:`Compiled` a gate function's forward
and backward ones, and :class:`GateFunction` is the autograd node that runs them. Anything missing from
a torch version, or any failure to compile, raises to the caller (``_fusion``), which falls back to
``torch.compile``; a backward that fails to compile runs the plain function's product instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, fx

__all__ = ["Compiled", "GateFunction", "Traced", "vjp"]

# a pure function of tensors that returns a tuple of tensors
_Pure = Callable[..., tuple[Tensor, ...]]
# exact signatures remembered per function; a run sees a handful (training, validation and test batch
# sizes), a sweep over many sizes is forgotten past this and only costs the guard checks again
_MAX_SIGNATURES = 64


class Traced:
    """The compiled forms of one pure function of tensors, each with the shape guards of its trace.

    ``compile_graph(graph, fakes, fake_mode)`` turns a traced graph into a callable (inductor's
    ``compile_fx``; the graph itself in tests). A call with a new exact signature (dtypes, sizes,
    strides) takes the first form whose guards admit it and whose dtypes match, or traces a new one.
    """

    def __init__(
        self, fn: _Pure, compile_graph: Callable[[fx.GraphModule, list[Tensor], Any], _Pure]
    ) -> None:
        self.fn = fn
        self.compile_graph = compile_graph
        # (dtypes and devices, the shape environment, its guards as one expression, the compiled callable)
        self.forms: list[tuple[tuple[Any, ...], Any, str | None, _Pure]] = []
        self.by_signature: dict[tuple[Any, ...], _Pure] = {}

    def __call__(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        signature = tuple((t.dtype, t.device, t.shape, t.stride()) for t in tensors)
        run = self.by_signature.get(signature)
        if run is None:
            run = self._form(tensors)
            if len(self.by_signature) >= _MAX_SIGNATURES:
                self.by_signature.clear()
            self.by_signature[signature] = run
        return tuple(run(*tensors))

    def _form(self, tensors: Sequence[Tensor]) -> _Pure:
        kinds = tuple((t.dtype, t.device) for t in tensors)
        for form_kinds, shape_env, guards, run in self.forms:
            # the guards are on sizes and strides only (a size of 1, another memory format, a width
            # that no longer splits in four): dtypes and devices are compared here
            if form_kinds == kinds and (
                guards is None or shape_env.evaluate_guards_expression(guards, tensors)
            ):
                return run
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.proxy_tensor import make_fx
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        shape_env = ShapeEnv(duck_shape=False)
        fake_mode = FakeTensorMode(shape_env=shape_env)
        fakes: list[Tensor] = [fake_mode.from_tensor(t.detach()) for t in tensors]
        with torch.autocast(tensors[0].device.type, enabled=False):  # the functions widen to fp32 themselves
            graph = make_fx(self.fn, tracing_mode="fake")(*fakes)
        run = self.compile_graph(_merge_duplicates(graph), fakes, fake_mode)
        # the expression is built once (0.2 s for a gate function's backward); evaluating it takes ~1 ms
        guards = shape_env.produce_guards_expression(fakes)  # type: ignore[arg-type]  # they are FakeTensors
        self.forms.append((kinds, shape_env, guards, run))
        return run


def _merge_duplicates(graph: fx.GraphModule) -> fx.GraphModule:
    # one node per distinct operation and arguments: the gradients of the gate sum's two terms come out
    # of autograd as two casts of the same value, which would be two outputs written in full
    calls = [node for node in graph.graph.nodes if node.op == "call_function"]
    if any(getattr(getattr(node.target, "_schema", None), "is_mutable", False) for node in calls):
        return graph  # an in-place operation: equal calls before and after it may differ
    seen: dict[tuple[Any, ...], fx.Node] = {}
    for node in calls:
        key = (node.target, node.args, tuple(sorted(node.kwargs.items())))
        try:
            twin = seen.get(key)
        except TypeError:  # an argument that cannot be hashed (a list of sizes): left as it is
            continue
        if twin is None:
            seen[key] = node
        else:
            node.replace_all_uses_with(twin)
            graph.graph.erase_node(node)
    graph.recompile()
    return graph


def vjp(fn: _Pure, needs: tuple[bool, ...]) -> _Pure:
    """The vector-Jacobian product of ``fn`` as a pure function of ``fn``'s inputs followed by one
    gradient per output; returns the gradients of the inputs marked in ``needs``, in order."""

    def backward(*tensors: Tensor) -> tuple[Tensor, ...]:
        n = len(needs)
        inputs = [t.detach().requires_grad_(need) for t, need in zip(tensors[:n], needs)]
        with torch.enable_grad():
            outputs = fn(*inputs)
        wanted = [t for t, need in zip(inputs, needs) if need]
        grads = torch.autograd.grad(outputs, wanted, tensors[n:], allow_unused=True)
        # an input the outputs do not depend on gets zeros, so every output of the graph is a tensor
        return tuple(torch.zeros_like(t) if g is None else g for t, g in zip(wanted, grads))

    return backward


def _memory_format(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if t.dim() == 5 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


class Compiled:
    """A gate function's compiled forward, and its compiled backward for each set of inputs that need
    gradients. ``fn`` is the plain function (the fallback when a backward fails to compile)."""

    def __init__(
        self, fn: _Pure, compile_graph: Callable[[fx.GraphModule, list[Tensor], Any], _Pure]
    ) -> None:
        self.fn, self.compile_graph = fn, compile_graph
        self.forward = Traced(fn, compile_graph)
        self.backward_failed = False  # set by the first backward that failed to compile: not tried again
        self._backwards: dict[tuple[bool, ...], Traced] = {}

    def backward(self, needs: tuple[bool, ...]) -> Traced:
        traced = self._backwards.get(needs)
        if traced is None:
            traced = self._backwards[needs] = Traced(vjp(self.fn, needs), self.compile_graph)
        return traced


class GateFunction(torch.autograd.Function):
    """``compiled.forward(*inputs)``, whose backward is ``compiled.backward``: the vector-Jacobian
    product, recomputing the activations from the saved inputs. If that fails to compile,
    ``on_failure(error)`` is told and the plain function's product is used."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, compiled: Compiled, on_failure: Callable[[Exception], None], *inputs: Tensor
    ) -> tuple[Tensor, ...]:
        outputs = compiled.forward(*inputs)
        if len({id(o) for o in outputs}) < len(outputs):  # one buffer returned twice: autograd needs two
            outputs = tuple(
                o.clone() if any(o is p for p in outputs[:k]) else o for k, o in enumerate(outputs)
            )
        ctx.compiled, ctx.on_failure = compiled, on_failure
        ctx.needs = tuple(ctx.needs_input_grad[2:])
        # a gradient autograd materialises for an unused output is contiguous; the others arrive in
        # their output's format, which the backward keeps
        ctx.formats = tuple(_memory_format(o) for o in outputs)
        ctx.save_for_backward(*inputs)
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        grads = tuple(g.contiguous(memory_format=f) for g, f in zip(grads, ctx.formats))
        inputs, needs, compiled = ctx.saved_tensors, ctx.needs, ctx.compiled
        computed = None
        if not compiled.backward_failed:
            try:
                computed = compiled.backward(needs)(*inputs, *grads)
            except Exception as error:  # no C++ compiler, an inductor bug: the plain function's product
                compiled.backward_failed = True
                ctx.on_failure(error)
        if computed is None:
            computed = vjp(compiled.fn, needs)(*inputs, *grads)
        results = iter(computed)
        return (None, None, *(next(results) if need else None for need in needs))
