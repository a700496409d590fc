"""What ``test`` (and ``demo``) print at the end: where the outputs are and the metrics, beside the
baseline of the task (copy-last-frame, most frequent caption)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer

__all__ = ["report"]


def report(trainer: Trainer) -> dict[str, Any] | None:
    """Print where the test outputs are and the test metrics (beside the baseline, for predictions)."""
    log_dir = trainer.log_dir  # a broadcast under DDP: every process must ask
    if not trainer.is_global_zero or log_dir is None:
        return None
    out = Path(log_dir)
    path = out / "metrics.json"
    if not path.is_file() and (out / "scores.json").is_file():
        path = out / "scores.json"  # the captioning task's test scores
    if not path.is_file():
        print(f"outputs: {out}")
        return None
    metrics = json.loads(path.read_text())
    print(f"\noutputs: {out}")
    for name in sorted(
        p.name for p in out.iterdir() if p.is_file() and p.suffix in {".json", ".png", ".gif"}
    ):
        print(f"  {out / name}")
    if "copy_last_frame" in metrics:
        model, base = metrics["model"], metrics["copy_last_frame"]
        print(f"\n{'metric':<12}{'model':>12}{'copy-last-frame':>18}")
        for key, label in (("mse", "MSE/frame"), ("mae", "MAE/frame"), ("psnr", "PSNR"), ("ssim", "SSIM")):
            print(f"{label:<12}{model[key]:>12.4f}{base[key]:>18.4f}")
        print(
            f"MSE ratio model / copy-last-frame: {metrics['mse_ratio_to_copy_last_frame']:.3f}"
            f" over {metrics['num_sequences']} test clips{_skipped(metrics)}"
        )
    if path.name == "scores.json":
        _print_caption_scores(metrics)
    if "accuracy" in metrics:
        print(
            f"\naccuracy {metrics['accuracy']:.4f}, mean class accuracy {metrics['mean_class_accuracy']:.4f}"
            f" over {metrics['count']} test videos{_skipped(metrics)}"
        )
        for fraction, entry in metrics.get("early_recognition", {}).items():
            print(f"  first {float(fraction):.0%} of each clip observed: accuracy {entry['accuracy']:.4f}")
    return metrics


def _skipped(metrics: dict[str, Any]) -> str:
    """`` (N more skipped as unusable)`` when the test skipped samples (``on_corrupt: skip``), else ''."""
    count = metrics.get("skipped_unusable", 0)
    return f" ({count} more skipped as unusable, on_corrupt: skip)" if count else ""


def _print_caption_scores(scores: dict[str, Any]) -> None:
    """The captioning test scores of the model beside the most-frequent-caption baseline."""
    model, base = scores.get("model", {}), scores.get("most_frequent_caption", {})
    print(f"\n{'metric':<10}{'model':>10}{'most frequent caption':>24}")
    for name, value in model.items():
        print(f"{name:<10}{value:>10.4f}{base.get(name, float('nan')):>24.4f}")
    for name, reason in scores.get("skipped", {}).items():
        print(f"{name} skipped: {reason}")
    print(
        f"over {scores.get('num_videos')} test videos, beam {scores.get('beam_size')}; baseline caption: "
        f"{scores.get('baseline_caption')!r}"
    )
