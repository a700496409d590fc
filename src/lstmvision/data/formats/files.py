"""What the binary-format readers share: a file check that names the file, the errors a damaged file
raises, and reading one array of an ``.npz`` archive."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["READ_ERRORS", "existing_file", "npz_array"]

# Errors numpy / zipfile / gzip raise on a damaged file; each is turned into a ValueError naming it.
READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or an error naming it when it is missing, not a file, or empty."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path}: expected a {what} file, got a directory or special file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: {what} file is empty")
    return path


def npz_array(data: Any, path: Path, key: str) -> np.ndarray:
    """Array ``key`` of the open archive ``data`` (read from ``path``), or a ValueError naming both."""
    if key not in data.files:
        raise ValueError(f"{path}: missing key '{key}' (found keys {sorted(data.files)})")
    try:
        return np.asarray(data[key])
    except READ_ERRORS as exc:
        raise ValueError(f"{path}: cannot read key '{key}' ({exc})") from exc
