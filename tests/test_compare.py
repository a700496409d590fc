"""`lstmvision compare`: every variant of a comparison file trains and tests with every seed; the table."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lstmvision.cli import main
from lstmvision.commands.compare import ComparisonRow, load_comparison, markdown_table
from lstmvision.commands.configs import find_config

MULTIVIEW = find_config("multiview/compare")

# every run of the comparison, tiny: one step of training and one test batch
TINY = [
    "--trainer.max_steps", "1",  # not fast_dev_run: a dry run keeps no run folder (docs/runs.md)
    "--trainer.limit_val_batches", "1",
    "--trainer.limit_test_batches", "1",
    "--trainer.num_sanity_val_steps", "0",
    "--trainer.enable_model_summary", "false",
    "--data.init_args.image_size", "24",
    "--data.init_args.seq_length", "4",
    "--data.init_args.batch_size", "2",
    "--data.init_args.num_workers", "0",
    "--model.init_args.model.init_args.hidden_size", "4",
]  # fmt: skip


def test_the_multiview_comparison_runs_every_variant_and_writes_the_table(tmp_path: Path) -> None:
    main(["compare", "--config", str(MULTIVIEW), "--seeds", "0", "1", "--runs_dir", str(tmp_path), *TINY])
    out = tmp_path / "multiview_compare"
    with (out / "comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    names = [row["model"] for row in rows]
    assert names == [
        "MP-LSTM",
        "early fusion",
        "late fusion",
        "MV-LSTM",
        "view 0 only",
        "view 1 only",
        "view 2 only",
    ]
    for row in rows:
        accuracies = [float(row["accuracy_seed0"]), float(row["accuracy_seed1"])]
        assert all(0.0 <= a <= 1.0 for a in accuracies)
        assert float(row["accuracy_mean"]) == pytest.approx(sum(accuracies) / 2, abs=1e-6)
        assert int(row["parameters"]) > 0 and float(row["ms_per_step"]) > 0
    # the single views share an architecture; MP-LSTM reads three views, so it has more parameters
    params = {row["model"]: int(row["parameters"]) for row in rows}
    assert params["view 0 only"] == params["view 1 only"] == params["view 2 only"] < params["MP-LSTM"]
    table = (out / "comparison.md").read_text()
    assert table.count("\n") == 2 + 7 and "| MP-LSTM |" in table
    # each (variant, seed) ran as a run of its own
    assert (out / "mp_lstm_seed1").is_dir() and (out / "view_2_only_seed0").is_dir()


def test_markdown_table_gives_mean_and_sample_std() -> None:
    rows = [ComparisonRow("A", [0.5, 0.7, 0.6], 1234, 12.345)]
    table = markdown_table(rows, [0, 1, 2])
    assert "| A | 60.0 ± 10.0 % | 50.0, 70.0, 60.0 | 1,234 | 12.3 |" in table


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seeds: [0]\n", "variants must be a non-empty list"),
        ("variants: [{name: a, config: missing.yaml}]\n", "config .*missing.yaml does not exist"),
        ("variants: [{name: a}]\n", r"variants\[0\] must be a mapping with 'name' and 'config'"),
        ("variantz: []\n", r"unknown keys \['variantz'\]"),
        ("seeds: [0, 0]\nvariants: [{name: a, config: c.yaml}]\n", "seeds must not repeat"),
        (
            "seeds: [-1]\nvariants: [{name: a, config: c.yaml}]\n",
            "seeds must be a non-empty list of integers >= 0",
        ),
        ("variants: [{name: a, config: c.yaml, arg: []}]\n", r"unknown keys \['arg'\]"),
        ("variants: [{name: a, config: c.yaml}, {name: a, config: c.yaml}]\n", "names must be distinct"),
        ("variants: [{name: a, config: c.yaml, args: x}]\n", "args must be a list of command-line arguments"),
        ("[1, 2]\n", "expected a mapping"),
    ],
)
def test_bad_comparison_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text("experiment: x\n")
    path = tmp_path / "compare.yaml"
    path.write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        load_comparison(path)
    assert str(tmp_path) in str(error.value), "the error names the file"
