"""``lstmvision configs``: the configurations that ship with the package, by name.

Every shipped experiment is a YAML file under ``lstmvision/configs/`` (package data). Its name is its
path there without ``.yaml``: ``moving_mnist/convlstm``, ``multiview/compare``, ``moving_mnist_demo``.
``--config NAME`` takes such a name wherever it takes an experiment file (fit, validate, test, predict,
demo, compare). A file that exists at the given path always wins, so a copied-out and edited config is
used as written; a repository path of old (``configs/kth/predrnn.yaml``) still finds the packaged file.

    lstmvision configs                                   # every name and the first line of its header
    lstmvision configs --copy moving_mnist/convlstm .    # writes ./convlstm.yaml, to edit
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import NoReturn

import yaml

__all__ = ["config_root", "copy_config", "find_config", "list_configs", "main", "resolve_config_args"]

# the commands whose --config is an experiment config; export's and caption's is a run's saved config.yaml
_CONFIG_COMMANDS = frozenset({"fit", "validate", "test", "predict", "demo", "compare"})
_CONFIG_OPTIONS = ("--config", "-c")  # LightningCLI takes both
# jsonargparse also takes inline YAML as --config ('{trainer: {max_steps: 5}}'): never a name
_INLINE_YAML = re.compile(r"[\s:{}\[\]]")


def config_root() -> Path:
    """The folder that holds the packaged configurations."""
    return Path(str(resources.files("lstmvision") / "configs"))


def list_configs() -> dict[str, Path]:
    """Every packaged configuration, sorted by name: name (path under :func:`config_root`, no suffix) -> file."""
    root = config_root()
    return {path.relative_to(root).with_suffix("").as_posix(): path for path in sorted(root.rglob("*.yaml"))}


def find_config(name: str) -> Path:
    """The packaged configuration called ``name``; ``.yaml`` and a leading ``configs/`` are optional.

    Raises:
        FileNotFoundError: no packaged configuration has that name; the message gives the closest ones.
    """
    known = list_configs()
    key = _as_name(name)
    if key not in known:
        raise FileNotFoundError(
            f"no packaged config named {name!r}{_did_you_mean(key, known)}; `lstmvision configs` lists them"
        )
    return known[key]


def resolve_config_args(argv: list[str]) -> list[str]:
    """``argv`` with the value of each ``--config NAME``, ``--config=NAME`` and ``-c NAME`` that names a
    packaged configuration replaced by that file's path.

    An existing path and inline YAML are left as they are, and so are the arguments of a command whose
    ``--config`` is not an experiment config (``export``, ``caption``). A value that is neither a file
    nor a packaged name ends the command (exit status 2) with the closest names.
    """
    if argv and not argv[0].startswith("-") and argv[0] not in _CONFIG_COMMANDS:
        return list(argv)
    resolved: list[str] = []
    value_next = False
    for arg in argv:
        if value_next:
            resolved.append(_resolve(arg))
            value_next = False
        elif arg in _CONFIG_OPTIONS:
            resolved.append(arg)
            value_next = True
        elif arg.startswith("--config="):
            resolved.append("--config=" + _resolve(arg.removeprefix("--config=")))
        else:
            resolved.append(arg)
    return resolved


def copy_config(name: str, folder: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the packaged configuration ``name`` into ``folder`` (made when missing); return the files written.

    A comparison file (``lstmvision compare``) names its variants' configs relative to itself: they are
    copied beside it, so the copy runs as it is. Nothing is written when a target file exists, unless
    ``force``.

    Raises:
        FileNotFoundError: no packaged configuration has that name.
        FileExistsError: a target file exists and ``force`` is false.
        NotADirectoryError: ``folder`` is a file.
    """
    source = find_config(name)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    pairs = [(source, folder / source.name)]
    pairs += [(source.parent / rel, folder / rel) for rel in _variant_configs(source)]
    existing = [str(target) for _, target in pairs if target.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} exists already; --force overwrites it")
    for src, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return [target for _, target in pairs]


