"""``lstmvision compare``: train several configs on the same data with the same seeds, tabulate them.

A comparison file (YAML) names the variants, each a training config of its own, and the seeds::

    experiment: multiview_compare          # outputs under <runs_dir>/<experiment>/
    seeds: [0, 1, 2]
    args: []                               # extra CLI arguments for every run
    variants:
      - name: MP-LSTM
        config: mp_lstm.yaml               # relative to this file
      - name: view 0 only
        config: single_view.yaml
        args: [--model.init_args.model.init_args.view, "0"]

Every (variant, seed) pair is one ``lstmvision fit`` (``--seed_everything`` set to the seed) followed by
a test of its best checkpoint (its last weights when no checkpoint was kept). The table gives, per
variant, the test accuracy as mean ± sample standard deviation over the seeds (and every seed's value),
the model's parameter count and the median wall time of a training step (forward, backward and
optimiser step; data loading excluded; the first steps are left out as warm-up). It is written as
``comparison.md`` and ``comparison.csv`` and printed.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["ComparisonRow", "StepTimer", "load_comparison", "main", "run_comparison"]

_TOP_KEYS = {"experiment", "seeds", "args", "variants", "runs_dir"}
_VARIANT_KEYS = {"name", "config", "args"}


class StepTimer(Callback):
    """Wall time of every training step (batch start to batch end), in seconds."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.times.append(time.perf_counter() - self._start)

    def median(self, warmup: int = 5) -> float:
        """Median step time after the first ``warmup`` steps (all steps when there are no more)."""
        kept = self.times[warmup:] or self.times
        return statistics.median(kept) if kept else math.nan


class Variant(NamedTuple):
    name: str
    config: Path
    args: list[str]


class Comparison(NamedTuple):
    experiment: str
    seeds: list[int]
    args: list[str]
    variants: list[Variant]
    runs_dir: str


class ComparisonRow(NamedTuple):
    """One line of the table."""

    name: str
    accuracies: list[float]
    parameters: int
    step_ms: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ValueError(f"{where} must be a list of command-line arguments, got {value!r}")
    return [str(v) for v in value]


