"""lstmvision.metrics: evaluation metrics (per-frame video metrics, classification)."""

from lstmvision.metrics.classification import ClassificationMetrics
from lstmvision.metrics.video import (
    METRIC_NAMES,
    VideoMetrics,
    frame_mae,
    frame_mse,
    frame_psnr,
    frame_ssim,
)

__all__ = [
    "METRIC_NAMES",
    "ClassificationMetrics",
    "VideoMetrics",
    "frame_mae",
    "frame_mse",
    "frame_psnr",
    "frame_ssim",
]
