"""The checkpoints every task keeps unless the user configured their own (private)."""

from __future__ import annotations

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
