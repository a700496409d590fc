"""Attention maps of video captioning (SA-LSTM, Yao et al. 2015, https://arxiv.org/abs/1502.08029).

For each generated word, a soft-attention decoder weighs the encoded frames; the picture shows those
weights as a heat map (one row per word, one column per frame) under a row of frame thumbnails, so
that one sees which frames each word looked at.

Like :mod:`lstmvision.viz.plots`, the figure is drawn on matplotlib's Agg canvas directly (no
``pyplot``): no display is needed, the process-wide backend is left alone and no figure stays open.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lstmvision.viz.animation import unit_to_levels

__all__ = ["save_attention_map"]

logger = logging.getLogger(__name__)

Array = np.ndarray | torch.Tensor

ATTENTION_CMAP = "viridis"
# Cell size in inches: a 30-frame x 20-word map is about 12 x 6.4 inches, ticks and labels at 8-9 pt fit.
_CELL_W = 0.4
_CELL_H = 0.32
# Beyond this many frames every index on the x axis would crowd; a locator picks a few instead.
_MAX_FRAME_TICKS = 40


def _as_array(values: Array, dtype: type[np.generic] | None = None) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        # numpy has no bfloat16; uint8 frames must stay uint8
        values = (values.float() if values.is_floating_point() else values).numpy()
    return np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)


def _check_attention(attention: Array) -> np.ndarray:
    weights = _as_array(attention, np.float64)
    if weights.ndim != 2 or weights.size == 0:
        raise ValueError(
            f"attention must be a non-empty 2-D (S words, T frames) array, got shape {weights.shape}"
        )
    if np.isnan(weights).any():
        raise ValueError(f"attention must not hold NaN, got {int(np.isnan(weights).sum())} NaN values")
    if not np.isfinite(weights).all():
        raise ValueError("attention must hold finite weights, got +-inf")
    if (weights < 0).any():
        raise ValueError(f"attention weights must be >= 0, got a minimum of {weights.min():g}")
    return weights


def _frames_to_uint8(frames: Array, num_frames: int) -> np.ndarray:
    """Float ``(T, C, H, W)`` in [0, 1] or uint8 ``(T, H, W, 3)`` / ``(T, H, W)`` -> uint8 ``(T, H, W, 3)``."""
    array = _as_array(frames)
    if array.ndim not in (3, 4):
        raise ValueError(
            "frames must be float (T, C, H, W), uint8 (T, H, W, 3) or (T, H, W), "
            f"got {array.ndim}-D shape {array.shape}"
        )
    if array.ndim == 3:  # grayscale (T, H, W), either dtype
        array = array[:, None] if array.dtype != np.uint8 else array[..., None]
    if array.dtype == np.uint8:
        if array.shape[-1] not in (1, 3):
            raise ValueError(f"uint8 frames must be (T, H, W, 3) or (T, H, W), got shape {array.shape}")
        levels = array
    elif np.issubdtype(array.dtype, np.floating):
        if array.shape[1] not in (1, 3):
            raise ValueError(
                f"float frames must be (T, C, H, W) with C = 1 or 3 channels, got shape {array.shape}"
            )
        levels = unit_to_levels(array).transpose(0, 2, 3, 1)  # (T, H, W, C)
    else:
        raise ValueError(f"frames must be floats in [0, 1] or uint8, got dtype {array.dtype}")
    if levels.shape[0] != num_frames:
        raise ValueError(
            f"frames must hold one frame per attention column: got {levels.shape[0]} frames for "
            f"{num_frames} attention columns"
        )
    # grayscale drawn as RGB: matplotlib's "gray" colour map can be one level off
    return np.repeat(levels, 3, axis=-1) if levels.shape[-1] == 1 else levels


def _thumbnail_indices(num_frames: int, max_thumbnails: int) -> np.ndarray:
    """The frames that get a thumbnail: all of them, or ``max_thumbnails`` evenly spaced ones."""
    if num_frames <= max_thumbnails:
        return np.arange(num_frames)
    return np.unique(np.rint(np.linspace(0, num_frames - 1, max_thumbnails)).astype(int))


def _attention_figure(
    attention: Array,
    words: Sequence[str],
    frames: Array | None = None,
    *,
    title: str | None = None,
    max_thumbnails: int = 16,
    dpi: int = 100,
) -> tuple[Figure, Axes, Axes | None]:
    """Check the inputs and draw the attention map; returns the figure, the heat-map axes (cell
    ``(s, t)`` is centred at data coordinates ``(t, s)``) and the thumbnail axes (None without frames)."""
    weights = _check_attention(attention)
    S, T = weights.shape
    labels = [str(word) for word in words]
    if len(labels) != S:
        raise ValueError(
            f"words must hold one word per attention row: got {len(labels)} words for attention of "
            f"shape {weights.shape}"
        )
    if max_thumbnails < 1:
        raise ValueError(f"max_thumbnails must be >= 1, got {max_thumbnails}")
    thumbs = None if frames is None else _frames_to_uint8(frames, T)  # (T, H, W, 3)

    # Inches: the cells, then the word labels on the left (~0.07 in per character at 9 pt), the colour
    # bar on the right, the frame ticks and labels below and the optional title above.
    label_w = 0.07 * max(len(label) for label in labels) + 0.5
    width = float(np.clip(T * _CELL_W + label_w + 1.4, 4.0, 40.0))
    thumb_h = 0.0
    if thumbs is not None:
        _, H, W, _ = thumbs.shape
        # a thumbnail one column wide keeps the frame's aspect ratio
        thumb_h = float(np.clip(_CELL_W * H / W, 0.25, 1.5))
    # at least 1.5 in of heat map, so that a one-word map still has a readable colour bar
    heat_h = max(S * _CELL_H, 1.5)
    height = heat_h + thumb_h + 1.0 + (0.4 if title is not None else 0.0)
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)

    thumb_ax: Axes | None = None
    if thumbs is None:
        heat_ax = fig.subplots()
    else:
        # one gridspec column: constrained layout gives both axes the same x extent, and sharex keeps
        # thumbnail k over heat-map column k
        thumb_ax, heat_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [thumb_h, heat_h]})

    image = heat_ax.imshow(
        weights,
        cmap=ATTENTION_CMAP,
        vmin=0.0,
        # scaled to the largest weight: over 30 frames a confident word may peak at 0.2, which a
        # fixed [0, 1] scale would leave almost as dark as the padding
        vmax=max(float(weights.max()), 1e-12),
        aspect="auto",
        interpolation="nearest",
    )
    fig.colorbar(image, ax=heat_ax, label="attention weight", fraction=0.05, pad=0.02)
    # a literal "$" in a word would otherwise start matplotlib's mathtext
    heat_ax.set_yticks(np.arange(S), labels=[label.replace("$", r"\$") for label in labels], fontsize=9)
    if T <= _MAX_FRAME_TICKS:
        heat_ax.set_xticks(np.arange(T), labels=[str(t) for t in range(T)], fontsize=8)
    else:
        heat_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    heat_ax.set_xlabel("frame index")
    heat_ax.set_ylabel("generated word")

    if thumb_ax is not None and thumbs is not None:
        for t in _thumbnail_indices(T, max_thumbnails):
            # 0.05-column gaps keep neighbouring thumbnails apart
            extent = (t - 0.45, t + 0.45, 0.0, 1.0)
            thumb_ax.imshow(thumbs[t], extent=extent, aspect="auto", interpolation="nearest")
        thumb_ax.set_ylim(0.0, 1.0)
        thumb_ax.tick_params(axis="both", which="both", bottom=False, left=False, labelleft=False)
        thumb_ax.tick_params(axis="x", labelbottom=False)
        for spine in thumb_ax.spines.values():
            spine.set_visible(False)
    heat_ax.set_xlim(-0.5, T - 0.5)  # after the thumbnails, whose extents would widen the shared x axis

    if title is not None:
        fig.suptitle(title)
    return fig, heat_ax, thumb_ax


def save_attention_map(
    path: str | os.PathLike[str],
    attention: Array,
    words: Sequence[str],
    frames: Array | None = None,
    *,
    title: str | None = None,
    max_thumbnails: int = 16,
    dpi: int = 100,
) -> Path:
    """Draw the soft attention of a captioning decoder over the video frames and save it as a PNG.

    The heat map has one row per generated word (top to bottom in generation order, the words on the
    y axis) and one column per frame (the frame index on the x axis), with a colour bar scaled from 0
    to the largest weight. With ``frames``, a row of thumbnails sits above the heat map, thumbnail k
    over column k; when ``T > max_thumbnails`` only ``max_thumbnails`` evenly spaced frames (the first
    and the last included) get one. The figure grows with S and T so that maps up to ~20 words x ~30
    frames stay readable.

    Args:
        path: the PNG file to write; parent folders are created.
        attention: ``(S, T)`` weights >= 0, row s the attention of word s over the T frames (each row
            sums to 1 over the valid frames; padded frames hold 0).
        words: the S generated words, e.g. ending with ``"<eos>"``.
        frames: optional thumbnails: float ``(T, C, H, W)`` in [0, 1] with C = 1 or 3 (the library
            layout; values are clipped and NaN is drawn black), or uint8 ``(T, H, W, 3)``; a 3-D
            ``(T, H, W)`` array of either dtype is grayscale.
        title: optional title above the figure.
        max_thumbnails: the most thumbnails drawn.
        dpi: resolution of the PNG.

    Returns:
        The path written.

    Raises:
        ValueError: attention not 2-D, holding NaN or negative weights; ``len(words) != S``; frames of
            another length than T, of a wrong rank, channel count or dtype.
    """
    fig, heat_ax, _ = _attention_figure(
        attention, words, frames, title=title, max_thumbnails=max_thumbnails, dpi=dpi
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    S, T = heat_ax.images[0].get_size()  # (rows, columns) of the heat map
    logger.info("wrote attention map of %d words over %d frames to %s", S, T, out)
    return out
