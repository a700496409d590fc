"""``precision: auto``: resolution on every kind of hardware (detection mocked), and through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY_DEMO_NETWORK

from lstmvision import precision as prec
from lstmvision.cli import main
from lstmvision.commands.configs import find_config
from lstmvision.commands.demo import demo_config
from lstmvision.commands.lightning import LstmVisionCLI
from lstmvision.metrics import VideoMetrics
from lstmvision.precision import PrecisionChoice, resolve_precision

TINY = [
    *TINY_DEMO_NETWORK,
    "--data.init_args.train_size", "4",
    "--data.init_args.val_size", "2",
    "--data.init_args.test_size", "4",
    "--data.init_args.batch_size", "2",
    "--data.init_args.num_workers", "0",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


def _cpu(monkeypatch: pytest.MonkeyPatch, flags: set[str] | None, onednn: bool = True) -> None:
    monkeypatch.setattr(prec, "_proc_cpu_flags", lambda: None if flags is None else frozenset(flags))
    monkeypatch.setattr(prec, "_onednn_bf16", lambda: onednn)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def _cuda(monkeypatch: pytest.MonkeyPatch, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize(
    ("flags", "onednn", "expected", "reason"),
    [
        ({"avx512f", "amx_tile", "amx_bf16", "avx512_bf16"}, True, "bf16-mixed", "CPU has AMX bf16 units"),
        ({"avx512f", "avx512_bf16"}, True, "bf16-mixed", "CPU has AVX512-BF16 instructions"),
        ({"avx2", "avx512f"}, True, "32-true", "CPU has neither AMX nor AVX512-BF16"),
        # oneDNN of this torch build cannot run bf16: the CPU's units do not help
        ({"amx_bf16", "avx512_bf16"}, False, "32-true", "CPU has neither AMX nor AVX512-BF16"),
    ],
    ids=["amx", "avx512-bf16-only", "neither", "no-onednn-bf16"],
)
@pytest.mark.parametrize("accelerator", ["cpu", "auto"])
def test_auto_on_a_cpu(
    monkeypatch: pytest.MonkeyPatch,
    flags: set[str],
    onednn: bool,
    expected: str,
    reason: str,
    accelerator: str,
) -> None:
    _cpu(monkeypatch, flags, onednn)
    choice = resolve_precision("auto", accelerator)
    assert choice == PrecisionChoice("auto", expected, reason)
    assert str(choice) == f"precision auto -> {expected} ({reason})"


def test_auto_without_proc_cpuinfo_asks_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, None)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", "cpu").reason == "CPU has AVX512-BF16 instructions"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert resolve_precision("auto", "cpu").precision == "32-true"


@pytest.mark.parametrize("accelerator", ["cuda", "gpu", "auto"])
def test_auto_on_cuda(monkeypatch: pytest.MonkeyPatch, accelerator: str) -> None:
    _cuda(monkeypatch, bf16=True)
    # the CPU's units do not matter on a CUDA run
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: None)
    assert resolve_precision("auto", accelerator) == PrecisionChoice(
        "auto", "bf16-mixed", "CUDA device supports bf16"
    )
    _cuda(monkeypatch, bf16=False)
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: "AMX bf16 units")
    choice = resolve_precision("auto", accelerator)
    assert choice == PrecisionChoice("auto", "32-true", "CUDA device without bf16 support")


def test_auto_on_a_cpu_run_of_a_cuda_machine_asks_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, bf16=True)
    monkeypatch.setattr(prec, "cpu_bf16_units", lambda: None)
    assert resolve_precision("auto", "cpu").precision == "32-true"


@pytest.mark.parametrize("value", ["32-true", "bf16-mixed", "16-mixed", "32", "bf16", 32, 16, None])
def test_an_explicit_precision_wins(monkeypatch: pytest.MonkeyPatch, value: object) -> None:
    _cpu(monkeypatch, {"amx_bf16"})
    assert resolve_precision(value, "cpu") == PrecisionChoice(value, value, None)


@pytest.mark.parametrize("value", ["bf17", "fp32", 8, True])
def test_an_invalid_precision_names_the_key_and_the_valid_values(value: object) -> None:
    with pytest.raises(ValueError, match=r"trainer\.precision must be one of 'auto', .*'bf16-mixed'.*got"):
        resolve_precision(value, "cpu")


def test_the_cli_parses_auto_and_prints_its_choice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cpu(monkeypatch, {"amx_bf16"})
    config = find_config("moving_mnist/convlstm")
    assert "precision: auto" in config.read_text()
    cli = LstmVisionCLI(args=["--config", str(config), "--runs_dir", str(tmp_path), *TINY], run=False)
    assert cli.trainer.precision == "bf16-mixed"
    assert "precision auto -> bf16-mixed (CPU has AMX bf16 units)" in capsys.readouterr().err
    _cpu(monkeypatch, set())
    cli = LstmVisionCLI(args=["--config", str(config), "--runs_dir", str(tmp_path), *TINY], run=False)
    assert cli.trainer.precision == "32-true"
    assert "precision auto -> 32-true (CPU has neither AMX nor AVX512-BF16)" in capsys.readouterr().err
    # an explicit value: used as given, nothing printed
    cli = LstmVisionCLI(
        args=[
            "--config",
            str(config),
            "--runs_dir",
            str(tmp_path),
            *TINY,
            "--trainer.precision",
            "bf16-mixed",
        ],
        run=False,
    )
    assert cli.trainer.precision == "bf16-mixed" and "precision auto" not in capsys.readouterr().err


def test_print_config_keeps_auto(capsys: pytest.CaptureFixture[str]) -> None:
    config = find_config("moving_mnist/convlstm")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "  precision: auto\n" in capsys.readouterr().out


def test_the_cli_names_an_invalid_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                str(demo_config()),
                "--runs_dir",
                str(tmp_path),
                "--trainer.precision",
                "bf17",
            ]
        )
    err = capsys.readouterr().err
    assert "trainer.precision" in err and "'auto'" in err and "'bf16-mixed'" in err and "bf17" in err


def test_testing_one_checkpoint_in_fp32_and_bf16_reports_fp32_metrics_of_each_forecast(
    tmp_path: Path,
) -> None:
    common = ["--config", str(demo_config()), "--runs_dir", str(tmp_path), *TINY]
    main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.precision", "32-true"])
    run = tmp_path / "moving_mnist_demo" / "version_0"
    ckpt = run / "checkpoints" / "last.ckpt"
    results = {}
    for value in ("32-true", "bf16-mixed"):
        before = set(run.glob("test-*"))
        main(["test", *common, "--ckpt_path", "last", "--trainer.precision", value])
        (folder,) = set(run.glob("test-*")) - before  # each test writes its own folder in the run
        results[value] = json.loads((folder / "metrics.json").read_text())["model"]
    for value, metrics in results.items():
        assert all(math.isfinite(metrics[k]) for k in ("mse", "mae", "psnr", "ssim")), (value, metrics)
    # the forecasts differ by bf16's rounding of the network, not more: so do the metrics
    assert results["bf16-mixed"]["ssim"] == pytest.approx(results["32-true"]["ssim"], abs=0.02)
    assert results["bf16-mixed"]["mse"] == pytest.approx(results["32-true"]["mse"], rel=0.05)

    # the bf16 run's forecasts, scored here in float64 outside autocast, give what that run logged
    cli = LstmVisionCLI(args=[*common, "--trainer.precision", "bf16-mixed"], run=False)
    task, data = cli.model, cli.datamodule
    task.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    task.eval()
    data.setup("test")
    reference = VideoMetrics()
    with torch.no_grad():
        for clips in data.test_dataloader():
            clips = clips[0] if isinstance(clips, (tuple, list)) else clips
            frames = clips[:, : task.total_length]
            with torch.autocast("cpu", torch.bfloat16):
                pred = task._forecast(frames, task.total_length - task.input_length)
            reference.update(pred.double(), frames[:, task.input_length :].double())
    for key, value in reference.compute().items():
        assert results["bf16-mixed"][key] == pytest.approx(value.item(), rel=1e-5), key
