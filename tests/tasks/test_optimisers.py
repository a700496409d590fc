"""Optimisers and schedulers of the tasks (lstmvision.tasks.base): any torch one from YAML, run lengths filled
in, the defaults equal to the ones the tasks hard-coded before issue 17, and old keys pointing to their new
place."""

from __future__ import annotations

import csv
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_runs import TINY_DEMO_NETWORK
from torch import nn

from lstmvision.cli import main
from lstmvision.commands.demo import demo_config
from lstmvision.encoders import SmallCNN
from lstmvision.models import SALSTM, ConvLSTMPredictor
from lstmvision.tasks import CaptioningTask, VideoClassificationTask, VideoPredictionTask

TINY = [
    "--config", str(demo_config()),
    *TINY_DEMO_NETWORK,
    "--data.init_args.train_size", "8",
    "--data.init_args.val_size", "4",
    "--data.init_args.test_size", "4",
    "--data.init_args.batch_size", "2",
    "--data.init_args.num_workers", "0",
    "--trainer.enable_progress_bar", "false",
    "--trainer.precision", "32-true",
]  # fmt: skip

ONE_CYCLE = """
model:
  class_path: lstmvision.tasks.VideoPredictionTask
  init_args:
    optimizer:
      class_path: torch.optim.SGD
      init_args: {lr: 0.01, momentum: 0.9}
    lr_scheduler:
      class_path: torch.optim.lr_scheduler.OneCycleLR
      init_args: {max_lr: 0.05}
trainer:
  max_epochs: 3
  log_every_n_steps: 1
  callbacks:
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
      init_args: {logging_interval: step}
"""


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2, exit_info.value.code
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_one_cycle_and_sgd_from_a_config_follow_the_one_cycle_over_the_run(tmp_path: Path) -> None:
    config = tmp_path / "one_cycle.yaml"
    config.write_text(ONE_CYCLE)
    main(["fit", *TINY, "--config", str(config), "--runs_dir", str(tmp_path / "runs")])
    run = tmp_path / "runs" / "moving_mnist_demo" / "version_0"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)

    # SGD with the configured momentum, as the saved hyperparameters and the optimiser state say
    assert checkpoint["hyper_parameters"]["optimizer"]["class_path"] == "torch.optim.SGD"
    [group] = checkpoint["optimizer_states"][0]["param_groups"]
    assert {"momentum", "nesterov", "dampening"} <= set(group), sorted(group)  # SGD's own settings
    # OneCycleLR over the whole run: total_steps filled from the trainer (8 clips / 2 x 3 epochs)
    [scheduler] = checkpoint["lr_schedulers"]
    assert scheduler["total_steps"] == 12 and scheduler["last_epoch"] == 12, scheduler

    with (run / "metrics.csv").open() as handle:
        rates = [float(row["lr-SGD"]) for row in csv.DictReader(handle) if row.get("lr-SGD")]
    assert len(rates) == 12, rates  # stepped (and logged) once per optimiser step
    peak = rates.index(max(rates))
    assert 0 < peak < len(rates) - 1, f"rises then falls: {rates}"
    assert all(a < b for a, b in pairwise(rates[: peak + 1])), rates
    assert all(a > b for a, b in pairwise(rates[peak:])), rates
    assert rates[0] == pytest.approx(0.05 / 25) and max(rates) == pytest.approx(0.05, rel=0.05)


