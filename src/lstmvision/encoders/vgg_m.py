"""VGG-M (Chatfield et al., BMVC 2014) as a frame encoder, in its lip-reading form (Chung & Zisserman, 2016).

Papers: K. Chatfield, K. Simonyan, A. Vedaldi, A. Zisserman, "Return of the Devil in the Details:
Delving Deep into Convolutional Nets", BMVC 2014, https://arxiv.org/abs/1405.3531 (the "CNN-M"
network); J. S. Chung, A. Zisserman, "Lip Reading in the Wild", ACCV 2016, and "Out of Time: Automated
Lip Sync in the Wild", ACCV workshops 2016 (VGG-M on a stack of consecutive grayscale mouth crops).
Layer list and deviations: docs/encoders.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision._checks import check_width_multiplier
from lstmvision.encoders.base import FrameEncoder, init_weights, register_encoder

__all__ = ["VGGM"]


def _conv_block(
    in_channels: int, out_channels: int, kernel: int, stride: int, batch_norm: bool
) -> OrderedDict[str, nn.Module]:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    # padding kernel // 2: output ceil(H / stride) at any size (see the deviations in docs/encoders.md)
    layers["conv"] = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=not batch_norm)
    if batch_norm:  # in place of the paper's local response normalisation, as in the lip-reading models
        layers["bn"] = nn.BatchNorm2d(out_channels)
    layers["relu"] = nn.ReLU(inplace=True)
    return layers


@register_encoder("vgg_m")
class VGGM(FrameEncoder):
    """VGG-M: five convolutions and three max-pools (total stride 32), then fc6 as the pooled vector.

    ========  ===========================================  =====================
    layer     (channels at ``width_multiplier=1``)          output side
    ========  ===========================================  =====================
    conv1     96, 7x7, stride 2, pad 3; BN; ReLU            ``ceil(H / 2)``
    pool1     max 3x3, stride 2, pad 1                      ``ceil(H / 4)``
    conv2     256, 5x5, stride 2, pad 2; BN; ReLU           ``ceil(H / 8)``
    pool2     max 3x3, stride 2, pad 1                      ``ceil(H / 16)``
    conv3     512, 3x3, pad 1; BN; ReLU
    conv4     512, 3x3, pad 1; BN; ReLU
    conv5     512, 3x3, pad 1; BN; ReLU
    pool5     max 3x3, stride 2, pad 1 -> **maps**          ``ceil(H / 32)``
    fc6       adaptive average to ``pool_size²``, flatten, linear to ``feature_dim``, ReLU -> **pooled**
    ========  ===========================================  =====================

    Module names: ``conv1.{conv,bn}``, ..., ``conv5.{conv,bn}``, ``fc6``. Init: He normal (fan-out)
    convolutions, BatchNorm weight 1 and bias 0, PyTorch's default for fc6.

    Args:
        in_channels: C; 5 = five consecutive grayscale frames stacked as channels (Chung & Zisserman).
        width_multiplier: scales every convolution's channels (rounded, at least 1); fc6 is set by
            ``feature_dim``.
        pool_size: side of the grid pool5's maps are averaged to before fc6, which makes fc6 work at
            any input size; 3 is pool5's own size for the original padding on 112x112 crops.
        feature_dim: fc6 size (4096 in VGG-M); None: no fc6, the pooled vector is the flattened grid.
        batch_norm: BatchNorm after every convolution (the paper used local response normalisation
            after conv1 and conv2 only; this encoder has none).
        weights: a weights file (``.safetensors`` or a torch state dict) loaded after initialisation.
        trainable: False freezes the encoder (:meth:`FrameEncoder.set_trainable`).
        mean, std: input normalisation, see :class:`FrameEncoder`.

    Shape:
        - input: ``(N, in_channels, H, W)``, e.g. ``(N, 5, 112, 112)``
        - output: maps ``(N, 512·m, ceil(H / 32), ceil(W / 32))``; pooled ``(N, feature_dim)``.
    """

    def __init__(
        self,
        in_channels: int = 5,
        *,
        width_multiplier: float = 1.0,
        pool_size: int = 3,
        feature_dim: int | None = 4096,
        batch_norm: bool = True,
        weights: str | None = None,
        trainable: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(in_channels)
        check_width_multiplier("VGGM", width_multiplier)
        if pool_size < 1:
            raise ValueError(f"VGGM: pool_size must be >= 1, got {pool_size}")
        if feature_dim is not None and feature_dim < 1:
            raise ValueError(f"VGGM: feature_dim must be >= 1 or None, got {feature_dim}")
        c1, c2, c3 = (max(1, round(c * width_multiplier)) for c in (96, 256, 512))
        self.conv1 = nn.Sequential(_conv_block(in_channels, c1, 7, 2, batch_norm))
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = nn.Sequential(_conv_block(c1, c2, 5, 2, batch_norm))
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv3 = nn.Sequential(_conv_block(c2, c3, 3, 1, batch_norm))
        self.conv4 = nn.Sequential(_conv_block(c3, c3, 3, 1, batch_norm))
        self.conv5 = nn.Sequential(_conv_block(c3, c3, 3, 1, batch_norm))
        self.pool5 = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool_size = pool_size
        flat = c3 * pool_size**2
        self.fc6 = nn.Linear(flat, feature_dim) if feature_dim is not None else None
        self.out_channels = c3
        self.feature_dim = feature_dim if feature_dim is not None else flat
        self.reduction = 32
        init_weights(self)
        self._finish_init(weights, trainable, mean, std)

    def forward_maps(self, x: Tensor) -> Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        return self.pool5(self.conv5(self.conv4(self.conv3(x))))

    def pool(self, maps: Tensor) -> Tensor:
        # (N, C, p, p) -> (N, C*p*p), channel-major as a Caffe/Torch fc6 reads pool5
        pooled = F.adaptive_avg_pool2d(maps, self.pool_size).flatten(1)
        return pooled if self.fc6 is None else F.relu(self.fc6(pooled))
