"""TimeBudget: a run that max_time would cut gets the epochs that fit and a learning rate that anneals over
them, measured with a clock the test drives (every training step costs a set number of seconds)."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from lstmvision.models import ConvLSTMPredictor
from lstmvision.tasks import ScheduledSampling, TimeBudget, VideoPredictionTask
from lstmvision.tasks import budget as budget_module

BATCHES = 8  # training batches an epoch
SAMPLING = ScheduledSampling(start_value=1.0, changing_rate=0.05, stop_iter=20)


class _Clips(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.clips = torch.rand(2 * BATCHES, 4, 1, 12, 12, generator=torch.Generator().manual_seed(3))

    def _loader(self) -> DataLoader:
        return DataLoader(list(self.clips), batch_size=2)

    train_dataloader = val_dataloader = _loader


class _Clock(Callback):
    """A clock that advances ``step`` seconds at the end of every training batch (``later``: from step n on,
    s seconds), ``validation`` seconds at the end of every validation batch after the sanity check, and the
    next of ``sanity`` at the end of every sanity-check batch, before TimeBudget looks."""

    def __init__(
        self,
        step: float,
        sanity: tuple[float, ...] = (),
        later: tuple[tuple[int, float], ...] = (),
        validation: float = 0.0,
    ) -> None:
        self.step = step
        self.sanity = list(sanity)
        self.validation = validation  # seconds of a validation batch after the sanity check
        self.later = dict(later)  # from this step on, that many seconds a step
        self.now = 0.0
        self.steps = 0

    def on_train_batch_end(self, *args: object) -> None:
        self.steps += 1
        self.step = self.later.get(self.steps, self.step)
        self.now += self.step

    def on_validation_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.sanity_checking and self.sanity:
            self.now += self.sanity.pop(0)
        elif not trainer.sanity_checking:
            self.now += self.validation


class _LearningRates(Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def _assert_annealed_over(trainer: L.Trainer, steps: int) -> None:
    """The cosine spans ``steps`` steps and has reached 0 where the run ended."""
    assert trainer.lr_scheduler_configs[0].scheduler.T_max == steps  # type: ignore[attr-defined]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def _task(t_max: int = 0) -> VideoPredictionTask:
    torch.manual_seed(0)
    model = ConvLSTMPredictor(num_hidden=[4], filter_size=3, patch_size=2, input_length=2, total_length=4)
    return VideoPredictionTask(
        model,
        sampling=SAMPLING,
        optimizer=lambda params: torch.optim.Adam(params, lr=0.01),
        # T_max 0: the task fills in the run's length, as in the demo config
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=t_max),
    )


def _fit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    task: VideoPredictionTask,
    step_seconds: float,
    *,
    max_epochs: int = 20,
    budget: TimeBudget | None = None,
    extra: list[Callback] | None = None,
    ckpt_path: Path | None = None,
    clock: _Clock | None = None,
    val_batches: int = 1,
) -> tuple[L.Trainer, _LearningRates]:
    clock = clock or _Clock(step_seconds)
    monkeypatch.setattr(budget_module, "_clock", lambda: clock.now)
    rates = _LearningRates()
    callbacks: list[Callback] = [
        clock,
        budget or TimeBudget(warmup_steps=2, measure_steps=4),
        rates,
        *(extra or []),
    ]
    trainer = L.Trainer(
        accelerator="cpu",
        default_root_dir=tmp_path,
        max_epochs=max_epochs,
        max_time={"hours": 1},  # 3600 s of the test's clock; the real clock never gets near it
        limit_val_batches=val_batches,
        logger=False,
        enable_checkpointing=False if not extra else None,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(task, datamodule=_Clips(), ckpt_path=ckpt_path)
    return trainer, rates


@pytest.mark.parametrize(("tail", "epochs"), [(0.05, 5), (0.0, 4)])
def test_a_run_that_does_not_fit_gets_the_epochs_that_do_and_compressed_schedules(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tail: float,
    epochs: int,
) -> None:
    # 94 s a step, 752 s an epoch: 4 epochs end at 3008 s and 5 at 3760 s, within 3600 / (1 - 0.05) s
    task = _task()
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, rates = _fit(tmp_path, monkeypatch, task, 94.0, budget=TimeBudget(2, 4, tail=tail))
    steps = epochs * BATCHES
    assert trainer.current_epoch == epochs and trainer.global_step == steps
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.T_max == steps  # type: ignore[attr-defined]
    # the first 6 steps follow the planned cosine over 160 steps; the rate then falls to 0 at the new end
    for i, rate in enumerate(rates.rates[:6]):
        assert rate == pytest.approx(0.005 * (1 + math.cos(math.pi * i / 160)), rel=1e-9)
    assert all(later < earlier for earlier, later in zip(rates.rates[5:], rates.rates[6:], strict=False))
    assert rates.rates[-1] < 0.01 * (1 - 0.99) and trainer.optimizers[0].param_groups[0][
        "lr"
    ] == pytest.approx(0.0, abs=1e-12)
    assert task.sampling is SAMPLING  # scheduled sampling keeps its configured iterations
    assert (
        f"time budget: {epochs} of 20 epochs fit in max_time 1:00:00 at 94.00 s a step; the learning rate anneals "
        f"over {steps} steps instead of 160"
    ) in caplog.messages


def test_validation_time_comes_from_the_fastest_sanity_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first sanity batch compiles (500 s), the second takes 10 s: an epoch is 8 x 94 + 2 x 10 = 772 s,
    # so 4 epochs (3088 s) fit in 3600 / 0.95 s and 5 (3860 s) do not; the mean of the two batches
    # (255 s, 1262 s an epoch) would have planned 3
    clock = _Clock(94.0, sanity=(500.0, 10.0), validation=10.0)
    trainer, _ = _fit(tmp_path, monkeypatch, _task(), 94.0, clock=clock, val_batches=2)
    assert clock.sanity == [] and trainer.current_epoch == 4 and trainer.global_step == 4 * BATCHES


def test_a_run_that_fits_is_left_exactly_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budgeted, plain = _task(), _task()
    torch.manual_seed(5)
    trainer, _ = _fit(tmp_path / "a", monkeypatch, budgeted, 1.0, max_epochs=3)
    torch.manual_seed(5)
    L.Trainer(
        accelerator="cpu", max_epochs=3, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path / "b",
    ).fit(plain, datamodule=_Clips())  # fmt: skip
    assert trainer.global_step == 3 * BATCHES and budgeted.sampling is SAMPLING
    for (name, a), b in zip(budgeted.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_schedule_length_given_in_the_config_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _task(t_max=500)
    trainer, _ = _fit(tmp_path, monkeypatch, task, 94.0)
    assert trainer.current_epoch == 5
    assert trainer.lr_scheduler_configs[0].scheduler.T_max == 500  # type: ignore[attr-defined]
    assert task.sampling is SAMPLING


def test_a_resumed_run_keeps_its_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a monitor keeps the task's default checkpoints out
    every_epoch = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val/mse", every_n_epochs=1, save_top_k=-1
    )
    clock = _Clock(94.0)
    whole, _ = _fit(tmp_path, monkeypatch, _task(), 94.0, extra=[every_epoch], clock=clock)
    assert whole.current_epoch == 5
    second = sorted((tmp_path / "ckpt").glob("epoch=1-*.ckpt"))
    assert len(second) == 1, sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    saved = torch.load(second[0], weights_only=True)["callbacks"]
    plan = next(state["plan"] for key, state in saved.items() if key.startswith("TimeBudget"))
    assert plan == {"epochs": 5, "steps": 40, "planned_epochs": 20, "planned_steps": 160, "granularity": 0}

    resumed_task = _task()
    # the resumed process runs at another speed: the saved plan holds, nothing is measured again
    resumed, _ = _fit(tmp_path / "r", monkeypatch, resumed_task, 1.0, ckpt_path=second[0])
    assert resumed.current_epoch == 5 and resumed.global_step == 40
    _assert_annealed_over(resumed, 40)


class _Validations(Callback):
    """The global step at every validation after the sanity check."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_validation_end(self, trainer: L.Trainer, *args: object) -> None:
        if not trainer.sanity_checking:
            self.steps.append(trainer.global_step)


