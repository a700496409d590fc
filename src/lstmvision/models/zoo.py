"""The model zoo: trained weights shipped inside the package, loaded by name, offline (docs/zoo.md).

The zoo is a folder holding ``index.json`` and one exported folder per entry (``<name>/model.safetensors``
and ``<name>/model.json``, as :func:`~lstmvision.models.save_pretrained` writes them). The index records,
for every entry, the registered model it instantiates (its *architecture*), whether it is that
architecture's default weights, the SHA-256 digest of ``model.safetensors`` (checked on every load),
how it was trained (command, time, machine, precision) and the figures of its test, with the test set's
definition. ``tools/train_zoo.py`` writes entries; nothing here downloads anything.

The zoo read is the package's own ``lstmvision/zoo/`` unless the environment variable
``LSTMVISION_ZOO`` names another folder, or a function is given ``root``.

Entry names are registry-style (lowercase, digits, ``_``): ``<architecture>_<data>`` such as
``cnn_lstm_actions``. A registered model name (``convlstm``) stands for its architecture's default entry.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from lstmvision.models.pretrained import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    check_sha256,
    load_pretrained,
)

__all__ = [
    "INDEX_FILE",
    "INDEX_FORMAT",
    "ZOO_ENV",
    "PretrainedSource",
    "ZooEntry",
    "compare_figures",
    "find_entry",
    "flatten_figures",
    "headline_figures",
    "list_zoo",
    "load_zoo_model",
    "read_index",
    "resolve_pretrained",
    "write_entry",
    "zoo_root",
    "zoo_table",
]

ZOO_ENV = "LSTMVISION_ZOO"
INDEX_FILE = "index.json"
INDEX_FORMAT = 1
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ZooEntry(NamedTuple):
    """One entry of a zoo index."""

    name: str  # the zoo name, e.g. "convlstm_demo"
    architecture: str  # the registered model name it instantiates, e.g. "convlstm"
    default: bool  # whether create_model(architecture, pretrained=True) loads it
    folder: Path  # the folder holding model.safetensors and model.json
    sha256: str  # the digest of model.safetensors
    index_file: Path  # the index.json that records it
    record: dict[str, Any]  # the whole record: training, test figures, version ...


def zoo_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The zoo folder: ``root`` when given, else ``$LSTMVISION_ZOO`` when set, else ``lstmvision/zoo``."""
    if root is not None:
        return Path(root)
    configured = os.environ.get(ZOO_ENV)
    if configured:
        return Path(configured)
    return Path(str(resources.files("lstmvision") / "zoo"))


def _entry(name: Any, record: Any, root: Path, index: Path) -> ZooEntry:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{index}: entry name {name!r} is not a lowercase name of letters, digits and '_'")
    if not isinstance(record, Mapping):
        raise ValueError(f"{index}: entry {name!r} must be a mapping, got {type(record).__name__}")
    for key, kind in (("architecture", str), ("sha256", str), ("default", bool)):
        if not isinstance(record.get(key), kind):
            raise ValueError(
                f"{index}: entry {name!r} needs {key!r} ({kind.__name__}), got {record.get(key)!r}"
            )
    folder = record.get("folder", name)
    if not isinstance(folder, str) or Path(folder).is_absolute() or ".." in Path(folder).parts:
        raise ValueError(f"{index}: entry {name!r} has folder {folder!r}; expected a folder inside the zoo")
    return ZooEntry(
        name, record["architecture"], record["default"], root / folder, record["sha256"], index, dict(record)
    )


