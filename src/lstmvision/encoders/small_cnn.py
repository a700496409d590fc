"""A small CNN frame encoder sized for a CPU: the default encoder of the embedded 64x64 data sets."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.encoders.base import FrameEncoder, init_weights, register_encoder

__all__ = ["SmallCNN"]


@register_encoder("small_cnn")
class SmallCNN(FrameEncoder):
    """Stages of strided conv 3x3 (+ BatchNorm) + ReLU, then an optional fully connected layer.

    Stage ``i`` is ``stages.i.{conv, bn}``: a 3x3 convolution to ``channels[i]`` (padding 1, bias only
    without BatchNorm), BatchNorm and ReLU, halving the size with ``downsample``:

    - ``"stride"`` (default): the convolution has stride 2, so it and everything after it run at the
      halved size;
    - ``"maxpool"``: the classic stride-1 convolution, BatchNorm and ReLU at full size, then a 2x2
      max-pool of stride 2 (ceil mode): 4x the convolution FLOPs and three passes over full-size
      activations, for the same parameters. On a 2-core CPU it runs 4-6x slower than ``"stride"``
      (benchmarks/time_distributed.py) and trained the embedded action set no better (docs/cnn_lstm.md).

    Either way an odd side keeps its last row/column: ``H' = ceil(H / 2**len(channels))`` for any
    ``H >= 1``.

    The pooled vector is the adaptive average of the maps over a ``pool_size × pool_size`` grid,
    flattened channel-major (``channels[-1] * pool_size**2`` values: a grid larger than 1 keeps coarse
    position, which a global average throws away), then, if ``feature_dim`` is given, ``fc`` (linear)
    + ReLU to ``feature_dim`` values, like VGG's fc6.

    Init: He normal (fan-out) convolutions, BatchNorm weight 1 and bias 0, PyTorch's default for ``fc``.

    Args:
        in_channels: C, channels of a frame (1 for the embedded grayscale sets).
        channels: output channels of each stage; ``len(channels)`` stages.
        pool_size: side of the grid the maps are averaged over for the pooled vector.
        feature_dim: size of the fully connected layer after pooling; None: no such layer.
        batch_norm: BatchNorm after every convolution.
        downsample: ``"stride"`` (stride-2 convolutions) or ``"maxpool"`` (stride-1 convolutions then
            2x2 max-pools), see above; the parameters are the same.
        weights: a weights file (``.safetensors`` or a torch state dict) loaded after initialisation.
        trainable: False freezes the encoder (:meth:`FrameEncoder.set_trainable`).
        mean, std: input normalisation, see :class:`FrameEncoder`.

    Shape:
        - input: ``(N, in_channels, H, W)``
        - output: maps ``(N, channels[-1], ceil(H / 2**S), ceil(W / 2**S))`` with ``S = len(channels)``;
          pooled ``(N, feature_dim or channels[-1] * pool_size**2)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 128),
        *,
        pool_size: int = 1,
        feature_dim: int | None = None,
        batch_norm: bool = True,
        downsample: Literal["stride", "maxpool"] = "stride",
        weights: str | None = None,
        trainable: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(in_channels)
        channels = list(channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"SmallCNN: channels must be one or more ints >= 1, got {channels}")
        if pool_size < 1:
            raise ValueError(f"SmallCNN: pool_size must be >= 1, got {pool_size}")
        if feature_dim is not None and feature_dim < 1:
            raise ValueError(f"SmallCNN: feature_dim must be >= 1 or None, got {feature_dim}")
        if downsample not in ("stride", "maxpool"):
            raise ValueError(f"SmallCNN: downsample must be 'stride' or 'maxpool', got {downsample!r}")
        stride = 2 if downsample == "stride" else 1
        stages: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            # a bias before BatchNorm is cancelled by its mean subtraction
            layers["conv"] = nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=not batch_norm)
            if batch_norm:
                layers["bn"] = nn.BatchNorm2d(width)
            layers["relu"] = nn.ReLU(inplace=True)
            if downsample == "maxpool":
                layers["pool"] = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            stages.append(nn.Sequential(layers))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.pool_size = pool_size
        flat = channels[-1] * pool_size**2
        self.fc = nn.Linear(flat, feature_dim) if feature_dim is not None else None
        self.out_channels = channels[-1]
        self.feature_dim = feature_dim if feature_dim is not None else flat
        self.reduction = 2 ** len(channels)
        init_weights(self)
        self._finish_init(weights, trainable, mean, std)

    def forward_maps(self, x: Tensor) -> Tensor:
        return self.stages(x)

    def pool(self, maps: Tensor) -> Tensor:
        # (N, C, p, p) -> (N, C*p*p); a grid larger than the maps repeats their cells, which is harmless
        pooled = F.adaptive_avg_pool2d(maps, self.pool_size).flatten(1)
        return pooled if self.fc is None else F.relu(self.fc(pooled))
