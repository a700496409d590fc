"""Eidetic 3D LSTM (Wang et al., ICLR 2019): the cell and its sequence wrapper.

Paper: "Eidetic 3D LSTM: A Model for Video Prediction and Beyond", https://openreview.net/forum?id=B1lKS2AqtX;
TensorFlow release: https://github.com/google/e3d_lstm. docs/e3d_lstm.md gives the equations, the recall
attention and every deviation from the paper and from the release.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision._checks import check_channels, check_input_dtype, check_lengths, check_tensor
from lstmvision.cells import _fusion, _pooled
from lstmvision.cells.common import NotScriptable, layer_channels, memory_channels_of

__all__ = ["Eidetic3DLSTM", "Eidetic3DLSTMCell", "Eidetic3DLSTMState"]


class Eidetic3DLSTMState(NamedTuple):
    """State of one E3D-LSTM cell; ``h``, ``c``, ``m`` are ``(B, Hc, w, H, W)``.

    ``history`` ``(B, Hc, n*w, H, W)`` holds the cell states the next step recalls over, oldest first,
    concatenated on the time axis (``n <= recall_window``).
    """

    h: Tensor
    c: Tensor
    m: Tensor
    history: Tensor


def _channels_last(x: Tensor) -> Tensor:
    """``x`` channels-last for a 3-D convolution (no copy when it already is).

    fp32 3-D convolutions, forward and backward, ran 1.17-1.65x faster channels-last than in the default
    layout at every shape of the shipped configs (docs/e3d_lstm.md, "Precision"). The gates, states and
    history inherit the layout, so the recall's channel vectors are contiguous without a copy.
    """
    return x.contiguous(memory_format=torch.channels_last_3d)


# Under CPU bf16 autocast the recall runs in bf16 from this many channels and in float32 below: forward +
# backward of the fused kernel, 2 threads, bf16 time over fp32 time was 1.11-2.38 at 32 channels (B 4-16,
# 128-512 queries, 256-1,024 keys), 0.82-1.00 at 64 and 0.83 at 128 (docs/e3d_lstm.md, "Precision")
_RECALL_BF16_FROM = 64


def _recall(r: Tensor, history: Tensor) -> Tensor:
    """``softmax(R Kᵀ) K``: each (time, y, x) position of ``r`` attends over all positions of ``history``."""
    B, Hc, w, H, W = r.shape
    # channels last, then positions flattened, so a row is the channel vector at one (time, y, x);
    # reshaping (B, Hc, ...) straight to (B, -1, Hc) would mix channels with positions
    q = r.permute(0, 2, 3, 4, 1).reshape(B, 1, w * H * W, Hc)  # (B, 1 head, w·H·W, Hc)
    k = history.permute(0, 2, 3, 4, 1).reshape(B, 1, -1, Hc)  # (B, 1 head, n·w·H·W, Hc)
    # no 1/sqrt(Hc) (the paper has none). The fused kernel, which never forms the (w·H·W) × (n·w·H·W)
    # weights, needs 4-D inputs with contiguous channels; otherwise the math kernel runs (docs/e3d_lstm.md)
    q, k = q.contiguous(), k.contiguous()
    if Hc < _RECALL_BF16_FROM and q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        # narrow channels: the CPU's fused kernel ran 1.1-2.4x faster in float32 than under bf16 autocast
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), k.float(), scale=1.0)
    else:
        out = F.scaled_dot_product_attention(q, k, k, scale=1.0)  # (B, 1, w·H·W, Hc)
    return out.view(B, w, H, W, Hc).permute(0, 4, 1, 2, 3)  # (B, Hc, w, H, W)


class Eidetic3DLSTMCell(NotScriptable, nn.Module):
    r"""One E3D-LSTM step on a window of ``w`` frames; ``*`` is a 3-D convolution, ``∘`` elementwise.

    .. math::
        i, r, g = σ(W_{xi} * X_t + W_{hi} * H_{t-1} + b_i), σ(W_{xr} * X_t + …), \tanh(W_{xg} * X_t + …) \\
        C_t = i ∘ g + \mathrm{LN}(C_{t-1} + \mathrm{softmax}(r\,\mathcal{C}^{\top})\,\mathcal{C}),
            \quad \mathcal{C} = C_{t-τ:t-1} \\
        i', f', g' = σ(W'_{xi} * X_t + W_{mi} * M_{in} + b'_i), σ(… + b'_f), \tanh(… + b'_g) \\
        M_t = i' ∘ g' + f' ∘ M_{in} \\
        o = σ(W_{xo} * X_t + W_{ho} * H_{t-1} + W_{co} * C_t + W_{mo} * M_t + b_o) \\
        H_t = o ∘ \tanh(W_{1×1×1} * [C_t, M_t])

    ``M_in`` is the memory of the layer below at this step (the top layer's at ``t-1`` for the bottom
    layer). The recall treats each channel vector at one (time, y, x) position as a query, over every
    position of the last τ cell states (``history``), without scaling. The history starts as one zero
    cell state (as in the release); ``recall_window=None`` keeps it and every later state.

    ``input_conv`` holds the seven ``x`` terms in the order (i, r, g, o, i', f', g') — ``nn.LSTM``'s
    (i, f, g, o) with the recall gate r in the forget gate's place, then the memory gates — and the
    gate bias; ``hidden_conv`` (i, r, g, o), ``memory_conv`` (i', f', g'), ``output_conv`` (``W_co``,
    ``W_mo`` on ``[C_t, M_t]``) and the 1×1×1 ``fuse_conv`` have no bias. Kernels are
    ``(w, filter, filter)`` with TensorFlow "same" padding (even sizes: the extra zero after).

    The gate arithmetic runs in float32 in two fused functions (``C_t``, ``M_t``, then ``H_t``), compiled
    on first use under reduced precision (``lstmvision.cells.set_gate_fusion``); under autocast ``c``,
    ``m`` and the history are kept in float32, ``h`` has the convolutions' dtype, and the recall runs in
    autocast's bf16, measured faster than float32 (docs/e3d_lstm.md). The kernels are stored and the
    convolutions run channels-last (``torch.channels_last_3d``), so the states come back in that layout.

    Args:
        in_channels: channels C of ``x_t``.
        hidden_channels: channels Hc of ``h``, ``c`` and ``m``.
        filter_size: spatial kernel, int or (kh, kw).
        window_length: frames w per step, also the kernel's temporal size.
        recall_window: past steps τ the recall attends over; ``None`` keeps every step.
        memory_channels: channels of ``M_in`` (default Hc); if they differ from Hc, a 1×1×1
            ``memory_proj`` (no bias) maps ``M_in`` to Hc channels for ``f' ∘ M_in``.
        layer_norm: normalise each gate's convolution output over its Hc×w×H×W values (``GroupNorm``
            with one group per gate); the gate bias is then the input norm's shift. The ``LN`` of the
            ``C_t`` equation is part of the model and always applied (``norm_recall``).
        bias: learn the gate bias; the ``f'`` part starts at 1.

    Shape:
        - x_t: ``(B, C, w, H, W)``, any H, W; ``memory``: ``(B, memory_channels, w, H, W)``.
        - output ``h_t`` and state: :class:`Eidetic3DLSTMState` of ``(B, Hc, w, H, W)``.

    Differences from the reference implementation (the TensorFlow release):
        - It returns the *old* memory (``M`` stays zero, ``memory_conv``'s kernel never learns); this cell
          returns the new ``M_t``.
        - Its memory update is ``f' ∘ tanh(W_mm * M_in) + i' ∘ g'`` with a fourth memory convolution;
          this cell follows the paper's ``f' ∘ M_in``.
        - Its output gate is ``σ(tanh(·))``; here ``σ(·)`` as in the paper.
        - It adds a constant 1 to ``f'``; here the ``f'`` bias starts at 1 and is learned.
        - Its layer norm normalises all gates of a convolution together; here each gate on its own.
        - Every convolution there has a bias; here only the gates (one bias per gate).
        - A ``None`` state or memory skips the convolutions of zeros (the result is the same).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        filter_size: int | tuple[int, int] = 5,
        *,
        window_length: int = 2,
        recall_window: int | None = None,
        memory_channels: int | None = None,
        layer_norm: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        memory_channels = memory_channels_of(in_channels, hidden_channels, memory_channels)
        spatial = (
            (filter_size,) * 2
            if isinstance(filter_size, int)
            else tuple(filter_size)
            if isinstance(filter_size, (tuple, list))
            else ()  # a float from a config: reported below
        )
        if len(spatial) != 2 or not all(isinstance(v, int) and v >= 1 for v in spatial):
            raise ValueError(f"filter_size must be an int >= 1 or a pair of them, got {filter_size!r}")
        if window_length < 1:
            raise ValueError(f"window_length must be >= 1, got {window_length}")
        if recall_window is not None and recall_window < 1:
            raise ValueError(f"recall_window must be >= 1 or None, got {recall_window}")
        if layer_norm and not bias:
            raise ValueError("layer_norm=True keeps the gate bias in the norm's shift; it needs bias=True")
        Hc = hidden_channels
        self.in_channels, self.hidden_channels, self.memory_channels = in_channels, Hc, memory_channels
        self.window_length, self.recall_window = window_length, recall_window
        self.kernel_size = (window_length, *spatial)
        # TF "same" at stride 1: k - 1 zeros per axis, the odd one after; the conv pads the even part
        pad = ((window_length - 1) // 2, (spatial[0] - 1) // 2, (spatial[1] - 1) // 2)
        extra = [(k - 1) % 2 for k in reversed(self.kernel_size)]  # x, y, t: F.pad's order
        self._extra_pad = (0, extra[0], 0, extra[1], 0, extra[2]) if any(extra) else None

        def conv(cin: int, cout: int, has_bias: bool = False) -> nn.Conv3d:
            return nn.Conv3d(cin, cout, self.kernel_size, padding=pad, bias=has_bias)

        self.input_conv = conv(in_channels, 7 * Hc, bias and not layer_norm)
        self.hidden_conv = conv(Hc, 4 * Hc)
        self.memory_conv = conv(memory_channels, 3 * Hc)
        self.output_conv = conv(2 * Hc, Hc)
        self.fuse_conv = nn.Conv3d(2 * Hc, Hc, 1, bias=False)
        # f' ∘ M_in needs Hc channels: a memory of another size is mapped to them first (not in the paper)
        self.memory_proj = nn.Conv3d(memory_channels, Hc, 1, bias=False) if memory_channels != Hc else None
        self.norm_x = nn.GroupNorm(7, 7 * Hc) if layer_norm else None
        self.norm_h = nn.GroupNorm(4, 4 * Hc) if layer_norm else None
        self.norm_m = nn.GroupNorm(3, 3 * Hc) if layer_norm else None
        # layer norm over all channels and positions with a per-channel affine: any H, W works
        self.norm_recall = nn.GroupNorm(1, Hc)
        shift = self.norm_x.bias if self.norm_x is not None else self.input_conv.bias
        if shift is not None:
            with torch.no_grad():
                # f' bias 1 so early training keeps memory (Jozefowicz et al., 2015; the release adds 1)
                shift.zero_()[5 * Hc : 6 * Hc] = 1.0
        # the kernels channels-last too, as the convolutions read them (otherwise each call reorders them);
        # Module.to documents memory_format, torch's type stubs lack it
        self.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]

    def init_state(self, x_t: Tensor) -> Eidetic3DLSTMState:
        """Zero state for ``x_t`` ``(B, C, w, H, W)``; the history is one zero cell state (as the release)."""
        self._check_input(x_t)
        B, _, w, H, W = x_t.shape
        zeros = x_t.new_zeros(B, self.hidden_channels, w, H, W)
        return Eidetic3DLSTMState(zeros, zeros, zeros, zeros)

    def forward(
        self, x_t: Tensor, state: Eidetic3DLSTMState | None = None, memory: Tensor | None = None
    ) -> tuple[Tensor, Eidetic3DLSTMState]:
        """One step from ``state`` (``None``: zeros) with incoming memory ``memory`` (``None``: zeros)."""
        self._check_input(x_t)
        B, _, w, H, W = x_t.shape
        expected = (B, self.hidden_channels, w, H, W)
        if state is not None:
            state = self._check_state(state, expected)
        if memory is not None and tuple(memory.shape) != (B, self.memory_channels, w, H, W):
            raise ValueError(
                f"Eidetic3DLSTMCell memory must be {(B, self.memory_channels, w, H, W)}, "
                f"got {tuple(memory.shape)}"
            )
        return self._step(x_t, state, memory)

    def _conv(self, conv: nn.Conv3d, x: Tensor) -> Tensor:
        # a (w, k, k) kernel: TensorFlow's "same" padding, then channels-last (see _channels_last)
        return _pooled.module_conv(
            conv, _channels_last(x if self._extra_pad is None else F.pad(x, self._extra_pad))
        )

    def _term(self, conv: nn.Conv3d, norm: nn.GroupNorm | None, prev: Tensor | None) -> Tensor | float:
        # a zero h or M adds no convolution term; with layer norm, the norm of a zero conv is its shift
        if prev is not None:
            out = self._conv(conv, prev)
            return out if norm is None else norm(out)
        return 0.0 if norm is None else norm.bias.view(1, -1, 1, 1, 1)

    def _step(
        self, x_t: Tensor, state: Eidetic3DLSTMState | None, memory: Tensor | None
    ) -> tuple[Tensor, Eidetic3DLSTMState]:
        # the time loop's fast path: inputs were validated at the boundary
        Hc = self.hidden_channels
        gates_x = self._conv(self.input_conv, x_t)  # (B, 7*Hc, w, H, W)
        if self.norm_x is not None:
            gates_x = self.norm_x(gates_x)
        state_h = None if state is None else state.h
        # one split, not two slices: its backward is one cat, where each slice's filled a zero tensor of all
        # 7*Hc channels and autograd summed the two
        x_h, x_m = gates_x.split([4 * Hc, 3 * Hc], dim=1)  # (B, 4*Hc, w, H, W), (B, 3*Hc, w, H, W)
        gates = x_h + self._term(self.hidden_conv, self.norm_h, state_h)  # i, r, g, o
        mem_gates = x_m + self._term(self.memory_conv, self.norm_m, memory)  # i', f', g'
        if state is None:
            # C_{t-1} = 0 and a recall over zero states is 0; the norm of zeros is its shift
            recalled = self.norm_recall.bias.view(1, -1, 1, 1, 1)
        else:
            r = gates[:, Hc : 2 * Hc]  # the recall gate sits in nn.LSTM's forget-gate rows
            recalled = self.norm_recall(state.c + _recall(torch.sigmoid(r), state.history))
        carried = (
            memory
            if memory is None or self.memory_proj is None
            else _pooled.module_conv(self.memory_proj, _channels_last(memory))
        )
        # the gate arithmetic in two fused functions (compiled where it helps, docs/e3d_lstm.md): c, m and
        # [C_t, M_t] (B, 2*Hc, w, H, W) in the gates' dtype, then h; a missing state or memory runs eagerly
        irg, o = gates.split([3 * Hc, Hc], dim=1)  # (i, r, g) and the output gate's rows
        c, m, cm = _fusion.dual_memory(
            irg,
            mem_gates,
            recalled,
            None,
            carried,
            _fusion.state_dtype(gates),
            eager=state is None or memory is None,
        )
        o_term = self._conv(self.output_conv, cm)
        h = _fusion.output_gate(o, o_term, _pooled.module_conv(self.fuse_conv, _channels_last(cm)))
        history = torch.zeros_like(c) if state is None else state.history
        history = torch.cat([history, c], dim=2)  # (B, Hc, (n+1)*w, H, W), oldest first
        if self.recall_window is not None:
            history = history[:, :, -self.recall_window * x_t.shape[2] :]
        return h, Eidetic3DLSTMState(h, c, m, history)

    def _check_state(self, state: object, expected: tuple[int, ...]) -> Eidetic3DLSTMState:
        if not isinstance(state, tuple) or len(state) != 4:
            raise ValueError(
                f"Eidetic3DLSTMCell state must be (h, c, m, history), got {type(state).__name__}"
            )
        for name, tensor in zip(("h", "c", "m"), state[:3]):
            if tuple(tensor.shape) != expected:
                raise ValueError(
                    f"Eidetic3DLSTMCell state {name} must be {expected}, got {tuple(tensor.shape)}"
                )
        B, Hc, w, H, W = expected
        got = tuple(state[3].shape)
        n = got[2] // w if len(got) == 5 and got[2] % w == 0 else 0  # whole windows of cell states
        if len(got) != 5 or got[:2] + got[3:] != (B, Hc, H, W) or not 1 <= n <= (self.recall_window or n):
            raise ValueError(
                f"Eidetic3DLSTMCell state history must be (B, Hc, n*w, H, W) = ({B}, {Hc}, n*{w}, {H}, {W}) "
                f"with 1 <= n <= {self.recall_window or 'any'}, got {got}"
            )
        return Eidetic3DLSTMState._make(state)

    def _check_input(self, x_t: Tensor) -> None:
        check_tensor("Eidetic3DLSTMCell", x_t, "x_t")
        if x_t.dim() != 5:
            raise ValueError(f"Eidetic3DLSTMCell expects x_t (B, C, w, H, W), got shape {tuple(x_t.shape)}")
        check_input_dtype("Eidetic3DLSTMCell", x_t, self)
        check_channels("Eidetic3DLSTMCell", x_t, self.in_channels, 1)
        if x_t.shape[2] != self.window_length:
            raise ValueError(
                f"Eidetic3DLSTMCell expects windows of {self.window_length} frames, got {x_t.shape[2]}"
            )


class Eidetic3DLSTM(NotScriptable, nn.Module):
    r"""Stacked :class:`Eidetic3DLSTMCell` over sliding windows of a clip, with the zigzag memory.

    Step ``t`` (``t = 0, s, 2s, …`` for ``window_stride`` s) reads frames ``t-w+1 … t``, zeros before the
    first frame (the release prepends ``w-1`` zero frames). Layer ``l > 0`` reads layer ``l-1``'s new ``h``
    and ``M``; layer 0 reads the top layer's ``M`` from the previous step (zeros at the first one).

    Args:
        in_channels: channels C of a frame.
        hidden_channels: Hc of every layer (int) or one per layer (a list, whose length is then L).
        filter_size, window_length, recall_window, layer_norm: every cell's options.
        num_layers: stacked layers L; ``None`` (default): the length of a ``hidden_channels`` list, else
            1. Given with a list, it must equal the list's length.
        window_stride: frames between the newest frames of consecutive steps, in ``[1, window_length]``.
        batch_first: ``x`` is ``(B, T, ...)``; else ``(T, B, ...)`` (then so is the output).

    Shape:
        - x: ``(B, T, C, H, W)``; lengths: ``(B,)`` integers in ``[1, T]``.
        - output: ``(B, n_steps, Hc_L, w, H, W)``, the top ``h`` at every step, ``n_steps = ⌊(T-1)/s⌋ + 1``;
          zero at steps past a clip's length (step ``i`` is valid while ``i·s < length``).
        - state and returned state: a list of L :class:`Eidetic3DLSTMState`.

    Differences from the reference implementation:
        - The release steps every ``w - window_stride`` frames (its ``window_stride`` is the overlap);
          here every ``window_stride`` frames. Its only setting (w=2, stride 1) steps every frame in both.
        - No ``bidirectional`` or dropout: the zigzag memory runs forward in time. States are per-layer
          NamedTuples, not ``nn.LSTM``'s stacked ``(L, B, ...)`` tensors.
        - With ``lengths``, a clip whose history is shorter than the batch's (``recall_window=None``, or
          fewer than τ - 1 steps) is front-padded with zero cell states in the final state; continuing
          from it would recall over those zeros too.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int | Sequence[int],
        filter_size: int | tuple[int, int] = 5,
        num_layers: int | None = None,
        *,
        window_length: int = 2,
        window_stride: int = 1,
        recall_window: int | None = None,
        layer_norm: bool = True,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        hidden = layer_channels(hidden_channels, num_layers)
        num_layers = len(hidden)
        self.cells = nn.ModuleList(
            Eidetic3DLSTMCell(
                in_channels if layer == 0 else hidden[layer - 1],
                hidden[layer],
                filter_size,
                window_length=window_length,
                recall_window=recall_window,
                memory_channels=hidden[layer - 1],  # layer 0 reads the top layer's memory (index -1)
                layer_norm=layer_norm,
            )
            for layer in range(num_layers)
        )
        if not 1 <= window_stride <= window_length:
            raise ValueError(
                f"window_stride must be in [1, window_length={window_length}], got {window_stride}"
            )
        self.in_channels, self.hidden_channels, self.num_layers = in_channels, hidden, num_layers
        self.window_length, self.window_stride, self.batch_first = window_length, window_stride, batch_first

    def windows(self, x: Tensor) -> Tensor:
        """``(B, T, C, H, W)`` -> ``(B, n_steps, C, w, H, W)``: step ``i`` sees frames ``i·s-w+1 … i·s``."""
        self._check_input(x, "(B, T, C, H, W)")
        w = self.window_length
        padded = F.pad(x, (0, 0, 0, 0, 0, 0, w - 1, 0))  # w-1 zero frames first, (B, w-1+T, C, H, W)
        windows = padded.unfold(1, w, self.window_stride)  # (B, n_steps, C, H, W, w)
        return windows.permute(0, 1, 2, 5, 3, 4)  # (B, n_steps, C, w, H, W)

    def step(
        self, window: Tensor, states: list[Eidetic3DLSTMState] | None
    ) -> tuple[Tensor, list[Eidetic3DLSTMState]]:
        """One step of every layer on ``window`` ``(B, C, w, H, W)``; returns the top ``h`` and the states."""
        if states is not None and len(states) != self.num_layers:
            raise ValueError(f"states must hold one state per layer ({self.num_layers}), got {len(states)}")
        memory = None if states is None else states[-1].m  # zigzag: the top layer's M from t-1
        new: list[Eidetic3DLSTMState] = []
        h = window
        for layer, cell in enumerate(self.cells):
            h, state = cell(h, None if states is None else states[layer], memory)
            memory = state.m
            new.append(state)
        return h, new

    def forward(
        self, x: Tensor, state: list[Eidetic3DLSTMState] | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, list[Eidetic3DLSTMState]]:
        """Run every step from ``state`` (``None``: zeros); returns ``(output, final states)``.

        Every call puts ``w-1`` zero frames before ``x``; to go on with a clip window by window, use
        :meth:`step` (what the video predictor does).
        """
        x = self._check_input(x, "(B, T, C, H, W)" if self.batch_first else "(T, B, C, H, W)")
        if not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, C, H, W)
        B, T = x.shape[:2]
        lengths = check_lengths(lengths, B, T, x.device)
        # a step whose newest frame is before the shortest length needs no masking
        min_len = T if lengths is None else int(lengths.min())
        outputs = []
        # unbind, not indexing: each index's backward would write a full (B, n_steps, ...) gradient
        with _pooled.sequence_pass():  # one weight-gradient computation (or cast) per weight for all steps
            for i, window in enumerate(self.windows(x).unbind(1)):
                h, new = self.step(window, state)
                if lengths is not None and state is not None and i * self.window_stride >= min_len:
                    valid = (i * self.window_stride < lengths).view(B, 1, 1, 1, 1)
                    new = [_keep_valid(valid, n, old) for n, old in zip(new, state)]
                    h = torch.where(valid, h, 0.0)
                state = new
                outputs.append(h)
        output = torch.stack(outputs, dim=1)  # (B, n_steps, Hc_L, w, H, W)
        return (output if self.batch_first else output.transpose(0, 1)), new

    def _check_input(self, x: Tensor, layout: str) -> Tensor:
        check_tensor("Eidetic3DLSTM", x)
        if x.dim() != 5:
            raise ValueError(f"Eidetic3DLSTM expects x {layout}, got shape {tuple(x.shape)}")
        check_input_dtype("Eidetic3DLSTM", x, self)
        check_channels("Eidetic3DLSTM", x, self.in_channels, 2)
        if min(x.shape[:2]) < 1:
            raise ValueError(
                f"Eidetic3DLSTM expects at least one clip and one frame, got shape {tuple(x.shape)}"
            )
        return x


def _keep_valid(valid: Tensor, new: Eidetic3DLSTMState, old: Eidetic3DLSTMState) -> Eidetic3DLSTMState:
    # clips past their length keep their state; a history that grew meanwhile is front-padded with zeros
    grown = new.history.shape[2] - old.history.shape[2]
    history = F.pad(old.history, (0, 0, 0, 0, grown, 0)) if grown else old.history
    h, c, m = (torch.where(valid, a, b) for a, b in zip(new[:3], old[:3]))
    return Eidetic3DLSTMState(h, c, m, torch.where(valid, new.history, history))
