"""SpatioTemporalLSTMCell / SpatioTemporalLSTM: equations, zigzag memory, sequence semantics, validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cell_helpers import max_err, randomise
from torch import Tensor, nn

from lstmvision.cells.stlstm import SpatioTemporalLSTM, SpatioTemporalLSTMCell, SpatioTemporalLSTMState

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------------
# the equations, one convolution per weight, written from the paper and independent of the cell's code

X_ROWS = dict(i=0, f=1, g=2, o=3, i2=4, f2=5, g2=6)  # input_conv's row blocks
H_ROWS = dict(i=0, f=1, g=2, o=3)
M_ROWS = dict(i2=0, f2=1, g2=2)


def pad_same(x: Tensor, kernel: tuple[int, int]) -> Tensor:
    kh, kw = kernel  # stride 1 "same": the extra row/column of an even kernel goes bottom/right
    return F.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))


def layer_norm(v: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    var = v.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    return (v - mean) / torch.sqrt(var + 1e-5) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def term(
    cell: SpatioTemporalLSTMCell, conv: nn.Conv2d, norm: nn.GroupNorm | None, block: int, inp: Tensor
) -> Tensor:
    """One gate's ``W * inp`` (+ bias, or layer-normalised), from rows ``block`` of ``conv``."""
    rows = slice(block * cell.hidden_channels, (block + 1) * cell.hidden_channels)
    z = F.conv2d(pad_same(inp, cell.kernel_size), conv.weight[rows])
    if norm is not None:
        return layer_norm(z, norm.weight[rows], norm.bias[rows])
    return z if conv.bias is None else z + conv.bias[rows].view(1, -1, 1, 1)


