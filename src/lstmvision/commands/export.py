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
from pathlib import Path, PurePath
from typing import Any

from lstmvision.checkpoints import Weights, load_network
from lstmvision.models.pretrained import CONFIG_FILE, WEIGHTS_FILE, save_pretrained

__all__ = ["FORMATS", "export_checkpoint", "main"]

log = logging.getLogger(__name__)

FORMATS = ("safetensors", "onnx")


def _default_out(checkpoint: Path) -> Path:
    # <run>/checkpoints/last.ckpt -> <run>/export/last/
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run / "export" / checkpoint.stem


def _json_value(value: Any) -> Any:
    """``value`` as JSON values (tuples as lists, paths as strings), or None when it is something else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_json_value(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    if isinstance(value, Mapping):
        out = {str(k): _json_value(v) for k, v in value.items()}
        return None if any(out[str(k)] is None and v is not None for k, v in value.items()) else out
    return None


def _training_data(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What the checkpoint says of the training data, for ``forecast``/``classify --pretrained``: the
    data module's ``class_path``/``init_args`` (its saved hyper-parameters) and the ``class_names``."""
    found: dict[str, Any] = {}
    saved = checkpoint.get("datamodule_hyper_parameters")
    if isinstance(saved, Mapping) and isinstance(saved.get("_class_path"), str):
        args = {str(k): _json_value(v) for k, v in saved.items() if not str(k).startswith("_")}
        found["data"] = {
            "class_path": saved["_class_path"],
            # an argument that is no JSON value (an object) is left out: it cannot be written
            "init_args": {k: v for k, v in args.items() if v is not None or saved[k] is None},
        }
    names = checkpoint.get("class_names")
    if isinstance(names, (list, tuple)):
        found["class_names"] = [str(n) for n in names]
    return found


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    format: str = "safetensors",
    config: str | os.PathLike[str] | None = None,
    trusted_prefixes: Sequence[str] = (),
    weights: Weights = "average",
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
        weights: for a run with ``ema_decay``, ``"average"`` (the default: the weights its validation and
            test scored) or ``"training"``; ``model.json`` records which (``weights``).

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
    loaded = load_network(ckpt, config=config, trusted_prefixes=trusted_prefixes, weights=weights)
    model, checkpoint_dict, spec, config_file, task_class = loaded[:5]
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
        "weights": loaded.weights,
        **_training_data(checkpoint_dict),
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
    parser.add_argument(
        "--weights",
        choices=("average", "training"),
        default="average",
        help="for a run with ema_decay: its weight average (default; what validation and test scored) or "
        "its training weights",
    )
    args = parser.parse_args(argv)
    folder = export_checkpoint(
        args.checkpoint,
        args.out,
        format=args.format,
        config=args.config,
        trusted_prefixes=args.trust,
        weights=args.weights,
    )
    if args.format == "onnx":
        print(f"exported {args.checkpoint}:\n  {folder / 'model.onnx'}")
    else:
        print(f"exported {args.checkpoint}:\n  {folder / WEIGHTS_FILE}\n  {folder / CONFIG_FILE}")
    return folder
