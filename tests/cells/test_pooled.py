"""Pooled weight gradients (cells/_pooled.py): one weight-gradient convolution per weight and sequence
under bf16 autocast on the CPU, the same gradients as autograd's per-step sum (closer to fp32), and the
plain path wherever pooling does not apply."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from cell_helpers import max_err, randomise
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from lstmvision.cells import (
    ConvLSTM,
    Eidetic3DLSTM,
    SpatioTemporalLSTM,
    SpatioTemporalLSTMCell,
    _pooled,
    convlstm,
    sequence_pass,
    set_weight_grad_pooling,
    stlstm,
    weight_grad_pooling,
)
from lstmvision.models import ConvLSTMPredictor, E3DLSTMPredictor, PredRNNPredictor

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def pool_tiny_convolutions(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tests' cells are tiny; the size rule has a test of its own
    monkeypatch.setattr(_pooled, "_MIN_MACS_PER_VALUE", 0)


class WeightGradCalls(TorchDispatchMode):
    """Counts ``convolution_backward`` calls that compute a weight gradient, by weight shape."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[tuple[int, ...], int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func is torch.ops.aten.convolution_backward.default and args[10][1]:
            shape = tuple(args[2].shape)
            self.calls[shape] = self.calls.get(shape, 0) + 1
        return func(*args, **(kwargs or {}))


def _layers() -> dict[str, tuple[nn.Module, Tensor]]:
    torch.manual_seed(0)
    layers = {
        "convlstm": (ConvLSTM(2, 4, 3, num_layers=2), torch.rand(2, 5, 2, 6, 6)),
        "stlstm": (SpatioTemporalLSTM(2, 4, 3, num_layers=2), torch.rand(2, 5, 2, 6, 6)),
        "e3dlstm": (Eidetic3DLSTM(2, 4, 3, num_layers=2, recall_window=2), torch.rand(2, 5, 2, 4, 4)),
    }
    for layer, _ in layers.values():
        randomise(layer)
    return layers


def _grads(layer: nn.Module, x: Tensor, *, bf16: bool, pool: bool) -> dict[str, Tensor]:
    layer.zero_grad(set_to_none=True)
    with weight_grad_pooling(pool), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        y = layer(x)[0]
    y.float().square().mean().backward()
    return {name: p.grad.clone() for name, p in layer.named_parameters() if p.grad is not None}


def _conv_weights(layer: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(m.weight.shape) for m in layer.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]


@pytest.fixture
def convs_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # the cells' convolutions one by one, as layer norm keeps them: under bf16 the ConvLSTM cell (in
    # training) and the ST-LSTM cell otherwise join their input convolution with the recurrent ones
    # (tested below)
    monkeypatch.setattr(stlstm, "_JOIN_CONVS", False)
    monkeypatch.setattr(convlstm, "_JOIN_CONVS", False)


@pytest.mark.usefixtures("convs_apart")
@pytest.mark.parametrize("name", ["convlstm", "stlstm", "e3dlstm"])
def test_bf16_weight_gradients_come_from_one_call_per_weight_and_equal_the_per_step_sum(name: str) -> None:
    layer, x = _layers()[name]
    T = x.shape[1]
    plain = _grads(layer, x, bf16=True, pool=False)
    with WeightGradCalls() as calls:
        pooled = _grads(layer, x, bf16=True, pool=True)
    # every convolution weight got its gradient from one call, where autograd made one per step
    shapes = _conv_weights(layer)
    assert calls.calls and set(calls.calls) == set(shapes), (calls.calls, shapes)
    assert all(calls.calls[s] == shapes.count(s) for s in shapes), calls.calls
    with WeightGradCalls() as per_step:
        _grads(layer, x, bf16=True, pool=False)
    assert max(per_step.calls.values()) >= T - 1
    assert plain.keys() == pooled.keys()
    for key in plain:  # the same sums, rounded differently in bf16
        scale = plain[key].abs().max().item()
        assert max_err(pooled[key], plain[key]) <= 0.03 * scale + 1e-6, (
            key,
            max_err(pooled[key], plain[key]),
        )


