"""``lstmvision export``: a Lightning checkpoint of a run -> ``model.safetensors`` + ``model.json``.

The checkpoint is read with ``torch.load(weights_only=True)``; the network's class and constructor
arguments come from the checkpoint's own record (:mod:`lstmvision.checkpoints`; a ``--config`` given
beside it must agree), or, for a checkpoint written before checkpoints carried one, from the run's
``config.yaml`` (two levels above ``<run>/checkpoints/last.ckpt``) or ``--config``. The exported folder loads without Lightning
through :func:`lstmvision.models.load_pretrained`. See docs/export.md.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from torch import nn

from lstmvision._io import safe_load
from lstmvision.checkpoints import RECORD_KEY, check_network, network_record
from lstmvision.models.predictor import drop_moved_arguments
from lstmvision.models.pretrained import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    instantiate_model,
    save_pretrained,
)

__all__ = ["FORMATS", "LoadedNetwork", "export_checkpoint", "load_network", "main"]

log = logging.getLogger(__name__)

FORMATS = ("safetensors", "onnx")
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


def _default_out(checkpoint: Path) -> Path:
    # <run>/checkpoints/last.ckpt -> <run>/export/last/
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run / "export" / checkpoint.stem


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


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    format: str = "safetensors",
    config: str | os.PathLike[str] | None = None,
    trusted_prefixes: Sequence[str] = (),
) -> Path:
    """Export the network of a Lightning checkpoint; return the folder holding the exported files.

    Args:
        checkpoint: a ``.ckpt`` written by ``lstmvision fit``.
        out: output folder; by default ``<run>/export/<checkpoint name>/``.
        format: ``"safetensors"`` (``model.safetensors`` + ``model.json``) or ``"onnx"`` (``model.onnx``
            with dynamic batch, height and width, and time where the network allows; needs the
            ``onnx`` extra; see :func:`lstmvision.export_onnx.export_network`).
        config: the run's YAML; by default ``config.yaml`` of the checkpoint's run directory.
        trusted_prefixes: packages whose classes the config may name besides ``lstmvision.`` and
            ``torch.nn.`` (see ``load_pretrained``).

    Raises:
        FileNotFoundError: the checkpoint or the config is missing.
        ImportError: ``format="onnx"`` without onnx and onnxruntime installed.
        ValueError: unknown format, a checkpoint holding objects other than tensors and plain values
            (refused, never executed), a config without ``model.init_args.model``, or weights that
            do not fit the network the config describes; every message names the file.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; supported: {', '.join(FORMATS)}")
    ckpt = Path(checkpoint)
    model, _, spec, config_file, task_class = load_network(
        ckpt, config=config, trusted_prefixes=trusted_prefixes
    )
    folder = Path(out) if out is not None else _default_out(ckpt)
    if format == "onnx":
        # imported here: onnx and onnxruntime are an optional extra
        from lstmvision.export_onnx import ONNX_FILE, export_network

        # a network built for one frame size (a flatten head's image_size) is traced at that size
        image_size = (spec.get("init_args") or {}).get("image_size")
        frame_size: int | tuple[int, int] = 64
        if isinstance(image_size, int):
            frame_size = image_size
        elif isinstance(image_size, (list, tuple)) and len(image_size) == 2:
            frame_size = (int(image_size[0]), int(image_size[1]))
        written = export_network(model, folder / ONNX_FILE, frame_size=frame_size)
        log.info("exported %s to %s (dynamic axes %s)", ckpt, written.path, written.dynamic_axes)
        return folder
    metadata = {
        "source_checkpoint": str(ckpt.resolve()),
        "source_config": str(config_file.resolve()) if config_file is not None else "checkpoint record",
        "task_class": task_class,
    }
    init_args = spec.get("init_args") or {}
    save_pretrained(
        model, folder, init_args=init_args, class_path=spec["class_path"], metadata=metadata, check=False
    )
    log.info("exported %s to %s", ckpt, folder)
    return folder


def main(argv: list[str] | None = None) -> Path:
    """``lstmvision export --checkpoint CKPT [--format safetensors] [--config YAML] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="lstmvision export",
        description="Export the network of a checkpoint written by `lstmvision fit` to safetensors "
        f"({WEIGHTS_FILE} + {CONFIG_FILE}); load it with lstmvision.models.load_pretrained.",
    )
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `lstmvision fit`")
    parser.add_argument(
        "--format",
        default="safetensors",
        help="export format: safetensors (for load_pretrained) or onnx (model.onnx, for onnxruntime)",
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: <run>/export/<checkpoint name>/)"
    )
    parser.add_argument(
        "--config", default=None, help="the run's YAML (default: config.yaml of the checkpoint's run)"
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PREFIX",
        help="also build classes under this package (e.g. timm.); lstmvision. and torch.nn. always are",
    )
    args = parser.parse_args(argv)
    folder = export_checkpoint(
        args.checkpoint,
        args.out,
        format=args.format,
        config=args.config,
        trusted_prefixes=args.trust,
    )
    if args.format == "onnx":
        print(f"exported {args.checkpoint}:\n  {folder / 'model.onnx'}")
    else:
        print(f"exported {args.checkpoint}:\n  {folder / WEIGHTS_FILE}\n  {folder / CONFIG_FILE}")
    return folder
