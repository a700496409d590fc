"""Multi-Perspective LSTM (Sepas-Moghaddam et al., 2021) and its sequence wrapper.

Paper: "Multi-Perspective LSTM for Joint Visual Representation Learning", CVPR 2021,
https://arxiv.org/abs/2105.02802. V views share one state (h, c): every view has its own input
weights, all views share the recurrent weights, and the views write into the memory one after
another. With one view the cell is exactly ``torch.nn.LSTM`` (see docs/mp_lstm.md and
:meth:`MultiPerspectiveLSTM.from_lstm`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision._checks import check_lengths, check_rate
from lstmvision.cells import _fusion
from lstmvision.cells.common import NotScriptable, reversal_index, reverse_time, split_views, view_sizes

__all__ = ["MPLSTMState", "MultiPerspectiveLSTM", "MultiPerspectiveLSTMCell"]

_Views = Tensor | Sequence[Tensor]
# (one input-dropout mask per view, recurrent-dropout mask); None where that dropout is off
_Masks = tuple[list[Tensor] | None, Tensor | None]


class MPLSTMState(NamedTuple):
    """Shared hidden ``h`` and memory ``c``: ``(B, H)`` in the cell, ``(L * D, B, H)`` from the wrapper."""

    h: Tensor
    c: Tensor


class MultiPerspectiveLSTMCell(NotScriptable, nn.Module):
    r"""One MP-LSTM step over V views that share one state; ``⊙`` is the elementwise product.

    .. math::
        [i^k, f^k, g^k, o^k] = W_k s^k + b_k + U h_{t-1} \quad (k = 1..V) \\
        c^0 = c_{t-1}, \quad c^k = σ(f^k + p_f^k ⊙ c^{k-1}) ⊙ c^{k-1} + σ(i^k + p_i^k ⊙ c^{k-1}) ⊙ \tanh(g^k) \\
        c_t = c^V, \quad y^k = σ(o^k + p_o^k ⊙ c_t) ⊙ \tanh(c_t), \quad h_t = \sum_k y^k \ (\text{or mean})

    ``weight_ih[k]`` is :math:`W_k` ``(4H, D_k)``, ``bias[k]`` is :math:`b_k` (it plays the role of
    ``nn.LSTM``'s ``bias_ih + bias_hh``), ``weight_hh`` is the shared :math:`U` ``(4H, H)``; rows in gate
    order (i, f, g, o) as ``nn.LSTM``. :math:`U h_{t-1}` is computed once per step for all views.
    The peephole terms ``peephole_weight[k] = (p_i^k, p_f^k, p_o^k)`` exist only with ``peepholes=True``.
    Without peepholes the gate arithmetic is one float32 function, compiled on first use under reduced
    precision (``lstmvision.cells.set_gate_fusion``; under autocast ``c`` stays float32); with
    peepholes it runs op by op.

    Args:
        input_size: features D of every view (int) or of each view (``num_views`` ints).
        hidden_size: H of ``h`` and ``c``.
        num_views: V >= 1.
        bias: learn :math:`b_k`.
        peepholes: per-view diagonal peepholes, zero at start; i and f look at the memory entering the
            view's update :math:`c^{k-1}`, o at the final :math:`c_t` (o multiplies :math:`\tanh(c_t)`).
        output_reduction: :math:`h_t` is the sum (default, as the paper) or the mean of the :math:`y^k`.
        dropout: input dropout of each view, an independent mask per view (Keras ``dropout``).
        recurrent_dropout: dropout of :math:`h_{t-1}` before :math:`U` (Keras ``recurrent_dropout``).

    Shape:
        - x_t: ``(B, V, D)`` or V tensors ``(B, D_k)``; state: :class:`MPLSTMState` of ``(B, H)``.
        - output ``h_t``: ``(B, H)``; :meth:`forward_views` also returns :math:`y` ``(B, V, H)``.

    Differences from the reference implementation (the authors' Keras/TensorFlow release):
        - Any V >= 1 views, where the release hard-wires 3.
        - g has its own recurrent weights (the g rows of U); the release computes it with the forget
          gate's recurrent weights.
        - Each view has its own input-dropout mask (the release shares one across views), and
          ``recurrent_dropout`` is applied (the release silently ignores it).
        - Peephole targets (above) and the mean reduction are choices the paper leaves open.
        - Initialisation as ``nn.LSTM``: every weight and bias uniform in ±1/√H, no forget-bias offset.
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        hidden_size: int,
        num_views: int,
        *,
        bias: bool = True,
        peepholes: bool = False,
        output_reduction: Literal["sum", "mean"] = "sum",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_sizes = view_sizes(input_size, num_views)
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        if output_reduction not in ("sum", "mean"):
            raise ValueError(f"output_reduction must be 'sum' or 'mean', got {output_reduction!r}")
        check_rate(dropout, "dropout")
        check_rate(recurrent_dropout, "recurrent_dropout")
        self.hidden_size, self.num_views, self.output_reduction = hidden_size, num_views, output_reduction
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        H = hidden_size
        self.weight_ih = nn.ParameterList(nn.Parameter(torch.empty(4 * H, d)) for d in self.input_sizes)
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias = nn.Parameter(torch.empty(num_views, 4 * H)) if bias else None
        self.peephole_weight = nn.Parameter(torch.empty(num_views, 3, H)) if peepholes else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.LSTM``'s initialisation (uniform ±1/√H); peepholes zero."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            nn.init.zeros_(p) if name == "peephole_weight" else nn.init.uniform_(p, -bound, bound)

    def input_gates(self, views: Sequence[Tensor]) -> Tensor:
        """:math:`W_k s^k + b_k` of V views ``(..., D_k)`` -> ``(..., V, 4H)``; any leading axes, no checks."""
        gates = [
            F.linear(s, w, None if self.bias is None else self.bias[k])
            for k, (s, w) in enumerate(zip(views, self.weight_ih))
        ]
        return torch.stack(gates, dim=-2)

    def init_state(self, x_t: _Views) -> MPLSTMState:
        """Zero state, batch/device/dtype from ``x_t``."""
        first = self._views(x_t)[0]
        zeros = first.new_zeros(first.shape[0], self.hidden_size)
        return MPLSTMState(zeros, zeros.clone())

    def sample_dropout_masks(self, views: Sequence[Tensor]) -> _Masks:
        """Scaled Bernoulli masks, one per view ``(B, D_k)`` and one for h ``(B, H)``; None where off."""
        B = views[0].shape[0]

        def mask(rate: float, size: int) -> Tensor:
            return views[0].new_empty(B, size).bernoulli_(1.0 - rate) / (1.0 - rate)

        on = self.training and self.dropout > 0.0
        view_masks = [mask(self.dropout, d) for d in self.input_sizes] if on else None
        rec = (
            mask(self.recurrent_dropout, self.hidden_size)
            if self.training and self.recurrent_dropout
            else None
        )
        return view_masks, rec

    def forward(
        self,
        x_t: _Views,
        state: MPLSTMState | tuple[Tensor, Tensor] | None = None,
        *,
        dropout_masks: _Masks | None = None,
    ) -> tuple[Tensor, MPLSTMState]:
        """One step from ``state`` (``None``: zeros); returns ``(h_t, MPLSTMState(h_t, c_t))``."""
        h, _, new = self.forward_views(x_t, state, dropout_masks=dropout_masks)
        return h, new

    def forward_views(
        self,
        x_t: _Views,
        state: MPLSTMState | tuple[Tensor, Tensor] | None = None,
        *,
        dropout_masks: _Masks | None = None,
    ) -> tuple[Tensor, Tensor, MPLSTMState]:
        """As :meth:`forward`, also returning the per-view outputs :math:`y` ``(B, V, H)``.

        ``dropout_masks`` from :meth:`sample_dropout_masks` keeps one mask per sequence; ``None`` draws
        new ones at this call (training only).
        """
        views = self._views(x_t)
        expected = (views[0].shape[0], self.hidden_size)
        if state is not None:
            if len(state) != 2:
                raise ValueError(
                    f"MultiPerspectiveLSTMCell state must be a pair (h, c), got {len(state)} tensors"
                )
            for name, tensor in zip(("h", "c"), state):
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"MultiPerspectiveLSTMCell state {name} must be {expected}, got {tuple(tensor.shape)}"
                    )
        view_masks, rec_mask = (
            dropout_masks if dropout_masks is not None else self.sample_dropout_masks(views)
        )
        if view_masks is not None:
            views = [s * m for s, m in zip(views, view_masks)]
        return self._step(self.input_gates(views), None if state is None else MPLSTMState(*state), rec_mask)

    def _step(
        self, gates_x: Tensor, state: MPLSTMState | None, rec_mask: Tensor | None
    ) -> tuple[Tensor, Tensor, MPLSTMState]:
        # the time loop's fast path: gates_x (B, V, 4H) was computed (and checked) before the loop
        c: Tensor | None = None
        gates = gates_x
        if state is not None:  # a zero state adds neither U h nor memory
            h = state.h if rec_mask is None else state.h * rec_mask
            gates = gates_x + F.linear(h, self.weight_hh).unsqueeze(1)  # U h once, broadcast over V
            c = state.c
        p = self.peephole_weight  # (V, 3, H)
        if p is None:
            # no gate looks at the memory: one fused function (compiled where it helps, docs/mp_lstm.md);
            # c in float32 under autocast
            mean, dtype = self.output_reduction == "mean", _fusion.state_dtype(gates)
            h_t, y, c = _fusion.mp_gates(gates, c, mean, dtype, eager=c is None)
            return h_t, y, MPLSTMState(h_t, c)
        # peepholes read the memory between the views' gates: this variant stays op by op
        z = gates.unflatten(-1, (4, self.hidden_size))  # (B, V, 4, H): gates i, f, g, o on dim 2
        g = torch.tanh(z[:, :, 2])  # (B, V, H)
        i, f, _, o = z.unbind(2)  # each (B, V, H), before the sigmoid
        for k in range(self.num_views):
            ik, fk = i[:, k], f[:, k]
            ik = torch.sigmoid(ik if c is None else ik + p[k, 0] * c)  # p_i^k looks at c^{k-1}
            fk = torch.sigmoid(fk if c is None else fk + p[k, 1] * c)
            c = ik * g[:, k] if c is None else fk * c + ik * g[:, k]
        o = torch.sigmoid(o + p[:, 2] * cast(Tensor, c).unsqueeze(1))  # p_o^k looks at the final c_t
        c = cast(Tensor, c)
        y = o * torch.tanh(c).unsqueeze(1)  # (B, V, H)
        h_t = y.sum(1) if self.output_reduction == "sum" else y.mean(1)
        return h_t, y, MPLSTMState(h_t, c)

    def _views(self, x_t: _Views) -> list[Tensor]:
        layout = "(B, V, D) or a list of V tensors (B, D_k)"
        return split_views("MultiPerspectiveLSTMCell", self, x_t, self.input_sizes, 2, 1, layout)


class MultiPerspectiveLSTM(NotScriptable, nn.Module):
    r"""Stacked, optionally bidirectional :class:`MultiPerspectiveLSTMCell` over sequences, ``nn.LSTM``-like.

    Layer ``l`` in direction ``d`` is ``cells[l * D + d]`` (D = 2 if bidirectional else 1), the row order
    of ``h_n``. The first layer reads the V views. Every later layer is multi-perspective too: its view
    k reads the per-view outputs :math:`y^k` of the layer below, both directions concatenated (``D * H``
    features), after ``dropout`` in training (independent elements, so independent per view). The
    returned ``output`` is the reduced :math:`h` of the last layer, both directions concatenated. The
    backward direction has its own parameters and reads each sequence from its own last valid step.

    Args:
        input_size, hidden_size, num_views, bias, peepholes, output_reduction: every cell's options
            (:class:`MultiPerspectiveLSTMCell`); ``input_size`` applies to the first layer.
        num_layers: stacked layers L.
        batch_first: ``x`` is ``(B, V, T, D)`` (V tensors ``(B, T, D_k)``); else ``(T, B, V, D)``
            (V tensors ``(T, B, D_k)``). States are always batch second.
        dropout: dropout on the inputs of every layer but the first (``nn.LSTM``'s ``dropout``).
        bidirectional: add a direction reading each sequence backwards.
        input_dropout: each view's input dropout inside every cell, one mask per view and sequence.
        recurrent_dropout: dropout of :math:`h_{t-1}` inside every cell, one mask per sequence.

    Shape:
        - x: ``(B, V, T, D)`` or V tensors ``(B, T, D_k)``; lengths: ``(B,)`` integers in ``[1, T]``.
        - state ``(h_0, c_0)`` and returned ``MPLSTMState(h_n, c_n)``: each ``(L * D, B, H)``.
        - output: ``(B, T, D * H)``, zero at steps past a sequence's length.

    Differences from the reference implementation: those of the cell; the release has one layer and one
    direction, the stacking through per-view outputs is this library's choice.
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        hidden_size: int,
        num_views: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        peepholes: bool = False,
        output_reduction: Literal["sum", "mean"] = "sum",
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        check_rate(dropout, "dropout")
        check_rate(input_dropout, "input_dropout")  # named here: the cells call it `dropout`
        self.input_sizes = view_sizes(input_size, num_views)
        self.hidden_size, self.num_views, self.num_layers = hidden_size, num_views, num_layers
        self.batch_first, self.bidirectional, self.dropout = batch_first, bidirectional, dropout
        self.num_directions = D = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            MultiPerspectiveLSTMCell(
                input_size if layer == 0 else D * hidden_size,
                hidden_size,
                num_views,
                bias=bias,
                peepholes=peepholes,
                output_reduction=output_reduction,
                dropout=input_dropout,
                recurrent_dropout=recurrent_dropout,
            )
            for layer in range(num_layers)
            for _ in range(D)
        )

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM) -> MultiPerspectiveLSTM:
        """The one-view MP-LSTM that computes exactly what ``lstm`` does, its weights copied.

        ``weight_ih_l{l}`` -> ``weight_ih[0]``, ``weight_hh_l{l}`` -> ``weight_hh`` and
        ``bias_ih_l{l} + bias_hh_l{l}`` -> ``bias[0]`` of ``cells[l * D]`` (``_reverse``: ``cells[l * D + 1]``).
        """
        if lstm.proj_size:
            raise ValueError(f"from_lstm needs an nn.LSTM without projection, got proj_size={lstm.proj_size}")
        model = cls(
            lstm.input_size,
            lstm.hidden_size,
            1,
            lstm.num_layers,
            bias=lstm.bias,
            batch_first=lstm.batch_first,
            dropout=lstm.dropout,
            bidirectional=lstm.bidirectional,
        )
        weight = next(lstm.parameters())
        model.to(weight.device, weight.dtype)
        with torch.no_grad():
            for n, cell in enumerate(cast("list[MultiPerspectiveLSTMCell]", list(model.cells))):
                suffix = f"_l{n // model.num_directions}" + ("_reverse" if n % model.num_directions else "")
                cell.weight_ih[0].copy_(getattr(lstm, "weight_ih" + suffix))
                cell.weight_hh.copy_(getattr(lstm, "weight_hh" + suffix))
                if cell.bias is not None:
                    cell.bias[0].copy_(getattr(lstm, "bias_ih" + suffix) + getattr(lstm, "bias_hh" + suffix))
        return model

    def forward(
        self,
        x: _Views,
        state: MPLSTMState | tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, MPLSTMState]:
        """Run every layer over the sequences; returns ``(output, MPLSTMState(h_n, c_n))`` as ``nn.LSTM``."""
        views = self._views(x)
        B, T = views[0].shape[:2]
        lengths = check_lengths(lengths, B, T, views[0].device)
        states = self._initial_states(state, B)
        cells = cast("list[MultiPerspectiveLSTMCell]", list(self.cells))
        # a step at or past min_len may be padding; before it no sequence needs masking
        min_len = T if lengths is None else int(lengths.min())
        index = reversal_index(lengths, T, views[0].device)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            last_layer = layer == self.num_layers - 1
            outputs, view_outputs = [], []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                out, y, final = self._run(
                    cells[k], views, states[k], lengths, min_len, d == 1, index, last_layer
                )
                outputs.append(out)
                view_outputs.append(y)
                h_n.append(final.h)
                c_n.append(final.c)
            if not last_layer:
                y = torch.cat(view_outputs, dim=-1)  # (B, T, V, D*H)
                if self.dropout > 0.0:
                    y = F.dropout(y, self.dropout, self.training)
                views = list(y.unbind(2))  # V x (B, T, D*H)
        output = torch.cat(outputs, dim=-1)  # (B, T, D*H)
        output = output if self.batch_first else output.transpose(0, 1)
        return output, MPLSTMState(torch.stack(h_n), torch.stack(c_n))

    def _run(
        self,
        cell: MultiPerspectiveLSTMCell,
        views: list[Tensor],
        state: MPLSTMState | None,
        lengths: Tensor | None,
        min_len: int,
        backward: bool,
        index: Tensor | None,
        last_layer: bool,
    ) -> tuple[Tensor, Tensor, MPLSTMState]:
        B = views[0].shape[0]
        view_masks, rec_mask = cell.sample_dropout_masks([v[:, 0] for v in views])  # once per sequence
        if view_masks is not None:
            views = [v * m.unsqueeze(1) for v, m in zip(views, view_masks)]  # (B, 1, D_k) broadcast over T
        # every view's input projection for all steps before the loop (cuDNN's trick): (B, T, V, 4H);
        # a per-step map commutes with the time reversal, so the backward direction reverses the gates
        gates_x = cell.input_gates(views)
        if backward:
            gates_x = reverse_time(gates_x, index)
        outputs, view_outputs = [], []
        new = state
        # unbind, not gates_x[:, t]: each indexing op's backward writes a full (B, T, ...) gradient, O(T^2)
        for t, gates_t in enumerate(gates_x.unbind(1)):
            h, y, new = cell._step(gates_t, state, rec_mask)
            if t >= min_len and lengths is not None and state is not None:
                valid = (t < lengths).view(B, 1)  # sequences past their length keep state, output 0
                new = MPLSTMState(torch.where(valid, new.h, state.h), torch.where(valid, new.c, state.c))
                h = torch.where(valid, h, 0.0)
                y = torch.where(valid.unsqueeze(1), y, 0.0)
            state = new
            outputs.append(h)
            if not last_layer:  # only the next layer reads the per-view outputs
                view_outputs.append(y)
        out = torch.stack(outputs, dim=1)  # (B, T, H)
        y_all = torch.stack(view_outputs, dim=1) if view_outputs else out.new_empty(0)  # (B, T, V, H)
        if backward:
            out = reverse_time(out, index)
            y_all = y_all if last_layer else reverse_time(y_all, index)
        return out, y_all, cast(MPLSTMState, new)

    def _views(self, x: _Views) -> list[Tensor]:
        who = "MultiPerspectiveLSTM"
        layout = "(B, V, T, D) or a list of V tensors (B, T, D_k)"
        if not self.batch_first:
            layout = "(T, B, V, D) or a list of V tensors (T, B, D_k)"
        views = split_views(who, self, x, self.input_sizes, 3, 1 if self.batch_first else 2, layout)
        views = views if self.batch_first else [v.transpose(0, 1) for v in views]  # V x (B, T, D_k)
        if min(views[0].shape[:2]) < 1:
            raise ValueError(
                f"{who} expects at least one sequence and one step, got view shape {tuple(views[0].shape)}"
            )
        return views

    def _initial_states(self, state: object, B: int) -> list[MPLSTMState | None]:
        rows = self.num_layers * self.num_directions
        if state is None:
            return [None] * rows
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"state must be a pair (h_0, c_0), got {type(state).__name__}")
        want = (rows, B, self.hidden_size)
        for name, part in zip(("h_0", "c_0"), state):
            got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
            if got != want:
                raise ValueError(f"{name} must have shape {want}, got {got}")
        return [MPLSTMState(h, c) for h, c in zip(*state)]