def test_pooled_bf16_gradients_lie_closer_to_fp32_than_the_per_step_sum() -> None:
    # one kernel accumulates the pooled sum in fp32; autograd adds T bf16 gradients in bf16
    torch.manual_seed(0)
    model = ConvLSTMPredictor(
        1, patch_size=4, num_hidden=[16, 16], filter_size=3, input_length=4, total_length=8
    )
    frames = torch.rand(4, 8, 1, 16, 16)

    def weight_grads(bf16: bool, pool: bool) -> Tensor:
        model.zero_grad(set_to_none=True)
        with weight_grad_pooling(pool), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            pred = model(frames)
        F.mse_loss(pred.float(), frames[:, 1:]).backward()
        return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if "cells" in n])

    reference = weight_grads(False, False)
    per_step = (weight_grads(True, False) - reference).norm() / reference.norm()
    pooled = (weight_grads(True, True) - reference).norm() / reference.norm()
    assert pooled < per_step, (pooled.item(), per_step.item())
    assert pooled < 1e-2


@pytest.mark.parametrize("model_class", [ConvLSTMPredictor, PredRNNPredictor, E3DLSTMPredictor])
@pytest.mark.usefixtures("convs_apart")
def test_every_predictor_pools_under_bf16(model_class: Callable[..., nn.Module]) -> None:
    torch.manual_seed(0)
    model = model_class(1, patch_size=2, num_hidden=[4, 4], filter_size=3, input_length=3, total_length=6)
    frames = torch.rand(2, 6, 1, 8, 8)
    with WeightGradCalls() as calls, torch.autocast("cpu", torch.bfloat16):
        F.mse_loss(model(frames, sampling_prob=0.5).float(), frames[:, 1:]).backward()
    cells = [
        m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)) and "cells" in name
    ]
    # each cell convolution once (the head and adapters run per step, outside the cells)
    assert all(calls.calls[tuple(m.weight.shape)] >= 1 for m in cells)
    assert sum(calls.calls.values()) < 5 * len(cells), calls.calls
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_fp32_no_grad_and_the_switch_keep_the_plain_path() -> None:
    layer, x = _layers()["convlstm"]
    T = x.shape[1]
    with WeightGradCalls() as calls:
        fp32_pooled = _grads(layer, x, bf16=False, pool=True)
    # fp32 measured slower pooled: autograd's per-step weight gradients, bit for bit the plain ones
    assert max(calls.calls.values()) >= T - 1
    fp32_plain = _grads(layer, x, bf16=False, pool=False)
    assert all(torch.equal(fp32_pooled[k], fp32_plain[k]) for k in fp32_plain)
    with WeightGradCalls() as calls:
        _grads(layer, x, bf16=True, pool=False)
    assert max(calls.calls.values()) >= T - 1
    with torch.no_grad(), sequence_pass():
        assert _pooled._scope.pools is None  # nothing to pool without gradients


def test_a_retained_graph_and_a_partial_backward_give_autograds_gradients() -> None:
    layer, x = _layers()["convlstm"]
    weight = layer.cells[1].hidden_conv.weight

    def two_passes(pool: bool) -> tuple[Tensor, Tensor]:
        layer.zero_grad(set_to_none=True)
        with weight_grad_pooling(pool), torch.autocast("cpu", torch.bfloat16):
            y = layer(x)[0].float()  # (B, T, Hc, H, W)
        # the first step's output alone, then everything through the retained graph
        (first,) = torch.autograd.grad(y[:, 1].sum(), weight, retain_graph=True)
        y.square().mean().backward(retain_graph=True)
        y.square().mean().backward()
        return first, weight.grad.clone()

    plain, pooled = two_passes(False), two_passes(True)
    for a, b in zip(plain, pooled):
        assert max_err(a, b) <= 0.03 * a.abs().max().item(), max_err(a, b)
    once = _grads(layer, x, bf16=True, pool=True)["cells.1.hidden_conv.weight"]
    assert max_err(pooled[1], 2 * once) <= 1e-2 * once.abs().max().item()  # two passes, counted twice