OLD_TASK_KEYS = [
    ("lr", "0.1", "`lr` moved: use `optimizer: {class_path: torch.optim.Adam, init_args: {lr: ...}}`"),
    ("optimizer", "adamw", "`optimizer: adamw` moved: use `optimizer: {class_path: torch.optim.AdamW}`"),
    ("optimizer", "sgd", "`optimizer: sgd` moved: use `optimizer: {class_path: torch.optim.SGD}`"),
    (
        "weight_decay",
        "0.1",
        "`weight_decay` moved: use `optimizer: {class_path: torch.optim.AdamW, init_args: ",
    ),
    ("momentum", "0.9", "`momentum` moved: use `optimizer: {class_path: torch.optim.SGD, init_args: "),
    (
        "lr_schedule",
        "cosine",
        "`lr_schedule` moved: use `lr_scheduler: {class_path: torch.optim.lr_scheduler.",
    ),
    ("plateau_patience", "2", "`plateau_patience` moved: use `lr_scheduler: {class_path: torch.optim.lr_sch"),
    ("plateau_factor", "0.5", "`plateau_factor` moved: use `lr_scheduler: {class_path: torch.optim.lr_sched"),
]
OLD_PREDICTOR_KEYS = [
    ("sampling_start_value", "1.0", "ScheduledSampling, init_args: {start_value: ...}"),
    ("sampling_changing_rate", "0.1", "ScheduledSampling, init_args: {changing_rate: ...}"),
    ("sampling_stop_iter", "5", "ScheduledSampling, init_args: {stop_iter: ...}"),
    ("reverse_scheduled_sampling", "true", "ReverseScheduledSampling}`"),
    ("r_sampling_step_1", "5", "ReverseScheduledSampling, init_args: {step_1: ...}"),
    ("r_sampling_step_2", "50", "ReverseScheduledSampling, init_args: {step_2: ...}"),
    ("r_exp_alpha", "5.0", "ReverseScheduledSampling, init_args: {exp_alpha: ...}"),
]


@pytest.mark.parametrize(("key", "value", "message"), OLD_TASK_KEYS)
def test_an_old_task_key_names_its_new_place(
    key: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = ["--runs_dir", str(tmp_path / "runs")]
    # on the command line
    line = _fails(capsys, "fit", *TINY, *runs, f"--model.init_args.{key}", value)
    assert line.startswith(f"lstmvision fit: {message}"), line
    assert line.endswith("(docs/optimisers.md)"), line
    # in a config file
    config = tmp_path / "old.yaml"
    config.write_text(f"model:\n  init_args:\n    {key}: {value}\n")
    line = _fails(capsys, "fit", *TINY, *runs, "--config", str(config))
    assert line.startswith(f"lstmvision fit: {message}"), line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("key", "value", "message"), OLD_PREDICTOR_KEYS)
