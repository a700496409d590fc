"""Frame encoders (CNNs) written here, registered by name, and the contract any module is adapted to.

Every encoder maps frames ``(N, C, H, W)`` to ``(maps, pooled)``; see docs/encoders.md.
"""

from lstmvision.encoders.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ExternalEncoder,
    FrameEncoder,
    create_encoder,
    dry_run,
    encode,
    list_encoders,
    register_encoder,
)
from lstmvision.encoders.mobilenet_v2 import MobileNetV2
from lstmvision.encoders.resnet import ResNet18
from lstmvision.encoders.small_cnn import SmallCNN
from lstmvision.encoders.vgg_m import VGGM

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGGM",
    "ExternalEncoder",
    "FrameEncoder",
    "MobileNetV2",
    "ResNet18",
    "SmallCNN",
    "create_encoder",
    "dry_run",
    "encode",
    "list_encoders",
    "register_encoder",
]
