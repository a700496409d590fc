"""Runs that survive interruption: kill -9 and SIGTERM mid-fit, atomic and finite checkpoints, exact
resume, non-finite losses, determinism."""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from test_cli import TINY

from lstmvision.cli import main
from lstmvision.commands.demo import demo_config
from lstmvision.commands.lightning import LstmVisionCLI
from lstmvision.tasks.reliability import AtomicCheckpointIO

ROOT = Path(__file__).resolve().parents[1]
# 16 training clips of 4 -> 4 steps per epoch
SMALL = [*TINY, "--data.init_args.train_size", "16"]


def _common(runs: Path, *extra: str) -> list[str]:
    return ["--config", str(demo_config()), "--runs_dir", str(runs), *SMALL, *extra]


def _last(runs: Path) -> Path:
    return runs / "moving_mnist_demo" / "version_0" / "checkpoints" / "last.ckpt"


def _start_fit(runs: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "lstmvision.cli", "fit", *_common(runs, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_step(process: subprocess.Popen[str], last: Path, step: int, timeout: float = 180.0) -> int:
    """Poll until ``last`` holds at least ``step`` steps; return the step it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"fit ended (rc {process.returncode}) before step {step}:\n{process.communicate()[1]}"
            )
        if last.is_file():
            # atomic writes: the file is always a complete checkpoint, never half-written
            held = torch.load(last, weights_only=True)["global_step"]
            if held >= step:
                return int(held)
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no checkpoint with {step} steps within {timeout} s")


def _train_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("train/loss")]


def test_kill_9_then_resume_continues_from_the_newest_checkpoint(tmp_path: Path) -> None:
    process = _start_fit(tmp_path, "--trainer.max_epochs", "40", "--checkpoint_every_n_steps", "1")
    try:
        held = _wait_for_step(process, _last(tmp_path), 3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    saved = torch.load(_last(tmp_path), weights_only=True)["global_step"]
    assert saved >= held >= 3 and process.returncode == -signal.SIGKILL
    for checkpoint in _last(tmp_path).parent.glob("*.ckpt"):  # a killed save leaves at most a .tmp file
        torch.load(checkpoint, weights_only=True)

    cli = LstmVisionCLI(args=["fit", *_common(tmp_path, "--trainer.max_epochs", "3", "--ckpt_path", "last")])
    assert cli.trainer.current_epoch == 3 and cli.trainer.global_step == 12, "the run reached max_epochs"
    run = tmp_path / "moving_mnist_demo" / "version_0"
    resumed_steps = [int(row["step"]) for row in _train_rows(run / "metrics.csv")]
    assert min(resumed_steps) >= saved - 1 > 0, f"resumed at step {min(resumed_steps)}, checkpoint {saved}"
    final = torch.load(_last(tmp_path), weights_only=True)
    assert final["global_step"] == 12 and final["epoch"] == 2
    assert list(run.glob("checkpoints/best-*.ckpt")) and (run / "metrics.part1.csv").is_file()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_last_checkpoint_and_says_how_to_resume(tmp_path: Path, signum: int) -> None:
    process = _start_fit(tmp_path, "--trainer.max_epochs", "40", "--checkpoint_every_n_steps", "2")
    try:
        held = _wait_for_step(process, _last(tmp_path), 2)
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, err  # 143 for SIGTERM, 130 for SIGINT
    checkpoint = torch.load(_last(tmp_path), weights_only=True)
    assert checkpoint["global_step"] >= held
    name = signal.Signals(signum).name
    assert f"training stopped on {name}; last checkpoint: {_last(tmp_path)}" in err
    resume = err.split("resume with:\n", 1)[1].strip()
    assert resume.startswith("lstmvision fit --config") and resume.endswith("--ckpt_path last")


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(1000)}, "global_step": 1}, path)
    before = path.read_bytes()

    def crash(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"\x80partial checkpoint bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(1000)}, "global_step": 2}, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert torch.load(path, weights_only=True)["global_step"] == 1


def test_a_checkpoint_with_non_finite_weights_is_never_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cli = LstmVisionCLI(args=["fit", *_common(tmp_path, "--trainer.max_epochs", "1")])
    last = _last(tmp_path)
    before = last.read_bytes()
    name, weight = next((n, p) for n, p in cli.model.named_parameters() if n.endswith("head.weight"))
    with torch.no_grad():
        weight.view(-1)[0] = float("nan")
    with caplog.at_level(logging.ERROR):
        cli.trainer.save_checkpoint(last)
    assert last.read_bytes() == before, "the last good checkpoint was overwritten"
    assert f"state_dict.{name}" in caplog.text and "non-finite" in caplog.text


def _nan_once_at(cli: LstmVisionCLI, step: int) -> None:
    """Make the model's output NaN in the first training batch at ``step``."""
    task, model = cli.model, cli.model.model
    original, fired = model.forward, []

    def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = original(*args, **kwargs)
        if task.training and task.global_step >= step and not fired:
            fired.append(True)
            return out * float("nan")
        return out

    model.forward = forward  # type: ignore[method-assign]


def test_non_finite_loss_raises_naming_the_step_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    cli = LstmVisionCLI(
        args=_common(tmp_path, "--trainer.max_epochs", "2", "--checkpoint_every_n_steps", "1"), run=False
    )
    _nan_once_at(cli, 5)
    with pytest.raises(FloatingPointError, match="non-finite training loss nan at step 5"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert torch.load(_last(tmp_path), weights_only=True)["global_step"] == 5


def test_non_finite_loss_skip_skips_the_batch_and_counts_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = _common(tmp_path, "--trainer.max_epochs", "2", "--model.init_args.on_nonfinite_loss", "skip")
    cli = LstmVisionCLI(args=args, run=False)
    _nan_once_at(cli, 5)
    with caplog.at_level(logging.WARNING):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert "non-finite training loss nan at step 5: batch skipped (1 skipped so far)" in caplog.text
    assert cli.model.skipped_batches == 1 and cli.trainer.current_epoch == 2
    final = torch.load(_last(tmp_path), weights_only=True)
    # Lightning counts the skipped batch in global_step; Adam's own count shows the step it did not make
    adam_steps = {int(state["step"]) for state in final["optimizer_states"][0]["state"].values()}
    assert cli.trainer.global_step == 8 and adam_steps == {7}, "the skipped batch made no optimiser step"
    assert all(torch.isfinite(v).all() for v in final["state_dict"].values() if v.is_floating_point())
    assert final["callbacks"]["RunGuard"]["skipped_batches"] == 1
    rows = _train_rows(tmp_path / "moving_mnist_demo" / "version_0" / "metrics.csv")
    with (tmp_path / "moving_mnist_demo" / "version_0" / "metrics.csv").open() as handle:
        assert any(row.get("train/skipped_batches") == "1.0" for row in csv.DictReader(handle))
    assert all(math.isfinite(float(row["train/loss"])) for row in rows)


class _KeepEpochEnd(Callback):
    """Copy last.ckpt as the first epoch's end left it (saved in on_train_epoch_end, after validation)."""

    def __init__(self, to: Path) -> None:
        self.to = to

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 1:
            shutil.copy(Path(trainer.log_dir) / "checkpoints" / "last.ckpt", self.to)


def test_resume_from_an_epoch_end_checkpoint_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    epoch_end = tmp_path / "epoch0.ckpt"
    whole = LstmVisionCLI(args=_common(tmp_path / "a", "--trainer.max_epochs", "2"), run=False)
    whole.trainer.callbacks.append(_KeepEpochEnd(epoch_end))
    whole.trainer.fit(whole.model, datamodule=whole.datamodule)
    assert torch.load(epoch_end, weights_only=True)["global_step"] == 4

    main(["fit", *_common(tmp_path / "b", "--trainer.max_epochs", "2", "--ckpt_path", str(epoch_end))])
    a = torch.load(_last(tmp_path / "a"), weights_only=True)
    b = torch.load(_last(tmp_path / "b"), weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for key, value in a["state_dict"].items():
        error = (value - b["state_dict"][key]).abs().max().item()
        assert error <= 1e-6, f"{key}: max |uninterrupted - resumed| = {error}"


def test_same_seed_and_config_give_identical_metrics_and_weights(tmp_path: Path) -> None:
    for name in ("a", "b"):
        main(["fit", *_common(tmp_path / name, "--trainer.max_epochs", "2")])
    runs = [tmp_path / name / "moving_mnist_demo" / "version_0" for name in ("a", "b")]
    first, second = ((run / "metrics.csv").read_text() for run in runs)
    assert first == second and "val/mse" in first
    a, b = (torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for run in runs)
    assert all(torch.equal(a[key], b[key]) for key in a)
