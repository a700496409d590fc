"""Eidetic3DLSTMCell / Eidetic3DLSTM: the paper's equations, the recall, memory flow, windows, validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cell_helpers import max_err, randomise
from torch import Tensor, nn

from lstmvision.cells import e3dlstm
from lstmvision.cells.e3dlstm import Eidetic3DLSTM, Eidetic3DLSTMCell, Eidetic3DLSTMState

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------------
# the paper's equations, term by term from slices of the cell's weights, independent of the cell's code


def same_conv(x: Tensor, weight: Tensor) -> Tensor:
    pads = []  # TF "same" at stride 1: (k-1)//2 zeros before, the rest after; F.pad wants x, y, t
    for k in reversed(weight.shape[2:]):
        pads += [(k - 1) // 2, k - 1 - (k - 1) // 2]
    return F.conv3d(F.pad(x, pads), weight)


def layer_norm(v: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    mean = v.mean(dim=(1, 2, 3, 4), keepdim=True)
    var = v.var(dim=(1, 2, 3, 4), unbiased=False, keepdim=True)
    return (v - mean) / torch.sqrt(var + 1e-5) * weight.view(1, -1, 1, 1, 1) + bias.view(1, -1, 1, 1, 1)


def recall(r: Tensor, history: Tensor) -> Tensor:
    """softmax(R Kᵀ) K with K = V = the history, indexed position by position: nothing is reshaped."""
    scores = torch.einsum("bctyx,bcsuv->btyxsuv", r, history)  # query (t, y, x) · key (s, u, v)
    scores = scores.flatten(4)  # (B, w, H, W, n*w*H*W): the key axes, adjacent
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("btyxk,bck->bctyx", weights, history.flatten(2))


def reference_step(
    cell: Eidetic3DLSTMCell, x: Tensor, h: Tensor, c: Tensor, m_in: Tensor, history: list[Tensor]
) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    Hc = cell.hidden_channels

    def term(conv: nn.Conv3d, norm: nn.GroupNorm | None, inp: Tensor, k: int) -> Tensor:
        rows = slice(k * Hc, (k + 1) * Hc)
        z = same_conv(inp, conv.weight[rows])
        if norm is not None:
            z = layer_norm(z, norm.weight[rows], norm.bias[rows])
        if conv.bias is not None:
            z = z + conv.bias[rows].view(1, -1, 1, 1, 1)
        return z

    def gate(k_x: int, conv: nn.Conv3d, norm: nn.GroupNorm | None, inp: Tensor, k: int) -> Tensor:
        return term(cell.input_conv, cell.norm_x, x, k_x) + term(conv, norm, inp, k)

    hidden, memory = (cell.hidden_conv, cell.norm_h, h), (cell.memory_conv, cell.norm_m, m_in)
    i = torch.sigmoid(gate(0, *hidden, 0))
    r = torch.sigmoid(gate(1, *hidden, 1))
    g = torch.tanh(gate(2, *hidden, 2))
    o_xh = gate(3, *hidden, 3)
    i_m = torch.sigmoid(gate(4, *memory, 0))
    f_m = torch.sigmoid(gate(5, *memory, 1))
    g_m = torch.tanh(gate(6, *memory, 2))
    c_new = i * g + layer_norm(
        c + recall(r, torch.cat(history, dim=2)), cell.norm_recall.weight, cell.norm_recall.bias
    )
    m_proj = m_in if cell.memory_proj is None else F.conv3d(m_in, cell.memory_proj.weight)
    m_new = i_m * g_m + f_m * m_proj
    w_o, w_1 = cell.output_conv.weight, cell.fuse_conv.weight
    o = torch.sigmoid(o_xh + same_conv(c_new, w_o[:, :Hc]) + same_conv(m_new, w_o[:, Hc:]))
    h_new = o * torch.tanh(F.conv3d(c_new, w_1[:, :Hc]) + F.conv3d(m_new, w_1[:, Hc:]))
    history = [*history, c_new]
    if cell.recall_window is not None:
        history = history[-cell.recall_window :]
    return h_new, c_new, m_new, history


CELL_CONFIGS = [
    dict(layer_norm=True),
    dict(layer_norm=False, recall_window=2),
    dict(layer_norm=True, recall_window=2, filter_size=(2, 3), window_length=3, memory_channels=4),
    dict(layer_norm=False, filter_size=(3, 2), window_length=1, memory_channels=2),
]


def run_against_reference(config: dict, steps: int = 5) -> float:
    torch.manual_seed(0)
    cell = Eidetic3DLSTMCell(2, 3, **config).double()
    randomise(cell)
    w, hm = cell.window_length, cell.memory_channels
    x = torch.randn(steps, 2, 2, w, 5, 4, dtype=torch.float64)  # (T, B, C, w, H, W)
    memories = torch.randn(steps, 2, hm, w, 5, 4, dtype=torch.float64)  # from a layer below
    zeros = torch.zeros(2, 3, w, 5, 4, dtype=torch.float64)
    h_ref, c_ref, history = zeros, zeros, [zeros]  # the release starts its history with the zero cell
    state, worst = None, 0.0
    for t in range(steps):
        memory = None if t == 0 else memories[t]  # the cell starts from no state and no memory
        h, state = cell(x[t], state, memory)
        m_in = torch.zeros_like(memories[0]) if memory is None else memory
        h_ref, c_ref, m_ref, history = reference_step(cell, x[t], h_ref, c_ref, m_in, history)
        err = max(
            max_err(h, h_ref),
            max_err(state.c, c_ref),
            max_err(state.m, m_ref),
            max_err(state.history, torch.cat(history, dim=2)),
        )
        assert state.history.shape == torch.cat(history, dim=2).shape
        worst = max(worst, err)
    return worst


@pytest.mark.parametrize("config", CELL_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_cell_matches_the_paper_equations(config: dict) -> None:
    err = run_against_reference(config)
    assert err < 1e-10, f"max abs error {err:.3g}"


def test_a_recall_reshaped_without_permuting_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def reshaped(r: Tensor, history: Tensor) -> Tensor:  # OpenSTL's bug: channels mixed with positions
        B, Hc = r.shape[:2]
        q, k = r.reshape(B, 1, -1, Hc), history.reshape(B, 1, -1, Hc)
        return F.scaled_dot_product_attention(q, k, k, scale=1.0).reshape(r.shape)

    r = torch.rand(2, 3, 2, 5, 4, dtype=torch.float64)
    history = torch.randn(2, 3, 6, 5, 4, dtype=torch.float64)
    assert max_err(e3dlstm._recall(r, history), recall(r, history)) < 1e-12
    assert max_err(reshaped(r, history), recall(r, history)) > 1e-2
    monkeypatch.setattr(e3dlstm, "_recall", reshaped)
    assert run_against_reference(CELL_CONFIGS[0]) > 1e-3  # the equation test above would fail


def test_recall_uses_the_fused_attention_kernel() -> None:
    # 3-D inputs to scaled_dot_product_attention fall back to the math kernel, which forms the weights
    r, history = torch.rand(1, 4, 2, 6, 6), torch.randn(1, 4, 8, 6, 6)
    with torch.profiler.profile() as prof:
        e3dlstm._recall(r, history)
    names = {event.key for event in prof.key_averages()}
    assert any("flash" in name for name in names), sorted(names)
    assert not any("attention_math" in name for name in names), sorted(names)


@pytest.mark.parametrize("channels", [32, 64])
def test_under_cpu_bf16_autocast_a_narrow_recall_runs_in_float32(channels: int) -> None:
    # below 64 channels the fused kernel ran faster in float32 than in bf16 (docs/e3d_lstm.md)
    torch.manual_seed(0)
    r, history = torch.rand(2, channels, 2, 3, 3), torch.randn(2, channels, 4, 3, 3)
    with torch.autocast("cpu", torch.bfloat16):
        recalled = e3dlstm._recall(r.bfloat16(), history)
    in_fp32 = e3dlstm._recall(r.bfloat16().float(), history)
    err = max_err(recalled.float(), in_fp32)
    if channels < e3dlstm._RECALL_BF16_FROM:
        assert recalled.dtype == torch.float32 and err < 1e-6, err
    else:
        assert recalled.dtype == torch.bfloat16 and 1e-4 < err < 0.1, err


def test_convolutions_and_states_are_channels_last() -> None:
    # channels-last 3-D convolutions measured 1.17-1.65x faster (docs/e3d_lstm.md); the values are the
    # equation test's. The kernels stay channels-last through a state dict saved in the default layout,
    # and the states come out channels-last, so the next step's convolutions and recall copy nothing
    # float32: oneDNN has no float64 convolutions, and the slow path writes the default layout
    cell = Eidetic3DLSTMCell(2, 3, 3, memory_channels=4)
    cell.load_state_dict({name: value.contiguous() for name, value in cell.state_dict().items()})
    kernels = {name: p for name, p in cell.named_parameters() if p.dim() == 5}
    convs = ("input_conv", "hidden_conv", "memory_conv", "output_conv", "fuse_conv", "memory_proj")
    assert sorted(kernels) == sorted(f"{conv}.weight" for conv in convs)
    for name, kernel in kernels.items():
        assert kernel.is_contiguous(memory_format=torch.channels_last_3d), name
    x = torch.randn(2, 2, 2, 5, 6)  # the default layout, as a data loader gives it
    _, state = cell(x)
    h, state = cell(x, state, torch.randn(2, 4, 2, 5, 6))
    for name, tensor in zip(("h", "c", "m", "history"), state):
        assert tensor.is_contiguous(memory_format=torch.channels_last_3d), name
    assert h.is_contiguous(memory_format=torch.channels_last_3d)


def test_no_state_equals_the_zero_state() -> None:
    for layer_norm in (False, True):
        torch.manual_seed(0)
        cell = Eidetic3DLSTMCell(2, 3, 3, layer_norm=layer_norm, memory_channels=4).double()
        randomise(cell)
        x = torch.randn(2, 2, 2, 5, 6, dtype=torch.float64)
        zero = cell.init_state(x)
        assert all(t.shape == (2, 3, 2, 5, 6) and t.abs().sum() == 0 for t in zero)
        h0, s0 = cell(x)  # convolutions of zeros and the recall skipped
        h1, s1 = cell(x, zero, torch.zeros(2, 4, 2, 5, 6, dtype=torch.float64))
        err = max(max_err(a, b) for a, b in zip((h0, *s0), (h1, *s1)))
        assert err < 1e-12, f"layer_norm={layer_norm}: max abs error {err:.3g}"


# ---------------------------------------------------------------------------------------------------
# memory: M is updated, and the recall carries old frames


def test_memory_changes_after_each_step() -> None:
    torch.manual_seed(0)
    cell = Eidetic3DLSTMCell(2, 3, 3)
    x = torch.randn(3, 2, 2, 2, 5, 5)
    _, s1 = cell(x[0])
    _, s2 = cell(x[1], s1, s1.m)
    _, s3 = cell(x[2], s2, s2.m)
    assert s1.m.abs().sum() > 0
    # the release returns the memory it was given; this cell returns the new one
    assert max_err(s2.m, s1.m) > 1e-3 and max_err(s3.m, s2.m) > 1e-3


def cell_states(model: Eidetic3DLSTM, x: Tensor, clear_c: bool = False) -> list[Tensor]:
    """C of the single layer at every step; clear_c cuts the direct C_{t-1} path (no zigzag memory)."""
    cell = model.cells[0]
    state, cs = None, []
    for window in model.windows(x).unbind(1):
        if clear_c:
            _, state = cell(window, None if state is None else state._replace(c=torch.zeros_like(state.c)))
        else:
            _, states = model.step(window, None if state is None else [state])
            state = states[0]
        cs.append(state.c)
    return cs


def test_an_early_frame_reaches_a_later_cell_state_through_the_recall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    model = Eidetic3DLSTM(1, 3, 3, window_length=2).double()
    x = torch.rand(1, 8, 1, 6, 6, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 1] += 0.5  # frame 1 is in the windows of steps 1 and 2 only
    assert max_err(cell_states(model, x)[6], cell_states(model, x2)[6]) > 1e-3
    with torch.no_grad():
        model.cells[0].hidden_conv.weight.zero_()  # H carries nothing
    assert max_err(cell_states(model, x)[6], cell_states(model, x2)[6]) > 1e-3
    # nor C_{t-1} nor M: only the recall of the history is left, and it still carries frame 1
    assert max_err(cell_states(model, x, True)[6], cell_states(model, x2, True)[6]) > 1e-3
    monkeypatch.setattr(e3dlstm, "_recall", lambda r, history: torch.zeros_like(r))
    assert torch.equal(cell_states(model, x, True)[6], cell_states(model, x2, True)[6])  # control


@pytest.mark.parametrize("recall_window", [None, 1, 3])
def test_history_keeps_the_last_recall_window_steps(recall_window: int | None) -> None:
    torch.manual_seed(0)
    cell = Eidetic3DLSTMCell(2, 3, 3, window_length=2, recall_window=recall_window)
    x = torch.randn(5, 1, 2, 2, 4, 4)
    state, cs = None, [torch.zeros(1, 3, 2, 4, 4)]  # the zero initial cell comes first
    for t in range(5):
        _, state = cell(x[t], state)
        cs.append(state.c)
        kept = cs if recall_window is None else cs[-recall_window:]
        assert torch.equal(state.history, torch.cat(kept, dim=2)), f"step {t}"
    assert state.history.shape[2] == 2 * (6 if recall_window is None else recall_window)


# ---------------------------------------------------------------------------------------------------
# gradients, shapes, sequence semantics


GATES = {"input_conv.weight": 7, "hidden_conv.weight": 4, "memory_conv.weight": 3}


def assert_every_parameter_learns(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"
        gates = next((n for suffix, n in GATES.items() if name.endswith(suffix)), 1)
        for k, block in enumerate(p.grad.chunk(gates)):  # whole gates are dead in the release
            assert block.abs().sum() > 0, f"{name} gate {k} received no gradient"


def test_every_parameter_of_a_cell_gets_a_gradient() -> None:
    torch.manual_seed(0)
    cell = Eidetic3DLSTMCell(2, 3, 3, memory_channels=4, recall_window=2)
    x = torch.randn(3, 2, 2, 2, 5, 5)
    state, loss = None, torch.zeros(())
    for t in range(3):
        h, state = cell(x[t], state, None if t == 0 else torch.randn(2, 4, 2, 5, 5))
        loss = loss + h.square().sum()
    (loss + state.c.sum() + state.m.sum()).backward()
    assert_every_parameter_learns(cell)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_every_parameter_of_a_stack_gets_a_gradient(layer_norm: bool) -> None:
    torch.manual_seed(0)
    model = Eidetic3DLSTM(2, [3, 4], 3, 2, layer_norm=layer_norm)
    y, _ = model(torch.randn(2, 4, 2, 5, 5))
    y.square().sum().backward()
    assert_every_parameter_learns(model)


def test_step_feeds_the_top_memory_to_the_bottom_layer() -> None:
    torch.manual_seed(0)
    model = Eidetic3DLSTM(2, [3, 4], 3, 2).double()
    randomise(model)
    windows = model.windows(torch.randn(2, 3, 2, 5, 5, dtype=torch.float64))
    _, states = model.step(windows[:, 0], None)
    h, new = model.step(windows[:, 1], states)
    h0, s0 = model.cells[0](windows[:, 1], states[0], states[1].m)  # zigzag: the top M from t-1
    h1, s1 = model.cells[1](h0, states[1], s0.m)
    assert max_err(h, h1) == 0 and all(torch.equal(a, b) for a, b in zip(new[0] + new[1], s0 + s1))
    assert max_err(model.cells[0](windows[:, 1], states[0], None)[0], h0) > 1e-6  # and it matters


def test_one_module_runs_at_any_resolution() -> None:
    model = Eidetic3DLSTM(3, [4, 2], 3, 2, window_length=3)
    for size in [(5, 7), (12, 8), (1, 1)]:
        y, states = model(torch.randn(2, 4, 3, *size))
        assert y.shape == (2, 4, 2, 3, *size)
        assert [s.history.shape for s in states] == [(2, 4, 15, *size), (2, 2, 15, *size)]


def test_batch_items_are_independent() -> None:
    torch.manual_seed(0)
    model = Eidetic3DLSTM(2, 3, 3, 2)
    x = torch.randn(3, 4, 2, 6, 5)
    x2 = x.clone()
    x2[0] += torch.randn_like(x2[0])
    y, s = model(x)
    y2, s2 = model(x2)
    assert max_err(y[1:], y2[1:]) < 1e-6 and max_err(s[0].history[1:], s2[0].history[1:]) < 1e-6
    assert max_err(y[0], y2[0]) > 1e-3  # the perturbation does reach item 0


def test_filter_size_sets_every_kernel() -> None:
    model = Eidetic3DLSTM(2, 3, (3, 5), 2, window_length=4)
    for cell in model.cells:
        assert cell.input_conv.weight.shape[2:] == cell.hidden_conv.weight.shape[2:] == (4, 3, 5)
        assert cell.memory_conv.weight.shape[2:] == cell.output_conv.weight.shape[2:] == (4, 3, 5)
        assert cell.input_conv.weight.shape[:2] == (21, cell.in_channels)
        assert cell.fuse_conv.weight.shape == (3, 6, 1, 1, 1)
    assert Eidetic3DLSTMCell(2, 3).kernel_size == (2, 5, 5)  # the release's kernel


def test_forget_bias_starts_at_one() -> None:
    for layer_norm in (False, True):
        cell = Eidetic3DLSTMCell(2, 2, layer_norm=layer_norm)
        shift = cell.norm_x.bias if layer_norm else cell.input_conv.bias
        assert torch.equal(shift, torch.tensor([0.0] * 10 + [1.0] * 2 + [0.0] * 2))  # i r g o i' f' g'


def test_windows_pad_the_start_and_follow_the_stride() -> None:
    x = torch.arange(1.0, 6.0).view(1, 5, 1, 1, 1).expand(2, 5, 1, 2, 3)  # frame t holds t + 1
    windows = Eidetic3DLSTM(1, 2, window_length=3, window_stride=2).windows(x)
    assert windows.shape == (2, 3, 1, 3, 2, 3)  # steps at t = 0, 2, 4
    assert windows[0, :, 0, :, 0, 0].tolist() == [[0, 0, 1], [1, 2, 3], [3, 4, 5]]
    assert Eidetic3DLSTM(1, 2).windows(x)[0, :, 0, :, 1, 2].tolist() == [
        [0, 1],
        [1, 2],
        [2, 3],
        [3, 4],
        [4, 5],
    ]


@pytest.mark.parametrize(("recall_window", "stride"), [(2, 1), (None, 1), (None, 2)])
def test_lengths_keep_state_and_zero_output(recall_window: int | None, stride: int) -> None:
    torch.manual_seed(0)
    model = Eidetic3DLSTM(2, 3, 3, 2, recall_window=recall_window, window_stride=stride).double()
    x = torch.randn(3, 6, 2, 4, 5, dtype=torch.float64)  # one clip alone may take other conv algorithms
    lengths = torch.tensor([2, 6, 5])
    y, states = model(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        # a clip run alone, cut at its length, gives the same outputs and final state
        y_b, states_b = model(x[b : b + 1, :n])
        steps = y_b.shape[1]
        assert max_err(y[b, :steps], y_b[0]) < 1e-6 and y[b, steps:].abs().sum() == 0
        for s, s_b in zip(states, states_b):
            assert max(max_err(s[k][b], s_b[k][0]) for k in range(3)) < 1e-6
            kept = s_b.history.shape[2]  # a shorter history is front-padded with zero cell states
            assert max_err(s.history[b, :, -kept:], s_b.history[0]) < 1e-6
            assert s.history[b, :, :-kept].abs().sum() == 0


def test_state_passed_back_continues_single_frame_windows() -> None:
    torch.manual_seed(0)
    model = Eidetic3DLSTM(2, [3, 4], 3, 2, window_length=1, batch_first=False)
    x = torch.randn(5, 2, 2, 4, 4)  # (T, B, C, H, W)
    y, states = model(x)
    y1, mid = model(x[:2])
    y2, end = model(x[2:], mid)
    assert y.shape == (5, 2, 4, 1, 4, 4)
    err = max(
        [max_err(y, torch.cat([y1, y2]))] + [max_err(a, b) for s, e in zip(states, end) for a, b in zip(s, e)]
    )
    assert err < 1e-6, f"max abs error {err:.3g}"


# ---------------------------------------------------------------------------------------------------
# validation: every bad input names what was expected and what it got


def test_cell_rejects_bad_input() -> None:
    cell = Eidetic3DLSTMCell(2, 3, 3, recall_window=2)
    x = torch.randn(2, 2, 2, 5, 5)
    zero = cell.init_state(x)
    with pytest.raises(ValueError, match=r"expects x_t \(B, C, w, H, W\), got shape \(2, 2, 5, 5\)"):
        cell(x[:, :, 0])
    with pytest.raises(ValueError, match=r"floating-point input, got dtype torch\.int64"):
        cell(x.long())
    with pytest.raises(ValueError, match="expects 2 channels, got 3"):
        cell(torch.randn(2, 3, 2, 5, 5))
    with pytest.raises(ValueError, match="expects windows of 2 frames, got 3"):
        cell(torch.randn(2, 2, 3, 5, 5))
    with pytest.raises(ValueError, match="state must be \\(h, c, m, history\\), got tuple"):
        cell(x, (zero.h, zero.c))
    with pytest.raises(ValueError, match=r"state c must be \(2, 3, 2, 5, 5\), got \(2, 3, 2, 4, 5\)"):
        cell(x, zero._replace(c=torch.zeros(2, 3, 2, 4, 5)))
    with pytest.raises(ValueError, match=r"state m must be \(2, 3, 2, 5, 5\), got \(2, 4, 2, 5, 5\)"):
        cell(x, zero._replace(m=torch.zeros(2, 4, 2, 5, 5)))
    bad = r"history must be \(B, Hc, n\*w, H, W\) = \(2, 3, n\*2, 5, 5\) with 1 <= n <= 2, got \(2, 3, {}, "
    for frames in (3, 6, 0):  # not whole windows, more than recall_window, empty
        with pytest.raises(ValueError, match=bad.format(frames)):
            cell(x, zero._replace(history=torch.zeros(2, 3, frames, 5, 5)))
    with pytest.raises(ValueError, match=r"memory must be \(2, 3, 2, 5, 5\), got \(2, 3, 2, 5, 4\)"):
        cell(x, None, torch.zeros(2, 3, 2, 5, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(hidden_channels=0), "got in_channels=2, hidden_channels=0, memory_channels=0"),
        (dict(memory_channels=0), "got in_channels=2, hidden_channels=3, memory_channels=0"),
        (dict(filter_size=0), "filter_size must be an int >= 1 or a pair of them, got 0"),
        (dict(filter_size=(3, 3, 3)), r"filter_size must be an int >= 1 or a pair of them, got \(3, 3, 3\)"),
        (dict(window_length=0), "window_length must be >= 1, got 0"),
        (dict(recall_window=0), "recall_window must be >= 1 or None, got 0"),
        (dict(layer_norm=True, bias=False), "needs bias=True"),
    ],
)
def test_cell_rejects_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Eidetic3DLSTMCell(**(dict(in_channels=2, hidden_channels=3) | kwargs))


def test_sequence_rejects_bad_input() -> None:
    model = Eidetic3DLSTM(2, 3, 3, 2)
    x = torch.randn(2, 4, 2, 5, 5)
    with pytest.raises(ValueError, match=r"expects x \(B, T, C, H, W\), got shape \(4, 2, 5, 5\)"):
        model(x[0])
    with pytest.raises(ValueError, match=r"expects x \(T, B, C, H, W\)"):
        Eidetic3DLSTM(2, 3, batch_first=False)(x[0])
    with pytest.raises(ValueError, match=r"expects x \(B, T, C, H, W\), got shape \(4, 2, 5, 5\)"):
        model.windows(x[0])
    with pytest.raises(ValueError, match=r"floating-point input, got dtype torch\.uint8"):
        model(x.to(torch.uint8))
    with pytest.raises(ValueError, match=r"expects 2 channels, got 3 in \(2, 4, 3, 5, 5\)"):
        model(torch.randn(2, 4, 3, 5, 5))
    with pytest.raises(ValueError, match="at least one clip and one frame"):
        model(x[:, :0])
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\], got \[5, 2\]"):
        model(x, lengths=torch.tensor([5, 2]))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\], got \[0, 2\]"):
        model(x, lengths=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"lengths must be integers of shape \(2,\), got torch.int64 \(3,\)"):
        model(x, lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="lengths must be integers"):
        model(x, lengths=torch.tensor([1.0, 2.0]))
    _, states = model(x)
    with pytest.raises(ValueError, match=r"states must hold one state per layer \(2\), got 1"):
        model(x, states[:1])
    with pytest.raises(ValueError, match=r"state h must be \(2, 3, 2, 6, 6\), got \(2, 3, 2, 5, 5\)"):
        model(torch.randn(2, 4, 2, 6, 6), states)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((3, 3, 0), {}, "num_layers must be >= 1, got 0"),
        (([3],), dict(num_layers=2), r"hidden_channels \[3\] sets 1 layer\(s\) but num_layers=2"),
        ((3,), dict(window_stride=0), r"window_stride must be in \[1, window_length=2\], got 0"),
        ((3,), dict(window_stride=3), r"window_stride must be in \[1, window_length=2\], got 3"),
        ((3,), dict(window_length=0), "window_length must be >= 1, got 0"),
        ((3,), dict(recall_window=0), "recall_window must be >= 1 or None, got 0"),
        ((0,), {}, "channels must be >= 1"),
    ],
)
def test_sequence_rejects_bad_options(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Eidetic3DLSTM(2, *args, **kwargs)


def test_state_is_a_named_tuple() -> None:
    h, state = Eidetic3DLSTMCell(1, 2, 3)(torch.randn(1, 1, 2, 3, 3))
    assert (
        isinstance(state, Eidetic3DLSTMState) and state.h is h and state._fields == ("h", "c", "m", "history")
    )
