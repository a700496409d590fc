"""The ``lstmvision`` command: LightningCLI's fit/validate/test/predict plus ``demo``, ``export``, ``compare``,
``extract-features`` and ``caption``.

Every run writes under ``<runs_dir>/<experiment>/version_<n>/`` (TensorBoard and CSV logs, the saved
config, ``checkpoints/``, and what the task writes at test time). ``--ckpt_path last`` reuses the
newest version of the experiment, so a resumed run continues in the directory it stopped in.

Reliability (docs/reliability.md): checkpoints are written atomically (never a truncated file, never
one with NaN/inf weights), ``last.ckpt`` is also saved every ``--checkpoint_every_n_steps`` training
steps, and SIGINT/SIGTERM stop ``fit`` after the current batch with ``last.ckpt`` saved, exit code
128 + signal and the command that resumes the run on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from importlib import import_module, resources
from pathlib import Path
from typing import Any

import torch.distributed
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lstmvision._io import check_safe
from lstmvision.precision import PrecisionInput, resolve_precision
from lstmvision.tasks._reliability import AtomicCheckpointIO, RunGuard, RunInterrupted

__all__ = ["LstmVisionCLI", "main"]

_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _latest_version(directory: Path) -> int | None:
    versions = [
        int(m.group(1)) for p in directory.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))
    ]
    return max(versions) if versions else None


def _keep_csv_history(run: Path) -> None:
    """Lightning's CSV logger deletes an existing metrics.csv; a resumed run keeps it under another name."""
    current = run / "metrics.csv"
    if current.is_file():
        n = 1 + sum(1 for _ in run.glob("metrics.part*.csv"))
        current.rename(run / f"metrics.part{n}.csv")


class _Trainer(Trainer):
    """Lightning's Trainer whose ``precision`` also takes ``"auto"`` (:func:`~lstmvision.precision.resolve_precision`).

    The CLI parser checks every trainer key against this signature, so ``precision: auto`` in a config
    parses; the CLI resolves it before building the trainer and prints the choice."""

    def __init__(self, *, precision: PrecisionInput = None, **kwargs: Any) -> None:
        choice = resolve_precision(precision, kwargs.get("accelerator", "auto"))
        super().__init__(precision=choice.precision, **kwargs)