def reference_step(
    cell: SpatioTemporalLSTMCell, x: Tensor, h: Tensor, c: Tensor, m_in: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    Hc = cell.hidden_channels
    wx = {k: term(cell, cell.input_conv, cell.norm_x, r, x) for k, r in X_ROWS.items()}
    wh = {k: term(cell, cell.hidden_conv, cell.norm_h, r, h) for k, r in H_ROWS.items()}
    wm = {k: term(cell, cell.memory_conv, cell.norm_m, r, m_in) for k, r in M_ROWS.items()}
    i = torch.sigmoid(wx["i"] + wh["i"])
    f = torch.sigmoid(wx["f"] + wh["f"])
    g = torch.tanh(wx["g"] + wh["g"])
    c_new = f * c + i * g
    i2 = torch.sigmoid(wx["i2"] + wm["i2"])
    f2 = torch.sigmoid(wx["f2"] + wm["f2"])
    g2 = torch.tanh(wx["g2"] + wm["g2"])
    carried = m_in if cell.memory_proj is None else F.conv2d(m_in, cell.memory_proj.weight)
    m_new = f2 * carried + i2 * g2
    w_co, w_mo = cell.output_conv.weight[:, :Hc], cell.output_conv.weight[:, Hc:]
    k = cell.kernel_size
    peek = F.conv2d(pad_same(c_new, k), w_co) + F.conv2d(pad_same(m_new, k), w_mo)  # W_co * C_t + W_mo * M_t
    if cell.norm_o is not None:
        peek = layer_norm(peek, cell.norm_o.weight, cell.norm_o.bias)
    o = torch.sigmoid(wx["o"] + wh["o"] + peek)
    w_1c, w_1m = cell.fuse_conv.weight[:, :Hc], cell.fuse_conv.weight[:, Hc:]
    h_new = o * torch.tanh(F.conv2d(c_new, w_1c) + F.conv2d(m_new, w_1m))
    return h_new, c_new, m_new


CELL_CONFIGS = [
    dict(kernel_size=3),
    dict(kernel_size=(4, 3), layer_norm=True),
    dict(kernel_size=2, memory_channels=5),
    dict(kernel_size=3, memory_channels=2, layer_norm=True),
    dict(kernel_size=1, bias=False),
]


@pytest.mark.parametrize("config", CELL_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_cell_matches_equations(config: dict) -> None:
    torch.manual_seed(0)
    cell = SpatioTemporalLSTMCell(3, 4, **config).double()
    randomise(cell)
    B, H, W, mc = 2, 6, 5, cell.memory_channels
    x = torch.randn(4, B, 3, H, W, dtype=torch.float64)
    random_state = SpatioTemporalLSTMState(*torch.randn(3, B, 4, H, W, dtype=torch.float64))
    random_memory = torch.randn(B, mc, H, W, dtype=torch.float64)
    # (state, memory) of each step: None (the reference uses zeros), random, or the previous step's state
    plan = [("none", None), ("random", random_memory), ("previous", None), ("none", -random_memory)]
    state = None
    for t, (kind, memory) in enumerate(plan):
        start = {"none": None, "random": random_state, "previous": state}[kind]
        h, state = cell(x[t], start, memory)
        ref_state = (
            start
            if start is not None
            else SpatioTemporalLSTMState(*torch.zeros(3, B, 4, H, W, dtype=torch.float64))
        )
        ref_memory = torch.zeros(B, mc, H, W, dtype=torch.float64) if memory is None else memory
        h_ref, c_ref, m_ref = reference_step(cell, x[t], ref_state.h, ref_state.c, ref_memory)
        err = max(
            max_err(h, h_ref), max_err(state.h, h_ref), max_err(state.c, c_ref), max_err(state.m, m_ref)
        )
        assert err < 1e-10, f"step {t} ({kind} state): max abs error {err:.3g}"


def reference_stack(model: SpatioTemporalLSTM, x: Tensor, hs: list[Tensor], cs: list[Tensor], memory: Tensor):
    """The zigzag by hand from states ``hs``, ``cs``: layer 0 at t reads the top layer's memory from t-1."""
    hs, cs, outputs = list(hs), list(cs), []
    for t in range(x.shape[1]):
        inp, m = x[:, t], memory
        for layer, cell in enumerate(model.cells):
            hs[layer], cs[layer], m = reference_step(cell, inp, hs[layer], cs[layer], m)
            inp = hs[layer]
        memory = m
        outputs.append(inp)
    return torch.stack(outputs, dim=1), hs, cs, memory


@pytest.mark.parametrize(
    ("hidden", "num_layers", "layer_norm", "kernel", "with_state"),
    [([3, 4, 2], 3, False, 3, False), (3, 3, True, 4, True), ([4, 3], 2, True, (3, 2), True)],
)
def test_stack_matches_hand_zigzag(
    hidden, num_layers: int, layer_norm: bool, kernel, with_state: bool
) -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, hidden, kernel, num_layers, layer_norm=layer_norm).double()
    randomise(model)
    x = torch.randn(2, 4, 2, 5, 6, dtype=torch.float64)
    widths = [cell.hidden_channels for cell in model.cells]
    h_0, c_0 = ([torch.randn(2, w, 5, 6, dtype=torch.float64) for w in widths] for _ in range(2))
    m_0 = torch.randn(1, 2, widths[-1], 5, 6, dtype=torch.float64)
    if not with_state:  # the model starts from None, the reference from zeros
        h_0, c_0, m_0 = [h.zero_() for h in h_0], [c.zero_() for c in c_0], m_0.zero_()
    y, (h_n, c_n, m_n) = model(x, (h_0, c_0, m_0) if with_state else None)
    y_ref, hs, cs, memory = reference_stack(model, x, h_0, c_0, m_0[0])
    err = max(
        [max_err(y, y_ref), max_err(m_n[0], memory)]
        + [max_err(a, b) for a, b in zip(list(h_n) + list(c_n), hs + cs)]
    )
    assert err < 1e-10, f"max abs error {err:.3g}"
    # the predictor's path: one step through every layer at a time
    states = None
    if with_state:  # only the top layer's m is read: the memory layer 0 receives
        states = [SpatioTemporalLSTMState(h, c, torch.full_like(h, float("nan"))) for h, c in zip(h_0, c_0)]
        states[-1] = states[-1]._replace(m=m_0[0])
    for t in range(4):
        out, states = model.step(x[:, t], states)
        assert max_err(out, y_ref[:, t]) < 1e-10
    assert max_err(states[-1].m, memory) < 1e-10 and all(max_err(s.c, c) < 1e-10 for s, c in zip(states, cs))


# ---------------------------------------------------------------------------------------------------
# the memory


def test_memory_changes_and_zigzags() -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, [3, 4], 3, 2).eval()
    x = torch.randn(2, 2, 2, 5, 5)
    _, states = model.step(x[:, 0], None)
    _, after = model.step(x[:, 1], states)
    for before, now in zip(states, after):
        assert now.m.abs().sum() > 0 and max_err(before.m, now.m) > 1e-4

    def layer0_output(changed: list[SpatioTemporalLSTMState]) -> Tensor:
        _, new = model.step(x[:, 1], changed)
        return new[0].h

    base = layer0_output(states)
    # the top layer's memory at t-1 reaches layer 0 at t ...
    top = [*states[:-1], states[-1]._replace(m=torch.randn_like(states[-1].m))]
    assert max_err(layer0_output(top), base) > 1e-3
    # ... while a lower layer's own memory is not read again: its memory moved up
    low = [states[0]._replace(m=torch.randn_like(states[0].m)), states[1]]
    assert max_err(layer0_output(low), base) == 0


