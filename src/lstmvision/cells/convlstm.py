"""Convolutional LSTM (Shi et al., 2015) and its sequence wrapper.

Paper: "Convolutional LSTM Network: A Machine Learning Approach for Precipitation Nowcasting",
https://arxiv.org/abs/1506.04214. Weights map one-to-one to Keras ``ConvLSTM2D`` and, with 1x1 kernels,
to ``torch.nn.LSTM`` (see docs/convlstm.md and ``lstmvision.interop``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision._checks import check_channels, check_input_dtype, check_lengths, check_rate, check_tensor
from lstmvision.cells import _fusion, _pooled
from lstmvision.cells.common import NotScriptable, layer_channels, pair, reversal_index, reverse_time

__all__ = ["ConvLSTM", "ConvLSTMCell", "ConvLSTMState"]

_Pair = int | tuple[int, int]
_Padding = Literal["same", "valid"] | int | tuple[int, int]
# (input-dropout mask, recurrent-dropout mask); None where that dropout is off
_Masks = tuple[Tensor | None, Tensor | None]
# in training under reduced precision on the CPU, input_conv and hidden_conv run as one convolution over
# [x, h] inside a sequence pass (ConvLSTMCell._joined_gates); tests turn it off to compare the two forms
_JOIN_CONVS = True


class ConvLSTMState(NamedTuple):
    """State of one ConvLSTM cell: hidden ``h`` and memory ``c``, each ``(B, Hc, H', W')``."""

    h: Tensor
    c: Tensor


def _tf_same(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    # TF/Keras "same": ceil(size / stride) outputs; an odd total pads one more at the end (bottom/right)
    total = max((math.ceil(size / stride) - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


class ConvLSTMCell(NotScriptable, nn.Module):
    r"""One ConvLSTM step; ``*`` is a convolution, ``∘`` the elementwise product.

    .. math::
        i_t = σ(W_{xi} * x_t + W_{hi} * h_{t-1} + w_{ci} ∘ c_{t-1} + b_i) \\
        f_t = σ(W_{xf} * x_t + W_{hf} * h_{t-1} + w_{cf} ∘ c_{t-1} + b_f) \\
        g_t = \tanh(W_{xg} * x_t + W_{hg} * h_{t-1} + b_g) \\
        c_t = f_t ∘ c_{t-1} + i_t ∘ g_t \\
        o_t = σ(W_{xo} * x_t + W_{ho} * h_{t-1} + w_{co} ∘ c_t + b_o) \\
        h_t = o_t ∘ \tanh(c_t)

    ``input_conv`` holds :math:`W_{x\cdot}` and ``b`` (one call for all four gates, order i, f, g, o as
    ``nn.LSTM``); ``hidden_conv`` holds :math:`W_{h\cdot}` (stride 1, "same" padding, no dilation, no bias).

    The gate arithmetic after the convolutions runs in float32 as one function, compiled on first use
    under reduced precision (``lstmvision.cells.set_gate_fusion``); under autocast ``c`` is kept in
    float32 and ``h`` has the convolutions' dtype. The peephole and layer-norm variants run it op by op.
    In bf16 training on the CPU, inside a sequence pass, the two convolutions run as one of
    ``[W_x, W_h]`` over ``[x, h]`` where their geometry allows ("same" at stride 1, no dilation, no layer
    norm); the parameters stay the two modules' (docs/convlstm.md, "Performance").

    Args:
        in_channels: channels C of ``x_t``.
        hidden_channels: channels Hc of ``h`` and ``c``.
        kernel_size: kernel of both convolutions, int or (kh, kw); even sizes work with "same".
        stride: stride of ``input_conv``; the state lives at its output resolution.
        dilation: dilation of ``input_conv``.
        padding: of ``input_conv``: "same" (TF rule: output ``ceil(H / stride)``, extra row/column at the
            bottom/right), "valid", or explicit int / (ph, pw).
        bias: learn ``b``; the forget part starts at 1 (Keras ``unit_forget_bias``).
        peephole: add the peephole terms :math:`w_{c\cdot}`, one weight per channel, zero at start.
        layer_norm: normalise the input gates, the hidden gates (each gate over its Hc×H'×W' values:
            ``GroupNorm`` with one group per gate) and :math:`c_t` inside the tanh of :math:`h_t`
            (Ba et al., 2016). ``b`` is then the input norm's shift and ``input_conv`` has no bias,
            which the normalisation would mostly cancel.
        dropout: input dropout (Keras ``dropout``), in training only.
        recurrent_dropout: dropout of :math:`h_{t-1}` before ``hidden_conv`` (Keras ``recurrent_dropout``).

    Shape:
        - x_t: ``(B, C, H, W)``, any H, W; state: :class:`ConvLSTMState` of ``(B, Hc, H', W')``.
        - output ``h_t``: ``(B, Hc, H', W')`` with H', W' the ``input_conv`` output size.

    Differences from the reference implementation:
        - Peephole weights are per channel ``(Hc, 1, 1)``, not per pixel ``(Hc, H, W)`` as in the paper,
          so that no parameter depends on the resolution.
        - Dropout uses one mask shared by the four gates (Keras draws one per gate, which would need four
          convolutions); pass ``dropout_masks`` from :meth:`sample_dropout_masks` to keep one mask per
          sequence, otherwise every call draws new masks.
        - A ``None`` state skips ``hidden_conv`` (its input is zero) instead of convolving zeros.
        - Weights keep ``nn.Conv2d``'s initialisation (Keras: Glorot-uniform kernel, orthogonal
          recurrent kernel); the bias starts as Keras's (zeros, forget gate 1).
        - Layer norm (absent from the paper and Keras) normalises per gate over channels and pixels,
          never with per-pixel parameters, so the cell stays resolution independent.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: _Pair = 3,
        *,
        stride: _Pair = 1,
        dilation: _Pair = 1,
        padding: _Padding = "same",
        bias: bool = True,
        peephole: bool = False,
        layer_norm: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(
                "in_channels and hidden_channels must be >= 1, got "
                f"in_channels={in_channels}, hidden_channels={hidden_channels}"
            )
        if layer_norm and not bias:
            raise ValueError("layer_norm=True keeps the gate bias in the norm's shift; it needs bias=True")
        check_rate(dropout, "dropout")
        check_rate(recurrent_dropout, "recurrent_dropout")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride, self.dilation = pair(stride, "stride", 1), pair(dilation, "dilation", 1)
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        if padding in ("same", "valid"):
            self.padding: str | tuple[int, int] = padding  # type: ignore[assignment]
        else:
            self.padding = pair(padding, "padding", 0)  # type: ignore[arg-type]
        gates = 4 * hidden_channels
        # "same" is padded in input_gates: TF's rule depends on H, W once there is a stride
        conv_pad = self.padding if isinstance(self.padding, tuple) else 0
        self.input_conv = nn.Conv2d(
            in_channels,
            gates,
            self.kernel_size,
            self.stride,
            conv_pad,
            self.dilation,
            bias=bias and not layer_norm,
        )
        # Keras's recurrent conv: stride 1, "same", no dilation, so h keeps the output resolution
        pads = [_tf_same(1, k, 1, 1) for k in self.kernel_size]  # (before, after) per axis
        odd = all(before == after for before, after in pads)
        # an even kernel pads one more at the bottom/right, which Conv2d's own padding cannot do
        self._hidden_pad = None if odd else (*pads[1], *pads[0])
        hidden_pad = (pads[0][0], pads[1][0]) if odd else 0
        self.hidden_conv = nn.Conv2d(hidden_channels, gates, self.kernel_size, padding=hidden_pad, bias=False)
        self.peephole_weight = nn.Parameter(torch.zeros(3, hidden_channels, 1, 1)) if peephole else None
        self.norm_x = nn.GroupNorm(4, gates) if layer_norm else None
        self.norm_h = nn.GroupNorm(4, gates) if layer_norm else None
        self.norm_c = nn.GroupNorm(1, hidden_channels) if layer_norm else None
        # the two convolutions can be one over [x, h] where they see the same grid the same way ("same" at
        # stride 1 without dilation) and no norm lies between their terms
        self._joinable = self.padding == "same" and self.stride == (1, 1) and self.dilation == (1, 1)
        self._joinable = self._joinable and not layer_norm
        shift = self.norm_x.bias if self.norm_x is not None else self.input_conv.bias
        if shift is not None:
            with torch.no_grad():
                # forget bias 1 so early training keeps memory (Jozefowicz et al., 2015; Keras default)
                shift.zero_()[hidden_channels : 2 * hidden_channels] = 1.0

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Resolution (H', W') of the state for an ``H × W`` input."""
        size = []
        for n, k, s, d, i in zip((height, width), self.kernel_size, self.stride, self.dilation, (0, 1)):
            pad = _tf_same(n, k, s, d) if self.padding == "same" else (0, 0)
            if isinstance(self.padding, tuple):
                pad = (self.padding[i], self.padding[i])
            size.append((n + sum(pad) - d * (k - 1) - 1) // s + 1)
        if min(size) < 1:
            raise ValueError(f"input {height}x{width} is smaller than the kernel's reach, got output {size}")
        return size[0], size[1]

    def input_gates(self, x: Tensor) -> Tensor:
        """All four input gates of ``(N, C, H, W)`` frames -> ``(N, 4*Hc, H', W')``; no validation."""
        conv = self.input_conv
        if self.padding != "same":
            gates = _pooled.module_conv(conv, _fusion.conv_layout(self.in_channels, x))
        else:
            (top, bottom), (left, right) = (
                _tf_same(n, k, s, d)
                for n, k, s, d in zip(x.shape[-2:], conv.kernel_size, conv.stride, conv.dilation)
            )
            if (top, left) != (bottom, right):  # conv2d pads symmetrically only
                x = F.pad(x, (left, right, top, bottom))
                top = left = 0
            x = _fusion.conv_layout(self.in_channels, x)
            gates = _pooled.conv(x, conv.weight, conv.bias, conv.stride, (top, left), conv.dilation)
        return gates if self.norm_x is None else self.norm_x(gates)

    def init_state(self, x_t: Tensor) -> ConvLSTMState:
        """Zero state at the output resolution of ``x_t`` ``(B, C, H, W)``."""
        self._check_input(x_t)
        B, _, H, W = x_t.shape
        shape = (B, self.hidden_channels, *self.output_size(H, W))
        return ConvLSTMState(x_t.new_zeros(shape), x_t.new_zeros(shape))

    def sample_dropout_masks(self, x_t: Tensor) -> _Masks:
        """Scaled Bernoulli masks for ``x_t`` and ``h``, to reuse at every step; (None, None) in eval."""
        B, C, H, W = x_t.shape
        masks = []
        for rate, shape in (
            (self.dropout, (B, C, H, W)),
            (self.recurrent_dropout, (B, self.hidden_channels, *self.output_size(H, W))),
        ):
            on = self.training and rate > 0.0
            masks.append(x_t.new_empty(shape).bernoulli_(1.0 - rate) / (1.0 - rate) if on else None)
        return masks[0], masks[1]

    def forward(
        self,
        x_t: Tensor,
        state: ConvLSTMState | tuple[Tensor, Tensor] | None = None,
        *,
        gates_x: Tensor | None = None,
        dropout_masks: _Masks | None = None,
    ) -> tuple[Tensor, ConvLSTMState]:
        """One step from ``state`` (``None``: zeros); returns ``(h_t, ConvLSTMState(h_t, c_t))``.

        Args:
            x_t: the frame ``(B, C, H, W)``.
            state: the previous :class:`ConvLSTMState` (or a ``(h, c)`` pair), or ``None``.
            gates_x: ``input_gates(x_t)`` computed beforehand (e.g. for many frames in one call), with
                input dropout already applied; ``x_t`` is then only used for its shape.
            dropout_masks: masks from :meth:`sample_dropout_masks` to reuse across the steps of one
                sequence; ``None`` draws new ones (training only).
        """
        self._check_input(x_t)
        B, _, H, W = x_t.shape
        expected = (B, self.hidden_channels, *self.output_size(H, W))
        if state is not None:
            if len(state) != 2:
                raise ValueError(f"ConvLSTMCell state must be a pair (h, c), got {len(state)} tensors")
            for name, tensor in zip(("h", "c"), state):
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"ConvLSTMCell state {name} must be {expected}, got {tuple(tensor.shape)}"
                    )
        in_mask, rec_mask = dropout_masks if dropout_masks is not None else self.sample_dropout_masks(x_t)
        state = None if state is None else ConvLSTMState(*state)
        if gates_x is None:
            return self._frame_step(x_t if in_mask is None else x_t * in_mask, state, rec_mask)
        if tuple(gates_x.shape) != (B, 4 * expected[1], *expected[2:]):
            raise ValueError(
                f"gates_x must be {(B, 4 * expected[1], *expected[2:])}, got {tuple(gates_x.shape)}"
            )
        return self._step(gates_x, state, rec_mask)

    def _frame_step(
        self, x: Tensor, state: ConvLSTMState | None, rec_mask: Tensor | None
    ) -> tuple[Tensor, ConvLSTMState]:
        # one step from a frame (its input dropout applied): both convolutions joined where that applies
        if state is not None:
            joined = self._joined_weight(x)
            if joined is not None:
                h = state.h if rec_mask is None else state.h * rec_mask
                return self._step(self._joined_gates(x, h, joined), state, rec_mask, summed=True)
        return self._step(self.input_gates(x), state, rec_mask)

    def _joined_weight(self, x: Tensor) -> tuple[Tensor, Tensor | None] | None:
        # [W_x, W_h] and the bias, made once per sequence pass (lstmvision.cells._pooled.joined_weight), with
        # gradients under reduced precision on the CPU for a cell whose convolutions can join. Demo 2x32,
        # bf16, B=16: the training step took 0.93x the time; the forecast took 1.03x, so it is not joined
        # (docs/convlstm.md)
        dtype = _pooled.join_dtype(x)
        if not _JOIN_CONVS or not self._joinable or dtype is None or not torch.is_grad_enabled():
            return None
        if not (_pooled.bare(self.input_conv) and _pooled.bare(self.hidden_conv)):
            return None  # a hook must see its convolution's call, a parametrised weight be read as such
        return _pooled.joined_weight((id(self), "gates"), lambda: self._join(dtype))

    def _join(self, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        # [W_x, W_h] along the input channels, and the bias
        return _pooled.join_weights(
            [self.input_conv.weight, self.hidden_conv.weight], self.input_conv.bias, dtype
        )

    def _joined_gates(self, x: Tensor, h: Tensor, joined: tuple[Tensor, Tensor | None]) -> Tensor:
        # W_x * x + W_h * h + b as [W_x, W_h] * [x, h] + b: hidden_conv's padding then serves both ("same"
        # at stride 1); the pooled weight gradient keeps its slabs under hidden_conv's weight
        padding = cast(tuple[int, int], self.hidden_conv.padding)
        return _pooled.joined_conv([x, h], joined, padding, self.hidden_conv.weight, self._hidden_pad)

    def _step(
        self, gates_x: Tensor, state: ConvLSTMState | None, rec_mask: Tensor | None, *, summed: bool = False
    ) -> tuple[Tensor, ConvLSTMState]:
        # the time loop's fast path: inputs were validated once at the boundary. summed: gates_x holds the
        # hidden convolution's term too (_joined_gates)
        gates_h = None
        if state is None:
            # a zero state adds no conv term and no memory; the hidden norm of zeros is just its shift
            gates = gates_x if self.norm_h is None else gates_x + self.norm_h.bias.view(1, -1, 1, 1)
        elif summed:
            gates = gates_x
        else:
            h = state.h if rec_mask is None else state.h * rec_mask
            h = h if self._hidden_pad is None else F.pad(h, self._hidden_pad)
            gates, gates_h = (
                gates_x,
                _pooled.module_conv(self.hidden_conv, _fusion.conv_layout(self.hidden_channels, h)),
            )
            if self.norm_h is not None:
                gates_h = self.norm_h(gates_h)
        if self.peephole_weight is None and self.norm_c is None:
            # one fused function (compiled where it helps) that also sums the two convolutions' gates;
            # c in fp32 under autocast (docs/convlstm.md)
            dtype = _fusion.state_dtype(gates)
            c_prev = None if state is None else state.c
            h, c = _fusion.lstm_gates(gates, c_prev, 1, dtype, gates_h, eager=state is None)
            return h, ConvLSTMState(h, c)
        if gates_h is not None:
            gates = gates + gates_h
        # peepholes and the norm of c sit between the gates: these variants keep the op-by-op form
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, Hc, H', W')
        if self.peephole_weight is not None and state is not None:
            i = i + self.peephole_weight[0] * state.c
            f = f + self.peephole_weight[1] * state.c
        c = torch.sigmoid(i) * torch.tanh(g)
        if state is not None:
            c = c + torch.sigmoid(f) * state.c
        if self.peephole_weight is not None:
            o = o + self.peephole_weight[2] * c
        h = torch.sigmoid(o) * torch.tanh(c if self.norm_c is None else self.norm_c(c))
        return h, ConvLSTMState(h, c)

    def _check_input(self, x_t: Tensor) -> None:
        check_tensor("ConvLSTMCell", x_t, "x_t")
        if x_t.dim() != 4:
            raise ValueError(f"ConvLSTMCell expects x_t (B, C, H, W), got shape {tuple(x_t.shape)}")
        check_input_dtype("ConvLSTMCell", x_t, self)
        check_channels("ConvLSTMCell", x_t, self.in_channels, 1)


class ConvLSTM(NotScriptable, nn.Module):
    r"""Stacked, optionally bidirectional :class:`ConvLSTMCell` over clips, with ``nn.LSTM``'s interface.

    Layer ``l`` in direction ``d`` is ``cells[l * D + d]`` (D = 2 if bidirectional else 1), the row
    order of ``h_n``. A layer's input is the previous layer's output, both directions concatenated on
    channels, after dropout in training (``dropout``, as ``nn.LSTM``).

    Args:
        in_channels: channels C of a frame.
        hidden_channels: Hc of every layer (int) or one per layer (a list, whose length is then L).
        kernel_size, stride, dilation, padding, bias, peephole, layer_norm: every cell's options
            (:class:`ConvLSTMCell`); a stride downsamples again in every layer.
        num_layers: stacked layers L; ``None`` (default): the length of a ``hidden_channels`` list, else
            1. Given with a list, it must equal the list's length.
        batch_first: ``x`` is ``(B, T, ...)``; else ``(T, B, ...)``. States are always batch second.
        bidirectional: add a layer reading each clip backwards from its own last valid step.
        dropout: dropout on the outputs of every layer but the last (``nn.LSTM``'s ``dropout``).
        input_dropout: Keras ``dropout`` inside every cell, one mask per sequence.
        recurrent_dropout: Keras ``recurrent_dropout`` inside every cell, one mask per sequence.
        go_backwards: read clips reversed (each within its length) and return outputs in that order,
            as Keras ``go_backwards``; the reversal happens once, before the first layer.
        hoist_input_conv: compute each layer's ``input_conv`` in one call over all B·T frames instead
            of once per step; off by default, slower on the CPU measured (docs/convlstm.md).

    Shape:
        - x: ``(B, T, C, H, W)``; lengths: ``(B,)`` integers in ``[1, T]``.
        - returned ``(h_n, c_n)``: always two tuples of ``L * D`` tensors, row ``l * D + d`` of shape
          ``(B, Hc_l, H'_l, W'_l)`` (``nn.LSTM``'s row order), whatever the layer widths;
          ``torch.stack(h_n)`` is ``nn.LSTM``'s ``(L * D, B, ...)`` tensor when every layer has one shape.
        - state ``(h_0, c_0)``: the same tuples (or lists), or, when every layer has one shape, stacked
          tensors ``(L * D, B, Hc, H', W')`` as ``nn.LSTM`` takes them.
        - output: ``(B, T, D * Hc_last, H'_L, W'_L)``, zero at steps past a clip's length.

    Differences from the reference implementation:
        - ``h_n`` and ``c_n`` are tuples of per-layer tensors, not ``nn.LSTM``'s stacked tensors: layers
          may differ in width or resolution, and one return type whatever the widths is less surprising
          than a type that changes with them.
        - ``dropout`` is ``nn.LSTM``'s (between layers); Keras's ``dropout`` is ``input_dropout`` here.
        - ``go_backwards`` with several layers reverses once, where stacked Keras layers that each have
          ``go_backwards=True`` would reverse again at every layer.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int | Sequence[int],
        kernel_size: _Pair = 3,
        num_layers: int | None = None,
        *,
        batch_first: bool = True,
        bidirectional: bool = False,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        stride: _Pair = 1,
        dilation: _Pair = 1,
        padding: _Padding = "same",
        bias: bool = True,
        peephole: bool = False,
        layer_norm: bool = False,
        go_backwards: bool = False,
        hoist_input_conv: bool = False,
    ) -> None:
        super().__init__()
        hidden = layer_channels(hidden_channels, num_layers)
        num_layers = len(hidden)
        check_rate(dropout, "dropout")
        self.in_channels, self.hidden_channels, self.num_layers = in_channels, hidden, num_layers
        self.batch_first, self.bidirectional, self.go_backwards = batch_first, bidirectional, go_backwards
        self.dropout, self.hoist_input_conv = dropout, hoist_input_conv
        self.num_directions = D = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            ConvLSTMCell(
                in_channels if layer == 0 else D * hidden[layer - 1],
                hidden[layer],
                kernel_size,
                stride=stride,
                dilation=dilation,
                padding=padding,
                bias=bias,
                peephole=peephole,
                layer_norm=layer_norm,
                dropout=input_dropout,
                recurrent_dropout=recurrent_dropout,
            )
            for layer in range(num_layers)
            for _ in range(D)
        )

    def forward(
        self,
        x: Tensor,
        state: tuple[Tensor | Sequence[Tensor], Tensor | Sequence[Tensor]] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]:
        """Run every layer over the clips; returns ``(output, (h_n, c_n))``, ``h_n`` and ``c_n`` tuples of
        ``L * D`` per-layer tensors (see the class docstring)."""
        x = self._check_input(x)
        B, T, _, H, W = x.shape
        lengths = check_lengths(lengths, B, T, x.device)
        cells = cast("list[ConvLSTMCell]", list(self.cells))
        shapes: list[tuple[int, int, int, int]] = []
        for cell in cells:  # resolution after each layer; both directions of a layer agree
            if len(shapes) % self.num_directions == 0:
                H, W = cell.output_size(H, W)
            shapes.append((B, cell.hidden_channels, H, W))
        states = self._initial_states(state, shapes)
        # a step at or past min_len may be padding; before it no clip needs masking
        min_len = T if lengths is None else int(lengths.min())
        index = reversal_index(lengths, T, x.device)
        if self.go_backwards:
            x = reverse_time(x, index)
        h_n, c_n = [], []
        with _pooled.sequence_pass():  # one weight-gradient computation (or cast) per weight for all steps
            for layer in range(self.num_layers):
                outputs = []
                for d in range(self.num_directions):
                    k = layer * self.num_directions + d
                    seq = x if d == 0 else reverse_time(x, index)
                    out, last = self._run(cells[k], seq, states[k], lengths, min_len)
                    outputs.append(out if d == 0 else reverse_time(out, index))
                    h_n.append(last.h)
                    c_n.append(last.c)
                x = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]  # (B, T, D*Hc, H', W')
                if layer < self.num_layers - 1 and self.dropout > 0.0:
                    x = F.dropout(x, self.dropout, self.training)
        output = x if self.batch_first else x.transpose(0, 1)
        return output, (tuple(h_n), tuple(c_n))

    def _run(
        self, cell: ConvLSTMCell, x: Tensor, state: ConvLSTMState | None, lengths: Tensor | None, min_len: int
    ) -> tuple[Tensor, ConvLSTMState]:
        B, T = x.shape[:2]
        in_mask, rec_mask = cell.sample_dropout_masks(x[:, 0])  # drawn once: the same at every step
        if in_mask is not None:
            x = x * in_mask.unsqueeze(1)  # (B, 1, C, H, W) broadcast over T
        # unbind, not x[:, t]: each indexing op's backward writes a full (B, T, ...) gradient, O(T^2)
        if self.hoist_input_conv:
            steps = cell.input_gates(x.flatten(0, 1)).unflatten(0, (B, T)).unbind(1)  # T x (B, 4*Hc, H', W')
        else:
            steps = x.unbind(1)  # T x (B, C, H, W)
        outputs = []
        for t, step in enumerate(steps):
            if self.hoist_input_conv:
                h, new = cell._step(step, state, rec_mask)
            else:
                h, new = cell._frame_step(step, state, rec_mask)
            if t >= min_len and lengths is not None and state is not None:
                valid = (t < lengths).view(B, 1, 1, 1)  # clips past their length keep state, output 0
                new = ConvLSTMState(torch.where(valid, new.h, state.h), torch.where(valid, new.c, state.c))
                h = torch.where(valid, h, 0.0)
            state = new
            outputs.append(h)
        return torch.stack(outputs, dim=1), new  # (B, T, Hc, H', W')

    def _check_input(self, x: Tensor) -> Tensor:
        check_tensor("ConvLSTM", x)
        layout = "(B, T, C, H, W)" if self.batch_first else "(T, B, C, H, W)"
        if x.dim() != 5:
            raise ValueError(f"ConvLSTM expects x {layout}, got shape {tuple(x.shape)}")
        check_input_dtype("ConvLSTM", x, self)
        check_channels("ConvLSTM", x, self.in_channels, 2)
        x = x if self.batch_first else x.transpose(0, 1)  # (B, T, C, H, W)
        if x.shape[1] < 1 or x.shape[0] < 1:
            raise ValueError(f"ConvLSTM expects at least one clip and one step, got shape {tuple(x.shape)}")
        return x

    def _initial_states(
        self, state: object, shapes: list[tuple[int, int, int, int]]
    ) -> list[ConvLSTMState | None]:
        if state is None:
            return [None] * len(shapes)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"state must be a pair (h_0, c_0), got {type(state).__name__}")
        uniform = len(set(shapes)) == 1
        want = (len(shapes), *shapes[0]) if uniform else shapes
        rows = []
        for name, part in zip(("h_0", "c_0"), state):
            if isinstance(part, Tensor):  # a stacked tensor only fits layers of one shape
                got: object = tuple(part.shape)
                fits = uniform and got == want
            else:
                got = [tuple(p.shape) for p in part]
                fits = got == shapes
            if not fits:
                raise ValueError(f"{name} must have shape {want}, got {got}")
            rows.append(list(part))
        return [ConvLSTMState(h, c) for h, c in zip(*rows)]
