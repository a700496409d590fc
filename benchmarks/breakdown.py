"""Where a video predictor's training step and forecast spend their time, by kind of work.

For the models of ``precision.py`` (the same sizes, training step and forecast, fusion on, the cells'
weights in the precision's layout), in one precision, ``torch.profiler`` runs over a few calls, and the
operators' self time is grouped into:

- ``convolutions``: the convolution kernels, forward and backward, the pooled weight gradients and the
  autograd nodes that pool them included;
- ``gate kernels``: the compiled gate functions and the autograd nodes that call them;
- ``attention``: the fused attention kernels (the E3D-LSTM recall);
- ``norms``: group and layer norm, forward and backward;
- ``copies``: copies, casts and concatenations;
- ``other``: the rest (pointwise operators outside the gate functions, allocation, the optimiser);
- ``between``: the wall time of the profiled calls that no operator accounts for: Python between the
  operators, and the profiler's own cost of recording them.

It then prints the convolutions' rate inside the step. Their FLOPs are counted as ``precision.py``
counts them, and their time is what the profiler gave the group. The rate is set against the peak of
the same forward convolutions run alone, measured here as ``precision.py`` measures it. The last column
(``at peak``) is the share of the peak that the step would reach if its convolutions ran exactly at the
peak and everything else took the time it took (the unprofiled time less the convolutions'): what the
time outside the convolutions leaves. Convolutions inside a forecast can run a little faster than the
peak measured alone, so a measured share can exceed it by a few points.

The profiler adds a little time per operator, so the figures are shares of a profiled call's wall time.
The unprofiled median is printed beside it.

Usage: ``python benchmarks/breakdown.py [--models demo,predrnn] [--kinds train,infer]
[--precision bf16] [--calls 3]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable

import torch
from precision import (
    INPUT,
    PRECISIONS,
    SIZE,
    Conv,
    Spec,
    T,
    _fresh_compilation,
    _specs,
    counted,
    forecast,
    layout_rates,
    peak_variants,
    train_step,
)
from timing import interleaved_medians, load_average
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import lstmvision.cells
from lstmvision.models import create_model

GROUPS = ("convolutions", "gate kernels", "attention", "norms", "copies", "other", "between")
KINDS = ("train", "infer")
PEAK_ROUNDS = (1, 5)  # warm-up and timed rounds of the peak's convolutions


def group_of(name: str) -> str:
    """The group of one profiler event, by its name."""
    if "convolution" in name or name.startswith(("_Pooled", "_PoolGrads")):
        return "convolutions"
    if "CompiledFxGraph" in name or "GateFunction" in name or "AOTDispatcher" in name:
        return "gate kernels"
    if "scaled_dot_product" in name:
        return "attention"
    if "group_norm" in name or "layer_norm" in name:
        return "norms"
    if name in ("aten::copy_", "aten::_to_copy", "aten::cat", "aten::clone", "aten::contiguous"):
        return "copies"
    return "other"


def conv_flops(fn: Callable[[], None]) -> int:
    """The convolution FLOPs (forward and backward) of one call of ``fn``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    ops = counter.get_flop_counts().get("Global", {})
    return sum(n for op, n in ops.items() if "convolution" in str(op))


def peak(convs: Counter[Conv]) -> float:
    """GFLOP/s of the forward convolutions ``convs`` (signature -> calls) run alone, each weighted by its
    calls, in the best of the model's layout, NCHW and channels-last (``precision.py``'s peak)."""
    variants, flops = peak_variants(convs, "")
    return max(layout_rates(interleaved_medians(variants, *PEAK_ROUNDS), flops, "").values())


def breakdown(spec: Spec, kind: str, bf16: bool, calls: int) -> str:
    """One model's row of the table for ``kind`` (``train`` or ``infer``)."""
    torch.manual_seed(0)
    frames = torch.rand(spec.batch, T, 1, SIZE, SIZE)
    model = create_model(spec.name, input_length=INPUT, total_length=T, **spec.kwargs)
    lstmvision.cells.match_weight_layout(model, fp32=not bf16)
    make = train_step if kind == "train" else forecast
    fn = make(copy.deepcopy(model), frames, bf16, True)
    # FLOPs and forward convolutions with fusion off (nothing compiled), as precision.py counts them
    flops = conv_flops(make(copy.deepcopy(model), frames, bf16, False))
    _, convs = counted(forecast(copy.deepcopy(model), frames, bf16, False))
    for _ in range(3):  # compiles the gate functions, fills the pools and caches
        fn()
    unprofiled = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        unprofiled.append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        total = (time.perf_counter() - start) / calls
    seconds: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        seconds[group_of(event.key)] += event.self_cpu_time_total / 1e6 / calls
    seconds["between"] = max(total - sum(seconds.values()), 0.0)
    rate = flops / seconds["convolutions"] / 1e9
    best = peak(convs)
    at_peak = flops / (best * 1e9)  # seconds the convolutions would take at the peak
    # the rest as the unprofiled call takes it: the profiler's own cost per operator is not the step's
    rest = max(statistics.median(unprofiled) - seconds["convolutions"], 0.0)
    shares = " ".join(f"{seconds[group] / total:7.1%}" for group in GROUPS)
    row = (
        f"{spec.label:20s} {kind:5s} {statistics.median(unprofiled) * 1e3:9.1f} {total * 1e3:9.1f} {shares} "
        f"{rate:8.0f} {best:7.0f} {rate / best:7.1%} {at_peak / (at_peak + rest):8.1%}"
    )
    return row


def main() -> None:
    specs = _specs()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default="demo", help=f"comma-separated subset of {','.join(specs)} (default: demo)"
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of train,infer")
    parser.add_argument("--precision", default="bf16", choices=PRECISIONS)
    parser.add_argument("--calls", type=int, default=3, help="calls timed and profiled (default: 3)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.models.split(",") if name.strip()]
    if not chosen or any(name not in specs for name in chosen):
        parser.error(f"--models expects names from {','.join(specs)}, got {args.models!r}")
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    if not kinds or any(kind not in KINDS for kind in kinds):
        parser.error(f"--kinds expects names from {','.join(KINDS)}, got {args.kinds!r}")
    if args.calls < 1:
        parser.error(f"--calls expects a positive number, got {args.calls}")
    # the naive E3D-LSTM is not built here, but the cells warn alike on an even kernel with "same" padding
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{torch.backends.cpu.get_cpu_capability()}, {args.precision}, load average before {load_average():.2f}",
        flush=True,
    )
    print(
        f"{'model':20s} {'what':5s} {'ms':>9s} {'profiled':>9s} "
        + " ".join(f"{group.split()[0][:7]:>7s}" for group in GROUPS)
        + f" {'conv GF/s':>8s} {'peak':>7s} {'of peak':>7s} {'at peak':>8s}"
    )
    for name in chosen:
        for kind in kinds:
            _fresh_compilation()
            print(breakdown(specs[name], kind, args.precision == "bf16", args.calls), flush=True)
    print(
        "\nms: median of the unprofiled calls; profiled: a profiled call's wall time, which the group "
        "columns share.\nconv GF/s: the convolutions' FLOPs (forward and backward in training) over "
        "their time in the step; peak: the forecast's forward convolutions alone (GFLOP/s).\n"
        "at peak: the step's share of the peak if its convolutions ran exactly at the peak and the rest took "
        f"what it took unprofiled. Load average after {load_average():.2f}."
    )


if __name__ == "__main__":
    main()