def test_memory_flows_up_within_a_step() -> None:
    torch.manual_seed(0)
    cells = SpatioTemporalLSTM(2, 3, 3, 2).cells
    x = torch.randn(2, 2, 5, 5)
    h0, s0 = cells[0](x)
    _, with_memory = cells[1](h0, None, s0.m)
    _, without = cells[1](h0)
    assert max_err(with_memory.h, without.h) > 1e-3 and max_err(with_memory.m, without.m) > 1e-3


def test_none_skips_the_convolution_and_equals_zeros() -> None:
    torch.manual_seed(0)
    for layer_norm in (False, True):
        cell = SpatioTemporalLSTMCell(2, 3, 3, memory_channels=4, layer_norm=layer_norm)
        randomise(cell)
        calls: list[str] = []
        for name in ("hidden_conv", "memory_conv", "memory_proj"):
            getattr(cell, name).register_forward_hook(
                lambda *args, name=name, calls=calls: calls.append(name)
            )
        x = torch.randn(2, 2, 5, 5)
        h, state = cell(x)
        assert calls == []
        h0, state0 = cell(x, cell.init_state(x), torch.zeros(2, 4, 5, 5))
        assert calls == ["hidden_conv", "memory_conv", "memory_proj"]
        err = max(max_err(h, h0), max_err(state.c, state0.c), max_err(state.m, state0.m))
        assert err < 1e-6, f"max abs error {err:.3g}"


def test_forget_biases_start_at_one() -> None:
    for layer_norm in (False, True):
        cell = SpatioTemporalLSTMCell(2, 3, layer_norm=layer_norm)
        shift = cell.norm_x.bias if layer_norm else cell.input_conv.bias
        rows = [0, 1, 0, 0, 0, 1, 0]  # i, f, g, o, i', f', g'
        assert torch.equal(shift, torch.tensor(rows, dtype=torch.float32).repeat_interleave(3))


# ---------------------------------------------------------------------------------------------------
# gradients and sequence semantics


def test_every_cell_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    cell = SpatioTemporalLSTMCell(2, 3, 3, memory_channels=4, layer_norm=True)
    x = torch.randn(2, 2, 2, 5, 5)
    _, state = cell(x[0], None, torch.randn(2, 4, 5, 5))
    _, state = cell(x[1], state, torch.randn(2, 4, 5, 5))
    sum(t.square().sum() for t in state).backward()
    for name, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"


@pytest.mark.parametrize("layer_norm", [False, True])
def test_every_stack_parameter_gets_a_gradient(layer_norm: bool) -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, [3, 4], 3, 2, layer_norm=layer_norm, bidirectional=True, dropout=0.2)
    y, (_, c, m) = model(torch.randn(2, 3, 2, 5, 5), lengths=torch.tensor([3, 2]))
    (y.square().sum() + sum(t.sum() for t in c) + m.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"


def test_any_spatial_size() -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, 3, 4, 2)
    for size in [(5, 7), (12, 8)]:
        y, (h, c, m) = model(torch.randn(2, 3, 2, *size))
        assert y.shape == (2, 3, 3, *size) and torch.stack(h).shape == torch.stack(c).shape == (
            2,
            2,
            3,
            *size,
        )
        assert m.shape == (1, 2, 3, *size)