def test_second_derivatives_through_a_pooled_convolution_raise() -> None:
    layer, x = _layers()["convlstm"]
    with torch.autocast("cpu", torch.bfloat16):
        y = layer(x)[0].float()
    with pytest.raises(RuntimeError, match=r"second derivatives .*set_weight_grad_pooling\(False\)"):
        torch.autograd.grad(y.square().mean(), list(layer.parameters()), create_graph=True)
    with weight_grad_pooling(False), torch.autocast("cpu", torch.bfloat16):
        y = layer(x)[0].float()
    grads = torch.autograd.grad(y.square().mean(), list(layer.parameters()), create_graph=True)
    sum(g.float().square().sum() for g in grads).backward()  # off, autograd's own path differentiates twice
    assert all(p.grad is not None for p in layer.parameters())


def test_a_hooked_convolution_is_called_as_a_module() -> None:
    layer, x = _layers()["convlstm"]
    seen: list[Any] = []
    layer.cells[0].hidden_conv.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    with WeightGradCalls() as calls:
        _grads(layer, x, bf16=True, pool=True)
    assert seen == [torch.bfloat16] * (x.shape[1] - 1)  # the first step has no state to convolve
    assert calls.calls[tuple(layer.cells[0].hidden_conv.weight.shape)] >= x.shape[1] - 1


def test_the_slabs_of_a_weight_go_with_it() -> None:
    layer, x = _layers()["convlstm"]
    _grads(layer, x, bf16=True, pool=True)
    keys = {id(m.weight) for m in layer.modules() if isinstance(m, nn.Conv2d)}
    assert keys <= {key for key, _ in _pooled._slabs}
    del layer
    gc.collect()
    assert not keys & {key for key, _ in _pooled._slabs}


def test_the_switch_refuses_a_non_bool() -> None:
    with pytest.raises(ValueError, match="expects True or False, got 'yes'"):
        set_weight_grad_pooling("yes")  # type: ignore[arg-type]


@pytest.mark.usefixtures("convs_apart")
def test_only_convolutions_with_enough_work_per_copied_value_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pooled, "_MIN_MACS_PER_VALUE", 1000)
    T = 3
    for hidden, pooled in ((32, False), (128, True)):  # the demo's width, ConvLSTM-S's
        # 5x5: 32 -> 128 gates is 640 multiply-adds per copied value, 128 -> 512 is 2,560
        layer = ConvLSTM(hidden, hidden, 5)
        with WeightGradCalls() as calls, torch.autocast("cpu", torch.bfloat16):
            layer(torch.rand(1, T, hidden, 2, 2))[0].float().sum().backward()
        hidden_calls = calls.calls[(4 * hidden, hidden, 5, 5)]  # input_conv and hidden_conv share the shape
        assert hidden_calls == (2 if pooled else 2 * T - 1), (hidden, calls.calls)


def _weight_casts(run: Callable[[], Tensor], shapes: list[tuple[int, ...]]) -> tuple[Tensor, int]:
    # run() and how many dtype casts of tensors of these shapes it made (autocast casts below any Python
    # dispatch mode, so the profiler counts them)
    with torch.profiler.profile(record_shapes=True) as prof:
        out = run()
    casts = [
        e
        for e in prof.events()
        if e.name == "aten::_to_copy" and e.input_shapes and tuple(e.input_shapes[0]) in shapes
    ]
    return out, len(casts)


