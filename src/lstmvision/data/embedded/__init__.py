"""The embedded data sets, generated from the real MNIST digits shipped in ``data/assets/``: Moving
MNIST, moving digit actions, multi-view digit actions and captioned digits (no download needed)."""

from lstmvision.data.embedded.captioned_digits import (
    DIGIT_MOTIONS,
    MAX_REFERENCES,
    CaptionedClipInfo,
    CaptionedDigits,
    generate_captioned_clip,
)
from lstmvision.data.embedded.digits import DIGIT_SIZE, MNISTDigits, load_digits
from lstmvision.data.embedded.moving_actions import MOVING_ACTIONS, MovingDigitActions, generate_action_clip
from lstmvision.data.embedded.moving_mnist import EpochSampler, GeneratedMovingMNIST, generate_moving_digits
from lstmvision.data.embedded.multiview import (
    TRANSLATION_ACTIONS,
    CameraView,
    MultiViewDigitActions,
    camera_views,
    render_views,
)

__all__ = [
    "DIGIT_MOTIONS",
    "DIGIT_SIZE",
    "MAX_REFERENCES",
    "MOVING_ACTIONS",
    "TRANSLATION_ACTIONS",
    "CameraView",
    "CaptionedClipInfo",
    "CaptionedDigits",
    "EpochSampler",
    "GeneratedMovingMNIST",
    "MNISTDigits",
    "MovingDigitActions",
    "MultiViewDigitActions",
    "camera_views",
    "generate_action_clip",
    "generate_captioned_clip",
    "generate_moving_digits",
    "load_digits",
    "render_views",
]