@pytest.mark.parametrize(("tail", "steps"), [(0.05, 39), (0.0, 36)])
def test_a_plan_in_steps_stops_mid_epoch_and_validates_and_checkpoints_there(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tail: float,
    steps: int,
) -> None:
    # decided after 6 steps (564 s): 6 + (3600 / (1 - tail) - 564) / 94 steps fit, 40.3 at tail 0.05 and
    # 38.3 at 0: the multiples of 3 below are 39 and 36, both in the middle of the fifth epoch
    validations = _Validations()
    last = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/mse", save_last=True)
    task = _task()
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, rates = _fit(
            tmp_path, monkeypatch, task, 94.0,
            budget=TimeBudget(2, 4, tail=tail, granularity=3), extra=[validations, last],
        )  # fmt: skip
    assert trainer.global_step == steps and len(rates.rates) == steps
    assert validations.steps == [8, 16, 24, 32, steps]  # every epoch's end, and the stop
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == steps
    _assert_annealed_over(trainer, steps)
    assert (
        f"time budget: {steps} of 160 steps ({steps / 8:.1f} epochs) fit in max_time 1:00:00 at 94.00 s a "
        f"step; the learning rate anneals over {steps} steps instead of 160"
    ) in caplog.messages


def test_a_plan_in_steps_counts_the_validation_at_each_epoch_end_and_at_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a validation pass takes 2 x 10 s (the fastest sanity batch): 40 steps end at 564 + 34 x 94 + 5 x 20 =
    # 3860 s, past 3600 / 0.95; 39 steps at 3766 s (four epoch ends and the stop); without the passes 40
    # would have fit
    clock = _Clock(94.0, sanity=(500.0, 10.0), validation=10.0)
    budget = TimeBudget(2, 4, granularity=1)
    trainer, _ = _fit(tmp_path, monkeypatch, _task(), 94.0, budget=budget, clock=clock, val_batches=2)
    assert trainer.global_step == 39 and budget.plan is not None and budget.plan["epochs"] == 5


