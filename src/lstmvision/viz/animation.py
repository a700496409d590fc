"""Animated GIFs, MP4 videos and PNG frames of video predictions and forecasts.

Frames come in the library layout ``(B, T, C, H, W)``, float in [0, 1], as torch tensors (any
device) or numpy arrays, with ``C`` 1 (written as 8-bit grayscale) or 3 (RGB). Values are clipped
to [0, 1] and rounded to the nearest of 256 levels; NaN is drawn black.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "ANIMATION_FORMATS",
    "save_forecast_animation",
    "save_frames_png",
    "save_prediction_gif",
    "unit_to_levels",
]

AnimationFormat = Literal["gif", "mp4"]
ANIMATION_FORMATS: tuple[AnimationFormat, ...] = ("gif", "mp4")
"""The files :func:`save_forecast_animation` writes."""

logger = logging.getLogger(__name__)

Frames = torch.Tensor | np.ndarray

_COLUMN_TITLES = ("input", "truth", "prediction")
_FORECAST_TITLES = ("observed", "forecast")
_BACKGROUND = 48  # dark grey, so that black digits on a black background still show a panel edge
_TEXT = 255
_PAD = 4


def _to_uint8(frames: Frames, name: str) -> np.ndarray:
    """``(B, T, C, H, W)`` floats in [0, 1] -> ``(B, T, H, W, C)`` uint8."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().to(device="cpu", dtype=torch.float32).numpy()
    array = np.asarray(frames, dtype=np.float32)
    if array.ndim != 5:
        raise ValueError(f"{name} must be shaped (B, T, C, H, W), got shape {array.shape}")
    if array.shape[2] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (axis 2), got shape {array.shape}")
    return unit_to_levels(array).transpose(0, 1, 3, 4, 2)  # (B, T, H, W, C)


