"""What the ``lstmvision`` command prints: Lightning's chatter kept out at default verbosity, and any
error a person can fix shown as one or two lines with exit code 2.

At default verbosity a ``fit`` prints the run folder, the precision line, the progress bar and, at the
end, its outputs and metrics (docs/runs.md lists the lines). :func:`quiet_lightning` drops the rest:
Lightning's hardware availability lines, its product tips, the AMP and seed notices, the callback
override notice, the model summary's bf16 size note, deprecation chatter from its dependencies and the
``weights_only`` note Lightning prints when it saves. ``-v`` keeps all of it.

:func:`error_line` turns an exception into the line shown; ``--debug`` shows the traceback instead.
:func:`warnings_above_progress_bars` prints lstmvision's own warnings (a skipped video, a time budget) on
lines of their own, above the progress bar rather than in the middle of it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Iterable

from tqdm import tqdm

__all__ = [
    "QUIET_PATTERNS",
    "USER_ERRORS",
    "debug_requested",
    "error_line",
    "quiet_lightning",
    "request_debug",
    "warnings_above_progress_bars",
]

# Lightning's informational lines and warnings that say nothing about the run a user asked for
QUIET_PATTERNS = (
    r"(GPU|TPU|HPU|IPU) available:",
    r"💡 Tip:",
    r"Seed set to",
    r"Using (bfloat16|16bit) Automatic Mixed Precision",
    r"The following callbacks returned in `LightningModule.configure_callbacks` will override",
    r"Loading `train_dataloader` to estimate number of stepping batches",
    r"`Trainer\.fit` stopped: `max_(steps|epochs)=\d+` reached",
    r"`Trainer\.fit` stopped: `max_time",
    r"Time limit reached\. Elapsed time is",  # max_time: the run folder and metrics say the rest
    r"Precision .* is not supported by the model summary",
    r"isinstance\(treespec, LeafSpec\)",
    r".*is deprecated",
    r"The number of training batches .* is smaller than the logging interval",
    r"The '\w+_dataloader' does not have many workers",
    r"`weights_only` was not set",
    r"You are using a CUDA device .* that has Tensor Cores",
    r"Checkpoint directory .* exists and is not empty",
    r"Experiment logs directory .* exists and is not empty",  # a resumed run keeps its history itself
    r"Restoring states from the checkpoint path",
    r"Restored all states from the checkpoint",
    r"LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES",
    r"The dirpath has changed from",  # a test run's checkpoint callback, which writes nothing
    r"Loaded model weights from the checkpoint at",  # `test` prints the checkpoint it tested itself
)
_QUIET = re.compile("|".join(f"(?:{pattern})" for pattern in QUIET_PATTERNS))

_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _QUIET.match(record.getMessage().lstrip()) is None


def quiet_lightning(verbose: bool = False) -> None:
    """Keep Lightning's chatter (:data:`QUIET_PATTERNS`) out of the output, unless ``verbose``."""
    if verbose:
        return
    dropper = _DropChatter()
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropChatter) for f in logger.filters):
            logger.addFilter(dropper)
        for handler in logger.handlers:
            if not any(isinstance(f, _DropChatter) for f in handler.filters):
                handler.addFilter(dropper)
    for pattern in QUIET_PATTERNS:
        warnings.filterwarnings("ignore", message=pattern)
    # notes for the authors of the code that calls a deprecated API (Lightning, jsonargparse, torch)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


class _AboveProgressBars(logging.Handler):
    """The message alone on stderr, as Python's last-resort handler writes it, but through ``tqdm.write``:
    the open progress bars are cleared, the line is written, and the bars are drawn again below it. In
    another process (a DataLoader worker), whose copies of the bars are not on screen, a plain write."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.pid = os.getpid()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if os.getpid() == self.pid:
                tqdm.write(line, file=sys.stderr)
            else:
                sys.stderr.write(line + "\n")
        except Exception:  # a handler must not raise; logging reports it on stderr
            self.handleError(record)


def warnings_above_progress_bars() -> None:
    """Show the ``lstmvision`` loggers' warnings on lines of their own above the progress bars (once per
    process; records still propagate to any handler the caller set up, such as pytest's)."""
    logger = logging.getLogger("lstmvision")
    if not any(isinstance(handler, _AboveProgressBars) for handler in logger.handlers):
        logger.addHandler(_AboveProgressBars())


# errors that name a problem in what the user gave (a key, a path, a file, a shape): shown as one line
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    LookupError,
    OSError,
    RuntimeError,
)

_WORKER = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.")


def error_line(error: BaseException) -> str:
    """The message of ``error`` as a person should read it: one or two lines, no traceback.

    An error re-raised by a DataLoader worker carries the worker's traceback in its text; the original
    exception's last line is shown instead."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if _WORKER.search(text):
        lines = [line for line in text.splitlines() if line.strip()]
        original = lines[-1] if lines else text
        text = re.sub(r"^\w+(Error|Exception): ", "", original)
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(_shorten(lines)) or type(error).__name__


def _shorten(lines: Iterable[str]) -> list[str]:
    kept = list(lines)
    return kept if len(kept) <= 3 else [*kept[:2], f"... ({len(kept) - 2} more lines; --debug shows all)"]


_DEBUG = {"on": False}


def request_debug(on: bool = True) -> None:
    """Ask every command of this process to show tracebacks instead of one-line errors (``--debug``)."""
    _DEBUG["on"] = on


def debug_requested() -> bool:
    """Whether ``--debug`` was given to the ``lstmvision`` command running in this process."""
    return _DEBUG["on"]
