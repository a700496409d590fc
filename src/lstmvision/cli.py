"""The ``lstmvision`` command: parse the subcommand and dispatch. LightningCLI's fit/validate/test/predict
run through :class:`lstmvision.commands.lightning.LstmVisionCLI`; the others (``demo``, ``export``,
``compare``, ``extract-features``, ``caption``, ``configs``, ``forecast``, ``classify``) are functions of
:mod:`lstmvision.commands`. ``-v`` keeps Lightning's own output, ``--debug`` shows tracebacks; any
other error is one line with exit code 2 (docs/runs.md).
"""

from __future__ import annotations

import shlex
import sys
from importlib import import_module
from typing import Any

import torch.distributed
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lstmvision.commands.configs import resolve_config_args
from lstmvision.commands.lightning import SUBCOMMANDS, ConfigError, LstmVisionCLI, command_line, take_flags
from lstmvision.commands.parse_errors import suggest
from lstmvision.console import (
    USER_ERRORS,
    error_line,
    quiet_lightning,
    request_debug,
    warnings_above_progress_bars,
)
from lstmvision.tasks.reliability import RunInterrupted

__all__ = ["main"]


def _resume_command(argv: list[str]) -> str:
    """``lstmvision <argv>`` with ``--ckpt_path last`` in place of any other checkpoint path."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--ckpt_path":
            skip = True
        elif not arg.startswith("--ckpt_path="):
            args.append(arg)
    return shlex.join(["lstmvision", *args, "--ckpt_path", "last"])


# subcommands other than LightningCLI's: name -> ("module:function", one-line help); each function takes argv
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lstmvision.commands.demo:main", "train and test the demo predictor on embedded Moving MNIST"),
    "export": ("lstmvision.commands.export:main", "checkpoint -> model.safetensors + model.json (or ONNX)"),
    "compare": (
        "lstmvision.commands.compare:main",
        "fit and test several configs with the same seeds, one table",
    ),
    "extract-features": (
        "lstmvision.commands.extract_features:main",
        "per-frame CNN features of videos -> HDF5",
    ),
    "caption": ("lstmvision.commands.caption:main", "caption videos with a trained SA-LSTM"),
    "configs": ("lstmvision.commands.configs:main", "list the packaged configs by name; --copy NAME DIR"),
    "forecast": (
        "lstmvision.commands.forecast:main",
        "forecast the frames after your videos -> GIF/MP4 each",
    ),
    "classify": ("lstmvision.commands.classify:main", "classify your videos -> CSV of top-k classes"),
}


def _command(name: str) -> Any:
    module, function = COMMANDS[name][0].split(":")
    return getattr(import_module(module), function)


def _usage() -> str:
    """``lstmvision --help``: every subcommand with its one-line help."""
    lightning = {
        "fit": "train a model (--ckpt_path last resumes the newest run)",
        "validate": "run a checkpoint over the validation set",
        "test": "test a checkpoint: metrics and outputs under its run",
        "predict": "predict with a checkpoint",
    }
    rows = [*lightning.items(), *((name, text) for name, (_, text) in COMMANDS.items())]
    width = max(len(name) for name, _ in rows)
    return "\n".join(
        [
            "usage: lstmvision <command> [options]     (`lstmvision <command> --help`: its options)",
            "",
            "commands:",
            *(f"  {name:<{width}}  {text}" for name, text in rows),
            "",
            "options:",
            "  -h, --help  show this list and exit",
            "  --version   print the version and exit",
            "",
            "--config takes a file or the name of a packaged config (`lstmvision configs` lists them)",
        ]
    )


def _version() -> str:
    """The installed distribution's version, else the package's ``__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lstmvision")
    except PackageNotFoundError:
        return str(getattr(import_module("lstmvision"), "__version__", "unknown"))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lstmvision`` console script.

    ``-v`` keeps Lightning's own output; ``--debug`` shows the traceback of an error instead of the one
    line (and exit code 2) that any problem with what was given ends in."""
    verbose, debug, argv = take_flags(list(sys.argv[1:] if argv is None else argv))
    quiet_lightning(verbose)
    warnings_above_progress_bars()
    request_debug(debug)
    try:
        argv = resolve_config_args(argv)
        if argv[:1] in (["-h"], ["--help"], ["--version"]):
            print(_usage() if argv[0] != "--version" else f"lstmvision {_version()}")
            return
        if argv and argv[0] in COMMANDS:
            with command_line(argv):
                _command(argv[0])(argv[1:])
            return
        if argv and argv[0] not in (*SUBCOMMANDS, "--print_config"):
            names = [*SUBCOMMANDS, *COMMANDS]
            raise ConfigError(
                f"unknown subcommand {argv[0]!r}{suggest(argv[0], names)} (`lstmvision --help` lists them all)"
            )
        with command_line(argv):
            LstmVisionCLI(verbose=verbose)
    except RunInterrupted as stop:
        print(f"lstmvision: {stop}\nresume with:\n  {_resume_command(argv)}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except FloatingPointError as error:
        # a diverged run: the message names the step; the checkpoints written before it are left as they were
        sys.exit(f"lstmvision {argv[0]}: {error}")
    except (*USER_ERRORS, MisconfigurationException) as error:  # type: ignore[misc]
        if debug:
            raise
        where = f"lstmvision {argv[0]}" if argv and argv[0] in (*SUBCOMMANDS, *COMMANDS) else "lstmvision"
        print(f"{where}: {error_line(error)}", file=sys.stderr)
        sys.exit(2)
    finally:
        request_debug(False)  # main() may run again in this process (tests, notebooks)
        # Lightning leaves a DDP process group alive; torn down by the interpreter's exit instead, gloo's
        # threads can abort the process ("terminate called without an active exception", exit -6)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