def test_a_resumed_plan_in_steps_keeps_its_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # checkpoints every 13 steps, written before that step's validation: steps 13 and 39 fall mid-epoch
    every_13 = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val/mse", every_n_train_steps=13, save_top_k=-1
    )
    whole, _ = _fit(
        tmp_path, monkeypatch, _task(), 94.0, budget=TimeBudget(2, 4, granularity=3), extra=[every_13]
    )
    assert whole.global_step == 39
    saved = {path.name: path for path in (tmp_path / "ckpt").iterdir()}
    assert sorted(saved) == ["epoch=1-step=13.ckpt", "epoch=3-step=26.ckpt", "epoch=4-step=39.ckpt"]

    # from step 13, at another speed: the saved plan holds and the run stops at step 39
    resumed, rates = _fit(tmp_path / "r", monkeypatch, _task(), 1.0, ckpt_path=saved["epoch=1-step=13.ckpt"])
    assert resumed.global_step == 39 and len(rates.rates) == 39 - 13
    assert resumed.lr_scheduler_configs[0].scheduler.T_max == 39  # type: ignore[attr-defined]
    # from the stop itself: no step past it
    again, rates = _fit(tmp_path / "s", monkeypatch, _task(), 1.0, ckpt_path=saved["epoch=4-step=39.ckpt"])
    assert again.global_step == 39 and rates.rates == []


