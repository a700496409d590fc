"""Video predictors in fp32 and bf16 autocast against the machine's peak for each precision.

Four sizes, 64×64 one-channel frames, 20 frames (10 observed, 10 predicted):

- ``demo``: ConvLSTM, 2 × 32 hidden, filter 5, patch 4 (16 channels, 16×16), B=16;
- ``convlstm_s``: ConvLSTM, 4 × 128 hidden, filter 5, patch 4, B=16;
- ``predrnn``: PredRNN, 4 × 64 hidden, filter 5, patch 4, B=16;
- ``e3d``: the E3D-LSTM of the moving_mnist/e3d_lstm_small config (2 × 32 hidden, patch 8, window 2,
  recall over the last 4 steps, layer norm), B=16 as there.

For each, in fp32 and under ``torch.autocast("cpu", torch.bfloat16)`` (bf16-mixed as Lightning runs it:
fp32 weights, autocast around the forward, the loss in fp32), and with gate fusion on and off where
``lstmvision.cells.gate_fusion`` exists, it prints from one run:

- the cells' weights stored in the layout a task's run gives them at that precision
  (``lstmvision.cells.match_weight_layout``: channels-last where their convolutions run channels-last);
- the training step as the prediction task runs it: ``model(frames)`` (scheduled-sampling probability
  0: predictions fed back after the observed frames), MSE against the next frames, backward, Adam step;
- inference: ``model.eval()``, ``torch.inference_mode()``, 10 frames forecast from 10, as samples/s;
- the GFLOP/s of each, with the FLOPs counted by ``torch.utils.flop_counter`` on one step (convolutions
  and matrix products forward and backward, the E3D recall's fused attention kernel), and the share of
  the peak of that precision;
- the peak: the forward convolutions the model makes (recorded as ``aten.convolution`` calls: input and
  weight shapes and strides, stride, padding, dtype) run alone with random data, each distinct call
  timed on its own and weighted by how often the forecast makes it; once with the model's own strides,
  once NCHW and once channels-last. The best of the three is the peak;
- the speed-up over a naive form of each network (one convolution per gate term, ConvLSTM's on
  ``cat([x, h])``, the zero first state convolved like any other, the E3D recall's attention weights
  formed explicitly), same rollout and loss, in the same precision.

The cells' pooled weight gradients (``lstmvision.cells.weight_grad_pooling``, where it exists) are on in
every row, as in a run; ``weight_grads.py`` times them on and off.

Variants are timed once per round, rounds interleaved (A, B, A, B, ...), and each figure is the median
over rounds. Before the rounds every variant runs once on 3 clips (which compiles the fused gates).
The two large models run few rounds (three without `--quick`): one ConvLSTM-S fp32 step takes tens of
seconds on 2 cores.

Usage: ``python benchmarks/precision.py [--quick] [--models demo,convlstm_s,predrnn,e3d] [--precisions fp32,bf16]
[--threads N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from e3d_predrnn import _ATTENTION  # the CPU fused-attention kernels' FLOPs, as torch counts the GPU ones
from timing import interleaved_medians, load_average
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import lstmvision.cells
from lstmvision.models import RecurrentPredictor, create_model

T, INPUT, SIZE = 20, 10, 64  # frames per clip, observed frames, frame side
# clips of the warm-up call of each variant. Not 2: torch.compile's duck sizing takes a batch equal to
# another size of the gates (E3D-LSTM's window of 2) for that size, and compiled the fused gates again at
# the timed batch, inside a timed round (E3D-LSTM bf16 fusion-on training measured 20.1 s instead of 7.0)
WARM_CLIPS = 3
PEAK_CALLS = 3  # calls per timing of one distinct convolution of the peak
aten = torch.ops.aten
# the switch of the gate-fusion work; absent in versions without it
_FUSION: Callable[[bool], contextlib.AbstractContextManager[None]] | None = getattr(
    lstmvision.cells, "gate_fusion", None
)
_FUSION_MODULE = getattr(lstmvision.cells, "_fusion", None)
# the weight-layout rule of a task's run; absent in versions without it (weights then stay as built)
_MATCH_LAYOUT = getattr(lstmvision.cells, "match_weight_layout", None)
PRECISIONS = ("fp32", "bf16")
LAYOUTS = ("model", "NCHW", "channels-last")  # the peak's layouts; the best of them is the peak


# ---------------------------------------------------------------------------------- naive references
class _Naive(RecurrentPredictor):
    """A naive network behind the library's rollout: patching and fed frames as the model's."""

    def __init__(self, patch_size: int) -> None:
        super().__init__(
            1,
            patch_size=patch_size,
            input_length=INPUT,
            total_length=T,
        )


class NaiveConvLSTM(_Naive):
    """ConvLSTM as textbooks write it: four gate convolutions on ``cat([x, h])`` per layer and step."""

    def __init__(self, num_hidden: list[int], filter_size: int, patch_size: int) -> None:
        super().__init__(patch_size)
        sizes = [self.patch_channels, *num_hidden]
        self.gates = nn.ModuleList(
            nn.ModuleList(
                nn.Conv2d(sizes[i] + sizes[i + 1], sizes[i + 1], filter_size, padding=filter_size // 2)
                for _ in range(4)
            )
            for i in range(len(num_hidden))
        )
        self.num_hidden = num_hidden
        self.head = nn.Conv2d(sizes[-1], self.patch_channels, 1, bias=False)

    def step(self, fed: list[Tensor], state: Any) -> tuple[Tensor, Any]:
        x = fed[-1]  # (B, Cp, H/p, W/p)
        if state is None:
            state = [(x.new_zeros(x.shape[0], n, *x.shape[2:]),) * 2 for n in self.num_hidden]
        new = []
        for convs, (h, c) in zip(self.gates, state):
            xh = torch.cat([x, h], dim=1)  # (B, C + Hc, H/p, W/p)
            i, f, g, o = (conv(xh) for conv in convs)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c)
            new.append((x, c))
        return self.head(x), new


class NaivePredRNN(_Naive):
    """PredRNN's spatiotemporal LSTM written plainly: a convolution per gate term, zero states convolved."""

    def __init__(self, num_hidden: list[int], filter_size: int, patch_size: int) -> None:
        super().__init__(patch_size)
        sizes = [self.patch_channels, *num_hidden]
        Hc = num_hidden[0]  # the zigzag memory climbs every layer: one width throughout

        def convs(cin: int, n: int, bias: bool = False) -> nn.ModuleList:
            return nn.ModuleList(
                nn.Conv2d(cin, Hc, filter_size, padding=filter_size // 2, bias=bias) for _ in range(n)
            )

        layers = range(len(num_hidden))
        self.x = nn.ModuleList(convs(sizes[i], 7, bias=True) for i in layers)
        self.h = nn.ModuleList(convs(Hc, 4) for _ in layers)
        self.m = nn.ModuleList(convs(Hc, 3) for _ in layers)
        self.out = nn.ModuleList(convs(Hc, 2) for _ in layers)  # W_co * C_t, W_mo * M_t
        self.fuse = nn.ModuleList(nn.Conv2d(2 * Hc, Hc, 1, bias=False) for _ in layers)
        self.head = nn.Conv2d(Hc, self.patch_channels, 1, bias=False)
        self.Hc = Hc

    def step(self, fed: list[Tensor], state: Any) -> tuple[Tensor, Any]:
        x = fed[-1]  # (B, Cp, H/p, W/p)
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.Hc, *x.shape[2:])
            state = ([zeros] * len(self.x), [zeros] * len(self.x), zeros)
        hs, cs, m = list(state[0]), list(state[1]), state[2]
        for i in range(len(self.x)):
            xi, xf, xg, xo, xi2, xf2, xg2 = (conv(x) for conv in self.x[i])
            hi, hf, hg, ho = (conv(hs[i]) for conv in self.h[i])
            mi, mf, mg = (conv(m) for conv in self.m[i])
            cs[i] = torch.sigmoid(xf + hf) * cs[i] + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
            m = torch.sigmoid(xf2 + mf) * m + torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg)
            o = torch.sigmoid(xo + ho + self.out[i][0](cs[i]) + self.out[i][1](m))
            hs[i] = x = o * torch.tanh(self.fuse[i](torch.cat([cs[i], m], dim=1)))
        return self.head(x), (hs, cs, m)