def test_batch_items_are_independent() -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, 3, 3, 2, layer_norm=True).eval()
    x = torch.randn(3, 4, 2, 5, 5)
    x2 = x.clone()
    x2[0] += torch.randn_like(x2[0])
    y, (h, _, m) = model(x)
    y2, (h2, _, m2) = model(x2)
    h, h2 = torch.stack(h), torch.stack(h2)  # one width: nn.LSTM's stacked layout
    assert max(max_err(y[1:], y2[1:]), max_err(h[:, 1:], h2[:, 1:]), max_err(m[:, 1:], m2[:, 1:])) < 1e-6
    assert max_err(y[0], y2[0]) > 1e-3  # the perturbation does reach item 0


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_zero_outputs_and_keep_state(bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, [3, 4], 3, 2, bidirectional=bidirectional).eval()
    x = torch.randn(3, 5, 2, 4, 5)
    lengths = torch.tensor([2, 5, 4])
    y, (h, c, m) = model(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        # a clip run alone, cut at its length, gives the same outputs and final state
        y_b, (h_b, c_b, m_b) = model(x[b : b + 1, :n])
        assert max_err(y[b, :n], y_b[0]) < 1e-6 and y[b, n:].abs().sum() == 0
        err = max([max_err(m[:, b], m_b[:, 0])] + [max_err(u[b], v[0]) for u, v in zip(h + c, h_b + c_b)])
        assert err < 1e-6, f"clip {b}: max abs error {err:.3g}"


def test_bidirectional_is_a_forward_and_a_reversed_run() -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, 3, 3, 2, bidirectional=True).eval()
    x = torch.randn(2, 4, 2, 5, 5)
    y, (h, c, m) = model(x)
    runs = []
    for d in range(2):
        single = SpatioTemporalLSTM(2, 3, 3, 2).eval()
        single.cells.load_state_dict(nn.ModuleList(model.cells[d::2]).state_dict())
        runs.append(single(x if d == 0 else x.flip(1)))
    (y_f, (h_f, c_f, m_f)), (y_b, (h_b, c_b, m_b)) = runs
    h, c, h_f, c_f, h_b, c_b = (torch.stack(s) for s in (h, c, h_f, c_f, h_b, c_b))
    assert y.shape == (2, 4, 6, 5, 5) and h.shape == c.shape == (4, 2, 3, 5, 5) and m.shape == (2, 2, 3, 5, 5)
    err = max(
        max_err(y, torch.cat([y_f, y_b.flip(1)], dim=2)),
        max_err(h[0::2], h_f),  # rows l * D + d, as nn.LSTM
        max_err(h[1::2], h_b),
        max_err(c[0::2], c_f),
        max_err(c[1::2], c_b),
        max_err(m, torch.cat([m_f, m_b])),
    )
    assert err < 1e-6, f"max abs error {err:.3g}"
    states = None
    for t in range(4):  # stepping the backward stack by hand: the reversed clip, one frame at a time
        out, states = model.step(x[:, 3 - t], states, direction=1)
        assert max_err(out, y[:, 3 - t, 3:]) < 1e-6


def test_batch_first_false_is_the_transpose() -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, 3, 3, 2, bidirectional=True).eval()
    time_first = SpatioTemporalLSTM(2, 3, 3, 2, bidirectional=True, batch_first=False).eval()
    time_first.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 2, 5, 5)
    y, (h, _, m) = model(x, lengths=torch.tensor([4, 2]))
    y_t, (h_t, _, m_t) = time_first(x.transpose(0, 1), lengths=torch.tensor([4, 2]))
    h, h_t = torch.stack(h), torch.stack(h_t)
    assert max(max_err(y, y_t.transpose(0, 1)), max_err(h, h_t), max_err(m, m_t)) < 1e-6


def test_state_passed_back_continues_the_sequence() -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, [3, 4], 3, 2).eval()  # h_n and c_n: tuples of per-layer tensors
    x = torch.randn(2, 6, 2, 5, 5)
    y, (h, c, m) = model(x)
    y1, state = model(x[:, :2])
    y2, (h2, c2, m2) = model(x[:, 2:], state)
    assert isinstance(h, tuple) and [t.shape[1] for t in h] == [3, 4] and m.shape == (1, 2, 4, 5, 5)
    err = max(
        [max_err(y, torch.cat([y1, y2], dim=1)), max_err(m, m2)]
        + [max_err(a, b) for a, b in zip(h + c, h2 + c2)]
    )
    assert err < 1e-6, f"max abs error {err:.3g}"
    _, (h_same, _, _) = SpatioTemporalLSTM(2, [3, 3], 3, 2)(x)
    assert isinstance(h_same, tuple) and len(h_same) == 2, "the same type when every layer has one width"