class LstmVisionCLI(LightningCLI):
    """LightningCLI with lstmvision's run directory layout and weights-only checkpoint loading."""

    def __init__(self, args: Any = None, run: bool = True) -> None:
        super().__init__(
            LightningModule,
            LightningDataModule,
            trainer_class=_Trainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "yaml"},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--experiment",
            type=str,
            default="default",
            help="run name: outputs go under <runs_dir>/<experiment>/version_<n>/",
        )
        parser.add_argument("--runs_dir", type=str, default="runs", help="root folder of all runs")
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int,
            default=500,
            help="also save last.ckpt every n training steps (0: only at epoch ends)",
        )

    @property
    def _run_config(self) -> Any:
        """The parsed configuration of this run (of its subcommand, when there is one)."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def _parse_ckpt_path(self) -> None:
        # Lightning reads a given checkpoint's hyper-parameters here, before anything else: refuse a file
        # that would run code when unpickled with an error naming it (torch's own message does not)
        if self.config.get("subcommand"):
            ckpt = self.config[self.config.subcommand].get("ckpt_path")
            if ckpt and Path(ckpt).is_file():
                check_safe(ckpt, what="--ckpt_path checkpoint")
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        config = self._run_config
        # checkpoints hold only tensors and plain values; never unpickle code from a checkpoint file
        if "weights_only" in config:
            config.weights_only = True
        self._reuse_version = config.get("ckpt_path") == "last"
        if config.get("ckpt_path") == "best" and self.subcommand != "fit":
            # Lightning knows the best checkpoint only inside the process that trained; a later
            # `test --ckpt_path best` takes the one the newest run of the experiment kept
            config.ckpt_path = str(_saved_best(Path(config.runs_dir) / config.experiment))
            self._reuse_version = True

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._run_config
        if config.trainer.get("default_root_dir") is None:
            # without a logger (e.g. fast_dev_run) Lightning writes here; keep it inside the runs folder
            kwargs["default_root_dir"] = str(Path(config.runs_dir) / config.experiment)
        if config.trainer.get("logger") in (None, True):
            root = Path(config.runs_dir) / config.experiment
            version = _latest_version(root) if self._reuse_version else None
            if version is not None:
                _keep_csv_history(root / f"version_{version}")
            tensorboard = TensorBoardLogger(
                config.runs_dir, name=config.experiment, version=version, default_hp_metric=False
            )
            # both loggers share one version folder, decided by the TensorBoard logger's scan
            csv = CSVLogger(config.runs_dir, name=config.experiment, version=tensorboard.version)
            kwargs["logger"] = [tensorboard, csv]
        trainer_init = self._get(self.config_init, "trainer", default={})
        choice = resolve_precision(trainer_init.get("precision"), trainer_init.get("accelerator", "auto"))
        if choice.reason is not None:
            _say(str(choice))
        kwargs["precision"] = choice.precision
        kwargs["plugins"] = _with_atomic_io(trainer_init.get("plugins"))
        kwargs["callbacks"] = self._reliability_callbacks(config, trainer_init.get("callbacks"))
        return super().instantiate_trainer(**kwargs)

    def _reliability_callbacks(self, config: Any, configured: Any) -> list[Any]:
        """The configured callbacks plus :class:`RunGuard` (``last.ckpt`` every n steps, graceful stop)."""
        configured = configured or []
        every = config.checkpoint_every_n_steps
        if every < 0:
            raise ValueError(f"--checkpoint_every_n_steps must be >= 0, got {every}")
        if config.trainer.get("enable_checkpointing") is False:
            every = 0
        return [*(configured if isinstance(configured, list) else [configured]), RunGuard(every)]

    def after_test(self) -> None:
        _report(self.trainer)

    def after_fit(self) -> None:
        log_dir = self.trainer.log_dir  # a broadcast under DDP: every process must ask
        if self.trainer.is_global_zero and log_dir is not None:
            print(f"run directory: {log_dir}")
            best = _best_checkpoint(self.trainer)
            if best:
                print(f"best checkpoint: {best}")


@rank_zero_only
def _say(line: str) -> None:
    """One line for the person running the command, on stderr (stdout is for outputs and metrics)."""
    print(line, file=sys.stderr)


def _with_atomic_io(plugins: Any) -> list[Any]:
    """The configured plugins plus :class:`AtomicCheckpointIO`, unless one already handles checkpoint IO."""
    from lightning.fabric.plugins import CheckpointIO

    listed = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in listed):
        listed.append(AtomicCheckpointIO())
    return listed


def _resume_command(argv: list[str]) -> str:
    """``lstmvision <argv>`` with ``--ckpt_path last`` in place of any other checkpoint path."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--ckpt_path":
            skip = True
        elif not arg.startswith("--ckpt_path="):
            args.append(arg)
    return shlex.join(["lstmvision", *args, "--ckpt_path", "last"])


def _saved_best(experiment: Path) -> Path:
    """The ``best-*.ckpt`` of the newest version of an experiment, or an error saying what is missing."""
    version = _latest_version(experiment)
    if version is None:
        raise FileNotFoundError(f"--ckpt_path best: no run of this experiment under {experiment}")
    folder = experiment / f"version_{version}" / "checkpoints"
    found = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"--ckpt_path best: no best-*.ckpt in {folder}")
    return found[-1]  # with save_top_k > 1 several are kept: the newest was the best when it was saved


