"""Where a task writes (private): its run directory and the checkpoints it keeps by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch.distributed as dist
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
    """The run directory of ``trainer`` (its logger's version folder, else its root), or None without one.

    Under DDP this is a collective (``Trainer.log_dir`` broadcasts rank 0's folder): every rank must call
    it, never rank 0 alone."""
    if trainer is None:
        return None
    directory = trainer.log_dir or trainer.default_root_dir
    return Path(directory) if directory else None


def gather_on_rank_zero(trainer: Any, items: list[Any]) -> list[Any]:
    """The ``items`` of every process in rank order on rank 0 (a collective: every rank must call it);
    other ranks get their own back. The test loaders give rank r the r-th contiguous block of the set
    (``lstmvision.data._sharding``), so rank order is the set's order."""
    world = getattr(trainer, "world_size", 1)
    if world == 1 or not (dist.is_available() and dist.is_initialized()):
        return items
    parts: list[Any] | None = [None] * world if trainer.is_global_zero else None
    dist.gather_object(items, parts, dst=0)
    return [item for part in parts for item in part] if parts is not None else items