class NaiveE3D(_Naive):
    """The E3D-LSTM written plainly: a Conv3d per gate term, each normed on its own, explicit attention."""

    def __init__(
        self,
        num_hidden: list[int],
        filter_size: int,
        patch_size: int,
        window_length: int,
        recall_window: int | None,
        layer_norm: bool,
    ) -> None:
        super().__init__(patch_size)
        sizes = [self.patch_channels, *num_hidden]
        Hc, w = num_hidden[0], window_length
        kernel = (w, filter_size, filter_size)

        def terms(cin: int, n: int, bias: bool = False) -> nn.ModuleList:
            # padding "same" pads an even kernel's extra zero after, as TensorFlow
            return nn.ModuleList(nn.Conv3d(cin, Hc, kernel, padding="same", bias=bias) for _ in range(n))

        def norms(n: int) -> nn.ModuleList:
            return nn.ModuleList(nn.GroupNorm(1, Hc) if layer_norm else nn.Identity() for _ in range(n))

        layers = range(len(num_hidden))
        self.x = nn.ModuleList(terms(sizes[i], 7, bias=not layer_norm) for i in layers)
        self.h = nn.ModuleList(terms(Hc, 4) for _ in layers)
        self.m = nn.ModuleList(terms(Hc, 3) for _ in layers)
        self.out = nn.ModuleList(terms(Hc, 2) for _ in layers)  # W_co * C_t, W_mo * M_t
        self.norm_x = nn.ModuleList(norms(7) for _ in layers)
        self.norm_h = nn.ModuleList(norms(4) for _ in layers)
        self.norm_m = nn.ModuleList(norms(3) for _ in layers)
        self.norm_recall = nn.ModuleList(nn.GroupNorm(1, Hc) for _ in layers)
        self.fuse = nn.ModuleList(nn.Conv3d(2 * Hc, Hc, 1, bias=False) for _ in layers)
        self.head = nn.Conv3d(Hc, self.patch_channels, (w, 1, 1), stride=(w, 1, 1), bias=False)
        self.Hc, self.window_length, self.recall_window = Hc, w, recall_window

    def step(self, fed: list[Tensor], state: Any) -> tuple[Tensor, Any]:
        w = self.window_length
        recent = fed[-w:]
        recent = [torch.zeros_like(recent[0])] * (w - len(recent)) + recent
        x = torch.stack(recent, dim=2)  # (B, Cp, w, H/p, W/p), oldest first
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.Hc, *x.shape[2:])
            L = len(self.x)
            state = ([zeros] * L, [zeros] * L, zeros, [[zeros] for _ in range(L)])
        hs, cs, m, history = list(state[0]), list(state[1]), state[2], [list(h) for h in state[3]]
        for i in range(len(self.x)):
            xi, xr, xg, xo, xi2, xf2, xg2 = (n(c(x)) for c, n in zip(self.x[i], self.norm_x[i]))
            hi, hr, hg, ho = (n(c(hs[i])) for c, n in zip(self.h[i], self.norm_h[i]))
            mi, mf, mg = (n(c(m)) for c, n in zip(self.m[i], self.norm_m[i]))
            r = torch.sigmoid(xr + hr)
            keys = torch.cat(history[i], dim=2).flatten(2).transpose(1, 2)  # (B, n·w·h·w, Hc)
            query = r.flatten(2).transpose(1, 2)  # (B, w·h·w, Hc)
            weights = torch.softmax(query @ keys.transpose(1, 2), dim=-1)  # (B, w·h·w, n·w·h·w)
            recall = (weights @ keys).transpose(1, 2).reshape_as(r)  # (B, Hc, w, h, w)
            recalled = self.norm_recall[i](cs[i] + recall)
            cs[i] = torch.sigmoid(xi + hi) * torch.tanh(xg + hg) + recalled
            history[i] = (history[i] + [cs[i]])[-(self.recall_window or len(history[i]) + 1) :]
            m = torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg) + torch.sigmoid(xf2 + mf) * m
            o = torch.sigmoid(xo + ho + self.out[i][0](cs[i]) + self.out[i][1](m))
            hs[i] = x = o * torch.tanh(self.fuse[i](torch.cat([cs[i], m], dim=1)))
        return self.head(x).squeeze(2), (hs, cs, m, history)


