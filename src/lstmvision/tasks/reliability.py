"""Runs that survive interruption (private): atomic checkpoints, graceful stop on a signal, exact resume.

- :class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder, flushes
  and fsyncs it, then renames it over the target, so a crash while saving never leaves a truncated
  ``last.ckpt``; it refuses to write a checkpoint whose weights or optimiser state hold NaN or inf.
- :class:`RunGuard` stops a fit on SIGINT/SIGTERM after the current batch, saves ``last.ckpt`` and
  raises :class:`RunInterrupted` (a second signal aborts at once); it stores the random number
  generators' states in every checkpoint and restores them on resume, so that resuming from an
  epoch-end checkpoint trains exactly as the uninterrupted run would have.
- :func:`finite_loss` applies a task's ``on_nonfinite_loss`` policy to a training loss.

docs/reliability.md describes the whole behaviour.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Literal, cast

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import Tensor

__all__ = [
    "AtomicCheckpointIO",
    "NonFiniteCheckpointError",
    "NonFinitePolicy",
    "RunGuard",
    "RunInterrupted",
    "finite_loss",
    "nonfinite_keys",
]

log = logging.getLogger(__name__)

NonFinitePolicy = Literal["raise", "skip"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# --------------------------------------------------------------------------------------------------
# Atomic, finite checkpoints
# --------------------------------------------------------------------------------------------------


def _tensors(value: Any, prefix: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{prefix}.{index}")


def nonfinite_keys(checkpoint: dict[str, Any]) -> list[str]:
    """Keys of the floating-point tensors holding NaN or inf in a checkpoint's weights and optimiser state."""
    found = []
    for section in ("state_dict", "optimizer_states"):
        for key, tensor in _tensors(checkpoint.get(section, {}), section):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                found.append(key)
    return found


class NonFiniteCheckpointError(ValueError):
    """A checkpoint was not written because its weights or optimiser state are not finite."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.<name>.tmp`` beside the target, flush + fsync, then ``os.replace`` onto it.

    A checkpoint whose weights or optimiser state hold NaN/inf is not written (the previous file stays):
    the error is logged with the offending keys. The last good checkpoint is never overwritten by a
    diverged one.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        target = Path(path)
        bad = nonfinite_keys(checkpoint)
        if bad:
            shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            log.error("checkpoint %s not written: non-finite values in %s", target, shown)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        try:
            with temporary.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)


def _fsync_directory(folder: Path) -> None:
    # the rename itself is durable only once the directory entry is on disk (POSIX; Windows has no dir fd)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Non-finite training loss
# --------------------------------------------------------------------------------------------------


def finite_loss(task: L.LightningModule, loss: Tensor, policy: NonFinitePolicy) -> bool:
    """True when ``loss`` is finite. Otherwise ``"raise"`` raises ``FloatingPointError`` naming the step;
    ``"skip"`` warns, counts the batch in ``task.skipped_batches`` (logged as ``train/skipped_batches``)
    and returns False: the task returns None, so Lightning makes no backward pass and no optimiser step."""
    if bool(torch.isfinite(loss)):
        return True
    step = task.global_step
    if policy == "raise":
        raise FloatingPointError(
            f"non-finite training loss {loss.item()} at step {step} (on_nonfinite_loss='raise'; "
            "'skip' skips such batches instead)"
        )
    skipped = int(getattr(task, "skipped_batches", 0)) + 1
    setattr(task, "skipped_batches", skipped)  # noqa: B010 - a plain int attribute, not a module
    log.warning(
        "non-finite training loss %s at step %d: batch skipped (%d skipped so far)",
        loss.item(),
        step,
        skipped,
    )
    task.log("train/skipped_batches", float(skipped))
    return False


# --------------------------------------------------------------------------------------------------
# Random number generators (as tensors and plain values, so checkpoints stay weights_only-loadable)
# --------------------------------------------------------------------------------------------------


def _rng_states() -> dict[str, Any]:
    # the legacy global generator: the one seed_everything seeds and old-style code draws from
    name, keys, position, has_gauss, cached = cast(tuple, np.random.get_state(legacy=True))  # noqa: NPY002
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            str(name),
            torch.from_numpy(keys.astype(np.int64)),
            int(position),
            int(has_gauss),
            float(cached),
        ],
        "python": list(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# --------------------------------------------------------------------------------------------------
# Graceful stop and exact resume
# --------------------------------------------------------------------------------------------------


class RunInterrupted(Exception):
    """A fit stopped on a signal after saving ``checkpoint`` (None when no checkpoint could be written)."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name
        where = f"last checkpoint: {checkpoint}" if checkpoint else "no checkpoint was written"
        super().__init__(f"training stopped on {name}; {where}")


