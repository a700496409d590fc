"""Training and testing with several processes (Lightning's DDP, gloo on CPU) for every task.

Each task trains with 2 processes through ``python -m lstmvision.cli fit --trainer.strategy ddp``, then
its checkpoint is tested once with 1 process (in the pytest process) and once with 2. The ``ddp`` strategy (not ``ddp_spawn``)
is what a user launches, and what torchrun and SLURM start: every rank re-runs the same command, so
these tests also cover the CLI's directory and version logic on every rank. Running as a subprocess
keeps the process group, its port and its threads out of the pytest process.

Agreement: with the same weights and the same test clips, 2 processes must give the metrics of 1.
Counts and confusion matrices must be equal exactly (the test sampler gives each clip to exactly one
process; Lightning's default one would repeat a clip to even out the 2 shards of the odd-sized test
set). Video metrics are float64 sums of per-clip values; the only differences are the order of
summation and float32 convolutions run on batches of another size, so they agree to 1e-5 relative.
Training trajectories differ with the global batch and are not compared; the 2-process run must
count half the optimiser steps of 1 process per epoch and end with a finite loss.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY_DEMO_NETWORK

from lstmvision.cli import main
from lstmvision.commands.configs import find_config
from lstmvision.commands.demo import demo_config

DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
ONE = ["--trainer.devices", "1", "--trainer.accelerator", "cpu"]
# 8 training clips, batch 2: 2 steps per rank in one epoch with 2 processes (4 with one);
# an odd test set, which 2 processes cannot split evenly
COMMON = [
    "--data.init_args.train_size", "8",
    "--data.init_args.val_size", "4",
    "--data.init_args.test_size", "5",
    "--data.init_args.batch_size", "2",
    "--data.init_args.num_workers", "0",
    "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1",
]  # fmt: skip
PREDICTION = [
    "--config", str(demo_config()),
    *TINY_DEMO_NETWORK,
    "--model.init_args.gif_samples", "2",
    "--model.init_args.save_frames", "3",
]  # fmt: skip
CLASSIFICATION = [
    "--config", str(find_config("actions/single_frame")),
    "--model.init_args.model.init_args.encoder.init_args.channels", "[4, 8]",
    "--model.init_args.model.init_args.encoder.init_args.feature_dim", "8",
    "--data.init_args.image_size", "24",
    "--data.init_args.seq_length", "4",
]  # fmt: skip
CAPTIONING = [
    "--config", str(find_config("captioned_digits/sa_lstm")),
    "--model.init_args.model.init_args.frame_encoder.init_args.channels", "[4, 8]",
    "--model.init_args.model.init_args.frame_encoder.init_args.feature_dim", "8",
    "--model.init_args.model.init_args.feature_size", "8",
    "--model.init_args.model.init_args.embed_size", "8",
    "--model.init_args.model.init_args.hidden_size", "8",
    "--model.init_args.model.init_args.attention_size", "8",
    "--model.init_args.beam_size", "2",
    "--data.init_args.image_size", "40",
    "--data.init_args.seq_length", "4",
]  # fmt: skip
STEPS_PER_EPOCH_2_PROCESSES = 2  # ceil(ceil(8 / 2) / 2)


def _cli(tmp_path: Path, *argv: str) -> str:
    """Run ``python -m lstmvision.cli`` in ``tmp_path``; its output, or a failure showing it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "lstmvision.cli", *argv, "--runs_dir", str(tmp_path / "runs")]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv[:1])} exited with {done.returncode}:\n{output[-6000:]}"
    return output


def _only_version(tmp_path: Path, experiment: str) -> Path:
    versions = sorted((tmp_path / "runs" / experiment).glob("version_*"))
    assert len(versions) == 1, f"expected one run directory (rank 0's), got {versions}"
    return versions[0]


_evaluated: dict[tuple[Path, str], Path] = {}  # (test folder, experiment name) -> the evaluation's folder


