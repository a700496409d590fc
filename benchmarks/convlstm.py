"""ConvLSTM training-step speed against the machine's convolution peak and a naive reference.

Shape: the patched Moving MNIST setting (2 layers of 64 hidden channels, kernel 5, 16 input channels,
16×16 frames, B=16, T=19). Prints, from one run:

- the time of one training step (forward, loss, backward) of ``lstmvision.cells.ConvLSTM``, with the
  input convolution hoisted over all B·T frames and computed per step;
- the GFLOP/s that achieves (3 × the forward convolution FLOPs of the calls actually made);
- the peak: forward ``conv2d`` on exactly the per-step shapes, timed here, and the ratio to it;
- the ratio to a naive reference (four gate convolutions on ``cat([x, h])`` inside the time loop).

Usage: ``python benchmarks/convlstm.py [--quick]``. Not part of the test run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.cells import ConvLSTM

B, T, C_IN, HIDDEN, LAYERS, KERNEL, SIZE = 16, 19, 16, 64, 2, 5, 16


class NaiveConvLSTM(nn.Module):
    """The textbook form: one convolution per gate on ``cat([x, h])``, every step, zero state included."""

    def __init__(self) -> None:
        super().__init__()
        sizes = [C_IN] + [HIDDEN] * LAYERS
        self.gates = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(sizes[i] + HIDDEN, HIDDEN, KERNEL, padding=KERNEL // 2) for _ in range(4))
            for i in range(LAYERS)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.gates:
            h = x.new_zeros(B, HIDDEN, SIZE, SIZE)
            c = torch.zeros_like(h)
            outputs = []
            for t in range(T):
                xh = torch.cat([x[:, t], h], dim=1)  # (B, C + Hc, H, W)
                i, f, g, o = (conv(xh) for conv in layer)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)  # (B, T, Hc, H, W)
        return x


def conv_flops(batch: int, c_in: int, c_out: int) -> int:
    # 2·B·H'·W'·Cout·Cin·kh·kw: one multiply and one add per weight per output pixel ("same", stride 1)
    return 2 * batch * SIZE * SIZE * c_out * c_in * KERNEL * KERNEL


def step_shapes() -> list[tuple[int, int, bool]]:
    """(Cin, Cout, is_hidden) of the convolutions one ConvLSTM time step runs, layer by layer."""
    shapes = []
    for layer in range(LAYERS):
        shapes += [(C_IN if layer == 0 else HIDDEN, 4 * HIDDEN, False), (HIDDEN, 4 * HIDDEN, True)]
    return shapes


def convlstm_train_flops() -> int:
    # every step runs each input conv; the first step skips the hidden conv (its state is zero)
    forward = sum(
        (T - 1 if hidden else T) * conv_flops(B, c_in, c_out) for c_in, c_out, hidden in step_shapes()
    )
    return 3 * forward  # forward + input gradient + weight gradient, each the same FLOPs


def timed(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median seconds of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(model: nn.Module, x: Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.square().mean().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 2 repeats instead of 2 and 7")
    args = parser.parse_args()
    warmup, repeats = (1, 2) if args.quick else (2, 7)
    torch.manual_seed(0)
    x = torch.rand(B, T, C_IN, SIZE, SIZE)

    # peak: forward conv2d on the per-step shapes, the same work the time loop runs, many times over
    inputs = [
        (torch.randn(B, c_in, SIZE, SIZE), torch.randn(c_out, c_in, KERNEL, KERNEL))
        for c_in, c_out, _ in step_shapes()
    ]
    peak_flops = sum(conv_flops(B, c_in, c_out) for c_in, c_out, _ in step_shapes())

    def per_step_convs() -> None:
        with torch.no_grad():
            for _ in range(T):
                for inp, weight in inputs:
                    F.conv2d(inp, weight, padding=KERNEL // 2)

    peak = T * peak_flops / timed(per_step_convs, warmup, repeats) / 1e9

    model = ConvLSTM(C_IN, HIDDEN, KERNEL, LAYERS)
    naive = NaiveConvLSTM()
    results = {}
    for hoist in (True, False):
        model.hoist_input_conv = hoist
        results[hoist] = timed(train_step(model, x), warmup, repeats)
    naive_time = timed(train_step(naive, x), warmup, repeats)
    flops = convlstm_train_flops()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={B} T={T} C={C_IN} "
        f"hidden={HIDDEN}x{LAYERS} kernel={KERNEL} {SIZE}x{SIZE}, median of {repeats}"
    )
    print(f"peak (forward conv2d, per-step shapes): {peak:8.1f} GFLOP/s")
    print(f"naive reference training step:         {naive_time * 1e3:8.1f} ms")
    for hoist, name in ((True, "hoisted input conv"), (False, "per-step input conv")):
        seconds = results[hoist]
        achieved = flops / seconds / 1e9
        print(
            f"ConvLSTM training step, {name:20s} {seconds * 1e3:8.1f} ms  {achieved:7.1f} GFLOP/s  "
            f"{achieved / peak:6.1%} of peak  {naive_time / seconds:5.2f}x naive"
        )
    print(
        f"faster: {'hoisted' if results[True] < results[False] else 'per-step'} "
        f"(per-step / hoisted time = {results[False] / results[True]:.3f})"
    )


if __name__ == "__main__":
    main()
