"""One safe way to read a torch file: ``torch.load(weights_only=True)`` with an error a person can act on.

A ``.ckpt``/``.pt``/``.pth`` file is a pickle, and unpickling can run any code the file names. Every
lstmvision path that reads such a file goes through :func:`safe_load`, which lets torch's restricted
unpickler rebuild only tensors and plain Python values (dicts, lists, numbers, strings, ...). A file
naming anything else is refused before that thing is imported or called.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["UnsafeFileError", "check_safe", "safe_load"]


class UnsafeFileError(ValueError):
    """A torch file holds objects other than tensors and plain Python values; none of it was run."""


def safe_load(path: str | os.PathLike[str], *, what: str = "file") -> Any:
    """Read a torch-saved file onto the CPU, allowing only tensors and plain Python values.

    Args:
        path: the file (written by ``torch.save``, e.g. a Lightning checkpoint or a state dict).
        what: what the file is, for the error messages ("checkpoint", "weights file", ...).

    Raises:
        FileNotFoundError: no such file.
        UnsafeFileError: the file holds some other object (a class instance, a function call such as
            ``os.system`` ...); it was refused and nothing it names was imported or executed.
        ValueError: the file is not a readable torch file (truncated, corrupt, another format).
    """
    return _load(Path(path), what, mmap=False)


def check_safe(path: str | os.PathLike[str], *, what: str = "file") -> Any:
    """Raise as :func:`safe_load` would, without reading the tensors of a file in torch's zip format;
    return what it holds, its tensors memory-mapped.

    For a caller that hands the file to another loader (Lightning's ``ckpt_path``) and needs only its
    plain values (hyper-parameters, the network record): the pickle is checked by the same restricted
    unpickler, while the tensor data stays memory-mapped, unread.
    """
    file = Path(path)
    # mmap needs the zip format (torch >= 1.6); an older file is read in full
    return _load(file, what, mmap=file.is_file() and zipfile.is_zipfile(file))


def _load(file: Path, what: str, *, mmap: bool) -> Any:
    if not file.is_file():
        raise FileNotFoundError(f"{what} not found: {file}")
    try:
        # weights_only=True is passed explicitly, so TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn it off
        return torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        # torch's restricted unpickler raises this on the first global or opcode it does not allow,
        # before calling or importing anything the file names
        detail = str(error).strip().splitlines()
        reason = next((line for line in detail if "Unsupported" in line), "")
        reason = reason.split(". Please", 1)[0].strip()  # drop torch's advice to allowlist the global
        if "GLOBAL" not in reason:  # e.g. an opcode a torch.save file never has: maybe not a torch file
            reason = f"not a torch file, or {reason or 'unreadable'}"
        raise UnsafeFileError(
            f"refused to load {what} {file}: it holds something other than tensors and plain Python "
            f"values, which could run code when unpickled; it was not executed ({reason})"
        ) from error
    except Exception as error:  # not a torch file at all, or a truncated/corrupt one
        raise ValueError(f"cannot read {what} {file} as a torch file: {error}") from error
