"""Spatiotemporal LSTM, the cell of PredRNN (Wang et al., 2017), and its zigzag stack.

Paper: "PredRNN: Recurrent Neural Networks for Predictive Learning using Spatiotemporal LSTMs",
NeurIPS 2017, https://papers.nips.cc/paper/6689; release: https://github.com/thuml/predrnn-pytorch.
Equations, memory flow and every difference from both are in docs/predrnn.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision._checks import check_channels, check_input_dtype, check_lengths, check_rate, check_tensor
from lstmvision.cells import _fusion, _pooled
from lstmvision.cells.common import (
    NotScriptable,
    layer_channels,
    memory_channels_of,
    pair,
    reversal_index,
    reverse_time,
)

__all__ = ["SpatioTemporalLSTM", "SpatioTemporalLSTMCell", "SpatioTemporalLSTMState"]

# a state part given for several rows (layers x directions): stacked in one tensor, or one tensor per row
_Rows = Tensor | Sequence[Tensor]
# under reduced precision on the CPU, the input convolution's gates and the hidden (or memory) convolution
# run as one convolution over [x, h] (or [x, M_in]) inside a sequence pass (SpatioTemporalLSTMCell._joined_gates);
# tests turn it off to compare the two forms
_JOIN_CONVS = True


class SpatioTemporalLSTMState(NamedTuple):
    """State of one ST-LSTM layer after a step, each ``(B, Hc, H, W)``.

    ``m`` is the spatiotemporal memory this layer produced (:math:`M^l_t`), handed to the layer above (or
    from the top layer to layer 0 at the next step); the layer itself never reads it again.
    """

    h: Tensor
    c: Tensor
    m: Tensor


class _Joined(NamedTuple):
    """The input convolution's gate rows joined with the hidden and the memory convolutions' weights
    (``SpatioTemporalLSTMCell._joined_weights``), with the gate biases."""

    gates: Tensor  # (4*Hc, C_in + Hc, kh, kw)
    gates_bias: Tensor | None
    memory: Tensor  # (3*Hc, C_in + C_mem, kh, kw)
    memory_bias: Tensor | None


class _Terms(NamedTuple):
    """A step's pre-activation terms: (i, f, g, o) from the input ``(B, 4*Hc, H, W)`` and from ``h``
    (``None``: no state, or added in already), (i', f', g') from the input and from ``M_in`` (``None``
    likewise), and ``M_in`` as the ``f'_t ⊙ M_in`` term reads it (``None`` without a memory)."""

    gates: Tensor
    gates_h: Tensor | None
    gates_m: Tensor
    gates_mem: Tensor | None
    carried: Tensor | None


