r"""MV-LSTM: the multi-view LSTM of Rajagopalan, Morency, Baltrušaitis and Goecke, "Extending Long
Short-Term Memory for Multi-View Structured Learning", ECCV 2016 (https://doi.org/10.1007/978-3-319-46478-7_21).

The memory is split by view: view v owns H memory cells, fed by view v's input only. A fraction
``view_specific_fraction`` (the paper's α) of each view's cells are *view-specific*: their gates see
only view v's own previous hidden state. The other cells are *cross-view*: their gates see every
view's previous hidden state. α = 1 gives V independent LSTMs (the paper's "view-specific" topology),
α = 0 lets every cell see every view (its "fully connected" topology), values in between give its
"hybrid" topology.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn

from lstmvision._checks import check_lengths, check_rate
from lstmvision.cells import _fusion
from lstmvision.cells.common import NotScriptable, reversal_index, reverse_time, split_views, view_sizes

__all__ = ["MVLSTMState", "MultiViewLSTM", "MultiViewLSTMCell"]


class MVLSTMState(NamedTuple):
    """Hidden state and memory, each ``(B, V, H)`` in the cell, ``(layers * directions, B, V*H)`` from the layer."""

    h: Tensor
    c: Tensor


class MultiViewLSTMCell(NotScriptable, nn.Module):
    r"""One step of MV-LSTM over V views with H cells per view.

    .. math::
        [i, f, g, o]^v_t = W_v x^v_t + b_v + \sum_u (M \odot U)_{vu} h^u_{t-1}, \quad
        c^v_t = f^v_t \odot c^v_{t-1} + i^v_t \odot g^v_t, \quad h^v_t = o^v_t \odot \tanh(c^v_t)

    with gate order (i, f, g, o) as ``nn.LSTM`` and the mask M keeping, for the view-specific cells of
    view v, only the block u = v.
    The gate arithmetic is one float32 function, compiled on first use under reduced precision
    (``lstmvision.cells.set_gate_fusion``); under autocast ``c`` is kept in float32.

    Args:
        input_size: D, the size of every view's input, or V sizes.
        hidden_size: H, memory cells per view.
        num_views: V >= 1.
        view_specific_fraction: α in [0, 1], the share of each view's cells (rounded to a whole number)
            whose gates see only their own view's previous hidden state.
        bias: per-view gate biases.

    Shape:
        - x_t: ``(B, V, D)`` or V tensors ``(B, D_v)``; state: :class:`MVLSTMState` of ``(B, V, H)``.
        - output: h_t ``(B, V, H)`` and the new state.

    Differences from the paper: the paper also lets the input of one view drive other views' cells in
    some topologies; here a view's input reaches only its own cells, and views talk through the
    recurrent connections alone.
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        hidden_size: int,
        num_views: int,
        *,
        view_specific_fraction: float = 0.5,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.input_sizes = view_sizes(input_size, num_views)
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        if not 0.0 <= view_specific_fraction <= 1.0:
            raise ValueError(f"view_specific_fraction must be in [0, 1], got {view_specific_fraction}")
        V, H = num_views, hidden_size
        self.num_views, self.hidden_size = V, H
        self.num_specific = round(view_specific_fraction * H)
        self.weight_ih = nn.ParameterList(nn.Parameter(torch.empty(4 * H, d)) for d in self.input_sizes)
        self.weight_hh = nn.Parameter(torch.empty(V, 4 * H, V * H))  # rows: view v's gates, columns: all h
        self.bias = nn.Parameter(torch.empty(V, 4 * H)) if bias else None
        mask = torch.ones(V, 4, H, V, H)  # (view, gate, cell, source view, source cell)
        for v in range(V):
            own = torch.zeros(V, H)
            own[v] = 1.0
            mask[v, :, : self.num_specific] = own  # view-specific cells listen to their own view only
        self.register_buffer("mask", mask.reshape(V, 4 * H, V * H), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = self.hidden_size**-0.5  # nn.LSTM's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_gates(self, views: list[Tensor]) -> Tensor:
        """Input part of the gates of every view: V tensors ``(*, D_v)`` -> ``(*, V, 4H)``."""
        gates = torch.stack([x @ w.T for x, w in zip(views, self.weight_ih)], dim=-2)
        return gates if self.bias is None else gates + self.bias

    def recurrent_weight(self) -> Tensor:
        """``U`` cut to the topology by the mask: ``(V, 4H, V*H)``; formed once per sequence."""
        return self.weight_hh * cast(Tensor, self.mask)

    def step(self, gates_x: Tensor, state: MVLSTMState, weight: Tensor | None = None) -> MVLSTMState:
        """Advance one step from the input gates ``(B, V, 4H)``; ``weight`` is :meth:`recurrent_weight`
        (formed here when not given)."""
        B, V, H = state.h.shape
        weight = self.recurrent_weight() if weight is None else weight
        recurrent = torch.einsum("vgk,bk->bvg", weight, state.h.reshape(B, V * H))
        # gates_x + recurrent: (B, V, 4H), gates i, f, g, o along the last axis, summed in one fused
        # function with the gate math (compiled where it helps, docs/mp_lstm.md); c in float32 under autocast
        h, c = _fusion.lstm_gates(gates_x, state.c, -1, _fusion.state_dtype(gates_x), recurrent)
        return MVLSTMState(h, c)

    def init_state(self, x: Tensor) -> MVLSTMState:
        zeros = x.new_zeros(x.shape[0], self.num_views, self.hidden_size)
        return MVLSTMState(zeros, zeros)

    def forward(
        self, x_t: Tensor | Sequence[Tensor], state: MVLSTMState | None = None
    ) -> tuple[Tensor, MVLSTMState]:
        layout = "(B, V, D) or a list of V tensors (B, D_v)"
        views = split_views("MultiViewLSTMCell", self, x_t, self.input_sizes, 2, 1, layout)
        state = self.init_state(views[0]) if state is None else state
        want = (views[0].shape[0], self.num_views, self.hidden_size)
        if tuple(state.h.shape) != want or tuple(state.c.shape) != want:
            raise ValueError(
                f"MultiViewLSTMCell expects a state of (B, V, H) = {want}, got {tuple(state.h.shape)} and {tuple(state.c.shape)}"
            )
        new = self.step(self.input_gates(views), state)
        return new.h, new


class MultiViewLSTM(NotScriptable, nn.Module):
    """Stacked, optionally bidirectional :class:`MultiViewLSTMCell` layers with ``nn.LSTM``'s interface.

    Layers after the first take, as view v's input, view v's hidden state of the layer below (both
    directions concatenated), so the memory stays split by view all the way up.

    Args:
        input_size, hidden_size, num_views, view_specific_fraction, bias: see :class:`MultiViewLSTMCell`.
        num_layers: stacked layers.
        batch_first: ``(B, V, T, D)`` input when True (default), ``(T, B, V, D)`` otherwise.
        dropout: dropout on the inputs of layers after the first, as ``nn.LSTM``.
        bidirectional: add a layer reading each sequence backwards from its last valid step.

    Shape:
        - x: ``(B, V, T, D)`` or V tensors ``(B, T, D_v)``; lengths: ``(B,)`` valid steps or None.
        - output: ``(B, T, V * H * directions)``, for each step the views' hidden states (each view's
          directions side by side); 0 past a sequence's length.
        - final state: h, c of ``(num_layers * directions, B, V * H)``, taken at each sequence's last
          valid step.
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        hidden_size: int,
        num_views: int,
        num_layers: int = 1,
        *,
        view_specific_fraction: float = 0.5,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        check_rate(dropout, "dropout")
        self.input_sizes = view_sizes(input_size, num_views)
        self.num_views, self.hidden_size, self.num_layers = num_views, hidden_size, num_layers
        self.batch_first, self.bidirectional = batch_first, bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        cells = []
        for layer in range(num_layers):
            sizes = self.input_sizes if layer == 0 else [hidden_size * self.num_directions] * num_views
            for _ in range(self.num_directions):
                cells.append(
                    MultiViewLSTMCell(
                        sizes,
                        hidden_size,
                        num_views,
                        view_specific_fraction=view_specific_fraction,
                        bias=bias,
                    )
                )
        self.cells = nn.ModuleList(cells)

    def forward(
        self,
        x: Tensor | Sequence[Tensor],
        state: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, MVLSTMState]:
        layout = "(B, V, T, D) or a list of V tensors (B, T, D_v)"
        if not self.batch_first:
            layout = "(T, B, V, D) or a list of V tensors (T, B, D_v)"
        views = split_views(
            "MultiViewLSTM", self, x, self.input_sizes, 3, 1 if self.batch_first else 2, layout
        )
        views = views if self.batch_first else [v.transpose(0, 1) for v in views]  # V x (B, T, D_v)
        if min(views[0].shape[:2]) < 1:
            raise ValueError(
                f"MultiViewLSTM expects at least one sequence and one step, got {tuple(views[0].shape)}"
            )
        B, T = views[0].shape[:2]
        V, H = self.num_views, self.hidden_size
        lengths = check_lengths(lengths, B, T, views[0].device)
        initial = self._initial_states(state, B)
        backwards = reversal_index(lengths, T, views[0].device)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            if layer > 0:
                views = [self.dropout(v) for v in views]
            outputs = []
            for direction in range(self.num_directions):
                slot = layer * self.num_directions + direction
                cell = self.cells[slot]
                assert isinstance(cell, MultiViewLSTMCell)  # narrows the ModuleList item for mypy
                seq = views if direction == 0 else [reverse_time(v, backwards) for v in views]
                out, final = self._run(cell, seq, initial[slot], lengths)  # (B, T, V, H)
                outputs.append(out if direction == 0 else reverse_time(out, backwards))
                h_n.append(final.h.reshape(B, V * H))
                c_n.append(final.c.reshape(B, V * H))
            both = torch.cat(outputs, dim=-1)  # (B, T, V, H * directions)
            views = list(both.unbind(2))
        output = both.flatten(2)  # (B, T, V * H * directions)
        if not self.batch_first:
            output = output.transpose(0, 1)
        return output, MVLSTMState(torch.stack(h_n), torch.stack(c_n))

    def _run(
        self, cell: MultiViewLSTMCell, views: list[Tensor], state: MVLSTMState | None, lengths: Tensor | None
    ) -> tuple[Tensor, MVLSTMState]:
        B = views[0].shape[0]
        state = cell.init_state(views[0]) if state is None else state
        steps = cell.input_gates(views).unbind(1)  # T x (B, V, 4H): all input projections at once
        weight = cell.recurrent_weight()  # the masked U, once for all steps (not inside the time loop)
        outputs = []
        for t, gates_x in enumerate(steps):
            new = cell.step(gates_x, state, weight)
            h = new.h
            if lengths is not None:
                valid = (t < lengths).view(B, 1, 1)  # sequences past their length keep state, output 0
                new = MVLSTMState(torch.where(valid, new.h, state.h), torch.where(valid, new.c, state.c))
                h = torch.where(valid, h, 0.0)
            state = new
            outputs.append(h)
        return torch.stack(outputs, dim=1), state

    def _initial_states(self, state: object, B: int) -> list[MVLSTMState | None]:
        L = self.num_layers * self.num_directions
        if state is None:
            return [None] * L
        want = (L, B, self.num_views * self.hidden_size)
        if (
            not isinstance(state, (tuple, list))
            or len(state) != 2
            or any(not isinstance(s, Tensor) or tuple(s.shape) != want for s in state)
        ):
            got = (
                [tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in state]
                if isinstance(state, (tuple, list))
                else type(state).__name__
            )
            raise ValueError(f"MultiViewLSTM expects a state (h_0, c_0), each of shape {want}, got {got}")
        h, c = (s.unflatten(-1, (self.num_views, self.hidden_size)) for s in state)
        return [MVLSTMState(h[i], c[i]) for i in range(L)]