# --------------------------------------------------------------------------------------- the models
@dataclass
class Spec:
    """One benchmarked model: how to build it and its naive form, the batch, and its rounds."""

    label: str
    name: str
    kwargs: dict[str, Any]
    naive: Callable[[], nn.Module]
    batch: int
    full: tuple[int, int]  # (warm-up rounds, timed rounds)
    quick: tuple[int, int]


def _specs() -> dict[str, Spec]:
    small_e3d = dict(
        patch_size=8, num_hidden=[32, 32], filter_size=5, window_length=2, recall_window=4, layer_norm=True
    )
    return {
        "demo": Spec(
            "demo ConvLSTM 2x32",
            "convlstm",
            dict(num_hidden=[32, 32], filter_size=5, patch_size=4),
            lambda: NaiveConvLSTM([32, 32], 5, 4),
            16,
            full=(1, 7),
            # one warm-up round even here (a second): the first calls at the timed batch size allocate
            # what the warm-up on 3 clips did not, and in a 2-round median that moved the row by 20-50 %
            quick=(1, 2),
        ),
        "convlstm_s": Spec(
            "ConvLSTM-S 4x128",
            "convlstm",
            dict(num_hidden=[128] * 4, filter_size=5, patch_size=4),
            lambda: NaiveConvLSTM([128] * 4, 5, 4),
            16,
            # three rounds, so that a median is not one round's order effect (an fp32 row of one round
            # came out 0.96x its naive form where the same code's other row was 1.03x)
            full=(0, 3),
            quick=(0, 1),
        ),
        "predrnn": Spec(
            "PredRNN 4x64",
            "predrnn",
            dict(num_hidden=[64] * 4, filter_size=5, patch_size=4),
            lambda: NaivePredRNN([64] * 4, 5, 4),
            16,
            full=(0, 3),
            quick=(0, 1),
        ),
        "e3d": Spec(
            "E3D-LSTM small 2x32",
            "e3d_lstm",
            small_e3d,
            lambda: NaiveE3D(**small_e3d),  # type: ignore[arg-type]
            16,
            full=(0, 3),
            quick=(0, 2),
        ),
    }