class SpatioTemporalLSTMCell(NotScriptable, nn.Module):
    r"""One spatiotemporal LSTM step; ``*`` is a convolution, ``⊙`` the elementwise product.

    .. math::
        i_t = σ(W_{xi} * X_t + W_{hi} * H_{t-1} + b_i), \quad
        f_t = σ(W_{xf} * X_t + W_{hf} * H_{t-1} + b_f), \quad
        g_t = \tanh(W_{xg} * X_t + W_{hg} * H_{t-1} + b_g) \\
        C_t = f_t ⊙ C_{t-1} + i_t ⊙ g_t \\
        i'_t = σ(W'_{xi} * X_t + W_{mi} * M_{in} + b'_i), \quad
        f'_t = σ(W'_{xf} * X_t + W_{mf} * M_{in} + b'_f), \quad
        g'_t = \tanh(W'_{xg} * X_t + W_{mg} * M_{in} + b'_g) \\
        M_t = f'_t ⊙ M_{in} + i'_t ⊙ g'_t \\
        o_t = σ(W_{xo} * X_t + W_{ho} * H_{t-1} + W_{co} * C_t + W_{mo} * M_t + b_o) \\
        H_t = o_t ⊙ \tanh(W_{1×1} * [C_t, M_t])

    :math:`M_{in}` is the ``memory`` argument: in a stack, the memory the layer below produced at this
    step, or the top layer's from the previous step for the bottom layer. ``input_conv`` holds the
    seven :math:`W_{x\cdot}` and ``b`` with rows (i, f, g, o, i', f', g'), so its first four match
    ``hidden_conv`` (rows i, f, g, o, as ``nn.LSTM``); ``memory_conv`` holds :math:`W_{m\cdot}` (rows
    i', f', g'); ``output_conv`` holds :math:`[W_{co}, W_{mo}]` and ``fuse_conv`` the 1×1 kernel.

    The gate arithmetic runs in float32 in two fused functions (``C_t``, ``M_t``, then ``H_t``), compiled
    on first use under reduced precision (``lstmvision.cells.set_gate_fusion``), every variant included;
    under autocast ``c`` and ``m`` are kept in float32 and ``h`` has the convolutions' dtype. Under reduced
    precision on the CPU, inside a sequence pass and without layer norm, the input convolution runs joined
    with the hidden and the memory ones (``[W_x, W_h]`` over ``[x, h]``, ``[W'_x, W_m]`` over
    ``[x, M_in]``); the parameters stay the modules' (docs/predrnn.md, "Joined convolutions").

    Args:
        in_channels: channels C of ``x_t``.
        hidden_channels: channels Hc of ``h``, ``c`` and the memory it produces.
        kernel_size: of every convolution but the 1×1 ``fuse_conv`` and ``memory_proj``, int or
            (kh, kw); "same" padding, stride 1; even sizes pad the extra row/column at the bottom/right.
        memory_channels: channels of the incoming memory (default Hc). When it differs, ``memory_proj``
            (1×1, no bias) maps :math:`M_{in}` to Hc channels for the :math:`f'_t ⊙ M_{in}` term.
        bias: learn ``b`` (all seven gates); the forget parts f, f' start at 1.
        layer_norm: normalise every gate's pre-activation terms per source (``GroupNorm`` with one
            group per gate, over its Hc×H×W values); ``b`` is then the input norm's shift.

    Shape:
        - x_t: ``(B, C, H, W)``, any H, W; state: :class:`SpatioTemporalLSTMState` of ``(B, Hc, H, W)``;
          memory: ``(B, memory_channels, H, W)``.
        - output ``h_t`` and every part of the returned state: ``(B, Hc, H, W)``.

    Differences from the reference implementation:
        - One learnable bias per gate, zero at start but f, f' at 1; the release adds a constant 1.0 to
          f and f' at every step (and its first version has a bias on every convolution).
        - Layer norm is ``GroupNorm`` per gate, never ``nn.LayerNorm([k*Hc, H, W])`` over all gates with
          per-pixel parameters, so the cell is not tied to one frame size.
        - Even kernels keep the state's size (the release's padding does not).
        - A ``None`` state or memory skips ``hidden_conv`` or ``memory_conv`` (their input is zero).
        - ``memory_channels`` / ``memory_proj`` let stacked layers differ in width.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | tuple[int, int] = 5,
        *,
        memory_channels: int | None = None,
        bias: bool = True,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        memory_channels = memory_channels_of(in_channels, hidden_channels, memory_channels)
        if layer_norm and not bias:
            raise ValueError("layer_norm=True keeps the gate bias in the norm's shift; it needs bias=True")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.memory_channels = memory_channels
        self.kernel_size = kh, kw = pair(kernel_size, "kernel_size", 1)
        Hc = hidden_channels
        # "same" at stride 1: an even kernel pads one more at the bottom/right, which Conv2d cannot do
        odd = kh % 2 == 1 and kw % 2 == 1
        self._pad = None if odd else ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2)
        pad = (kh // 2, kw // 2) if odd else 0

        def conv(cin: int, cout: int, with_bias: bool = False) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, self.kernel_size, padding=pad, bias=with_bias)

        self.input_conv = conv(in_channels, 7 * Hc, bias and not layer_norm)
        self.hidden_conv = conv(Hc, 4 * Hc)
        self.memory_conv = conv(memory_channels, 3 * Hc)
        self.output_conv = conv(2 * Hc, Hc)
        self.fuse_conv = nn.Conv2d(2 * Hc, Hc, 1, bias=False)
        self.memory_proj = None if memory_channels == Hc else nn.Conv2d(memory_channels, Hc, 1, bias=False)
        self.norm_x = nn.GroupNorm(7, 7 * Hc) if layer_norm else None
        self.norm_h = nn.GroupNorm(4, 4 * Hc) if layer_norm else None
        self.norm_m = nn.GroupNorm(3, 3 * Hc) if layer_norm else None
        self.norm_o = nn.GroupNorm(1, Hc) if layer_norm else None
        shift = self.norm_x.bias if self.norm_x is not None else self.input_conv.bias
        if shift is not None:
            with torch.no_grad():
                # forget biases (rows f and f') at 1, the release's forget_bias, so memories persist early on
                shift.zero_()[Hc : 2 * Hc] = 1.0
                shift[5 * Hc : 6 * Hc] = 1.0

    def init_state(self, x_t: Tensor) -> SpatioTemporalLSTMState:
        """Zero state for ``x_t`` ``(B, C, H, W)``."""
        self._check_input(x_t)
        B, _, H, W = x_t.shape
        zeros = x_t.new_zeros(B, self.hidden_channels, H, W)
        return SpatioTemporalLSTMState(zeros, zeros.clone(), zeros.clone())

    def forward(
        self, x_t: Tensor, state: SpatioTemporalLSTMState | None = None, memory: Tensor | None = None
    ) -> tuple[Tensor, SpatioTemporalLSTMState]:
        """One step; returns ``(h_t, SpatioTemporalLSTMState(h_t, c_t, m_t))``.

        Args:
            x_t: the input ``(B, C, H, W)``.
            state: this layer's state after the previous step (its ``m`` is not read), or ``None``
                for zeros.
            memory: the incoming spatiotemporal memory :math:`M_{in}`, or ``None`` for zeros.
        """
        self._check_input(x_t)
        B, _, H, W = x_t.shape
        expected = (B, self.hidden_channels, H, W)
        if state is not None:
            if len(state) != 3:
                raise ValueError(f"SpatioTemporalLSTMCell state must be (h, c, m), got {len(state)} tensors")
            for name, tensor in zip(("h", "c", "m"), state):
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"SpatioTemporalLSTMCell state {name} must be {expected}, got {tuple(tensor.shape)}"
                    )
        if memory is not None and tuple(memory.shape) != (B, self.memory_channels, H, W):
            raise ValueError(
                f"SpatioTemporalLSTMCell memory must be {(B, self.memory_channels, H, W)}, "
                f"got {tuple(memory.shape)}"
            )
        h, c, m = self._step(x_t, None if state is None else (state[0], state[1]), memory)
        return h, SpatioTemporalLSTMState(h, c, m)

    def _conv(self, conv: nn.Conv2d, x: Tensor) -> Tensor:
        x = _fusion.conv_layout(conv.in_channels, x if self._pad is None else F.pad(x, self._pad))
        return _pooled.module_conv(conv, x)

    def _step(
        self, x_t: Tensor, state: tuple[Tensor, Tensor] | None, memory: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        # the time loop's fast path: the caller validated the shapes; returns (h_t, c_t, m_t)
        terms = self._gates(x_t, state, memory)
        ifg, o = self._split(terms.gates)
        ifg_h, o_h = (None, None) if terms.gates_h is None else self._split(terms.gates_h)
        # the gate arithmetic in two fused functions (compiled where it helps, docs/predrnn.md), which add
        # the terms left apart: c, m and [C_t, M_t] (B, 2*Hc, H, W) in the gates' dtype, then h; a missing
        # state or memory runs eagerly
        c, m, cm = _fusion.dual_memory(
            ifg,
            terms.gates_m,
            None,
            None if state is None else state[1],
            terms.carried,
            _fusion.state_dtype(ifg),
            ifg_h,
            terms.gates_mem,
            eager=state is None or memory is None,
        )
        return self._output(o, cm, o_h), c, m

    def _step_increments(
        self, x_t: Tensor, state: tuple[Tensor, Tensor] | None, memory: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        # _step that also returns the memory increments Δc = i_t ⊙ g_t and Δm = i'_t ⊙ g'_t (PredRNN-v2)
        terms = self._gates(x_t, state, memory)
        ifg, o = self._split(terms.gates)
        ifg_h, o_h = (None, None) if terms.gates_h is None else self._split(terms.gates_h)
        c, m, cm, delta_c, delta_m = _fusion.dual_memory_increments(
            ifg,
            terms.gates_m,
            None,
            None if state is None else state[1],
            terms.carried,
            _fusion.state_dtype(ifg),
            ifg_h,
            terms.gates_mem,
            eager=state is None or memory is None,
        )
        return self._output(o, cm, o_h), c, m, delta_c, delta_m

    def _split(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        # (i, f, g) (B, 3*Hc, H, W) and o (B, Hc, H, W) by one split, whose backward joins both gradients
        # in their channels-last format. A slice of o alone had its backward write into zeros in the
        # contiguous format, so the whole gates' gradient came back contiguous and each pooled weight
        # gradient converted it again (docs/predrnn.md)
        Hc = self.hidden_channels
        ifg, o = gates.split([3 * Hc, Hc], dim=1)
        return ifg, o

    def _gates(self, x_t: Tensor, state: tuple[Tensor, Tensor] | None, memory: Tensor | None) -> _Terms:
        Hc = self.hidden_channels
        if state is not None and memory is not None:
            joined = self._joined_weights(x_t)
            if joined is not None:
                return self._joined_gates(x_t, state[0], memory, joined)
        gates_x = self._conv(self.input_conv, x_t)  # (B, 7*Hc, H, W): i, f, g, o, i', f', g'
        if self.norm_x is not None:
            gates_x = self.norm_x(gates_x)
        gates, gates_m = gates_x.split([4 * Hc, 3 * Hc], dim=1)  # (B, 4*Hc, H, W), (B, 3*Hc, H, W)
        # Without gradients (forecasts, validation) the convolutions' terms stay apart and the fused gate
        # functions add them, in float32 and in no pass of their own: a PredRNN 4x64 bf16 forecast took
        # 610 ms against 637. With gradients they are added here: apart, the hidden term's gradient took one
        # more concatenation a step (its split's backward) and the training step measured 5-9 % slower
        # (docs/predrnn.md). A zero input adds no conv term; with layer norm the norm of zeros is its shift
        apart = not torch.is_grad_enabled()
        gates_h = gates_mem = None
        if state is not None:
            gates_h = self._conv(self.hidden_conv, state[0])
            if self.norm_h is not None:
                gates_h = self.norm_h(gates_h)
            if not apart or self.norm_h is not None:
                gates, gates_h = gates + gates_h, None
        elif self.norm_h is not None:
            gates = gates + self.norm_h.bias.view(1, -1, 1, 1)
        if memory is not None:
            gates_mem = self._conv(self.memory_conv, memory)
            if self.norm_m is not None:
                gates_mem = self.norm_m(gates_mem)
            if not apart or self.norm_m is not None:
                gates_m, gates_mem = gates_m + gates_mem, None
        elif self.norm_m is not None:
            gates_m = gates_m + self.norm_m.bias.view(1, -1, 1, 1)
        return _Terms(gates, gates_h, gates_m, gates_mem, None if memory is None else self._carried(memory))

    def _carried(self, memory: Tensor) -> Tensor:
        # M_in as the f'_t ⊙ M_in term reads it: through memory_proj where the memory is wider or narrower
        if self.memory_proj is None:
            return memory
        return _pooled.module_conv(self.memory_proj, _fusion.conv_layout(self.memory_channels, memory))

    def _joined_weights(self, x_t: Tensor) -> _Joined | None:
        # [W_x(i, f, g, o), W_h] and [W_x(i', f', g'), W_m] with the gate biases, made once per sequence
        # pass (lstmvision.cells._pooled.joined_weight), where they apply: reduced precision on the CPU,
        # no layer norm (each term is normed apart), inside a sequence pass. None elsewhere
        dtype = _pooled.join_dtype(x_t)
        if not _JOIN_CONVS or self.norm_x is not None or dtype is None:
            return None
        if not all(_pooled.bare(conv) for conv in (self.input_conv, self.hidden_conv, self.memory_conv)):
            return None  # a hook must see its convolution's call, a parametrised weight be read as such
        gates = _pooled.joined_weight((id(self), "gates"), lambda: self._join(self.hidden_conv, 0, dtype))
        memory = _pooled.joined_weight((id(self), "memory"), lambda: self._join(self.memory_conv, 4, dtype))
        return None if gates is None or memory is None else _Joined(*gates, *memory)

    def _join(self, conv: nn.Conv2d, first: int, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        # the input convolution's gate rows from `first` (in units of Hc) beside conv's weight, and those
        # rows' bias
        rows = slice(first * self.hidden_channels, first * self.hidden_channels + conv.out_channels)
        bias = self.input_conv.bias
        return _pooled.join_weights(
            [self.input_conv.weight[rows], conv.weight], None if bias is None else bias[rows], dtype
        )

    def _joined_gates(self, x_t: Tensor, h: Tensor, memory: Tensor, joined: _Joined) -> _Terms:
        # (i, f, g, o) = [W_x, W_h] * [x, h] + b and (i', f', g') = [W'_x, W_m] * [x, M_in] + b': one
        # convolution each instead of three and two adds. PredRNN 4x64, bf16, B=16: the training step took
        # 0.94x the time (its weight gradients pooled), the forecast 0.94x (docs/predrnn.md). The joined
        # convolutions share the input convolution's kernel and padding; each weight's pooled gradient keeps
        # its slabs under the convolution joined with the input one
        padding = cast(tuple[int, int], self.input_conv.padding)
        gates = _pooled.joined_conv(
            [x_t, h], (joined.gates, joined.gates_bias), padding, self.hidden_conv.weight, self._pad
        )
        gates_m = _pooled.joined_conv(
            [x_t, memory], (joined.memory, joined.memory_bias), padding, self.memory_conv.weight, self._pad
        )
        return _Terms(gates, None, gates_m, None, self._carried(memory))

    def _output(self, o: Tensor, cm: Tensor, o_h: Tensor | None) -> Tensor:
        # H_t = σ(o + W_co * C_t + W_mo * M_t) ⊙ tanh(W_1x1 * [C_t, M_t]), cm = [C_t, M_t] (B, 2*Hc, H, W);
        # o_h: the hidden convolution's o term where it was left apart from o
        gates_o = self._conv(self.output_conv, cm)
        o_term = gates_o if self.norm_o is None else self.norm_o(gates_o)
        fused = _pooled.module_conv(self.fuse_conv, cm)
        return _fusion.output_gate(o, o_term, fused, o_h)

    def _check_input(self, x_t: Tensor, who: str = "SpatioTemporalLSTMCell") -> None:
        _check_frames(x_t, self, who, "x_t (B, C, H, W)")


class SpatioTemporalLSTM(NotScriptable, nn.Module):
    r"""Stacked :class:`SpatioTemporalLSTMCell` over clips with the zigzag memory, ``nn.LSTM``-like.

    At step t, layer 0 receives the memory the top layer produced at t-1 (zeros, or ``m_0``, at the
    first step) and layer l > 0 the memory layer l-1 has just produced; each layer reads the hidden
    state of the layer below as input. Layer ``l`` of direction ``d`` is ``cells[l * D + d]`` (the row
    order of ``h_n``. ``bidirectional=True`` builds two such stacks, the second reading each clip
    backwards from its own last valid step; their top outputs are concatenated on channels.

    Args:
        in_channels: channels C of a frame.
        hidden_channels: Hc of every layer (int) or one per layer (a list, whose length is then L).
        kernel_size, bias, layer_norm: every cell's options (:class:`SpatioTemporalLSTMCell`).
        num_layers: stacked layers L; ``None`` (default): the length of a ``hidden_channels`` list, else
            1. Given with a list, it must equal the list's length.
        batch_first: ``x`` is ``(B, T, ...)``, else ``(T, B, ...)``; states are always batch second.
        dropout: on each layer's ``h`` before the next layer reads it (not the top's), training only.
        bidirectional: add a stack that reads each clip reversed.

    Shape:
        - x: ``(B, T, C, H, W)``; lengths: ``(B,)`` integers in ``[1, T]``.
        - output: ``(B, T, D * Hc_top, H, W)``, zero at steps past a clip's length.
        - returned ``(h_n, c_n, m_n)``: ``h_n``, ``c_n`` tuples of ``L * D`` tensors ``(B, Hc_l, H, W)``
          in ``nn.LSTM``'s row order whatever the widths (``torch.stack(h_n)`` is ``nn.LSTM``'s
          ``(L * D, B, Hc, H, W)`` when every layer has one width), ``m_n`` ``(D, B, Hc_top, H, W)``.
        - state ``(h_0, c_0, m_0)``: the same tuples (or lists), or stacked tensors when every layer has
          one width; ``m_0`` ``(D, B, Hc_top, H, W)``.

    Differences from the reference implementation:
        - ``bidirectional``, ``dropout``, ``lengths`` and initial states are not in the release. The two
          directions do not exchange outputs between layers (``nn.LSTM``'s do): with the zigzag every
          layer of a direction depends on the previous step of all its layers.
        - Layers may differ in width: each cell maps its incoming memory with ``memory_proj``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int | Sequence[int],
        kernel_size: int | tuple[int, int] = 5,
        num_layers: int | None = None,
        *,
        batch_first: bool = True,
        bias: bool = True,
        layer_norm: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        hidden = layer_channels(hidden_channels, num_layers)
        num_layers = len(hidden)
        check_rate(dropout, "dropout")
        self.in_channels, self.hidden_channels, self.num_layers = in_channels, hidden, num_layers
        self.batch_first, self.dropout, self.bidirectional = batch_first, dropout, bidirectional
        self.num_directions = D = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            SpatioTemporalLSTMCell(
                in_channels if layer == 0 else hidden[layer - 1],
                hidden[layer],
                kernel_size,
                memory_channels=hidden[layer - 1],  # layer 0: the top layer's (hidden[-1])
                bias=bias,
                layer_norm=layer_norm,
            )
            for layer in range(num_layers)
            for _ in range(D)
        )

    def step(
        self, x_t: Tensor, states: list[SpatioTemporalLSTMState] | None, *, direction: int = 0
    ) -> tuple[Tensor, list[SpatioTemporalLSTMState]]:
        """One time step through every layer of one direction; returns ``(h_top, new states)``.

        ``states`` holds one :class:`SpatioTemporalLSTMState` per layer from the previous step (``None``
        at the first: zeros); layer 0 reads ``states[-1].m``, the top layer's memory.
        """
        cells = self._checked_step(x_t, states, direction)
        hs, cs, ms = self._advance(
            cells,
            x_t,
            None if states is None else [s[0] for s in states],
            None if states is None else [s[1] for s in states],
            None if states is None else states[-1][2],
        )
        return hs[-1], [SpatioTemporalLSTMState(*s) for s in zip(hs, cs, ms)]

    def step_increments(
        self, x_t: Tensor, states: list[SpatioTemporalLSTMState] | None, *, direction: int = 0
    ) -> tuple[Tensor, list[SpatioTemporalLSTMState], list[tuple[Tensor, Tensor]]]:
        """:meth:`step` that also returns each layer's memory increments ``(Δc, Δm)``, bottom first:
        ``Δc = i_t ⊙ g_t`` and ``Δm = i'_t ⊙ g'_t``, each ``(B, Hc_l, H, W)`` (PredRNN-v2's decoupling
        loss reads them). The states are those :meth:`step` returns; dropout between layers applies."""
        cells = self._checked_step(x_t, states, direction)
        drop = self.training and self.dropout > 0.0
        hs = None if states is None else [s[0] for s in states]
        cs = None if states is None else [s[1] for s in states]
        memory = None if states is None else states[-1][2]
        new_states, increments = [], []
        inp = x_t
        for layer, cell in enumerate(cells):
            if layer > 0 and drop:
                inp = F.dropout(inp, self.dropout, training=True)
            state = None if hs is None or cs is None else (hs[layer], cs[layer])
            inp, c, memory, delta_c, delta_m = cell._step_increments(inp, state, memory)
            new_states.append(SpatioTemporalLSTMState(inp, c, memory))
            increments.append((delta_c, delta_m))
        return inp, new_states, increments

    def _checked_step(
        self, x_t: Tensor, states: list[SpatioTemporalLSTMState] | None, direction: int
    ) -> list[SpatioTemporalLSTMCell]:
        # the cells of one direction, after checking x_t and the shapes of the given states
        cells = self._direction(direction)
        cells[0]._check_input(x_t, "SpatioTemporalLSTM.step")
        B, _, H, W = x_t.shape
        if states is not None:
            if len(states) != self.num_layers:
                raise ValueError(f"states must hold {self.num_layers} layer states, got {len(states)}")
            for layer, (state, Hc) in enumerate(zip(states, self.hidden_channels)):
                if len(state) != 3:
                    raise ValueError(f"states[{layer}] must be (h, c, m), got {len(state)} tensors")
                for name, tensor in zip(("h", "c", "m"), state):
                    if tuple(tensor.shape) != (B, Hc, H, W):
                        raise ValueError(
                            f"states[{layer}].{name} must be {(B, Hc, H, W)}, got {tuple(tensor.shape)}"
                        )
        return cells

    def forward(
        self,
        x: Tensor,
        state: tuple[_Rows, _Rows, _Rows] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, tuple[_Rows, _Rows, Tensor]]:
        """Run every layer over the clips; returns ``(output, (h_n, c_n, m_n))``."""
        layout = "x (B, T, C, H, W)" if self.batch_first else "x (T, B, C, H, W)"
        _check_frames(x, self, "SpatioTemporalLSTM", layout)
        if x.numel() == 0:
            raise ValueError(f"SpatioTemporalLSTM expects a non-empty {layout}, got shape {tuple(x.shape)}")
        x = x if self.batch_first else x.transpose(0, 1)  # (B, T, C, H, W)
        B, T, _, H, W = x.shape
        lengths = check_lengths(lengths, B, T, x.device)
        L, D = self.num_layers, self.num_directions
        shapes = [(B, Hc, H, W) for Hc in self.hidden_channels for _ in range(D)]  # row l * D + d
        initial = self._initial_state(state, shapes)
        # a step at or past min_len may be padding; before it no clip needs masking
        min_len = T if lengths is None else int(lengths.min())
        index = reversal_index(lengths, T, x.device)
        outputs, finals = [], []
        with _pooled.sequence_pass():  # one weight-gradient computation (or cast) per weight for all steps
            for d in range(D):
                rows = slice(d, L * D, D)  # this direction's rows of h_0 / h_n: layer l at l * D + d
                start = (
                    (None, None, None)
                    if initial is None
                    else (initial[0][rows], initial[1][rows], initial[2][d])
                )
                out, last = self._run(d, x if d == 0 else reverse_time(x, index), start, lengths, min_len)
                outputs.append(out if d == 0 else reverse_time(out, index))
                finals.append(last)
        y = torch.cat(outputs, dim=2) if D > 1 else outputs[0]  # (B, T, D*Hc_top, H, W)
        y = y if self.batch_first else y.transpose(0, 1)
        h_n = [finals[d][0][layer] for layer in range(L) for d in range(D)]  # nn.LSTM's row order
        c_n = [finals[d][1][layer] for layer in range(L) for d in range(D)]
        m_n = torch.stack([last[2] for last in finals])  # (D, B, Hc_top, H, W)
        # one type whatever the widths (as ConvLSTM): torch.stack(h_n) gives nn.LSTM's layout when they agree
        return y, (tuple(h_n), tuple(c_n), m_n)

    def _run(
        self,
        direction: int,
        x: Tensor,
        start: tuple[list[Tensor] | None, list[Tensor] | None, Tensor | None],
        lengths: Tensor | None,
        min_len: int,
    ) -> tuple[Tensor, tuple[list[Tensor], list[Tensor], Tensor]]:
        # one direction over the clips (B, T, C, H, W); returns the top outputs and the final (hs, cs, m)
        cells, B = self._direction(direction), x.shape[0]
        hs, cs, memory = start
        outputs = []
        for t, x_t in enumerate(x.unbind(1)):  # unbind, not x[:, t]: O(T) backward, not O(T^2)
            new_h, new_c, new_m = self._advance(cells, x_t, hs, cs, memory)
            h, m = new_h[-1], new_m[-1]  # the top layer's, m feeds layer 0 at t + 1 (the zigzag)
            if t >= min_len and lengths is not None and hs is not None and cs is not None:
                valid = (t < lengths).view(B, 1, 1, 1)  # finished clips keep their state, output 0
                new_h = [torch.where(valid, new, old) for new, old in zip(new_h, hs)]
                new_c = [torch.where(valid, new, old) for new, old in zip(new_c, cs)]
                m = torch.where(valid, m, memory)  # type: ignore[arg-type]
                h = torch.where(valid, h, 0.0)
            hs, cs, memory = new_h, new_c, m
            outputs.append(h)
        return torch.stack(outputs, dim=1), (new_h, new_c, m)  # (B, T, Hc_top, H, W)

    def _direction(self, direction: int) -> list[SpatioTemporalLSTMCell]:
        if direction not in range(self.num_directions):
            raise ValueError(f"direction must be in [0, {self.num_directions - 1}], got {direction}")
        return cast("list[SpatioTemporalLSTMCell]", list(self.cells)[direction :: self.num_directions])

    def _advance(
        self,
        cells: list[SpatioTemporalLSTMCell],
        x_t: Tensor,
        hs: list[Tensor] | None,
        cs: list[Tensor] | None,
        memory: Tensor | None,
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        # one step up one direction's stack, no validation: the memory climbs from layer to layer
        drop = self.training and self.dropout > 0.0
        new_h, new_c, new_m = [], [], []
        inp = x_t
        for layer, cell in enumerate(cells):
            if layer > 0 and drop:
                inp = F.dropout(inp, self.dropout, training=True)
            state = None if hs is None or cs is None else (hs[layer], cs[layer])
            inp, c, memory = cell._step(inp, state, memory)
            new_h.append(inp)
            new_c.append(c)
            new_m.append(memory)
        return new_h, new_c, new_m

    def _initial_state(
        self, state: object, shapes: list[tuple[int, int, int, int]]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]] | None:
        if state is None:
            return None
        if not isinstance(state, (tuple, list)) or len(state) != 3:
            raise ValueError(f"state must be a triple (h_0, c_0, m_0), got {type(state).__name__}")
        B, _, H, W = shapes[0]
        top = (B, self.hidden_channels[-1], H, W)
        expected = {"h_0": shapes, "c_0": shapes, "m_0": [top] * self.num_directions}
        parts = []
        for (name, rows), part in zip(expected.items(), state):
            # a stacked tensor (rows, ...) fits only rows of one shape; a list fits row by row
            stacked = (len(rows), *rows[0]) if len(set(rows)) == 1 else None
            got = tuple(part.shape) if isinstance(part, Tensor) else [tuple(p.shape) for p in part]
            if got not in (stacked, rows):
                raise ValueError(f"{name} must have shape {stacked or rows}, got {got}")
            parts.append(list(part))
        return parts[0], parts[1], parts[2]


def _check_frames(x: Tensor, module: nn.Module, who: str, layout: str) -> None:
    # x is (..., C, H, W) with as many leading axes as the layout names
    channels: int = module.in_channels  # type: ignore[assignment]
    check_tensor(who, x, layout.split(" ")[0])
    if x.dim() != layout.count(",") + 1:
        raise ValueError(f"{who} expects {layout}, got shape {tuple(x.shape)}")
    check_input_dtype(who, x, module)
    check_channels(who, x, channels, -3)
