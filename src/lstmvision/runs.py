"""Run folders (docs/runs.md): where a run writes, which checkpoint ``--ckpt_path last`` / ``best`` means,
and the folder an evaluation of a run gets.

``<runs_dir>/<experiment>/version_<n>/`` is one ``fit``; ``<run>/<subcommand>-<timestamp>/`` one
``test``/``validate``/``predict`` of a checkpoint of that run.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

__all__ = [
    "VERSION_FOLDER",
    "evaluation_folder",
    "keep_csv_history",
    "newest_checkpoint",
    "next_version",
    "run_of",
    "scratch_folder",
    "versions",
]

VERSION_FOLDER = re.compile(r"version_(\d+)")


def versions(experiment: Path) -> list[Path]:
    """The ``version_<n>`` folders of an experiment, in the order of n."""
    found = [
        (int(m.group(1)), p) for p in experiment.glob("version_*") if (m := VERSION_FOLDER.fullmatch(p.name))
    ]
    return [path for _, path in sorted(found)]


def next_version(experiment: Path) -> Path:
    found = versions(experiment)
    return experiment / f"version_{int(found[-1].name.split('_')[1]) + 1 if found else 0}"


def newest_checkpoint(experiment: Path, pattern: str, flag: str) -> Path:
    """The newest ``pattern`` checkpoint of any version of an experiment, or an error naming the folders."""
    folders = [version / "checkpoints" for version in versions(experiment)]
    found = [path for folder in folders for path in folder.glob(pattern) if path.is_file()]
    if not found:
        searched = ", ".join(str(folder) for folder in folders) or f"no version_* folder in {experiment}"
        raise FileNotFoundError(
            f"--ckpt_path {flag}: no {pattern} checkpoint of experiment {experiment.name!r} (searched: "
            f"{searched}); give a checkpoint file or check --experiment / --runs_dir"
        )
    # newest by time written; between files written together (last.ckpt and a best-*.ckpt), last.ckpt
    return max(found, key=lambda path: (path.stat().st_mtime, path.name == "last.ckpt"))


def run_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint file belongs to (``<run>/checkpoints/<file>``), if it has one."""
    parent = checkpoint.parent
    if parent.name == "checkpoints" and VERSION_FOLDER.fullmatch(parent.parent.name):
        return parent.parent
    return None


def evaluation_folder(run: Path, subcommand: str) -> Path:
    """``<run>/<subcommand>-<timestamp>``: a new folder, never one that exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = run / f"{subcommand}-{stamp}", 1
    while folder.exists():
        n += 1
        folder = run / f"{subcommand}-{stamp}-{n}"
    return folder


def keep_csv_history(run: Path) -> None:
    """Lightning's CSV logger deletes an existing metrics.csv; a resumed run keeps it under another name."""
    current = run / "metrics.csv"
    if current.is_file():
        n = 1 + sum(1 for _ in run.glob("metrics.part*.csv"))
        current.rename(run / f"metrics.part{n}.csv")


def scratch_folder() -> Path:
    """A temporary folder removed when the process exits (what a dry run writes goes there)."""
    folder = Path(tempfile.mkdtemp(prefix="lstmvision-dry-run-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
