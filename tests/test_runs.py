"""Run folders never lose work (docs/runs.md): versions, resume, evaluation folders, self-describing
checkpoints, the quiet default output and one-line errors with exit code 2."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TINY_DEMO_NETWORK
from tqdm import tqdm

from lstmvision.checkpoints import RECORD_KEY, network_differences
from lstmvision.cli import main
from lstmvision.commands.demo import demo_config
from lstmvision.commands.export import export_checkpoint
from lstmvision.console import warnings_above_progress_bars
from lstmvision.data import MovingMNISTDataModule
from lstmvision.models import load_pretrained

# the demo configuration made tiny: 32x32 frames, 4 observed + 4 predicted, one layer of 4
TINY = [
    "--config", str(demo_config()),
    *TINY_DEMO_NETWORK,
    "--data.init_args.train_size", "8",
    "--data.init_args.val_size", "4",
    "--data.init_args.test_size", "4",
    "--data.init_args.batch_size", "4",
    "--data.init_args.num_workers", "0",
    "--trainer.enable_progress_bar", "false",
    "--trainer.precision", "32-true",
    "--trainer.max_epochs", "1",
]  # fmt: skip


class BrokenSetupData(MovingMNISTDataModule):
    """A data module whose set-up fails the way a wrong data path does (after the trainer exists)."""

    def setup(self, stage: str) -> None:
        raise FileNotFoundError("data root /nowhere/kth does not exist")


def _exit_code(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the command expecting it to fail; its exit code and what it printed on stderr."""
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    return int(stop.value.code or 0), capsys.readouterr().err


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/ with one tiny fit of the demo configuration (version_0, 2 steps)."""
    runs = tmp_path_factory.mktemp("runs")
    main(["fit", *TINY, "--runs_dir", str(runs)])
    return runs


def test_a_failed_fit_leaves_no_version_and_last_resumes_from_the_newest_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = ["--runs_dir", str(tmp_path)]
    main(["fit", *TINY, *runs])
    experiment = tmp_path / "moving_mnist_demo"
    first = torch.load(experiment / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    code, err = _exit_code(capsys, "fit", *TINY, *runs, "--data.class_path", "test_runs.BrokenSetupData")
    assert code == 2 and err.strip().endswith("lstmvision fit: data root /nowhere/kth does not exist")
    assert sorted(p.name for p in experiment.iterdir()) == ["version_0"], "the failed fit left no folder"

    main(["fit", *TINY, *runs, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert sorted(p.name for p in experiment.iterdir()) == ["version_0"], "resumed in the run it continues"
    resumed = torch.load(experiment / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (first["global_step"], resumed["global_step"]) == (2, 4)


def test_last_with_no_checkpoint_anywhere_is_an_error_naming_the_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "moving_mnist_demo" / "version_0" / "checkpoints").mkdir(parents=True)
    code, err = _exit_code(capsys, "fit", *TINY, "--runs_dir", str(tmp_path), "--ckpt_path", "last")
    folder = tmp_path / "moving_mnist_demo" / "version_0" / "checkpoints"
    assert code == 2
    assert (
        f"--ckpt_path last: no *.ckpt checkpoint of experiment 'moving_mnist_demo' (searched: {folder})"
        in err
    )
    assert not (tmp_path / "moving_mnist_demo" / "version_1").exists()


def test_test_and_predict_write_their_own_folder_and_leave_the_run_byte_identical(trained: Path) -> None:
    run = trained / "moving_mnist_demo" / "version_0"
    before = _digests(run)
    ckpt = str(run / "checkpoints" / "last.ckpt")
    main(["test", *TINY, "--runs_dir", str(trained), "--ckpt_path", ckpt])
    main(["predict", *TINY, "--runs_dir", str(trained), "--ckpt_path", ckpt])
    after = _digests(run)
    kept = {name: digest for name, digest in after.items() if not name.startswith(("test-", "predict-"))}
    assert kept == before, "the training run's files are unchanged"
    (test,) = run.glob("test-*")
    (predict,) = run.glob("predict-*")
    assert (test / "metrics.json").is_file() and (test / "config.yaml").is_file()
    assert (predict / "config.yaml").is_file()
    assert not (trained / "moving_mnist_demo" / "version_1").exists(), "evaluations make no version"


def test_checkpoints_record_their_network_and_rebuild_without_any_config(
    trained: Path, tmp_path: Path
) -> None:
    ckpt = trained / "moving_mnist_demo" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    record = saved[RECORD_KEY]
    assert record["task"] == "lstmvision.tasks.VideoPredictionTask"
    assert record["network"]["class_path"] == "lstmvision.models.ConvLSTMPredictor"
    assert record["network"]["init_args"]["num_hidden"] == [4]
    assert record["network"]["init_args"]["total_length"] == 8

    alone = tmp_path / "last.ckpt"  # no config.yaml anywhere near it
    alone.write_bytes(ckpt.read_bytes())
    model = load_pretrained(alone)
    weights = {k[len("model.") :]: v for k, v in saved["state_dict"].items() if k.startswith("model.")}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    folder = export_checkpoint(alone, out=tmp_path / "exported")
    again = load_pretrained(folder)
    frames = torch.rand(2, 4, 1, 32, 32)
    assert torch.equal(again(frames, future=4), model(frames, future=4))


def test_a_config_contradicting_the_checkpoint_names_the_keys_and_export_still_works(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = str(trained / "moving_mnist_demo" / "version_0" / "checkpoints" / "last.ckpt")
    code, err = _exit_code(
        capsys, "test", *TINY, "--runs_dir", str(trained), "--ckpt_path", ckpt,
        "--model.init_args.model.init_args.num_hidden", "[8]",
    )  # fmt: skip
    assert code == 2
    assert "model.init_args.model.init_args.num_hidden: checkpoint [4], config [8]" in err
    assert len(err.strip().splitlines()) == 1
    # a test with another (compatible) data config, then export: the run's record is intact
    main(["test", *TINY, "--runs_dir", str(trained), "--ckpt_path", ckpt, "--data.init_args.test_size", "8"])
    assert (export_checkpoint(ckpt, out=trained / "exported") / "model.safetensors").is_file()


def test_network_differences_lists_each_key_with_both_values() -> None:
    saved = {"class_path": "a.B", "init_args": {"num_hidden": [4, 4], "filter_size": 3, "norm": True}}
    given = {"class_path": "a.B", "init_args": {"num_hidden": (4, 4), "filter_size": 5, "norm": 1}}
    assert network_differences(saved, given) == [
        "init_args.filter_size: checkpoint 3, config 5",
        "init_args.norm: checkpoint True, config 1",
    ]
    assert network_differences({"x": 1.0}, {"x": 1}) == []


def test_dry_runs_write_nothing_under_runs(tmp_path: Path) -> None:
    main(["fit", *TINY, "--runs_dir", str(tmp_path / "runs"), "--trainer.fast_dev_run", "true"])
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model.init_args.l1_weigth", "0.1"],
            "unknown option --model.init_args.l1_weigth; did you mean --model.init_args.l1_weight?",
        ),
        (
            ["--trainer.max_stepz", "3"],
            "unknown option --trainer.max_stepz; did you mean --trainer.max_steps?",
        ),
        (["--trainer.max_step", "3"], "unknown option --trainer.max_step; did you mean --trainer.max_steps?"),
    ],
    ids=["misspelt-task-key", "misspelt-trainer-key", "abbreviation"],
)
def test_a_bad_key_is_one_line_with_the_closest_valid_key_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _exit_code(capsys, "fit", *TINY, "--runs_dir", str(tmp_path), *argv)
    assert (code, err.strip()) == (2, f"lstmvision fit: {message}")
    assert not tmp_path.joinpath("moving_mnist_demo").exists()


def test_debug_shows_the_traceback_instead(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--ckpt_path last: no"):
        main(["fit", *TINY, "--runs_dir", str(tmp_path), "--ckpt_path", "last", "--debug"])


def test_unknown_subcommand_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit_code(capsys, "fti")
    assert code == 2 and err.startswith("lstmvision: unknown subcommand 'fti'; did you mean fit?")


def _command(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # show every warning the command lets through
    return subprocess.run(
        [sys.executable, "-m", "lstmvision.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True
    )


NOISE = (
    "args parameter",
    "exists and is not empty",
    "will override existing callbacks",
    "💡",
    "GPU available",
    "TPU available",
    "deprecated",
    "FLOPs",
    "weights_only",
    "Seed set",
    "Automatic Mixed Precision",
)


def test_a_default_fit_prints_only_the_documented_lines(tmp_path: Path) -> None:
    done = _command("fit", *TINY, "--trainer.precision", "auto", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = Path("runs") / "moving_mnist_demo" / "version_0"
    err = done.stderr.strip().splitlines()
    assert err[0] == f"run folder: {run}"
    assert len(err) == 2 and err[1].startswith("precision auto -> "), err
    out = done.stdout.strip().splitlines()
    assert out[0] == f"run directory: {run}" and out[1].startswith(
        f"best checkpoint: {run}/checkpoints/best-"
    )
    assert len(out) == 2, out
    assert not [line for line in (done.stdout + done.stderr).splitlines() if any(n in line for n in NOISE)]


def test_a_warning_during_a_progress_bar_gets_a_line_of_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    warnings_above_progress_bars()
    warnings_above_progress_bars()  # once per process, however often the CLI starts
    handlers = [
        h for h in logging.getLogger("lstmvision").handlers if type(h).__name__ == "_AboveProgressBars"
    ]
    assert len(handlers) == 1
    with tqdm(total=10, file=sys.stdout, ascii=True, bar_format="{n}/{total}") as bar:
        bar.update(3)
        bar.refresh()
        logging.getLogger("lstmvision.tasks.budget").warning("time budget: 4 of 20 epochs fit")
        out, err = capsys.readouterr()
        # the bar is cleared before the line is written and drawn again after it
        assert err == "time budget: 4 of 20 epochs fit\n"
        assert out.count("3/10") == 2 and "\r" in out.split("3/10")[1], repr(out)

        handlers[0].pid = -1  # as in a DataLoader worker: its copy of the bar is not on screen
        try:
            logging.getLogger("lstmvision.data").warning("video skipped")
        finally:
            handlers[0].pid = os.getpid()
        out, err = capsys.readouterr()
        assert err == "video skipped\n" and out == ""


def test_verbose_keeps_lightnings_output(tmp_path: Path) -> None:
    done = _command("fit", *TINY, "--trainer.fast_dev_run", "true", "-v", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "GPU available" in done.stderr


# ---------------------------------------------------------------------------------------------------
# data errors through the command: one line naming the file and the fix, exit code 2

# the CNN-LSTM of the embedded action set (1-channel frames), on a folder of real videos instead
FOLDER_RUN = [
    "--config", "actions/cnn_lstm",
    "--data.class_path", "lstmvision.data.VideoDataModule",
    "--data.init_args.layout", "folders",
    "--data.init_args.num_frames", "4",
    "--data.init_args.resize", "16",
    "--data.init_args.crop_size", "16",
    "--data.init_args.val_fraction", "0.25",
    "--data.init_args.test_fraction", "0.25",
    "--data.init_args.batch_size", "2",
    "--data.init_args.num_workers", "0",
    "--model.init_args.model.init_args.num_classes", "2",
    "--trainer.max_steps", "1",
    "--trainer.num_sanity_val_steps", "0",
    "--trainer.enable_progress_bar", "false",
]  # fmt: skip


def _class_folders(root: Path, corrupt: bool = False) -> Path:
    """Two classes of four 6-frame 16x16 RGB videos; with ``corrupt``, every video of class ``a`` is
    random bytes under a video name."""
    from video_files import write_video

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for i in range(4):
            path = root / label / f"{label}{i}.mp4"
            if corrupt and label == "a":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
            else:
                write_video(path, rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    return root


def test_a_wrong_data_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit_code(capsys, "fit", *FOLDER_RUN, "--data.init_args.root", str(tmp_path / "nowhere"),
                           "--runs_dir", str(tmp_path / "runs"))  # fmt: skip
    assert code == 2 and err.strip().splitlines()[-1].startswith("lstmvision fit: ")
    assert str(tmp_path / "nowhere") in err.strip().splitlines()[-1]
    assert not (tmp_path / "runs" / "actions_cnn_lstm" / "version_0").exists()


def test_a_corrupt_video_names_the_file_and_on_corrupt_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _class_folders(tmp_path / "videos", corrupt=True)
    code, err = _exit_code(capsys, "fit", *FOLDER_RUN, "--data.init_args.root", str(root),
                           "--data.init_args.grayscale", "true", "--runs_dir", str(tmp_path / "runs"))  # fmt: skip
    last = err.strip().splitlines()[-1]
    assert code == 2 and re.fullmatch(
        rf"lstmvision fit: {re.escape(str(root / 'a'))}/a\d\.mp4: cannot (open|decode) the video .*; "
        r"`on_corrupt: skip` in the data config skips such videos",
        last,
    ), last


def test_rgb_frames_into_a_one_channel_model_suggest_grayscale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _class_folders(tmp_path / "videos")
    code, err = _exit_code(capsys, "fit", *FOLDER_RUN, "--data.init_args.root", str(root),
                           "--runs_dir", str(tmp_path / "runs"))  # fmt: skip
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith(
        "lstmvision fit: CNNLSTM expects clips (B, T, C=1, H, W), got shape (2, 4, 3,"
    )
    assert last.endswith("; `grayscale: true` in the data config gives one-channel frames")
    assert not (tmp_path / "runs" / "actions_cnn_lstm" / "version_0").exists(), "nothing was trained"
