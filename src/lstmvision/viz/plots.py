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

__all__ = ["plot_accuracy_vs_observed", "plot_confusion_matrix", "plot_per_frame_metrics"]

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


# Beyond this many classes cell annotations would overlap; the colours still show the matrix.
_MAX_ANNOTATED_CLASSES = 30


def _as_array(values: object, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers, got {type(values).__name__}: {err}") from err


def plot_confusion_matrix(
    path: str | os.PathLike[str],
    matrix: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    *,
    normalize: bool = True,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw a confusion matrix (rows = true class, columns = predicted class) and save it as a PNG.

    Args:
        path: the PNG file to write; parent folders are created.
        matrix: counts ``(K, K)``, e.g. ``ClassificationMetrics.confusion``.
        class_names: K names shown on both axes.
        normalize: show each row divided by its sum (the fraction of a true class predicted as each
            class, so the diagonal is the per-class accuracy); a row with no sample stays 0. ``False``
            shows the counts.
        title: optional title.
        dpi: resolution of the PNG.

    Cells are annotated with their value when K <= 30; the figure grows with K so that the tick labels
    stay readable.

    Returns:
        The path written.
    """
    counts = _as_array(matrix, "matrix")
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"matrix must be a non-empty square (K, K) array, got shape {counts.shape}")
    names = [str(name) for name in class_names]
    K = counts.shape[0]
    if len(names) != K:
        raise ValueError(
            f"class_names must hold one name per class: got {len(names)} names for a matrix of shape "
            f"{counts.shape}"
        )
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("matrix must hold finite counts >= 0")

    if normalize:
        support = counts.sum(axis=1, keepdims=True)  # (K, 1)
        values = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
        vmax = 1.0
    else:
        values = counts
        vmax = max(float(counts.max()), 1.0)

    side = float(np.clip(0.45 * K + 2.5, 4.0, 30.0))  # inches: about 0.45 in per class
    # tick labels as tall as about half a cell (the axes take ~3/4 of the figure), between 4 and 9 pt
    font = float(np.clip(0.5 * 72.0 * 0.75 * side / K, 4.0, 9.0))
    fig = Figure(figsize=(side + 1.2, side), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class" if normalize else "count")
    ticks = np.arange(K)
    ax.set_xticks(ticks, labels=names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
    ax.set_yticks(ticks, labels=names, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if K <= _MAX_ANNOTATED_CLASSES:
        for i, j in np.ndindex(K, K):
            text = f"{values[i, j]:.2f}" if normalize else f"{counts[i, j]:g}"
            # dark cells get white text so that every number stays legible
            colour = "white" if values[i, j] > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=max(font - 1.0, 4.0))
    if title is not None:
        ax.set_title(title)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    logger.info("wrote %dx%d confusion matrix to %s", K, K, out)
    return out


def plot_accuracy_vs_observed(
    path: str | os.PathLike[str],
    fractions: Curve,
    accuracies: Mapping[str, Curve],
    *,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Plot accuracy against the observed part of each video (early activity recognition) as a PNG.

    Args:
        path: the PNG file to write; parent folders are created.
        fractions: the observed fractions of the videos, each in (0, 1].
        accuracies: ``{series: accuracy per fraction}``, e.g. ``{"top-1": [...], "top-5": [...]}``; every
            series holds one value in [0, 1] per fraction.
        title: optional title.
        dpi: resolution of the PNG.

    Returns:
        The path written.
    """
    x = _as_array(fractions, "fractions")
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"fractions must be a non-empty 1-D sequence, got shape {x.shape}")
    if not ((x > 0) & (x <= 1)).all():
        raise ValueError(f"fractions must lie in (0, 1], got {x.tolist()}")
    if not accuracies:
        raise ValueError("accuracies must hold at least one series, got an empty mapping")
    series = {}
    for name, values in accuracies.items():
        y = _as_array(values, f"accuracies[{name!r}]")
        if y.shape != x.shape:
            raise ValueError(
                f"series {name!r} must hold one accuracy per fraction: got shape {y.shape} for "
                f"{x.size} fractions (shape {x.shape})"
            )
        series[name] = y

    fig = Figure(figsize=(5.0, 3.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, y in series.items():
        ax.plot(100.0 * x, y, marker="o", label=name)
    ax.set_xlabel("observed part of the video (%)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0.0, 105.0)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title is not None:
        ax.set_title(title)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    logger.info("wrote accuracy against %d observed fractions to %s", x.size, out)
    return out