def test_between_layer_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = SpatioTemporalLSTM(2, 3, 3, 2, dropout=0.5)
    plain = SpatioTemporalLSTM(2, 3, 3, 2)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 2, 5, 5)
    assert max_err(model(x)[0], plain(x)[0]) > 1e-3
    assert max_err(model.step(x[:, 0], None)[0], plain.step(x[:, 0], None)[0]) > 1e-3
    single = SpatioTemporalLSTM(2, 3, 3, 1, dropout=0.5)  # nothing between layers: the frames are not dropped
    assert max_err(single(x)[0], single.eval()(x)[0]) == 0
    model.eval()
    assert max_err(model(x)[0], plain(x)[0]) == 0
    assert max_err(model.step(x[:, 0], None)[0], plain.step(x[:, 0], None)[0]) == 0


# ---------------------------------------------------------------------------------------------------
# validation: every bad input names what was expected and what it got


def test_cell_rejects_bad_input() -> None:
    cell = SpatioTemporalLSTMCell(2, 3, 3, memory_channels=4)
    x = torch.randn(2, 2, 5, 5)
    state = cell.init_state(x)
    with pytest.raises(ValueError, match=r"Cell expects x_t \(B, C, H, W\), got shape \(2, 1, 2, 5, 5\)"):
        cell(x[:, None])
    with pytest.raises(ValueError, match=r"floating-point input, got dtype torch\.int64"):
        cell(x.long())
    with pytest.raises(ValueError, match="expects 2 channels, got 3"):
        cell(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"state c must be \(2, 3, 5, 5\), got \(2, 3, 4, 5\)"):
        cell(x, state._replace(c=torch.zeros(2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"state must be \(h, c, m\), got 2 tensors"):
        cell(x, state[:2])
    with pytest.raises(ValueError, match=r"memory must be \(2, 4, 5, 5\), got \(2, 3, 5, 5\)"):
        cell(x, state, torch.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match="expects 2 channels, got 1"):
        cell.init_state(x[:, :1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kernel_size=0), "kernel_size must be an int >= 1"),
        (dict(kernel_size=(3, 3, 3)), "kernel_size must be an int >= 1 or a pair"),
        (dict(hidden_channels=0), "must be >= 1, got in_channels=2, hidden_channels=0"),
        (dict(memory_channels=0), "memory_channels=0"),
        (dict(layer_norm=True, bias=False), "needs bias=True"),
    ],
)
def test_cell_rejects_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SpatioTemporalLSTMCell(**(dict(in_channels=2, hidden_channels=3) | kwargs))


