"""Exported models: a ``model.safetensors`` weights file and a ``model.json`` that says how to build it.

``model.json`` holds the network's ``class_path`` and ``init_args`` exactly as in a run's YAML (a nested
module, e.g. a CNN-LSTM's encoder, is again a ``{"class_path", "init_args"}`` mapping) plus where the
weights came from. Neither file can run code when read: safetensors holds raw tensors only, and a class
path is imported only when it lies under a trusted prefix (``lstmvision.`` and ``torch.nn.`` unless the
caller adds more) and names an ``nn.Module`` class. ``model.json`` also records the SHA-256 digest of
``model.safetensors``, checked on every load (docs/zoo.md). See docs/export.md.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from lstmvision.models.predictor import drop_moved_arguments

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_TRUSTED_PREFIXES",
    "WEIGHTS_FILE",
    "ChecksumError",
    "check_sha256",
    "instantiate_model",
    "load_pretrained",
    "read_model_json",
    "save_pretrained",
    "sha256_of",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"
DEFAULT_TRUSTED_PREFIXES: tuple[str, ...] = ("lstmvision.", "torch.nn.")

# constructor arguments naming a file of initial weights: an exported model carries all its weights,
# so these are cleared (the file may not exist where the model is loaded, and would be overwritten)
_WEIGHT_FILE_ARGS = ("weights", "pretrained_encoder")
_SPEC_KEYS = {"class_path", "init_args"}
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
SHA256_KEY = "sha256"  # the key of model.json holding the digest of model.safetensors


class ChecksumError(ValueError):
    """A weights file whose SHA-256 digest is not the one recorded for it."""


def sha256_of(file: str | os.PathLike[str]) -> str:
    """The SHA-256 digest of a file, as 64 lowercase hexadecimal digits."""
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(file: str | os.PathLike[str], expected: str, *, source: str = "") -> str:
    """Check that ``file`` has the SHA-256 digest ``expected``; return the digest.

    Args:
        file: the file to hash.
        expected: the recorded digest (64 hexadecimal digits).
        source: where the expected digest is recorded, for the message.

    Raises:
        ChecksumError: naming the file, the expected and the actual digest.
        ValueError: a recorded digest that is not 64 hexadecimal digits.
    """
    if not isinstance(expected, str) or not _HEX_DIGEST.fullmatch(expected.lower()):
        raise ValueError(f"{source or file}: sha256 must be 64 hexadecimal digits, got {expected!r}")
    got = sha256_of(file)
    if expected.lower() != got:
        where = f" (recorded in {source})" if source else ""
        raise ChecksumError(
            f"checksum mismatch for {file}: expected sha256 {expected.lower()}{where}, got {got}; "
            "the file is corrupt or was changed after the digest was recorded"
        )
    return got


def _is_trusted(class_path: str, prefixes: Sequence[str]) -> bool:
    # a prefix is a package: "timm" trusts "timm.x" but not "timm_evil.x"
    return any(class_path.startswith(p if p.endswith(".") else p + ".") for p in prefixes)


def _trusted(extra: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extra, str):  # a lone string would be read letter by letter
        raise TypeError(f"trusted_prefixes must be a sequence of prefixes, got the string {extra!r}")
    return (*DEFAULT_TRUSTED_PREFIXES, *extra)


def _resolve_class(class_path: Any, prefixes: Sequence[str], source: str) -> type[nn.Module]:
    """The ``nn.Module`` class a class path names; nothing is imported unless the path is trusted."""
    if not isinstance(class_path, str) or not _DOTTED_NAME.fullmatch(class_path):
        raise ValueError(
            f"{source}: class_path must be a dotted name such as 'package.Class', got {class_path!r}"
        )
    if not _is_trusted(class_path, prefixes) or "__" in class_path:
        raise ValueError(
            f"{source}: class_path {class_path!r} is not trusted: only classes under "
            f"{', '.join(repr(p) for p in prefixes)} are built (pass trusted_prefixes to allow others)"
        )
    module_name, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"{source}: cannot import class_path {class_path!r}: {error}") from error
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        # a trusted package still holds functions (e.g. a command's main) that must never be called
        raise ValueError(f"{source}: class_path {class_path!r} is not an nn.Module class")
    return found


def _build(value: Any, prefixes: Sequence[str], source: str, key: str, initial_weights: bool) -> Any:
    """``value`` with every nested ``{"class_path", "init_args"}`` mapping replaced by its module."""
    if isinstance(value, Mapping) and "class_path" in value:
        unknown = sorted(set(value) - _SPEC_KEYS)
        if unknown:
            raise ValueError(f"{source}: {key} has unknown keys {unknown}; expected class_path, init_args")
        init_args = value.get("init_args") or {}
        if not isinstance(init_args, Mapping):
            raise ValueError(f"{source}: {key}.init_args must be a mapping, got {type(init_args).__name__}")
        # a network recorded before scheduled sampling moved to the task still rebuilds
        init_args = drop_moved_arguments(init_args, f"{source}: {key}")
        cls = _resolve_class(value["class_path"], prefixes, f"{source}: {key}")
        kwargs = {
            str(name): _build(arg, prefixes, source, f"{key}.init_args.{name}", initial_weights)
            for name, arg in init_args.items()
        }
        if not initial_weights:
            kwargs.update({name: None for name in _WEIGHT_FILE_ARGS if name in kwargs})
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: cannot build {key} ({value['class_path']}): {error}") from error
    if isinstance(value, Mapping):
        return {k: _build(v, prefixes, source, f"{key}.{k}", initial_weights) for k, v in value.items()}
    if isinstance(value, list):
        return [_build(v, prefixes, source, f"{key}[{i}]", initial_weights) for i, v in enumerate(value)]
    return value


def instantiate_model(
    spec: Mapping[str, Any],
    *,
    trusted_prefixes: Sequence[str] = (),
    initial_weights: bool = True,
    source: str = "model spec",
) -> nn.Module:
    """Build a module from ``{"class_path": ..., "init_args": {...}}``, nested specs included.

    Args:
        spec: the class path and constructor arguments, as in a LightningCLI YAML.
        trusted_prefixes: packages whose classes may be built besides ``lstmvision.`` and
            ``torch.nn.``; any other class path is an error raised before anything is imported.
        initial_weights: ``False`` sets arguments that name a file of initial weights (``weights``,
            ``pretrained_encoder``) to ``None``, for a caller that loads every weight afterwards.
        source: where the spec comes from, for error messages (e.g. the JSON file).
    """
    module = _build(spec, _trusted(trusted_prefixes), source, "model", initial_weights)
    if not isinstance(module, nn.Module):
        raise ValueError(f"{source}: expected a mapping with class_path and init_args, got {spec!r}")
    return module


def _check_json(value: Any, key: str) -> None:
    """``init_args`` must be JSON values: a module given as an object cannot be rebuilt from the file."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            if not isinstance(name, str):
                raise ValueError(f"{key} has a key {name!r} that is not a string")
            _check_json(item, f"{key}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{key}[{i}]")
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise ValueError(
            f"{key} is a {type(value).__name__}: init_args hold only JSON values; give a module as "
            "{'class_path': ..., 'init_args': {...}}"
        )


