"""lstmvision.metrics: evaluation metrics (per-frame video metrics)."""

from lstmvision.metrics.video import (
    METRIC_NAMES,
    VideoMetrics,
    frame_mae,
    frame_mse,
    frame_psnr,
    frame_ssim,
)

__all__ = ["METRIC_NAMES", "VideoMetrics", "frame_mae", "frame_mse", "frame_psnr", "frame_ssim"]

from lstmvision.metrics.classification import ClassificationMetrics

__all__ += ["ClassificationMetrics"]