def save_last_checkpoint(trainer: L.Trainer) -> Path:
    """Save ``last.ckpt`` into the folder of the first ``ModelCheckpoint`` that keeps one; return its path."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath:
            path = Path(callback.format_checkpoint_name({}, callback.CHECKPOINT_NAME_LAST))
            # the callback owns the file from now on: after a resume it overwrites it instead of
            # writing last-v1.ckpt beside it
            callback.last_model_path = str(path)
            break
    else:
        path = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


class RunGuard(Callback):
    """Save ``last.ckpt`` every n steps; stop on SIGINT/SIGTERM after the current batch with it saved;
    resume reproducibly.

    With ``every_n_steps`` > 0, ``last.ckpt`` (in the folder of the task's ``ModelCheckpoint``) is also
    written after every n-th training step, so a killed run loses at most n steps; the task's
    ``ModelCheckpoint`` still writes it at each epoch end. (A separate ``ModelCheckpoint`` cannot do this:
    Lightning drops the trainer's ``ModelCheckpoint`` callbacks when the task returns one.)

    While training runs (from ``on_train_start``) the first SIGINT or SIGTERM is only noted; after the
    current training batch (or at the end of the epoch when it arrives during validation) the callback
    saves ``last.ckpt`` and raises :class:`RunInterrupted`, which the ``lstmvision`` command turns into
    exit code 128 + signal number and a message saying how to resume. A second signal exits at once
    with the same code (checkpoint writes are atomic, so even that never leaves a truncated file).

    Every checkpoint also holds the torch, numpy and Python random states and the count of skipped
    non-finite batches; resuming restores them before the training data loader is created.
    """

    def __init__(self, every_n_steps: int = 0) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._module: L.LightningModule | None = None
        self._restored_skipped: int | None = None

    # ---------------------------------------------------------------------------------------- signals
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            sys.stderr.write(f"\n{name} again: aborting now\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        sys.stderr.write(f"\n{name}: saving last.ckpt after the current batch (send again to abort now)\n")
        sys.stderr.flush()

    def _install(self) -> None:
        if self._previous:
            return
        try:
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        except ValueError:  # not the main thread: signals cannot be handled here
            self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # installed after Lightning registered its own SIGTERM handler, so this one decides
        self.signum = None
        self._install()
        if self._restored_skipped is not None:
            setattr(pl_module, "skipped_batches", self._restored_skipped)  # noqa: B010
            self._restored_skipped = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def _stop_if_asked(self, trainer: L.Trainer) -> None:
        if self.signum is None:
            return
        path = save_last_checkpoint(trainer)
        # a refused (non-finite) checkpoint leaves the previous last.ckpt, if any: still the one to resume
        raise RunInterrupted(self.signum, path if path.is_file() else None)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._stop_if_asked(trainer)
        step = trainer.global_step
        if (
            self.every_n_steps
            and step
            and step % self.every_n_steps == 0
            and not getattr(trainer, "fast_dev_run", 0)
        ):
            save_last_checkpoint(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_asked(trainer)

    # ------------------------------------------------------------------------------- checkpoint state
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._module = pl_module

    def state_dict(self) -> dict[str, Any]:
        skipped = getattr(self._module, "skipped_batches", 0) if self._module is not None else 0
        return {"rng": _rng_states(), "skipped_batches": int(skipped)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # restored before the training data loader draws its seeds, exactly as the uninterrupted run
        # continued after saving (the sanity check in between runs with isolated random states)
        if "rng" in state_dict:
            _set_rng_states(state_dict["rng"])
        self._restored_skipped = int(state_dict.get("skipped_batches", 0))