def test_an_old_predictor_sampling_key_names_its_new_place(
    key: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = ["--runs_dir", str(tmp_path / "runs")]
    expected = f"lstmvision fit: `{key}` moved: use the prediction task's `sampling: {{class_path: {message}"
    line = _fails(capsys, "fit", *TINY, *runs, f"--model.init_args.model.init_args.{key}", value)
    assert line.startswith(expected) and line.endswith("(docs/predictor.md)"), line
    config = tmp_path / "old.yaml"
    config.write_text(f"model:\n  init_args:\n    model:\n      init_args:\n        {key}: {value}\n")
    line = _fails(capsys, "fit", *TINY, *runs, "--config", str(config))
    assert line.startswith(expected), line


# ------------------------------------------------------------------------------------------- defaults
def _predictor() -> ConvLSTMPredictor:
    return ConvLSTMPredictor(num_hidden=[4], filter_size=3, patch_size=2, input_length=3, total_length=6)


class _Classifier(nn.Module):
    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.linear(clips.mean(dim=(1, 3, 4)))


def _captioner() -> SALSTM:
    encoder = SmallCNN(1, [4, 8], pool_size=2, feature_dim=12)
    return SALSTM(10, 12, frame_encoder=encoder, embed_size=8, hidden_size=12, attention_size=6, max_length=8)


def _same_optimiser(built: torch.optim.Optimizer, old: torch.optim.Optimizer) -> None:
    assert type(built) is type(old)
    assert built.defaults == old.defaults
    assert [g["lr"] for g in built.param_groups] == [g["lr"] for g in old.param_groups]


def test_each_default_is_the_old_default() -> None:
    # prediction and classification: Adam(lr=1e-3, weight_decay=0) and a constant rate, as the old
    # configure_optimizers built them with lr=1e-3, optimizer="adam", weight_decay=0, lr_schedule="constant"
    for task in (VideoPredictionTask(_predictor()), VideoClassificationTask(_Classifier())):
        built = task.configure_optimizers()
        assert isinstance(built, torch.optim.Adam), built
        _same_optimiser(built, torch.optim.Adam(task.parameters(), lr=1e-3, weight_decay=0.0))
        assert built.defaults["lr"] == 1e-3 and built.defaults["weight_decay"] == 0.0

    # captioning: Adam as above and the plateau schedule on val/CIDEr (factor 0.5, patience 2, mode max)
    task = CaptioningTask(_captioner())
    built = task.configure_optimizers()
    old_optimizer = torch.optim.Adam(task.parameters(), lr=1e-3, weight_decay=0.0)
    old = torch.optim.lr_scheduler.ReduceLROnPlateau(old_optimizer, mode="max", factor=0.5, patience=2)
    _same_optimiser(built["optimizer"], old_optimizer)
    config = built["lr_scheduler"]
    assert isinstance(config["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert config["scheduler"].state_dict() == old.state_dict()
    assert (config["monitor"], config["interval"]) == ("val/CIDEr", "epoch")
    # null: a constant rate, as lr_schedule="constant" was
    assert isinstance(
        CaptioningTask(_captioner(), lr_scheduler=None).configure_optimizers(), torch.optim.Adam
    )


def test_the_old_plateau_choice_of_classification_is_reproduced() -> None:
    task = VideoClassificationTask(_Classifier(), lr_scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau)
    built = task.configure_optimizers()
    old = torch.optim.lr_scheduler.ReduceLROnPlateau(torch.optim.Adam(task.parameters()), mode="max")
    assert built["lr_scheduler"]["scheduler"].state_dict() == old.state_dict()
    assert (built["lr_scheduler"]["monitor"], built["lr_scheduler"]["interval"]) == ("val/acc", "epoch")


def test_python_users_pass_any_callable_and_checkpoints_stay_plain(tmp_path: Path) -> None:
    task = VideoClassificationTask(_Classifier(), optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    built = task.configure_optimizers()
    assert isinstance(built, torch.optim.SGD) and built.defaults["lr"] == 0.1
    assert "optimizer" not in task.hparams, "a lambda has no plain form: left out of the hyperparameters"
    task = VideoClassificationTask(_Classifier(), optimizer=partial(torch.optim.SGD, lr=0.2, momentum=0.8))
    assert task.hparams["optimizer"] == {
        "class_path": "torch.optim.SGD",
        "init_args": {"lr": 0.2, "momentum": 0.8},
    }
    assert task.configure_optimizers().defaults["momentum"] == 0.8
    # what a checkpoint holds of the hyperparameters loads with weights_only
    torch.save({"hyper_parameters": dict(task.hparams)}, tmp_path / "h.pt")
    assert torch.load(tmp_path / "h.pt", weights_only=True)["hyper_parameters"] == dict(task.hparams)


def test_a_plateau_against_the_monitor_direction_is_refused() -> None:
    task = VideoClassificationTask(
        _Classifier(), lr_scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode="min")
    )
    with pytest.raises(ValueError, match=r"mode='min' but val/acc is maximised: give mode='max'"):
        task.configure_optimizers()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"optimizer": "adam"},
            r"`optimizer: adam` moved: use `optimizer: \{class_path: torch.optim.Adam\}`",
        ),
        ({"optimizer": None}, "optimizer must build the optimiser, got None"),
        ({"lr_scheduler": 3}, r"lr_scheduler must build the lr scheduler .* got int"),
        ({"lr_scheduler_interval": "batch"}, "lr_scheduler_interval must be 'auto', 'step' or 'epoch'"),
    ],
)
def test_bad_optimiser_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoPredictionTask(_predictor(), **kwargs)
