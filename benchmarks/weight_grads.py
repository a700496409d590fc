"""Pooled weight gradients (``lstmvision.cells.weight_grad_pooling``) against autograd's per-step ones.

Two parts, each timed in interleaved rounds (medians):

1. One convolution alone, channels-last, 16×16 positions, 5×5 kernels, the shapes of the demo
   ConvLSTM (16 and 32 input channels to 128 gates), PredRNN 4×64 (64 to 256) and ConvLSTM-S (128 to
   512): the weight gradient of T = 19 steps of B = 16 as 19 calls of 16 (autograd's way; their sum
   included) and as one call of 304, in bf16 and fp32, with the TFLOP/s of each.
2. The training step of the models of ``precision.py`` (demo, ConvLSTM-S, PredRNN 4×64, the small
   E3D-LSTM; B = 16, 20 frames), as the prediction task runs it, with pooling on and off, under bf16
   autocast and in fp32 (where the cells never pool; the rows show it costs nothing there).

Usage: ``python benchmarks/weight_grads.py [--quick] [--models demo,convlstm_s,predrnn,e3d]
[--precisions bf16,fp32] [--skip-convolutions]``.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch
from precision import SIZE, T, _specs, train_step
from timing import interleaved_medians, load_average

import lstmvision.cells
from lstmvision.models import create_model

STEPS, BATCH, SIDE, KERNEL = 19, 16, 16, 5
# (label, input channels, output channels) of the benchmarked convolutions
SHAPES = (
    ("demo layer 1 input", 16, 128),
    ("demo hidden", 32, 128),
    ("PredRNN 4x64 hidden", 64, 256),
    ("ConvLSTM-S hidden", 128, 512),
)


def convolutions(dtype: torch.dtype, rounds: tuple[int, int]) -> None:
    aten = torch.ops.aten
    cl = torch.channels_last
    for label, c_in, c_out in SHAPES:
        weight = torch.randn(c_out, c_in, KERNEL, KERNEL, dtype=dtype).to(memory_format=cl)
        x = torch.randn(STEPS * BATCH, c_in, SIDE, SIDE, dtype=dtype).to(memory_format=cl)
        grad = torch.randn(STEPS * BATCH, c_out, SIDE, SIDE, dtype=dtype).to(memory_format=cl)
        xs, grads = x.split(BATCH), grad.split(BATCH)  # the steps, (B, C, 16, 16) each

        def weight_grad(g: torch.Tensor, inp: torch.Tensor, w: torch.Tensor = weight) -> torch.Tensor:
            mask = [False, True, False]
            pad = [KERNEL // 2] * 2
            return aten.convolution_backward(g, inp, w, None, [1, 1], pad, [1, 1], False, [0, 0], 1, mask)[1]

        def per_step(xs: tuple = xs, grads: tuple = grads) -> None:
            total = None
            for g, inp in zip(grads, xs):
                one = weight_grad(g, inp)
                total = one if total is None else total + one

        def pooled(x: torch.Tensor = x, grad: torch.Tensor = grad) -> None:
            weight_grad(grad, x)

        median = interleaved_medians({"per step": per_step, "pooled": pooled}, *rounds)
        flops = 2 * STEPS * BATCH * c_in * c_out * KERNEL * KERNEL * SIDE * SIDE
        rate = {name: flops / seconds / 1e12 for name, seconds in median.items()}
        print(
            f"{label:22s} {str(dtype)[6:]:8s} per step {median['per step'] * 1e3:8.1f} ms "
            f"({rate['per step']:.2f} TFLOP/s)  pooled {median['pooled'] * 1e3:8.1f} ms "
            f"({rate['pooled']:.2f} TFLOP/s)  pooled/per step {median['pooled'] / median['per step']:.3f}",
            flush=True,
        )


def steps(names: list[str], precisions: list[str], quick: bool) -> None:
    specs = _specs()
    for name in names:
        spec = specs[name]
        torch.manual_seed(0)
        frames = torch.rand(spec.batch, T, 1, SIZE, SIZE)
        built = create_model(spec.name, input_length=10, total_length=T, **spec.kwargs)
        variants: dict[str, Callable[[], None]] = {}
        for precision in precisions:
            model = copy.deepcopy(built)
            lstmvision.cells.match_weight_layout(model, fp32=precision == "fp32")
            for pool in (True, False):
                step = train_step(model, frames, precision == "bf16", None)

                def run(step: Callable[[], None] = step, pool: bool = pool) -> None:
                    with lstmvision.cells.weight_grad_pooling(pool):
                        step()

                variants[f"{precision} {'on' if pool else 'off'}"] = run
        warmup, rounds = spec.quick if quick else spec.full
        median = interleaved_medians(variants, max(warmup, 1), max(rounds, 2 if quick else 3))
        for precision in precisions:
            on, off = median[f"{precision} on"], median[f"{precision} off"]
            print(
                f"{spec.label:20s} {precision:4s} training step: pooled {on * 1e3:8.1f} ms, per step "
                f"{off * 1e3:8.1f} ms, pooled/per step {on / off:.3f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--models", default="demo,convlstm_s,predrnn,e3d")
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--skip-convolutions", action="store_true", help="only the training steps")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(_specs()))
    if unknown:
        parser.error(f"--models expects names from {','.join(_specs())}, got {','.join(unknown)}")
    precisions = [p for p in args.precisions.split(",") if p]
    if set(precisions) - {"bf16", "fp32"}:
        parser.error(f"--precisions expects bf16 and/or fp32, got {args.precisions!r}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load_average():.2f}")
    if not args.skip_convolutions:
        for precision in precisions:
            convolutions(
                torch.bfloat16 if precision == "bf16" else torch.float32, (1, 3 if args.quick else 7)
            )
    steps(names, precisions, args.quick)


if __name__ == "__main__":
    main()
