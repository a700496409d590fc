"""What ``test`` prints at the end (lstmvision.commands.report), from the metrics file the task wrote."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from lstmvision.commands.report import report

_VIDEO = {"mse": 100.0, "mae": 200.0, "psnr": 15.0, "ssim": 0.7}


def _printed(tmp_path: Path, metrics: dict, capsys: pytest.CaptureFixture[str]) -> str:
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert report(SimpleNamespace(log_dir=str(tmp_path), is_global_zero=True)) == metrics  # type: ignore[arg-type]
    return capsys.readouterr().out


def test_forecast_metrics_count_the_clips_and_the_skipped_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = {"model": _VIDEO, "copy_last_frame": _VIDEO, "mse_ratio_to_copy_last_frame": 1.0}
    out = _printed(tmp_path, {**metrics, "num_sequences": 999, "skipped_unusable": 1}, capsys)
    assert "MSE/frame       100.0000          100.0000" in out
    assert "over 999 test clips (1 more skipped as unusable, on_corrupt: skip)" in out
    out = _printed(tmp_path, {**metrics, "num_sequences": 1000, "skipped_unusable": 0}, capsys)
    assert "over 1000 test clips\n" in out and "skipped" not in out


def test_classification_metrics_count_the_videos_and_the_skipped_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = {"accuracy": 0.5, "mean_class_accuracy": 0.25, "count": 2, "skipped_unusable": 3}
    out = _printed(tmp_path, metrics, capsys)
    assert "accuracy 0.5000, mean class accuracy 0.2500 over 2 test videos (3 more skipped" in out
    # a metrics file written before the count of skipped videos existed
    out = _printed(tmp_path, {"accuracy": 0.5, "mean_class_accuracy": 0.25, "count": 2}, capsys)
    assert "over 2 test videos\n" in out
