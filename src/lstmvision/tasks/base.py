"""The base of every task: the injected network, hyperparameters, optimiser and scheduler, run folder.

:class:`Task` holds what the prediction, classification and captioning tasks share, once:

- the network is injected (``model``), never built here, and left out of the saved hyperparameters;
- the hyperparameters are saved as plain values only (an optimiser or schedule given as a Python object
  is written as its ``class_path``/``init_args``), so checkpoints load with ``weights_only=True``;
- the optimiser and the learning-rate scheduler are LightningCLI callables (``optimizer``,
  ``lr_scheduler``), so any torch optimiser and scheduler is reachable from YAML; schedulers that need
  the run's length get it from the trainer, and ReduceLROnPlateau watches the task's monitor
  (docs/optimisers.md);
- the non-finite-loss policy, ``torch.compile`` on request, the run folder and the default checkpoints
  (``last.ckpt`` and the best by the task's monitor);
- on request (``ema_decay``), an exponential moving average of the weights, updated after every
  optimiser step, evaluated by validation, test and predict and kept in the checkpoints
  (:mod:`lstmvision.tasks.averaging`).

It also keeps the table of the arguments the tasks no longer take and where each one went, so that an
old config is told where to put a key instead of only that the key is unknown.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lstmvision.tasks.averaging import CHECKPOINT_KEY, AverageGuard, WeightAverage, check_decay
from lstmvision.tasks.compiling import match_run_layout
from lstmvision.tasks.outputs import default_checkpoints, run_dir
from lstmvision.tasks.reliability import NonFinitePolicy, finite_loss

__all__ = ["MOVED_ARGUMENTS", "Interval", "Task", "moved_argument", "plain_config"]

Interval = Literal["auto", "step", "epoch"]

_DOCS = "(docs/optimisers.md)"
_COSINE = "{class_path: torch.optim.lr_scheduler.CosineAnnealingLR, init_args: {T_max: 0}}"
_PLATEAU = "{class_path: torch.optim.lr_scheduler.ReduceLROnPlateau"

# the tasks' arguments before issue 17 -> where each one lives now (one line each, shown by the CLI)
MOVED_ARGUMENTS: dict[str, str] = {
    "lr": f"use `optimizer: {{class_path: torch.optim.Adam, init_args: {{lr: ...}}}}` {_DOCS}",
    "weight_decay": (
        f"use `optimizer: {{class_path: torch.optim.AdamW, init_args: {{weight_decay: ...}}}}` {_DOCS}"
    ),
    "momentum": f"use `optimizer: {{class_path: torch.optim.SGD, init_args: {{momentum: ...}}}}` {_DOCS}",
    "lr_schedule": (
        f"use `lr_scheduler: {_COSINE}` for cosine, `lr_scheduler: {_PLATEAU}}}` for plateau, "
        f"`lr_scheduler: null` for constant {_DOCS}"
    ),
    "plateau_patience": f"use `lr_scheduler: {_PLATEAU}, init_args: {{patience: ...}}}}` {_DOCS}",
    "plateau_factor": f"use `lr_scheduler: {_PLATEAU}, init_args: {{factor: ...}}}}` {_DOCS}",
}

# the values the old `optimizer` key took -> the optimiser class that replaces each
_OPTIMIZER_NAMES = {"adam": "torch.optim.Adam", "adamw": "torch.optim.AdamW", "sgd": "torch.optim.SGD"}


def moved_argument(key: str, value: Any = None) -> str | None:
    """The one-line message for a task argument that moved (``optimizer`` only when ``value`` is an old
    name such as ``"adam"``), or None when ``key`` is not one of them."""
    if key == "optimizer" and isinstance(value, str) and value.strip().lower() in _OPTIMIZER_NAMES:
        target = _OPTIMIZER_NAMES[value.strip().lower()]
        return f"`optimizer: {value}` moved: use `optimizer: {{class_path: {target}}}` {_DOCS}"
    if key in MOVED_ARGUMENTS:
        return f"`{key}` moved: {MOVED_ARGUMENTS[key]}"
    return None


class _Unwritable:
    """Marks a value that has no plain-value form (a lambda, an arbitrary object)."""


_UNWRITABLE = _Unwritable()


def _class_path(cls: type) -> str:
    """The shortest import path of a class: ``torch.optim.SGD`` rather than ``torch.optim.sgd.SGD``."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts)):
        package = ".".join(parts[:end])
        if getattr(sys.modules.get(package), cls.__qualname__, None) is cls:
            return f"{package}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _factory_class(factory: Any) -> type | None:
    """The class a factory builds: the class itself, or the class inside a ``functools.partial`` (as a
    user writes it, or as jsonargparse makes it from ``class_path``/``init_args``); None for a lambda."""
    if isinstance(factory, type):
        return factory
    if isinstance(factory, functools.partial):
        return next((a for a in (factory.func, *factory.args) if isinstance(a, type)), None)
    return None


