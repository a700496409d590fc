"""Fit a run that ``max_time`` would cut into its time: the epochs (or steps) that fit, with the learning
rate annealing over them.

Lightning's ``max_time`` stops a run wherever the clock runs out. With a cosine learning rate planned
over the whole run, a slower machine then stops in the middle of it, at a high learning rate.
:class:`TimeBudget` measures the first training steps, works out how many whole epochs fit in
``max_time`` and, when that is fewer than ``max_epochs``, lowers ``max_epochs`` and asks the task to fit
its learning-rate schedule to the shorter run (:meth:`~lstmvision.tasks.base.Task.fit_to_length`). The
scheduled-sampling schedule keeps its configured iterations unless ``fit_sampling`` is set: whether
compressing it helps depends on the schedule (docs/runs.md, "Time budget"). On a machine where the whole
run fits, nothing changes.

The first plan is made after ``warmup_steps + measure_steps`` training steps, from the mean time of the
last ``measure_steps`` of them plus the validation passes: the fastest sanity-check batch times the
validation batches (the first batch may include compiling, e.g. the fused gates under bf16). It picks
the most epochs whose predicted end lies within ``max_time / (1 - tail)``: ``max_time`` may then stop
the run in the last ``tail`` of its steps, where a cosine learning rate is below 0.7 % of its peak (at
``tail`` 0.05) and little is lost, rather than give up a whole epoch for a small overrun. ``max_time``
stays the hard limit.

A machine's speed is not constant (a shared CPU whose host takes time from it can run its first steps
much faster or slower than the rest), so the run measures again at every epoch's end, from the steps
since the last measurement (at least ``measure_steps`` of them) and the validation passes it timed, and
shortens the plan where it no longer ends within ``max_time / (1 - tail)``, or lengthens it (up to the
configured run) where a longer one ends within ``max_time`` itself at the slower of the last two measured
speeds: between the two limits a plan stays, so a speed measured a little faster or slower does not change
it back and forth, and one fast stretch between slower ones does not lengthen it. The cosine carries on from
the current learning rate either way: a longer plan slows its fall and never raises the rate; at the
plan's last step, where the rate is 0, nothing is measured. The plan is part of every checkpoint; a
resumed run keeps it and measures nothing. How long the run is depends on the measured speed, so two runs
on one machine can differ (docs/runs.md, "Time budget").

With ``granularity`` set, the plan counts optimiser steps in multiples of it instead of whole epochs, and
is measured again every ``granularity`` steps: the run stops at the planned step, in the middle of an
epoch if need be, and validates and checkpoints there as at an epoch's end (Lightning validates when a
callback sets ``should_stop``). A slower machine then loses the steps it cannot fit rather than a whole
epoch, and ``max_time`` can be set tighter.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, Timer

__all__ = ["TimeBudget"]

log = logging.getLogger(__name__)

_clock = time.monotonic  # the tests replace it with a clock they drive


class TimeBudget(Callback):
    """Lower ``max_epochs`` (or stop at a step) to what fits in the trainer's ``max_time``, measured again as
    the run goes, and fit the task's learning-rate schedule to it (see the module docstring). Add it to
    ``trainer.callbacks``; without ``max_time`` it does nothing.

    Args:
        warmup_steps: training steps left out of the measurement (first calls set up kernels and workers).
        measure_steps: training steps whose mean time predicts the rest.
        tail: share of the planned run that ``max_time`` may cut off at its end, in [0, 0.5).
        granularity: plan the run in multiples of this many optimiser steps, stopping mid-epoch where the
            plan ends there; ``None`` plans whole epochs.
        fit_sampling: also run the task's scheduled-sampling schedule over the planned steps, each phase
            keeping its share of the run (:meth:`VideoPredictionTask.fit_sampling_to_length`); the task
            must have that method.
    """

    def __init__(
        self,
        warmup_steps: int = 2,
        measure_steps: int = 10,
        tail: float = 0.05,
        granularity: int | None = None,
        fit_sampling: bool = False,
    ) -> None:
        if warmup_steps < 0 or measure_steps < 1:
            raise ValueError(
                f"warmup_steps must be >= 0 and measure_steps >= 1, got {warmup_steps}, {measure_steps}"
            )
        if not 0.0 <= tail < 0.5:
            raise ValueError(f"tail must be in [0, 0.5), got {tail}")
        if granularity is not None and granularity < 1:
            raise ValueError(f"granularity must be >= 1 step or None (whole epochs), got {granularity}")
        self.warmup_steps = warmup_steps
        self.measure_steps = measure_steps
        self.tail = tail
        self.granularity = granularity
        self.fit_sampling = fit_sampling
        self.decided = False
        # {"epochs", "steps", "planned_epochs", "planned_steps", "granularity"} (0: whole epochs)
        self.plan: dict[str, int] | None = None
        self._budget: float | None = None
        self._offset = 0.0  # training time before this process (a resumed run)
        self._started = 0.0
        self._seen = 0  # training steps this process has run
        self._window_start: float | None = None  # the clock where the measured steps began
        self._window_steps = 0
        self._window_validation = 0.0  # seconds of validation within the window, not counted as steps
        self._val_batch: float | None = None  # seconds of the fastest sanity-check batch
        self._val_pass: float | None = None  # seconds of the last validation pass during training
        self._previous: float | None = None  # seconds a step at the measurement before the last
        self._batch_started = 0.0
        self._val_started: float | None = None
        self._resumed = False  # decided in an earlier process: the plan is kept as it is

    # --------------------------------------------------------------------------------------- measuring
    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking:
            self._batch_started = _clock()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking:  # the fastest sanity batch: the first may include compiling
            seconds = _clock() - self._batch_started
            self._val_batch = seconds if self._val_batch is None else min(self._val_batch, seconds)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_started = None if trainer.sanity_checking else _clock()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_started is not None:
            self._val_pass = _clock() - self._val_started
            self._window_validation += self._val_pass
            self._val_started = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.fit_sampling and not callable(getattr(pl_module, "fit_sampling_to_length", None)):
            raise ValueError(
                f"TimeBudget(fit_sampling=True) fits a scheduled-sampling schedule, which "
                f"{type(pl_module).__name__} does not have: use it with a VideoPredictionTask, or "
                "fit_sampling: false"
            )
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)  # type: ignore[attr-defined]
        remaining = timer.time_remaining() if timer is not None else None
        if timer is None or remaining is None:
            self._budget = None
            return
        self._offset = timer.time_elapsed()
        self._budget = self._offset + remaining
        self._started = _clock()
        self._seen = 0
        self._restart_window(at_start=True)
        if self.plan is not None:  # resumed: the run keeps the plan it was given
            self._apply(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        plan = self.plan
        if plan is not None and plan.get("granularity", 0) and trainer.global_step >= plan["steps"]:
            trainer.should_stop = True  # Lightning then validates (and checkpoints) here, mid-epoch or not
            return  # the cosine is at its end: a longer plan now would train on at a rate of 0
        if self._budget is None or self._resumed:
            return
        self._seen += 1
        if self._seen == self.warmup_steps:  # measured steps begin after the warm-up
            self._restart_window()
        elif self._window_start is not None:
            self._window_steps += 1
        if self._window_steps < self.measure_steps:
            return
        if not self.decided or self._at_check(trainer, batch_idx):
            self._replan(trainer, pl_module, batch_idx)

    def _restart_window(self, at_start: bool = False) -> None:
        ready = not at_start or self.warmup_steps == 0
        self._window_start = _clock() if ready else None
        self._window_steps = 0
        self._window_validation = 0.0

    def _at_check(self, trainer: L.Trainer, batch_idx: int) -> bool:
        """Where a decided run measures again: every ``granularity`` steps, or at the last batch of an epoch
        before the last (where the cosine is at its end, and a longer plan would train on at a rate of 0)."""
        if self.granularity is not None:
            return trainer.global_step % self.granularity == 0
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        return batch_idx + 1 == trainer.num_training_batches and not last_epoch

    def _replan(self, trainer: L.Trainer, pl_module: L.LightningModule, batch_idx: int) -> None:
        """Plan from the steps measured since the last plan: the first time, shorten the configured run to
        what fits; later, shorten the plan again where the machine has slowed, or lengthen it (up to the
        configured run) where it has sped up."""
        assert self._window_start is not None
        seconds = _clock() - self._window_start - self._window_validation
        per_batch = seconds / self._window_steps
        # a longer plan must fit at the slower of this speed and the one measured before it
        slower = max(per_batch, self._previous or per_batch)
        self._previous = per_batch
        self._restart_window()
        renewed = self.decided
        self.decided = True
        plan = self.plan
        if plan is not None:
            planned_epochs, planned_steps = plan["planned_epochs"], plan["planned_steps"]
            epochs_now, current = plan["epochs"], plan["steps"]
        else:
            if trainer.max_epochs is None or trainer.max_epochs < 1:
                return  # an endless run has no length to fit
            planned_epochs = epochs_now = trainer.max_epochs
            planned_steps = current = int(trainer.estimated_stepping_batches)
        # shorten to what ends within max_time / (1 - tail); lengthen only to what ends within max_time
        # itself, so that a speed measured a little faster or slower leaves the plan as it is
        assert self._budget is not None
        fits = [
            self._epochs_that_fit(trainer, speed, batch_idx + 1, planned_epochs, limit)
            if self.granularity is None
            else self._steps_that_fit(trainer, speed, planned_steps, limit)
            for speed, limit in ((per_batch, self._budget / (1.0 - self.tail)), (slower, self._budget))
        ]
        shorter, longer = trainer.strategy.broadcast(fits, src=0)  # every rank follows rank 0's clock
        length = epochs_now if self.granularity is None else current  # in the plan's unit
        count = shorter if shorter < length else max(longer, length)
        if count == length:
            return
        if count > length:
            per_batch = slower  # the speed the longer plan was made at
        if self.granularity is None:
            epochs, steps = count, max(planned_steps * count // planned_epochs, 1)
        else:
            epochs, steps = -(-count * planned_epochs // planned_steps), count  # the epochs it begins
        self.plan = {
            "epochs": epochs,
            "steps": steps,
            "planned_epochs": planned_epochs,
            "planned_steps": planned_steps,
            "granularity": self.granularity or 0,
        }
        self._apply(trainer, pl_module, previous=current, per_batch=per_batch, renewed=renewed)

    def _epochs_that_fit(
        self, trainer: L.Trainer, per_batch: float, done_in_epoch: int, last: int, limit: float
    ) -> int:
        """The most epochs (at least the current one, at most ``last``, the configured run) whose predicted
        end lies within ``limit`` seconds of training."""
        assert self._budget is not None
        batches = trainer.num_training_batches
        current = trainer.current_epoch + 1  # epochs counted up to and with the current one
        if not math.isfinite(batches) or current >= last:
            return max(last, current)
        validation = self._validation_seconds(trainer)
        epoch = batches * per_batch + validation
        now = self._offset + _clock() - self._started
        finish_current = now + (batches - done_in_epoch) * per_batch + validation
        more = math.floor((limit - finish_current) / epoch) if epoch > 0 else last
        return min(max(current + max(more, 0), current), last)

    def _steps_that_fit(self, trainer: L.Trainer, per_batch: float, planned: int, limit: float) -> int:
        """The most optimiser steps, a multiple of ``granularity`` (at least the first multiple not yet
        reached, at most ``planned``, the configured run), whose predicted end lies within ``limit`` seconds
        of training; a run without a finite epoch (an endless loader) keeps its length."""
        assert self._budget is not None and self.granularity is not None
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            return planned
        per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)  # optimiser steps an epoch
        per_step = per_batch * batches / per_epoch
        validation = self._validation_seconds(trainer)
        done = trainer.global_step
        now = self._offset + _clock() - self._started
        least = -(-max(done, 1) // self.granularity) * self.granularity
        candidates = [*range(least, planned, self.granularity), planned]  # the configured end included
        best = candidates[0]
        for steps in candidates:
            # a validation at every epoch end up to the stop, and one more where it falls mid-epoch
            epochs_ended = math.floor(steps / per_epoch + 1e-9)
            passes = epochs_ended - trainer.current_epoch + (0 if _whole(steps / per_epoch) else 1)
            if now + (steps - done) * per_step + passes * validation > limit:
                break
            best = steps
        return best

    def _validation_seconds(self, trainer: L.Trainer) -> float:
        """A validation pass, averaged over the epochs: the last one measured in training, else the fastest
        sanity-check batch times the validation batches."""
        every = trainer.check_val_every_n_epoch or 1
        if self._val_pass is not None:
            return self._val_pass / every
        return (self._val_batch or 0.0) * _finite_sum(trainer.num_val_batches) / every

    # ---------------------------------------------------------------------------------------- applying
    def _apply(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        *,
        previous: int | None = None,
        per_batch: float = 0.0,
        renewed: bool = False,
    ) -> None:
        """Set the trainer's ends and the task's schedule to the plan; ``previous`` (the length it replaces)
        also prints the one line that says so, and ``None`` (a resumed run) prints nothing."""
        plan = self.plan
        assert plan is not None
        trainer.fit_loop.max_epochs = plan["epochs"]
        if plan.get("granularity", 0):  # a resumed run starts no step past the plan; the stop that
            trainer.fit_loop.epoch_loop.max_steps = plan["steps"]  # validates is on_train_batch_end's
        fit = getattr(pl_module, "fit_to_length", None)
        changed = fit(plan["steps"], previous or plan["planned_steps"]) if callable(fit) else []
        fit_sampling = getattr(pl_module, "fit_sampling_to_length", None)
        if self.fit_sampling and callable(fit_sampling):
            changed = [*changed, *fit_sampling(plan["steps"], plan["planned_steps"])]
        if previous is not None and trainer.is_global_zero:
            assert self._budget is not None
            if not plan.get("granularity", 0):
                what = f"{plan['epochs']} of {plan['planned_epochs']} epochs"
            else:
                share = plan["steps"] * plan["planned_epochs"] / plan["planned_steps"]
                what = f"{plan['steps']} of {plan['planned_steps']} steps ({share:.1f} epochs)"
            log.warning(
                "time budget: %s %sfit in max_time %s at %.2f s a step; %s",
                what,
                "now " if renewed else "",
                _duration(self._budget),
                per_batch,
                "; ".join(changed) if changed else "the learning-rate schedule is kept",
            )

    # ------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"decided": self.decided, "plan": dict(self.plan) if self.plan is not None else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.decided = self._resumed = bool(state_dict.get("decided", False))
        plan = state_dict.get("plan")
        self.plan = {key: int(value) for key, value in plan.items()} if isinstance(plan, dict) else None


def _whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-9


def _finite_sum(counts: list[int | float]) -> float:
    return float(sum(count for count in counts if math.isfinite(count)))


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