def main(argv: list[str] | None = None) -> list[Path]:
    """``lstmvision configs [--copy NAME DIR [--force]]``: list the packaged configs, or copy one out."""
    parser = argparse.ArgumentParser(
        prog="lstmvision configs",
        description="List the configurations that ship with lstmvision by the name --config takes "
        "(e.g. `lstmvision fit --config moving_mnist/convlstm`), or copy one out to edit it.",
    )
    parser.add_argument(
        "--copy",
        nargs=2,
        metavar=("NAME", "DIR"),
        help="copy the config NAME into the folder DIR (made when missing) and print where it wrote",
    )
    parser.add_argument("--force", action="store_true", help="with --copy: overwrite files that exist")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.copy is None:
        if args.force:
            parser.error("--force goes with --copy NAME DIR")
        known = list_configs()
        width = max(map(len, known))
        for config, path in known.items():
            print(f"{config:<{width}}  {_summary(path)}")
        print(
            "\nrun one by name: lstmvision fit --config NAME; copy one out to edit: "
            "lstmvision configs --copy NAME DIR",
            file=sys.stderr,
        )
        return list(known.values())
    name, folder = args.copy
    try:
        written = copy_config(name, folder, force=args.force)
    except OSError as error:
        _fail(f"lstmvision configs --copy: {error}")
    for path in written:
        print(f"wrote {path}")
    return written


def _resolve(value: str) -> str:
    """The file a ``--config`` value means: the value itself when it is a path or inline YAML."""
    try:
        if not value or Path(value).exists():
            return value
    except OSError:  # inline YAML longer than a file name may be
        return value
    if _INLINE_YAML.search(value):
        return value
    known = list_configs()
    key = _as_name(value)
    if key not in known:
        _fail(
            f"lstmvision: --config {value}: no such file, and no packaged config of that name"
            f"{_did_you_mean(key, known)}; `lstmvision configs` lists them"
        )
    return str(known[key])


def _as_name(value: str) -> str:
    """The config name a value means: ``configs/kth/predrnn.yaml`` (a repository path of old) -> ``kth/predrnn``."""
    name = value.replace("\\", "/").removeprefix("./").removeprefix("configs/")
    for suffix in (".yaml", ".yml"):
        name = name.removesuffix(suffix)
    return name


def _did_you_mean(name: str, names: dict[str, Path]) -> str:
    """`` (did you mean a or b?)`` with the names closest to ``name``, or nothing when none is close."""

    depth = name.count("/") + 1

    def likeness(candidate: str) -> float:
        # by the whole name, or by as many trailing parts as the name has: `convlstm` finds
        # `moving_mnist/convlstm`, and `moving_mnist/convlsm` finds it alone, not `openstl/kth/convlstm`
        whole = difflib.SequenceMatcher(None, name, candidate).ratio()
        tail = "/".join(candidate.split("/")[-depth:])
        return max(whole, difflib.SequenceMatcher(None, name, tail).ratio())

    scored = sorted(((likeness(candidate), candidate) for candidate in names), key=lambda s: (-s[0], s[1]))
    # the best few, and only those about as close as the best: a clear typo gets one answer
    close = [candidate for score, candidate in scored[:3] if score >= max(0.6, scored[0][0] - 0.1)]
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _variant_configs(source: Path) -> list[str]:
    """The configs a comparison file names (relative to it), which must travel with it; none for others."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    variants = data.get("variants") if isinstance(data, dict) else None
    if not isinstance(variants, list):
        return []
    names = {v["config"] for v in variants if isinstance(v, dict) and isinstance(v.get("config"), str)}
    return sorted(names)


def _summary(path: Path) -> str:
    """The first line of a config's header comment, without the ``#``; empty when it has none."""
    with path.open(encoding="utf-8") as file:
        first = file.readline().strip()
    return first.lstrip("#").strip() if first.startswith("#") else ""


def _fail(message: str) -> NoReturn:
    """End the command as a usage error: the message on stderr, exit status 2 (as argparse does)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)
