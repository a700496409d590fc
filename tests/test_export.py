"""Safe checkpoints: every load path refuses pickled code; export -> load_pretrained gives the same model."""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from test_cli import TINY
from torch import nn

from lstmvision._io import UnsafeFileError, check_safe, safe_load
from lstmvision.cli import main as cli_main
from lstmvision.commands.configs import find_config
from lstmvision.commands.demo import demo_config
from lstmvision.commands.export import main as export_main
from lstmvision.encoders import SmallCNN
from lstmvision.models import (
    CNNLSTM,
    ConvLSTMPredictor,
    E3DLSTMClassifier,
    instantiate_model,
    load_pretrained,
    save_pretrained,
)
from lstmvision.models.pretrained import sha256_of

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
# the tiny demo run of tests/test_cli.py, on 4 training clips, one epoch
CONVLSTM_RUN = ["--config", str(demo_config()), *TINY, "--data.init_args.train_size", "4",
                "--data.init_args.val_size", "4", "--trainer.max_epochs", "1"]  # fmt: skip
CNN_LSTM_RUN = ["--config", str(find_config("actions/cnn_lstm")),
                "--model.init_args.model.init_args.encoder.init_args.channels", "[4]",
                "--model.init_args.model.init_args.encoder.init_args.pool_size", "2",
                "--model.init_args.model.init_args.encoder.init_args.feature_dim", "8",
                "--model.init_args.model.init_args.hidden_size", "6",
                "--data.init_args.image_size", "24", "--data.init_args.seq_length", "4",
                "--data.init_args.train_size", "4", "--data.init_args.val_size", "4",
                "--data.init_args.test_size", "4", "--data.init_args.batch_size", "4",
                "--data.init_args.num_workers", "0", "--trainer.max_epochs", "1", *QUIET]  # fmt: skip


@pytest.fixture(scope="module")
def convlstm_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    cli_main(["fit", *CONVLSTM_RUN, "--runs_dir", str(runs)])
    return runs / "moving_mnist_demo" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def cnn_lstm_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    cli_main(["fit", *CNN_LSTM_RUN, "--runs_dir", str(runs)])
    return runs / "actions_cnn_lstm" / "version_0" / "checkpoints" / "last.ckpt"


def _network_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


# ---------------------------------------------------------------- export -> load_pretrained round trip


def test_convlstm_export_round_trip(convlstm_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = export_main(["--checkpoint", str(convlstm_ckpt), "--format", "safetensors"])
    run = convlstm_ckpt.parents[1]
    assert folder == run / "export" / "last", "the default output folder is <run>/export/<checkpoint name>"
    assert str(folder / "model.safetensors") in capsys.readouterr().out
    document = json.loads((folder / "model.json").read_text())
    assert document["class_path"] == "lstmvision.models.ConvLSTMPredictor"
    assert document["init_args"]["num_hidden"] == [4] and document["init_args"]["total_length"] == 8
    assert document["task_class"] == "lstmvision.tasks.VideoPredictionTask"
    assert document["source_checkpoint"] == str(convlstm_ckpt.resolve())
    assert document["source_config"] == "checkpoint record", "the checkpoint says which network it holds"
    assert document["lstmvision_version"] == "0.1.0"

    weights = _network_weights(convlstm_ckpt)
    exported = load_file(folder / "model.safetensors")
    assert exported.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(exported[key], value), key

    # the reference: the network built by hand with the run's arguments, the checkpoint's weights
    reference = ConvLSTMPredictor(
        1, patch_size=4, num_hidden=[4], filter_size=3, input_length=4, total_length=8
    )
    reference.load_state_dict(weights)
    reference.eval()
    clips = torch.rand(2, 8, 1, 32, 32)
    with torch.no_grad():
        expected = reference(clips)
        for path in (folder, folder / "model.safetensors", folder / "model.json"):
            model = load_pretrained(path)
            assert isinstance(model, ConvLSTMPredictor) and not model.training
            got = model(clips)
            assert torch.equal(got, expected), f"max error {(got - expected).abs().max()} loading {path}"


def test_a_run_with_a_weight_average_exports_the_average_unless_told_otherwise(tmp_path: Path) -> None:
    cli_main(["fit", *CONVLSTM_RUN, "--model.init_args.ema_decay", "0.5", "--runs_dir", str(tmp_path)])
    ckpt = tmp_path / "moving_mnist_demo" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    shadow = {k.removeprefix("model."): v for k, v in saved["lstmvision_weight_average"]["shadow"].items()}
    training = _network_weights(ckpt)
    assert shadow.keys() == training.keys()
    assert any(not torch.equal(shadow[k], training[k]) for k in shadow), "one step: the average must differ"

    averaged = export_main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "average")])
    raw = export_main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "raw"), "--weights", "training"])
    for folder, expected in ((averaged, shadow), (raw, training)):
        exported = load_file(folder / "model.safetensors")
        for key, value in expected.items():
            assert torch.equal(exported[key], value), f"{folder.name}: {key}"
    updates = saved["lstmvision_weight_average"]["updates"]
    assert (
        json.loads((averaged / "model.json").read_text())["weights"]
        == f"average (ema_decay 0.5, {updates} updates)"
    )
    assert json.loads((raw / "model.json").read_text())["weights"] == "training"
    # a checkpoint without an average exports its training weights, and says so
    del saved["lstmvision_weight_average"]
    torch.save(saved, tmp_path / "no_average.ckpt")
    folder = export_main(["--checkpoint", str(tmp_path / "no_average.ckpt"), "--out", str(tmp_path / "none")])
    assert json.loads((folder / "model.json").read_text())["weights"] == "training"
    with pytest.raises(SystemExit):
        export_main(["--checkpoint", str(ckpt), "--weights", "shadow"])


