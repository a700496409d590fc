"""The edges every cell and sequence layer shares: layers from a width list, the input's type and
channel layout, one type for the final states, and what torch.jit.script / torch.compile do."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from lstmvision.cells import (
    ConvLSTM,
    ConvLSTMCell,
    Eidetic3DLSTM,
    Eidetic3DLSTMCell,
    MultiPerspectiveLSTM,
    MultiPerspectiveLSTMCell,
    MultiViewLSTM,
    MultiViewLSTMCell,
    SpatioTemporalLSTM,
    SpatioTemporalLSTMCell,
)
from lstmvision.models import ConvLSTMPredictor

pytestmark = pytest.mark.usefixtures("one_thread")

# the three stacked layers that take a width per layer, built from a width list only
STACKS: dict[str, Callable[..., nn.Module]] = {
    "ConvLSTM": lambda hidden, **kw: ConvLSTM(2, hidden, 3, **kw),
    "SpatioTemporalLSTM": lambda hidden, **kw: SpatioTemporalLSTM(2, hidden, 3, **kw),
    "Eidetic3DLSTM": lambda hidden, **kw: Eidetic3DLSTM(2, hidden, 3, **kw),
}


# ---------------------------------------------------------------------------------------------------
# a width list sets num_layers


@pytest.mark.parametrize("name", list(STACKS))
def test_a_width_list_sets_the_number_of_layers(name: str) -> None:
    torch.manual_seed(0)
    model = STACKS[name]([5, 3]).eval()
    assert model.num_layers == 2 and model.hidden_channels == [5, 3]
    assert [cell.hidden_channels for cell in model.cells] == [5, 3]
    y, _ = model(torch.rand(2, 3, 2, 6, 6))
    assert y.shape[2] == 3  # the top layer's width
    # the same network as when num_layers is given and agrees
    explicit = STACKS[name]([5, 3], num_layers=2).eval()
    explicit.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 2, 6, 6)
    assert torch.equal(explicit(x)[0], model(x)[0])


@pytest.mark.parametrize("name", list(STACKS))
def test_an_int_width_keeps_one_layer_unless_num_layers_says_more(name: str) -> None:
    assert STACKS[name](4).num_layers == 1
    assert [cell.hidden_channels for cell in STACKS[name](4, num_layers=3).cells] == [4, 4, 4]


@pytest.mark.parametrize("name", list(STACKS))
def test_num_layers_disagreeing_with_the_width_list_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"hidden_channels \[5, 3\] sets 2 layer\(s\) but num_layers=3"):
        STACKS[name]([5, 3], num_layers=3)
    with pytest.raises(ValueError, match=r"hidden_channels must list at least one layer, got \[\]"):
        STACKS[name]([])
    with pytest.raises(ValueError, match=r"num_layers must be an int >= 1 or None, got 2\.0"):
        STACKS[name](4, num_layers=2.0)


# ---------------------------------------------------------------------------------------------------
# a NumPy array (or anything not a tensor) is a TypeError naming both types

NOT_TENSOR = np.zeros((2, 3, 2, 6, 6), dtype=np.float32)

ENTRY_POINTS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "ConvLSTMCell": (lambda: ConvLSTMCell(2, 3), "x_t"),
    "ConvLSTM": (lambda: ConvLSTM(2, 3), "x"),
    "SpatioTemporalLSTMCell": (lambda: SpatioTemporalLSTMCell(2, 3), "x_t"),
    "SpatioTemporalLSTM": (lambda: SpatioTemporalLSTM(2, 3), "x"),
    "Eidetic3DLSTMCell": (lambda: Eidetic3DLSTMCell(2, 3), "x_t"),
    "Eidetic3DLSTM": (lambda: Eidetic3DLSTM(2, 3), "x"),
    "MultiPerspectiveLSTMCell": (lambda: MultiPerspectiveLSTMCell(2, 3, 2), "x"),
    "MultiPerspectiveLSTM": (lambda: MultiPerspectiveLSTM(2, 3, 2), "x"),
    "MultiViewLSTMCell": (lambda: MultiViewLSTMCell(2, 4, 2), "x"),
    "MultiViewLSTM": (lambda: MultiViewLSTM(2, 4, 2), "x"),
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_a_numpy_array_is_a_type_error_naming_both_types(name: str) -> None:
    build, argument = ENTRY_POINTS[name]
    with pytest.raises(TypeError, match=rf"{name} expects {argument}.*torch\.Tensor.*got .*ndarray"):
        build()(NOT_TENSOR)


def test_the_numpy_message_says_how_to_convert() -> None:
    with pytest.raises(TypeError, match=r"got numpy\.ndarray \(convert it with torch\.from_numpy\(x\)\)"):
        ConvLSTM(2, 3)(NOT_TENSOR)
    with pytest.raises(TypeError, match=r"expects x to be a torch\.Tensor, got builtins\.list"):
        ConvLSTM(2, 3)(NOT_TENSOR.tolist())
    with pytest.raises(TypeError, match=r"SpatioTemporalLSTM\.step expects x_t to be a torch\.Tensor"):
        SpatioTemporalLSTM(2, 3).step(NOT_TENSOR[0], None)


# ---------------------------------------------------------------------------------------------------
# a channels-last input: the channel message shows the permute


@pytest.mark.parametrize("name", list(STACKS))
def test_channels_last_clips_get_the_permute_in_the_message(name: str) -> None:
    torch.manual_seed(0)
    model = STACKS[name]([4]).eval()
    frames = torch.rand(2, 3, 2, 6, 7)  # (B, T, C, H, W)
    channels_last = frames.permute(0, 1, 3, 4, 2).contiguous()  # (B, T, H, W, C), as NumPy / Keras hold it
    pattern = rf"{name} expects 2 channels, got 6 in \(2, 3, 6, 7, 2\); .*x\.permute\(0, 1, 4, 2, 3\)"
    with pytest.raises(ValueError, match=pattern):
        model(channels_last)
    # the suggested permute gives back exactly the channels-first clips
    assert torch.equal(model(channels_last.permute(0, 1, 4, 2, 3))[0], model(frames)[0])


def test_channels_last_frames_get_the_permute_of_their_rank() -> None:
    with pytest.raises(
        ValueError, match=r"expects 2 channels, got 5 in \(3, 5, 6, 2\); .*x\.permute\(0, 3, 1, 2\)"
    ):
        ConvLSTMCell(2, 3)(torch.rand(3, 5, 6, 2))
    # a plain mismatch (no axis holds the expected count at the end) gets no permute hint
    with pytest.raises(ValueError, match=r"expects 2 channels, got 3 in \(3, 3, 6, 5\)$"):
        ConvLSTMCell(2, 3)(torch.rand(3, 3, 6, 5))


# ---------------------------------------------------------------------------------------------------
# (h_n, c_n) of ConvLSTM: tuples of per-layer tensors, whatever the widths


@pytest.mark.parametrize(
    ("hidden", "bidirectional"), [(3, False), ([3, 3], True), ([3, 5], False), ([4, 2], True)]
)
def test_final_states_are_tuples_of_per_layer_tensors(hidden: int | list[int], bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, hidden, 3, bidirectional=bidirectional).eval()
    x = torch.rand(2, 4, 2, 5, 6)
    y, (h_n, c_n) = model(x)
    widths = [hidden] if isinstance(hidden, int) else hidden
    D = 2 if bidirectional else 1
    assert type(h_n) is tuple and type(c_n) is tuple
    assert [tuple(h.shape) for h in h_n] == [(2, w, 5, 6) for w in widths for _ in range(D)]
    assert [tuple(c.shape) for c in c_n] == [tuple(h.shape) for h in h_n]
    # row l * D + d is layer l, direction d, as nn.LSTM: the top forward row is the last output step
    top = widths[-1]
    assert torch.equal(h_n[-D], y[:, -1, :top])
    # the returned state continues the clips exactly
    y1, state = model(x[:, :2])
    y2, (h2, c2) = model(x[:, 2:], state)
    if not bidirectional:  # a backward pass over the whole clip cannot be split in time
        pairs = [(y, torch.cat([y1, y2], dim=1)), *zip(h_n + c_n, h2 + c2)]
        err = max((a - b).abs().max().item() for a, b in pairs)
        assert err < 1e-6, f"continued state differs by {err}"


def test_a_stacked_initial_state_is_still_accepted_when_layers_share_a_shape() -> None:
    torch.manual_seed(0)
    model = ConvLSTM(2, [3, 3], 3).eval()
    x = torch.rand(2, 3, 2, 5, 5)
    h0, c0 = torch.rand(2, 2, 3, 5, 5), torch.rand(2, 2, 3, 5, 5)
    y_stacked, (h_a, _) = model(x, (h0, c0))
    y_tuple, (h_b, _) = model(x, (tuple(h0), tuple(c0)))
    assert torch.equal(y_stacked, y_tuple) and all(torch.equal(a, b) for a, b in zip(h_a, h_b))


# ---------------------------------------------------------------------------------------------------
# torch.jit.script is refused with a pointer to torch.compile; torch.compile works

SCRIPTED: dict[str, Callable[[], nn.Module]] = {
    "ConvLSTMCell": lambda: ConvLSTMCell(2, 3),
    "ConvLSTM": lambda: ConvLSTM(2, 3),
    "SpatioTemporalLSTMCell": lambda: SpatioTemporalLSTMCell(2, 3),
    "Eidetic3DLSTM": lambda: Eidetic3DLSTM(2, 3),
    "MultiViewLSTMCell": lambda: MultiViewLSTMCell(2, 4, 2),
}


@pytest.mark.parametrize("name", list(SCRIPTED))
def test_torch_jit_script_is_refused_with_the_documented_message(name: str) -> None:
    with pytest.raises(RuntimeError, match=rf"{name} does not support torch\.jit\.script .*torch\.compile"):
        torch.jit.script(SCRIPTED[name]())


def test_a_model_holding_cells_is_refused_by_its_cells() -> None:
    model = ConvLSTMPredictor(1, patch_size=2, num_hidden=[3], filter_size=3, input_length=2, total_length=3)
    with pytest.raises(RuntimeError, match=r"ConvLSTMCell does not support torch\.jit\.script"):
        torch.jit.script(model)


def test_torch_compile_matches_eager() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, peephole=True).eval()
    x = torch.rand(2, 2, 6, 6)
    state = cell.init_state(x)
    compiled = torch.compile(cell, backend="eager", fullgraph=False)
    eager_h, eager_state = cell(x, state)
    h, new = compiled(x, state)
    err = max((h - eager_h).abs().max().item(), (new.c - eager_state.c).abs().max().item())
    assert err < 1e-6, f"compiled differs from eager by {err}"


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        ("ConvLSTMPredictor", "frames"),
        ("PredRNNPredictor", "frames"),
        ("E3DLSTMClassifier", "frames"),
        ("CNNLSTM", "clips"),
    ],
)
def test_the_models_refuse_a_numpy_array_with_a_type_error(name: str, argument: str) -> None:
    from lstmvision import models

    builders: dict[str, Callable[[], nn.Module]] = {
        "ConvLSTMPredictor": lambda: models.ConvLSTMPredictor(
            1, num_hidden=[4], input_length=2, total_length=4
        ),
        "PredRNNPredictor": lambda: models.PredRNNPredictor(
            1, num_hidden=[4], input_length=2, total_length=4
        ),
        "E3DLSTMClassifier": lambda: models.E3DLSTMClassifier(1, 3, num_hidden=[4]),
        "CNNLSTM": lambda: models.CNNLSTM(3, in_channels=3, hidden_size=8),
    }
    frames = np.zeros((2, 4, 1, 8, 8), dtype=np.float32)
    with pytest.raises(
        TypeError, match=rf"{name} expects {argument} to be a torch\.Tensor, got numpy\.ndarray"
    ):
        builders[name]()(frames)
