"""LightningCLI as lstmvision runs it: run folders (:mod:`lstmvision.runs`), self-describing
weights-only checkpoints, ``precision: auto``, strict keys with one-line parse errors, Lightning's
chatter left out (:mod:`lstmvision.console`).

``--pretrained NAME_OR_FOLDER`` initialises the network from a model zoo entry or an exported folder
(docs/zoo.md); the config must describe the same network.

Reliability (docs/reliability.md): checkpoints are written atomically (never a truncated file, never
one with NaN/inf weights), ``last.ckpt`` is also saved every ``--checkpoint_every_n_steps`` training
steps, and SIGINT/SIGTERM stop ``fit`` after the current batch with ``last.ckpt`` saved.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import yaml
from jsonargparse import ArgumentError
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lstmvision._io import check_safe
from lstmvision.checkpoints import RecordNetwork, check_network, check_pretrained_network
from lstmvision.commands.parse_errors import explain_parse_error, explain_value_error, moved_key
from lstmvision.commands.report import report
from lstmvision.models.pretrained import WEIGHTS_FILE, read_model_json
from lstmvision.models.zoo import PretrainedSource, resolve_pretrained
from lstmvision.precision import PrecisionInput, resolve_precision
from lstmvision.runs import (
    VERSION_FOLDER,
    evaluation_folder,
    keep_csv_history,
    newest_checkpoint,
    next_version,
    run_of,
    scratch_folder,
)
from lstmvision.tasks.base import moved_argument
from lstmvision.tasks.reliability import AtomicCheckpointIO, RunGuard

__all__ = ["SUBCOMMANDS", "ConfigError", "LstmVisionCLI", "best_checkpoint", "command_line", "take_flags"]

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class _Trainer(Trainer):
    """Lightning's Trainer whose ``precision`` also takes ``"auto"`` (:func:`~lstmvision.precision.resolve_precision`).

    The CLI parser checks every trainer key against this signature, so ``precision: auto`` in a config
    parses; the CLI resolves it before building the trainer and prints the choice."""

    def __init__(self, *, precision: PrecisionInput = None, **kwargs: Any) -> None:
        choice = resolve_precision(precision, kwargs.get("accelerator", "auto"))
        super().__init__(precision=choice.precision, **kwargs)


class LstmVisionCLI(LightningCLI):
    """LightningCLI with lstmvision's run folders (docs/runs.md), self-describing weights-only checkpoints,
    refused key abbreviations and parse errors raised as :class:`ConfigError` (one line, with the closest
    valid key) instead of a usage dump.

    Args:
        args: the command line without the program name (None: ``sys.argv[1:]``).
        run: run the subcommand (False: only build the trainer, task and data module, as ``demo`` does).
        verbose: keep Lightning's own output (model summary, notices); see :mod:`lstmvision.console`.
    """

    def __init__(self, args: Any = None, run: bool = True, verbose: bool = False) -> None:
        strict = {"exit_on_error": False, "allow_abbrev": False}
        self._verbose = verbose
        self._run_dir: Path | None = None  # the folder this command writes into
        self._new_run = False  # whether this command made that folder (removed again if nothing came of it)
        self._pretrained: PretrainedSource | None = None  # --pretrained, resolved and checked
        super().__init__(
            LightningModule,
            LightningDataModule,
            trainer_class=_Trainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "yaml", **strict, **{sub: dict(strict) for sub in SUBCOMMANDS}},
            trainer_defaults={} if verbose else {"enable_model_summary": False},
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
        parser.add_argument(
            "--pretrained",
            type=Optional[str],  # noqa: UP045  (jsonargparse reads this annotation at run time)
            default=None,
            help="initialise the network from a model zoo entry (`lstmvision.models.list_models(pretrained=True)`) "
            "or an exported folder (a path: ./NAME for one here); the config must give the same network",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            # a key that moved (issue 17) is named with its new place, whatever jsonargparse made of it
            moved = moved_key(sys.argv[1:] if args is None else [str(a) for a in args])
            if moved is not None:
                raise ConfigError(moved) from None
            subparsers = getattr(self, "_subcommand_parsers", {})
            raise ConfigError(explain_parse_error(str(error), parser, subparsers, args)) from None

    @property
    def _run_config(self) -> Any:
        """The parsed configuration of this run (of its subcommand, when there is one)."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        ckpt = config.get("ckpt_path") if subcommand else None
        if ckpt == "last" or (ckpt == "best" and subcommand != "fit"):  # in a fit, "best" is Lightning's
            # the newest checkpoint of the experiment across its versions; Lightning's own lookup would
            # search only the newest version folder and silently start afresh when it holds none
            experiment = Path(config.runs_dir) / config.experiment
            pattern = "*.ckpt" if ckpt == "last" else "best-*.ckpt"
            config.ckpt_path = ckpt = str(newest_checkpoint(experiment, pattern, ckpt))
        self._check_pretrained(config, subcommand, ckpt)
        if ckpt and Path(ckpt).is_file():
            # read once, tensors memory-mapped: a file that would run code when unpickled is refused
            # with an error naming it; its hyper-parameters and network record are all that is used here
            saved = check_safe(ckpt, what="--ckpt_path checkpoint")
            self._apply_checkpoint_hyperparameters(saved, ckpt, subcommand)
            network = _configured_network(self.config[subcommand])
            if network is not None:
                check_network(saved, network, source=ckpt)

    def _check_pretrained(self, config: Any, subcommand: str | None, ckpt: Any) -> None:
        """Resolve ``--pretrained`` (the weights' digest checked) and refuse a configured network other
        than the one the weights were trained as, naming the differing keys."""
        value = config.get("pretrained")
        if not value:
            return
        if ckpt and subcommand in ("validate", "test", "predict"):
            raise ConfigError(
                f"--pretrained and --ckpt_path both give the weights to {subcommand}: give one of them"
            )
        found = resolve_pretrained(str(value))
        document = read_model_json(found.folder)
        where = f"zoo entry {found.entry.name!r}" if found.entry else f"exported folder {value}"
        network = _configured_network(config)
        if network is None:
            raise ConfigError(
                f"--pretrained {value}: the config gives no network (model.init_args.model) to load the "
                "weights into"
            )
        hint = (found.entry.record.get("config") if found.entry else None) or None
        check_pretrained_network(document, network, source=where, config_hint=hint)
        self._pretrained = found

    def after_instantiate_classes(self) -> None:
        """Load the ``--pretrained`` weights into the task's network (strictly: every weight has a place)."""
        if self._pretrained is None:
            return
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        network = getattr(self.model, "model", None)
        weights = self._pretrained.folder / WEIGHTS_FILE
        if network is None:
            raise ConfigError(f"--pretrained: the task {type(self.model).__name__} holds no network `model`")
        try:
            load_model(network, str(weights), strict=True, device="cpu")
        except (RuntimeError, SafetensorError, OSError) as error:
            raise ValueError(f"cannot load {weights} into the configured network: {error}") from error
        _say(f"weights: {weights}")

    def _apply_checkpoint_hyperparameters(self, saved: Any, ckpt: str, subcommand: str) -> None:
        """The task's hyperparameters saved in the checkpoint become the config's (what Lightning's own
        ``_parse_ckpt_path`` does), less the keys that have moved since the checkpoint was written: those
        are left out with a note, and the config's optimiser and scheduler apply."""
        hparams = dict(saved.get("hyper_parameters") or {}) if isinstance(saved, dict) else {}
        hparams.pop("_instantiator", None)
        moved = sorted(key for key, value in hparams.items() if moved_argument(key, value) is not None)
        if moved:
            _say(
                f"checkpoint {ckpt}: its old {', '.join(moved)} left out (moved to optimizer / lr_scheduler, "
                "docs/optimisers.md); the config's optimiser and scheduler apply"
            )
            hparams = {key: value for key, value in hparams.items() if key not in moved}
        if not [key for key in hparams if key != "_class_path"]:
            return
        if "_class_path" in hparams:
            class_path = hparams.pop("_class_path")
            hparams = {"class_path": class_path, "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except ArgumentError as error:
            raise ConfigError(
                f"the hyperparameters saved in {ckpt} do not parse: {explain_value_error(str(error))}"
            ) from None

    def before_instantiate_classes(self) -> None:
        config = self._run_config
        # checkpoints hold only tensors and plain values; never unpickle code from a checkpoint file
        if "weights_only" in config:
            config.weights_only = True
        experiment = Path(config.runs_dir) / config.experiment
        ckpt = Path(config.ckpt_path) if config.get("ckpt_path") not in (None, "best", "last") else None
        owner = run_of(ckpt) if ckpt is not None else None
        if self.subcommand in (None, "fit"):  # None: built without running, to fit (`demo`)
            # resuming from a checkpoint of a run continues in that run's folder; otherwise a new version
            self._run_dir = owner if owner is not None else next_version(experiment)
        else:
            # evaluations write into their own folder inside the run they evaluate
            self._run_dir = evaluation_folder(owner or experiment, self.subcommand)
        self._new_run = not self._run_dir.exists()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._run_config
        dry_run = bool(config.trainer.get("fast_dev_run"))
        if config.trainer.get("default_root_dir") is None:
            # without a logger Lightning writes here: inside the run, or a throw-away folder for dry runs
            kwargs["default_root_dir"] = str(scratch_folder() if dry_run else self._run_dir or "runs")
        if config.trainer.get("logger") in (None, True) and not dry_run and self._run_dir is not None:
            if (
                not self._new_run and getattr(rank_zero_only, "rank", 0) == 0
            ):  # other processes leave the files alone
                keep_csv_history(self._run_dir)
            # one folder per logger: CSV (first: the trainer's log_dir) in the run, TensorBoard beneath it
            number = VERSION_FOLDER.fullmatch(self._run_dir.name)  # a number shows in the progress bar
            save_dir, version = (
                str(self._run_dir.parent),
                int(number.group(1)) if number else self._run_dir.name,
            )
            kwargs["logger"] = [
                CSVLogger(save_dir, name="", version=version),
                TensorBoardLogger(
                    save_dir, name="", version=version, sub_dir="tensorboard", default_hp_metric=False
                ),
            ]
            _say(f"run folder: {self._run_dir}")
        trainer_init = self._get(self.config_init, "trainer", default={})
        choice = resolve_precision(trainer_init.get("precision"), trainer_init.get("accelerator", "auto"))
        if choice.reason is not None:
            _say(str(choice))
        kwargs["precision"] = choice.precision
        kwargs["plugins"] = _with_atomic_io(trainer_init.get("plugins"))
        kwargs["callbacks"] = self._run_callbacks(config, trainer_init.get("callbacks"), dry_run)
        return super().instantiate_trainer(**kwargs)

    def _run_callbacks(self, config: Any, configured: Any, dry_run: bool) -> list[Any]:
        """The configured callbacks, :class:`RunGuard` (``last.ckpt`` every n steps, graceful stop) and,
        when the task holds a configured network, :class:`RecordNetwork` (self-describing checkpoints)."""
        configured = configured or []
        every = config.checkpoint_every_n_steps
        if every < 0:
            raise ValueError(f"--checkpoint_every_n_steps must be >= 0, got {every}")
        if config.trainer.get("enable_checkpointing") is False or dry_run:
            every = 0
        callbacks = [*(configured if isinstance(configured, list) else [configured]), RunGuard(every)]
        network = _configured_network(config)
        if network is not None:
            callbacks.append(RecordNetwork(network, task=config.model.get("class_path")))
        return callbacks

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            self._drop_unused_run()
            raise

    def _drop_unused_run(self) -> None:
        """Remove the folder this command made when it failed before anything worth keeping was written:
        a fit that trained no step and saved no checkpoint, an evaluation that did not finish."""
        run = self._run_dir
        if run is None or not self._new_run or not run.is_dir() or getattr(rank_zero_only, "rank", 0) != 0:
            return
        trained = getattr(getattr(self, "trainer", None), "global_step", 0) > 0
        if self.subcommand in (None, "fit") and (trained or any(run.rglob("*.ckpt"))):
            return
        shutil.rmtree(run, ignore_errors=True)

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "test" and not self._verbose:
            parser.set_defaults(verbose=False)  # lstmvision prints the metrics beside the baseline itself
        return parser

    def after_test(self) -> None:
        ckpt = self._run_config.get("ckpt_path")
        if ckpt and self.trainer.is_global_zero:
            print(f"tested checkpoint: {ckpt}")
        report(self.trainer)

    def after_fit(self) -> None:
        log_dir = self.trainer.log_dir  # a broadcast under DDP: every process must ask
        if (
            self.trainer.is_global_zero
            and log_dir is not None
            and not getattr(self.trainer, "fast_dev_run", False)
        ):
            print(f"run directory: {log_dir}")
            best = best_checkpoint(self.trainer)
            if best:
                print(f"best checkpoint: {best}")


class ConfigError(ValueError):
    """The command line or a config file names a key or value the command does not accept."""


def _configured_network(config: Any) -> dict[str, Any] | None:
    """The task's network as plain values (``model.init_args.model``), when the config gives one."""
    model = config.get("model")
    init = model.get("init_args") if model is not None and hasattr(model, "get") else None
    network = init.get("model") if init is not None and hasattr(init, "get") else None
    if network is None or not hasattr(network, "get") or network.get("class_path") is None:
        return None
    plain = yaml.safe_load(yaml.safe_dump(_plain(network), sort_keys=False))
    return dict(plain)


def _plain(value: Any) -> Any:
    """A jsonargparse namespace (or anything inside one) as dicts, lists and scalars."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


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


def best_checkpoint(trainer: Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    return callback.best_model_path or None if isinstance(callback, ModelCheckpoint) else None


@contextmanager
def command_line(argv: list[str]) -> Iterator[None]:
    """Run with ``sys.argv[1:]`` equal to ``argv``: LightningCLI then reads the command line itself
    (given both ``args`` and a different ``sys.argv`` it warns that one of them may be a mistake)."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "lstmvision", *argv]
    try:
        yield
    finally:
        sys.argv = saved


def take_flags(argv: list[str]) -> tuple[bool, bool, list[str]]:
    """``-v``/``--verbose`` and ``--debug`` (anywhere on the line) and the rest of the command line."""
    verbose = any(arg in ("-v", "--verbose") for arg in argv)
    debug = "--debug" in argv
    return verbose, debug, [arg for arg in argv if arg not in ("-v", "--verbose", "--debug")]