@pytest.mark.parametrize("model_class", [ConvLSTMPredictor, PredRNNPredictor])
@pytest.mark.usefixtures("convs_apart")
def test_a_bf16_forecast_casts_each_cell_weight_once_and_forecasts_the_same(
    model_class: Callable[..., nn.Module], monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = model_class(
        1, patch_size=2, num_hidden=[4, 4], filter_size=3, input_length=3, total_length=6
    ).eval()
    frames = torch.rand(2, 3, 1, 8, 8)
    weights = [m.weight for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and "cells" in name]

    def run() -> Tensor:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            return model(frames, future=4)

    def forecast() -> tuple[Tensor, int]:
        return _weight_casts(run, [tuple(w.shape) for w in weights])

    once, once_casts = forecast()
    assert once_casts == len(weights)  # each weight cast once, not at each of the 6 steps
    monkeypatch.setattr(_pooled, "_cast", lambda *args: None)  # autocast's own cast at every call
    each, each_casts = forecast()
    assert each_casts > 2 * len(weights)
    assert torch.equal(once, each)


def test_the_environment_switch_reads_off_values_and_warns_on_a_typo(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lstmvision.cells.common import env_switch

    name = "LSTMVISION_POOL_WEIGHT_GRADS"
    for value, on in (("0", False), ("Off", False), ("no", False), ("1", True), ("yes", True), ("", True)):
        monkeypatch.setenv(name, value)
        assert env_switch(name, "weight-gradient pooling") is on, value
    monkeypatch.delenv(name)
    assert env_switch(name, "weight-gradient pooling") is True
    monkeypatch.setenv(name, "offf")
    with caplog.at_level(logging.WARNING):
        assert env_switch(name, "weight-gradient pooling") is True
    assert f"{name}='offf' is not 0/1/true/false/on/off; weight-gradient pooling stays on" in caplog.text


@pytest.mark.usefixtures("convs_apart")
def test_the_st_lstm_gate_gradients_reach_the_convolutions_channels_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one split of the gates into (i, f, g) and o: a slice of o alone made the whole gates' gradient
    # contiguous, and every pooled step then converted it
    received: list[tuple[tuple[int, ...], int, bool]] = []
    receive = _pooled._Pool.receive

    def spy(pool: Any, step: int, x: Tensor, grad: Tensor) -> Tensor:
        received.append(
            (tuple(pool.weight.shape), step, grad.is_contiguous(memory_format=torch.channels_last))
        )
        return receive(pool, step, x, grad)

    monkeypatch.setattr(_pooled._Pool, "receive", spy)
    torch.manual_seed(0)
    model = PredRNNPredictor(
        1, patch_size=2, num_hidden=[4, 4], filter_size=3, input_length=3, total_length=6
    )
    frames = torch.rand(2, 6, 1, 8, 8)
    with torch.autocast("cpu", torch.bfloat16):
        F.mse_loss(model(frames).float(), frames[:, 1:]).backward()
    shape = tuple(model.stack.cells[0].hidden_conv.weight.shape)  # both layers' hidden convolutions
    hidden = [(step, cl) for conv, step, cl in received if conv == shape]
    assert len(hidden) == 2 * (5 - 1)  # two layers, every step but the first of the 5 (3 + 3 - 1)
    assert all(cl for _, cl in hidden), hidden


# The ST-LSTM cell under reduced precision joins its input convolution with the hidden and the memory
# convolutions: [W_x(i, f, g, o), W_h] over [x, h] and [W_x(i', f', g'), W_m] over [x, M_in], each joined
# weight made once per sequence pass.


def _predrnn(layer_norm: bool = False) -> tuple[nn.Module, Tensor]:
    torch.manual_seed(0)
    # layers of different widths: the top layer's memory reaches the bottom one through memory_proj
    model = PredRNNPredictor(
        1,
        patch_size=2,
        num_hidden=[4, 6],
        filter_size=3,
        input_length=3,
        total_length=6,
        layer_norm=layer_norm,
    )
    randomise(model)
    return model, torch.rand(2, 6, 1, 8, 8)


def _count_joins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # the joined weights made, by the convolution joined with the input one
    made: list[str] = []
    join = stlstm.SpatioTemporalLSTMCell._join

    def spy(cell: Any, conv: nn.Conv2d, first: int, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        made.append("hidden" if conv is cell.hidden_conv else "memory")
        return join(cell, conv, first, dtype)

    monkeypatch.setattr(stlstm.SpatioTemporalLSTMCell, "_join", spy)
    return made


@pytest.mark.parametrize("kernel, memory_channels", [(3, None), (4, 6)])
def test_the_joined_st_lstm_convolutions_equal_the_three_apart_in_float64(
    kernel: int, memory_channels: int | None
) -> None:
    # an even kernel pads by hand; a wider memory goes through memory_proj
    cell = SpatioTemporalLSTMCell(3, 4, kernel, memory_channels=memory_channels).double()
    randomise(cell)
    gen = torch.Generator().manual_seed(1)
    x, h = (torch.rand(2, c, 5, 5, generator=gen, dtype=torch.float64) for c in (3, 4))
    memory = torch.rand(2, memory_channels or 4, 5, 5, generator=gen, dtype=torch.float64)
    apart = cell._gates(x, (h, h), memory)  # float64 never joins; with gradients the terms are summed
    assert apart.gates_h is None and apart.gates_mem is None
    joined = stlstm._Joined(
        *cell._join(cell.hidden_conv, 0, torch.float64), *cell._join(cell.memory_conv, 4, torch.float64)
    )
    terms = cell._joined_gates(x, h, memory, joined)
    assert terms.gates_h is None and terms.gates_mem is None
    assert max_err(terms.gates, apart.gates) < 1e-12
    assert max_err(terms.gates_m, apart.gates_m) < 1e-12
    assert terms.carried is not None and apart.carried is not None
    assert torch.equal(terms.carried, apart.carried)


def test_a_bf16_predrnn_joins_its_convolutions_once_a_pass_and_gets_the_same_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, frames = _predrnn()
    cells = list(model.stack.cells)

    def train_step(join: bool) -> tuple[Tensor, dict[str, Tensor], dict[tuple[int, ...], int]]:
        monkeypatch.setattr(stlstm, "_JOIN_CONVS", join)
        model.zero_grad(set_to_none=True)
        with WeightGradCalls() as calls:
            with torch.autocast("cpu", torch.bfloat16):
                pred = model(frames).float()
            F.mse_loss(pred, frames[:, 1:]).backward()
        return pred.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, calls.calls

    apart_pred, apart_grads, _ = train_step(False)
    made = _count_joins(monkeypatch)
    pred, grads, calls = train_step(True)
    assert sorted(made) == ["hidden", "hidden", "memory", "memory"]  # each cell's two, once for all steps
    for cell in cells:
        Hc, C_in, C_mem = cell.hidden_channels, cell.in_channels, cell.memory_channels
        # one pooled weight-gradient call per joined weight; the hidden convolution never runs apart
        assert calls[(4 * Hc, C_in + Hc, 3, 3)] == 1, calls
        assert calls[(3 * Hc, C_in + C_mem, 3, 3)] == 1, calls
        assert (4 * Hc, Hc, 3, 3) not in calls, calls
    assert max_err(pred, apart_pred) <= 0.02 * apart_pred.abs().max().item()
    assert grads.keys() == apart_grads.keys()
    for name, grad in grads.items():  # the same sums, rounded differently in bf16
        scale = apart_grads[name].abs().max().item()
        assert max_err(grad, apart_grads[name]) <= 0.03 * scale + 1e-6, (
            name,
            max_err(grad, apart_grads[name]),
        )
    # the joined weights' slabs stay with the cells' parameters from one step to the next
    owners = {id(conv.weight) for cell in cells for conv in (cell.hidden_conv, cell.memory_conv)}
    slabs = {key: slab.data_ptr() for key, slab in _pooled._slabs.items() if key[0] in owners}
    assert {kind for _, kind in slabs} >= {"joined grad", "joined input"}
    train_step(True)
    assert slabs == {key: slab.data_ptr() for key, slab in _pooled._slabs.items() if key[0] in owners}


def test_a_bf16_forecast_joins_once_and_fp32_or_layer_norm_never(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _count_joins(monkeypatch)

    def forecast(model: nn.Module, frames: Tensor, bf16: bool) -> Tensor:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return model.eval()(frames[:, :3], future=3).float()

    model, frames = _predrnn()
    joined = forecast(model, frames, True)
    assert sorted(made) == ["hidden", "hidden", "memory", "memory"]
    monkeypatch.setattr(stlstm, "_JOIN_CONVS", False)
    apart = forecast(model, frames, True)
    assert max_err(joined, apart) <= 0.02 * apart.abs().max().item()
    monkeypatch.setattr(stlstm, "_JOIN_CONVS", True)
    made.clear()
    forecast(model, frames, False)
    normed, _ = _predrnn(layer_norm=True)
    forecast(normed, frames, True)
    assert made == []  # fp32 measured no faster joined; layer norm norms each convolution's term apart


def test_the_joined_weights_slabs_go_with_the_cell() -> None:
    model, frames = _predrnn()
    with torch.autocast("cpu", torch.bfloat16):
        F.mse_loss(model(frames).float(), frames[:, 1:]).backward()
    owners = {id(cell.memory_conv.weight) for cell in model.stack.cells}
    assert owners <= {key for key, kind in _pooled._slabs if kind == "joined grad"}
    del model
    gc.collect()
    assert not owners & {key for key, _ in _pooled._slabs}


# The ConvLSTM cell in bf16 training joins input_conv and hidden_conv: [W_x, W_h] over [x, h].


def _count_convlstm_joins(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    join = convlstm.ConvLSTMCell._join

    def spy(cell: Any, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        made.append(id(cell))
        return join(cell, dtype)

    monkeypatch.setattr(convlstm.ConvLSTMCell, "_join", spy)
    return made


@pytest.mark.parametrize("kernel", [3, 4])
def test_the_joined_convlstm_convolutions_equal_the_two_apart_in_float64(kernel: int) -> None:
    cell = convlstm.ConvLSTMCell(3, 4, kernel).double()  # an even kernel pads one more at the end
    randomise(cell)
    gen = torch.Generator().manual_seed(1)
    x, h = (torch.rand(2, c, 5, 6, generator=gen, dtype=torch.float64) for c in (3, 4))
    apart = cell.input_gates(x) + cell.hidden_conv(
        h if cell._hidden_pad is None else F.pad(h, cell._hidden_pad)
    )
    joined = cell._joined_gates(x, h, cell._join(torch.float64))
    assert max_err(joined, apart) < 1e-12


def test_bf16_convlstm_training_joins_once_a_pass_with_the_same_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    # widths unlike the 4 patch channels, so that no two convolutions share a weight shape
    model = ConvLSTMPredictor(
        1, patch_size=2, num_hidden=[5, 6], filter_size=3, input_length=3, total_length=6
    )
    randomise(model)
    frames = torch.rand(2, 6, 1, 8, 8)
    cells = list(model.cells)

    def train_step(join: bool) -> tuple[Tensor, dict[str, Tensor], dict[tuple[int, ...], int]]:
        monkeypatch.setattr(convlstm, "_JOIN_CONVS", join)
        model.zero_grad(set_to_none=True)
        with WeightGradCalls() as calls:
            with torch.autocast("cpu", torch.bfloat16):
                pred = model(frames, sampling_prob=0.5).float()
            F.mse_loss(pred, frames[:, 1:]).backward()
        return pred.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, calls.calls

    torch.manual_seed(1)  # the same sampling draws in both runs
    apart_pred, apart_grads, _ = train_step(False)
    made = _count_convlstm_joins(monkeypatch)
    torch.manual_seed(1)
    pred, grads, calls = train_step(True)
    assert sorted(made) == sorted(id(cell) for cell in cells)  # once per cell for all steps
    for cell in cells:
        C_in, Hc = cell.in_channels, cell.hidden_channels
        assert calls[(4 * Hc, C_in + Hc, 3, 3)] == 1, calls  # one pooled weight gradient
        assert (4 * Hc, Hc, 3, 3) not in calls, calls  # hidden_conv never runs apart
    assert max_err(pred, apart_pred) <= 0.02 * apart_pred.abs().max().item()
    assert grads.keys() == apart_grads.keys()
    for name, grad in grads.items():
        scale = apart_grads[name].abs().max().item()
        assert max_err(grad, apart_grads[name]) <= 0.03 * scale + 1e-6, (
            name,
            max_err(grad, apart_grads[name]),
        )
    made.clear()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        model.eval()(frames[:, :3], future=3)
    assert made == []  # a forecast runs them apart: measured faster there


@pytest.mark.parametrize(
    "options",
    [dict(stride=2), dict(padding="valid"), dict(dilation=2), dict(layer_norm=True), dict(hook=True)],
    ids=["stride", "valid", "dilation", "layer_norm", "hook"],
)
def test_a_convlstm_whose_convolutions_cannot_join_runs_them_apart(
    options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = options.pop("hook", False)
    torch.manual_seed(0)
    layer = ConvLSTM(2, 4, 3, **options)
    randomise(layer)
    seen: list[int] = []
    if hook:
        layer.cells[0].hidden_conv.register_forward_hook(lambda m, args, out: seen.append(1))
    x = torch.rand(2, 4, 2, 9, 9)
    made = _count_convlstm_joins(monkeypatch)

    def grads(join: bool) -> list[Tensor]:
        monkeypatch.setattr(convlstm, "_JOIN_CONVS", join)
        layer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16):
            layer(x)[0].float().square().mean().backward()
        return [p.grad.clone() for p in layer.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(grads(True), grads(False)))
    assert made == []
    assert seen == ([1] * 3 * 2 if hook else [])  # both runs, every step but the first
