"""What a pip user gets: the wheel alone runs a packaged config by name; `--help`, `--version`; one option
style with the old hyphenated spellings still accepted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import lstmvision
import lstmvision.commands.caption
import lstmvision.commands.extract_features
from lstmvision.cli import COMMANDS as CLI_COMMANDS
from lstmvision.cli import main
from lstmvision.commands.configs import list_configs
from lstmvision.commands.lightning import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the working tree, built offline from a copy (setuptools leaves build/ beside the source)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # a zoo entry folder as tools/train_zoo.py writes one, so that the package-data patterns are checked
    # even while the shipped zoo has no entries
    probe = source / "src" / "lstmvision" / "zoo" / "packaging_probe"
    probe.mkdir()
    (probe / "model.safetensors").write_bytes(b"not read")
    (probe / "model.json").write_text("{}")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
    built = _run([*pip, "--no-index", "-w", str(out)], cwd=source, env=dict(os.environ))
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("lstmvision-*.whl")
    return found


def test_the_wheel_holds_every_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in list_configs() if f"lstmvision/configs/{name}.yaml" not in names]
    assert not missing, f"configs left out of the wheel: {missing}"
    assert {"lstmvision/py.typed", "lstmvision/commands/configs.py"} <= names


def test_the_wheel_holds_the_model_zoo(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    zoo = ROOT / "src" / "lstmvision" / "zoo"
    shipped = [f"lstmvision/zoo/{p.relative_to(zoo).as_posix()}" for p in zoo.rglob("*") if p.is_file()]
    probe = [f"lstmvision/zoo/packaging_probe/{name}" for name in ("model.safetensors", "model.json")]
    assert "lstmvision/zoo/index.json" in shipped
    missing = [name for name in [*shipped, *probe] if name not in names]
    assert not missing, f"model zoo files left out of the wheel: {missing}"


def test_the_installed_wheel_alone_fits_a_config_by_name_from_an_empty_folder(
    wheel: Path, tmp_path: Path
) -> None:
    # a non-editable install of the wheel alone; torch and the other dependencies come from this
    # interpreter's site-packages, which is where the repository's editable install also points: the
    # target folder comes first on the path, so every lstmvision module and config must be in the wheel
    target, empty = tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target)]
    installed = _run([*install, str(wheel)], cwd=empty, env=dict(os.environ))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = _run(
        [sys.executable, "-c", "from lstmvision.commands.configs import config_root; print(config_root())"],
        cwd=empty,
        env=env,
    )
    assert where.stdout.strip() == str(target / "lstmvision" / "configs"), where.stderr
    script = target / "bin" / "lstmvision"
    version = _run([str(script), "--version"], cwd=empty, env=env)
    assert (version.returncode, version.stdout) == (0, f"lstmvision {lstmvision.__version__}\n"), (
        version.stderr
    )
    fit = _run(
        [str(script), "fit", "--config", "moving_mnist/convlstm", "--trainer.fast_dev_run", "true",
         "--data.init_args.batch_size", "2", "--data.init_args.num_workers", "0"],
        cwd=empty,
        env=env,
    )  # fmt: skip
    assert fit.returncode == 0, (fit.stdout + fit.stderr)[-3000:]


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--help", "-h"):
        main([flag])
        out = capsys.readouterr().out
        assert "lstmvision configs" in out
        for name in SUBCOMMANDS:
            assert f"\n  {name} " in out, f"{name} missing from --help"
        for name, (_, text) in CLI_COMMANDS.items():
            assert any(line.split() == [name, *text.split()] for line in out.splitlines()), name


def test_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    main(["--version"])
    assert capsys.readouterr().out == f"lstmvision {metadata.version('lstmvision')}\n"

    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    main(["--version"])
    assert capsys.readouterr().out == f"lstmvision {lstmvision.__version__}\n"


class _Called(Exception):
    """Stops a command where it would start working, with the arguments it got."""


def _record(*args: Any, **kwargs: Any) -> None:
    raise _Called(kwargs)


# (option, old spelling, value given, keyword of the library call, value it receives)
FEATURE_OPTIONS = [
    ("--encoder_args", "--encoder-args", '{"channels": [4]}', "encoder_args", {"channels": [4]}),
    ("--image_size", "--image-size", "24", "image_size", 24),
    ("--batch_size", "--batch-size", "3", "batch_size", 3),
    ("--on_error", "--on-error", "raise", "on_error", "raise"),
    ("--no_progress", "--no-progress", None, "progress", False),
]
CAPTION_OPTIONS = [
    ("--beam_size", "--beam-size", "3", "beam_size", 3),
    ("--max_length", "--max-length", "9", "max_length", 9),
    ("--length_penalty", "--length-penalty", "0.5", "length_penalty", 0.5),
    ("--attention_maps", "--attention-maps", "2", "attention_maps", 2),
    ("--on_error", "--on-error", "raise", "on_error", "raise"),
    ("--no_progress", "--no-progress", None, "progress", False),
]
COMMANDS = {
    "extract-features": (
        lstmvision.commands.extract_features,
        "extract_features",
        ["--videos", "v", "--encoder", "small_cnn", "--frames", "4", "--out", "f.h5"],
        FEATURE_OPTIONS,
    ),
    "caption": (
        lstmvision.commands.caption,
        "caption_videos",
        ["--checkpoint", "c.ckpt", "--videos", "v"],
        CAPTION_OPTIONS,
    ),
}


@pytest.mark.parametrize(
    ("command", "option"),
    [(command, option) for command, (*_, options) in COMMANDS.items() for option in options],
    ids=lambda x: x if isinstance(x, str) else x[0],
)
def test_snake_case_options_and_their_hyphenated_aliases(
    command: str, option: tuple[str, str, str | None, str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, function, required, _ = COMMANDS[command]
    monkeypatch.setattr(module, function, _record)
    spelling, alias, value, keyword, expected = option
    received = []
    for flag in (spelling, alias):
        with pytest.raises(_Called) as called:
            main([command, *required, flag, *([] if value is None else [value])])
        received.append(called.value.args[0][keyword])
    assert received == [expected, expected]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_the_snake_case_spelling_first(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
    for spelling, alias, *_ in COMMANDS[command][3]:
        assert spelling in out and out.index(spelling) < out.index(alias)
