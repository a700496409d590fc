"""MobileNetV2 (Sandler et al., CVPR 2018) as a frame encoder, with torchvision's state-dict names.

Paper: M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen, "MobileNetV2: Inverted Residuals and
Linear Bottlenecks", CVPR 2018, https://arxiv.org/abs/1801.04381. The module tree is named so that
torchvision's ``mobilenet_v2`` ImageNet state dict loads unchanged (its ``classifier.*`` is dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lstmvision._checks import check_width_multiplier
from lstmvision.encoders.base import FrameEncoder, init_weights, register_encoder

__all__ = ["MobileNetV2"]

# the paper's Table 2 after the stem: expansion t, output channels c, repeats n, stride of the first s
_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280


def _round_channels(channels: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), as the paper's reference code rounds scaled
    channel counts (multiples of 8 suit vector units); rounding down never loses more than 10%."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


def _conv_bn_relu6(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    # children 0 (conv), 1 (bn), 2 (ReLU6) give torchvision's "<name>.0.weight", "<name>.1.running_mean"
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    )


class _InvertedResidual(nn.Module):
    """1x1 expansion (skipped when t = 1) -> 3x3 depthwise -> 1x1 linear projection, plus the input
    when the shape is kept (stride 1, same channels)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn_relu6(in_channels, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            # linear bottleneck: no activation after the projection (the paper's section 3.2)
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


@register_encoder("mobilenet_v2")
class MobileNetV2(FrameEncoder):
    """MobileNetV2 without its classifier: maps = the last 1x1 convolution's output, pooled = their
    global average.

    ``features.0`` is the stem (conv 3x3 stride 2 to 32·m channels, BN, ReLU6); ``features.1`` …
    ``features.17`` are the inverted-residual blocks of the paper's table, (t, c, n, s) = (1, 16, 1, 1),
    (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1);
    ``features.18`` is the 1x1 convolution to 1280 channels (BN, ReLU6). Channel counts are scaled by
    ``width_multiplier`` and rounded to multiples of 8; the last one only grows (1280 · max(1, m)), as
    in the paper. Padding ``kernel // 2`` gives ``H' = ceil(H / 32)`` at any size.

    Init: He normal (fan-out) convolutions, BatchNorm weight 1 and bias 0.

    Args:
        in_channels: C, channels of a frame (ImageNet weights need 3).
        width_multiplier: the paper's width multiplier α.
        weights: a weights file (``.safetensors`` or a torch state dict, e.g. torchvision's ImageNet
            ``mobilenet_v2`` file), loaded after initialisation; ``classifier.*`` keys are dropped.
        trainable: False freezes the encoder (:meth:`FrameEncoder.set_trainable`).
        mean, std: input normalisation, see :class:`FrameEncoder`.

    Shape:
        - input: ``(N, in_channels, H, W)``
        - output: maps ``(N, 1280, ceil(H / 32), ceil(W / 32))`` (at m <= 1); pooled ``(N, 1280)``.
    """

    head_prefixes = ("classifier.",)

    def __init__(
        self,
        in_channels: int = 3,
        *,
        width_multiplier: float = 1.0,
        weights: str | None = None,
        trainable: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(in_channels)
        check_width_multiplier("MobileNetV2", width_multiplier)
        previous = _round_channels(_STEM_CHANNELS * width_multiplier)
        features: list[nn.Module] = [_conv_bn_relu6(in_channels, previous, 3, stride=2)]
        for expansion, channels, repeats, stride in _BLOCKS:
            out = _round_channels(channels * width_multiplier)
            for i in range(repeats):
                features.append(_InvertedResidual(previous, out, stride if i == 0 else 1, expansion))
                previous = out
        last = _round_channels(_LAST_CHANNELS * max(1.0, width_multiplier))
        features.append(_conv_bn_relu6(previous, last, 1))
        self.features = nn.Sequential(*features)
        self.out_channels = self.feature_dim = last
        self.reduction = 32
        init_weights(self)
        self._finish_init(weights, trainable, mean, std)

    def forward_maps(self, x: Tensor) -> Tensor:
        return self.features(x)