def unit_to_levels(array: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> uint8 levels 0..255 (rounded, clipped). NaN becomes 0 and +-inf 1 or 0: a
    diverged model must still produce a picture rather than crash the writer."""
    unit = np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def _shape(frames: np.ndarray) -> tuple[int, ...]:
    """The (B, T, C, H, W) shape of a converted ``(B, T, H, W, C)`` array, for error messages."""
    B, T, H, W, C = frames.shape
    return (B, T, C, H, W)


def _to_image(frame: np.ndarray) -> Image.Image:
    """``(H, W, C)`` uint8 -> a PIL image in mode ``L`` (C = 1) or ``RGB`` (C = 3)."""
    return Image.fromarray(np.ascontiguousarray(frame[..., 0] if frame.shape[-1] == 1 else frame))


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    left, top, right, bottom = _font().getbbox(text)
    return int(right - left), int(bottom - top)


def _counter_text(t: int, num_inputs: int, total: int) -> str:
    phase = "input" if t < num_inputs else "predicted"
    return f"frame {t + 1}/{total} - {phase}"


@dataclass(frozen=True)
class _GridLayout:
    """Pixel geometry of one animation frame: a title band, ``rows`` x columns panels, a counter band."""

    rows: int
    panel_h: int
    panel_w: int
    column_w: int
    band_h: int
    width: int

    @property
    def height(self) -> int:
        return 2 * self.band_h + self.rows * (self.panel_h + _PAD)

    def panel_origin(self, row: int, col: int) -> tuple[int, int]:
        """(top, left) pixel of the panel of sample ``row`` in column ``col``."""
        top = self.band_h + row * (self.panel_h + _PAD)
        left = _PAD + col * (self.column_w + _PAD) + (self.column_w - self.panel_w) // 2
        return top, left


def _grid_layout(
    rows: int,
    height: int,
    width: int,
    scale: int,
    num_inputs: int,
    total: int,
    titles: Sequence[str] = _COLUMN_TITLES,
) -> _GridLayout:
    panel_h, panel_w = height * scale, width * scale
    # Columns widen to fit their title, so small frames still get readable labels.
    column_w = max(panel_w, *(_text_size(title)[0] for title in titles))
    band_h = max(_text_size(title)[1] for title in (*titles, "frame 0123456789")) + 2 * _PAD
    counter_w = max(_text_size(_counter_text(t, num_inputs, total))[0] for t in (0, total - 1))
    grid_w = _PAD + len(titles) * (column_w + _PAD)
    return _GridLayout(rows, panel_h, panel_w, column_w, band_h, max(grid_w, counter_w + 2 * _PAD))


# the panels of animation frame t, one per column: (rows, H, W, C) uint8, or None for a blank column
_PanelsAt = Callable[[int], Sequence[np.ndarray | None]]


def _render(
    titles: Sequence[str],
    panels_at: _PanelsAt,
    layout: _GridLayout,
    channels: int,
    num_inputs: int,
    total: int,
) -> list[Image.Image]:
    """The ``total`` animation frames: the panels of each step on a grid, titles above, a counter below."""
    fill: int | tuple[int, int, int] = _TEXT if channels == 1 else (_TEXT, _TEXT, _TEXT)
    images = []
    for t in range(total):
        canvas = np.full((layout.height, layout.width, channels), _BACKGROUND, dtype=np.uint8)
        for col, panel in enumerate(panels_at(t)):
            if panel is None:
                continue
            for row in range(layout.rows):
                top, left = layout.panel_origin(row, col)
                canvas[top : top + layout.panel_h, left : left + layout.panel_w] = panel[row]
        image = _to_image(canvas)
        draw = ImageDraw.Draw(image)
        for col, title in enumerate(titles):
            left = _PAD + col * (layout.column_w + _PAD)
            offset = (layout.column_w - _text_size(title)[0]) // 2
            draw.text((left + offset, _PAD), title, fill=fill, font=_font())
        counter_top = layout.height - layout.band_h + _PAD
        draw.text((_PAD, counter_top), _counter_text(t, num_inputs, total), fill=fill, font=_font())
        images.append(image)
    return images


def _save_gif(images: list[Image.Image], out: Path, fps: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # GIF stores durations in hundredths of a second; Pillow takes milliseconds.
    images[0].save(
        out, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )


def _save_mp4(images: list[Image.Image], out: Path, fps: float) -> None:
    """H.264 in an MP4 container (yuv420p, which every player reads; it needs even sides, so the frames
    get a background row / column where a side is odd)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = images[0].size
    even_w, even_h = width + width % 2, height + height % 2
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        stream.options = {
            "crf": "18"
        }  # visually lossless for these flat pictures; the default 23 smears edges
        for image in images:
            rgb = np.full((even_h, even_w, 3), _BACKGROUND, dtype=np.uint8)
            rgb[:height, :width] = np.asarray(image.convert("RGB"))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's delayed frames


def save_prediction_gif(
    path: str | os.PathLike[str],
    inputs: Frames,
    truth: Frames,
    pred: Frames,
    *,
    max_samples: int = 4,
    fps: float = 4.0,
    scale: int = 2,
) -> Path:
    """Write an animated GIF comparing predictions with the ground truth.

    Each animation frame is a grid with one row per sample (the first ``max_samples``) and three
    columns titled "input", "truth" and "prediction", plus a counter "frame k/N - input|predicted"
    below. The animation has ``T_in + T_out`` frames and loops forever:

    * input phase (``t < T_in``): "input" and "truth" both show input frame ``t`` (the ground truth
      of the observed past is the input itself); "prediction" is left blank, because the model has
      not predicted anything yet.
    * prediction phase: "truth" and "prediction" show frame ``t - T_in`` of ``truth`` and ``pred``;
      "input" keeps showing the last input frame, which is what a copy-last-frame baseline would
      predict, so motion is easy to judge.

    Panels are enlarged ``scale`` times with nearest-neighbour sampling. RGB frames are reduced to
    a 256-colour palette per frame by the GIF format; grayscale frames are stored exactly.

    Args:
        path: the GIF file to write; parent folders are created.
        inputs: observed frames ``(B, T_in, C, H, W)``.
        truth: ground-truth future frames ``(B, T_out, C, H, W)``.
        pred: predicted future frames, same shape as ``truth``.
        max_samples: at most this many samples (rows) are drawn.
        fps: animation frames per second.
        scale: integer enlargement factor of every panel.

    Returns:
        The path written.
    """
    _check_animation_args(max_samples, fps, scale)
    x = _to_uint8(inputs, "inputs")  # (B, T_in, H, W, C)
    y = _to_uint8(truth, "truth")  # (B, T_out, H, W, C)
    p = _to_uint8(pred, "pred")  # (B, T_out, H, W, C)
    if y.shape != p.shape:
        raise ValueError(
            f"truth and pred must have the same shape (B, T_out, C, H, W), got {_shape(y)} and {_shape(p)}"
        )
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(
            f"inputs and truth must share B, C, H and W, got inputs {_shape(x)} and truth {_shape(y)}"
        )
    if x.shape[1] < 1 or y.shape[1] < 1:
        raise ValueError(
            f"need at least one input and one future frame, got T_in={x.shape[1]}, T_out={y.shape[1]}"
        )

    rows = min(x.shape[0], max_samples)
    num_inputs, num_future = x.shape[1], y.shape[1]
    total = num_inputs + num_future
    H, W, C = x.shape[2:]
    layout = _grid_layout(rows, H, W, scale, num_inputs, total)
    x, y, p = (_enlarge(a, rows, scale) for a in (x, y, p))

    def panels_at(t: int) -> tuple[np.ndarray | None, ...]:
        if t < num_inputs:
            return (x[:, t], x[:, t], None)
        return (x[:, -1], y[:, t - num_inputs], p[:, t - num_inputs])

    images = _render(_COLUMN_TITLES, panels_at, layout, C, num_inputs, total)
    out = Path(path)
    _save_gif(images, out, fps)
    logger.info("wrote %d-frame GIF of %d samples to %s", total, rows, out)
    return out


def _enlarge(frames: np.ndarray, rows: int, scale: int) -> np.ndarray:
    # Nearest-neighbour upscaling is a repeat along the two pixel axes.
    return frames[:rows].repeat(scale, axis=2).repeat(scale, axis=3)  # (rows, T, H*s, W*s, C)


def _check_animation_args(max_samples: int, fps: float, scale: int) -> None:
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale}")


