"""The OpenSTL benchmark configs (configs/openstl/): each one's setup equals the OpenSTL numbers in its header.

Every config under ``openstl/`` carries, in its header comment, an ``# openstl:`` block: the OpenSTL
settings it mirrors under OpenSTL's own names (verified against chengtan9907/OpenSTL; docs/openstl.md
cites each source). These tests read that block and check every key that defines the setup against the
config itself, so the two cannot drift apart; a key of the block that this library cannot express must be
listed under ``unmatched`` and explained in the header's deviations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lstmvision.commands.configs import config_root, list_configs
from lstmvision.commands.lightning import LstmVisionCLI

OPENSTL_ROOT = config_root() / "openstl"
OPENSTL = sorted(OPENSTL_ROOT.rglob("*.yaml"))
METHODS = ("convlstm", "predrnn", "predrnnv2", "e3dlstm")

# OpenSTL's method name -> the network that stands for it here
MODEL_CLASSES = {
    "ConvLSTM": "lstmvision.models.ConvLSTMPredictor",
    "PredRNN": "lstmvision.models.PredRNNPredictor",
    "PredRNNv2": "lstmvision.models.PredRNNv2",
    "E3DLSTM": "lstmvision.models.E3DLSTMPredictor",
}
DATA_MODULES = {"mmnist": "lstmvision.data.MovingMNISTDataModule", "kth": "lstmvision.data.KTHDataModule"}
# where the published figures and the configs come from, as each header names them
SOURCES = ("chengtan9907/OpenSTL", "docs/en/model_zoos/video_benchmarks.md", "openstl/utils/parser.py")


def openstl_block(config: Path) -> dict[str, Any]:
    """The ``# openstl:`` block of a config's header comment, parsed as YAML."""
    lines = config.read_text().splitlines()
    start = lines.index("# openstl:")
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        body.append(line[2:])  # drop "# ", keep the indentation under "openstl:"
    block = yaml.safe_load("\n".join(["openstl:", *body]))["openstl"]
    assert isinstance(block, dict) and block, f"{config}: empty # openstl: block"
    return block


def header(config: Path) -> str:
    """The comment lines before the first key."""
    lines = config.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))])


def _id(config: Path) -> str:
    return config.relative_to(OPENSTL_ROOT).with_suffix("").as_posix()


def test_both_data_sets_have_the_four_models_and_the_configs_are_listed() -> None:
    assert {_id(p) for p in OPENSTL} == {f"{d}/{m}" for d in ("mmnist", "kth") for m in METHODS}
    listed = list_configs()
    assert all(f"openstl/{_id(p)}" in listed for p in OPENSTL), "`lstmvision configs` must list them"


@pytest.mark.parametrize("config", OPENSTL, ids=_id)
def test_header_names_its_sources_figures_and_deviations(config: Path) -> None:
    text = header(config)
    block = openstl_block(config)
    dataname, method = block["dataname"], block["method"]
    assert f"configs/{dataname}/{method}.py" in text, "the OpenSTL config it mirrors"
    for source in SOURCES:
        assert source in text, f"header should cite {source}"
    published = text[text.index("# Published") :]
    for metric in ("MSE", "MAE", "SSIM", "PSNR"):
        assert f"{metric} " in published, f"published {metric} missing"
    assert "Where this cannot equal OpenSTL" in text
    deviations = text[text.index("Where this cannot equal OpenSTL") :]
    for key in block["unmatched"]:
        assert f"{key} {block[key]}" in deviations, f"unmatched {key!r} needs its reason in the deviations"


def _sampling_errors(block: dict[str, Any], sampling: dict[str, Any]) -> list[str]:
    args = sampling.get("init_args", {})
    if block["reverse_scheduled_sampling"] == 1:
        expected_class = "lstmvision.tasks.ReverseScheduledSampling"
        pairs = [
            ("r_sampling_step_1", "step_1"),
            ("r_sampling_step_2", "step_2"),
            ("r_exp_alpha", "exp_alpha"),
        ]
    else:
        assert block["scheduled_sampling"] == 1, "every OpenSTL setup here uses one of the two schedules"
        expected_class = "lstmvision.tasks.ScheduledSampling"
        pairs = [
            ("sampling_start_value", "start_value"),
            ("sampling_changing_rate", "changing_rate"),
            ("sampling_stop_iter", "stop_iter"),
        ]
    errors = [] if sampling["class_path"] == expected_class else [f"sampling {sampling['class_path']}"]
    errors += [
        f"sampling.{ours} {args.get(ours)} != {key} {block[key]}"
        for key, ours in pairs
        if args.get(ours) != block[key]
    ]
    return errors


