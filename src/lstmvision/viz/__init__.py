"""lstmvision.viz: GIFs, MP4s, PNG frames and plots (per-frame metrics, confusion matrices, early recognition,
captioning attention maps)."""

from lstmvision.viz.animation import (
    ANIMATION_FORMATS,
    save_forecast_animation,
    save_frames_png,
    save_prediction_gif,
)
from lstmvision.viz.attention import save_attention_map
from lstmvision.viz.plots import plot_accuracy_vs_observed, plot_confusion_matrix, plot_per_frame_metrics

__all__ = [
    "ANIMATION_FORMATS",
    "plot_accuracy_vs_observed",
    "plot_confusion_matrix",
    "plot_per_frame_metrics",
    "save_attention_map",
    "save_forecast_animation",
    "save_frames_png",
    "save_prediction_gif",
]
