"""Scheduled sampling (lstmvision.tasks.schedules): the release formulas, and the task feeding them to the model.

The first two tests moved here from tests/models/test_predictor.py with the schedules (issue 17): their
assertions are unchanged, only the object that answers them is now the task's schedule."""

from __future__ import annotations

import math

import pytest
import torch

from lstmvision.models import ConvLSTMPredictor
from lstmvision.tasks import ReverseScheduledSampling, ScheduledSampling, VideoPredictionTask


def test_sampling_schedule_follows_the_release() -> None:
    model = ScheduledSampling(start_value=1.0, changing_rate=0.1, stop_iter=8)
    assert model.sampling_probability(0) == 1.0
    assert model.sampling_probability(3) == pytest.approx(0.7)
    assert model.sampling_probability(7) == pytest.approx(0.3)
    assert model.sampling_probability(8) == 0.0
    assert ScheduledSampling(changing_rate=0.5, stop_iter=100).sampling_probability(5) == 0.0


def test_reverse_scheduled_sampling_follows_predrnn_v2() -> None:
    model = ReverseScheduledSampling(step_1=10, step_2=30, exp_alpha=5.0)
    assert (model.input_sampling_probability(0), model.sampling_probability(0)) == (0.5, 0.5)
    assert model.input_sampling_probability(15) == pytest.approx(1.0 - 0.5 * math.exp(-1.0))
    assert model.sampling_probability(20) == pytest.approx(0.25)
    assert (model.input_sampling_probability(30), model.sampling_probability(30)) == (1.0, 0.0)
    # without the option every observed frame is read, whatever the iteration
    assert ScheduledSampling().input_sampling_probability(0) == 1.0


def test_the_defaults_are_the_releases() -> None:
    # the values the predictors had before the schedule moved to the task
    assert ScheduledSampling().init_args() == {"start_value": 1.0, "changing_rate": 2e-5, "stop_iter": 50000}
    assert ReverseScheduledSampling().init_args() == {"step_1": 25000, "step_2": 50000, "exp_alpha": 5000.0}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ScheduledSampling(start_value=1.5), r"start_value must be in \[0, 1\], got 1.5"),
        (lambda: ScheduledSampling(changing_rate=-0.1), "changing_rate and stop_iter must be >= 0"),
        (lambda: ReverseScheduledSampling(step_1=9, step_2=9), "step_1 < step_2, got 9 and 9"),
        (lambda: ReverseScheduledSampling(exp_alpha=0.0), "exp_alpha must be > 0"),
    ],
)
def test_bad_schedules_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


class _Recorder(ConvLSTMPredictor):
    """Records the probabilities the task feeds."""

    def __init__(self) -> None:
        super().__init__(num_hidden=[4], filter_size=3, patch_size=2, input_length=3, total_length=6)
        self.fed: list[tuple[float, float]] = []

    def forward(self, frames: torch.Tensor, **kwargs: object) -> torch.Tensor:
        if "sampling_prob" in kwargs:
            self.fed.append((kwargs["sampling_prob"], kwargs["input_sampling_prob"]))  # type: ignore[arg-type]
        return super().forward(frames, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sampling",
    [ScheduledSampling(changing_rate=0.1, stop_iter=5), ReverseScheduledSampling(step_1=1, step_2=4), None],
)
def test_the_task_feeds_its_schedule_at_the_global_step(sampling: object) -> None:
    model = _Recorder()
    task = VideoPredictionTask(model, sampling=sampling)  # type: ignore[arg-type]
    clips = torch.rand(2, 6, 1, 4, 4)
    steps = [0, 2, 3, 7]
    for step in steps:
        type(task).global_step = property(lambda self, s=step: s)  # type: ignore[assignment]
        try:
            task.training_step(clips, 0)
        finally:
            del type(task).global_step
    if sampling is None:  # no schedule: future steps read the model's own predictions, as at test time
        expected = [(0.0, 1.0)] * len(steps)
    else:
        expected = [
            (sampling.sampling_probability(s), sampling.input_sampling_probability(s))  # type: ignore[attr-defined]
            for s in steps
        ]
    flat = [p for pair in model.fed for p in pair]
    assert flat == pytest.approx([p for pair in expected for p in pair]), model.fed
    assert len(set(model.fed)) > 1 or sampling is None, "the probabilities change over training"


def test_the_schedule_is_saved_as_plain_values() -> None:
    task = VideoPredictionTask(_Recorder(), sampling=ReverseScheduledSampling(step_1=5, step_2=50))
    assert task.hparams["sampling"] == {
        "class_path": "lstmvision.tasks.ReverseScheduledSampling",
        "init_args": {"step_1": 5, "step_2": 50, "exp_alpha": 5000.0},
    }
