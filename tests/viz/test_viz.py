"""GIFs, PNG frames and metric plots are written, read back, and hold the pixels they were given."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from lstmvision.viz import plot_per_frame_metrics, save_frames_png, save_prediction_gif
from lstmvision.viz.animation import _grid_layout, _GridLayout

Sequences = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _levels(frames: torch.Tensor) -> np.ndarray:
    """The 8-bit levels the writers must store: (B, T, C, H, W) -> (B, T, H, W, C)."""
    return np.rint(frames.clamp(0, 1).numpy() * 255).astype(np.uint8).transpose(0, 1, 3, 4, 2)


def _gif_frames(path: Path, mode: str) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.asarray(frame.convert(mode)) for frame in ImageSequence.Iterator(im)]


def _panel(frame: np.ndarray, layout: _GridLayout, row: int, col: int) -> np.ndarray:
    top, left = layout.panel_origin(row, col)
    return frame[top : top + layout.panel_h, left : left + layout.panel_w]


def _enlarge(frame: np.ndarray, scale: int) -> np.ndarray:
    return frame.repeat(scale, axis=0).repeat(scale, axis=1)


@pytest.fixture
def gray_sequences() -> Sequences:
    g = torch.Generator().manual_seed(0)
    inputs = torch.zeros(3, 4, 1, 12, 16)
    inputs[0, :, :, 2:6, 3:9] = 1.0  # a white rectangle in every input frame of sample 0
    inputs[1, 2] = torch.rand(1, 12, 16, generator=g)
    truth = torch.rand(3, 2, 1, 12, 16, generator=g)
    pred = torch.rand(3, 2, 1, 12, 16, generator=g)
    return inputs, truth, pred


def test_gif_frames_hold_inputs_truth_and_prediction(tmp_path: Path, gray_sequences: Sequences) -> None:
    inputs, truth, pred = gray_sequences
    scale = 3
    path = save_prediction_gif(tmp_path / "sub" / "pred.gif", inputs, truth, pred, fps=5, scale=scale)
    assert path == tmp_path / "sub" / "pred.gif" and path.stat().st_size > 0
    frames = _gif_frames(path, "L")
    assert len(frames) == 4 + 2
    with Image.open(path) as im:
        assert im.info["loop"] == 0 and im.info["duration"] == 200

    layout = _grid_layout(3, 12, 16, scale, 4, 6)
    assert frames[0].shape == (layout.height, layout.width)
    x, y, p = _levels(inputs), _levels(truth), _levels(pred)

    # The white rectangle sits where it was drawn, enlarged 3x with nearest neighbour.
    first = _panel(frames[0], layout, 0, 0)
    assert (first[6:18, 9:27] == 255).all() and first[:6].max() == 0 and first[18:].max() == 0
    # Input phase: "input" and "truth" show the input frame, "prediction" is blank background.
    for row in range(3):
        np.testing.assert_array_equal(_panel(frames[2], layout, row, 0), _enlarge(x[row, 2, ..., 0], scale))
        np.testing.assert_array_equal(_panel(frames[2], layout, row, 1), _enlarge(x[row, 2, ..., 0], scale))
        assert np.unique(_panel(frames[2], layout, row, 2)).size == 1
    # Prediction phase: last input held, then truth and prediction of the same step.
    for t in range(2):
        for row in range(3):
            frame = frames[4 + t]
            np.testing.assert_array_equal(_panel(frame, layout, row, 0), _enlarge(x[row, -1, ..., 0], scale))
            np.testing.assert_array_equal(_panel(frame, layout, row, 1), _enlarge(y[row, t, ..., 0], scale))
            np.testing.assert_array_equal(_panel(frame, layout, row, 2), _enlarge(p[row, t, ..., 0], scale))
    # imageio reads the same animation.
    assert iio.imread(path, index=None).shape[0] == 6


def test_gif_rgb_numpy_and_max_samples(tmp_path: Path) -> None:
    inputs = np.zeros((5, 2, 3, 16, 16), dtype=np.float32)
    inputs[:, :, 0, 4:8, 4:8] = 1.0  # a red square
    truth = np.zeros((5, 3, 3, 16, 16), dtype=np.float32)
    truth[:, :, 2] = 1.0  # all blue
    pred = np.full((5, 3, 3, 16, 16), 0.5, dtype=np.float32)
    path = save_prediction_gif(tmp_path / "rgb.gif", inputs, truth, pred, max_samples=2, scale=1)
    frames = _gif_frames(path, "RGB")
    layout = _grid_layout(2, 16, 16, 1, 2, 5)
    assert len(frames) == 5 and frames[0].shape == (layout.height, layout.width, 3)
    np.testing.assert_array_equal(_panel(frames[0], layout, 1, 0)[4:8, 4:8], np.full((4, 4, 3), (255, 0, 0)))
    assert (_panel(frames[0], layout, 1, 0)[:4] == 0).all()
    assert (_panel(frames[3], layout, 1, 1) == (0, 0, 255)).all()
    assert (_panel(frames[3], layout, 1, 2) == 128).all()


def test_gif_rejects_bad_inputs(tmp_path: Path) -> None:
    x = torch.rand(1, 2, 2, 16, 16)
    with pytest.raises(
        ValueError, match=r"inputs must have 1 or 3 channels \(axis 2\), got shape \(1, 2, 2, 16, 16\)"
    ):
        save_prediction_gif(tmp_path / "a.gif", x, x, x)
    inputs, truth = torch.rand(1, 2, 1, 16, 16), torch.rand(1, 3, 1, 16, 16)
    with pytest.raises(
        ValueError, match=r"truth and pred must have the same shape .* got \(1, 3, 1, 16, 16\) and"
    ):
        save_prediction_gif(tmp_path / "a.gif", inputs, truth, truth[:, :2])
    with pytest.raises(ValueError, match=r"inputs and truth must share B, C, H and W"):
        save_prediction_gif(tmp_path / "a.gif", inputs[..., :8], truth, truth)
    with pytest.raises(ValueError, match="scale must be an integer >= 1, got 0"):
        save_prediction_gif(tmp_path / "a.gif", inputs, truth, truth, scale=0)
    assert not (tmp_path / "a.gif").exists()


def test_frames_png_names_and_values(tmp_path: Path, gray_sequences: Sequences) -> None:
    inputs, truth, pred = gray_sequences
    written = save_frames_png(tmp_path, pred, truth=truth, inputs=inputs, first_sample_index=11)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    expected = [f"{s}/gt0{k}.png" for s in (11, 12, 13) for k in range(1, 7)]
    expected += [f"{s}/pd0{k}.png" for s in (11, 12, 13) for k in (5, 6)]
    assert names == sorted(expected)
    assert all(p.is_file() for p in written)
    # gt numbers cover the inputs then the truth; pdK and gtK are the same time step.
    for s in range(3):
        folder = tmp_path / str(11 + s)
        for k in range(1, 7):
            source = inputs[s, k - 1] if k <= 4 else truth[s, k - 5]
            stored = np.asarray(Image.open(folder / f"gt0{k}.png"), dtype=np.float64) / 255
            np.testing.assert_allclose(stored, source[0].numpy(), atol=1 / 255)
        for k in (5, 6):
            stored = np.asarray(Image.open(folder / f"pd0{k}.png"), dtype=np.float64) / 255
            np.testing.assert_allclose(stored, pred[s, k - 5, 0].numpy(), atol=1 / 255)


def test_frames_png_rgb_prediction_only(tmp_path: Path) -> None:
    pred = torch.rand(2, 3, 3, 8, 10, generator=torch.Generator().manual_seed(1))
    written = save_frames_png(tmp_path, pred, start_index=9, max_samples=1)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["1/pd09.png", "1/pd10.png", "1/pd11.png"]
    stored = np.asarray(Image.open(written[1]), dtype=np.float64) / 255
    assert stored.shape == (8, 10, 3)
    np.testing.assert_allclose(stored, pred[0, 1].permute(1, 2, 0).numpy(), atol=1 / 255)
    with pytest.raises(ValueError, match=r"start_index must be >= 4 .* got 2"):
        save_frames_png(tmp_path, pred, inputs=torch.rand(2, 4, 3, 8, 10), start_index=2)


def test_plot_per_frame_metrics_writes_png(tmp_path: Path) -> None:
    curves = {
        "mse": {"model": [10.0, 12.0, 15.0], "copy last frame": np.array([14.0, 18.0, 25.0])},
        "psnr": {"model": torch.tensor([30.0, float("inf"), 25.0])},
        "ssim": {"model": [0.9, 0.85, 0.8]},
    }
    path = plot_per_frame_metrics(tmp_path / "plots" / "metrics.png", curves, first_frame_index=11, dpi=50)
    assert path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        # Three subplots in one row, 4.0 x 3.2 inches each.
        assert im.size == (600, 160)
        pixels = np.asarray(im.convert("L"))
    # Something was drawn: not a blank canvas.
    assert pixels.min() < 100 and pixels.max() == 255


def test_plot_rejects_empty_curves(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one metric"):
        plot_per_frame_metrics(tmp_path / "a.png", {})
    with pytest.raises(ValueError, match="'ssim' must hold at least one series"):
        plot_per_frame_metrics(tmp_path / "a.png", {"ssim": {}})
    with pytest.raises(ValueError, match=r"'mse'/'model' must be a non-empty 1-D sequence, got shape \(0,\)"):
        plot_per_frame_metrics(tmp_path / "a.png", {"mse": {"model": []}})
