"""Packaged configs by name: `--config NAME` resolution, `lstmvision configs` and its `--copy`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import lstmvision.cli
import lstmvision.commands.compare
import lstmvision.commands.demo
from lstmvision.cli import main
from lstmvision.commands.compare import load_comparison
from lstmvision.commands.configs import (
    config_root,
    copy_config,
    find_config,
    list_configs,
    resolve_config_args,
)

ROOT = Path(__file__).resolve().parents[1]
CONVLSTM = config_root() / "moving_mnist" / "convlstm.yaml"


def test_every_config_is_package_data_with_a_name_and_a_header() -> None:
    assert not (ROOT / "configs").exists(), "configs live in the package (src/lstmvision/configs/) only"
    known = list_configs()
    assert set(known.values()) == set(config_root().rglob("*.yaml"))
    assert known["moving_mnist/convlstm"] == CONVLSTM
    assert known["moving_mnist_demo"] == lstmvision.commands.demo.demo_config()
    assert list(known) == sorted(known)
    no_header = [name for name, path in known.items() if not path.read_text().startswith("# ")]
    assert not no_header, f"`lstmvision configs` shows each config's first comment line; none in {no_header}"


@pytest.mark.parametrize(
    "value", ["moving_mnist/convlstm", "moving_mnist/convlstm.yaml", "configs/moving_mnist/convlstm.yaml"]
)
def test_a_name_resolves_to_the_packaged_file(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no such file here: the name means the packaged config
    assert find_config(value) == CONVLSTM
    for command in ("fit", "validate", "test", "predict", "demo", "compare"):
        assert resolve_config_args([command, "--config", value, "--trainer.max_steps", "2"]) == [
            command,
            "--config",
            str(CONVLSTM),
            "--trainer.max_steps",
            "2",
        ]
    assert resolve_config_args(["fit", f"--config={value}"]) == ["fit", f"--config={CONVLSTM}"]
    assert resolve_config_args(["fit", "-c", value]) == ["fit", "-c", str(CONVLSTM)]
    assert resolve_config_args(["--config", value, "fit"]) == ["--config", str(CONVLSTM), "fit"]


def test_a_real_path_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for local in ("moving_mnist/convlstm", "moving_mnist/convlstm.yaml"):
        Path(local).parent.mkdir(exist_ok=True)
        Path(local).write_text("trainer:\n  max_steps: 1\n")
        assert resolve_config_args(["fit", "--config", local]) == ["fit", "--config", local]
        assert resolve_config_args(["fit", f"--config={local}"]) == ["fit", f"--config={local}"]


def test_inline_yaml_and_other_commands_config_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inline = ["fit", "--config", "{trainer: {max_steps: 2}}", "--config=trainer:\n  max_steps: 2"]
    assert resolve_config_args(inline) == inline
    # export's and caption's --config is a run's config.yaml, never a packaged experiment
    for command in ("export", "caption"):
        argv = [command, "--checkpoint", "x.ckpt", "--config", "moving_mnist/convlstm"]
        assert resolve_config_args(argv) == argv


def test_an_unknown_name_exits_2_with_the_closest_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "moving_mnist/convlsm", "--trainer.fast_dev_run", "true"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "lstmvision: --config moving_mnist/convlsm: no such file, and no packaged config of that name "
        "(did you mean moving_mnist/convlstm?); `lstmvision configs` lists them"
    )
    # the last part alone finds every config of that name
    with pytest.raises(SystemExit):
        resolve_config_args(["test", "--config", "mp_lstm"])
    assert (
        "(did you mean lightfield/mp_lstm or multiview/mp_lstm or ouluvs2/mp_lstm?)"
        in capsys.readouterr().err
    )
    with pytest.raises(
        FileNotFoundError, match=r"no packaged config named 'kth/predrn' \(did you mean kth/predrnn"
    ):
        find_config("kth/predrn")
    with pytest.raises(
        FileNotFoundError, match=r"no packaged config named 'zzz'; `lstmvision configs` lists"
    ):
        find_config("zzz")


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
def test_lightning_subcommands_take_a_name(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--config", "moving_mnist_demo", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["model"]["class_path"] == "lstmvision.models.ConvLSTMPredictor"
    assert (
        printed["experiment"]
        == yaml.safe_load(lstmvision.commands.demo.demo_config().read_text())["experiment"]
    )


@pytest.mark.parametrize(
    ("command", "module"), [("demo", lstmvision.commands.demo), ("compare", lstmvision.commands.compare)]
)
def test_demo_and_compare_get_the_packaged_file(
    command: str, module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[list[str]] = []
    monkeypatch.setattr(module, "main", seen.append)
    main([command, "--config", "multiview/compare", "--trainer.max_epochs", "1"])
    assert seen == [
        ["--config", str(config_root() / "multiview" / "compare.yaml"), "--trainer.max_epochs", "1"]
    ]


def test_configs_lists_every_name_with_its_first_header_line(capsys: pytest.CaptureFixture[str]) -> None:
    main(["configs"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    known = list_configs()
    assert [line.split()[0] for line in lines] == list(known)
    first = CONVLSTM.read_text().splitlines()[0].removeprefix("# ")
    assert any(line.startswith("moving_mnist/convlstm ") and line.endswith(first) for line in lines)
    assert "lstmvision configs --copy NAME DIR" in captured.err


def test_configs_copy_writes_refuses_to_overwrite_and_forces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    main(["configs", "--copy", "moving_mnist/convlstm", str(out)])
    target = out / "convlstm.yaml"
    assert target.read_bytes() == CONVLSTM.read_bytes()
    assert capsys.readouterr().out == f"wrote {target}\n"

    target.write_text("# edited\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["configs", "--copy", "moving_mnist/convlstm", str(out)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"lstmvision configs --copy: {target} exists already; --force overwrites it"
    )
    assert target.read_text() == "# edited\n", "a refused copy leaves the file as it was"

    main(["configs", "--copy", "moving_mnist/convlstm.yaml", str(out), "--force"])
    assert target.read_bytes() == CONVLSTM.read_bytes()


def test_configs_copy_of_a_comparison_brings_its_variants(tmp_path: Path) -> None:
    written = copy_config("multiview/compare", tmp_path)
    comparison = load_comparison(tmp_path / "compare.yaml")
    assert {Path(variant.config) for variant in comparison.variants} <= set(written)
    assert all(path.parent == tmp_path for path in written)


def test_configs_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["configs", "--copy", "moving_mnist/convlsm", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no packaged config named 'moving_mnist/convlsm' (did you mean moving_mnist/convlstm?)" in (
        capsys.readouterr().err
    )
    assert not any(tmp_path.iterdir())
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        main(["configs", "--copy", "moving_mnist/convlstm", str(tmp_path / "file")])
    assert "is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["configs", "--force"])
    assert exit_info.value.code == 2 and "--force goes with --copy NAME DIR" in capsys.readouterr().err