def _best_checkpoint(trainer: Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    return callback.best_model_path or None if isinstance(callback, ModelCheckpoint) else None


def _report(trainer: Trainer) -> dict[str, Any] | None:
    """Print where the test outputs are and the test metrics (beside the baseline, for predictions)."""
    log_dir = trainer.log_dir  # a broadcast under DDP: every process must ask
    if not trainer.is_global_zero or log_dir is None:
        return None
    out = Path(log_dir)
    path = out / "metrics.json"
    if not path.is_file() and (out / "scores.json").is_file():
        path = out / "scores.json"  # the captioning task's test scores
    if not path.is_file():
        print(f"outputs: {out}")
        return None
    metrics = json.loads(path.read_text())
    print(f"\noutputs: {out}")
    for name in sorted(
        p.name for p in out.iterdir() if p.is_file() and p.suffix in {".json", ".png", ".gif"}
    ):
        print(f"  {out / name}")
    if "copy_last_frame" in metrics:
        model, base = metrics["model"], metrics["copy_last_frame"]
        print(f"\n{'metric':<12}{'model':>12}{'copy-last-frame':>18}")
        for key, label in (("mse", "MSE/frame"), ("mae", "MAE/frame"), ("psnr", "PSNR"), ("ssim", "SSIM")):
            print(f"{label:<12}{model[key]:>12.4f}{base[key]:>18.4f}")
        print(
            f"MSE ratio model / copy-last-frame: {metrics['mse_ratio_to_copy_last_frame']:.3f}"
            f" over {metrics['num_sequences']} test clips"
        )
    if path.name == "scores.json":
        _print_caption_scores(metrics)
    if "accuracy" in metrics:
        print(
            f"\naccuracy {metrics['accuracy']:.4f}, mean class accuracy {metrics['mean_class_accuracy']:.4f}"
            f" over {metrics['count']} test videos"
        )
        for fraction, entry in metrics.get("early_recognition", {}).items():
            print(f"  first {float(fraction):.0%} of each clip observed: accuracy {entry['accuracy']:.4f}")
    return metrics


def _print_caption_scores(scores: dict[str, Any]) -> None:
    """The captioning test scores of the model beside the most-frequent-caption baseline."""
    model, base = scores.get("model", {}), scores.get("most_frequent_caption", {})
    print(f"\n{'metric':<10}{'model':>10}{'most frequent caption':>24}")
    for name, value in model.items():
        print(f"{name:<10}{value:>10.4f}{base.get(name, float('nan')):>24.4f}")
    for name, reason in scores.get("skipped", {}).items():
        print(f"{name} skipped: {reason}")
    print(
        f"over {scores.get('num_videos')} test videos, beam {scores.get('beam_size')}; baseline caption: "
        f"{scores.get('baseline_caption')!r}"
    )


def demo_config() -> Path:
    """The packaged configuration ``lstmvision demo`` trains (ConvLSTM on embedded Moving MNIST)."""
    return Path(str(resources.files("lstmvision") / "configs" / "moving_mnist_demo.yaml"))


def run_demo(argv: list[str]) -> dict[str, Any] | None:
    """Train the demo predictor, test its best checkpoint, print outputs and metrics beside the baseline."""
    parser = argparse.ArgumentParser(
        prog="lstmvision demo",
        description="Train a ConvLSTM video predictor on embedded Moving MNIST, test it, report the metrics. "
        "Extra arguments are passed to `lstmvision fit` (e.g. --trainer.max_epochs 1).",
    )
    parser.add_argument(
        "--config", default=str(demo_config()), help="configuration (default: the packaged demo)"
    )
    known, extra = parser.parse_known_args(argv)
    cli = LstmVisionCLI(args=["--config", known.config, *extra], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = _best_checkpoint(cli.trainer)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, weights_only=True)
    if ckpt:
        print(f"\ntested checkpoint: {ckpt}")
    return _report(cli.trainer)


# subcommands other than LightningCLI's: name -> ("module:function", one-line help); each function takes argv
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lstmvision.cli:run_demo", "train and test the demo predictor on embedded Moving MNIST"),
    "export": ("lstmvision.export:main", "checkpoint -> model.safetensors + model.json (or ONNX)"),
    "compare": ("lstmvision.compare:main", "test several checkpoints on one data set, one table"),
    "extract-features": ("lstmvision.features:main", "per-frame CNN features of videos -> HDF5"),
    "caption": ("lstmvision.captioning:main", "caption videos with a trained SA-LSTM"),
}


def _command(name: str) -> Any:
    module, function = _COMMANDS[name][0].split(":")
    return getattr(import_module(module), function)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lstmvision`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _COMMANDS:
        _command(argv[0])(argv[1:])
        return
    if argv and argv[0] not in (*_SUBCOMMANDS, "-h", "--help", "--version", "--print_config"):
        known = ", ".join((*_SUBCOMMANDS, *_COMMANDS))
        sys.exit(f"lstmvision: unknown subcommand {argv[0]!r}; choose one of: {known}")
    try:
        LstmVisionCLI(args=argv)
    except RunInterrupted as stop:
        print(f"lstmvision: {stop}\nresume with:\n  {_resume_command(argv)}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except FloatingPointError as error:
        # a diverged run: the message names the step; the checkpoints written before it are left as they were
        sys.exit(f"lstmvision {argv[0]}: {error}")
    finally:
        # Lightning leaves a DDP process group alive; torn down by the interpreter's exit instead, gloo's
        # threads can abort the process ("terminate called without an active exception", exit -6)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
