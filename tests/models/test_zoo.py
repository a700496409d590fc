"""The model zoo (docs/zoo.md): a tiny entry written into a temporary zoo (``$LSTMVISION_ZOO``) loads by
name with exactly its weights, its digest checked; list_models(pretrained=True); overrides that change
the architecture are refused; `lstmvision test|forecast --pretrained`; folders of one's own. Last, every
entry of the shipped zoo reproduces its recorded subset figures offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from safetensors.torch import load_file
from tiny_runs import TINY_DEMO_NETWORK

from lstmvision.cli import main as cli_main
from lstmvision.commands import forecast
from lstmvision.commands.demo import demo_config
from lstmvision.models import ConvLSTMPredictor, create_model, list_models, load_pretrained, save_pretrained
from lstmvision.models.pretrained import ChecksumError, sha256_of
from lstmvision.models.zoo import (
    ZOO_ENV,
    compare_figures,
    flatten_figures,
    read_index,
    write_entry,
    zoo_root,
    zoo_table,
)

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "tiny_convlstm"
# the network of the tiny demo run of tests/test_cli.py (TINY), 32x32 frames, 4 observed + 4 predicted
ARGS: dict[str, Any] = {
    "in_channels": 1,
    "patch_size": 4,
    "num_hidden": [4],
    "filter_size": 3,
    "input_length": 4,
    "total_length": 8,
    "layer_norm": False,
}
DATA = {
    "class_path": "lstmvision.data.MovingMNISTDataModule",
    "init_args": {"num_digits": 2, "image_size": 32, "seq_length": 8, "test_size": 6, "seed": 0},
}
TEST_ARGS = [
    "--config", str(demo_config()),
    *TINY_DEMO_NETWORK,
    "--data.init_args.test_size", "6", "--data.init_args.batch_size", "3",
    "--data.init_args.num_workers", "0", "--trainer.enable_progress_bar", "false",
    "--trainer.precision", "32-true", "--trainer.accelerator", "cpu",
]  # fmt: skip


def _write_zoo(root: Path, name: str = NAME, seed: int = 0, default: bool = True) -> ConvLSTMPredictor:
    """A tiny ConvLSTM predictor exported into ``root/name`` and recorded in ``root/index.json``."""
    torch.manual_seed(seed)
    model = ConvLSTMPredictor(**ARGS)
    save_pretrained(model, root / name, init_args=ARGS, metadata={"data": DATA})
    weights = root / name / "model.safetensors"
    record = {
        "architecture": "convlstm",
        "default": default,
        "sha256": sha256_of(weights),
        "size_bytes": weights.stat().st_size,
        "config": "moving_mnist_demo",
        "training": {"command": "lstmvision fit --config moving_mnist_demo", "seconds": 75.0},
        "test": {"data": DATA, "clips": 6, "precision": "32-true", "figures": {"model.mse": 1.5}},
    }
    write_entry(root, name, record)
    return model


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, ConvLSTMPredictor]:
    root = tmp_path / "zoo"
    model = _write_zoo(root)
    monkeypatch.setenv(ZOO_ENV, str(root))
    return root, model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_an_entry_loads_by_name_and_by_architecture_with_exactly_its_weights(
    zoo: tuple[Path, ConvLSTMPredictor],
) -> None:
    root, saved = zoo
    assert zoo_root() == root
    by_name = create_model(NAME, pretrained=True)
    assert isinstance(by_name, ConvLSTMPredictor) and not by_name.training
    assert _same_weights(by_name, saved)
    stored = load_file(str(root / NAME / "model.safetensors"))
    assert all(torch.equal(by_name.state_dict()[k], v) for k, v in stored.items())
    assert _same_weights(create_model("convlstm", pretrained=True), saved)  # the default entry
    with pytest.raises(ValueError, match=r"no pretrained weights are available for model 'predrnn' "):
        create_model("predrnn", pretrained=True)


def test_a_changed_weights_file_is_named_with_both_digests(zoo: tuple[Path, ConvLSTMPredictor]) -> None:
    root, _ = zoo
    weights = root / NAME / "model.safetensors"
    expected = sha256_of(weights)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern of the last tensor changed: the file still parses
    weights.write_bytes(bytes(data))
    got = sha256_of(weights)
    message = (
        rf"checksum mismatch for {weights}: expected sha256 {expected} \(recorded in "
        rf"{root / 'index.json'}\), got {got}"
    )
    with pytest.raises(ChecksumError, match=message):
        create_model(NAME, pretrained=True)


def test_list_models_pretrained_lists_only_the_zoo(
    tmp_path: Path, zoo: tuple[Path, ConvLSTMPredictor]
) -> None:
    root, _ = zoo
    _write_zoo(root, "tiny_convlstm_other", seed=1, default=False)
    assert list_models(pretrained=True) == ["tiny_convlstm", "tiny_convlstm_other"]
    assert list_models("*other", pretrained=True) == ["tiny_convlstm_other"]
    assert "convlstm" in list_models() and NAME not in list_models()
    table = zoo_table()
    assert "| `tiny_convlstm` | `convlstm` (default) | MovingMNISTDataModule |" in table
    assert "1 min 15 s" in table and "model.mse 1.5 (6 test clips, 32-true)" in table
    with pytest.raises(ValueError, match=r"'tiny_convlstm' and 'tiny_convlstm_x' are both the default"):
        _write_zoo(root, "tiny_convlstm_x")
    assert sorted(read_index(root)) == ["tiny_convlstm", "tiny_convlstm_other"]  # left as it was
    empty = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"no model zoo index at {empty / 'index.json'}"):
        read_index(empty)


def test_overrides_that_change_the_architecture_are_refused(zoo: tuple[Path, ConvLSTMPredictor]) -> None:
    _, saved = zoo
    with pytest.raises(
        ValueError,
        match=r"zoo entry 'tiny_convlstm': num_hidden=\[8\] would change the architecture the weights were "
        r"trained for \(num_hidden=\[4\]\): .*shape differs",
    ):
        create_model(NAME, pretrained=True, num_hidden=[8])
    longer = create_model(NAME, pretrained=True, total_length=12)  # same weights, a longer forecast
    assert longer.total_length == 12 and _same_weights(longer, saved)
    same = create_model(NAME, pretrained=True, num_hidden=[4])  # the recorded value is no change
    assert _same_weights(same, saved)


def test_a_folder_of_ones_own_loads_with_its_digest_checked_when_recorded(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = ConvLSTMPredictor(**ARGS)
    folder = save_pretrained(model, tmp_path / "mine", init_args=ARGS)
    document = json.loads((folder / "model.json").read_text())
    assert document["sha256"] == sha256_of(folder / "model.safetensors")
    assert _same_weights(create_model("convlstm", pretrained=folder), model)
    assert _same_weights(create_model("convlstm", pretrained=str(folder)), model)
    with pytest.raises(ValueError, match=r"holds a ConvLSTMPredictor, not the model 'cnn_lstm' \(CNNLSTM\)"):
        create_model("cnn_lstm", pretrained=folder)
    with pytest.raises(ValueError, match=r"exported folder .*mine: num_hidden=\[2\] would change"):
        create_model("convlstm", pretrained=folder, num_hidden=[2])

    document["sha256"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(document))
    with pytest.raises(
        ChecksumError, match=rf"expected sha256 0{{64}} \(recorded in {folder / 'model.json'}\)"
    ):
        load_pretrained(folder)
    del document["sha256"]  # a folder exported before digests were recorded loads unchecked
    (folder / "model.json").write_text(json.dumps(document))
    assert _same_weights(load_pretrained(folder), model)


def _metrics(runs: Path) -> dict[str, float]:
    (found,) = runs.rglob("metrics.json")
    return flatten_figures(json.loads(found.read_text()))


def test_cli_test_with_pretrained_uses_the_entry_and_refuses_another_network(
    zoo: tuple[Path, ConvLSTMPredictor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = zoo
    cli_main(["test", "--pretrained", NAME, *TEST_ARGS, "--runs_dir", str(tmp_path / "a")])
    assert "weights: " + str(root / NAME / "model.safetensors") in capsys.readouterr().err
    by_name = _metrics(tmp_path / "a")
    # the same weights given as a folder give the same figures; other weights give others
    cli_main(["test", "--pretrained", str(root / NAME), *TEST_ARGS, "--runs_dir", str(tmp_path / "b")])
    assert _metrics(tmp_path / "b") == by_name
    _write_zoo(root, "tiny_convlstm_other", seed=1, default=False)
    cli_main(["test", "--pretrained", "tiny_convlstm_other", *TEST_ARGS, "--runs_dir", str(tmp_path / "c")])
    assert _metrics(tmp_path / "c")["model.mse"] != by_name["model.mse"]
    assert by_name["num_sequences"] == 6
    capsys.readouterr()

    wrong = [*TEST_ARGS, "--model.init_args.model.init_args.num_hidden", "[6]"]
    with pytest.raises(SystemExit) as stop:
        cli_main(["test", "--pretrained", NAME, *wrong, "--runs_dir", str(tmp_path / "d")])
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "lstmvision test: zoo entry 'tiny_convlstm' holds a different network than the config gives: "
        "model.init_args.model.init_args.num_hidden: weights [4], config [6]. Use --config "
        "moving_mnist_demo or drop the differing keys"
    )
    with pytest.raises(SystemExit) as stop:
        cli_main(["test", "--pretrained", "no_such_entry", *TEST_ARGS, "--runs_dir", str(tmp_path / "d")])
    assert stop.value.code == 2
    assert (
        "--pretrained no_such_entry: not a model zoo entry (entries: tiny_convlstm" in capsys.readouterr().err
    )


def test_forecast_with_pretrained_reads_the_training_frame_size_from_the_entry(
    zoo: tuple[Path, ConvLSTMPredictor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "video"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for number in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(frames / f"{number}.png")
    out = tmp_path / "out"
    (written,) = forecast.main(["--pretrained", NAME, str(frames), "--out", str(out), "--scale", "1"])
    with Image.open(written) as image:
        shown = [frame.copy() for frame in ImageSequence.Iterator(image)]
    assert len(shown) == 4 + 4  # observed + forecast
    assert shown[0].size[1] >= 32  # drawn at the entry's training size (32), not the video's 40
    for argv, message in (
        (["--checkpoint", "x.ckpt", "--pretrained", NAME], "not allowed with argument"),
        (["--pretrained", NAME, "--config", "c.yaml"], "--config goes with --checkpoint"),
    ):
        with pytest.raises(SystemExit) as stop:
            forecast.main([*argv, str(frames), "--out", str(out)])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err


def test_compare_figures_is_relative() -> None:
    assert compare_figures({"a": 100.0, "b": 0.5}, {"a": 100.005, "b": 0.5}, rel=1e-4) == []
    assert compare_figures({"a": 100.0}, {"a": 100.02}, rel=1e-4) == ["a: recorded 100.0, got 100.02"]
    assert compare_figures({"a": 1.0}, {}, rel=1e-4) == ["a: recorded 1.0, not in the test's figures"]
    assert flatten_figures({"model": {"mse": 2, "curve": [1, 2]}, "name": "x", "ok": None}) == {
        "model.mse": 2.0
    }


SHIPPED = Path(__file__).resolve().parents[2] / "src" / "lstmvision" / "zoo"


def test_shipped_zoo_reproduces_documented_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every shipped entry, loaded offline by name, gives on its recorded test subset (fp32, CPU) the
    figures its index records, within 1e-4 relative."""
    monkeypatch.setenv(ZOO_ENV, str(SHIPPED))
    entries = read_index(SHIPPED)
    if not entries:
        pytest.skip(
            f"the shipped model zoo ({SHIPPED / 'index.json'}) has no entries yet (tools/train_zoo.py)"
        )
    wrong = []
    for name, entry in entries.items():
        subset = entry.record["test_subset"]
        runs = tmp_path / name
        cli_main(["test", "--pretrained", name, *subset["args"], "--runs_dir", str(runs)])
        found = [*runs.rglob("metrics.json"), *runs.rglob("scores.json")]
        assert len(found) == 1, found
        got = flatten_figures(json.loads(found[0].read_text()))
        skipped = json.loads(found[0].read_text()).get("skipped") or {}  # e.g. METEOR without Java
        expected = {k: v for k, v in subset["figures"].items() if k.rsplit(".", 1)[-1] not in skipped}
        wrong += [f"{name}: {line}" for line in compare_figures(expected, got, rel=1e-4)]
        shutil.rmtree(runs)
    capsys.readouterr()
    assert wrong == []