OLD_SAMPLING_ARGS = {  # what predictors recorded before scheduled sampling moved to the task (issue 17)
    "sampling_start_value": 1.0,
    "sampling_changing_rate": 0.003,
    "sampling_stop_iter": 330,
    "reverse_scheduled_sampling": False,
    "r_sampling_step_1": 25000,
    "r_sampling_step_2": 50000,
    "r_exp_alpha": 5000.0,
}


def test_older_checkpoints_and_exports_with_sampling_arguments_still_load(
    convlstm_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # a checkpoint of an older release: its network record and its task hyperparameters hold old keys
    old = torch.load(convlstm_ckpt, weights_only=True)
    old["lstmvision"]["network"]["init_args"].update(OLD_SAMPLING_ARGS)
    hparams = old["hyper_parameters"]
    for key in ("optimizer", "lr_scheduler", "lr_scheduler_interval", "sampling"):
        hparams.pop(key, None)
    hparams.update(lr=0.002, optimizer="adam", weight_decay=0.0, lr_schedule="cosine")
    ckpt = tmp_path / "run" / "checkpoints" / "old.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(old, ckpt)
    weights = _network_weights(convlstm_ckpt)

    # load_pretrained and export rebuild the network without them, saying so
    model = load_pretrained(ckpt)
    assert "dropped the recorded r_exp_alpha, r_sampling_step_1" in caplog.text
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
    folder = export_main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "export")])
    assert not set(OLD_SAMPLING_ARGS) & set(json.loads((folder / "model.json").read_text())["init_args"])

    # an export written by an older release (its model.json records them too) loads
    _rewrite(folder, lambda document: document["init_args"].update(OLD_SAMPLING_ARGS))
    caplog.clear()
    assert isinstance(load_pretrained(folder), ConvLSTMPredictor)
    assert "dropped the recorded" in caplog.text and "docs/predictor.md" in caplog.text

    # `test --ckpt_path` with today's config: the old task keys are left out with a note
    capsys.readouterr()
    cli_main(["test", *CONVLSTM_RUN, "--runs_dir", str(tmp_path / "runs"), "--ckpt_path", str(ckpt)])
    err = capsys.readouterr().err
    assert f"checkpoint {ckpt}: its old lr, lr_schedule, optimizer, weight_decay left out" in err