def _new_folder(run: Path, subcommand: str, before: set[Path]) -> Path:
    """The one ``<subcommand>-<timestamp>`` folder an evaluation (rank 0) added to ``run``."""
    added = set(run.glob(f"{subcommand}-*")) - before
    assert len(added) == 1, f"expected one {subcommand} folder (rank 0's) in {run}, got {sorted(added)}"
    return added.pop()


def _fit_with_2_processes(tmp_path: Path, base: list[str]) -> Path:
    """Train with 2 processes; check what rank 0 wrote and how many steps were counted; the last.ckpt."""
    _cli(tmp_path, "fit", *base, *COMMON, *DDP, "--experiment", "fit2")
    run = _only_version(tmp_path, "fit2")
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("best-") for name in checkpoints), checkpoints
    last = run / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    # one epoch over 8 clips split between 2 processes, batch 2: each process took 2 steps, in lockstep
    assert saved["global_step"] == STEPS_PER_EPOCH_2_PROCESSES
    with (run / "metrics.csv").open() as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    assert len(losses) == STEPS_PER_EPOCH_2_PROCESSES, losses  # logged by rank 0 only, once per step
    assert all(math.isfinite(loss) for loss in losses), losses
    return last


def _test(
    tmp_path: Path,
    base: list[str],
    ckpt: Path,
    experiment: str,
    capsys: pytest.CaptureFixture[str] | None = None,
    result: str = "metrics.json",
) -> dict:
    """Test ``ckpt`` with 2 processes, or with 1 in this process (no interpreter to start) given ``capsys``."""
    argv = ["test", *base, *COMMON, "--ckpt_path", str(ckpt), "--experiment", experiment]
    before = set(ckpt.parents[1].glob("test-*"))
    if capsys is None:
        out = _cli(tmp_path, *argv, *DDP)
    else:
        main([*argv, *ONE, "--runs_dir", str(tmp_path / "runs")])
        out = capsys.readouterr().out
    run = _evaluated[(tmp_path, experiment)] = _new_folder(ckpt.parents[1], "test", before)
    assert out.count("\noutputs: ") == 1, f"the report must be printed once, by rank 0:\n{out[-3000:]}"
    return json.loads((run / result).read_text())


def test_video_prediction_with_2_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = _fit_with_2_processes(tmp_path, PREDICTION)
    one = _test(tmp_path, PREDICTION, last, "test1", capsys)
    two = _test(tmp_path, PREDICTION, last, "test2")
    assert one["num_sequences"] == two["num_sequences"] == 5  # no clip tested twice
    for series in ("model", "copy_last_frame"):
        for metric, value in one[series].items():
            assert two[series][metric] == pytest.approx(value, rel=1e-5), (series, metric)
        for metric, curve in one["per_frame"][series].items():
            assert two["per_frame"][series][metric] == pytest.approx(curve, rel=1e-5), (series, metric)
    run = _evaluated[(tmp_path, "test2")]
    assert (run / "predictions.gif").is_file() and (run / "per_frame_metrics.png").is_file()
    # save_frames=3 from rank 0, whose block holds the set's first 2 clips: the first clips, as with one process
    frames_one = sorted(
        p.relative_to(_evaluated[(tmp_path, "test1")])
        for p in (_evaluated[(tmp_path, "test1")] / "frames").rglob("*.png")
    )
    frames_two = sorted(p.relative_to(run) for p in (run / "frames").rglob("*.png"))
    assert frames_two and set(frames_two) <= set(frames_one), (frames_one, frames_two)