# ------------------------------------------------------------------------------- FLOPs and the peak
class Conv(NamedTuple):
    """One ``aten.convolution`` call as the model made it (shapes, strides and dtype)."""

    x_shape: tuple[int, ...]
    x_stride: tuple[int, ...]
    w_shape: tuple[int, ...]
    w_stride: tuple[int, ...]
    bias: bool
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    dtype: torch.dtype


class ConvRecorder(TorchDispatchMode):
    """Counts the forward convolutions run inside it, by :class:`Conv` signature."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[Conv] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func.overloadpacket in (aten.conv1d, aten.conv2d, aten.conv3d):
            # inference mode skips autograd, so F.conv2d arrives here whole: split it into aten.convolution
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        if func is aten.convolution.default:
            x, w, b, stride, padding, dilation, transposed, _, groups = args
            if not transposed:
                self.calls[
                    Conv(
                        tuple(x.shape),
                        tuple(x.stride()),
                        tuple(w.shape),
                        tuple(w.stride()),
                        b is not None,
                        tuple(stride),
                        tuple(padding),
                        tuple(dilation),
                        groups,
                        x.dtype,
                    )
                ] += 1
        return func(*args, **kwargs)


def _layout(shape: tuple[int, ...], stride: tuple[int, ...], layout: str, dtype: torch.dtype) -> Tensor:
    if layout == "model":  # the strides the model used, gaps included
        return torch.empty_strided(shape, stride, dtype=dtype).normal_()
    t = torch.randn(shape).to(dtype)
    if layout == "channels-last":
        return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    return t.contiguous()


def peak_call(conv: Conv, layout: str) -> tuple[Callable[[], None], int]:
    """``PEAK_CALLS`` forward runs of one recorded convolution in ``layout``, and their FLOPs."""
    x = _layout(conv.x_shape, conv.x_stride, layout, conv.dtype)
    w = _layout(conv.w_shape, conv.w_stride, layout, conv.dtype)
    b = torch.zeros(conv.w_shape[0], dtype=conv.dtype) if conv.bias else None
    zeros = [0] * len(conv.stride)

    def run() -> None:
        with torch.inference_mode():
            for _ in range(PEAK_CALLS):
                aten.convolution(x, w, b, conv.stride, conv.padding, conv.dilation, False, zeros, conv.groups)

    with FlopCounterMode(display=False) as counter:
        run()
    return run, counter.get_total_flops()


def peak_variants(
    convs: Counter[Conv], prefix: str
) -> tuple[dict[str, Callable[[], None]], dict[str, tuple[int, int]]]:
    """The peak's timed calls of ``convs`` (signature -> calls per forecast) in each layout, named
    ``f"{prefix}{layout} {n}"``, and for each name (FLOPs of one timing, calls per forecast)."""
    variants, flops = {}, {}
    for layout in LAYOUTS:
        for n, (conv, calls) in enumerate(convs.items()):
            name = f"{prefix}{layout} {n}"
            variants[name], one = peak_call(conv, layout)
            flops[name] = (one, calls)
    return variants, flops


def layout_rates(
    median: dict[str, float], flops: dict[str, tuple[int, int]], prefix: str
) -> dict[str, float]:
    """GFLOP/s of the peak in each layout from the medians of :func:`peak_variants`' calls: every
    distinct convolution weighted by its calls per forecast."""
    rates = {}
    for layout in LAYOUTS:
        names = [name for name in flops if name.startswith(f"{prefix}{layout} ")]
        total = sum(flops[name][0] / PEAK_CALLS * flops[name][1] for name in names)
        seconds = sum(median[name] / PEAK_CALLS * flops[name][1] for name in names)
        rates[layout] = total / seconds / 1e9
    return rates


def counted(fn: Callable[[], None]) -> tuple[int, Counter[Conv]]:
    """FLOPs of one call of ``fn`` and the forward convolutions it made."""
    with FlopCounterMode(display=False, custom_mapping=_ATTENTION) as counter, ConvRecorder() as recorder:
        fn()
    return counter.get_total_flops(), recorder.calls


# ------------------------------------------------------------------------------------------ variants
def _fusion(enabled: bool | None) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext() if _FUSION is None or enabled is None else _FUSION(enabled)


def train_step(model: nn.Module, frames: Tensor, bf16: bool, fusion: bool | None) -> Callable[[], None]:
    """The prediction task's training step: forward under autocast, MSE in fp32, backward, Adam."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with _fusion(fusion):
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                pred = model(frames)  # (B, T-1, 1, H, W)
            F.mse_loss(pred.float(), frames[:, 1:]).backward()
        optimizer.step()

    return step