def test_sequence_rejects_bad_input() -> None:
    model = SpatioTemporalLSTM(2, 3, 3, 2)
    x = torch.randn(2, 4, 2, 5, 5)
    h_0 = torch.zeros(2, 2, 3, 5, 5)
    m_0 = torch.zeros(1, 2, 3, 5, 5)
    bad = [
        (lambda: model(x[0]), r"expects x \(B, T, C, H, W\), got shape \(4, 2, 5, 5\)"),
        (lambda: SpatioTemporalLSTM(2, 3, batch_first=False)(x[0]), r"expects x \(T, B, C, H, W\)"),
        (lambda: model(x.to(torch.uint8)), r"floating-point input, got dtype torch\.uint8"),
        (lambda: model(torch.randn(2, 4, 3, 5, 5)), "expects 2 channels, got 3"),
        (lambda: model(x[:, :0]), r"non-empty x \(B, T, C, H, W\), got shape \(2, 0, 2, 5, 5\)"),
        (lambda: model(x, lengths=torch.tensor([5, 2])), r"lengths must be in \[1, T=4\], got \[5, 2\]"),
        (
            lambda: model(x, lengths=torch.tensor([1, 2, 3])),
            r"integers of shape \(2,\), got torch.int64 \(3,\)",
        ),
        (lambda: model(x, lengths=torch.tensor([1.0, 2.0])), "lengths must be integers"),
        (lambda: model(x, (h_0, h_0)), r"state must be a triple \(h_0, c_0, m_0\)"),
        (
            lambda: model(x, (h_0[:1], h_0, m_0)),
            r"h_0 must have shape \(2, 2, 3, 5, 5\), got \(1, 2, 3, 5, 5\)",
        ),
        (
            lambda: model(x, (h_0, h_0[..., :4], m_0)),
            r"c_0 must have shape \(2, 2, 3, 5, 5\), got \(2, 2, 3, 5, 4\)",
        ),
        (lambda: model(x, (h_0, h_0, h_0)), r"m_0 must have shape \(1, 2, 3, 5, 5\), got \(2, 2, 3, 5, 5\)"),
        (
            lambda: SpatioTemporalLSTM(2, [3, 4], 3, 2)(x, (h_0, h_0, m_0)),
            r"h_0 must have shape \[\(2, 3, 5, 5\), \(2, 4, 5, 5\)\]",
        ),
    ]
    for call, match in bad:
        with pytest.raises(ValueError, match=match):
            call()


def test_step_rejects_bad_input() -> None:
    model = SpatioTemporalLSTM(2, [3, 4], 3, 2)
    x = torch.randn(2, 2, 5, 5)
    _, states = model.step(x, None)
    with pytest.raises(ValueError, match=r"step expects x_t \(B, C, H, W\), got shape \(2, 5, 5\)"):
        model.step(x[0], states)
    with pytest.raises(ValueError, match="step expects 2 channels, got 3"):
        model.step(torch.randn(2, 3, 5, 5), states)
    with pytest.raises(ValueError, match="states must hold 2 layer states, got 1"):
        model.step(x, states[:1])
    with pytest.raises(ValueError, match=r"states\[1\]\.m must be \(2, 4, 5, 5\), got \(2, 3, 5, 5\)"):
        model.step(x, [states[0], states[1]._replace(m=states[0].m)])
    with pytest.raises(ValueError, match=r"states\[0\] must be \(h, c, m\), got 2 tensors"):
        model.step(x, [states[0][:2], states[1]])
    with pytest.raises(ValueError, match=r"direction must be in \[0, 0\], got 1"):
        model.step(x, states, direction=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_layers=0), "num_layers must be >= 1, got 0"),
        (
            dict(hidden_channels=[3], num_layers=2),
            r"hidden_channels \[3\] sets 1 layer\(s\) but num_layers=2",
        ),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (dict(dropout=-0.1), r"dropout must be in \[0, 1\)"),
        (dict(hidden_channels=[3, 0], num_layers=2), "channels must be >= 1"),
        (dict(kernel_size=0), "kernel_size must be an int >= 1"),
    ],
)
def test_sequence_rejects_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SpatioTemporalLSTM(**(dict(in_channels=2, hidden_channels=3) | kwargs))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_without_gradients_the_gate_functions_add_the_convolutions_terms(
    layer_norm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # forecasts leave the hidden and memory terms apart for the fused functions to add (a pass less);
    # a step with gradients, and the layer-norm variant, add them first. The results agree
    from lstmvision.cells import _fusion

    torch.manual_seed(0)
    cell = SpatioTemporalLSTMCell(2, 3, 3, layer_norm=layer_norm)
    randomise(cell)
    x, memory = torch.rand(2, 2, 5, 5), torch.rand(2, 3, 5, 5)
    state = SpatioTemporalLSTMState(torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5))
    apart: list[bool] = []
    dual_memory = _fusion.dual_memory

    def spy(*args: object, **kwargs: object) -> object:
        apart.append(args[6] is not None and args[7] is not None)  # the hidden and the memory terms
        return dual_memory(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_fusion, "dual_memory", spy)
    h, new = cell(x, state, memory)
    with torch.no_grad():
        h_ng, new_ng = cell(x, state, memory)
    assert apart == [False, not layer_norm]
    errs = [max_err(a.detach(), b) for a, b in zip((h, *new), (h_ng, *new_ng))]
    assert max(errs) < 1e-6, errs
