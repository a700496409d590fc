"""ResNet-18 (He et al., CVPR 2016) as a frame encoder, with torchvision's state-dict names.

Paper: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385. The module tree is named so that torchvision's ``resnet18`` ImageNet
state dict loads unchanged (its ``fc.*`` is dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lstmvision._checks import check_width_multiplier
from lstmvision.encoders.base import FrameEncoder, init_weights, register_encoder

__all__ = ["ResNet18"]

_WIDTHS = (64, 128, 256, 512)  # channels of layer1 .. layer4 (the stem has the first)
_BLOCKS_PER_LAYER = (2, 2, 2, 2)  # ResNet-18


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, plus the input (through a 1x1 convolution + BN when the
    stride or the channels change: the paper's projection shortcut, option B)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        # no conv bias: the BatchNorm after each convolution cancels it
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


@register_encoder("resnet18")
class ResNet18(FrameEncoder):
    """ResNet-18 without its classifier: maps = ``layer4``'s output, pooled = their global average.

    Stem ``conv1`` 7x7 stride 2 (64·m channels), ``bn1``, ReLU, ``maxpool`` 3x3 stride 2; then
    ``layer1`` … ``layer4``, two basic blocks each, 64·m, 128·m, 256·m, 512·m channels, the first block
    of layers 2–4 with stride 2. Total stride 32, ``H' = ceil(H / 32)``. ``small_input=True`` makes
    the stem a 3x3 stride-1 convolution without max-pool (the CIFAR-style stem for 32–64 px frames):
    total stride 8, ``H' = ceil(H / 8)``, and ``conv1.weight`` is 3x3 so ImageNet weights do not fit.

    Init: He normal (fan-out) convolutions, BatchNorm weight 1 and bias 0 (the last BN of each block
    is not zeroed, so that every weight gets a gradient from the first step).

    Args:
        in_channels: C, channels of a frame (ImageNet weights need 3).
        width_multiplier: scales every layer's channels (rounded, at least 1).
        small_input: the 3x3 stride-1 stem without max-pool.
        weights: a weights file (``.safetensors`` or a torch state dict, e.g. torchvision's ImageNet
            ``resnet18`` file), loaded after initialisation; ``fc.*`` keys are dropped.
        trainable: False freezes the encoder (:meth:`FrameEncoder.set_trainable`).
        mean, std: input normalisation, see :class:`FrameEncoder`.

    Shape:
        - input: ``(N, in_channels, H, W)``
        - output: maps ``(N, 512·m, ceil(H / r), ceil(W / r))`` with r = 32 (8 with ``small_input``);
          pooled ``(N, 512·m)``.
    """

    head_prefixes = ("fc.",)

    def __init__(
        self,
        in_channels: int = 3,
        *,
        width_multiplier: float = 1.0,
        small_input: bool = False,
        weights: str | None = None,
        trainable: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(in_channels)
        check_width_multiplier("ResNet18", width_multiplier)
        widths = [max(1, round(w * width_multiplier)) for w in _WIDTHS]
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        previous = widths[0]
        layers: list[nn.Sequential] = []
        for i, (width, blocks) in enumerate(zip(widths, _BLOCKS_PER_LAYER)):
            stride = 1 if i == 0 else 2
            layer = [_BasicBlock(previous, width, stride)]
            layer += [_BasicBlock(width, width, 1) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*layer))
            previous = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.out_channels = self.feature_dim = widths[-1]
        self.reduction = 8 if small_input else 32
        init_weights(self)
        self._finish_init(weights, trainable, mean, std)

    def forward_maps(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
