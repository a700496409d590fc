"""E3D-LSTM and PredRNN training-step speed against the machine's convolution peak and naive references.

Shape: the patched Moving MNIST setting of the releases (64×64 frames in 4×4 patches: 16 channels,
16×16), B=4, 20 frames (19 steps, every true frame fed), 2 layers of 64 hidden channels, filter 5; the
E3D-LSTM recalls over every earlier step (``recall_window=None``, as the release). Prints, from one run:

- the time of one training step (forward, MSE, backward) of ``E3DLSTMPredictor`` and
  ``PredRNNPredictor``;
- the GFLOP/s that achieves, with the step's FLOPs counted by ``torch.utils.flop_counter`` (every
  convolution's forward and backward, and the recall attention's fused kernel, forward and backward);
- the peak: the same convolutions the forward pass makes (recorded with hooks, same shapes and
  weights), run forward alone in NCHW and channels-last (the faster counts), and the ratio to it;
- the speed-up over a naive reference of each model: one convolution per gate term, the recall's
  attention weights formed explicitly, and the zero state convolved like any other.

Every variant is timed once per round, rounds interleaved, and each figure is the median over rounds.
Usage: ``python benchmarks/e3d_predrnn.py [--quick]``. Not part of the test run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from timing import interleaved_medians, load_average, parse_rounds
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from lstmvision.models import E3DLSTMPredictor, PredRNNPredictor

B, T, HIDDEN, LAYERS, FILTER, PATCH, SIZE, W = 4, 20, 64, 2, 5, 4, 64, 2
C = PATCH * PATCH  # patched channels
aten = torch.ops.aten


def _sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# the CPU's fused attention kernels are not in torch's table; count them as torch counts the GPU ones
_ATTENTION = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward,
}


class NaiveE3D(nn.Module):
    """The E3D-LSTM equations written plainly: a Conv3d per term, explicit attention, zero states convolved."""

    def __init__(self) -> None:
        super().__init__()
        k = (W, FILTER, FILTER)

        def conv(cin: int, bias: bool = False) -> nn.Conv3d:
            return nn.Conv3d(cin, HIDDEN, k, padding="same", bias=bias)

        sizes = [C] + [HIDDEN] * LAYERS
        self.x = nn.ModuleList(nn.ModuleList(conv(sizes[i], True) for _ in range(7)) for i in range(LAYERS))
        self.h = nn.ModuleList(nn.ModuleList(conv(HIDDEN) for _ in range(4)) for _ in range(LAYERS))
        self.m = nn.ModuleList(nn.ModuleList(conv(HIDDEN) for _ in range(3)) for _ in range(LAYERS))
        self.co = nn.ModuleList(conv(HIDDEN) for _ in range(LAYERS))
        self.mo = nn.ModuleList(conv(HIDDEN) for _ in range(LAYERS))
        self.fuse = nn.ModuleList(nn.Conv3d(2 * HIDDEN, HIDDEN, 1, bias=False) for _ in range(LAYERS))
        self.norm = nn.ModuleList(nn.GroupNorm(1, HIDDEN) for _ in range(LAYERS))
        self.head = nn.Conv3d(HIDDEN, C, (W, 1, 1), stride=(W, 1, 1), bias=False)

    def forward(self, frames: Tensor) -> Tensor:
        patches = F.pixel_unshuffle(frames.flatten(0, 1), PATCH).unflatten(0, (B, T))  # (B, T, C, 16, 16)
        padded = torch.cat([torch.zeros_like(patches[:, : W - 1]), patches], dim=1)
        zeros = patches.new_zeros(B, HIDDEN, W, SIZE // PATCH, SIZE // PATCH)
        h, c = [zeros] * LAYERS, [zeros] * LAYERS
        history: list[list[Tensor]] = [[zeros] for _ in range(LAYERS)]
        m, outputs = zeros, []
        for t in range(T - 1):
            x = padded[:, t : t + W].transpose(1, 2)  # (B, C, w, 16, 16)
            for i in range(LAYERS):
                xi, xr, xg, xo, xi2, xf2, xg2 = (conv(x) for conv in self.x[i])
                hi, hr, hg, ho = (conv(h[i]) for conv in self.h[i])
                mi, mf, mg = (conv(m) for conv in self.m[i])
                r = torch.sigmoid(xr + hr)
                keys = torch.cat(history[i], dim=2).flatten(2).transpose(1, 2)  # (B, n·w·h·w, Hc)
                query = r.flatten(2).transpose(1, 2)  # (B, w·h·w, Hc)
                weights = torch.softmax(query @ keys.transpose(1, 2), dim=-1)
                recall = (weights @ keys).transpose(1, 2).reshape_as(r)
                c[i] = torch.sigmoid(xi + hi) * torch.tanh(xg + hg) + self.norm[i](c[i] + recall)
                history[i].append(c[i])
                m = torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg) + torch.sigmoid(xf2 + mf) * m
                o = torch.sigmoid(xo + ho + self.co[i](c[i]) + self.mo[i](m))
                h[i] = o * torch.tanh(self.fuse[i](torch.cat([c[i], m], dim=1)))
                x = h[i]
            outputs.append(self.head(x)[:, :, 0])
        return F.pixel_shuffle(torch.stack(outputs, 1).flatten(0, 1), PATCH).unflatten(0, (B, T - 1))


class NaivePredRNN(nn.Module):
    """The PredRNN equations written plainly: a Conv2d per term, zero states convolved."""

    def __init__(self) -> None:
        super().__init__()

        def conv(cin: int, bias: bool = False) -> nn.Conv2d:
            return nn.Conv2d(cin, HIDDEN, FILTER, padding=FILTER // 2, bias=bias)

        sizes = [C] + [HIDDEN] * LAYERS
        self.x = nn.ModuleList(nn.ModuleList(conv(sizes[i], True) for _ in range(7)) for i in range(LAYERS))
        self.h = nn.ModuleList(nn.ModuleList(conv(HIDDEN) for _ in range(4)) for _ in range(LAYERS))
        self.m = nn.ModuleList(nn.ModuleList(conv(HIDDEN) for _ in range(3)) for _ in range(LAYERS))
        self.co = nn.ModuleList(conv(HIDDEN) for _ in range(LAYERS))
        self.mo = nn.ModuleList(conv(HIDDEN) for _ in range(LAYERS))
        self.fuse = nn.ModuleList(nn.Conv2d(2 * HIDDEN, HIDDEN, 1, bias=False) for _ in range(LAYERS))
        self.head = nn.Conv2d(HIDDEN, C, 1, bias=False)

    def forward(self, frames: Tensor) -> Tensor:
        patches = F.pixel_unshuffle(frames.flatten(0, 1), PATCH).unflatten(0, (B, T))
        zeros = patches.new_zeros(B, HIDDEN, SIZE // PATCH, SIZE // PATCH)
        h, c, m, outputs = [zeros] * LAYERS, [zeros] * LAYERS, zeros, []
        for t in range(T - 1):
            x = patches[:, t]
            for i in range(LAYERS):
                xi, xf, xg, xo, xi2, xf2, xg2 = (conv(x) for conv in self.x[i])
                hi, hf, hg, ho = (conv(h[i]) for conv in self.h[i])
                mi, mf, mg = (conv(m) for conv in self.m[i])
                c[i] = torch.sigmoid(xf + hf) * c[i] + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
                m = torch.sigmoid(xf2 + mf) * m + torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg)
                o = torch.sigmoid(xo + ho + self.co[i](c[i]) + self.mo[i](m))
                h[i] = o * torch.tanh(self.fuse[i](torch.cat([c[i], m], dim=1)))
                x = h[i]
            outputs.append(self.head(x))
        return F.pixel_shuffle(torch.stack(outputs, 1).flatten(0, 1), PATCH).unflatten(0, (B, T - 1))


def train_step(model: nn.Module, frames: Tensor, **kwargs: float) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.mse_loss(model(frames, **kwargs), frames[:, 1:]).backward()

    return step


def step_flops(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False, custom_mapping=_ATTENTION) as counter:
        step()
    return counter.get_total_flops()


def peak_convs(model: nn.Module, frames: Tensor, memory_format: torch.memory_format) -> Callable[[], None]:
    """Replay, forward only, every convolution one forward pass of ``model`` makes (same shapes)."""
    calls: list[tuple[nn.Module, Tensor]] = []
    hooks = [
        module.register_forward_hook(lambda mod, args, out: calls.append((mod, args[0].detach())))
        for module in model.modules()
        if isinstance(module, (nn.Conv2d, nn.Conv3d))
    ]
    with torch.no_grad():
        model(frames, sampling_prob=1.0)
    for hook in hooks:
        hook.remove()
    fmt = torch.channels_last if memory_format == torch.channels_last else torch.contiguous_format
    replay = []
    for module, inp in calls:
        conv_format = (
            fmt if inp.dim() == 4 else (torch.channels_last_3d if fmt != torch.contiguous_format else fmt)
        )
        replay.append((module, inp.contiguous(memory_format=conv_format)))

    def run() -> None:
        with torch.no_grad():
            for module, inp in replay:
                module._conv_forward(inp, module.weight, module.bias)  # type: ignore[operator]

    return run


def main() -> None:
    # the naive E3D-LSTM pads its even temporal kernel with padding="same", which torch warns about
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    warmup, rounds = parse_rounds(__doc__, quick=(1, 3), full=(1, 5))
    torch.manual_seed(0)
    frames = torch.rand(B, T, 1, SIZE, SIZE)
    common = dict(
        patch_size=PATCH, num_hidden=[HIDDEN] * LAYERS, filter_size=FILTER, input_length=10, total_length=T
    )
    models = {"E3D-LSTM": E3DLSTMPredictor(**common), "PredRNN": PredRNNPredictor(**common)}
    variants: dict[str, Callable[[], None]] = {}
    flops: dict[str, int] = {}
    peak_flops: dict[str, int] = {}
    for name, model in models.items():
        for fmt_name, fmt in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
            variants[f"{name} peak {fmt_name}"] = peak_convs(model, frames, fmt)
        with FlopCounterMode(display=False) as counter:
            variants[f"{name} peak NCHW"]()
        peak_flops[name] = counter.get_total_flops()
        variants[name] = train_step(model, frames, sampling_prob=1.0)
        flops[name] = step_flops(variants[name])
    naive = {"E3D-LSTM": NaiveE3D(), "PredRNN": NaivePredRNN()}
    for name, model in naive.items():
        variants[f"{name} naive"] = train_step(model, frames)
        flops[f"{name} naive"] = step_flops(variants[f"{name} naive"])

    load = load_average()
    median = interleaved_medians(variants, warmup, rounds)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average before {load:.2f}; "
        f"B={B} T={T} patched {C}x{SIZE // PATCH}x{SIZE // PATCH} hidden={HIDDEN}x{LAYERS} filter={FILTER}; "
        f"median of {rounds} interleaved rounds"
    )
    for name in models:
        peaks = {
            fmt: peak_flops[name] / median[f"{name} peak {fmt}"] / 1e9 for fmt in ("NCHW", "channels-last")
        }
        peak = max(peaks.values())
        achieved = flops[name] / median[name] / 1e9
        speedup = median[f"{name} naive"] / median[name]
        print(
            f"{name:8s} peak (its forward convolutions alone): {peak:6.1f} GFLOP/s "
            f"(NCHW {peaks['NCHW']:.1f}, channels-last {peaks['channels-last']:.1f})"
        )
        print(
            f"{name:8s} training step {median[name] * 1e3:8.1f} ms  {flops[name] / 1e9:7.1f} GFLOP  "
            f"{achieved:6.1f} GFLOP/s  {achieved / peak:6.1%} of peak  {speedup:4.2f}x naive "
            f"(naive {median[f'{name} naive'] * 1e3:.1f} ms, {flops[f'{name} naive'] / 1e9:.1f} GFLOP)"
        )


if __name__ == "__main__":
    main()