def test_cnn_lstm_with_nested_encoder_export_round_trip(cnn_lstm_ckpt: Path, tmp_path: Path) -> None:
    folder = export_main(["--checkpoint", str(cnn_lstm_ckpt), "--out", str(tmp_path / "exported")])
    assert folder == tmp_path / "exported"
    document = json.loads((folder / "model.json").read_text())
    encoder = document["init_args"]["encoder"]
    assert encoder["class_path"] == "lstmvision.encoders.SmallCNN"
    assert encoder["init_args"]["channels"] == [4] and encoder["init_args"]["in_channels"] == 2
    assert encoder["init_args"]["weights"] is None, "the exported weights replace any initial weights file"
    assert document["task_class"] == "lstmvision.tasks.VideoClassificationTask"

    reference = CNNLSTM(
        10,
        SmallCNN(2, (4,), pool_size=2, feature_dim=8),
        in_channels=1,
        hidden_size=6,
        frame_stack=2,
    )
    reference.load_state_dict(_network_weights(cnn_lstm_ckpt))
    reference.eval()
    model = load_pretrained(folder / "model.safetensors")
    assert isinstance(model, CNNLSTM) and isinstance(model.frame_encoder, SmallCNN) and not model.training
    clips = torch.rand(3, 4, 1, 24, 24)
    with torch.no_grad():
        expected, got = reference(clips), model(clips)
    assert torch.equal(got, expected), f"max error {(got - expected).abs().max()}"


def test_save_pretrained_round_trip_and_checks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r"init_args\.layer is a Linear: init_args hold only JSON values"):
        save_pretrained(model, tmp_path / "a", init_args={"layer": nn.Linear(3, 4)})
    linear = nn.Linear(3, 4)
    with pytest.raises(
        ValueError,
        match=r"do not rebuild this model: shape differs \['bias: \(4,\) vs \(5,\)', 'weight: \(4, 3\) vs \(5, 3\)'\]",
    ):
        save_pretrained(linear, tmp_path / "b", init_args={"in_features": 3, "out_features": 5})
    with pytest.raises(ValueError, match=r"metadata must not set \['class_path'\]"):
        save_pretrained(linear, tmp_path / "c", init_args={}, metadata={"class_path": "x.Y"})
    folder = save_pretrained(
        linear, tmp_path / "d", init_args={"in_features": 3, "out_features": 4}, metadata={"note": "hi"}
    )
    document = json.loads((folder / "model.json").read_text())
    assert document["class_path"] == "torch.nn.modules.linear.Linear" and document["note"] == "hi"
    loaded = load_pretrained(folder)
    x = torch.rand(2, 3)
    assert isinstance(loaded, nn.Linear) and torch.equal(loaded(x), linear(x))


def test_onnx_export_from_the_cli_matches_the_checkpoint(
    convlstm_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    from lstmvision.export_onnx import run_onnx

    folder = export_main(["--checkpoint", str(convlstm_ckpt), "--format", "onnx", "--out", str(tmp_path)])
    assert folder == tmp_path and str(tmp_path / "model.onnx") in capsys.readouterr().out
    network = export_main(["--checkpoint", str(convlstm_ckpt), "--out", str(tmp_path / "st")])
    model = load_pretrained(network).eval()
    for batch, size in ((1, 16), (3, 24)):  # the graph's batch and frame size are dynamic
        frames = torch.rand(batch, model.input_length, 1, size, size)
        with torch.no_grad():
            expected = model(frames)
        err = (run_onnx(tmp_path / "model.onnx", frames) - expected).abs().max().item()
        assert err < 1e-4, f"onnxruntime differs from the checkpoint's network by {err}"


# ---------------------------------------------------------------- export errors


def test_export_errors_name_the_file_or_key(convlstm_ckpt: Path, tmp_path: Path) -> None:
    missing = tmp_path / "none.ckpt"
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {missing}"):
        export_main(["--checkpoint", str(missing)])
    with pytest.raises(ValueError, match="unknown export format 'gif'; supported: safetensors, onnx"):
        export_main(["--checkpoint", str(convlstm_ckpt), "--format", "gif"])

    # a checkpoint that contradicts the config given beside it: the differing keys, before any weight
    with pytest.raises(
        ValueError,
        match=r"holds a different network than the config gives: "
        r"model\.init_args\.model\.init_args\.filter_size: checkpoint 3, config 5",
    ):
        export_main(["--checkpoint", str(convlstm_ckpt), "--config", str(demo_config())])

    # a checkpoint written before checkpoints recorded their network needs the run's config
    alone = tmp_path / "alone" / "checkpoints" / "last.ckpt"
    alone.parent.mkdir(parents=True)
    legacy = torch.load(convlstm_ckpt, weights_only=True)
    del legacy["lstmvision"]
    torch.save(legacy, alone)
    with pytest.raises(
        FileNotFoundError, match=r"no config found for checkpoint .*last\.ckpt: looked for .*config\.yaml"
    ):
        export_main(["--checkpoint", str(alone)])
    with pytest.raises(FileNotFoundError, match=r"config not found: .*nowhere\.yaml"):
        export_main(["--checkpoint", str(alone), "--config", str(tmp_path / "nowhere.yaml")])

    no_network = tmp_path / "no_network.yaml"
    no_network.write_text(
        "model:\n  class_path: lstmvision.tasks.VideoPredictionTask\n  init_args: {lr: 0.1}\n"
    )
    with pytest.raises(ValueError, match=r"config .*no_network\.yaml has no model\.init_args\.model"):
        export_main(["--checkpoint", str(alone), "--config", str(no_network)])
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match=r"config .*bad\.yaml is not valid YAML"):
        export_main(["--checkpoint", str(alone), "--config", str(tmp_path / "bad.yaml")])

    # the shipped demo config describes a larger network than the tiny run's checkpoint holds
    with pytest.raises(
        ValueError,
        match=r"checkpoint .*last\.ckpt does not fit the lstmvision\.models\.ConvLSTMPredictor of config",
    ):
        export_main(["--checkpoint", str(alone), "--config", str(demo_config())])

    untrusted = tmp_path / "untrusted.yaml"
    untrusted.write_text(
        "model:\n  init_args:\n    model:\n      class_path: os.system\n      init_args: {command: 'true'}\n"
    )
    with pytest.raises(ValueError, match=r"untrusted\.yaml: model: class_path 'os\.system' is not trusted"):
        export_main(["--checkpoint", str(alone), "--config", str(untrusted)])

    torch.save({"epoch": 1}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match=r"bare\.ckpt has no 'state_dict' .*found \['epoch'\]"):
        export_main(["--checkpoint", str(tmp_path / "bare.ckpt")])
    torch.save({"state_dict": {"head.weight": torch.zeros(1)}}, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match=r"foreign\.ckpt has no 'model\.\*' weights"):
        export_main(["--checkpoint", str(tmp_path / "foreign.ckpt")])


