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
import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import lightning as L
import yaml
from lightning.pytorch.callbacks import Callback
from torch import nn

from lstmvision._io import safe_load
from lstmvision.models.predictor import drop_moved_arguments
from lstmvision.models.pretrained import instantiate_model, load_pretrained, read_model_json
from lstmvision.models.zoo import resolve_pretrained

__all__ = [
    "AVERAGE_KEY",
    "RECORD_KEY",
    "LoadedNetwork",
    "NetworkMismatchError",
    "RecordNetwork",
    "Weights",
    "check_network",
    "check_pretrained_network",
    "load_network",
    "load_pretrained_network",
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


def network_differences(saved: Any, given: Any, prefix: str = "", *, label: str = "checkpoint") -> list[str]:
    """Every dotted key at which two network specifications differ, with both values.

    A key present on one side only counts as a difference. Sequences compare as lists, so a tuple
    and a list of the same values are equal (YAML and jsonargparse give either). ``label`` names the
    saved side in the lines (``"checkpoint"``, ``"weights"``)."""
    if isinstance(saved, Mapping) and isinstance(given, Mapping):
        found = []
        for key in sorted(set(saved) | set(given), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in saved:
                found.append(f"{where}: not in the {label}, config {given[key]!r}")
            elif key not in given:
                found.append(f"{where}: {label} {saved[key]!r}, not in the config")
            else:
                found.extend(network_differences(saved[key], given[key], where, label=label))
        return found
    if isinstance(saved, (list, tuple)) and isinstance(given, (list, tuple)):
        if len(saved) == len(given) and not any(network_differences(a, b) for a, b in zip(saved, given)):
            return []
    elif saved == given and (type(saved) is type(given) or _numbers(saved, given)):
        return []
    return [f"{prefix or 'network'}: {label} {saved!r}, config {given!r}"]


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
    _refuse_differences(
        saved,
        given,
        f"checkpoint {source}",
        "checkpoint",
        "Use the run's own config.yaml (beside checkpoints/) or drop the differing keys",
    )


def check_pretrained_network(
    spec: Mapping[str, Any], given: Mapping[str, Any], *, source: str, config_hint: str | None = None
) -> None:
    """Refuse a configured network that differs from the one pretrained weights were trained as.

    Args:
        spec: the ``{"class_path", "init_args"}`` the weights record (their ``model.json``).
        given: the configuration's network.
        source: what the weights are, for the message (``"zoo entry 'convlstm_demo'"``).
        config_hint: the config to use instead, when one is known (the zoo entry's).

    Raises:
        NetworkMismatchError: naming each differing key with the weights' and the config's value.
    """
    init_args: dict[str, Any] = dict(spec.get("init_args") or {})
    saved = {"class_path": spec.get("class_path"), "init_args": drop_moved_arguments(init_args, source)}
    advice = f"Use --config {config_hint}" if config_hint else "Use the config the weights were trained with"
    # save_pretrained writes a class's own module path, a config its public one: the same class
    _refuse_differences(
        _canonical(saved), _canonical(given), source, "weights", f"{advice} or drop the differing keys"
    )


def _canonical(value: Any) -> Any:
    """``value`` with each lstmvision/torch.nn class path written as the class's own module path."""
    if isinstance(value, Mapping):
        out = {key: _canonical(item) for key, item in value.items()}
        if isinstance(out.get("class_path"), str):
            out["class_path"] = _class_name(out["class_path"])
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def _class_name(path: str) -> str:
    if not path.startswith(("lstmvision.", "torch.nn.")):
        return path  # nothing else is imported to compare
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return path
    return f"{found.__module__}.{found.__qualname__}" if isinstance(found, type) else path


def _refuse_differences(
    saved: Mapping[str, Any], given: Mapping[str, Any], what: str, label: str, advice: str
) -> None:
    given = {"class_path": given.get("class_path"), "init_args": dict(given.get("init_args") or {})}
    differences = network_differences(saved, given, "model.init_args.model", label=label)
    if differences:
        shown = "; ".join(differences[:6]) + (
            f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
        )
        raise NetworkMismatchError(
            f"{what} holds a different network than the config gives: {shown}. {advice}"
        )


_PREFIX = "model."  # the tasks hold the network as `self.model`

#: Where a checkpoint keeps the weight average of a run with ``ema_decay`` (:mod:`lstmvision.tasks.averaging`).
AVERAGE_KEY = "lstmvision_weight_average"

#: Which weights of a checkpoint :func:`load_network` loads: the average where the run kept one (what its
#: validation, test and predict used), or the training weights.
Weights = Literal["average", "training"]


def _network_weights(saved: Mapping[str, Any], ckpt: Path, weights: Weights) -> tuple[dict[str, Any], str]:
    """The network's weights (names without the task's ``model.``) and which they are, in words."""
    if weights not in get_args(Weights):
        raise ValueError(f"weights must be 'average' or 'training', got {weights!r}")
    state = saved["state_dict"]
    found = {key[len(_PREFIX) :]: value for key, value in state.items() if key.startswith(_PREFIX)}
    if not found:
        raise ValueError(
            f"checkpoint {ckpt} has no '{_PREFIX}*' weights in its state_dict: not a lstmvision task"
        )
    average = saved.get(AVERAGE_KEY)
    shadow = average.get("shadow") if isinstance(average, Mapping) else None
    if weights == "training" or not isinstance(shadow, Mapping):
        return found, "training"
    for key, value in shadow.items():  # trainable parameters only: buffers stay the checkpoint's
        name = str(key)[len(_PREFIX) :]
        if not str(key).startswith(_PREFIX) or name not in found:
            raise ValueError(
                f"checkpoint {ckpt}: its weight average holds {key!r}, which the network does not have"
            )
        found[name] = value.to(found[name].dtype)
    return found, f"average (ema_decay {average['decay']}, {average['updates']} updates)"  # type: ignore[index]


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
    weights: str = "training"  # which weights: "training", or "average (ema_decay d, n updates)"


def load_network(
    checkpoint: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
    trusted_prefixes: Sequence[str] = (),
    weights: Weights = "average",
) -> LoadedNetwork:
    """The network of a checkpoint written by ``lstmvision fit``, built from the run's config (or
    ``config``) and loaded with the checkpoint's weights; see :func:`export_checkpoint` for the errors.

    A run with ``ema_decay`` keeps the average of its weights beside the training weights; ``weights``
    picks which are loaded: ``"average"`` (the default: what the run's validation and test scored) or
    ``"training"``. A checkpoint without an average always gives its training weights."""
    ckpt = Path(checkpoint)
    saved = safe_load(ckpt, what="checkpoint")
    state = saved.get("state_dict") if isinstance(saved, Mapping) else None
    if not isinstance(state, Mapping):
        keys = sorted(map(str, saved)) if isinstance(saved, Mapping) else type(saved).__name__
        raise ValueError(
            f"checkpoint {ckpt} has no 'state_dict' (a Lightning checkpoint has one); found {keys}"
        )
    network_weights, which = _network_weights(saved, ckpt, weights)
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
        model.load_state_dict(network_weights, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"checkpoint {ckpt} does not fit the {spec['class_path']} of {source}: {error}"
        ) from error
    return LoadedNetwork(model, dict(saved), spec, config_file, task_class, which)


def load_pretrained_network(
    value: str | os.PathLike[str], *, trusted_prefixes: Sequence[str] = ()
) -> LoadedNetwork:
    """The network of ``--pretrained NAME_OR_FOLDER`` (a model zoo entry, or an exported folder of one's
    own: :func:`lstmvision.models.zoo.resolve_pretrained`), digests checked, as a :class:`LoadedNetwork`
    whose ``checkpoint`` holds what ``model.json`` records of the training data (``data``,
    ``class_names``) in the places a checkpoint keeps them, for ``forecast`` and ``classify``."""
    found = resolve_pretrained(str(value))
    label = f"zoo entry {found.entry.name!r}" if found.entry is not None else f"exported folder {value}"
    checked = found.entry.sha256 if found.entry is not None else None  # resolve_pretrained hashed it
    model = load_pretrained(
        found.folder, trusted_prefixes=trusted_prefixes, source=label, checked_sha256=checked
    )
    document = read_model_json(found.folder)
    spec = {"class_path": document["class_path"], "init_args": dict(document.get("init_args") or {})}
    task = document.get("task_class")
    saved: dict[str, Any] = {RECORD_KEY: {"network": spec, "task": task}}
    data = document.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("class_path"), str):
        saved["datamodule_hyper_parameters"] = {
            "_class_path": data["class_path"],
            **(data.get("init_args") or {}),
        }
    if isinstance(document.get("class_names"), list):
        saved["class_names"] = document["class_names"]
    return LoadedNetwork(model, saved, spec, None, task if isinstance(task, str) else None)