@pytest.mark.parametrize("granularity", [None, 4])
def test_a_machine_that_slows_down_gets_a_shorter_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, granularity: int | None
) -> None:
    # 60 s a step while the plan is made (after step 6), 120 s from step 9 on. The first plan, 7 epochs or
    # 60 steps, would take 6720 s, and max_time would stop it at step 34 with the cosine at a third of its
    # peak. Measured again at every epoch's end (steps 16 and 24), or every 4 steps from step 12 on, the
    # plan shrinks to 4 epochs, 32 steps, which end at 3360 s
    clock = _Clock(60.0, later=((9, 120.0),))
    budget = TimeBudget(2, 4, granularity=granularity)
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, rates = _fit(tmp_path, monkeypatch, _task(), 60.0, budget=budget, clock=clock)
    assert trainer.global_step == 32 and clock.now == 8 * 60.0 + 24 * 120.0
    _assert_annealed_over(trainer, 32)
    assert all(later < earlier for earlier, later in zip(rates.rates, rates.rates[1:], strict=False))
    if granularity is None:
        expected = [
            "7 of 20 epochs fit in max_time 1:00:00 at 60.00 s a step; the learning rate anneals over 56 "
            "steps instead of 160",
            # steps 7 to 16: 2 x 60 + 8 x 120 s
            "4 of 20 epochs now fit in max_time 1:00:00 at 108.00 s a step; the learning rate anneals over "
            "32 steps instead of 56",
        ]
    else:
        expected = [
            "60 of 160 steps (7.5 epochs) fit in max_time 1:00:00 at 60.00 s a step; the learning rate "
            "anneals over 60 steps instead of 160",
            # steps 7 to 12: 2 x 60 + 4 x 120 s, then 4 x 120 s
            "40 of 160 steps (5.0 epochs) now fit in max_time 1:00:00 at 100.00 s a step; the learning rate "
            "anneals over 40 steps instead of 60",
            "32 of 160 steps (4.0 epochs) now fit in max_time 1:00:00 at 120.00 s a step; the learning rate "
            "anneals over 32 steps instead of 40",
        ]
    assert caplog.messages == [f"time budget: {line}" for line in expected]


@pytest.mark.parametrize(("granularity", "steps", "expected"), [
    (None, 48, [
        "3 of 20 epochs fit in max_time 1:00:00 at 120.00 s a step; the learning rate anneals over 24 steps "
        "instead of 160",
        # steps 7 to 16 take 2 x 120 + 8 x 60 s, but a longer plan is made at the slower of that and the
        # measurement before (120 s): with half the time so far at 60 s, 4 epochs fit even at 120 s
        "4 of 20 epochs now fit in max_time 1:00:00 at 120.00 s a step; the learning rate anneals over 32 "
        "steps instead of 24",
        # steps 17 to 24: 60 s, against 72 s before
        "5 of 20 epochs now fit in max_time 1:00:00 at 72.00 s a step; the learning rate anneals over 40 "
        "steps instead of 32",
        "6 of 20 epochs now fit in max_time 1:00:00 at 60.00 s a step; the learning rate anneals over 48 "
        "steps instead of 40",
    ]),
    (4, 52, [
        "28 of 160 steps (3.5 epochs) fit in max_time 1:00:00 at 120.00 s a step; the learning rate anneals "
        "over 28 steps instead of 160",
        # steps 7 to 12: 2 x 120 + 4 x 60 s, planned at the slower 120 s; then 4 x 60 s, planned at 80 s
        "32 of 160 steps (4.0 epochs) now fit in max_time 1:00:00 at 120.00 s a step; the learning rate "
        "anneals over 32 steps instead of 28",
        "40 of 160 steps (5.0 epochs) now fit in max_time 1:00:00 at 80.00 s a step; the learning rate "
        "anneals over 40 steps instead of 32",
        "52 of 160 steps (6.5 epochs) now fit in max_time 1:00:00 at 60.00 s a step; the learning rate "
        "anneals over 52 steps instead of 40",
    ]),
])  # fmt: skip
def test_a_machine_that_speeds_up_gets_a_longer_plan(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    granularity: int | None,
    steps: int,
    expected: list[str],
) -> None:
    # 120 s a step while the first plan is made, 60 s from step 9 on: measured again, the plan grows, to
    # what ends within max_time itself (3600 s), not max_time / (1 - tail) as a shorter plan may, at the
    # slower of the last two measured speeds
    clock = _Clock(120.0, later=((9, 60.0),))
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, rates = _fit(
            tmp_path,
            monkeypatch,
            _task(),
            120.0,
            budget=TimeBudget(2, 4, granularity=granularity),
            clock=clock,
        )
    assert trainer.global_step == steps and len(rates.rates) == steps
    _assert_annealed_over(trainer, steps)
    # the learning rate keeps falling: a longer plan slows the cosine, it does not raise the rate
    assert all(later < earlier for earlier, later in zip(rates.rates, rates.rates[1:], strict=False))
    assert caplog.messages == [f"time budget: {line}" for line in expected]