@pytest.mark.parametrize("config", OPENSTL, ids=_id)
def test_setup_equals_the_openstl_numbers_of_its_header(config: Path) -> None:
    block = openstl_block(config)
    cfg = yaml.safe_load(config.read_text())
    task = cfg["model"]["init_args"]
    net = task["model"]["init_args"]
    data = cfg["data"]["init_args"]
    trainer = cfg["trainer"]
    optimizer, scheduler = task["optimizer"], task["lr_scheduler"]
    steps, channels, height, width = block["in_shape"]
    total = block["pre_seq_length"] + block["aft_seq_length"]

    # OpenSTL key -> (this config's value, OpenSTL's value)
    pairs: dict[str, tuple[Any, Any]] = {
        "method": (task["model"]["class_path"], MODEL_CLASSES[block["method"]]),
        "dataname": (cfg["data"]["class_path"], DATA_MODULES[block["dataname"]]),
        "in_shape": (
            [steps, net["in_channels"], data["image_size"], data["image_size"]],
            [steps, channels, height, width],
        ),
        "pre_seq_length": (net["input_length"], block["pre_seq_length"]),
        "aft_seq_length": ([net["total_length"], data["seq_length"]], [total, total]),
        "num_hidden": (net["num_hidden"], block["num_hidden"]),
        "filter_size": (net["filter_size"], block["filter_size"]),
        "stride": (1, block["stride"]),  # lstmvision's cells always step 1
        "patch_size": (net["patch_size"], block["patch_size"]),
        "layer_norm": (net["layer_norm"], bool(block["layer_norm"])),
        "loss": (task.get("l1_weight", 0.0), {"mse": 0.0, "mse+l1": 1.0}[block["loss"]]),
        "opt": (optimizer["class_path"], {"adam": "torch.optim.Adam"}[block["opt"]]),
        "lr": ([optimizer["init_args"]["lr"], scheduler["init_args"]["max_lr"]], [block["lr"]] * 2),
        "weight_decay": (optimizer["init_args"].get("weight_decay", 0.0), block["weight_decay"]),
        "sched": (
            scheduler["class_path"],
            {"onecycle": "torch.optim.lr_scheduler.OneCycleLR"}[block["sched"]],
        ),
        "final_div_factor": (scheduler["init_args"]["final_div_factor"], block["final_div_factor"]),
        "batch_size": (data["batch_size"], block["batch_size"]),
        "epoch": ([trainer["max_epochs"], trainer.get("max_steps", -1)], [block["epoch"], -1]),
        "seed": (cfg["seed_everything"], block["seed"]),
        "decouple_beta": (task.get("decouple_beta"), block.get("decouple_beta")),
    }
    if "window_length" in block:
        pairs["window_length"] = (net["window_length"], block["window_length"])
    if "train_size" in block:  # generated training clips per epoch (Moving MNIST)
        pairs["train_size"] = ([data["train_size"], data["train_path"]], [block["train_size"], None])
    for key in ("train_persons", "test_persons", "fast_stride"):  # KTH's split and clip starts
        if key in block:
            pairs[key] = (data[key], block[key])

    handled = {*pairs, "scheduled_sampling", "reverse_scheduled_sampling", "unmatched"}
    handled |= {k for k in block if k.startswith(("sampling_", "r_sampling_", "r_exp_"))}
    assert set(block) <= handled, f"header keys no test checks: {sorted(set(block) - handled)}"

    errors = [
        f"{key}: config {ours!r} != OpenSTL {theirs!r}"
        for key, (ours, theirs) in pairs.items()
        if ours != theirs and key not in block["unmatched"]
    ]
    errors += _sampling_errors(block, task["sampling"])
    # the one-cycle length is the whole run, filled in by the task from max_epochs
    errors += [f"lr_scheduler.{k} is set" for k in ("total_steps", "epochs") if k in scheduler["init_args"]]
    assert not errors, "\n".join(errors)
    for key in block["unmatched"]:
        assert pairs[key][0] != pairs[key][1], f"{key} is listed as unmatched but matches"


@pytest.mark.parametrize("config", OPENSTL, ids=_id)
def test_builds_without_its_data_then_names_the_missing_files(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip_pending_names: Callable[[Path], None]
) -> None:
    skip_pending_names(config)
    monkeypatch.chdir(tmp_path)  # the data paths are relative: nothing is there
    cli = LstmVisionCLI(args=["--config", str(config), "--runs_dir", str(tmp_path / "runs")], run=False)
    block = openstl_block(config)
    network = cli.model.model
    assert f"lstmvision.models.{type(network).__name__}" == MODEL_CLASSES[block["method"]]
    assert sum(p.numel() for p in network.parameters()) > 0
    if block["dataname"] == "mmnist":
        with pytest.raises(
            FileNotFoundError, match=r"test_path file not found: data/moving_mnist/mnist_test_seq\.npy"
        ):
            cli.datamodule.setup("test")
        with pytest.raises(FileNotFoundError, match=r"MNIST idx path not found: data/moving_mnist"):
            cli.datamodule.setup("fit")
    else:
        with pytest.raises(FileNotFoundError, match=r"KTH root folder not found: data/kth"):
            cli.datamodule.setup("fit")