def save_forecast_animation(
    path: str | os.PathLike[str],
    observed: Frames,
    forecast: Frames,
    *,
    format: AnimationFormat | None = None,
    max_samples: int = 4,
    fps: float = 4.0,
    scale: int = 2,
) -> Path:
    """Write an animation of observed frames followed by a forecast of the frames after them.

    The layout of :func:`save_prediction_gif` without a ground truth: one row per sample, columns
    "observed" and "forecast", and the counter "frame k/N - input|predicted". It has ``T_obs + T_future``
    frames: while ``t < T_obs`` "observed" plays observed frame ``t`` and "forecast" is blank; then
    "forecast" plays the forecast and "observed" holds the last observed frame (the copy-last-frame
    guess, to judge the motion against).

    Args:
        path: the file to write; parent folders are created.
        observed: observed frames ``(B, T_obs, C, H, W)``.
        forecast: forecast frames ``(B, T_future, C, H, W)``.
        format: ``"gif"`` (a looping GIF: grayscale frames stored exactly, RGB frames reduced to 256
            colours per frame) or ``"mp4"`` (H.264, yuv420p, CRF 18: lossy, small, plays everywhere);
            ``None`` takes it from the file's extension.
        max_samples: at most this many samples (rows) are drawn.
        fps: animation frames per second.
        scale: integer enlargement factor of every panel (nearest neighbour).

    Returns:
        The path written.
    """
    out = Path(path)
    chosen = format if format is not None else out.suffix.lower().lstrip(".")
    if chosen not in ANIMATION_FORMATS:
        given = f"format {format!r}" if format is not None else f"the extension of {out.name!r}"
        raise ValueError(f"an animation is one of {list(ANIMATION_FORMATS)}, got {given}")
    _check_animation_args(max_samples, fps, scale)
    x = _to_uint8(observed, "observed")  # (B, T_obs, H, W, C)
    f = _to_uint8(forecast, "forecast")  # (B, T_future, H, W, C)
    if x.shape[0] != f.shape[0] or x.shape[2:] != f.shape[2:]:
        raise ValueError(
            f"observed and forecast must share B, C, H and W, got observed {_shape(x)} and forecast {_shape(f)}"
        )
    if x.shape[1] < 1 or f.shape[1] < 1:
        raise ValueError(
            f"need at least one observed and one forecast frame, got T_obs={x.shape[1]}, T_future={f.shape[1]}"
        )
    rows = min(x.shape[0], max_samples)
    num_inputs, total = x.shape[1], x.shape[1] + f.shape[1]
    H, W, C = x.shape[2:]
    layout = _grid_layout(rows, H, W, scale, num_inputs, total, _FORECAST_TITLES)
    x, f = _enlarge(x, rows, scale), _enlarge(f, rows, scale)

    def panels_at(t: int) -> tuple[np.ndarray | None, ...]:
        return (x[:, t], None) if t < num_inputs else (x[:, -1], f[:, t - num_inputs])

    images = _render(_FORECAST_TITLES, panels_at, layout, C, num_inputs, total)
    (_save_gif if chosen == "gif" else _save_mp4)(images, out, fps)
    logger.info("wrote %d-frame %s of %d samples to %s", total, chosen.upper(), rows, out)
    return out


