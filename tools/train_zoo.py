"""Train one model zoo entry, test it, and write it into the zoo with its record (docs/zoo.md).

For an entry this script

1. runs ``lstmvision fit --config CONFIG [overrides]`` (timed: the training time recorded);
2. exports the best checkpoint (``best-*.ckpt``; ``last.ckpt`` when the run kept no best one) to a
   staging folder (``model.safetensors`` + ``model.json``, as ``lstmvision export`` does);
3. tests those exported weights exactly as a user will: ``lstmvision test --pretrained FOLDER --config
   CONFIG [overrides]`` on the whole test set (the config's own precision), then again on the first
   ``--subset_size`` clips in fp32 on the CPU (``tests/models/test_zoo.py`` reruns this one and compares
   the figures within 1e-4 relative);
4. copies the folder to ``<zoo root>/<name>/``, records the SHA-256 digest of the weights, the commands,
   the time, the machine, the precisions, the test sets and their figures (every number of the test's
   ``metrics.json``/``scores.json``) and the lstmvision version in ``<zoo root>/index.json``, and loads
   the entry back by name to check it.

Usage (from the repository root, with lstmvision importable, e.g. ``PYTHONPATH=src``)::

    python tools/train_zoo.py convlstm_demo              # one of the four entries of ENTRIES
    python tools/train_zoo.py --all                      # all four, one after the other
    python tools/train_zoo.py my_entry --config moving_mnist/convlstm --architecture convlstm \\
        --zoo_root /tmp/zoo -- --trainer.max_steps 3     # an entry of one's own; after --: fit overrides
    python tools/train_zoo.py --table [--zoo_root DIR]   # the markdown table of docs/zoo.md

The zoo root defaults to ``src/lstmvision/zoo`` of this repository; ``--work_dir`` (default: a new
temporary folder, kept) holds the runs. An entry already in the index is replaced only with ``--replace``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from lstmvision import __version__
from lstmvision.commands.configs import find_config
from lstmvision.commands.export import export_checkpoint
from lstmvision.models import create_model, list_models
from lstmvision.models.pretrained import WEIGHTS_FILE, sha256_of
from lstmvision.models.zoo import (
    INDEX_FILE,
    flatten_figures,
    headline_figures,
    read_index,
    write_entry,
    zoo_table,
)
from lstmvision.precision import resolve_precision

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_ZOO = REPOSITORY / "src" / "lstmvision" / "zoo"
SUBSET_SIZE = 64
# the subset test: fp32 on the CPU, so that it is deterministic and reproducible on any machine
FP32_CPU = ["--trainer.precision", "32-true", "--trainer.accelerator", "cpu", "--trainer.devices", "1"]


class Entry(NamedTuple):
    """A zoo entry to train: a packaged config, the registered model it builds, fit overrides."""

    config: str
    architecture: str
    default: bool = True
    overrides: tuple[str, ...] = ()


# the shipped entries: each trains a packaged config as it is and tests it on that config's test set
ENTRIES = {
    "convlstm_demo": Entry("moving_mnist_demo", "convlstm"),
    "cnn_lstm_actions": Entry("actions/cnn_lstm", "cnn_lstm"),
    "mp_lstm_multiview": Entry("multiview/mp_lstm", "mp_lstm"),
    "sa_lstm_captioned_digits": Entry("captioned_digits/sa_lstm", "sa_lstm"),
}


def _say(line: str) -> None:
    print(f"train_zoo: {line}", file=sys.stderr, flush=True)


def _lstmvision(args: list[str], log: Path) -> tuple[float, str]:
    """Run ``lstmvision ARGS`` in a fresh process; its output goes to the terminal and to ``log``.
    Returns the wall time and the standard output; a failure ends the script naming the log."""
    command = [sys.executable, "-m", "lstmvision.cli", *args]
    _say(f"$ {shlex.join(['lstmvision', *args])}")
    start = time.monotonic()
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            sys.stdout.write(line)
            handle.write(line)
            lines.append(line)
        code = process.wait()
    seconds = time.monotonic() - start
    if code != 0:
        raise SystemExit(f"train_zoo: `lstmvision {args[0]}` failed with exit code {code}; its output: {log}")
    return seconds, "".join(lines)


def _printed_path(output: str, label: str) -> Path:
    """The path a command printed after ``label:`` (the last such line)."""
    found = re.findall(rf"^{re.escape(label)}: (.+)$", output, flags=re.MULTILINE)
    if not found:
        raise SystemExit(f"train_zoo: the command printed no '{label}:' line")
    return Path(found[-1].strip())


def _checkpoint(run: Path) -> Path:
    """The run's best checkpoint, or its last one when it kept no best one."""
    best = sorted((run / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    last = run / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise SystemExit(f"train_zoo: no checkpoint in {run / 'checkpoints'}")
    _say(f"no best-*.ckpt in {run / 'checkpoints'} (no validation ran?): exporting {last.name}")
    return last


def _machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.MULTILINE)
        cpu = names[0].strip() if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": gpu, "torch": torch.__version__}


def _test(folder: Path, base: list[str], extra: list[str], runs: Path, log: Path) -> dict[str, Any]:
    """Test the exported weights in ``folder``; the figures, the test set and the precision."""
    args = ["test", "--pretrained", str(folder), *base, *extra, "--runs_dir", str(runs)]
    _, output = _lstmvision(args, log)
    out = _printed_path(output, "outputs")
    metrics = out / "metrics.json" if (out / "metrics.json").is_file() else out / "scores.json"
    if not metrics.is_file():
        raise SystemExit(f"train_zoo: the test wrote no metrics.json or scores.json in {out}")
    figures = flatten_figures(json.loads(metrics.read_text()))
    config = yaml.safe_load((out / "config.yaml").read_text()) if (out / "config.yaml").is_file() else {}
    trainer = (config or {}).get("trainer") or {}
    data = (config or {}).get("data") or {}
    clips = next((figures[k] for k in ("num_sequences", "count", "num_videos") if k in figures), None)
    return {
        "figures": figures,
        "data": {"class_path": data.get("class_path"), "init_args": data.get("init_args") or {}},
        "clips": int(clips) if clips is not None else None,
        "precision": str(
            resolve_precision(trainer.get("precision"), trainer.get("accelerator", "auto")).precision
        ),
        "outputs": str(out),
    }


def train_entry(
    name: str,
    entry: Entry,
    *,
    zoo_root: Path,
    work_dir: Path,
    subset_size: int = SUBSET_SIZE,
    replace: bool = False,
) -> dict[str, Any]:
    """Train, test, export and record the zoo entry ``name``; return its index record."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise SystemExit(f"train_zoo: entry name {name!r} must be lowercase letters, digits and '_'")
    if name in list_models():
        raise SystemExit(f"train_zoo: {name!r} is a registered model name; a zoo entry needs its own name")
    if entry.architecture not in list_models():
        raise SystemExit(f"train_zoo: unknown architecture {entry.architecture!r}; known: {list_models()}")
    if (zoo_root / INDEX_FILE).is_file() and name in read_index(zoo_root) and not replace:
        raise SystemExit(f"train_zoo: {name!r} is already in {zoo_root}; give --replace to train it again")
    find_config(entry.config)  # an unknown config fails now, not after the training
    runs, logs = work_dir / "runs", work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    experiment = ["--experiment", f"zoo_{name}"]
    base = ["--config", entry.config, *entry.overrides]

    seconds, output = _lstmvision(
        ["fit", *base, *experiment, "--runs_dir", str(runs)], logs / f"{name}-fit.log"
    )
    run = _printed_path(output, "run directory")
    checkpoint = _checkpoint(run)
    fit_config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    trainer = fit_config.get("trainer") or {}
    training_precision = resolve_precision(trainer.get("precision"), trainer.get("accelerator", "auto"))

    staging = work_dir / "export" / name
    if staging.exists():
        shutil.rmtree(staging)
    export_checkpoint(checkpoint, staging)

    tests = [*experiment[:1], f"zoo_{name}_test"]
    full = _test(staging, base, tests, runs, logs / f"{name}-test.log")
    subset_args = ["--data.init_args.test_size", str(subset_size), *FP32_CPU]
    subset = _test(staging, base, [*tests, *subset_args], runs, logs / f"{name}-test-subset.log")

    target = zoo_root / name
    zoo_root.mkdir(parents=True, exist_ok=True)
    scratch = zoo_root / f".{name}.tmp"
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(staging, scratch)
    if target.exists():
        shutil.rmtree(target)
    os.replace(scratch, target)

    def command(*args: str) -> str:
        return shlex.join(["lstmvision", *args])

    record = {
        "architecture": entry.architecture,
        "default": entry.default,
        "folder": name,
        "sha256": sha256_of(target / WEIGHTS_FILE),
        "size_bytes": (target / WEIGHTS_FILE).stat().st_size,
        "config": entry.config,
        "lstmvision_version": __version__,
        "training": {
            "command": command("fit", *base),
            "seconds": round(seconds, 1),
            "precision": str(training_precision.precision),
            "machine": _machine(),
            "checkpoint": checkpoint.name,
        },
        "test": {
            "command": command("test", "--pretrained", name, *base),
            "data": full["data"],
            "clips": full["clips"],
            "precision": full["precision"],
            "figures": full["figures"],
        },
        "test_subset": {
            "command": command("test", "--pretrained", name, *base, *subset_args),
            "args": [*base, *subset_args],  # after `lstmvision test --pretrained NAME`
            "data": subset["data"],
            "clips": subset["clips"],
            "precision": subset["precision"],
            "figures": subset["figures"],
        },
    }
    index = write_entry(zoo_root, name, record)
    # the entry loads back by name, its digest checked, with the weights that were tested
    _load_back(zoo_root, name)
    _say(f"wrote {target} and its record in {index}")
    _say(f"test figures: {headline_figures(full['figures'])} over {full['clips']} clips")
    return record


def _load_back(zoo_root: Path, name: str) -> None:
    """Load the entry by name from ``zoo_root`` as a user would (digest checked), or fail."""
    previous = os.environ.get("LSTMVISION_ZOO")
    os.environ["LSTMVISION_ZOO"] = str(zoo_root)
    try:
        create_model(name, pretrained=True)
    finally:
        if previous is None:
            del os.environ["LSTMVISION_ZOO"]
        else:
            os.environ["LSTMVISION_ZOO"] = previous


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if "--" in argv:  # what follows `--` goes to `lstmvision fit` (and the tests) as it is
        at = argv.index("--")
        argv, overrides = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="tools/train_zoo.py",
        description="Train a model zoo entry, test it, and write it into the zoo with its record.",
        epilog=f"shipped entries: {', '.join(f'{n} ({e.config})' for n, e in ENTRIES.items())}",
    )
    parser.add_argument("name", nargs="?", help="the zoo entry to train")
    parser.add_argument("--all", action="store_true", help="train every shipped entry")
    parser.add_argument("--config", help="a packaged config name or YAML (an entry of one's own)")
    parser.add_argument(
        "--architecture", help="the registered model the config builds (an entry of one's own)"
    )
    parser.add_argument(
        "--not_default", action="store_true", help="do not make it its architecture's default entry"
    )
    parser.add_argument(
        "--zoo_root", type=Path, default=DEFAULT_ZOO, help=f"zoo folder (default {DEFAULT_ZOO})"
    )
    parser.add_argument(
        "--work_dir", type=Path, default=None, help="runs and logs (default: a new temp folder)"
    )
    parser.add_argument("--subset_size", type=int, default=SUBSET_SIZE, help="clips of the fp32 subset test")
    parser.add_argument("--replace", action="store_true", help="train again an entry already in the index")
    parser.add_argument("--table", action="store_true", help="print the markdown table of the zoo and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(zoo_table(args.zoo_root), end="")
        return
    if args.subset_size < 1:
        parser.error(f"--subset_size must be >= 1, got {args.subset_size}")
    if args.all == (args.name is not None):
        parser.error("give one entry name, or --all")
    names = list(ENTRIES) if args.all else [args.name]
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="lstmvision-zoo-"))
    _say(f"runs and logs go to {work_dir}")
    for name in names:
        entry = ENTRIES.get(name)
        if args.config or args.architecture or entry is None:
            if not (args.config and args.architecture):
                parser.error(f"{name!r} is not a shipped entry: give --config and --architecture")
            entry = Entry(args.config, args.architecture)
        if args.not_default:
            entry = entry._replace(default=False)
        if overrides:
            entry = entry._replace(overrides=(*entry.overrides, *overrides))
        train_entry(
            name,
            entry,
            zoo_root=args.zoo_root,
            work_dir=work_dir,
            subset_size=args.subset_size,
            replace=args.replace,
        )


if __name__ == "__main__":
    main()