def test_a_small_change_of_speed_leaves_the_plan_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 94 s a step, then 90 s from step 9 on: 40 steps are planned at step 6; at 90 s a step 41 would end
    # within max_time / (1 - tail) but not within max_time (the last check, at step 38: 3542 s), so the
    # plan is not lengthened, and the first line is the only one
    budget = TimeBudget(2, 4, granularity=1)
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, _ = _fit(
            tmp_path, monkeypatch, _task(), 94.0, budget=budget, clock=_Clock(94.0, later=((9, 90.0),))
        )
    assert trainer.global_step == 40 and len(caplog.messages) == 1
    assert caplog.messages[0].startswith("time budget: 40 of 160 steps (5.0 epochs) fit")


def test_one_fast_stretch_does_not_lengthen_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 94 s a step plans 40 steps at step 6; steps 13 to 16 take 40 s, then 94 s again. Measured at step 16
    # alone, 60 steps would fit, and the plan would shrink back at step 20; a longer plan must fit at the
    # slower of the last two measurements (94 s, steps 7 to 12) too, so the plan stays as it is
    clock = _Clock(94.0, later=((13, 40.0), (17, 94.0)))
    budget = TimeBudget(2, 4, granularity=4)
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, _ = _fit(tmp_path, monkeypatch, _task(), 94.0, budget=budget, clock=clock)
    assert len(caplog.messages) == 1 and trainer.global_step == 40
    assert caplog.messages[0].startswith("time budget: 40 of 160 steps (5.0 epochs) fit")


@pytest.mark.parametrize(("granularity", "faster"), [(None, 33), (4, 37)])
def test_a_plan_is_not_lengthened_at_its_end(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    granularity: int | None,
    faster: int,
) -> None:
    # 94 s a step plans 40 steps (5 epochs); from step 33 (the last epoch) or 37 (the last 4 steps) on a
    # step takes 1 s, so at step 40 far more would fit, but the cosine has reached 0 there: the run ends
    # as planned
    clock = _Clock(94.0, later=((faster, 1.0),))
    budget = TimeBudget(2, 4, granularity=granularity)
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, _ = _fit(tmp_path, monkeypatch, _task(), 94.0, budget=budget, clock=clock)
    assert trainer.global_step == 40 and len(caplog.messages) == 1
    assert trainer.lr_scheduler_configs[0].scheduler.T_max == 40  # type: ignore[attr-defined]


def test_a_plan_in_steps_that_fits_is_left_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 160 steps are not a multiple of 7, and all of them fit: no plan, the run ends at its configured end
    budget = TimeBudget(2, 4, granularity=7)
    trainer, _ = _fit(tmp_path, monkeypatch, _task(), 1.0, budget=budget)
    assert trainer.global_step == 160 and budget.plan is None


def test_validation_in_training_is_measured_and_not_counted_as_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 94 s a step and 200 s a validation pass, which the sanity check (0 s) does not show: the first plan
    # (step 6) is 40 steps. At step 12 the six steps since then took 764 s, 200 of them validating: at
    # 94 s a step and 200 s a pass, 28 steps (three passes to come) end at 3432 s and 32 at 3808 s. Counting
    # the pass as steps (127 s a step) would plan 24; ignoring the passes, 36
    clock = _Clock(94.0, validation=200.0)
    validations = _Validations()
    budget = TimeBudget(2, 4, granularity=4)
    trainer, _ = _fit(tmp_path, monkeypatch, _task(), 94.0, budget=budget, clock=clock, extra=[validations])
    assert trainer.global_step == 28 and validations.steps == [8, 16, 24, 28]
    assert clock.now == 28 * 94.0 + 4 * 200.0


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"granularity must be >= 1 step or None \(whole epochs\), got 0"):
        TimeBudget(granularity=0)
    with pytest.raises(ValueError, match="tail must be in"):
        TimeBudget(tail=0.5)
    with pytest.raises(ValueError, match="measure_steps >= 1, got 2, 0"):
        TimeBudget(warmup_steps=2, measure_steps=0)


