"""Fused gate arithmetic, convolution layout and E3D recall precision: the measurements behind the rules.

Usage::

    python benchmarks/gate_fusion.py [gates|compile|layout|attention|step|all] [--rounds N] [--threads N]

- ``gates``: one ConvLSTM step's gate math (forward + backward) at the demo shape (2 x 32 hidden, patch 4
  -> 16x16, B=16): the previous op-by-op code, the gate function eagerly, and compiled; fp32 (NCHW) and
  bf16 (channels-last, as under autocast).
- ``compile``: cold compile seconds of the gate function (fresh process recommended: run it alone).
- ``layout``: one k5 convolution forward + backward, NCHW vs channels-last, fp32 and bf16 autocast, at
  16 / 32 / 64 / 128 input channels.
- ``attention``: the E3D recall attention forward + backward under bf16 autocast, bf16 vs fp32 inputs,
  at the release shape (16 channels 16x16 patched Moving MNIST, B=4, 64 hidden, window 2).
- ``step``: one ConvLSTM predictor training step (demo shape, T=20) under bf16 autocast and in fp32,
  fusion off vs on.

Every figure is the median of interleaved rounds (A, B, A, B, ...), each round a few calls.
"""

# ruff: noqa: B023  -- each closure is timed within its own loop iteration, so late binding is what we want
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lstmvision.cells import _fusion, gate_fusion
from lstmvision.cells.e3dlstm import _recall