def save_frames_png(
    directory: str | os.PathLike[str],
    pred: Frames,
    *,
    truth: Frames | None = None,
    inputs: Frames | None = None,
    start_index: int | None = None,
    first_sample_index: int = 1,
    max_samples: int | None = None,
) -> list[Path]:
    """Write every frame as a PNG, one folder per sample, named as E3D-LSTM's ``gen_frm_dir``.

    Sample ``b`` goes to ``directory/<first_sample_index + b>/``. Frame files are numbered over the
    whole sequence, so the same number means the same time step: predicted frame ``t`` is
    ``pd<start_index + t>.png``, ground truth is ``gt<k>.png`` with the inputs numbered just before
    the future frames (``start_index - T_in`` ...) and ``truth`` from ``start_index`` on. Numbers
    are zero-padded to at least two digits (``pd11.png``, ``gt01.png``) so that files sort in order.

    Args:
        directory: root folder; created if missing.
        pred: predicted frames ``(B, T_out, C, H, W)``.
        truth: optional ground-truth future frames, same shape as ``pred``, written as ``gt``.
        inputs: optional observed frames ``(B, T_in, C, H, W)``, written as ``gt`` before ``truth``.
        start_index: number of the first predicted frame; default ``T_in + 1`` when ``inputs`` is
            given (1-based over the whole sequence, as E3D-LSTM), else 1.
        first_sample_index: folder name of the first sample; pass ``1 + batch_idx * B`` to give
            every sample of a test set its own folder.
        max_samples: write only the first this many samples (all when None).

    Returns:
        The paths written, sample by sample, ground truth before predictions.
    """
    p = _to_uint8(pred, "pred")  # (B, T_out, H, W, C)
    y = None if truth is None else _to_uint8(truth, "truth")
    x = None if inputs is None else _to_uint8(inputs, "inputs")
    if y is not None and y.shape != p.shape:
        raise ValueError(f"truth and pred must have the same shape, got {_shape(y)} and {_shape(p)}")
    if x is not None and (x.shape[0] != p.shape[0] or x.shape[2:] != p.shape[2:]):
        raise ValueError(
            f"inputs and pred must share B, C, H and W, got inputs {_shape(x)} and pred {_shape(p)}"
        )
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    num_inputs = 0 if x is None else x.shape[1]
    if start_index is None:
        start_index = num_inputs + 1
    if start_index - num_inputs < 0:
        raise ValueError(
            f"start_index must be >= {num_inputs} to number the {num_inputs} input frames, got {start_index}"
        )
    last_index = start_index + p.shape[1] - 1
    digits = max(2, len(str(last_index)))

    # Ground truth of one sample: the inputs followed by the future frames, numbered consecutively.
    gt_parts = [part for part in (x, y) if part is not None]
    gt = np.concatenate(gt_parts, axis=1) if gt_parts else None  # (B, T_in + T_out, H, W, C)
    rows = p.shape[0] if max_samples is None else min(p.shape[0], max_samples)
    root = Path(directory)
    written: list[Path] = []
    for b in range(rows):
        folder = root / str(first_sample_index + b)
        folder.mkdir(parents=True, exist_ok=True)
        named: list[tuple[str, np.ndarray]] = []
        if gt is not None:
            first_gt = start_index - num_inputs
            named += [(f"gt{first_gt + t:0{digits}d}.png", gt[b, t]) for t in range(gt.shape[1])]
        named += [(f"pd{start_index + t:0{digits}d}.png", p[b, t]) for t in range(p.shape[1])]
        for name, frame in named:
            _to_image(frame).save(folder / name)
            written.append(folder / name)
    logger.info("wrote %d PNG frames of %d samples under %s", len(written), rows, root)
    return written
