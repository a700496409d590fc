"""ConvLSTMCell / ConvLSTM: equations, nn.LSTM parity, sequence semantics, validation.

Keras ConvLSTM2D parity lives in tests/test_interop.py (it needs the weight loader).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from cell_helpers import max_err, randomise
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmvision.cells import ConvLSTM, ConvLSTMCell, ConvLSTMState

# ---------------------------------------------------------------------------------------------------
# the equations, written gate by gate from the parameters, independent of the cell's code


def tf_same_pad(
    x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> Tensor:
    pads = []
    for n, k, s, d in zip(x.shape[-2:], kernel, stride, dilation):
        total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return F.pad(x, (*pads[1], *pads[0]))


def layer_norm(v: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    var = v.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    return (v - mean) / torch.sqrt(var + 1e-5) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def reference_step(cell: ConvLSTMCell, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    hc, ln = cell.hidden_channels, cell.norm_x is not None
    conv = cell.input_conv
    if cell.padding == "same":
        x = tf_same_pad(x, cell.kernel_size, cell.stride, cell.dilation)
    elif isinstance(cell.padding, tuple):
        x = F.pad(x, (cell.padding[1],) * 2 + (cell.padding[0],) * 2)
    h_padded = tf_same_pad(h, cell.kernel_size, (1, 1), (1, 1))
    pre = []
    for k in range(4):
        rows = slice(k * hc, (k + 1) * hc)
        zx = F.conv2d(x, conv.weight[rows], None, cell.stride, 0, cell.dilation)
        zh = F.conv2d(h_padded, cell.hidden_conv.weight[rows])
        if ln:
            zx = layer_norm(zx, cell.norm_x.weight[rows], cell.norm_x.bias[rows])
            zh = layer_norm(zh, cell.norm_h.weight[rows], cell.norm_h.bias[rows])
        elif conv.bias is not None:
            zx = zx + conv.bias[rows].view(1, -1, 1, 1)
        pre.append(zx + zh)
    i, f, g, o = pre
    if cell.peephole_weight is not None:
        i = i + cell.peephole_weight[0] * c
        f = f + cell.peephole_weight[1] * c
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if cell.peephole_weight is not None:
        o = o + cell.peephole_weight[2] * c
    c_out = layer_norm(c, cell.norm_c.weight, cell.norm_c.bias) if ln else c
    return torch.sigmoid(o) * torch.tanh(c_out), c


CELL_CONFIGS = [
    dict(kernel_size=3),
    dict(kernel_size=4, stride=2, peephole=True, layer_norm=True),
    dict(kernel_size=(2, 3), dilation=2, padding="valid", peephole=True),
    dict(kernel_size=3, stride=2, padding=1, bias=False),
    dict(kernel_size=(3, 2), dilation=(1, 2), layer_norm=True),
]


@pytest.mark.parametrize("config", CELL_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_cell_matches_equations(config: dict) -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, **config).double()
    randomise(cell)
    x = torch.randn(2, 5, 3, 9, 8, dtype=torch.float64)
    state = None
    h_ref = c_ref = None
    for t in range(5):
        h, state = cell(x[:, t], state)
        if h_ref is None:  # the cell starts from no state: the reference from zeros
            h_ref = c_ref = torch.zeros_like(h)
        h_ref, c_ref = reference_step(cell, x[:, t], h_ref, c_ref)
        err = max(max_err(h, h_ref), max_err(state.c, c_ref))
        assert err < 1e-12, f"step {t}: max abs error {err:.3g}"


# ---------------------------------------------------------------------------------------------------
# torch.nn.LSTM parity: a 1x1 kernel on 1x1 frames is exactly an LSTM


def copy_lstm(conv: ConvLSTM, lstm: nn.LSTM) -> None:
    D = 2 if lstm.bidirectional else 1
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            for d in range(D):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                cell = conv.cells[layer * D + d]
                w_ih, w_hh = getattr(lstm, "weight_ih" + suffix), getattr(lstm, "weight_hh" + suffix)
                cell.input_conv.weight.copy_(w_ih[:, :, None, None])  # (4H, C) -> (4H, C, 1, 1)
                cell.hidden_conv.weight.copy_(w_hh[:, :, None, None])
                cell.input_conv.bias.copy_(
                    getattr(lstm, "bias_ih" + suffix) + getattr(lstm, "bias_hh" + suffix)
                )


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "batch_first", "with_state"),
    [(1, False, True, False), (2, False, True, True), (2, True, True, True), (2, True, False, False)],
)
def test_matches_nn_lstm(num_layers: int, bidirectional: bool, batch_first: bool, with_state: bool) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, num_layers, batch_first=batch_first, bidirectional=bidirectional).double()
    conv = ConvLSTM(3, 5, 1, num_layers, batch_first=batch_first, bidirectional=bidirectional).double()
    copy_lstm(conv, lstm)
    x = torch.randn(3, 6, 3, dtype=torch.float64)  # (B, T, C) or (T, B, C)
    D = 2 if bidirectional else 1
    B = 3 if batch_first else 6
    state = None
    if with_state:
        state = (torch.randn(num_layers * D, B, 5, dtype=torch.float64),) * 2
    y, (h, c) = lstm(x, state)
    conv_state = None if state is None else tuple(s[..., None, None] for s in state)
    y2, (h2, c2) = conv(x[..., None, None], conv_state)
    h2, c2 = torch.stack(h2), torch.stack(c2)  # per-layer tuples -> nn.LSTM's (L * D, B, ...)
    err = max(max_err(y, y2[..., 0, 0]), max_err(h, h2[..., 0, 0]), max_err(c, c2[..., 0, 0]))
    assert err < 1e-6, f"max abs error {err:.3g}"


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_match_packed_nn_lstm(bidirectional: bool) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, 2, batch_first=True, bidirectional=bidirectional).double()
    conv = ConvLSTM(3, 4, 1, 2, bidirectional=bidirectional).double()
    copy_lstm(conv, lstm)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([3, 6, 1, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    y_packed, (h, c) = lstm(packed)
    y, _ = pad_packed_sequence(y_packed, batch_first=True, total_length=6)
    y2, (h2, c2) = conv(x[..., None, None], lengths=lengths)
    h2, c2 = torch.stack(h2), torch.stack(c2)  # per-layer tuples -> nn.LSTM's (L * D, B, ...)
    err = max(max_err(y, y2[..., 0, 0]), max_err(h, h2[..., 0, 0]), max_err(c, c2[..., 0, 0]))
    assert err < 1e-6, f"max abs error {err:.3g}"


# ---------------------------------------------------------------------------------------------------
# sequence semantics


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, [3, 4], 3, 2, bidirectional=True, peephole=True, layer_norm=True, stride=(1, 2))
    y, (_, c) = model(torch.randn(2, 4, 2, 6, 6), lengths=torch.tensor([4, 3]))
    (y.square().sum() + sum(t.sum() for t in c)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"


@pytest.mark.parametrize("hoist", [False, True])
def test_batch_items_are_independent(hoist: bool) -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, 3, 3, 2, layer_norm=True, peephole=True, hoist_input_conv=hoist).eval()
    x = torch.randn(3, 4, 2, 6, 6)
    x2 = x.clone()
    x2[0] += torch.randn_like(x2[0])
    y, (h, _) = model(x)
    y2, (h2, _) = model(x2)
    h, h2 = torch.stack(h), torch.stack(h2)  # (L, B, Hc, H, W)
    assert max_err(y[1:], y2[1:]) < 1e-6 and max_err(h[:, 1:], h2[:, 1:]) < 1e-6
    assert max_err(y[0], y2[0]) > 1e-3  # the perturbation does reach item 0


def test_state_changes_after_each_step() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, 3)
    x = torch.randn(2, 2, 5, 5)
    zero = cell.init_state(x)
    assert zero.h.shape == (2, 3, 5, 5) and zero.h.abs().sum() == 0
    h1, s1 = cell(x, zero)
    _, s2 = cell(x, s1)
    assert isinstance(s1, ConvLSTMState) and torch.equal(h1, s1.h)
    assert s1.h.abs().sum() > 0 and s1.c.abs().sum() > 0
    assert max_err(s1.c, s2.c) > 1e-4 and max_err(s1.h, s2.h) > 1e-4
    _, s0 = cell(x)  # no state = zero state, the hidden convolution skipped
    assert max_err(s0.h, s1.h) < 1e-6 and max_err(s0.c, s1.c) < 1e-6


def test_forget_bias_starts_at_one() -> None:
    for layer_norm in (False, True):
        cell = ConvLSTMCell(2, 3, layer_norm=layer_norm)
        shift = cell.norm_x.bias if layer_norm else cell.input_conv.bias
        assert torch.equal(shift, torch.tensor([0.0] * 3 + [1.0] * 3 + [0.0] * 6))


def test_cell_works_at_any_resolution() -> None:
    cell = ConvLSTMCell(2, 3, 4, stride=2)
    for size in [(5, 5), (8, 6), (1, 9)]:
        x = torch.randn(1, 2, *size)
        h, state = cell(x)
        assert h.shape == (1, 3, math.ceil(size[0] / 2), math.ceil(size[1] / 2)) == cell.init_state(x).c.shape
        h2, _ = cell(x, state)  # the state fits the next step at the same resolution
        assert h2.shape == h.shape


def test_precomputed_input_gates_equal_the_plain_step() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, 3, stride=2, peephole=True, layer_norm=True)
    randomise(cell)
    x = torch.randn(4, 2, 2, 7, 7)  # (T, B, C, H, W): 4 steps
    gates = cell.input_gates(x.flatten(0, 1)).unflatten(0, (4, 2))  # all frames in one call
    state = fast = None
    for t in range(4):
        h, state = cell(x[t], state)
        h_fast, fast = cell(x[t], fast, gates_x=gates[t])
        assert max_err(h, h_fast) < 1e-6 and max_err(state.c, fast.c) < 1e-6


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(1, 9),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.sampled_from(["same", "valid", 0, 1, 2]),
)
def test_output_size_matches_the_convolution(
    size: int, kernel: int, stride: int, dilation: int, padding
) -> None:
    cell = ConvLSTMCell(1, 1, kernel, stride=stride, dilation=dilation, padding=padding)
    reach = dilation * (kernel - 1) + 1
    pad = 0 if padding in ("same", "valid") else padding
    if padding != "same" and size + 2 * pad < reach:
        with pytest.raises(ValueError, match="smaller than the kernel"):
            cell(torch.zeros(1, 1, size, size))
        return
    h, _ = cell(torch.zeros(1, 1, size, size))
    expected = math.ceil(size / stride) if padding == "same" else (size + 2 * pad - reach) // stride + 1
    assert h.shape[-2:] == (expected, expected) == cell.output_size(size, size)


def test_hoisted_and_per_step_agree_in_training() -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, 3, 3, 2, bidirectional=True, input_dropout=0.3, recurrent_dropout=0.3, dropout=0.2)
    x = torch.randn(2, 5, 2, 6, 6)
    lengths = torch.tensor([5, 3])
    results = []
    for hoist in (False, True):
        model.hoist_input_conv = hoist
        model.zero_grad()
        torch.manual_seed(1)  # the same masks both ways: they are drawn before any convolution
        y, _ = model(x, lengths=lengths)
        y.square().sum().backward()
        results.append((y, [p.grad.clone() for p in model.parameters()]))
    (y0, g0), (y1, g1) = results
    err = max([max_err(y0, y1)] + [max_err(a, b) for a, b in zip(g0, g1)])
    assert err < 1e-5, f"max abs error {err:.3g}"


def record_calls(model: ConvLSTM) -> tuple[list[Tensor], list[Tensor]]:
    """Inputs of every cell's input_gates and hidden_conv calls, in call order."""
    inputs: list[Tensor] = []
    hiddens: list[Tensor] = []
    for cell in model.cells:
        original = cell.input_gates

        def spy(x: Tensor, original=original) -> Tensor:
            inputs.append(x.detach().clone())
            return original(x)

        cell.input_gates = spy
        cell.hidden_conv.register_forward_hook(lambda m, args, out: hiddens.append(args[0].detach().clone()))
    return inputs, hiddens


