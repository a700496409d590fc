"""lstmvision.metrics: evaluation metrics (per-frame video metrics, classification, captioning).

``METRIC_NAMES`` is the video metrics' tuple; the caption metrics' is ``CAPTION_METRIC_NAMES``
(``lstmvision.metrics.captioning.METRIC_NAMES``). Every metric computes in float32 outside autocast
(:func:`fp32`, which the tasks' losses use too), whatever the precision of the network.
"""

from lstmvision.metrics._fp32 import fp32
from lstmvision.metrics.captioning import METRIC_NAMES as CAPTION_METRIC_NAMES
from lstmvision.metrics.captioning import (
    CaptionScores,
    find_java,
    ptb_tokenize_python,
    score_caption_sets,
    score_captions,
)
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
    "CAPTION_METRIC_NAMES",
    "METRIC_NAMES",
    "CaptionScores",
    "ClassificationMetrics",
    "VideoMetrics",
    "find_java",
    "fp32",
    "frame_mae",
    "frame_mse",
    "frame_psnr",
    "frame_ssim",
    "ptb_tokenize_python",
    "score_caption_sets",
    "score_captions",
]
