"""TimeDistributed (time folded into the batch) against a loop over frames, same encoder, same weights.

For every (B, T, size) of the issue — (2, 16, 112), (8, 16, 64), (16, 8, 32) — and every encoder in
``ENCODERS``, times on 3-channel frames:

- inference: ``TimeDistributed(encoder)(clips)`` (one call over B·T frames) against
  ``torch.stack([encoder(clips[:, t]) for t in range(T)], 1)`` (T calls over B frames), both under
  ``torch.inference_mode`` in eval mode;
- training: forward, a loss on the pooled features, backward, in train mode (BatchNorm statistics over
  B·T frames folded, over B frames per call in the loop).

Prints the median seconds of each and the speed-up of the folded form (loop time / folded time). Every
variant is timed once per round, rounds interleaved. Usage:
``python benchmarks/time_distributed.py [--quick]``. Not part of the test run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timing import interleaved_medians, load_average, parse_rounds
from torch import Tensor

from lstmvision.encoders import FrameEncoder, create_encoder
from lstmvision.layers import TimeDistributed

SHAPES = [(2, 16, 112), (8, 16, 64), (16, 8, 32)]
# label -> (registered encoder, its arguments); the max-pool SmallCNN is the design that the stride-2
# default replaced after this benchmark (docs/encoders.md)
ENCODERS: dict[str, tuple[str, dict[str, object]]] = {
    "small_cnn": ("small_cnn", dict(channels=(32, 64, 128))),
    "small_cnn/maxpool": ("small_cnn", dict(channels=(32, 64, 128), downsample="maxpool")),
    "mobilenet_v2/0.5": ("mobilenet_v2", dict(width_multiplier=0.5)),
    "resnet18/0.5": ("resnet18", dict(width_multiplier=0.5)),
}


def _loop(encoder: FrameEncoder, clips: Tensor) -> Tensor:
    """The per-frame reference: one encoder call per time step."""
    return torch.stack([encoder(clips[:, t])[1] for t in range(clips.shape[1])], dim=1)


def _folded(encoder: FrameEncoder, clips: Tensor) -> Tensor:
    return TimeDistributed(encoder, input_rank=5)(clips)[1]


def _inference(forward: Callable[[FrameEncoder, Tensor], Tensor], encoder: FrameEncoder, clips: Tensor):
    def run() -> None:
        encoder.eval()
        with torch.inference_mode():
            forward(encoder, clips)

    return run


def _training(forward: Callable[[FrameEncoder, Tensor], Tensor], encoder: FrameEncoder, clips: Tensor):
    def run() -> None:
        encoder.train()
        encoder.zero_grad(set_to_none=True)
        forward(encoder, clips).square().mean().backward()

    return run


def main() -> None:
    warmup, rounds = parse_rounds(__doc__, quick=(1, 3), full=(2, 7))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load_average():.2f}")
    print(f"{'encoder':<19}{'(B, T, size)':<16}{'mode':<11}{'loop s':>9}{'folded s':>10}{'speed-up':>10}")
    for label, (name, kwargs) in ENCODERS.items():
        torch.manual_seed(0)
        encoder = create_encoder(name, in_channels=3, **kwargs)
        for B, T, size in SHAPES:
            clips = torch.rand(B, T, 3, size, size)
            for mode, make in (("inference", _inference), ("training", _training)):
                times = interleaved_medians(
                    {"loop": make(_loop, encoder, clips), "folded": make(_folded, encoder, clips)},
                    warmup,
                    rounds,
                )
                shape = f"({B}, {T}, {size})"
                print(
                    f"{label:<19}{shape:<16}{mode:<11}{times['loop']:>9.4f}{times['folded']:>10.4f}"
                    f"{times['loop'] / times['folded']:>9.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