def test_dropout_mask_is_the_same_at_every_step_and_off_in_eval() -> None:
    torch.manual_seed(0)
    model = ConvLSTM(4, 5, 3, input_dropout=0.5, recurrent_dropout=0.5)
    inputs, hiddens = record_calls(model)
    x = torch.ones(2, 4, 4, 3, 3)  # constant frames: a dropped input is exactly 0, a kept one 2
    model(x)
    assert len(inputs) == 4 and len(hiddens) == 3  # the first step has no state to convolve
    assert all(torch.equal(inputs[0], later) for later in inputs[1:])
    assert set(inputs[0].unique().tolist()) == {0.0, 2.0}
    dropped = [h == 0 for h in hiddens]
    assert dropped[0].any() and all(torch.equal(dropped[0], later) for later in dropped[1:])
    model(x)  # a new sequence draws new masks
    assert not torch.equal(inputs[0], inputs[4])

    model.eval()
    inputs.clear()
    hiddens.clear()
    y, _ = model(x)
    assert all(torch.equal(v, x[:, 0]) for v in inputs) and all((h != 0).all() for h in hiddens)
    reference = ConvLSTM(4, 5, 3)
    reference.load_state_dict(model.state_dict())
    assert max_err(y, reference(x)[0]) == 0


def test_between_layer_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, 3, 3, 2, dropout=0.5)
    plain = ConvLSTM(2, 3, 3, 2)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 2, 5, 5)
    assert max_err(model(x)[0], plain(x)[0]) > 1e-3
    model.eval()
    assert max_err(model(x)[0], plain(x)[0]) == 0


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_keep_state_and_zero_output(bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, 3, (3, 2), 2, bidirectional=bidirectional).eval()
    x = torch.randn(3, 5, 2, 6, 5)
    lengths = torch.tensor([2, 5, 4])
    y, (h, c) = model(x, lengths=lengths)
    h, c = torch.stack(h), torch.stack(c)  # (L * D, B, Hc, H', W')
    for b, n in enumerate(lengths.tolist()):
        # a clip run alone, cut at its length, gives the same outputs and final state
        y_b, (h_b, c_b) = model(x[b : b + 1, :n])
        h_b, c_b = torch.stack(h_b), torch.stack(c_b)
        assert max_err(y[b, :n], y_b[0]) < 1e-6 and y[b, n:].abs().sum() == 0
        assert max_err(h[:, b], h_b[:, 0]) < 1e-6 and max_err(c[:, b], c_b[:, 0]) < 1e-6