def _validate(
    tmp_path: Path, base: list[str], ckpt: Path, experiment: str, processes: int
) -> dict[str, float]:
    """Validate ``ckpt`` on 5 clips, which 2 processes cannot split evenly; the logged metrics."""
    argv = ["validate", *base, *COMMON, "--data.init_args.val_size", "5", "--ckpt_path", str(ckpt)]
    before = set(ckpt.parents[1].glob("validate-*"))
    if processes == 2:
        _cli(tmp_path, *argv, *DDP, "--experiment", experiment)
    else:
        main([*argv, *ONE, "--experiment", experiment, "--runs_dir", str(tmp_path / "runs")])
    folder = _new_folder(ckpt.parents[1], "validate", before)
    with (folder / "metrics.csv").open() as handle:
        (row,) = [
            row for row in csv.DictReader(handle) if any(row.get(f"val/{k}") for k in ("mse", "acc", "loss"))
        ]
    return {key: float(value) for key, value in row.items() if key.startswith("val/") and value}


def test_validation_with_2_processes_counts_each_clip_once(tmp_path: Path) -> None:
    # Lightning's validation sampler deals the 5 clips as 3 + 3, the sixth a repeat of the first: left out
    # (CountedRows), and the uneven 3 + 2 clips averaged over both processes (RowMeans), the metrics are
    # those of one process
    last = _fit_with_2_processes(tmp_path, PREDICTION)
    one = _validate(tmp_path, PREDICTION, last, "val1", 1)
    two = _validate(tmp_path, PREDICTION, last, "val2", 2)
    assert set(one) == {"val/mse", "val/ssim"}
    assert two == pytest.approx(one, rel=1e-6)


def test_video_classification_with_2_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = _fit_with_2_processes(tmp_path, CLASSIFICATION)
    one = _test(tmp_path, CLASSIFICATION, last, "test1", capsys)
    two = _test(tmp_path, CLASSIFICATION, last, "test2")
    assert one["count"] == two["count"] == 5  # no clip tested twice
    assert two["confusion_matrix"] == one["confusion_matrix"]
    for key in ("accuracy", "top5", "mean_class_accuracy"):
        assert two[key] == pytest.approx(one[key], abs=1e-12), key
    assert (_evaluated[(tmp_path, "test2")] / "confusion_matrix.png").is_file()

    # predict with 2 processes: rank 0 gathers every process's rows and writes them once, in set order
    before = set(last.parents[1].glob("predict-*"))
    _cli(
        tmp_path, "predict", *CLASSIFICATION, *COMMON, *DDP, "--ckpt_path", str(last), "--experiment", "pred2"
    )
    with (_new_folder(last.parents[1], "predict", before) / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["index"]) for row in rows] == list(range(5))
    predicted = [int(row["class_index"]) for row in rows]
    # the confusion matrix's column sums are the predicted classes of the same 5 clips
    columns = [sum(column) for column in zip(*one["confusion_matrix"])]
    assert [predicted.count(c) for c in range(len(columns))] == columns


def test_video_captioning_with_2_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = _fit_with_2_processes(tmp_path, CAPTIONING)
    one = _test(tmp_path, CAPTIONING, last, "test1", capsys, result="scores.json")
    two = _test(tmp_path, CAPTIONING, last, "test2", result="scores.json")
    assert one["num_videos"] == two["num_videos"] == 5  # no video captioned twice
    # rank 0 gathers every process's captions in set order and scores them once
    captions = [
        json.loads((_evaluated[(tmp_path, n)] / "captions.json").read_text()) for n in ("test1", "test2")
    ]
    assert [c["video_id"] for c in captions[1]] == [c["video_id"] for c in captions[0]]
    assert [c["caption"] for c in captions[1]] == [c["caption"] for c in captions[0]]
    for series in ("model", "most_frequent_caption"):
        assert two[series] == pytest.approx(one[series], abs=1e-12), series
    # validation: the sixth row Lightning's sampler deals (a repeat of the first video) is not counted,
    # and val/loss is the mean over the 5 videos' tokens, as with one process
    one_val = _validate(tmp_path, CAPTIONING, last, "val1", 1)
    two_val = _validate(tmp_path, CAPTIONING, last, "val2", 2)
    assert {"val/loss", "val/CIDEr", "val/BLEU-4"} <= set(one_val)
    assert two_val == pytest.approx(one_val, rel=1e-6)
