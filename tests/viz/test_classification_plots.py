"""Confusion-matrix and accuracy-vs-observed plots are written as PNGs and refuse mismatched inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lstmvision.viz import plot_accuracy_vs_observed, plot_confusion_matrix


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_confusion_matrix_png(tmp_path: Path) -> None:
    matrix = torch.tensor([[5, 1, 0], [0, 3, 3], [0, 0, 0]])  # class "c" has no sample
    path = plot_confusion_matrix(tmp_path / "sub" / "cm.png", matrix, ["a", "b", "c"], dpi=50)
    assert path == tmp_path / "sub" / "cm.png"
    pixels = _rgb(path)
    assert pixels.shape[0] >= 150 and pixels.shape[1] >= 150
    # the 'Blues' colour map fills the cells: some pixels are clearly blue
    blue = (pixels[..., 2].astype(int) - pixels[..., 0].astype(int)) > 60
    assert blue.sum() > 100


def test_confusion_matrix_counts_and_many_classes(tmp_path: Path) -> None:
    counts = np.arange(9.0).reshape(3, 3)
    small = plot_confusion_matrix(tmp_path / "counts.png", counts, ["x", "y", "z"], normalize=False, dpi=50)
    assert _rgb(small).size > 0
    # 40 classes: no cell annotations, a larger figure so that the labels stay readable
    many = plot_confusion_matrix(
        tmp_path / "many.png", np.eye(40) * 3, [f"class {i}" for i in range(40)], title="40 classes", dpi=30
    )
    assert _rgb(many).shape[0] > _rgb(small).shape[0] * 30 / 50


def test_confusion_matrix_refuses_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"square \(K, K\) array, got shape \(2, 3\)"):
        plot_confusion_matrix(tmp_path / "a.png", np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match=r"got 2 names for a matrix of shape \(3, 3\)"):
        plot_confusion_matrix(tmp_path / "a.png", np.zeros((3, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="finite counts >= 0"):
        plot_confusion_matrix(tmp_path / "a.png", -np.ones((2, 2)), ["a", "b"])
    assert not (tmp_path / "a.png").exists()


def test_accuracy_vs_observed_png(tmp_path: Path) -> None:
    path = plot_accuracy_vs_observed(
        tmp_path / "acc.png",
        [0.25, 0.5, 1.0],
        {"top-1": [0.3, 0.5, 0.8], "top-5": torch.tensor([0.6, 0.8, 0.95])},
        title="early recognition",
        dpi=50,
    )
    pixels = _rgb(path)
    assert pixels.shape == (180, 250, 3), "5.0 x 3.6 inches at 50 dpi"
    assert (pixels < 200).any(axis=-1).sum() > 500, "lines, axes and text are drawn"


def test_accuracy_vs_observed_refuses_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"series 'top-1' must hold one accuracy per fraction: got shape \(2,\) for 3"
    ):
        plot_accuracy_vs_observed(tmp_path / "a.png", [0.25, 0.5, 1.0], {"top-1": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"fractions must lie in \(0, 1\], got \[0.0, 0.5\]"):
        plot_accuracy_vs_observed(tmp_path / "a.png", [0.0, 0.5], {"top-1": [0.1, 0.2]})
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plot_accuracy_vs_observed(tmp_path / "a.png", [], {"top-1": []})
    with pytest.raises(ValueError, match="at least one series"):
        plot_accuracy_vs_observed(tmp_path / "a.png", [0.5], {})
    assert not (tmp_path / "a.png").exists()
