"""What a checkpoint says about itself: the network it holds, as class path and constructor arguments.

``lstmvision fit`` adds :class:`RecordNetwork` to the trainer, so every checkpoint it writes carries,
under the key ``"lstmvision"``, the network's ``{"class_path", "init_args"}`` (plain values only, so
``torch.load(weights_only=True)`` reads it), the task's class path and the lstmvision version. Export,
``test --ckpt_path X`` and :func:`lstmvision.models.load_pretrained` rebuild the network from that
record; a configuration that says otherwise is refused by :func:`check_network` with the differing keys
named, instead of failing later on a tensor size mismatch. See docs/runs.md.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lstmvision.models.predictor import drop_moved_arguments

__all__ = [
    "RECORD_KEY",
    "NetworkMismatchError",
    "RecordNetwork",
    "check_network",
    "network_differences",
    "network_record",
]

RECORD_KEY = "lstmvision"


class NetworkMismatchError(ValueError):
    """A configuration names a different network than the one a checkpoint holds."""


def _package_version() -> str:
    try:
        return version("lstmvision")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class RecordNetwork(Callback):
    """Write the network's class path and constructor arguments into every checkpoint saved.

    Args:
        network: ``{"class_path": ..., "init_args": {...}}`` of the task's network, plain values only.
        task: the task's class path (``lstmvision.tasks.VideoPredictionTask`` ...), or None.
    """

    def __init__(self, network: Mapping[str, Any], task: str | None = None) -> None:
        if "class_path" not in network:
            raise ValueError(f"network needs a 'class_path', got keys {sorted(network)}")
        self.network = copy.deepcopy(dict(network))
        self.task = task

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RECORD_KEY] = {
            "network": copy.deepcopy(self.network),
            "task": self.task,
            "lstmvision_version": _package_version(),
        }


def network_record(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``{"class_path", "init_args"}`` a checkpoint (as loaded) records, or None for an older file."""
    record = checkpoint.get(RECORD_KEY)
    network = record.get("network") if isinstance(record, Mapping) else None
    if not isinstance(network, Mapping) or "class_path" not in network:
        return None
    # arguments that later moved out of the networks (scheduled sampling) are dropped, with a note
    init_args = drop_moved_arguments(network.get("init_args") or {}, "checkpoint's network record")
    return {"class_path": network["class_path"], "init_args": init_args}


def network_differences(saved: Any, given: Any, prefix: str = "") -> list[str]:
    """Every dotted key at which two network specifications differ, with both values.

    A key present on one side only counts as a difference. Sequences compare as lists, so a tuple
    and a list of the same values are equal (YAML and jsonargparse give either)."""
    if isinstance(saved, Mapping) and isinstance(given, Mapping):
        found = []
        for key in sorted(set(saved) | set(given), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in saved:
                found.append(f"{where}: not in the checkpoint, config {given[key]!r}")
            elif key not in given:
                found.append(f"{where}: checkpoint {saved[key]!r}, not in the config")
            else:
                found.extend(network_differences(saved[key], given[key], where))
        return found
    if isinstance(saved, (list, tuple)) and isinstance(given, (list, tuple)):
        if len(saved) == len(given) and not any(network_differences(a, b) for a, b in zip(saved, given)):
            return []
    elif saved == given and (type(saved) is type(given) or _numbers(saved, given)):
        return []
    return [f"{prefix or 'network'}: checkpoint {saved!r}, config {given!r}"]


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))


def check_network(checkpoint: Mapping[str, Any], given: Mapping[str, Any], *, source: str | Path) -> None:
    """Refuse a configured network that differs from the one ``checkpoint`` records.

    Args:
        checkpoint: the loaded checkpoint (a checkpoint without a record is accepted: nothing to check).
        given: the configuration's ``{"class_path", "init_args"}`` of the network.
        source: the checkpoint file, for the message.

    Raises:
        NetworkMismatchError: naming each differing key with the checkpoint's and the config's value.
    """
    saved = network_record(checkpoint)
    if saved is None:
        return
    given = {"class_path": given.get("class_path"), "init_args": dict(given.get("init_args") or {})}
    differences = network_differences(saved, given, "model.init_args.model")
    if differences:
        shown = "; ".join(differences[:6]) + (
            f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
        )
        raise NetworkMismatchError(
            f"checkpoint {source} holds a different network than the config gives: {shown}. "
            "Use the run's own config.yaml (beside checkpoints/) or drop the differing keys"
        )
