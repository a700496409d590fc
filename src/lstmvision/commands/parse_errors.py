"""Parse errors of the LightningCLI subcommands as one line: the offending key or value, the closest
valid key or choice (docs/runs.md, "Errors")."""

from __future__ import annotations

import difflib
import inspect
import re
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml

from lstmvision.models.predictor import MOVED_TO_TASK
from lstmvision.tasks.base import moved_argument

__all__ = ["explain_parse_error", "explain_value_error", "moved_key", "suggest"]


def explain_parse_error(message: str, parser: Any, subparsers: dict[str, Any], args: Any) -> str:
    """One line for a parse error: the offending key and the closest valid one."""
    argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
    sub = next((a for a in argv if a in subparsers), None)
    known = _option_names(subparsers[sub]) if sub else _option_names(parser)
    unknown = re.findall(r"unrecognized arguments: (\S+)", message)
    if unknown:
        key = unknown[0].split("=")[0]
        return f"unknown option {key}{suggest(key, known)}"
    rejected = re.findall(r"[Kk]ey \"([\w.]+)\"|Option '([\w.]+)' is not accepted", message)
    options = [b for _, b in rejected if b]
    if options:
        name = options[0]
        given = next(
            (a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0].endswith("." + name)),
            None,
        )
        classes = re.findall(r"class_path '([\w.]+)'", message)
        accepted = _init_args(classes[-1]) if classes else []
        if given is not None:
            prefix = given[: -len(name)]
            close = difflib.get_close_matches(name, accepted, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            return f"unknown option {given}{hint}"
        close = difflib.get_close_matches(name, accepted, n=1)
        owner = f" of {classes[-1]}" if classes else ""
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"key {name!r} is not an argument{owner} (in the config file){hint}"
    return explain_value_error(message)


def explain_value_error(message: str) -> str:
    """One line for a value jsonargparse refused: the full key, what it expected, what it got."""
    top = re.match(r'Parser key "([\w.]+)"', message)
    nested = re.search(r"Given value: NestedArg\(key='([\w.]+)', val='(.*)'\)", message)
    key = top.group(1) if top else None
    if key is not None and nested is not None:
        key = f"{key}.init_args.{nested.group(1)}"
    pair = re.search(r"Expected an? (.+?)\. Got value: (.*)", message)  # the innermost refusal
    expected = re.findall(r"Expected an? (.+?)$", message, flags=re.MULTILINE)
    given = re.search(r"^\s*Given value: (.*)$", message, flags=re.MULTILINE)
    value = pair.group(2) if pair else nested.group(2) if nested else given.group(1) if given else None
    if key is None or value is None:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        return " ".join(lines[:3])
    if pair is not None:
        expected = [pair.group(1)]
        if not _literal_values(pair.group(1)):
            return f"bad value {value!r} for --{key}: expected {_type_names(pair.group(1))}"
    choices = [c for e in expected for c in _literal_values(e)]
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    accepted = (
        ", ".join(dict.fromkeys(map(repr, choices))) if choices else ", ".join(map(_type_names, expected))
    )
    return f"bad value {value!r} for --{key}{hint} (accepted: {accepted})"


def _type_names(text: str) -> str:
    """``<class 'int'>`` -> ``int`` (and the like inside a longer description)."""
    return re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text).strip()


def _literal_values(text: str) -> list[Any]:
    """The values of a ``typing.Literal[...]`` description (nothing for other types)."""
    inner = re.fullmatch(r"typing\.Literal\[(.*)\]", text.strip())
    if inner is None:
        return [None] if "NoneType" in text else []
    try:
        parsed = yaml.safe_load(f"[{inner.group(1)}]")
    except yaml.YAMLError:
        return []
    return list(parsed) if isinstance(parsed, list) else []


def _option_names(parser: Any) -> list[str]:
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def _init_args(class_path: str) -> list[str]:
    """The constructor's argument names of a class path (nothing when it cannot be imported)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    except (ImportError, AttributeError, ValueError, TypeError):
        return []


def suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _moved_at(path: list[str], value: Any) -> str | None:
    """The message for a key that moved, given its dotted path under the config's root, else None."""
    if len(path) == 3 and path[:2] == ["model", "init_args"]:
        return moved_argument(path[2], value)
    if len(path) == 5 and path[:2] == path[2:4] == ["model", "init_args"] and path[4] in MOVED_TO_TASK:
        return f"`{path[4]}` moved: {MOVED_TO_TASK[path[4]]}"
    return None


def _moved_in_file(file: str) -> str | None:
    """The first moved key of a config file (its task's and its network's arguments), else None."""
    try:
        document = yaml.safe_load(Path(file).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the parser says what is wrong with the file
    model = document.get("model") if isinstance(document, dict) else None
    task = model.get("init_args") if isinstance(model, dict) else None
    if not isinstance(task, dict):
        return None
    network = task.get("model")
    network_args = network.get("init_args") if isinstance(network, dict) else None
    found = [_moved_at(["model", "init_args", str(k)], v) for k, v in task.items()]
    if isinstance(network_args, dict):
        found += [_moved_at(["model", "init_args", "model", "init_args", str(k)], None) for k in network_args]
    return next((line for line in found if line is not None), None)


def moved_key(argv: list[str]) -> str | None:
    """The first key of the command line or its config files that moved to a new place (the old optimiser
    and schedule keys, the predictors' scheduled-sampling arguments), as its one-line message."""
    for i, token in enumerate(argv):
        name, equals, value = token.partition("=")
        if not equals:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if name in ("--config", "-c"):
            found = _moved_in_file(value)
        elif name.startswith("--model."):
            found = _moved_at(name[2:].split("."), value)
        else:
            continue
        if found is not None:
            return found
    return None
