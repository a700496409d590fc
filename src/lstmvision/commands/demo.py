"""``lstmvision demo``: train the demo predictor on embedded Moving MNIST, test its best checkpoint,
print the outputs and the metrics beside copy-last-frame (configs/moving_mnist_demo.yaml)."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

from lstmvision.commands.lightning import LstmVisionCLI, best_checkpoint, command_line, take_flags
from lstmvision.commands.report import report

__all__ = ["demo_config", "main"]


def demo_config() -> Path:
    """The packaged configuration ``lstmvision demo`` trains (ConvLSTM on embedded Moving MNIST)."""
    return Path(str(resources.files("lstmvision") / "configs" / "moving_mnist_demo.yaml"))


def main(argv: list[str]) -> dict[str, Any] | None:
    """Train the demo predictor, test its best checkpoint, print outputs and metrics beside the baseline."""
    parser = argparse.ArgumentParser(
        prog="lstmvision demo",
        description="Train a ConvLSTM video predictor on embedded Moving MNIST, test it, report the metrics. "
        "Extra arguments are passed to `lstmvision fit` (e.g. --trainer.max_epochs 1).",
    )
    parser.add_argument(
        "--config",
        default=str(demo_config()),
        help="a config file or packaged config name (default: moving_mnist_demo, the packaged demo)",
    )
    known, extra = parser.parse_known_args(argv)
    verbose, _, extra = take_flags(extra)
    with command_line(["--config", known.config, *extra]):
        cli = LstmVisionCLI(run=False, verbose=verbose)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = best_checkpoint(cli.trainer)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, weights_only=True, verbose=verbose)
    if ckpt:
        print(f"\ntested checkpoint: {ckpt}")
    return report(cli.trainer)