def test_fit_sampling_runs_the_schedule_over_the_planned_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 5 of 20 epochs fit (40 of 160 steps): the 20-step schedule of SAMPLING is read 4x as fast
    task = _task()
    budget = TimeBudget(2, 4, fit_sampling=True)
    with caplog.at_level(logging.WARNING, logger="lstmvision.tasks.budget"):
        trainer, _ = _fit(tmp_path, monkeypatch, task, 94.0, budget=budget)
    assert trainer.global_step == 40
    assert task.sampling_probabilities(0) == (1.0, 1.0)
    assert task.sampling_probabilities(3) == (pytest.approx(1.0 - 0.05 * 12), 1.0)  # 3 * 160 // 40
    assert task.sampling_probabilities(4) == (pytest.approx(0.2), 1.0)  # iteration 16
    assert task.sampling_probabilities(5) == (0.0, 1.0)  # iteration 20: the schedule's stop_iter
    assert any(
        "the learning rate anneals over 40 steps instead of 160; scheduled sampling runs its 160-step schedule "
        "over 40 steps" in message
        for message in caplog.messages
    ), caplog.messages


def test_without_fit_sampling_the_schedule_keeps_its_iterations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _task()
    _fit(tmp_path, monkeypatch, task, 94.0)
    assert task.sampling_probabilities(5) == (pytest.approx(0.75), 1.0)


def test_a_resumed_run_keeps_its_fitted_sampling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    every_epoch = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val/mse", every_n_epochs=1, save_top_k=-1
    )
    _fit(
        tmp_path, monkeypatch, _task(), 94.0, budget=TimeBudget(2, 4, fit_sampling=True), extra=[every_epoch]
    )
    first = sorted((tmp_path / "ckpt").glob("epoch=0-*.ckpt"))
    resumed_task = _task()
    _fit(
        tmp_path / "r",
        monkeypatch,
        resumed_task,
        1.0,
        budget=TimeBudget(2, 4, fit_sampling=True),
        ckpt_path=first[0],
    )
    assert resumed_task.sampling_probabilities(3) == (pytest.approx(0.4), 1.0)


def test_fit_sampling_needs_a_task_with_a_sampling_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _NoSampling(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            return self.layer(batch.flatten(1)[:, :1]).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        accelerator="cpu",
        default_root_dir=tmp_path,
        max_epochs=1,
        max_time={"hours": 1},
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[TimeBudget(fit_sampling=True)],
    )
    with pytest.raises(
        ValueError,
        match=r"TimeBudget\(fit_sampling=True\) fits a scheduled-sampling schedule, "
        r"which _NoSampling does not have",
    ):
        trainer.fit(_NoSampling(), datamodule=_Clips())


def test_fit_sampling_to_length_checks_its_lengths() -> None:
    with pytest.raises(ValueError, match="a run's length must be >= 1 step, got 0 of 160"):
        _task().fit_sampling_to_length(0, 160)


def test_a_later_fit_of_the_same_task_starts_from_the_configured_sampling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _task()
    _fit(tmp_path, monkeypatch, task, 94.0, budget=TimeBudget(2, 4, fit_sampling=True))
    assert task.sampling_probabilities(5) == (0.0, 1.0)  # fitted: 4x as fast
    # the whole second run fits in its time: nothing is fitted, and the first run's pace is gone
    _fit(tmp_path / "again", monkeypatch, task, 1.0, budget=TimeBudget(2, 4, fit_sampling=True))
    assert task.sampling_probabilities(5) == (pytest.approx(0.75), 1.0)
