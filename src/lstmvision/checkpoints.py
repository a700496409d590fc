"""What a checkpoint says about itself: the network it holds, as class path and constructor arguments.

``lstmvision fit`` adds :class:`RecordNetwork` to the trainer, so every checkpoint it writes carries,
under the key ``"lstmvision"``, the network's ``{"class_path", "init_args"}`` (plain values only, so
``torch.load(weights_only=True)`` reads it), the task's class path and the lstmvision version. Export,
``test --ckpt_path X`` and :func:`lstmvision.models.load_pretrained` rebuild the network from that
record; a configuration that says otherwise is refused by :func:`check_network` with the differing keys
named, instead of failing later on a tensor size mismatch. :func:`load_network` rebuilds the network of
a checkpoint (from its record, or from the run's ``config.yaml`` for a checkpoint written before
checkpoints carried one). See docs/runs.md.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import yaml
from lightning.pytorch.callbacks import Callback
from torch import nn

from lstmvision._io import safe_load
from lstmvision.models.predictor import drop_moved_arguments
from lstmvision.models.pretrained import instantiate_model

__all__ = [
    "RECORD_KEY",
    "LoadedNetwork",
    "NetworkMismatchError",
    "RecordNetwork",
    "check_network",
    "load_network",
    "network_differences",
    "network_record",
]

RECORD_KEY = "lstmvision"

log = logging.getLogger(__name__)


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


_PREFIX = "model."  # the tasks hold the network as `self.model`


def _find_config(checkpoint: Path) -> Path:
    """The ``config.yaml`` LightningCLI saved for the run that wrote ``checkpoint``."""
    candidates = [checkpoint.parent.parent / "config.yaml", checkpoint.parent / "config.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"no config found for checkpoint {checkpoint}: looked for {looked}; give --config"
    )


def _model_spec(config: Path) -> tuple[dict[str, Any], str | None]:
    """The network's ``{"class_path", "init_args"}`` (``model.init_args.model``) and the task's class."""
    if not config.is_file():
        raise FileNotFoundError(f"config not found: {config}")
    try:
        document = yaml.safe_load(config.read_text())  # safe_load: plain values, never Python objects
    except yaml.YAMLError as error:
        raise ValueError(f"config {config} is not valid YAML: {error}") from error
    task = document.get("model") if isinstance(document, Mapping) else None
    task_args = task.get("init_args") if isinstance(task, Mapping) else None
    spec = task_args.get("model") if isinstance(task_args, Mapping) else None
    if isinstance(spec, str):  # jsonargparse also accepts a bare class path
        spec = {"class_path": spec}
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise ValueError(
            f"config {config} has no model.init_args.model with a class_path: the network's "
            "class_path/init_args inside the task, as `lstmvision fit` saves them"
        )
    task_class = task.get("class_path") if isinstance(task, Mapping) else None
    return dict(spec), task_class if isinstance(task_class, str) else None


class LoadedNetwork(NamedTuple):
    """The network of a checkpoint and where it came from."""

    model: nn.Module
    checkpoint: dict[str, Any]  # the whole checkpoint (tensors and plain values)
    spec: dict[str, Any]  # the network's class_path / init_args
    config: Path | None  # the config the network was built from; None: from the checkpoint's own record
    task_class: str | None


def load_network(
    checkpoint: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
    trusted_prefixes: Sequence[str] = (),
) -> LoadedNetwork:
    """The network of a checkpoint written by ``lstmvision fit``, built from the run's config (or
    ``config``) and loaded with the checkpoint's weights; see :func:`export_checkpoint` for the errors."""
    ckpt = Path(checkpoint)
    saved = safe_load(ckpt, what="checkpoint")
    state = saved.get("state_dict") if isinstance(saved, Mapping) else None
    if not isinstance(state, Mapping):
        keys = sorted(map(str, saved)) if isinstance(saved, Mapping) else type(saved).__name__
        raise ValueError(
            f"checkpoint {ckpt} has no 'state_dict' (a Lightning checkpoint has one); found {keys}"
        )
    weights = {key[len(_PREFIX) :]: value for key, value in state.items() if key.startswith(_PREFIX)}
    if not weights:
        raise ValueError(
            f"checkpoint {ckpt} has no '{_PREFIX}*' weights in its state_dict: not a lstmvision task"
        )
    record = network_record(saved)
    if record is not None:
        # a self-describing checkpoint (lstmvision.checkpoints): it says which network it holds; a
        # config given beside it may only agree
        spec, task_class, config_file = record, saved[RECORD_KEY].get("task"), None
        if config is not None:
            given, _ = _model_spec(Path(config))
            check_network(saved, given, source=ckpt)
    else:
        # a checkpoint written before checkpoints carried their network: the run's config.yaml says
        config_file = Path(config) if config is not None else _find_config(ckpt)
        spec, task_class = _model_spec(config_file)
        if task_class is None and isinstance(saved.get("hyper_parameters"), Mapping):
            task_class = saved["hyper_parameters"].get("_class_path")
    source = f"config {config_file}" if config_file is not None else f"checkpoint {ckpt}"
    if config_file is not None:  # what an export writes: without arguments that moved to the task
        spec = {**spec, "init_args": drop_moved_arguments(spec.get("init_args") or {}, source)}
    model = instantiate_model(spec, trusted_prefixes=trusted_prefixes, initial_weights=False, source=source)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"checkpoint {ckpt} does not fit the {spec['class_path']} of {source}: {error}"
        ) from error
    return LoadedNetwork(model, dict(saved), spec, config_file, task_class)