def load_comparison(path: str | Path) -> Comparison:
    """Read and check a comparison file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"comparison file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable YAML file ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a mapping with keys {sorted(_TOP_KEYS)}, got {type(data).__name__}"
        )
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known keys are {sorted(_TOP_KEYS)}")
    experiment = data.get("experiment", "compare")
    if not isinstance(experiment, str) or not experiment:
        raise ValueError(f"{path}: experiment must be a non-empty string, got {experiment!r}")
    seeds = data.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
    ):
        raise ValueError(f"{path}: seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: seeds must not repeat, got {seeds}")
    entries = data.get("variants")
    if not isinstance(entries, list) or not entries:
        raise ValueError(
            f"{path}: variants must be a non-empty list of {{name, config, args}}, got {entries!r}"
        )
    variants = []
    for i, entry in enumerate(entries):
        where = f"{path}: variants[{i}]"
        if not isinstance(entry, dict) or "name" not in entry or "config" not in entry:
            raise ValueError(f"{where} must be a mapping with 'name' and 'config', got {entry!r}")
        unknown = sorted(set(entry) - _VARIANT_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; known keys are {sorted(_VARIANT_KEYS)}")
        config = path.parent / str(entry["config"])
        if not config.is_file():
            raise FileNotFoundError(f"{where}: config {config} does not exist")
        variants.append(Variant(str(entry["name"]), config, _strings(entry.get("args"), f"{where}.args")))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: variant names must be distinct, got {names}")
    runs_dir = data.get("runs_dir", "runs")
    return Comparison(
        experiment, list(seeds), _strings(data.get("args"), f"{path}: args"), variants, str(runs_dir)
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "variant"


def _train_and_test(args: list[str]) -> tuple[float, int, float]:
    """One fit + test through the CLI; returns (test accuracy, parameters, median step seconds)."""
    from lstmvision.commands.lightning import LstmVisionCLI, best_checkpoint

    command, sys.argv = sys.argv, sys.argv[:1]  # the run's arguments are `args`, not the compare command's
    try:
        cli = LstmVisionCLI(args=args, run=False)
    finally:
        sys.argv = command
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)  # type: ignore[attr-defined]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = best_checkpoint(cli.trainer)
    results = cli.trainer.test(
        cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, weights_only=True, verbose=False
    )
    if not results or "test/acc" not in results[0]:
        raise RuntimeError(f"the test of `lstmvision fit {' '.join(args)}` logged no test/acc")
    network = getattr(cli.model, "model", cli.model)
    parameters = sum(p.numel() for p in network.parameters())
    return float(results[0]["test/acc"]), parameters, timer.median()


def run_comparison(comparison: Comparison, extra: list[str] | None = None) -> list[ComparisonRow]:
    """Train and test every variant with every seed; write and return the table."""
    rows = []
    for variant in comparison.variants:
        accuracies, parameters, steps = [], 0, []
        for seed in comparison.seeds:
            args = [
                "--config",
                str(variant.config),
                *comparison.args,
                *variant.args,
                *(extra or []),
                "--seed_everything",
                str(seed),
                "--runs_dir",
                comparison.runs_dir,
                "--experiment",
                f"{comparison.experiment}/{_slug(variant.name)}_seed{seed}",
            ]
            accuracy, parameters, step = _train_and_test(args)
            print(
                f"[compare] {variant.name}, seed {seed}: test accuracy {accuracy:.4f}, {step * 1e3:.1f} ms/step"
            )
            accuracies.append(accuracy)
            steps.append(step)
        rows.append(ComparisonRow(variant.name, accuracies, parameters, statistics.median(steps) * 1e3))
    out = Path(comparison.runs_dir) / comparison.experiment
    write_table(rows, comparison.seeds, out)
    print(
        f"\n{markdown_table(rows, comparison.seeds)}\ntable: {out / 'comparison.md'}, {out / 'comparison.csv'}"
    )
    return rows


def markdown_table(rows: list[ComparisonRow], seeds: list[int]) -> str:
    lines = [
        f"| model | test accuracy (mean ± std over {len(seeds)} seeds) | per seed ({', '.join(map(str, seeds))}) "
        "| parameters | ms / training step |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        each = ", ".join(f"{100 * a:.1f}" for a in row.accuracies)
        lines.append(
            f"| {row.name} | {100 * row.mean:.1f} ± {100 * row.std:.1f} % | {each} | {row.parameters:,} "
            f"| {row.step_ms:.1f} |"
        )
    return "\n".join(lines)


def write_table(rows: list[ComparisonRow], seeds: list[int], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(markdown_table(rows, seeds) + "\n", encoding="utf-8")
    with (out / "comparison.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "accuracy_mean", "accuracy_std", *(f"accuracy_seed{s}" for s in seeds),
                         "parameters", "ms_per_step"])  # fmt: skip
        for row in rows:
            writer.writerow([row.name, f"{row.mean:.6f}", f"{row.std:.6f}", *(f"{a:.6f}" for a in row.accuracies),
                             row.parameters, f"{row.step_ms:.3f}"])  # fmt: skip


def main(argv: list[str] | None = None) -> list[ComparisonRow]:
    parser = argparse.ArgumentParser(
        prog="lstmvision compare",
        description="Train every variant of a comparison file with every seed, test each, and write a table "
        "(accuracy mean ± std, parameters, time per step) as Markdown and CSV. Extra arguments are passed to "
        "every run (e.g. --trainer.max_epochs 1).",
    )
    parser.add_argument(
        "--config", required=True, help="comparison file or packaged config name, e.g. multiview/compare"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds instead of the file's")
    parser.add_argument("--runs_dir", help="root folder of the runs instead of the file's")
    known, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    comparison = load_comparison(known.config)
    if known.seeds:
        if any(s < 0 for s in known.seeds) or len(set(known.seeds)) != len(known.seeds):
            parser.error(f"--seeds must be distinct integers >= 0, got {known.seeds}")
        comparison = comparison._replace(seeds=list(known.seeds))
    if known.runs_dir:
        comparison = comparison._replace(runs_dir=known.runs_dir)
    return run_comparison(comparison, extra)