def read_index(root: str | os.PathLike[str] | None = None) -> dict[str, ZooEntry]:
    """Every entry of the zoo at ``root`` (see :func:`zoo_root`), by name; empty without an index.

    Raises:
        ValueError: a malformed index (naming the file and the entry), or two default entries of one
            architecture.
    """
    folder = zoo_root(root)
    index = folder / INDEX_FILE
    if not index.is_file():
        if root is not None or os.environ.get(ZOO_ENV):
            # a zoo named on purpose must exist; the package's own is simply empty without an index
            raise FileNotFoundError(f"no model zoo index at {index}")
        return {}
    try:
        document = json.loads(index.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{index} is not valid JSON: {error}") from error
    return _parse(document, folder, index)


def _parse(document: Any, folder: Path, index: Path) -> dict[str, ZooEntry]:
    """The entries of an index document; a malformed one is a ValueError naming ``index``."""
    if not isinstance(document, Mapping) or document.get("format") != INDEX_FORMAT:
        raise ValueError(f"{index}: expected {{'format': {INDEX_FORMAT}, 'entries': {{...}}}}")
    entries = document.get("entries") or {}
    if not isinstance(entries, Mapping):
        raise ValueError(f"{index}: 'entries' must map names to records")
    found = {name: _entry(name, record, folder, index) for name, record in entries.items()}
    defaults: dict[str, str] = {}
    for entry in found.values():
        if entry.default:
            if entry.architecture in defaults:
                raise ValueError(
                    f"{index}: {defaults[entry.architecture]!r} and {entry.name!r} are both the default "
                    f"entry of {entry.architecture!r}; at most one may be"
                )
            defaults[entry.architecture] = entry.name
    return found


def list_zoo(
    pattern: str | Sequence[str] | None = None, *, root: str | os.PathLike[str] | None = None
) -> list[str]:
    """Sorted names of the zoo's entries, or of those matching a shell wildcard (or one of several)."""
    names = sorted(read_index(root))
    if pattern is None:
        return names
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def find_entry(name: str, *, root: str | os.PathLike[str] | None = None) -> ZooEntry | None:
    """The entry called ``name``, else the default entry of the architecture ``name``, else None."""
    entries = read_index(root)
    if name in entries:
        return entries[name]
    defaults = [e for e in entries.values() if e.default and e.architecture == name]
    return defaults[0] if defaults else None


def _checked_folder(entry: ZooEntry) -> Path:
    """The entry's folder once its weights file is there and has the digest the index records."""
    weights = entry.folder / WEIGHTS_FILE
    for file in (entry.folder / CONFIG_FILE, weights):
        if not file.is_file():
            raise FileNotFoundError(
                f"zoo entry {entry.name!r}: {file} is missing (recorded in {entry.index_file})"
            )
    check_sha256(weights, entry.sha256, source=str(entry.index_file))
    return entry.folder


def load_zoo_model(
    name: str, *, root: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> nn.Module:
    """The network of the zoo entry ``name`` (or of the default entry of the architecture ``name``) with
    its weights, in eval mode; see :func:`lstmvision.models.create_model` for ``overrides``.

    Raises:
        ValueError: no such entry (listing those there are), a checksum mismatch, or overrides the
            weights do not fit.
    """
    entry = find_entry(name, root=root)
    if entry is None:
        available = ", ".join(list_zoo(root=root)) or "none yet"
        raise ValueError(
            f"no pretrained weights for {name!r} in the model zoo at {zoo_root(root)} "
            f"(entries: {available}); load weights of your own with pretrained='path/to/folder'"
        )
    return load_pretrained(
        _checked_folder(entry),
        overrides=overrides,
        source=f"zoo entry {entry.name!r}",
        checked_sha256=entry.sha256,  # hashed once: _checked_folder compared it with the index
    )


class PretrainedSource(NamedTuple):
    """What ``--pretrained NAME_OR_FOLDER`` names: the exported folder (checked) and its zoo entry."""

    folder: Path
    entry: ZooEntry | None  # None: a folder of one's own


def resolve_pretrained(value: str, *, root: str | os.PathLike[str] | None = None) -> PretrainedSource:
    """Resolve a ``--pretrained`` value: a path (it holds a path separator, or ends in ``.json`` or
    ``.safetensors``; ``./NAME`` for a folder in the current directory) is an exported folder of one's
    own; anything else is a zoo name (or an architecture with a default entry), whose weights' digest is
    checked against the index here.
    """
    if not value:
        raise ValueError("--pretrained needs a zoo name or an exported folder")
    is_path = os.sep in value or "/" in value or value.endswith((".json", ".safetensors"))
    if is_path:
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"--pretrained {value}: no such exported folder or file")
        return PretrainedSource(path if path.is_dir() else path.parent, None)
    entry = find_entry(value, root=root)
    if entry is None:
        available = ", ".join(list_zoo(root=root)) or "none yet"
        raise ValueError(
            f"--pretrained {value}: not a model zoo entry (entries: {available}); give a folder of your "
            "own as a path (./NAME for one in the current folder)"
        )
    return PretrainedSource(_checked_folder(entry), entry)


# ---------------------------------------------------------------------------------------------- figures


def flatten_figures(document: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number of a test's ``metrics.json``/``scores.json``, by dotted key (``model.mse``);
    lists (curves, confusion matrices), strings and nulls are left out."""
    figures: dict[str, float] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            figures.update(flatten_figures(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            figures[name] = float(value)
    return figures


def compare_figures(expected: Mapping[str, float], got: Mapping[str, float], *, rel: float) -> list[str]:
    """The recorded figures that ``got`` lacks or that differ by more than ``rel`` relative, one line each."""
    wrong = []
    for key, value in sorted(expected.items()):
        if key not in got:
            wrong.append(f"{key}: recorded {value!r}, not in the test's figures")
        elif abs(got[key] - value) > rel * max(abs(value), 1e-12):
            wrong.append(f"{key}: recorded {value!r}, got {got[key]!r}")
    return wrong


# the figures a table shows, in order, where a test reports them
_HEADLINES = (
    "model.mse",
    "mse_ratio_to_copy_last_frame",
    "model.ssim",
    "accuracy",
    "mean_class_accuracy",
    "model.Bleu_4",
    "model.METEOR",
    "model.ROUGE_L",
    "model.CIDEr",
)


def headline_figures(figures: Mapping[str, float]) -> dict[str, float]:
    """The figures a summary shows (MSE, ratio, SSIM; accuracy; BLEU-4, METEOR, ROUGE-L, CIDEr)."""
    return {key: figures[key] for key in _HEADLINES if key in figures}


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def zoo_table(root: str | os.PathLike[str] | None = None) -> str:
    """A markdown table of the zoo's entries (name, architecture, data, training command and time, test
    figures, size of the weights), for docs/zoo.md."""
    header = "| zoo name | architecture | data | training command | training time | test figures | weights |"
    rows = [header, "|---|---|---|---|---|---|---|"]
    for entry in read_index(root).values():
        record = entry.record
        training = record.get("training") or {}
        test = record.get("test") or {}
        data = (test.get("data") or {}).get("class_path", "?").rsplit(".", 1)[-1]
        figures = ", ".join(
            f"{key} {value:.4g}" for key, value in headline_figures(test.get("figures") or {}).items()
        )
        clips = test.get("clips")
        size = record.get("size_bytes")
        default = " (default)" if entry.default else ""
        cells = [
            f"`{entry.name}`",
            f"`{entry.architecture}`{default}",
            data,
            f"`{training.get('command', '?')}`",
            f"{_duration(training.get('seconds'))} ({training.get('precision', '?')})",
            f"{figures} ({clips} test clips, {test.get('precision', '?')})",
            f"{size / 2**20:.2f} MiB" if isinstance(size, int) else "?",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def write_entry(root: str | os.PathLike[str], name: str, record: Mapping[str, Any]) -> Path:
    """Add (or replace) the entry ``name`` of the index in ``root`` (created), atomically; return the index.

    A record that makes the index invalid (a second default of an architecture, a missing key) is refused
    and the index is left as it was."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / INDEX_FILE
    document: dict[str, Any] = {"format": INDEX_FORMAT, "entries": {}}
    if index.is_file():
        read_index(folder)  # a malformed index is reported, not overwritten
        document = json.loads(index.read_text())
    entries = dict(document.get("entries") or {})
    entries[name] = dict(record)
    document["entries"] = dict(sorted(entries.items()))
    _parse(document, folder, index)  # refused before anything is written
    scratch = index.with_name(f".{INDEX_FILE}.tmp")
    scratch.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(scratch, index)
    return index
