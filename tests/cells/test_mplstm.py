"""MultiPerspectiveLSTMCell / MultiPerspectiveLSTM: equations, nn.LSTM parity, views, dropout, validation."""

from __future__ import annotations

import pytest
import torch
from cell_helpers import max_err, randomise
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmvision.cells import MPLSTMState, MultiPerspectiveLSTM, MultiPerspectiveLSTMCell

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64

# ---------------------------------------------------------------------------------------------------
# the equations, view by view from the parameters, independent of the cell's code


def reference_step(
    cell: MultiPerspectiveLSTMCell, views: list[Tensor], h: Tensor, c: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(h_t, y (B, V, H), c_t) from the paper's equations, one view at a time."""
    H = cell.hidden_size
    pre = []
    for k, s in enumerate(views):
        z = s @ cell.weight_ih[k].T + h @ cell.weight_hh.T  # the same U for every view
        pre.append(z if cell.bias is None else z + cell.bias[k])
    p = cell.peephole_weight
    for k in range(len(views)):
        i, f, g = pre[k][:, :H], pre[k][:, H : 2 * H], pre[k][:, 2 * H : 3 * H]
        if p is not None:
            i, f = i + p[k, 0] * c, f + p[k, 1] * c  # c is still c^{k-1} here
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    ys = []
    for k in range(len(views)):
        o = pre[k][:, 3 * H :]
        if p is not None:
            o = o + p[k, 2] * c  # the final memory c_t
        ys.append(torch.sigmoid(o) * torch.tanh(c))
    total = ys[0]
    for y in ys[1:]:
        total = total + y
    h_t = total if cell.output_reduction == "sum" else total / len(ys)
    return h_t, torch.stack(ys, dim=1), c


@pytest.mark.parametrize(
    "options",
    [
        dict(peepholes=True, output_reduction="mean"),
        dict(peepholes=False, output_reduction="sum"),
        dict(peepholes=True, bias=False),
    ],
    ids=str,
)
def test_cell_matches_equations(options: dict) -> None:
    torch.manual_seed(0)
    sizes = [2, 4, 3]
    cell = MultiPerspectiveLSTMCell(sizes, 5, 3, **options).double()
    randomise(cell)
    x = [torch.randn(2, 4, d, dtype=F64) for d in sizes]  # V x (B, T, D_k)
    state = None
    h_ref = c_ref = torch.zeros(2, 5, dtype=F64)
    for t in range(4):
        h, y, state = cell.forward_views([v[:, t] for v in x], state)
        h_ref, y_ref, c_ref = reference_step(cell, [v[:, t] for v in x], h_ref, c_ref)
        err = max(max_err(h, h_ref), max_err(y, y_ref), max_err(state.c, c_ref), max_err(state.h, h))
        assert err < 1e-12, f"step {t}: max abs error {err:.3g}"


def test_view_order_matters_and_follows_the_equations() -> None:
    # the views write into the memory in turn: with their parameters and inputs permuted together a sum
    # over views would give the same memory, the sequential update does not
    torch.manual_seed(0)
    cell = MultiPerspectiveLSTMCell(4, 5, 3, peepholes=True).double()
    randomise(cell)
    order = [2, 0, 1]
    permuted = MultiPerspectiveLSTMCell(4, 5, 3, peepholes=True).double()
    with torch.no_grad():
        for k, j in enumerate(order):
            permuted.weight_ih[k].copy_(cell.weight_ih[j])
        permuted.weight_hh.copy_(cell.weight_hh)
        permuted.bias.copy_(cell.bias[order])
        permuted.peephole_weight.copy_(cell.peephole_weight[order])
    x = torch.randn(3, 3, 4, dtype=F64)  # (B, V, D)
    state = MPLSTMState(torch.randn(3, 5, dtype=F64), torch.randn(3, 5, dtype=F64))
    _, s = cell(x, state)
    _, s_perm = permuted(x[:, order], state)
    assert max_err(s.c, s_perm.c) > 1e-3, "permuting the views left c unchanged"
    h_ref, _, c_ref = reference_step(permuted, list(x[:, order].unbind(1)), *state)
    err = max(max_err(s_perm.h, h_ref), max_err(s_perm.c, c_ref))
    assert err < 1e-12, f"max abs error {err:.3g}"


def test_mean_is_sum_over_views() -> None:
    torch.manual_seed(0)
    summed = MultiPerspectiveLSTMCell(3, 4, 5)
    mean = MultiPerspectiveLSTMCell(3, 4, 5, output_reduction="mean")
    mean.load_state_dict(summed.state_dict())
    x = torch.randn(2, 5, 3)
    h_sum, s_sum = summed(x)
    h_mean, s_mean = mean(x)
    assert max_err(h_sum / 5, h_mean) < 1e-6 and max_err(s_sum.c, s_mean.c) == 0


def test_wrapper_stacks_through_per_view_outputs() -> None:
    # layer 2's view k reads layer 1's y^k; the output is layer 2's reduced h
    torch.manual_seed(0)
    sizes = [3, 2]
    model = MultiPerspectiveLSTM(sizes, 4, 2, 2, peepholes=True, output_reduction="mean").double()
    randomise(model)
    x = [torch.randn(2, 5, d, dtype=F64) for d in sizes]
    out, (h_n, c_n) = model(x)
    views = [v.unbind(1) for v in x]  # V x T x (B, D_k)
    steps = [[views[k][t] for k in range(2)] for t in range(5)]  # T x V x (B, D_k)
    for layer, cell in enumerate(model.cells):
        h = c = torch.zeros(2, 4, dtype=F64)
        next_steps = []
        for t in range(5):
            h, y, c = reference_step(cell, steps[t], h, c)
            next_steps.append(list(y.unbind(1)))
            if layer == 1:
                assert max_err(out[:, t], h) < 1e-12, f"step {t}: max abs error {max_err(out[:, t], h):.3g}"
        assert max_err(h_n[layer], h) < 1e-12 and max_err(c_n[layer], c) < 1e-12
        steps = next_steps


# ---------------------------------------------------------------------------------------------------
# torch.nn.LSTM parity: one view, no peepholes, is exactly an LSTM


def test_cell_matches_nn_lstm_cell() -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5).double()
    cell = MultiPerspectiveLSTMCell(3, 5, 1).double()
    with torch.no_grad():
        cell.weight_ih[0].copy_(lstm.weight_ih_l0)
        cell.weight_hh.copy_(lstm.weight_hh_l0)
        cell.bias[0].copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
    x = torch.randn(6, 2, 3, dtype=F64)  # (T, B, D)
    state = (torch.randn(1, 2, 5, dtype=F64), torch.randn(1, 2, 5, dtype=F64))
    y, (h, c) = lstm(x, state)
    s = MPLSTMState(state[0][0], state[1][0])
    for t in range(6):
        h_t, s = cell(x[t, :, None], s)  # (B, V=1, D)
        assert max_err(h_t, y[t]) < 1e-6, f"step {t}: max abs error {max_err(h_t, y[t]):.3g}"
    err = max(max_err(s.h, h[0]), max_err(s.c, c[0]))
    assert err < 1e-6, f"max abs error {err:.3g}"


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "batch_first", "with_state"),
    [(1, False, True, True), (2, True, True, True), (2, True, False, False), (3, False, True, False)],
)
def test_matches_nn_lstm(num_layers: int, bidirectional: bool, batch_first: bool, with_state: bool) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, num_layers, batch_first=batch_first, bidirectional=bidirectional).double()
    model = MultiPerspectiveLSTM.from_lstm(lstm)
    assert model.cells[0].weight_ih[0].dtype == F64 and model.batch_first == batch_first
    x = torch.randn(3, 6, 3, dtype=F64)  # (B, T, D) or (T, B, D)
    D = 2 if bidirectional else 1
    B = 3 if batch_first else 6
    state = None
    if with_state:
        state = (torch.randn(num_layers * D, B, 5, dtype=F64), torch.randn(num_layers * D, B, 5, dtype=F64))
    y, (h, c) = lstm(x, state)
    view_axis = 1 if batch_first else 2
    y2, (h2, c2) = model(x.unsqueeze(view_axis), state)  # V = 1
    err = max(max_err(y, y2), max_err(h, h2), max_err(c, c2))
    assert err < 1e-6, f"max abs error {err:.3g}"


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_match_packed_nn_lstm(bidirectional: bool) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, 2, batch_first=True, bidirectional=bidirectional).double()
    model = MultiPerspectiveLSTM.from_lstm(lstm)
    x = torch.randn(4, 6, 3, dtype=F64)
    lengths = torch.tensor([3, 6, 1, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    y_packed, (h, c) = lstm(packed)
    y, _ = pad_packed_sequence(y_packed, batch_first=True, total_length=6)
    y2, (h2, c2) = model([x], lengths=lengths)  # a list of one view
    err = max(max_err(y, y2), max_err(h, h2), max_err(c, c2))
    assert err < 1e-6, f"max abs error {err:.3g}"
    assert y2[0, 3:].abs().sum() == 0 and y2[2, 1:].abs().sum() == 0


def test_from_lstm_rejects_projection() -> None:
    with pytest.raises(ValueError, match="without projection, got proj_size=2"):
        MultiPerspectiveLSTM.from_lstm(nn.LSTM(3, 4, proj_size=2))


# ---------------------------------------------------------------------------------------------------
# views, gradients, state


@pytest.mark.parametrize("num_views", [2, 3, 5])
def test_every_parameter_gets_a_gradient(num_views: int) -> None:
    torch.manual_seed(0)
    sizes = [2 + k for k in range(num_views)]  # unequal sizes: a list input
    model = MultiPerspectiveLSTM(sizes, 3, num_views, 2, bidirectional=True, peepholes=True)
    randomise(model)  # peepholes start at 0, which would hide a dead term
    x = [torch.randn(2, 4, d) for d in sizes]
    y, (h, c) = model(x, lengths=torch.tensor([4, 3]))
    assert y.shape == (2, 4, 6) and h.shape == c.shape == (4, 2, 3)
    (y.square().sum() + c.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"


def test_tensor_and_list_inputs_agree() -> None:
    torch.manual_seed(0)
    model = MultiPerspectiveLSTM(3, 4, 3, batch_first=False)
    x = torch.randn(5, 2, 3, 3)  # (T, B, V, D)
    y, (h, _) = model(x)
    y2, (h2, _) = model(list(x.unbind(2)))  # V x (T, B, D)
    assert y.shape == (5, 2, 4) and max_err(y, y2) == 0 and max_err(h, h2) == 0
    cell = model.cells[0]
    h_t, _ = cell(x[0])
    h_t2, _ = cell(tuple(x[0].unbind(1)))
    assert max_err(h_t, h_t2) == 0


def test_state_and_initialisation() -> None:
    torch.manual_seed(0)
    cell = MultiPerspectiveLSTMCell(2, 3, 2, peepholes=True)
    assert cell.peephole_weight.abs().sum() == 0
    assert all(p.abs().max() <= 3**-0.5 for n, p in cell.named_parameters() if n != "peephole_weight")
    x = torch.randn(4, 2, 2)
    zero = cell.init_state(x)
    assert zero.h.shape == zero.c.shape == (4, 3) and zero.h.abs().sum() == 0
    h1, s1 = cell(x, zero)
    h0, s0 = cell(x)  # no state = zero state
    assert torch.equal(h1, s1.h) and max_err(h0, h1) < 1e-6 and max_err(s0.c, s1.c) < 1e-6
    _, s2 = cell(x, s1)
    assert max_err(s1.c, s2.c) > 1e-4 and max_err(s1.h, s2.h) > 1e-4


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_keep_state_and_zero_output(bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = MultiPerspectiveLSTM([2, 3], 3, 2, 2, bidirectional=bidirectional, peepholes=True).eval()
    randomise(model)
    x = [torch.randn(3, 5, 2), torch.randn(3, 5, 3)]
    lengths = torch.tensor([2, 5, 4])
    y, (h, c) = model(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        # a sequence run alone, cut at its length, gives the same outputs and final state
        y_b, (h_b, c_b) = model([v[b : b + 1, :n] for v in x])
        assert max_err(y[b, :n], y_b[0]) < 1e-6 and y[b, n:].abs().sum() == 0
        assert max_err(h[:, b], h_b[:, 0]) < 1e-6 and max_err(c[:, b], c_b[:, 0]) < 1e-6


def test_state_passed_back_continues_the_sequence() -> None:
    torch.manual_seed(0)
    model = MultiPerspectiveLSTM(2, 3, 3, 2).eval()
    x = torch.randn(2, 3, 6, 2)  # (B, V, T, D)
    y, (h, c) = model(x)
    y1, state = model(x[:, :, :2])
    y2, (h2, c2) = model(x[:, :, 2:], state)
    err = max(max_err(y, torch.cat([y1, y2], dim=1)), max_err(h, h2), max_err(c, c2))
    assert err < 1e-6, f"max abs error {err:.3g}"


# ---------------------------------------------------------------------------------------------------
# dropout: one mask per view and sequence, nothing dropped in eval


def record_input_gates(model: MultiPerspectiveLSTM) -> list[list[Tensor]]:
    """The (dropped-out) views every cell's input_gates receives, in call order."""
    calls: list[list[Tensor]] = []
    for cell in model.cells:
        original = cell.input_gates

        def spy(views, original=original) -> Tensor:
            calls.append([v.detach().clone() for v in views])
            return original(views)

        cell.input_gates = spy
    return calls


def test_input_dropout_mask_per_view_and_per_sequence() -> None:
    torch.manual_seed(0)
    model = MultiPerspectiveLSTM(16, 4, 3, input_dropout=0.5)
    calls = record_input_gates(model)
    x = torch.ones(4, 3, 5, 16)  # identical views: a dropped input is exactly 0, a kept one 2
    model(x)
    (views,) = calls  # one projection call for all steps
    for v in views:  # (B, T, D): the same mask at every step
        assert set(v.unique().tolist()) == {0.0, 2.0}
        assert all(torch.equal(v[:, 0], v[:, t]) for t in range(1, 5))
    dropped = [v[:, 0] == 0 for v in views]
    assert not torch.equal(dropped[0], dropped[1]) and not torch.equal(dropped[1], dropped[2])
    model(x)  # a new sequence draws new masks
    assert not torch.equal(calls[0][0], calls[1][0])


def test_recurrent_dropout_is_one_mask_per_sequence() -> None:
    torch.manual_seed(0)
    model = MultiPerspectiveLSTM(3, 4, 2, recurrent_dropout=0.5)
    plain = MultiPerspectiveLSTM(3, 4, 2)
    plain.load_state_dict(model.state_dict())
    cell = model.cells[0]
    x = torch.randn(2, 2, 5, 3)
    assert max_err(model(x)[0], plain(x)[0]) > 1e-3  # recurrent dropout changes the output

    masks = cell.sample_dropout_masks([x[:, 0, 0], x[:, 1, 0]])
    assert masks[0] is None and masks[1] is not None and masks[1].shape == (2, 4)
    draws = []
    cell.sample_dropout_masks = lambda views: draws.append(1) or masks  # type: ignore[method-assign]
    y, _ = model(x)
    assert len(draws) == 1  # drawn once for the whole sequence
    s: MPLSTMState | None = None
    for t in range(5):
        # the step with the mask equals the undropped cell fed the masked hidden state
        h_ref, _ = plain.cells[0](x[:, :, t], None if s is None else MPLSTMState(s.h * masks[1], s.c))
        h, s = cell(x[:, :, t], s, dropout_masks=masks)
        assert max_err(y[:, t], h) < 1e-6 and max_err(h, h_ref) < 1e-6


def test_dropout_off_in_eval_and_between_layers() -> None:
    torch.manual_seed(0)
    options = dict(input_dropout=0.3, recurrent_dropout=0.3, dropout=0.5)
    model = MultiPerspectiveLSTM(3, 4, 2, 2, **options)
    plain = MultiPerspectiveLSTM(3, 4, 2, 2)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 2, 5, 3)
    assert max_err(model(x)[0], plain(x)[0]) > 1e-3
    between = MultiPerspectiveLSTM(3, 4, 2, 2, dropout=0.5)
    between.load_state_dict(model.state_dict())
    assert max_err(between(x)[0], plain(x)[0]) > 1e-3
    model.eval()
    y1, y2 = model(x)[0], model(x)[0]
    assert max_err(y1, y2) == 0 and max_err(y1, plain(x)[0]) == 0


# ---------------------------------------------------------------------------------------------------
# validation: every bad input names what was expected and what it got


def test_cell_rejects_bad_input() -> None:
    cell = MultiPerspectiveLSTMCell([2, 3, 2], 4, 3)
    x = [torch.randn(5, 2), torch.randn(5, 3), torch.randn(5, 2)]
    with pytest.raises(
        ValueError, match=r"expects x \(B, V, D\) or a list of V tensors \(B, D_k\), got shape"
    ):
        cell(torch.randn(5, 3))
    with pytest.raises(ValueError, match="expects 3 views, got 2"):
        cell(x[:2])
    with pytest.raises(ValueError, match="view 1 expects 3 features, got 2"):
        cell(torch.randn(5, 3, 2))
    with pytest.raises(ValueError, match=r"got a view of shape \(5, 1, 3\)"):
        cell([x[0], x[1][:, None], x[2]])
    with pytest.raises(
        ValueError, match=r"must share the batch size and time length, got \[\(5, 2\), \(4, 3\)"
    ):
        cell([x[0], x[1][:4], x[2]])
    with pytest.raises(
        ValueError, match=r"\(view 2\) expects a floating-point input, got dtype torch\.int64"
    ):
        cell([x[0], x[1], x[2].long()])
    with pytest.raises(ValueError, match=r"\(view 0\) expects torch\.float32 input .* got torch\.float64"):
        cell([x[0].double(), x[1], x[2]])
    with pytest.raises(ValueError, match=r"state c must be \(5, 4\), got \(5, 3\)"):
        cell(x, (torch.zeros(5, 4), torch.zeros(5, 3)))
    with pytest.raises(ValueError, match="state must be a pair"):
        cell(x, (torch.zeros(5, 4),))
    with pytest.raises(TypeError, match=r"as torch\.Tensor\(s\), got str"):
        cell("views")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            dict(input_size=[2, 3]),
            r"input_size must be an int >= 1 or 3 of them \(one per view\), got \[2, 3\]",
        ),
        (dict(input_size=0), "input_size must be an int >= 1"),
        (dict(num_views=0), "num_views must be >= 1, got 0"),
        (dict(hidden_size=0), "hidden_size must be >= 1, got 0"),
        (dict(output_reduction="max"), "output_reduction must be 'sum' or 'mean', got 'max'"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (dict(recurrent_dropout=-0.1), r"recurrent_dropout must be in \[0, 1\), got -0.1"),
    ],
)
def test_cell_rejects_bad_options(kwargs: dict, match: str) -> None:
    options = dict(input_size=2, hidden_size=3, num_views=3) | kwargs
    with pytest.raises(ValueError, match=match):
        MultiPerspectiveLSTMCell(**options)


def test_sequence_rejects_bad_input() -> None:
    model = MultiPerspectiveLSTM(2, 3, 3, 2)
    x = torch.randn(2, 3, 4, 2)  # (B, V, T, D)
    with pytest.raises(
        ValueError, match=r"expects x \(B, V, T, D\) or a list of V tensors \(B, T, D_k\), got"
    ):
        model(x[0])
    with pytest.raises(ValueError, match=r"expects x \(T, B, V, D\)"):
        MultiPerspectiveLSTM(2, 3, 3, batch_first=False)(x[0])
    with pytest.raises(ValueError, match="expects 3 views, got 2"):
        model(x[:, :2])
    with pytest.raises(ValueError, match="view 0 expects 2 features, got 5"):
        model(torch.randn(2, 3, 4, 5))
    with pytest.raises(
        ValueError, match=r"share the batch size and time length, got \[\(2, 4, 2\), \(2, 3, 2\)"
    ):
        model([x[:, 0], x[:, 1, :3], x[:, 2]])
    with pytest.raises(ValueError, match=r"floating-point input, got dtype torch\.uint8"):
        model(x.to(torch.uint8))
    with pytest.raises(ValueError, match="at least one sequence and one step"):
        model(x[:, :, :0])
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\], got \[5, 2\]"):
        model(x, lengths=torch.tensor([5, 2]))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\], got \[0, 2\]"):
        model(x, lengths=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"lengths must be integers of shape \(2,\), got torch.int64 \(3,\)"):
        model(x, lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 3\), got \(1, 2, 3\)"):
        model(x, (torch.zeros(1, 2, 3), torch.zeros(2, 2, 3)))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2, 3\), got \(2, 2, 4\)"):
        model(x, (torch.zeros(2, 2, 3), torch.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match="state must be a pair"):
        model(x, torch.zeros(2, 2, 3))
    with pytest.raises(ValueError, match="num_layers must be >= 1, got 0"):
        MultiPerspectiveLSTM(2, 3, 3, 0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        MultiPerspectiveLSTM(2, 3, 3, dropout=1.5)
    with pytest.raises(ValueError, match=r"input_size must be an int >= 1 or 3 of them"):
        MultiPerspectiveLSTM([2, 2], 3, 3)
