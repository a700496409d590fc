"""The ``lstmvision`` command: LightningCLI's fit/validate/test/predict plus ``demo``, ``export``, ``compare``,
``extract-features`` and ``caption``.

Run folders (docs/runs.md): a ``fit`` writes ``<runs_dir>/<experiment>/version_<n>/`` (config, CSV log,
``tensorboard/``, ``checkpoints/``) and only keeps it once it has trained; ``--ckpt_path last`` is the
newest checkpoint of the experiment across versions (an error when there is none) and the run goes on in
its folder; ``test``/``validate``/``predict`` write into ``<run>/<subcommand>-<timestamp>/``. Checkpoints
record their network (:mod:`lstmvision.checkpoints`). At default verbosity Lightning's chatter is left
out and any error is one line with exit code 2 (:mod:`lstmvision.console`); ``-v`` and ``--debug`` show
more.

Reliability (docs/reliability.md): checkpoints are written atomically (never a truncated file, never
one with NaN/inf weights), ``last.ckpt`` is also saved every ``--checkpoint_every_n_steps`` training
steps, and SIGINT/SIGTERM stop ``fit`` after the current batch with ``last.ckpt`` saved, exit code
128 + signal and the command that resumes the run on stderr.
"""

from __future__ import annotations

import argparse
import atexit
import difflib
import inspect
import json
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import import_module, resources
from pathlib import Path
from typing import Any

import torch.distributed
import yaml
from jsonargparse import ArgumentError
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lstmvision._io import check_safe, safe_load
from lstmvision.checkpoints import RecordNetwork, check_network
from lstmvision.commands.configs import resolve_config_args
from lstmvision.console import USER_ERRORS, error_line, quiet_lightning, request_debug
from lstmvision.models.predictor import MOVED_TO_TASK
from lstmvision.precision import PrecisionInput, resolve_precision
from lstmvision.tasks._reliability import AtomicCheckpointIO, RunGuard, RunInterrupted
from lstmvision.tasks.base import moved_argument

__all__ = ["LstmVisionCLI", "main"]

_SUBCOMMANDS = ("fit", "validate", "test", "predict")
_VERSION = re.compile(r"version_(\d+)")


def _versions(experiment: Path) -> list[Path]:
    """The ``version_<n>`` folders of an experiment, in the order of n."""
    found = [(int(m.group(1)), p) for p in experiment.glob("version_*") if (m := _VERSION.fullmatch(p.name))]
    return [path for _, path in sorted(found)]


def _next_version(experiment: Path) -> Path:
    versions = _versions(experiment)
    return experiment / f"version_{int(versions[-1].name.split('_')[1]) + 1 if versions else 0}"


def _newest_checkpoint(experiment: Path, pattern: str, flag: str) -> Path:
    """The newest ``pattern`` checkpoint of any version of an experiment, or an error naming the folders."""
    folders = [version / "checkpoints" for version in _versions(experiment)]
    found = [path for folder in folders for path in folder.glob(pattern) if path.is_file()]
    if not found:
        searched = ", ".join(str(folder) for folder in folders) or f"no version_* folder in {experiment}"
        raise FileNotFoundError(
            f"--ckpt_path {flag}: no {pattern} checkpoint of experiment {experiment.name!r} (searched: "
            f"{searched}); give a checkpoint file or check --experiment / --runs_dir"
        )
    # newest by time written; between files written together (last.ckpt and a best-*.ckpt), last.ckpt
    return max(found, key=lambda path: (path.stat().st_mtime, path.name == "last.ckpt"))


