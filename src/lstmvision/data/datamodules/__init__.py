"""The LightningDataModules, one a file, all on :class:`~lstmvision.data.datamodules.base.SetsDataModule`."""

from lstmvision.data.datamodules.base import SetsDataModule
from lstmvision.data.datamodules.caption_features import CaptionFeaturesDataModule
from lstmvision.data.datamodules.captioned_digits import CaptionedDigitsDataModule
from lstmvision.data.datamodules.captioning import CaptionBatch, CaptionCollate, most_frequent_caption
from lstmvision.data.datamodules.kth import KTHDataModule
from lstmvision.data.datamodules.moving_actions import MovingDigitActionsDataModule
from lstmvision.data.datamodules.moving_mnist import MovingMNISTDataModule
from lstmvision.data.datamodules.multiview_actions import MultiViewDigitActionsDataModule
from lstmvision.data.datamodules.multiview_features import MultiViewFeaturesDataModule
from lstmvision.data.datamodules.multiview_video import MultiViewVideoDataModule
from lstmvision.data.datamodules.video import VideoDataModule

__all__ = [
    "CaptionBatch",
    "CaptionCollate",
    "CaptionFeaturesDataModule",
    "CaptionedDigitsDataModule",
    "KTHDataModule",
    "MovingDigitActionsDataModule",
    "MovingMNISTDataModule",
    "MultiViewDigitActionsDataModule",
    "MultiViewFeaturesDataModule",
    "MultiViewVideoDataModule",
    "SetsDataModule",
    "VideoDataModule",
    "most_frequent_caption",
]