def test_state_passed_back_continues_the_sequence() -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, [3, 4], 3).eval()  # layers of different sizes; the list sets num_layers=2
    x = torch.randn(2, 6, 2, 5, 5)
    y, (h, c) = model(x)
    y1, state = model(x[:, :2])
    y2, (h2, c2) = model(x[:, 2:], state)
    assert isinstance(h, tuple) and [t.shape[1] for t in h] == [3, 4]
    err = max([max_err(y, torch.cat([y1, y2], dim=1))] + [max_err(a, b) for a, b in zip(h + c, h2 + c2)])
    assert err < 1e-6, f"max abs error {err:.3g}"


def test_go_backwards_reads_each_clip_reversed() -> None:
    torch.manual_seed(0)
    forward = ConvLSTM(2, 3, 3).eval()
    backward = ConvLSTM(2, 3, 3, go_backwards=True).eval()
    backward.load_state_dict(forward.state_dict())
    x = torch.randn(2, 4, 2, 5, 5)
    assert max_err(backward(x)[0], forward(x.flip(1))[0]) < 1e-6  # outputs stay in reading order
    y, (h, _) = backward(x, lengths=torch.tensor([4, 2]))
    y_b, (h_b, _) = forward(x[1:, :2].flip(1))
    assert max_err(y[1, :2], y_b[0]) < 1e-6 and max_err(h[0][1], h_b[0][0]) < 1e-6
    assert y[1, 2:].abs().sum() == 0