def _run_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint file belongs to (``<run>/checkpoints/<file>``), if it has one."""
    parent = checkpoint.parent
    if parent.name == "checkpoints" and _VERSION.fullmatch(parent.parent.name):
        return parent.parent
    return None


def _evaluation_folder(run: Path, subcommand: str) -> Path:
    """``<run>/<subcommand>-<timestamp>``: a new folder, never one that exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = run / f"{subcommand}-{stamp}", 1
    while folder.exists():
        n += 1
        folder = run / f"{subcommand}-{stamp}-{n}"
    return folder


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
        super().__init__(
            LightningModule,
            LightningDataModule,
            trainer_class=_Trainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "yaml", **strict, **{sub: dict(strict) for sub in _SUBCOMMANDS}},
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

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            # a key that moved (issue 17) is named with its new place, whatever jsonargparse made of it
            moved = _moved_key(sys.argv[1:] if args is None else [str(a) for a in args])
            if moved is not None:
                raise ConfigError(moved) from None
            subparsers = getattr(self, "_subcommand_parsers", {})
            raise ConfigError(_explain_parse_error(str(error), parser, subparsers, args)) from None

    @property
    def _run_config(self) -> Any:
        """The parsed configuration of this run (of its subcommand, when there is one)."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        ckpt = config.get("ckpt_path") if subcommand else None
        if ckpt in ("last", "best"):
            # the newest checkpoint of the experiment across its versions; Lightning's own lookup would
            # search only the newest version folder and silently start afresh when it holds none
            experiment = Path(config.runs_dir) / config.experiment
            if ckpt == "best" and subcommand == "fit":
                pass  # Lightning's meaning: the best of this fit
            else:
                pattern = "*.ckpt" if ckpt == "last" else "best-*.ckpt"
                config.ckpt_path = ckpt = str(_newest_checkpoint(experiment, pattern, ckpt))
        if ckpt and Path(ckpt).is_file():
            # refuse a file that would run code when unpickled, with an error naming it
            check_safe(ckpt, what="--ckpt_path checkpoint")
            self._apply_checkpoint_hyperparameters(ckpt, subcommand)
        if ckpt and Path(ckpt).is_file():
            network = _configured_network(self.config[subcommand])
            if network is not None:
                check_network(safe_load(ckpt, what="checkpoint"), network, source=ckpt)

    def _apply_checkpoint_hyperparameters(self, ckpt: str, subcommand: str) -> None:
        """The task's hyperparameters saved in the checkpoint become the config's (what Lightning's own
        ``_parse_ckpt_path`` does), less the keys that have moved since the checkpoint was written: those
        are left out with a note, and the config's optimiser and scheduler apply."""
        saved = safe_load(ckpt, what="checkpoint")
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
                f"the hyperparameters saved in {ckpt} do not parse: {_explain_value_error(str(error))}"
            ) from None

    def before_instantiate_classes(self) -> None:
        config = self._run_config
        # checkpoints hold only tensors and plain values; never unpickle code from a checkpoint file
        if "weights_only" in config:
            config.weights_only = True
        experiment = Path(config.runs_dir) / config.experiment
        ckpt = Path(config.ckpt_path) if config.get("ckpt_path") not in (None, "best", "last") else None
        owner = _run_of(ckpt) if ckpt is not None else None
        if self.subcommand in (None, "fit"):  # None: built without running, to fit (`demo`)
            # resuming from a checkpoint of a run continues in that run's folder; otherwise a new version
            self._run_dir = owner if owner is not None else _next_version(experiment)
        else:
            # evaluations write into their own folder inside the run they evaluate
            self._run_dir = _evaluation_folder(owner or experiment, self.subcommand)
        self._new_run = not self._run_dir.exists()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._run_config
        dry_run = bool(config.trainer.get("fast_dev_run"))
        if config.trainer.get("default_root_dir") is None:
            # without a logger Lightning writes here: inside the run, or a throw-away folder for dry runs
            kwargs["default_root_dir"] = str(_scratch_folder() if dry_run else self._run_dir or "runs")
        if config.trainer.get("logger") in (None, True) and not dry_run and self._run_dir is not None:
            if (
                not self._new_run and getattr(rank_zero_only, "rank", 0) == 0
            ):  # other processes leave the files alone
                _keep_csv_history(self._run_dir)
            # one folder per logger: CSV (first: the trainer's log_dir) in the run, TensorBoard beneath it
            number = _VERSION.fullmatch(self._run_dir.name)  # a number shows in the progress bar
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
        _report(self.trainer)

    def after_fit(self) -> None:
        log_dir = self.trainer.log_dir  # a broadcast under DDP: every process must ask
        if (
            self.trainer.is_global_zero
            and log_dir is not None
            and not getattr(self.trainer, "fast_dev_run", False)
        ):
            print(f"run directory: {log_dir}")
            best = _best_checkpoint(self.trainer)
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


