"""MV-LSTM (Rajagopalan et al., ECCV 2016): topologies, parity with nn.LSTM, lengths, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmvision.cells import MultiViewLSTM, MultiViewLSTMCell

pytestmark = pytest.mark.usefixtures("one_thread")


def _copy_view_into_lstm(cell: MultiViewLSTMCell, view: int, lstm: nn.LSTM, suffix: str) -> None:
    """The weights of view ``view``'s own cells into one nn.LSTM direction (no cross-view part)."""
    H = cell.hidden_size
    own = slice(view * H, (view + 1) * H)
    with torch.no_grad():
        getattr(lstm, f"weight_ih{suffix}").copy_(cell.weight_ih[view])
        getattr(lstm, f"weight_hh{suffix}").copy_(cell.weight_hh[view][:, own])
        assert cell.bias is not None
        getattr(lstm, f"bias_ih{suffix}").copy_(cell.bias[view])
        getattr(lstm, f"bias_hh{suffix}").zero_()


def test_one_view_is_exactly_nn_lstm_with_lengths_layers_and_directions() -> None:
    torch.manual_seed(0)
    model = MultiViewLSTM(5, 7, 1, num_layers=2, bidirectional=True).double()
    ref = nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True).double()
    for layer in range(2):
        for direction, tag in enumerate(("", "_reverse")):
            _copy_view_into_lstm(model.cells[2 * layer + direction], 0, ref, f"_l{layer}{tag}")
    x = torch.randn(3, 6, 5, dtype=torch.double)
    lengths = torch.tensor([6, 3, 1])
    out, state = model(x[:, None], lengths=lengths)  # (B, V=1, T, D)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_packed, (ref_h, ref_c) = ref(packed)
    ref_out, _ = nn.utils.rnn.pad_packed_sequence(ref_packed, batch_first=True, total_length=6)
    for name, got, want in (("output", out, ref_out), ("h_n", state.h, ref_h), ("c_n", state.c, ref_c)):
        err = (got - want).abs().max().item()
        assert err < 1e-12, f"{name} differs from nn.LSTM by {err}"


def test_all_view_specific_cells_are_separate_lstms_per_view() -> None:
    torch.manual_seed(0)
    cell_model = MultiViewLSTM([4, 6], 5, 2, view_specific_fraction=1.0).double()
    x = [torch.randn(2, 7, 4, dtype=torch.double), torch.randn(2, 7, 6, dtype=torch.double)]
    out, _ = cell_model(x)
    for view, size in enumerate((4, 6)):
        ref = nn.LSTM(size, 5, batch_first=True).double()
        _copy_view_into_lstm(cell_model.cells[0], view, ref, "_l0")
        want, _ = ref(x[view])
        got = out[..., view * 5 : (view + 1) * 5]
        err = (got - want).abs().max().item()
        assert err < 1e-12, f"view {view} differs from its own nn.LSTM by {err}"


@pytest.mark.parametrize(("fraction", "crosses"), [(1.0, False), (0.5, True), (0.0, True)])
def test_cross_view_cells_hear_the_other_views(fraction: float, crosses: bool) -> None:
    torch.manual_seed(0)
    model = MultiViewLSTM(3, 4, 2, view_specific_fraction=fraction).eval()
    x = torch.randn(1, 2, 5, 3)
    out, _ = model(x)
    x2 = x.clone()
    x2[:, 1] = torch.randn(1, 5, 3)  # change view 1 only
    out2, _ = model(x2)
    view0 = slice(0, 4)
    changed = not torch.allclose(out[..., view0], out2[..., view0])
    assert changed == crosses
    # view 1 reaches view 0 only through the recurrent weights, so not before step 1; there, view 0's
    # view-specific cells (its first round(fraction * 4)) are still untouched, its cross-view cells are not
    # (later view 1 reaches every cell through view 0's cross-view cells)
    specific = round(fraction * 4)
    torch.testing.assert_close(out[:, :2, :specific], out2[:, :2, :specific], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 0, :4], out2[:, 0, :4], rtol=0, atol=0)
    assert torch.allclose(out[:, 1, specific:4], out2[:, 1, specific:4]) != crosses


@pytest.mark.parametrize("V", [2, 3, 5])
def test_every_parameter_gets_a_gradient(V: int) -> None:
    torch.manual_seed(0)
    model = MultiViewLSTM([3 + k for k in range(V)], 4, V, num_layers=2, bidirectional=True)
    out, state = model([torch.randn(2, 4, 3 + k) for k in range(V)])
    assert out.shape == (2, 4, V * 4 * 2) and state.h.shape == (4, 2, V * 4)
    (out.square().sum() + state.c.square().sum()).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"


def test_cell_step_and_state_round_trip() -> None:
    torch.manual_seed(0)
    model = MultiViewLSTM(3, 4, 2).eval()
    x = torch.randn(2, 2, 6, 3)
    whole, _ = model(x)
    first, state = model(x[:, :, :3])
    second, _ = model(x[:, :, 3:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    cell = model.cells[0]
    h, step_state = cell(x[:, :, 0])
    torch.testing.assert_close(h.flatten(1), whole[:, 0])
    assert step_state.c.shape == (2, 2, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m(torch.randn(2, 3, 4, 3)), "expects 2 views, got 3"),
        (lambda m: m(torch.randn(2, 2, 4, 5)), "view 0 expects 3 features, got 5"),
        (lambda m: m(torch.randn(2, 4, 3)), r"expects x \(B, V, T, D\)"),
        (lambda m: m([torch.randn(2, 4, 3), torch.randn(2, 5, 3)]), "share the batch size and time length"),
        (lambda m: m(torch.randn(2, 2, 4, 3).double()), "expects torch.float32 input"),
        (
            lambda m: m(torch.randn(2, 2, 4, 3), lengths=torch.tensor([5, 1])),
            r"lengths must be in \[1, T=4\]",
        ),
        (
            lambda m: m(torch.randn(2, 2, 4, 3), (torch.zeros(1, 2, 7), torch.zeros(1, 2, 7))),
            "expects a state",
        ),
    ],
)
def test_bad_inputs_are_named(call: object, message: str) -> None:
    model = MultiViewLSTM(3, 4, 2)
    with pytest.raises(ValueError, match=message):
        call(model)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(view_specific_fraction=1.5), "view_specific_fraction must be in"),
        (dict(num_views=0), "num_views must be >= 1"),
        (dict(input_size=[3]), "input_size must be an int >= 1 or 2 of them"),
        (dict(hidden_size=0), "hidden_size must be >= 1"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    args = {"input_size": 3, "hidden_size": 4, "num_views": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        MultiViewLSTMCell(**args)