def test_stacked_state_layout_matches_nn_lstm() -> None:
    model = ConvLSTM(2, 3, 3, 3, bidirectional=True, stride=1)
    y, (h, c) = model(torch.randn(2, 4, 2, 5, 6))
    # one row per layer and direction, stacked into nn.LSTM's (L * D, B, ...) when the shapes agree
    assert y.shape == (2, 4, 6, 5, 6) and torch.stack(h).shape == torch.stack(c).shape == (6, 2, 3, 5, 6)
    assert torch.equal(h[-1], y[:, 0, 3:])  # the top backward row is that direction's output at t = 0


# ---------------------------------------------------------------------------------------------------
# validation: every bad input names what was expected and what it got


def test_cell_rejects_bad_input() -> None:
    cell = ConvLSTMCell(2, 3, 3)
    x = torch.randn(2, 2, 5, 5)
    with pytest.raises(ValueError, match=r"expects x_t \(B, C, H, W\), got shape \(2, 1, 2, 5, 5\)"):
        cell(x[:, None])
    with pytest.raises(ValueError, match=r"floating-point input, got dtype torch\.int64"):
        cell(x.long())
    with pytest.raises(ValueError, match="expects 2 channels, got 3"):
        cell(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"state c must be \(2, 3, 5, 5\), got \(2, 3, 4, 5\)"):
        cell(x, (torch.zeros(2, 3, 5, 5), torch.zeros(2, 3, 4, 5)))
    with pytest.raises(ValueError, match="state must be a pair"):
        cell(x, (torch.zeros(2, 3, 5, 5),))
    with pytest.raises(ValueError, match=r"gates_x must be \(2, 12, 5, 5\), got \(2, 3, 5, 5\)"):
        cell(x, gates_x=torch.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        ConvLSTMCell(2, 3, 5, padding="valid")(torch.randn(1, 2, 3, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kernel_size=0), "kernel_size must be an int >= 1"),
        (dict(stride=(1, 2, 3)), "stride must be an int >= 1 or a pair"),
        (dict(padding="full"), "padding must be an int >= 0"),
        (dict(padding=-1), "padding must be an int >= 0"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (dict(recurrent_dropout=-0.1), "recurrent_dropout must be in"),
        (dict(layer_norm=True, bias=False), "needs bias=True"),
        (dict(hidden_channels=0), "channels must be >= 1"),
    ],
)
def test_cell_rejects_bad_options(kwargs: dict, match: str) -> None:
    options = dict(in_channels=2, hidden_channels=3) | kwargs
    with pytest.raises(ValueError, match=match):
        ConvLSTMCell(**options)