def _scratch_folder() -> Path:
    """A temporary folder removed when the process exits (what a dry run writes goes there)."""
    folder = Path(tempfile.mkdtemp(prefix="lstmvision-dry-run-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _moved_at(path: list[str], value: Any) -> str | None:
    """The message for a key that moved, given its dotted path under the config's root, else None."""
    if len(path) == 3 and path[:2] == ["model", "init_args"]:
        return moved_argument(path[2], value)
    if len(path) == 5 and path[:2] == path[2:4] == ["model", "init_args"] and path[4] in MOVED_TO_TASK:
        return f"`{path[4]}` moved: {MOVED_TO_TASK[path[4]]}"
    return None


def _moved_in_file(file: str) -> str | None:
    """The first moved key of a config file (its task's and its network's arguments), else None."""
    try:
        document = yaml.safe_load(Path(file).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the parser says what is wrong with the file
    model = document.get("model") if isinstance(document, dict) else None
    task = model.get("init_args") if isinstance(model, dict) else None
    if not isinstance(task, dict):
        return None
    network = task.get("model")
    network_args = network.get("init_args") if isinstance(network, dict) else None
    found = [_moved_at(["model", "init_args", str(k)], v) for k, v in task.items()]
    if isinstance(network_args, dict):
        found += [_moved_at(["model", "init_args", "model", "init_args", str(k)], None) for k in network_args]
    return next((line for line in found if line is not None), None)


def _moved_key(argv: list[str]) -> str | None:
    """The first key of the command line or its config files that moved to a new place (the old optimiser
    and schedule keys, the predictors' scheduled-sampling arguments), as its one-line message."""
    for i, token in enumerate(argv):
        name, equals, value = token.partition("=")
        if not equals:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if name in ("--config", "-c"):
            found = _moved_in_file(value)
        elif name.startswith("--model."):
            found = _moved_at(name[2:].split("."), value)
        else:
            continue
        if found is not None:
            return found
    return None


def _explain_parse_error(message: str, parser: Any, subparsers: dict[str, Any], args: Any) -> str:
    """One line for a parse error: the offending key and the closest valid one."""
    argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
    sub = next((a for a in argv if a in subparsers), None)
    known = _option_names(subparsers[sub]) if sub else _option_names(parser)
    unknown = re.findall(r"unrecognized arguments: (\S+)", message)
    if unknown:
        key = unknown[0].split("=")[0]
        return f"unknown option {key}{_suggest(key, known)}"
    rejected = re.findall(r"[Kk]ey \"([\w.]+)\"|Option '([\w.]+)' is not accepted", message)
    options = [b for _, b in rejected if b]
    if options:
        name = options[0]
        given = next(
            (a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0].endswith("." + name)),
            None,
        )
        classes = re.findall(r"class_path '([\w.]+)'", message)
        accepted = _init_args(classes[-1]) if classes else []
        if given is not None:
            prefix = given[: -len(name)]
            close = difflib.get_close_matches(name, accepted, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            return f"unknown option {given}{hint}"
        close = difflib.get_close_matches(name, accepted, n=1)
        owner = f" of {classes[-1]}" if classes else ""
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"key {name!r} is not an argument{owner} (in the config file){hint}"
    return _explain_value_error(message)


def _explain_value_error(message: str) -> str:
    """One line for a value jsonargparse refused: the full key, what it expected, what it got."""
    top = re.match(r'Parser key "([\w.]+)"', message)
    nested = re.search(r"Given value: NestedArg\(key='([\w.]+)', val='(.*)'\)", message)
    key = top.group(1) if top else None
    if key is not None and nested is not None:
        key = f"{key}.init_args.{nested.group(1)}"
    pair = re.search(r"Expected an? (.+?)\. Got value: (.*)", message)  # the innermost refusal
    expected = re.findall(r"Expected an? (.+?)$", message, flags=re.MULTILINE)
    given = re.search(r"^\s*Given value: (.*)$", message, flags=re.MULTILINE)
    value = pair.group(2) if pair else nested.group(2) if nested else given.group(1) if given else None
    if key is None or value is None:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        return " ".join(lines[:3])
    if pair is not None:
        expected = [pair.group(1)]
        if not _literal_values(pair.group(1)):
            return f"bad value {value!r} for --{key}: expected {_type_names(pair.group(1))}"
    choices = [c for e in expected for c in _literal_values(e)]
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    accepted = (
        ", ".join(dict.fromkeys(map(repr, choices))) if choices else ", ".join(map(_type_names, expected))
    )
    return f"bad value {value!r} for --{key}{hint} (accepted: {accepted})"


def _type_names(text: str) -> str:
    """``<class 'int'>`` -> ``int`` (and the like inside a longer description)."""
    return re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text).strip()


def _literal_values(text: str) -> list[Any]:
    """The values of a ``typing.Literal[...]`` description (nothing for other types)."""
    inner = re.fullmatch(r"typing\.Literal\[(.*)\]", text.strip())
    if inner is None:
        return [None] if "NoneType" in text else []
    try:
        parsed = yaml.safe_load(f"[{inner.group(1)}]")
    except yaml.YAMLError:
        return []
    return list(parsed) if isinstance(parsed, list) else []


def _option_names(parser: Any) -> list[str]:
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def _init_args(class_path: str) -> list[str]:
    """The constructor's argument names of a class path (nothing when it cannot be imported)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    except (ImportError, AttributeError, ValueError, TypeError):
        return []


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]}?" if close else ""


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
        "--config",
        default=str(demo_config()),
        help="a config file or packaged config name (default: moving_mnist_demo, the packaged demo)",
    )
    known, extra = parser.parse_known_args(argv)
    verbose, _, extra = _take_flags(extra)
    with _command_line(["--config", known.config, *extra]):
        cli = LstmVisionCLI(run=False, verbose=verbose)
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
    "compare": ("lstmvision.compare:main", "fit and test several configs with the same seeds, one table"),
    "extract-features": ("lstmvision.features:main", "per-frame CNN features of videos -> HDF5"),
    "caption": ("lstmvision.captioning:main", "caption videos with a trained SA-LSTM"),
    "configs": ("lstmvision.commands.configs:main", "list the packaged configs by name; --copy NAME DIR"),
    "forecast": (
        "lstmvision.commands.forecast:main",
        "forecast the frames after your videos -> GIF/MP4 each",
    ),
    "classify": ("lstmvision.commands.classify:main", "classify your videos -> CSV of top-k classes"),
}


def _command(name: str) -> Any:
    module, function = _COMMANDS[name][0].split(":")
    return getattr(import_module(module), function)


def _usage() -> str:
    """``lstmvision --help``: every subcommand with its one-line help."""
    lightning = {
        "fit": "train a model (--ckpt_path last resumes the newest run)",
        "validate": "run a checkpoint over the validation set",
        "test": "test a checkpoint: metrics and outputs under its run",
        "predict": "predict with a checkpoint",
    }
    rows = [*lightning.items(), *((name, text) for name, (_, text) in _COMMANDS.items())]
    width = max(len(name) for name, _ in rows)
    return "\n".join(
        [
            "usage: lstmvision <command> [options]     (`lstmvision <command> --help`: its options)",
            "",
            "commands:",
            *(f"  {name:<{width}}  {text}" for name, text in rows),
            "",
            "options:",
            "  -h, --help  show this list and exit",
            "  --version   print the version and exit",
            "",
            "--config takes a file or the name of a packaged config (`lstmvision configs` lists them)",
        ]
    )


def _version() -> str:
    """The installed distribution's version, else the package's ``__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lstmvision")
    except PackageNotFoundError:
        return str(getattr(import_module("lstmvision"), "__version__", "unknown"))


@contextmanager
def _command_line(argv: list[str]) -> Iterator[None]:
    """Run with ``sys.argv[1:]`` equal to ``argv``: LightningCLI then reads the command line itself
    (given both ``args`` and a different ``sys.argv`` it warns that one of them may be a mistake)."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "lstmvision", *argv]
    try:
        yield
    finally:
        sys.argv = saved


def _take_flags(argv: list[str]) -> tuple[bool, bool, list[str]]:
    """``-v``/``--verbose`` and ``--debug`` (anywhere on the line) and the rest of the command line."""
    verbose = any(arg in ("-v", "--verbose") for arg in argv)
    debug = "--debug" in argv
    return verbose, debug, [arg for arg in argv if arg not in ("-v", "--verbose", "--debug")]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lstmvision`` console script.

    ``-v`` keeps Lightning's own output; ``--debug`` shows the traceback of an error instead of the one
    line (and exit code 2) that any problem with what was given ends in."""
    verbose, debug, argv = _take_flags(list(sys.argv[1:] if argv is None else argv))
    quiet_lightning(verbose)
    request_debug(debug)
    try:
        argv = resolve_config_args(argv)
        if argv[:1] in (["-h"], ["--help"], ["--version"]):
            print(_usage() if argv[0] != "--version" else f"lstmvision {_version()}")
            return
        if argv and argv[0] in _COMMANDS:
            with _command_line(argv):
                _command(argv[0])(argv[1:])
            return
        if argv and argv[0] not in (*_SUBCOMMANDS, "--print_config"):
            names = [*_SUBCOMMANDS, *_COMMANDS]
            raise ConfigError(
                f"unknown subcommand {argv[0]!r}{_suggest(argv[0], names)} (`lstmvision --help` lists them all)"
            )
        with _command_line(argv):
            LstmVisionCLI(verbose=verbose)
    except RunInterrupted as stop:
        print(f"lstmvision: {stop}\nresume with:\n  {_resume_command(argv)}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except FloatingPointError as error:
        # a diverged run: the message names the step; the checkpoints written before it are left as they were
        sys.exit(f"lstmvision {argv[0]}: {error}")
    except (*USER_ERRORS, MisconfigurationException) as error:  # type: ignore[misc]
        if debug:
            raise
        where = f"lstmvision {argv[0]}" if argv and argv[0] in (*_SUBCOMMANDS, *_COMMANDS) else "lstmvision"
        print(f"{where}: {error_line(error)}", file=sys.stderr)
        sys.exit(2)
    finally:
        request_debug(False)  # main() may run again in this process (tests, notebooks)
        # Lightning leaves a DDP process group alive; torn down by the interpreter's exit instead, gloo's
        # threads can abort the process ("terminate called without an active exception", exit -6)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