def forecast(model: nn.Module, frames: Tensor, bf16: bool, fusion: bool | None) -> Callable[[], None]:
    """Inference: ``T - INPUT`` frames predicted from the first ``INPUT``."""

    def run() -> None:
        model.eval()
        with _fusion(fusion), torch.inference_mode():
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                model(frames[:, :INPUT], future=T - INPUT)

    return run


@contextlib.contextmanager
def _timed(what: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"  ({what}: {time.perf_counter() - start:.1f} s)", flush=True)


def _fresh_compilation() -> None:
    """Every model compiles its fused gates anew: in one process, the models' shapes, ranks and grad
    modes together exceed dynamo's recompile limit, after which the cells fall back to eager gates."""
    torch._dynamo.reset()
    reset = getattr(_FUSION_MODULE, "_reset", None)  # forgets the compiled forms and a past failure
    if reset is not None:
        reset()


def _fusion_failed() -> bool:
    return bool(getattr(_FUSION_MODULE, "_broken", False))


def _over(fp32_seconds: float | None, seconds: float) -> str:
    """The 'x fp32' cell: the fp32 time over this one, blank when fp32 was not timed."""
    return "" if fp32_seconds is None else f"{fp32_seconds / seconds:6.2f}"


def bench(
    spec: Spec, rounds: tuple[int, int], precisions: tuple[str, ...] = PRECISIONS
) -> tuple[list[str], list[str]]:
    """Time every variant of one model in ``precisions``; returns its peak lines and its rows of the table."""
    _fresh_compilation()
    torch.manual_seed(0)
    frames = torch.rand(spec.batch, T, 1, SIZE, SIZE)
    built = create_model(spec.name, input_length=INPUT, total_length=T, **spec.kwargs)
    # one copy per precision, its cells' weights in that precision's layout, as a task's run stores them
    models = {precision: copy.deepcopy(built) for precision in precisions}
    if _MATCH_LAYOUT is not None:
        for precision, model in models.items():
            _MATCH_LAYOUT(model, fp32=precision == "fp32")
    naive = spec.naive()
    fusions: list[bool | None] = [True, False] if _FUSION is not None else [None]
    # (kind, precision, fusion) -> the callable for a batch of frames
    makers: dict[tuple[str, str, bool | None], Callable[[Tensor], Callable[[], None]]] = {}
    for precision in precisions:
        bf16 = precision == "bf16"
        for fusion in fusions:
            model = models[precision]
            makers["train", precision, fusion] = lambda x, m=model, b=bf16, f=fusion: train_step(m, x, b, f)
            makers["infer", precision, fusion] = lambda x, m=model, b=bf16, f=fusion: forecast(m, x, b, f)
        makers["naive", precision, None] = lambda x, b=bf16: train_step(naive, x, b, None)

    flops: dict[tuple[str, str], int] = {}
    convs: dict[str, Counter[Conv]] = {}
    with _timed("FLOPs and convolutions counted"):
        # FLOPs do not depend on the precision: one training step, fusion off (nothing compiled)
        train_flops, train_convs = counted(makers["train", precisions[-1], fusions[-1]](frames))
        for precision in precisions:
            flops["train", precision] = train_flops
            flops["infer", precision], convs[precision] = counted(
                makers["infer", precision, fusions[-1]](frames)
            )
    if set(train_convs) != set(convs[precisions[-1]]):
        print(
            "  note: the training forward's convolutions differ from the forecast's; peaks use the forecast's"
        )

    variants: dict[str, Callable[[], None]] = {}
    warm: list[Callable[[], None]] = []
    for key, make in makers.items():
        variants[str(key)] = make(frames)
        warm.append(make(frames[:WARM_CLIPS]))
    peak_flops: dict[str, tuple[int, int]] = {}  # variant -> (FLOPs of one timing, calls per forecast)
    for precision in precisions:
        timed, flops_of = peak_variants(convs[precision], f"peak {precision} ")
        variants.update(timed)
        peak_flops.update(flops_of)
        warm.extend(timed.values())
    with _timed(f"warm-up, models on {WARM_CLIPS} clips"):
        for fn in warm:
            fn()
    with _timed(f"{rounds[0]} warm-up and {rounds[1]} timed rounds of {len(variants)} variants"):
        median = interleaved_medians(variants, *rounds)

    if _fusion_failed():
        print("  warning: compiling the fused gates failed; the 'fusion on' rows of this model ran eagerly")
    peak_lines, rows = [], []
    peaks: dict[str, float] = {}
    for precision in precisions:
        rates = layout_rates(median, peak_flops, f"peak {precision} ")
        peaks[precision] = max(rates.values())
        peak_lines.append(
            f"{spec.label:20s} {precision}: {peaks[precision]:7.1f} GFLOP/s  (model's layout "
            f"{rates['model']:.1f}, NCHW {rates['NCHW']:.1f}, channels-last {rates['channels-last']:.1f}; "
            f"{len(convs[precision])} distinct convolutions)"
        )
    for kind in ("train", "infer"):
        for precision in precisions:
            for fusion in fusions:
                seconds = median[str((kind, precision, fusion))]
                rate = flops[kind, precision] / seconds / 1e9
                fp32 = _over(median.get(str((kind, "fp32", fusion))), seconds)
                naive = f"{median[str(('naive', precision, None))] / seconds:7.2f}" if kind == "train" else ""
                rows.append(
                    f"{spec.label:20s} {kind:5s} {precision:4s} "
                    f"{'n/a' if fusion is None else ('on' if fusion else 'off'):>6s} "
                    f"{seconds * 1e3:9.1f} {spec.batch / seconds:9.1f} {flops[kind, precision] / 1e9:8.1f} "
                    f"{rate:8.1f} {rate / peaks[precision]:7.1%} {fp32:>6s} {naive:>7s}"
                )
    for precision in precisions:
        seconds = median[str(("naive", precision, None))]
        fp32 = _over(median.get(str(("naive", "fp32", None))), seconds)
        rows.append(
            f"{spec.label:20s} naive {precision:4s} {'-':>6s} {seconds * 1e3:9.1f} {spec.batch / seconds:9.1f} "
            f"{'':8s} {'':8s} {'':7s} {fp32:>6s}"
        )
    return peak_lines, rows