def _cleared(value: Any) -> Any:
    """A JSON copy of ``value`` with the initial-weight-file arguments of every spec set to None."""
    if isinstance(value, Mapping):
        out = {str(k): _cleared(v) for k, v in value.items()}
        if "class_path" in value and isinstance(out.get("init_args"), dict):
            args = out["init_args"]
            args.update({name: None for name in _WEIGHT_FILE_ARGS if name in args})
        return out
    if isinstance(value, (list, tuple)):
        return [_cleared(v) for v in value]
    return value


def save_pretrained(
    model: nn.Module,
    folder: str | os.PathLike[str],
    *,
    init_args: Mapping[str, Any],
    class_path: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    check: bool = True,
    trusted_prefixes: Sequence[str] = (),
) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``folder`` (created) and return the folder.

    Args:
        model: the network.
        folder: where to write.
        init_args: the constructor arguments that rebuild ``model`` (JSON values; a nested module as a
            ``{"class_path", "init_args"}`` mapping).
        class_path: the class to rebuild; by default the model's own class.
        metadata: extra JSON values stored beside ``class_path``/``init_args`` (e.g. the source).
        check: rebuild the model from ``class_path``/``init_args`` and check that every weight has a
            place of the same shape in it, so that :func:`load_pretrained` will succeed.
        trusted_prefixes: as in :func:`load_pretrained`, for ``check``.
    """
    from safetensors.torch import save_model  # imported here: only exporting needs it

    from lstmvision import __version__

    cls = type(model)
    class_path = class_path or f"{cls.__module__}.{cls.__qualname__}"
    _check_json(dict(init_args), "init_args")
    extra = dict(metadata or {})
    reserved = sorted(set(extra) & {*_SPEC_KEYS, "lstmvision_version", SHA256_KEY})
    if reserved:
        raise ValueError(f"metadata must not set {reserved}: they are written by save_pretrained")
    _check_json(extra, "metadata")
    spec = _cleared({"class_path": class_path, "init_args": dict(init_args)})
    if check:
        rebuilt = instantiate_model(
            spec, trusted_prefixes=trusted_prefixes, initial_weights=False, source="save_pretrained"
        )
        mismatch = _shape_mismatch(rebuilt, model)
        if mismatch:
            raise ValueError(f"save_pretrained: class_path/init_args do not rebuild this model: {mismatch}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    # save_model (not save_file) keeps one copy of tensors shared between parameters (tied weights)
    save_model(model, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    # the digest of the weights, checked by load_pretrained: a changed or truncated file is named at once
    digest = sha256_of(out / WEIGHTS_FILE)
    document = {**spec, **extra, "lstmvision_version": __version__, SHA256_KEY: digest}
    (out / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return out


def _shape_mismatch(rebuilt: nn.Module, model: nn.Module) -> str:
    """Missing/unexpected keys and shape differences of two state dicts, or "" when they match."""
    expected, given = rebuilt.state_dict(), model.state_dict()
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [
        f"{k}: {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(given))
        if given[k].shape != expected[k].shape
    ]
    parts = [
        f"{label} {items[:5]}{' ...' if len(items) > 5 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes))
        if items
    ]
    return "; ".join(parts)


def _files(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / CONFIG_FILE, path / WEIGHTS_FILE
    if path.suffix == ".safetensors":
        return path.with_suffix(".json"), path
    if path.suffix == ".json":
        return path, path.with_suffix(".safetensors")
    if not path.exists():
        raise FileNotFoundError(f"exported model not found: {path}")
    raise ValueError(f"expected an exported folder, a .safetensors or a .json file, got {path}")


def read_model_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``model.json`` of an exported folder (or of a ``.json``/``.safetensors`` file) as a dict:
    ``class_path``, ``init_args`` and what else it records (the source, the training data, ``sha256``).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: it is not JSON or has no ``class_path`` (the message names the file).
    """
    config_file, _ = _files(Path(path))
    if not config_file.is_file():
        raise FileNotFoundError(f"exported model file not found: {config_file}")
    try:
        document = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from error
    if not isinstance(document, dict) or "class_path" not in document:
        raise ValueError(f"{config_file} has no 'class_path': expected the model's class_path and init_args")
    return document