def _interleaved(cases: dict[str, Callable[[], object]], rounds: int, calls: int = 5) -> dict[str, float]:
    """Median ms per call of each case, measured in interleaved rounds after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(rounds + 1):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            if r:  # round 0 warms up (and compiles)
                times[name].append((time.perf_counter() - start) / calls * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def _report(title: str, result: dict[str, float]) -> None:
    print(f"\n{title}")
    for name, ms in result.items():
        print(f"  {name:<44s} {ms:8.3f} ms")


def _old_gates(gates: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # the op-by-op gate math the cells ran before fusion (no upcast)
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(i) * torch.tanh(g) + torch.sigmoid(f) * c_prev
    return torch.sigmoid(o) * torch.tanh(c), c


def _compiled_form() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    # what the cells compile: since 2026-12-07 the gate function with tanh written through the sigmoid
    fused = getattr(_fusion, "lstm_gates", None)
    return getattr(fused, "_fast", _fusion._lstm)


def bench_gates(rounds: int) -> None:
    B, Hc, S = 16, 32, 16
    compiled = torch.compile(_compiled_form(), dynamic=True, fullgraph=True)
    for dtype, layout in ((torch.float32, torch.contiguous_format), (torch.bfloat16, torch.channels_last)):
        gates = torch.randn(B, 4 * Hc, S, S).to(dtype=dtype, memory_format=layout).requires_grad_()
        c_prev = torch.randn(B, Hc, S, S).to(memory_format=layout).requires_grad_()
        c_low = c_prev.detach().to(dtype).requires_grad_()

        def run(fn: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> Callable[[], None]:
            def step() -> None:
                h, c = fn()
                (h.float().sum() + c.float().sum()).backward()

            return step

        cases = {
            "op by op (before)": run(lambda: _old_gates(gates, c_low)),
            "gate function, eager": run(lambda: _fusion._lstm(gates, c_prev, 1, torch.float32)),
            "gate function, compiled": run(lambda: compiled(gates, c_prev, 1, torch.float32)),
        }
        _report(
            f"gate math fwd+bwd, {dtype}, {layout}, gates {tuple(gates.shape)}", _interleaved(cases, rounds)
        )


def bench_compile() -> None:
    torch._dynamo.reset()
    gates = torch.randn(16, 128, 16, 16, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    gates.requires_grad_()
    c_prev = torch.randn(16, 32, 16, 16, requires_grad=True)
    compiled = torch.compile(_compiled_form(), dynamic=True, fullgraph=True)
    start = time.perf_counter()
    h, c = compiled(gates, c_prev, 1, torch.float32)
    forward = time.perf_counter() - start
    (h.float().sum() + c.sum()).backward()
    total = time.perf_counter() - start
    print(
        f"\ncold compile of the ConvLSTM gate function: forward {forward:.1f} s, with backward {total:.1f} s"
    )


def bench_layout(rounds: int) -> None:
    B, S = 16, 16
    for cin in (16, 32, 64, 128):
        conv = torch.nn.Conv2d(cin, 4 * max(cin, 32), 5, padding=2)
        x = torch.randn(B, cin, S, S, requires_grad=True)
        for name, autocast in (("fp32", False), ("bf16 autocast", True)):

            def run(fmt: torch.memory_format, autocast: bool = autocast) -> Callable[[], None]:
                xs = x.detach().contiguous(memory_format=fmt).requires_grad_()
                w = conv.weight.detach().contiguous(memory_format=fmt).requires_grad_()

                def step() -> None:
                    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                        y = F.conv2d(xs, w, conv.bias, padding=2)
                    y.float().sum().backward()

                return step

            cases = {"NCHW": run(torch.contiguous_format), "channels-last": run(torch.channels_last)}
            _report(f"conv k5 fwd+bwd {cin} -> {conv.out_channels}, {name}", _interleaved(cases, rounds))


def bench_attention(rounds: int) -> None:
    B, Hc, w, S = 4, 64, 2, 16
    for n in (1, 4, 10):  # recalled windows: after the first step, recall_window 4, a 20-frame history
        r = torch.rand(B, Hc, w, S, S, requires_grad=True)
        history = torch.randn(B, Hc, n * w, S, S, requires_grad=True)

        def run(precision: str) -> Callable[[], None]:
            def step() -> None:
                with torch.autocast("cpu", torch.bfloat16):
                    q, k = (r, history) if precision == "fp32" else (r.bfloat16(), history.bfloat16())
                    with torch.autocast("cpu", enabled=precision != "fp32"):
                        out = _recall(q, k)
                out.float().sum().backward()

            return step

        cases = {"bf16": run("bf16"), "fp32 (autocast off)": run("fp32")}
        _report(
            f"E3D recall fwd+bwd, B={B} Hc={Hc} {w}x{S}x{S} over {n * w} frames", _interleaved(cases, rounds)
        )


def bench_step(rounds: int) -> None:
    from lstmvision.models import create_model

    torch.manual_seed(0)
    model = create_model(
        "convlstm", num_hidden=[32, 32], filter_size=5, patch_size=4, input_length=10, total_length=20
    )
    x = torch.rand(16, 20, 1, 64, 64)
    for name, autocast in (("fp32", False), ("bf16 autocast", True)):

        def run(fused: bool, autocast: bool = autocast) -> Callable[[], None]:
            def step() -> None:
                with gate_fusion(fused), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                    y = model(x)
                F.mse_loss(y.float(), x[:, 1:]).backward()  # the predictor outputs frames 1..T-1

            return step

        cases = {"fusion off": run(False), "fusion on": run(True)}
        _report(f"ConvLSTM predictor train step, {name}", _interleaved(cases, rounds, calls=1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "what", nargs="?", default="all", choices=["gates", "compile", "layout", "attention", "step", "all"]
    )
    parser.add_argument("--rounds", type=int, default=7)
    # one thread by default: on a shared 2-core machine a second thread waits on the other jobs and
    # makes every op ~10x slower, which would measure the load, not the code
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}"
    )
    if args.what in ("compile", "all"):
        bench_compile()
    if args.what in ("gates", "all"):
        bench_gates(args.rounds)
    if args.what in ("layout", "all"):
        bench_layout(args.rounds)
    if args.what in ("attention", "all"):
        bench_attention(args.rounds)
    if args.what in ("step", "all"):
        bench_step(args.rounds)


if __name__ == "__main__":
    main()
