"""Where a task writes (private): its run directory and the checkpoints it keeps by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.callbacks import Callback, ModelCheckpoint


def default_checkpoints(trainer: Any, monitor: str, mode: Literal["min", "max"]) -> list[Callback]:
    """``last.ckpt`` (for resuming) and the best checkpoint by ``monitor``, unless the trainer already has
    a ``ModelCheckpoint`` with a monitor: the user's choice wins."""
    if any(isinstance(cb, ModelCheckpoint) and cb.monitor for cb in getattr(trainer, "callbacks", [])):
        return []
    best = ModelCheckpoint(
        monitor=monitor,
        mode=mode,
        save_last=True,
        filename="best-{epoch:03d}-{step:06d}",
        auto_insert_metric_name=False,
    )
    return [best]


def run_dir(trainer: Any) -> Path | None:
    """The run directory of ``trainer`` (its logger's version folder, else its root), or None without one."""
    if trainer is None:
        return None
    directory = trainer.log_dir or trainer.default_root_dir
    return Path(directory) if directory else None