def load_pretrained(
    path: str | os.PathLike[str],
    *,
    trusted_prefixes: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    source: str | None = None,
    checked_sha256: str | None = None,
) -> nn.Module:
    """Rebuild an exported model from its JSON and load its safetensors weights strictly; in eval mode.

    The weights file's SHA-256 digest is checked against the one ``model.json`` records (a folder
    exported before digests were recorded, or written by hand without one, loads unchecked).

    Args:
        path: the exported folder, or its ``.safetensors`` file with the ``.json`` of the same name
            beside it (or the ``.json`` file), or a ``.ckpt`` checkpoint written by ``lstmvision fit``
            (rebuilt from the network it records).
        trusted_prefixes: packages whose classes ``model.json`` may name besides ``lstmvision.`` and
            ``torch.nn.`` (e.g. ``("timm.",)``); add one only for files you trust: building a class
            runs its code.
        overrides: constructor arguments that replace those ``model.json`` records, allowed only where
            the weights still fit the network they build (same parameter names and shapes): e.g. a
            predictor's ``total_length`` to forecast further; ``num_hidden`` is refused.
        source: what the folder is, for messages (e.g. ``"zoo entry 'convlstm_demo'"``).
        checked_sha256: a digest the caller has just checked the weights file against (the zoo's index);
            the file is not hashed again when ``model.json`` records the same one.

    Raises:
        FileNotFoundError: a file is missing.
        ChecksumError: the weights file's digest is not the expected one (naming the file and both digests).
        ValueError: the JSON is malformed, names an untrusted or non-module class, or the weights do
            not fit the model it builds (every message names the file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    if Path(path).suffix == ".ckpt":
        # a checkpoint of `lstmvision fit`: it records its network (lstmvision.checkpoints)
        from lstmvision.checkpoints import load_network

        return load_network(path, trusted_prefixes=trusted_prefixes).model.eval()
    config_file, weights_file = _files(Path(path))
    for file in (config_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"exported model file not found: {file}")
    document = read_model_json(config_file)
    recorded_sha256 = document.get(SHA256_KEY)
    if recorded_sha256 is not None and str(recorded_sha256).lower() != (checked_sha256 or "").lower():
        check_sha256(weights_file, document[SHA256_KEY], source=str(config_file))
    spec = {key: document[key] for key in _SPEC_KEYS if key in document}  # the rest is provenance
    if overrides:
        recorded = dict(spec.get("init_args") or {})
        changed = {str(k): v for k, v in overrides.items()}
        model = instantiate_model(
            {**spec, "init_args": {**recorded, **changed}},
            trusted_prefixes=trusted_prefixes,
            initial_weights=False,
            source=f"{source or config_file} with {sorted(changed)} overridden",
        )
        reference = instantiate_model(
            spec, trusted_prefixes=trusted_prefixes, initial_weights=False, source=str(config_file)
        )
        mismatch = _shape_mismatch(reference, model)
        if mismatch:
            given = ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items()))
            kept = ", ".join(f"{k}={recorded.get(k)!r}" for k in sorted(changed))
            raise ValueError(
                f"{source or config_file}: {given} would change the architecture the weights were trained "
                f"for ({kept}): {mismatch}; drop these arguments, or build the model without pretrained "
                "weights to train it anew"
            )
    else:
        model = instantiate_model(
            spec, trusted_prefixes=trusted_prefixes, initial_weights=False, source=str(config_file)
        )
    try:
        load_model(model, str(weights_file), strict=True, device="cpu")
    except (RuntimeError, SafetensorError, OSError) as error:
        raise ValueError(
            f"cannot load {weights_file} into the {spec['class_path']} built from {config_file}: {error}"
        ) from error
    return model.eval()
