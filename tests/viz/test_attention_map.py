"""Attention maps are written as PNGs whose cells and thumbnails hold the weights and frames they were given."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from PIL import Image

from lstmvision.viz import save_attention_map
from lstmvision.viz.attention import ATTENTION_CMAP, _attention_figure

pytestmark = pytest.mark.usefixtures("one_thread")

DPI = 40


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _pixel(pixels: np.ndarray, ax: Axes, x: float, y: float) -> np.ndarray:
    """The RGB pixel of the saved PNG at data coordinates (x, y) of ``ax`` (display y runs upwards)."""
    px, py = ax.transData.transform((x, y))
    return pixels[pixels.shape[0] - 1 - int(py), int(px)].astype(int)


def _cmap_rgb(value: float) -> np.ndarray:
    return np.rint(np.asarray(matplotlib.colormaps[ATTENTION_CMAP](value)[:3]) * 255).astype(int)


def _words(S: int) -> list[str]:
    return [f"w{s}" for s in range(S - 1)] + ["<eos>"]


def _solid_frames(T: int) -> np.ndarray:
    """uint8 (T, 6, 8, 3) frames, frame t one solid colour of its own."""
    colours = np.stack([10 * np.arange(T), 250 - 10 * np.arange(T), np.full(T, 128)], axis=1)  # (T, 3)
    return np.broadcast_to(colours[:, None, None, :], (T, 6, 8, 3)).astype(np.uint8)


def test_png_written_and_opens(tmp_path: Path) -> None:
    attention = np.full((4, 6), 1 / 6)
    path = save_attention_map(
        tmp_path / "sub" / "att.png", attention, _words(4), _solid_frames(6), title="a caption", dpi=DPI
    )
    assert path == tmp_path / "sub" / "att.png"
    pixels = _rgb(path)
    assert 100 <= pixels.shape[0] <= 400 and 150 <= pixels.shape[1] <= 600, pixels.shape
    assert plt.get_fignums() == []


def test_one_hot_rows_colour_their_frame_maximum(tmp_path: Path) -> None:
    S, T = 5, 7
    focus = [3, 0, 6, 2, 2]  # the frame each word attends to
    attention = np.zeros((S, T))
    attention[np.arange(S), focus] = 1.0
    path = save_attention_map(tmp_path / "att.png", attention, _words(S), dpi=DPI)
    pixels = _rgb(path)
    fig, heat_ax, thumb_ax = _attention_figure(attention, _words(S), dpi=DPI)  # same layout as saved
    assert thumb_ax is None
    fig.canvas.draw()
    np.testing.assert_array_equal(heat_ax.images[0].get_array(), attention)
    high, low = _cmap_rgb(1.0), _cmap_rgb(0.0)
    for s in range(S):
        for t in range(T):
            expected = high if t == focus[s] else low
            got = _pixel(pixels, heat_ax, t, s)
            assert np.abs(got - expected).max() <= 2, f"cell (word {s}, frame {t}): {got} != {expected}"
    # words run top to bottom in generation order, frame indices left to right
    assert [label.get_text() for label in heat_ax.get_yticklabels()] == _words(S)
    assert heat_ax.transData.transform((0, 0))[1] > heat_ax.transData.transform((0, S - 1))[1]
    assert [label.get_text() for label in heat_ax.get_xticklabels()] == [str(t) for t in range(T)]


def test_figure_grows_with_words_and_frames(tmp_path: Path) -> None:
    def size(S: int, T: int) -> tuple[int, int]:
        path = save_attention_map(tmp_path / f"{S}x{T}.png", np.ones((S, T)) / T, _words(S), dpi=DPI)
        height, width, _ = _rgb(path).shape
        return height, width

    small = size(3, 5)
    more_words, more_frames = size(20, 5), size(3, 30)
    assert more_words[0] > small[0] + 10 * 0.3 * DPI and more_words[1] == small[1]
    assert more_frames[1] > small[1] + 20 * 0.3 * DPI and more_frames[0] == small[0]


def test_thumbnails_sit_over_their_columns(tmp_path: Path) -> None:
    S, T = 3, 6
    attention, frames = np.full((S, T), 1 / T), _solid_frames(T)
    bare = _rgb(save_attention_map(tmp_path / "bare.png", attention, _words(S), dpi=DPI))
    pixels = _rgb(save_attention_map(tmp_path / "thumbs.png", attention, _words(S), frames, dpi=DPI))
    assert pixels.shape[0] > bare.shape[0], "the thumbnail row adds height"

    fig, heat_ax, thumb_ax = _attention_figure(attention, _words(S), frames, dpi=DPI)
    assert thumb_ax is not None
    fig.canvas.draw()
    thumb_box, heat_box = thumb_ax.get_window_extent(), heat_ax.get_window_extent()
    assert (thumb_box.x0, thumb_box.x1) == pytest.approx((heat_box.x0, heat_box.x1), abs=0.5)
    assert thumb_box.y0 > heat_box.y1, "thumbnails are above the heat map"
    for t in range(T):
        got = _pixel(pixels, thumb_ax, t, 0.5)
        assert np.abs(got - frames[t, 0, 0]).max() <= 2, f"thumbnail over column {t}: {got}"


def test_many_frames_get_evenly_spaced_thumbnails(tmp_path: Path) -> None:
    S, T, shown = 2, 25, 5
    frames = _solid_frames(T)
    path = save_attention_map(
        tmp_path / "att.png", np.full((S, T), 1 / T), _words(S), frames, max_thumbnails=shown, dpi=DPI
    )
    pixels = _rgb(path)
    fig, _, thumb_ax = _attention_figure(
        np.full((S, T), 1 / T), _words(S), frames, max_thumbnails=shown, dpi=DPI
    )
    assert thumb_ax is not None
    fig.canvas.draw()
    centres = [round((image.get_extent()[0] + image.get_extent()[1]) / 2) for image in thumb_ax.images]
    assert centres == [0, 6, 12, 18, 24]
    for t in range(T):
        got = _pixel(pixels, thumb_ax, t, 0.5)
        expected = frames[t, 0, 0] if t in centres else np.full(3, 255)  # white background
        assert np.abs(got - expected).max() <= 2, f"column {t}: {got} != {expected}"


def test_torch_and_numpy_inputs_draw_the_same_picture(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    S, T = 3, 4
    attention = torch.softmax(torch.randn(S, T, generator=g), dim=1).requires_grad_()
    frames = torch.rand(T, 1, 5, 7, generator=g)  # float (T, C, H, W), grayscale
    from_torch = save_attention_map(tmp_path / "torch.png", attention, _words(S), frames, dpi=DPI)
    gray = np.rint(frames[:, 0].numpy() * 255).astype(np.uint8)  # uint8 (T, H, W)
    from_numpy = save_attention_map(
        tmp_path / "numpy.png", attention.detach().numpy(), _words(S), gray, dpi=DPI
    )
    np.testing.assert_array_equal(_rgb(from_torch), _rgb(from_numpy))
    rgb = save_attention_map(
        tmp_path / "rgb.png", attention.detach().double(), _words(S), frames.expand(T, 3, 5, 7), dpi=DPI
    )
    np.testing.assert_array_equal(_rgb(rgb), _rgb(from_numpy))
    assert plt.get_fignums() == []


def test_refuses_bad_inputs(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    ok = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"2-D \(S words, T frames\) array, got shape \(6,\)"):
        save_attention_map(path, np.ones(6), ["a", "b"])
    with pytest.raises(ValueError, match=r"got 3 words for attention of shape \(2, 3\)"):
        save_attention_map(path, ok, ["a", "b", "c"])
    with pytest.raises(ValueError, match="got 4 frames for 3 attention columns"):
        save_attention_map(path, ok, ["a", "b"], np.zeros((4, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"float \(T, C, H, W\), .* got 5-D shape \(1, 3, 1, 5, 5\)"):
        save_attention_map(path, ok, ["a", "b"], np.zeros((1, 3, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"C = 1 or 3 channels, got shape \(3, 2, 5, 5\)"):
        save_attention_map(path, ok, ["a", "b"], torch.zeros(3, 2, 5, 5))
    with pytest.raises(ValueError, match=r"uint8 frames must be \(T, H, W, 3\) .*got shape \(3, 5, 5, 4\)"):
        save_attention_map(path, ok, ["a", "b"], np.zeros((3, 5, 5, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"floats in \[0, 1\] or uint8, got dtype int64"):
        save_attention_map(path, ok, ["a", "b"], np.zeros((3, 1, 5, 5), dtype=np.int64))
    nan = ok.copy()
    nan[1, 2] = np.nan
    with pytest.raises(ValueError, match="must not hold NaN, got 1 NaN"):
        save_attention_map(path, nan, ["a", "b"])
    with pytest.raises(ValueError, match=r"must be >= 0, got a minimum of -0\.5"):
        save_attention_map(path, ok - np.array([0.0, 0.0, 0.8333333333333334]), ["a", "b"])
    with pytest.raises(ValueError, match="max_thumbnails must be >= 1, got 0"):
        save_attention_map(path, ok, ["a", "b"], max_thumbnails=0)
    assert not path.exists()
    assert plt.get_fignums() == []
