"""Plots of evaluation metrics.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so plotting never needs a
display, never changes the process-wide backend and leaves no figure open.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_per_frame_metrics"]

logger = logging.getLogger(__name__)

Curve = Sequence[float] | np.ndarray | torch.Tensor

# y-axis labels of the metrics this library computes; any other name is used as it is.
_Y_LABELS = {
    "mse": "MSE per frame (sum over pixels)",
    "mae": "MAE per frame (sum over pixels)",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
}


def _as_curve(values: Curve, metric: str, series: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    curve = np.asarray(values, dtype=np.float64)
    if curve.ndim != 1 or curve.size == 0:
        raise ValueError(
            f"curve {metric!r}/{series!r} must be a non-empty 1-D sequence, got shape {curve.shape}"
        )
    if not np.isfinite(curve).all():
        # PSNR of a perfect frame is +inf; matplotlib cannot place it, so that point is left out.
        logger.warning("curve %r/%r has non-finite values; those points are not drawn", metric, series)
        curve = np.where(np.isfinite(curve), curve, np.nan)
    return curve


def plot_per_frame_metrics(
    path: str | os.PathLike[str],
    curves: Mapping[str, Mapping[str, Curve]],
    *,
    first_frame_index: int = 1,
    title: str | None = None,
    max_columns: int = 4,
    dpi: int = 100,
) -> Path:
    """Plot metrics against the predicted-frame index and save the figure as a PNG.

    One subplot per metric, one line per series, e.g.::

        plot_per_frame_metrics("runs/x/metrics.png", {
            "mse": {"model": mse_curve, "copy last frame": baseline_mse},
            "ssim": {"model": ssim_curve, "copy last frame": baseline_ssim},
        })

    Args:
        path: the PNG file to write; parent folders are created.
        curves: ``{metric: {series: values}}``; value ``i`` belongs to frame ``first_frame_index + i``.
            Series of one metric may differ in length. Non-finite values (a perfect frame's PSNR)
            are not drawn.
        first_frame_index: index of the first predicted frame on the x axis (1 = "first predicted
            frame"; pass ``T_in + 1`` to number frames over the whole sequence).
        title: optional title above all subplots.
        max_columns: subplots per row before wrapping to a new row.
        dpi: resolution of the PNG.

    Returns:
        The path written.
    """
    if not curves:
        raise ValueError("curves must hold at least one metric, got an empty mapping")
    if max_columns < 1:
        raise ValueError(f"max_columns must be >= 1, got {max_columns}")
    for metric, series in curves.items():
        if not series:
            raise ValueError(f"metric {metric!r} must hold at least one series, got an empty mapping")

    num_plots = len(curves)
    cols = min(num_plots, max_columns)
    rows = math.ceil(num_plots / cols)
    fig = Figure(figsize=(4.0 * cols, 3.2 * rows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (metric, series) in zip(axes, curves.items()):
        for name, values in series.items():
            curve = _as_curve(values, metric, name)
            frames = np.arange(first_frame_index, first_frame_index + curve.size)
            ax.plot(frames, curve, marker="o", markersize=3, label=name)
        ax.set_title(metric)
        ax.set_xlabel("predicted frame index")
        ax.set_ylabel(_Y_LABELS.get(metric.lower(), metric))
        # Frame indices are whole numbers; the default locator would put ticks at 2.5 etc.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[num_plots:]:
        ax.set_visible(False)
    if title is not None:
        fig.suptitle(title)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    logger.info("wrote plot of %d metrics to %s", num_plots, out)
    return out