def _given_keywords(factory: Any) -> dict[str, Any]:
    return dict(factory.keywords) if isinstance(factory, functools.partial) else {}


def plain_config(value: Any) -> Any:
    """``value`` as plain values: scalars and containers as they are, a class or a ``functools.partial`` of
    one as ``{"class_path", "init_args"}``, an object with an ``init_args()`` method likewise. A value
    with no such form (a lambda) gives a private marker that :class:`Task` leaves out of ``hparams``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [plain_config(v) for v in value]
        return _UNWRITABLE if any(i is _UNWRITABLE for i in items) else items
    if isinstance(value, Mapping):
        pairs = {str(k): plain_config(v) for k, v in value.items()}
        return _UNWRITABLE if any(v is _UNWRITABLE for v in pairs.values()) else pairs
    cls = _factory_class(value)
    if cls is not None:
        init_args = plain_config(_given_keywords(value))
        if init_args is _UNWRITABLE:
            return _UNWRITABLE
        return {"class_path": _class_path(cls), "init_args": init_args}
    describe = getattr(value, "init_args", None)
    if callable(describe):
        init_args = plain_config(describe())
        if init_args is not _UNWRITABLE:
            return {"class_path": _class_path(type(value)), "init_args": init_args}
    return _UNWRITABLE


class Task(L.LightningModule):
    """The base of the lstmvision tasks (see the module docstring).

    A subclass sets :attr:`monitor` and :attr:`monitor_mode` (the validation metric that picks the best
    checkpoint and drives ReduceLROnPlateau), validates its own arguments, then calls
    ``super().__init__`` with the shared ones below; its own arguments are saved with them.

    Args:
        model: the network (an ``nn.Module``), injected from the config's ``class_path``/``init_args``.
        optimizer: builds the optimiser from the parameters: a class (``torch.optim.Adam``), a
            ``functools.partial``, a lambda, or in YAML ``{class_path: torch.optim.SGD, init_args: {...}}``.
        lr_scheduler: builds the learning-rate scheduler from the optimiser (None: a constant rate).
            A ``total_steps`` (OneCycleLR) or ``T_max`` (CosineAnnealingLR) that is not given (or is 0)
            is the run's length, ``trainer.estimated_stepping_batches``; a ReduceLROnPlateau without a
            ``monitor`` of its own watches :attr:`monitor`, in its direction.
        lr_scheduler_interval: when the scheduler steps: ``"auto"`` steps per batch a scheduler whose
            length is counted in steps (OneCycleLR, and any whose length the task filled in) and per
            epoch any other; ``"step"`` and ``"epoch"`` force one.
        on_nonfinite_loss: a NaN/inf training loss ``"raise"``s ``FloatingPointError`` naming the step,
            or ``"skip"``s the batch (no optimiser step) with a warning, counted in ``skipped_batches``.
        compile: compile the network with ``torch.compile`` once, when the trainer sets the task up
            (:meth:`compile_network_once` says how; docs/precision.md).
        ema_decay: keep an exponential moving average of the trainable weights with this constant decay
            in (0, 1) (the E3D-LSTM release's 0.9995), updated after every optimiser step; validation,
            test and predict use the average, checkpoints keep it and a resumed run continues it
            (:class:`~lstmvision.tasks.averaging.WeightAverage`, docs/optimisers.md). None: no average.
        plain_hyperparameters: a subclass's own arguments that are objects (a schedule), to be saved
            as ``class_path``/``init_args``.
    """

    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[Literal["min", "max"]] = "min"

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: OptimizerCallable,
        lr_scheduler: LRSchedulerCallable | None,
        lr_scheduler_interval: Interval = "auto",
        on_nonfinite_loss: NonFinitePolicy = "raise",
        compile: bool = False,
        ema_decay: float | None = None,
        plain_hyperparameters: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        ema_decay = check_decay(ema_decay)
        if not isinstance(model, nn.Module):
            raise ValueError(f"{name} needs the network as an nn.Module, got {type(model).__name__}")
        for key, value in (("optimizer", optimizer), ("lr_scheduler", lr_scheduler)):
            if isinstance(value, str):
                moved = moved_argument(key, value) or (
                    f"`{key}: {value}` is not a class: give `{key}: {{class_path: ...}}` {_DOCS}"
                )
                raise ValueError(moved)
            if value is not None and not callable(value):
                raise ValueError(
                    f"{name}: {key} must build the {key.replace('_', ' ')} (a class, a functools.partial or "
                    f"a function), got {type(value).__name__}"
                )
        if optimizer is None:
            raise ValueError(f"{name}: optimizer must build the optimiser, got None")
        if lr_scheduler_interval not in ("auto", "step", "epoch"):
            raise ValueError(
                f"lr_scheduler_interval must be 'auto', 'step' or 'epoch', got {lr_scheduler_interval!r}"
            )
        if on_nonfinite_loss not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite_loss must be 'raise' or 'skip', got {on_nonfinite_loss!r}")
        self._save_plain_hyperparameters(
            {"optimizer": optimizer, "lr_scheduler": lr_scheduler, **(plain_hyperparameters or {})}
        )
        self.model = model
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval: Interval = lr_scheduler_interval
        self._filled_length: str | None = None  # the scheduler argument set to the run's length, if any
        self.on_nonfinite_loss: NonFinitePolicy = on_nonfinite_loss
        self.skipped_batches = 0
        # not `self.compile`: that is nn.Module's compile() method
        self.compile_network = compile
        self._compiled = False
        self.ema_decay = ema_decay
        # created after the network is a submodule, so that the averaged names are the task's own
        self.weight_average = None if ema_decay is None else WeightAverage(self, ema_decay)

    def _save_plain_hyperparameters(self, objects: Mapping[str, Any]) -> None:
        # the subclass's arguments (Lightning collects them from every __init__ up the class hierarchy,
        # or takes the CLI's config), less the network and this class's own plumbing; the objects
        # among them are saved once more as plain values, or not at all when they have no such form
        ignore = ["model", "plain_hyperparameters", *objects]
        self.save_hyperparameters(ignore=ignore)
        plain = {key: plain_config(value) for key, value in objects.items()}
        written = {key: value for key, value in plain.items() if value is not _UNWRITABLE}
        if written:
            self.save_hyperparameters(written)

    # ----------------------------------------------------------------------------------------- training
    def finite(self, loss: Tensor) -> bool:
        """Apply ``on_nonfinite_loss`` to a training loss: False means skip the batch (return None)."""
        return finite_loss(self, loss, self.on_nonfinite_loss)

    def compile_network_once(self) -> None:
        """Compile the network in place (parameter names and checkpoints do not change); a subclass may
        compile a part of it instead (the prediction task compiles one time step)."""
        self.model.compile()

    def configure_model(self) -> None:
        # Lightning calls this before every fit/validate/test/predict, before DDP wraps the network and the
        # optimizers exist: the cells' weights take their convolutions' layout at this run's precision
        # (docs/precision.md, "Weight layout"); the network is compiled on the first call only
        if self._trainer is not None:
            match_run_layout(self, self._trainer)
        if self.compile_network and not self._compiled:
            self.compile_network_once()
            self._compiled = True

    # ----------------------------------------------------------------------------------- weight average
    def on_fit_start(self) -> None:
        if self.weight_average is not None:
            self.weight_average.start()  # from the weights the run starts with, unless resumed

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        skipped = self.skipped_batches
        super().optimizer_step(*args, **kwargs)
        # a batch skipped for a non-finite loss took no step: the average must not move either
        if self.weight_average is not None and self.skipped_batches == skipped:
            self.weight_average.update()

    def _use_average(self) -> None:
        if self.weight_average is not None:
            self.weight_average.swap_in()

    def _use_training_weights(self) -> None:
        if self.weight_average is not None:
            self.weight_average.swap_out()

    # validation, test and predict evaluate the average; training goes on from its own weights
    on_validation_start = on_test_start = on_predict_start = _use_average
    on_validation_end = on_test_end = on_predict_end = _use_training_weights

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        average = self.weight_average
        if average is None:
            return
        checkpoint[CHECKPOINT_KEY] = average.state_dict()
        # a checkpoint saved at the end of validation (ModelCheckpoint runs before this task's
        # on_validation_end) must hold the training weights, not the average that is swapped in
        kept = average.training_weights()
        if kept is not None:
            state = checkpoint.get("state_dict", {})
            for key, tensor in kept.items():
                if key in state:
                    state[key] = tensor.detach().clone()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY)
        if self.weight_average is not None and isinstance(saved, Mapping):
            self.weight_average.load_state_dict(saved)

    # ---------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must build a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler, by_step = self._build_scheduler(optimizer)
        interval = self.lr_scheduler_interval
        if interval == "auto":
            interval = "step" if by_step else "epoch"
        config: dict[str, Any] = {"scheduler": scheduler, "interval": interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitor = getattr(scheduler, "monitor", None) or self.monitor
            if monitor == self.monitor and scheduler.mode != self.monitor_mode:
                raise ValueError(
                    f"the ReduceLROnPlateau scheduler has mode={scheduler.mode!r} but {monitor} is "
                    f"{'maximised' if self.monitor_mode == 'max' else 'minimised'}: give "
                    f"mode={self.monitor_mode!r}"
                )
            config["monitor"] = monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _build_scheduler(self, optimizer: torch.optim.Optimizer) -> tuple[Any, bool]:
        """The scheduler, with the arguments it leaves to the task filled in, and whether it counts steps."""
        factory = self.lr_scheduler_factory
        assert factory is not None  # checked by the caller
        cls = _factory_class(factory)
        given = _given_keywords(factory)
        fill: dict[str, Any] = {}
        by_step = False
        if cls is not None:
            parameters = inspect.signature(cls).parameters
            if issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau) and "monitor" not in parameters:
                fill["mode"] = self.monitor_mode  # the task's monitor decides the direction
            if issubclass(cls, torch.optim.lr_scheduler.OneCycleLR):
                by_step = True  # its lengths count optimiser steps whichever way they are given
            length = [
                key
                for key in ("total_steps", "T_max")
                if key in parameters
                and not given.get(key)
                and not (key == "total_steps" and (given.get("epochs") or given.get("steps_per_epoch")))
            ]
            if length:
                fill[length[0]] = self._run_length(cls, length[0])
                by_step = True
                self._filled_length = length[0]
        scheduler = factory(optimizer, **fill)
        return scheduler, by_step

    def _run_length(self, cls: type, key: str) -> int:
        steps = self.trainer.estimated_stepping_batches
        if steps == float("inf"):
            raise ValueError(
                f"{cls.__name__}'s {key} is the run's length, but the trainer sets no end (max_epochs=-1, "
                f"no max_steps): give {key} or an end to the run"
            )
        return max(int(steps), 1)

    def fit_to_length(self, steps: int, planned: int) -> list[str]:
        """Make a learning-rate schedule that spans the whole run span ``steps`` optimiser steps instead of
        the ``planned`` ones the trainer's ends give (:class:`~lstmvision.tasks.budget.TimeBudget` calls it
        when ``max_time`` would cut the run); returns what it changed, or kept, one phrase each.

        A CosineAnnealingLR whose ``T_max`` the task filled in gets ``T_max = steps``: its recursive form
        carries on from the current learning rate and reaches ``eta_min`` at the new end. A ``T_max`` or
        ``total_steps`` given in the config, and OneCycleLR (whose phases are fixed when it is built), are
        kept as they are."""
        if steps < 1 or planned < 1:
            raise ValueError(f"a run's length must be >= 1 step, got {steps} of {planned}")
        configs = self.trainer.lr_scheduler_configs if self._trainer is not None else []
        if not configs or self._filled_length is None:
            return []
        scheduler = configs[0].scheduler
        name = type(scheduler).__name__
        if (
            isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
            and configs[0].interval == "step"
        ):
            scheduler.T_max = steps
            return [f"the learning rate anneals over {steps} steps instead of {planned}"]
        return [f"{name} keeps its {self._filled_length} (only a CosineAnnealingLR is fitted)"]

    # ------------------------------------------------------------------------------------ outputs, runs
    def run_folder(self) -> Path | None:
        """The run directory (a collective under DDP: every rank must ask; see :func:`run_dir`)."""
        return run_dir(self._trainer)

    def configure_callbacks(self) -> list[Callback]:
        # last.ckpt and the best checkpoint by the task's monitor, unless the user configured one
        callbacks = default_checkpoints(self.trainer, self.monitor, self.monitor_mode)
        if self.weight_average is not None:
            callbacks.append(AverageGuard(self.weight_average))
        return callbacks