def test_sequence_rejects_bad_input() -> None:
    model = ConvLSTM(2, 3, 3, 2)
    x = torch.randn(2, 4, 2, 5, 5)
    with pytest.raises(ValueError, match=r"expects x \(B, T, C, H, W\), got shape \(4, 2, 5, 5\)"):
        model(x[0])
    with pytest.raises(ValueError, match=r"expects x \(T, B, C, H, W\)"):
        ConvLSTM(2, 3, batch_first=False)(x[0])
    with pytest.raises(ValueError, match=r"floating-point input, got dtype torch\.uint8"):
        model(x.to(torch.uint8))
    with pytest.raises(ValueError, match="expects 2 channels, got 3"):
        model(torch.randn(2, 4, 3, 5, 5))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\], got \[5, 2\]"):
        model(x, lengths=torch.tensor([5, 2]))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\], got \[0, 2\]"):
        model(x, lengths=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"lengths must be integers of shape \(2,\), got torch.int64 \(3,\)"):
        model(x, lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="lengths must be integers"):
        model(x, lengths=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 3, 5, 5\), got \(1, 2, 3, 5, 5\)"):
        model(x, (torch.zeros(1, 2, 3, 5, 5), torch.zeros(2, 2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2, 3, 5, 5\), got \(2, 2, 3, 4, 4\)"):
        model(x, (torch.zeros(2, 2, 3, 5, 5), torch.zeros(2, 2, 3, 4, 4)))
    with pytest.raises(ValueError, match="state must be a pair"):
        model(x, torch.zeros(2, 2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"h_0 must have shape \[\(2, 3, 5, 5\), \(2, 4, 5, 5\)\]"):
        ConvLSTM(2, [3, 4], 3, 2)(x, (torch.zeros(2, 2, 3, 5, 5),) * 2)
    with pytest.raises(ValueError, match=r"hidden_channels \[3\] sets 1 layer\(s\) but num_layers=2"):
        ConvLSTM(2, [3], 3, 2)
    with pytest.raises(ValueError, match="dropout must be in"):
        ConvLSTM(2, 3, dropout=1.5)
