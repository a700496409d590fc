"""ConvLSTM training-step speed against the machine's convolution peak and a naive reference.

Shape: the patched Moving MNIST setting (2 layers of 64 hidden channels, kernel 5, 16 input channels,
16×16 frames, B=16, T=19). Prints, from one run:

- the time of one training step (forward, loss, backward) of ``lstmvision.cells.ConvLSTM``, with the
  input convolution hoisted over all B·T frames and computed per step;
- the GFLOP/s that achieves: 3 × the forward FLOPs of the convolution calls the step makes
  (forward, input gradient, weight gradient), 2·B·H'·W'·Cout·Cin·kh·kw per call;
- the peak: forward ``conv2d`` on exactly the per-step shapes, in NCHW and channels-last (the faster
  counts), and the ratio of the achieved rate to it;
- the speed-up over a naive reference: four gate convolutions on ``cat([x, h])`` inside the time loop.

Every variant is timed once per round, rounds interleaved, and each figure is the median over rounds,
so a machine that gets busier during the run slows all variants alike.

Usage: ``python benchmarks/convlstm.py [--quick]``. Not part of the test run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timing import interleaved_medians, load_average, parse_rounds
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


def conv_flops(c_in: int, c_out: int) -> int:
    # one multiply and one add per weight per output pixel ("same", stride 1: H' = H)
    return 2 * B * SIZE * SIZE * c_out * c_in * KERNEL * KERNEL


def step_shapes() -> list[tuple[int, int, bool]]:
    """(Cin, Cout, is_hidden) of the convolutions one ConvLSTM time step runs, layer by layer."""
    shapes = []
    for layer in range(LAYERS):
        shapes += [(C_IN if layer == 0 else HIDDEN, 4 * HIDDEN, False), (HIDDEN, 4 * HIDDEN, True)]
    return shapes


def convlstm_train_flops() -> int:
    # every step runs each input conv; the first step skips the hidden conv (its state is zero)
    forward = sum((T - 1 if hidden else T) * conv_flops(c_in, c_out) for c_in, c_out, hidden in step_shapes())
    return 3 * forward  # forward + input gradient + weight gradient, each the forward's FLOPs


def train_step(model: nn.Module, x: Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.square().mean().backward()

    return step


def peak_convs(memory_format: torch.memory_format) -> Callable[[], None]:
    """Forward conv2d on each per-step shape, T times: the time loop's convolutions alone."""
    tensors = [
        (
            torch.randn(B, c_in, SIZE, SIZE).contiguous(memory_format=memory_format),
            torch.randn(c_out, c_in, KERNEL, KERNEL).contiguous(memory_format=memory_format),
        )
        for c_in, c_out, _ in step_shapes()
    ]

    def run() -> None:
        with torch.no_grad():
            for _ in range(T):
                for inp, weight in tensors:
                    F.conv2d(inp, weight, padding=KERNEL // 2)

    return run


def main() -> None:
    warmup, rounds = parse_rounds(__doc__, quick=(1, 3), full=(2, 9))
    torch.manual_seed(0)
    x = torch.rand(B, T, C_IN, SIZE, SIZE)
    model = ConvLSTM(C_IN, HIDDEN, KERNEL, LAYERS)
    hoisted = ConvLSTM(C_IN, HIDDEN, KERNEL, LAYERS, hoist_input_conv=True)
    hoisted.load_state_dict(model.state_dict())
    variants: dict[str, Callable[[], None]] = {
        "peak NCHW": peak_convs(torch.contiguous_format),
        "peak channels-last": peak_convs(torch.channels_last),
        "hoisted": train_step(hoisted, x),
        "per-step": train_step(model, x),
        "naive": train_step(NaiveConvLSTM(), x),
    }
    load = load_average()
    median = interleaved_medians(variants, warmup, rounds)

    step_flops = T * sum(conv_flops(c_in, c_out) for c_in, c_out, _ in step_shapes())
    peaks = {name: step_flops / median[name] / 1e9 for name in ("peak NCHW", "peak channels-last")}
    peak = max(peaks.values())
    flops = convlstm_train_flops()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average before {load:.2f}; "
        f"B={B} T={T} C={C_IN} hidden={HIDDEN}x{LAYERS} kernel={KERNEL} {SIZE}x{SIZE}; "
        f"median of {rounds} interleaved rounds"
    )
    print(
        f"peak, forward conv2d on the per-step shapes: {peak:6.1f} GFLOP/s "
        f"(NCHW {peaks['peak NCHW']:.1f}, channels-last {peaks['peak channels-last']:.1f})"
    )
    print(f"naive reference training step:      {median['naive'] * 1e3:7.1f} ms")
    for name in ("hoisted", "per-step"):
        achieved = flops / median[name] / 1e9
        print(
            f"ConvLSTM training step, {name:9s} {median[name] * 1e3:7.1f} ms  {achieved:6.1f} GFLOP/s  "
            f"{achieved / peak:6.1%} of peak  {median['naive'] / median[name]:4.2f}x naive"
        )
    faster = "hoisted" if median["hoisted"] < median["per-step"] else "per-step"
    print(
        f"faster input conv: {faster} (per-step / hoisted time = {median['per-step'] / median['hoisted']:.3f})"
    )


if __name__ == "__main__":
    main()