def main() -> None:
    specs = _specs()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (one or two per model)")
    parser.add_argument(
        "--models",
        default=",".join(specs),
        help=f"comma-separated subset of {','.join(specs)} (default: all)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's choice); 1 on a busy machine, where a thread that waits "
        "for a core makes every short call many times slower",
    )
    parser.add_argument(
        "--precisions",
        default=",".join(PRECISIONS),
        help="comma-separated subset of fp32,bf16 (default: both); fp32 alone on a CPU without bf16 "
        "units, where bf16 is emulated and says nothing about a run",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    chosen = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in specs]
    if unknown or not chosen:
        parser.error(f"--models expects names from {','.join(specs)}, got {args.models!r}")
    precisions = tuple(name for name in PRECISIONS if name in args.precisions.split(","))
    if not precisions or set(args.precisions.split(",")) - set(PRECISIONS):
        parser.error(f"--precisions expects names from {','.join(PRECISIONS)}, got {args.precisions!r}")
    # the naive E3D-LSTM pads its even temporal kernel with padding="same", which torch warns about
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{torch.backends.cpu.get_cpu_capability()}, load average before {load_average():.2f}; "
        f"fusion: {'switch present' if _FUSION is not None else 'n/a'}; "
        f"T={T} ({INPUT} observed), {SIZE}x{SIZE} frames",
        flush=True,
    )
    start = time.perf_counter()
    peak_lines, rows = [], []
    for name in chosen:
        spec = specs[name]
        rounds = spec.quick if args.quick else spec.full
        print(f"{spec.label}: B={spec.batch}, median of {rounds[1]} timed rounds", flush=True)
        peaks, table = bench(spec, rounds, precisions)
        peak_lines += peaks
        rows += table
    print(
        "\npeak: the forecast's forward convolutions alone, best of the model's layout, NCHW, channels-last"
    )
    for line in peak_lines:
        print(line)
    print(
        f"\ntrain: forward, fp32 MSE, backward, Adam; infer: {T - INPUT} frames forecast from {INPUT}; "
        "naive: the naive network's training step.\nms per step; 'x fp32': the fp32 time over this one "
        "(same fusion); 'x naive': the naive training step's time over this one (same precision)"
    )
    print(
        f"{'model':20s} {'what':5s} {'prec':4s} {'fusion':>6s} {'ms':>9s} {'samples/s':>9s} "
        f"{'GFLOP':>8s} {'GFLOP/s':>8s} {'of peak':>7s} {'x fp32':>6s} {'x naive':>7s}"
    )
    for row in rows:
        print(row)
    print(f"total {time.perf_counter() - start:.0f} s, load average after {load_average():.2f}")


if __name__ == "__main__":
    main()