# ---------------------------------------------------------------- load_pretrained refuses untrusted input


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    encoder = {"class_path": "lstmvision.encoders.SmallCNN", "init_args": {"in_channels": 1, "channels": [2]}}
    model = CNNLSTM(3, SmallCNN(1, (2,)), in_channels=1, hidden_size=4)
    init_args = {"num_classes": 3, "encoder": encoder, "in_channels": 1, "hidden_size": 4}
    return save_pretrained(
        model, tmp_path / "exported", init_args=init_args, class_path="lstmvision.models.CNNLSTM"
    )


def _rewrite(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads((folder / "model.json").read_text())
    change(document)
    (folder / "model.json").write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("class_path", "message"),
    [
        ("os.system", "is not trusted"),
        ("builtins.eval", "is not trusted"),
        ("subprocess.Popen", "is not trusted"),
        ("torch.load", "is not trusted"),  # torch, but not torch.nn
        ("lstmvisionx.models.Model", "is not trusted"),  # a prefix is a package, not a string start
        ("lstmvision.__builtins__.eval", "is not trusted"),  # no dunder escape from a trusted package
        ("lstmvision.cli.main", "is not an nn.Module class"),  # trusted package, but a function
        ("lstmvision.commands.export.main", "is not an nn.Module class"),
        ("lstmvision.models.NoSuchModel", "cannot import class_path"),
        ("os.system; rm", "must be a dotted name"),
    ],
)
@pytest.mark.parametrize("where", ["top", "nested"])
def test_load_pretrained_refuses_untrusted_class_paths(
    exported: Path, class_path: str, message: str, where: str
) -> None:
    def change(document: dict[str, Any]) -> None:
        target = document if where == "top" else document["init_args"]["encoder"]
        target["class_path"] = class_path

    _rewrite(exported, change)
    with pytest.raises(
        ValueError, match=rf"model\.json: model.*class_path {class_path!r}|model\.json: model.*{message}"
    ) as info:
        load_pretrained(exported)
    assert message in str(info.value)
    if where == "nested":
        assert "model.init_args.encoder" in str(info.value), "the message names the nested key"


