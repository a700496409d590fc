"""The compiled gate arithmetic equals the eager one, compiles once per sequence shape, and falls back.

On the CPU the functions are traced and compiled without dynamo (``_traced``); ``torch.compile`` is the
path on CUDA and where tracing fails. Both are checked here.

Compiling is slow (seconds per function), so these few tests use tiny cells. The suite otherwise runs
eagerly (tests/conftest.py); each test here turns fusion on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import torch
from cell_helpers import max_err, randomise
from torch import Tensor, nn

from lstmvision.cells import (
    ConvLSTM,
    ConvLSTMCell,
    Eidetic3DLSTM,
    Eidetic3DLSTMCell,
    MultiPerspectiveLSTM,
    MultiViewLSTM,
    SpatioTemporalLSTM,
    _fusion,
    gate_fusion,
    gate_fusion_enabled,
    set_gate_fusion,
)


@pytest.fixture(autouse=True)
def fresh_fusion() -> Iterator[None]:
    # every test starts with no compiled function and no recorded failure, and leaves none behind
    _fusion._reset()
    torch._dynamo.utils.counters.clear()
    yield
    _fusion._reset()


def _layers() -> dict[str, tuple[nn.Module, Tensor]]:
    torch.manual_seed(0)
    layers = {
        "convlstm": (ConvLSTM(2, 3, 3, num_layers=2), torch.rand(2, 3, 2, 5, 5)),
        "stlstm": (SpatioTemporalLSTM(2, 3, 3, num_layers=2), torch.rand(2, 3, 2, 5, 5)),
        "e3dlstm": (Eidetic3DLSTM(2, 3, 3, num_layers=2, recall_window=2), torch.rand(2, 3, 2, 4, 4)),
        "mplstm": (MultiPerspectiveLSTM(4, 5, 2, num_layers=2), torch.rand(2, 2, 3, 4)),
        "mvlstm": (MultiViewLSTM(4, 5, 2, num_layers=2), torch.rand(2, 2, 3, 4)),
    }
    for layer, _ in layers.values():
        randomise(layer)
    return layers


def _run(layer: nn.Module, x: Tensor, fused: bool) -> tuple[Tensor, list[Tensor]]:
    layer.zero_grad()
    with gate_fusion(fused):
        y = layer(x)[0]
    y.square().sum().backward()
    return y.detach(), [p.grad.clone() for p in layer.parameters() if p.grad is not None]


# inductor (seconds per function) for the cells whose functions it generates code for first: ConvLSTM
# (lstm_gates) and ST-LSTM (dual_memory, output_gate, shared with E3D); for the others the traced graphs
# run op by op (any backend but inductor), which checks the tracing, the guards and the backward
BACKENDS = {"convlstm": "inductor", "stlstm": "inductor", "e3dlstm": "aot_eager", "mplstm": "aot_eager"}


def _force_fp32_fusion(monkeypatch: pytest.MonkeyPatch) -> None:
    # fp32 on the CPU normally runs eagerly (not faster compiled): force the compiled path, so that the
    # comparison is free of bf16 rounding and the tolerance can be tight (fp32 op order, 1e-5 absolute)
    monkeypatch.setattr(_fusion, "fusion_applies", lambda x: _fusion._enabled and not _fusion._broken)


@pytest.mark.parametrize("name", ["convlstm", "stlstm", "e3dlstm", "mplstm", "mvlstm"])
def test_compiled_gates_equal_eager_ones(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _force_fp32_fusion(monkeypatch)
    monkeypatch.setattr(_fusion, "_backend", BACKENDS.get(name, "aot_eager"))
    layer, x = _layers()[name]
    y_eager, grads_eager = _run(layer, x, fused=False)
    y_fused, grads_fused = _run(layer, x, fused=True)
    assert _fusion._forms_compiled > 0, "the traced path never ran"
    assert not _fusion._traced_broken, "tracing the gate functions failed"
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 0, "went through torch.compile"
    err = max_err(y_fused, y_eager)
    assert err < 1e-5, f"{name}: output max abs error {err:.3g}"
    assert len(grads_fused) == len(grads_eager)
    grad_err = max(max_err(a, b) for a, b in zip(grads_fused, grads_eager))
    assert grad_err < 1e-4, f"{name}: gradient max abs error {grad_err:.3g}"


@pytest.mark.parametrize("name", ["convlstm", "stlstm", "mplstm"])
def test_the_torch_compile_path_equals_the_eager_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the path of CUDA and of a CPU where tracing failed: dynamo and AOTAutograd with dynamic shapes
    # ("aot_eager" checks that each function compiles in one graph without generating code)
    _force_fp32_fusion(monkeypatch)
    monkeypatch.setattr(_fusion, "_backend", "aot_eager")
    monkeypatch.setattr(_fusion, "_traced_broken", True)
    layer, x = _layers()[name]
    y_eager, grads_eager = _run(layer, x, fused=False)
    y_fused, grads_fused = _run(layer, x, fused=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "the compiled path never ran"
    assert not _fusion._broken, "compiling the gate functions failed"
    err = max_err(y_fused, y_eager)
    assert err < 1e-5, f"{name}: output max abs error {err:.3g}"
    assert len(grads_fused) == len(grads_eager)
    grad_err = max(max_err(a, b) for a, b in zip(grads_fused, grads_eager))
    assert grad_err < 1e-4, f"{name}: gradient max abs error {grad_err:.3g}"


def test_the_compiled_forms_tanh_through_the_sigmoid_is_tanh() -> None:
    # the compiled gate functions write tanh(x) = 2σ(2x) - 1 on the CPU (inductor's tanh loop is slow)
    x = torch.linspace(-30, 30, 200_001)
    err = (_fusion._tanh_via_sigmoid(x) - torch.tanh(x)).abs().max().item()
    assert err <= 2.5e-7, err
    exact = torch.tanh(x.double())
    assert (_fusion._tanh_via_sigmoid(x.double()) - exact).abs().max().item() < 1e-15
    # and it is what each fused function compiles, with the eager one kept on torch.tanh
    gates, c = torch.randn(2, 8, 3, 3), torch.randn(2, 2, 3, 3)
    h_fast, c_fast = _fusion.lstm_gates._fast(gates, c, 1, torch.float32)
    h_eager, c_eager = _fusion.lstm_gates.eager(gates, c, 1, torch.float32)
    assert 0 < max_err(h_fast, h_eager) <= 5e-7 and max_err(c_fast, c_eager) <= 5e-7


def test_no_recompilation_over_steps_horizons_and_batch_sizes() -> None:
    # the real path: bf16 autocast, training; a 2-layer ConvLSTM over 3 steps, then 7 steps and B=3
    torch.manual_seed(0)
    layer = ConvLSTM(2, 4, 3, num_layers=2)

    def train_step(B: int, T: int) -> None:
        with gate_fusion(True), torch.autocast("cpu", torch.bfloat16):
            y = layer(torch.rand(B, T, 2, 6, 6))[0]
        y.float().sum().backward()

    def forecast(B: int, T: int, H: int, W: int) -> None:
        with torch.no_grad(), gate_fusion(True), torch.autocast("cpu", torch.bfloat16):
            layer(torch.rand(B, T, 2, H, W))

    train_step(2, 3)
    assert _fusion._forms_compiled == 2, "expected the forward and the backward of lstm_gates"
    # a forecast has a form of its own: training joins the two convolutions, so its gates come summed,
    # where a forecast hands both terms to the gate function
    forecast(2, 3, 6, 6)
    compiled = _fusion._forms_compiled
    assert compiled == 3, f"expected a third form for the forecast, got {compiled} forms"
    assert not _fusion._traced_broken and not _fusion._broken
    train_step(2, 7)
    train_step(3, 7)
    forecast(5, 4, 9, 7)  # at another size
    after = _fusion._forms_compiled
    assert after == compiled, f"recompiled: {compiled} forms after the first sequence, {after} after more"


def _no_compiler(*args: object, **kwargs: object) -> object:
    raise RuntimeError("no C++ compiler found")


def _eager_and_fused_bf16(
    caplog: pytest.LogCaptureFixture, level: int, runs: int
) -> tuple[Tensor, list[Tensor]]:
    # a 2-layer ConvLSTM's bf16 output with fusion off, then `runs` times with it on (logs at `level`)
    torch.manual_seed(0)
    layer = ConvLSTM(2, 3, 3, num_layers=2)
    x = torch.rand(2, 3, 2, 5, 5)
    with torch.autocast("cpu", torch.bfloat16), torch.no_grad():
        with gate_fusion(False):
            expected = layer(x)[0]
        with caplog.at_level(level, logger=_fusion.__name__), gate_fusion(True):
            fused = [layer(x)[0] for _ in range(runs)]
    return expected, fused


def test_a_compile_failure_falls_back_to_eager_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_compile(fn: Callable, **kwargs: object) -> Callable:
        return _no_compiler

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(_fusion, "_compile_graph", _no_compiler)
    expected, (first, second) = _eager_and_fused_bf16(caplog, logging.WARNING, runs=2)
    warnings = [r for r in caplog.records if "compiling the fused gate arithmetic failed" in r.message]
    assert len(warnings) == 1, f"expected one warning, got {[r.message for r in caplog.records]}"
    assert "no C++ compiler found" in warnings[0].message
    for y in (first, second):
        assert torch.equal(y, expected), (
            f"eager fallback differs by {max_err(y.float(), expected.float()):.3g}"
        )


def test_a_tracing_failure_goes_through_torch_compile_without_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_fusion, "_compile_graph", _no_compiler)
    monkeypatch.setattr(_fusion, "_backend", "aot_eager")
    expected, (fused,) = _eager_and_fused_bf16(caplog, logging.INFO, runs=1)
    assert _fusion._traced_broken and not _fusion._broken
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "torch.compile never ran"
    assert [r.levelno for r in caplog.records] == [logging.INFO], [r.message for r in caplog.records]
    assert "tracing the fused gate arithmetic failed (RuntimeError: no C++ compiler found)" in caplog.text
    assert torch.equal(fused, expected), f"differs by {max_err(fused.float(), expected.float()):.3g}"


def test_a_backward_that_fails_to_compile_uses_the_plain_functions_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _force_fp32_fusion(monkeypatch)
    monkeypatch.setattr(_fusion, "_backend", "aot_eager")
    compile_graph = _fusion._compile_graph
    calls: list[int] = []

    def forward_only(*args: object) -> object:  # the first form (the forward) compiles, the next fails
        calls.append(1)
        return compile_graph(*args) if len(calls) == 1 else _no_compiler()  # type: ignore[arg-type]

    monkeypatch.setattr(_fusion, "_compile_graph", forward_only)
    layer, x = _layers()["convlstm"]
    y_eager, grads_eager = _run(layer, x, fused=False)
    y_fused, grads_fused = _run(layer, x, fused=True)
    assert len(calls) == 2 and _fusion._traced_broken, "the backward's compilation was not attempted"
    assert max_err(y_fused, y_eager) < 1e-5
    grad_err = max(max_err(a, b) for a, b in zip(grads_fused, grads_eager))
    assert len(grads_fused) == len(grads_eager) and grad_err < 1e-4, f"gradient max abs error {grad_err:.3g}"


def test_the_gate_terms_share_one_gradient_in_the_channels_last_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the input and hidden convolutions' gates enter one sum: their gradient is one tensor, written once;
    # the memory's gradient stays channels-last though the unused last memory's comes in contiguous
    monkeypatch.setattr(_fusion, "_backend", "aot_eager")
    cl = torch.channels_last
    gates, gates_h = (torch.randn(2, 12, 4, 5).bfloat16().contiguous(memory_format=cl) for _ in range(2))
    c = torch.randn(2, 3, 4, 5).contiguous(memory_format=cl)
    for t in (gates, gates_h, c):
        t.requires_grad_()
    with gate_fusion(True), torch.autocast("cpu", torch.bfloat16):
        h, c_new = _fusion.lstm_gates(gates, c, 1, torch.float32, gates_h)
        h_ref, c_ref = _fusion.lstm_gates.eager(gates, c, 1, torch.float32, gates_h)
    assert _fusion._forms_compiled == 1 and max_err(h, h_ref) < 1e-2 and max_err(c_new, c_ref) < 1e-6
    grads = torch.autograd.grad(h.float().sum(), [gates, gates_h, c])
    expected = torch.autograd.grad(h_ref.float().sum(), [gates, gates_h, c])
    assert grads[0].data_ptr() == grads[1].data_ptr(), "the two gate terms' gradients were written twice"
    assert grads[2].is_contiguous(memory_format=cl) and grads[0].is_contiguous(memory_format=cl)
    errs = [max_err(a, b) for a, b in zip(grads, expected)]
    assert max(errs) < 1e-2, errs


def test_a_batch_of_one_and_another_dtype_get_forms_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # a size of 1 breaks the first form's guards and a dtype is no guard: each gets a form, and is right
    monkeypatch.setattr(_fusion, "_backend", "aot_eager")

    def check(batch: int, dtype: torch.dtype) -> None:
        gates = torch.randn(batch, 8, 3, 3).to(dtype)
        c = torch.randn(batch, 2, 3, 3)
        with gate_fusion(True), torch.no_grad():
            h, c_new = _fusion.lstm_gates(gates, c, 1, torch.float32)
        h_ref, c_ref = _fusion.lstm_gates._fast(gates, c, 1, torch.float32)
        assert h.dtype == dtype and torch.equal(h, h_ref) and torch.equal(c_new, c_ref)

    check(4, torch.bfloat16)
    check(3, torch.bfloat16)
    assert _fusion._forms_compiled == 1
    check(1, torch.bfloat16)
    assert _fusion._forms_compiled == 2
    check(4, torch.float16)
    assert _fusion._forms_compiled == 3


def test_fusion_is_skipped_while_tracing_or_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    gates = torch.zeros(1, 8, dtype=torch.bfloat16)
    with gate_fusion(True):
        assert _fusion.fusion_applies(gates)
        monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
        assert not _fusion.fusion_applies(gates)
        monkeypatch.undo()
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        assert not _fusion.fusion_applies(gates)


def test_fusion_rule_per_precision() -> None:
    fp32, bf16 = torch.zeros(1, 8), torch.zeros(1, 8, dtype=torch.bfloat16)
    with gate_fusion(True):
        assert not _fusion.fusion_applies(fp32), "fp32 on the CPU runs eagerly (measured no faster compiled)"
        assert _fusion.fusion_applies(bf16)
        with torch.autocast("cpu", torch.bfloat16):
            assert _fusion.fusion_applies(fp32)
    with gate_fusion(False):
        assert not _fusion.fusion_applies(bf16)


def test_switch_and_context_manager() -> None:
    before = gate_fusion_enabled()
    with gate_fusion(not before):
        assert gate_fusion_enabled() is (not before)
    assert gate_fusion_enabled() is before
    set_gate_fusion(True)
    assert gate_fusion_enabled()
    set_gate_fusion(before)
    with pytest.raises(ValueError, match="expects True or False"):
        set_gate_fusion(1)  # type: ignore[arg-type]


@pytest.mark.parametrize("amx", [True, False])
def test_memory_format_per_precision_width_and_cpu(monkeypatch: pytest.MonkeyPatch, amx: bool) -> None:
    monkeypatch.setattr(_fusion, "_nchw_cpu", lambda: amx)
    x = torch.zeros(1, 128, 4, 4)
    assert _fusion.channels_last_conv(64, x), "fp32 up to 64 channels: channels-last"
    # fp32 at >= 128 channels: NCHW on a CPU with AMX, channels-last on one without
    assert _fusion.channels_last_conv(128, x) is not amx
    assert _fusion.channels_last_conv(128, x.bfloat16())
    with torch.autocast("cpu", torch.bfloat16):
        assert _fusion.channels_last_conv(128, x)
    nchw = _fusion.conv_layout(128, x.contiguous(memory_format=torch.channels_last)).is_contiguous()
    assert nchw is amx


def test_the_nchw_exception_follows_the_cpus_amx_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    for supported in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda s=supported: s)
        _fusion._nchw_cpu.cache_clear()
        assert _fusion._nchw_cpu() is supported
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    _fusion._nchw_cpu.cache_clear()
    assert _fusion._nchw_cpu() is False, "a torch without the check: channels-last everywhere"
    monkeypatch.undo()
    _fusion._nchw_cpu.cache_clear()


CL, NCHW = torch.channels_last, torch.contiguous_format


def _layout(conv: nn.Module) -> torch.memory_format:
    weight = conv.weight
    assert isinstance(weight, Tensor)
    if weight.dim() == 5:
        return torch.channels_last_3d if weight.is_contiguous(memory_format=torch.channels_last_3d) else NCHW
    return CL if weight.is_contiguous(memory_format=CL) else NCHW


@pytest.mark.parametrize("amx", [True, False])
def test_weights_take_the_layout_their_convolutions_run_in(
    monkeypatch: pytest.MonkeyPatch, amx: bool
) -> None:
    monkeypatch.setattr(_fusion, "_nchw_cpu", lambda: amx)
    torch.manual_seed(0)
    # input_conv reads 128 channels (NCHW in fp32 on a CPU with AMX), hidden_conv 3 (always channels-last)
    cell, head = ConvLSTMCell(128, 3, 3), nn.Conv2d(3, 5, 3)
    model = nn.Sequential(cell, head)
    x, state = torch.rand(2, 128, 6, 6), (torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6))
    before = cell(x, state)[0]
    params = list(model.parameters())
    values = {k: v.clone() for k, v in model.state_dict().items()}

    assert _fusion.match_weight_layout(model, fp32=True) == (1 if amx else 2)
    assert (_layout(cell.input_conv), _layout(cell.hidden_conv)) == ((NCHW if amx else CL), CL)
    assert _layout(head) == NCHW, "a convolution outside the cells is left as it is"
    assert _fusion.match_weight_layout(model, fp32=True) == 0, "already matching: nothing converted"

    assert _fusion.match_weight_layout(model, fp32=False) == (1 if amx else 0)
    assert (_layout(cell.input_conv), _layout(cell.hidden_conv)) == (CL, CL)
    _fusion.match_weight_layout(model, fp32=True, device_type="cuda")
    assert _layout(cell.input_conv) == CL, "channels-last everywhere on CUDA"

    # the same parameters (an optimizer holding them still steps them), values and outputs
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert all(torch.equal(values[k], v) for k, v in model.state_dict().items())
    assert max_err(cell(x, state)[0], before) < 1e-6


def test_e3d_weights_are_channels_last_3d() -> None:
    torch.manual_seed(0)
    cell = Eidetic3DLSTMCell(2, 3, 3, window_length=2)
    convs = [m for m in cell.modules() if isinstance(m, nn.Conv3d)]
    assert all(_layout(c) == torch.channels_last_3d for c in convs), "the cell builds them so"
    assert _fusion.match_weight_layout(cell, fp32=True) == 0
    wide = [c for c in convs if c.kernel_size != (1, 1, 1)]  # a 1x1x1 kernel is both layouts at once
    for conv in wide:  # e.g. a user's .contiguous()
        conv.weight.data = conv.weight.data.contiguous()
    assert _fusion.match_weight_layout(cell, fp32=True) == len(wide) == 4
    assert all(_layout(c) == torch.channels_last_3d for c in convs)


def test_memories_stay_float32_under_autocast() -> None:
    torch.manual_seed(0)
    layer = ConvLSTM(2, 3, 3)
    with torch.autocast("cpu", torch.bfloat16):
        y, (h_n, c_n) = layer(torch.rand(2, 3, 2, 5, 5))
    assert c_n[0].dtype == torch.float32, c_n[0].dtype
    assert y.dtype == h_n[0].dtype == torch.bfloat16, (y.dtype, h_n[0].dtype)