def test_an_untrusted_module_is_never_imported(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "evil_models_for_lstmvision_test.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nimport torch\nclass Model(torch.nn.Linear):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _rewrite(exported, lambda d: d.update(class_path="evil_models_for_lstmvision_test.Model",
                                          init_args={"in_features": 2, "out_features": 2}))  # fmt: skip
    with pytest.raises(ValueError, match=r"'evil_models_for_lstmvision_test\.Model' is not trusted"):
        load_pretrained(exported)
    assert not marker.exists(), "the module was imported"
    # trusting the package is the caller's explicit choice (and runs its code); the weights then misfit
    with pytest.raises(ValueError, match=r"cannot load .*model\.safetensors into the evil_models"):
        load_pretrained(exported, trusted_prefixes=["evil_models_for_lstmvision_test"])
    assert marker.exists()
    with pytest.raises(TypeError, match="a sequence of prefixes, got the string"):
        load_pretrained(exported, trusted_prefixes="timm.")


def test_load_pretrained_malformed_files(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="exported model not found"):
        load_pretrained(tmp_path / "nothing.bin")
    with pytest.raises(
        ValueError, match=r"expected an exported folder, a \.safetensors or a \.json file, got .*model\.bin"
    ):
        load_pretrained(_touch(tmp_path / "model.bin"))
    lone = tmp_path / "lone.safetensors"
    shutil.copy(exported / "model.safetensors", lone)
    with pytest.raises(FileNotFoundError, match=r"exported model file not found: .*lone\.json"):
        load_pretrained(lone)

    original = (exported / "model.json").read_text()
    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda d: d.pop("class_path"), "has no 'class_path'"),
        (lambda d: d.update(init_args=[1, 2]), r"model\.init_args must be a mapping, got list"),
        (lambda d: d["init_args"]["encoder"].update(code="x"), r"model\.init_args\.encoder has unknown keys \['code'\]"),
        (lambda d: d["init_args"].update(hidden_size=5), r"cannot load .*model\.safetensors into the lstmvision\.models\.CNNLSTM"),
        (lambda d: d["init_args"].update(hiden_size=5), r"cannot build model \(lstmvision\.models\.CNNLSTM\): .*hiden_size"),
    ]  # fmt: skip
    for change, message in cases:
        (exported / "model.json").write_text(original)
        _rewrite(exported, change)
        with pytest.raises(ValueError, match=message):
            load_pretrained(exported)
    (exported / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"model\.json is not valid JSON"):
        load_pretrained(exported)
    (exported / "model.json").write_text(original)
    (exported / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage")
    # the digest model.json records is checked first (docs/zoo.md); without one, the weights fail to load
    with pytest.raises(ValueError, match=r"checksum mismatch for .*model\.safetensors: expected sha256"):
        load_pretrained(exported)
    _rewrite(exported, lambda d: d.pop("sha256"))
    with pytest.raises(ValueError, match=r"cannot load .*model\.safetensors"):
        load_pretrained(exported)


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def test_instantiate_model_rejects_a_spec_that_is_no_module() -> None:
    with pytest.raises(ValueError, match="expected a mapping with class_path and init_args"):
        instantiate_model({"init_args": {}})


# ---------------------------------------------------------------- crafted pickles: refused, never run


class _Payload:
    """Unpickling this runs ``exec``: it writes a marker file, the harmless stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _craft(kind: str, path: Path, marker: Path) -> Path:
    """A checkpoint-looking file that carries code (or a foreign object) in one of several ways."""
    weight = torch.zeros(2)
    if kind == "bare":
        torch.save(_Payload(marker), path)
    elif kind == "in_state_dict":  # looks like a Lightning checkpoint, one entry is the payload
        torch.save(
            {"state_dict": {"model.stack.x": weight, "model.evil": _Payload(marker)}, "epoch": 0}, path
        )
    elif kind == "in_metadata":  # every weight is a tensor; the payload hides in another entry
        torch.save(
            {"state_dict": {"model.stack.x": weight}, "hyper_parameters": {"x": _Payload(marker)}}, path
        )
    elif kind == "legacy_format":  # torch's pre-1.6 (non-zip) serialisation
        torch.save({"state_dict": _Payload(marker)}, path, _use_new_zipfile_serialization=False)
    elif kind == "raw_pickle":  # plain pickle.dump, not torch.save
        path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    elif kind == "foreign_object":  # no code, but an object that is not a plain value
        torch.save({"state_dict": {"model.stack.x": weight}, "args": argparse.Namespace(lr=1)}, path)
    return path


KINDS = ["bare", "in_state_dict", "in_metadata", "legacy_format", "raw_pickle", "foreign_object"]
REFUSED = r"refused to load .*evil\.ckpt: it holds something other than tensors and plain Python values.*not executed"


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: without weights_only the crafted file does run its code, so the tests below can fail."""
    marker = tmp_path / "marker"
    torch.load(_craft("in_state_dict", tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.read_text() == "ran"


def _small_cnn(path: Path) -> None:
    SmallCNN(1, (4,), weights=str(path))


def _e3d_classifier(path: Path) -> None:
    E3DLSTMClassifier(1, 3, patch_size=2, num_hidden=[4], filter_size=3, pretrained_encoder=str(path))


def _load_encoder(path: Path) -> None:
    E3DLSTMClassifier(1, 3, patch_size=2, num_hidden=[4], filter_size=3).load_encoder(path)


def _export(path: Path) -> None:
    (path.parent / "config.yaml").write_text(
        demo_config().read_text()
    )  # a config is there: only the file is wrong
    export_main(["--checkpoint", str(path), "--out", str(path.parent / "out")])


def _safe_load(path: Path) -> None:
    safe_load(path, what="checkpoint")


def _check_safe(path: Path) -> None:
    check_safe(path, what="checkpoint")


LOADERS: dict[str, Callable[[Path], None]] = {
    "encoder weights=": _small_cnn,
    "E3DLSTMClassifier(pretrained_encoder=)": _e3d_classifier,
    "E3DLSTMClassifier.load_encoder": _load_encoder,
    "lstmvision export": _export,
    "safe_load": _safe_load,
    "check_safe": _check_safe,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loader", LOADERS)
def test_every_load_path_refuses_a_crafted_pickle(kind: str, loader: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = _craft(kind, tmp_path / "evil.ckpt", marker)
    with pytest.raises(UnsafeFileError, match=REFUSED):
        LOADERS[loader](path)
    assert not marker.exists(), f"{loader} ran the code in a {kind} pickle"


def test_check_safe_passes_a_real_checkpoint_and_names_a_missing_one(
    convlstm_ckpt: Path, tmp_path: Path
) -> None:
    check_safe(convlstm_ckpt, what="checkpoint")
    torch.save({"weight": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    check_safe(tmp_path / "legacy.pt")
    assert torch.equal(safe_load(tmp_path / "legacy.pt")["weight"], torch.ones(2))
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*missing\.ckpt"):
        check_safe(tmp_path / "missing.ckpt", what="checkpoint")
    (tmp_path / "text.ckpt").write_text("not a torch file")
    with pytest.raises(
        UnsafeFileError, match=r"refused to load checkpoint .*text\.ckpt: .*\(not a torch file, or"
    ):
        check_safe(tmp_path / "text.ckpt", what="checkpoint")
    (tmp_path / "truncated.ckpt").write_bytes(convlstm_ckpt.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*truncated\.ckpt as a torch file"):
        safe_load(tmp_path / "truncated.ckpt", what="checkpoint")


def test_load_pretrained_never_unpickles(exported: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _craft("bare", exported / "model.safetensors", marker)
    with pytest.raises(ValueError, match=r"checksum mismatch for .*model\.safetensors"):
        load_pretrained(exported)
    # with its digest recorded, the crafted file passes the checksum and safetensors still refuses it
    digest = sha256_of(exported / "model.safetensors")
    _rewrite(exported, lambda d: d.update(sha256=digest))
    with pytest.raises(ValueError, match=r"cannot load .*model\.safetensors"):
        load_pretrained(exported)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["in_state_dict", "raw_pickle"])
def test_cli_ckpt_path_refuses_a_crafted_pickle(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    path = _craft(kind, tmp_path / "evil.ckpt", marker)
    tiny = [*TINY, "--data.init_args.test_size", "4"]
    with pytest.raises(SystemExit) as stop:
        cli_main(["test", "--config", str(demo_config()), "--runs_dir", str(tmp_path / "runs"), *tiny,
                  "--ckpt_path", str(path)])  # fmt: skip
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert re.search(
        rf"lstmvision test: refused to load --ckpt_path checkpoint {re.escape(str(path))}.*tensors and plain",
        err,
    )
    with pytest.raises(
        UnsafeFileError, match=rf"--ckpt_path checkpoint {re.escape(str(path))}.*tensors and plain"
    ):
        cli_main(["test", "--config", str(demo_config()), "--runs_dir", str(tmp_path / "runs"), *tiny,
                  "--ckpt_path", str(path), "--debug"])  # fmt: skip
    assert not marker.exists(), "the CLI ran the code in the checkpoint"
