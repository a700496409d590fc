"""Inference on a person's own files: `lstmvision forecast` and `lstmvision classify` on tiny real videos
with checkpoints of tiny `lstmvision fit` runs (their outputs equal the networks' own forward passes on
the same frames), `predict`'s printed outputs and named predictions.csv rows, `RecurrentPredictor.forecast`."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from test_cli import TINY
from video_files import write_video

from lstmvision.checkpoints import LoadedNetwork, load_network
from lstmvision.cli import main as cli_main
from lstmvision.commands import classify, forecast
from lstmvision.commands.demo import demo_config
from lstmvision.data import ClipTransform, VideoClips, VideoDataModule, read_frames
from lstmvision.models import ConvLSTMPredictor
from lstmvision.viz import save_forecast_animation

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
# the demo predictor, tiny: 32x32 gray frames, 4 observed + 4 predicted, on 4 training clips
PREDICTOR_RUN = ["--config", str(demo_config()), *TINY, "--data.init_args.train_size", "4",
                 "--data.init_args.val_size", "4", "--trainer.max_epochs", "1"]  # fmt: skip


def _cnn_lstm_config() -> Path:
    packaged = Path(str(resources.files("lstmvision") / "configs" / "actions" / "cnn_lstm.yaml"))
    return packaged if packaged.is_file() else ROOT / "configs" / "actions" / "cnn_lstm.yaml"


# a CNN-LSTM on the embedded action set (10 named classes), tiny: clips of 4 gray 24x24 frames
CLASSIFIER_RUN = ["--config", str(_cnn_lstm_config()),
                  "--model.init_args.model.init_args.encoder.init_args.channels", "[4]",
                  "--model.init_args.model.init_args.encoder.init_args.pool_size", "2",
                  "--model.init_args.model.init_args.encoder.init_args.feature_dim", "8",
                  "--model.init_args.model.init_args.hidden_size", "6",
                  "--data.init_args.image_size", "24", "--data.init_args.seq_length", "4",
                  "--data.init_args.train_size", "4", "--data.init_args.val_size", "4",
                  "--data.init_args.test_size", "5", "--data.init_args.batch_size", "4",
                  "--data.init_args.num_workers", "0", "--trainer.max_epochs", "1", *QUIET]  # fmt: skip
FUTURE = 4  # the tiny predictor's total_length - input_length
CLASSES = 10


@pytest.fixture(scope="module")
def predictor_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    cli_main(["fit", *PREDICTOR_RUN, "--runs_dir", str(runs)])
    return runs / "moving_mnist_demo" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    cli_main(["fit", *CLASSIFIER_RUN, "--runs_dir", str(runs)])
    return runs / "actions_cnn_lstm" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``clip.mp4`` (12 RGB frames 40x48), ``still/`` (6 PNG frames 30x30), ``more/`` (a folder of two
    videos: ``b.mp4`` and a frame folder ``c/``), ``short.mp4`` (2 frames), ``broken.mp4`` (no video)."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    write_video(root / "clip.mp4", rng.integers(0, 256, (12, 40, 48, 3), dtype=np.uint8))
    write_video(root / "more" / "b.mp4", rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8))
    for folder, count in (("still", 6), ("more/c", 5)):
        (root / folder).mkdir(parents=True)
        for number in range(count):
            pixels = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"frame_{number}.png")
    write_video(root / "short.mp4", rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    (root / "broken.mp4").write_bytes(b"these bytes are no video container" * 8)
    return root


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(image)]


def _printed_paths(out: str, label: str) -> list[Path]:
    return [Path(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith(f"{label}: ")]


def _fails(main: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a command prints on stderr when it stops with exit code 2."""
    with pytest.raises(SystemExit) as stop:
        main(argv)  # type: ignore[operator]
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --------------------------------------------------------------------------------- predictor.forecast


def test_predictor_forecast_returns_only_the_future_frames() -> None:
    torch.manual_seed(0)
    predictor = ConvLSTMPredictor(
        1, patch_size=2, num_hidden=[4], filter_size=3, input_length=3, total_length=6
    )
    frames = torch.rand(2, 5, 1, 8, 8)
    with torch.no_grad():
        got = predictor.forecast(frames, future=4)
        assert got.shape == (2, 4, 1, 8, 8)
        torch.testing.assert_close(got, predictor(frames[:, :3], future=4)[:, 2:], rtol=0, atol=0)
        # frames after input_length are never read
        other = frames.clone()
        other[:, 3:] = 1.0
        torch.testing.assert_close(predictor.forecast(other, future=4), got, rtol=0, atol=0)
        assert predictor.forecast(frames).shape == (2, 3, 1, 8, 8)  # total_length - input_length


# ------------------------------------------------------------------------------------------- forecast


def test_forecast_writes_a_gif_per_video_with_observed_plus_forecast_frames(
    predictor_ckpt: Path, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = [videos / "clip.mp4", videos / "still", videos / "more"]
    written = forecast.main(
        ["--checkpoint", str(predictor_ckpt), *map(str, inputs), "--out", str(tmp_path / "out")]
    )
    names = ["clip.gif", "still.gif", "b.gif", "c.gif"]  # a folder of videos gives each of them
    assert written == [tmp_path / "out" / name for name in names]
    assert _printed_paths(capsys.readouterr().out, "forecast") == written
    for path in written:
        assert len(_gif_frames(path)) == 4 + FUTURE  # observed + forecast

    longer = ["--future", "7", "--out", str(tmp_path / "long")]
    forecast.main(["--checkpoint", str(predictor_ckpt), str(videos / "clip.mp4"), *longer])
    assert len(_gif_frames(tmp_path / "long" / "clip.gif")) == 4 + 7


def test_forecast_frames_are_the_networks_own_forecast_of_the_last_frames(
    predictor_ckpt: Path, videos: Path, tmp_path: Path
) -> None:
    model = load_network(predictor_ckpt).model.eval()
    video = videos / "clip.mp4"
    # the last input_length=4 of 12 frames, as the training data was: 32x32, one gray channel
    last = torch.from_numpy(read_frames(video, [8, 9, 10, 11])).permute(0, 3, 1, 2)
    observed = ClipTransform(resize=(32, 32), grayscale=True)(last).unsqueeze(0)  # (1, 4, 1, 32, 32)
    with torch.no_grad():
        expected = model(observed, future=FUTURE)[:, 3:]  # forward: its predictions past the observed
    result = forecast.forecast_video(model, video, future=FUTURE, size=(32, 32), channels=1)
    torch.testing.assert_close(result.observed, observed, rtol=0, atol=0)
    torch.testing.assert_close(result.forecast, expected, rtol=0, atol=0)

    # the written GIF holds those frames: it equals the animation of the forward pass's frames
    forecast.main(["--checkpoint", str(predictor_ckpt), str(video), "--out", str(tmp_path)])
    reference = save_forecast_animation(tmp_path / "reference.gif", observed, expected)
    for got, want in zip(_gif_frames(tmp_path / "clip.gif"), _gif_frames(reference), strict=True):
        np.testing.assert_array_equal(got, want)


def test_forecast_writes_mp4(predictor_ckpt: Path, videos: Path, tmp_path: Path) -> None:
    mp4 = ["--format", "mp4", "--fps", "5", "--out", str(tmp_path)]
    (path,) = forecast.main(["--checkpoint", str(predictor_ckpt), str(videos / "still"), *mp4])
    assert path == tmp_path / "still.mp4"
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4 + FUTURE
        assert container.streams.video[0].average_rate == 5


def test_forecast_errors_name_the_problem_with_exit_code_2(
    predictor_ckpt: Path,
    classifier_ckpt: Path,
    videos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = ["--checkpoint", str(predictor_ckpt), "--out", str(tmp_path)]
    line = _fails(forecast.main, [*run, str(videos / "missing.mp4")], capsys)
    assert line == f"lstmvision forecast: no such video file or folder: {videos / 'missing.mp4'}"
    line = _fails(forecast.main, [*run, str(videos / "broken.mp4")], capsys)
    assert f"{videos / 'broken.mp4'}: cannot open the video" in line
    line = _fails(forecast.main, [*run, str(videos / "short.mp4")], capsys)
    assert f"{videos / 'short.mp4'}: 2 frames, but the model observes input_length=4 frames" in line
    line = _fails(forecast.main, [*run, "--future", "0", str(videos / "clip.mp4")], capsys)
    assert line.endswith("--future must be >= 1, got 0")
    line = _fails(forecast.main, ["--checkpoint", str(classifier_ckpt), str(videos / "clip.mp4")], capsys)
    assert "holds a CNNLSTM of a VideoClassificationTask run, not a video predictor" in line
    assert not list(tmp_path.iterdir())  # nothing written by the failed runs


# ------------------------------------------------------------------------------------------- classify


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _top(row: dict[str, str], k: int) -> tuple[list[str], list[float]]:
    classes = [row[f"top{r}_class"] for r in range(1, k + 1)]
    return classes, [float(row[f"top{r}_probability"]) for r in range(1, k + 1)]


def test_classify_writes_a_row_per_video_with_sorted_top_k(
    classifier_ckpt: Path, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "labels.csv"
    inputs = [videos / "clip.mp4", videos / "still", videos / "more"]
    assert classify.main(["--checkpoint", str(classifier_ckpt), *map(str, inputs), "--out", str(out)]) == out
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"classifications: {out}"
    assert printed[1].split() == ["file", "top-1", "top-2", "top-3"] and len(printed) == 2 + 4
    rows = _rows(out)
    files = [videos / "clip.mp4", videos / "still", videos / "more" / "b.mp4", videos / "more" / "c"]
    assert [row["file"] for row in rows] == [str(f) for f in files]
    assert list(rows[0]) == [
        "file",
        *[f"top{r}_{key}" for r in range(1, 6) for key in ("class", "probability")],
    ]
    for row in rows:
        classes, probabilities = _top(row, 5)  # default: min(5, num_classes)
        assert len(set(classes)) == 5 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-5
        assert all(name.isidentifier() for name in classes)  # the embedded set's names, not indices

    classify.main(["--checkpoint", str(classifier_ckpt), str(inputs[0]), "--out", str(out), "--top_k", "2"])
    assert list(_rows(out)[0]) == ["file", "top1_class", "top1_probability", "top2_class", "top2_probability"]


@pytest.mark.parametrize("test_clips", [1, 2])
def test_classify_probabilities_are_the_softmax_of_the_networks_logits(
    classifier_ckpt: Path, videos: Path, tmp_path: Path, test_clips: int
) -> None:
    loaded = load_network(classifier_ckpt)
    model = loaded.model.eval()
    names = classify.class_names(loaded, CLASSES)
    video = videos / "clip.mp4"
    # the test-time clips of the training data: 4 frames, squashed to 24x24, gray; K clips -> mean logits
    clips = VideoClips([(video, 0)], num_frames=4, test_clips=test_clips, resize=(24, 24), crop_size=None,
                       grayscale=True, train=False)  # fmt: skip
    clip, _ = clips[0]
    with torch.no_grad():
        logits = model(clip.reshape(test_clips, 4, 1, 24, 24)).float().mean(dim=0)
    probabilities = logits.softmax(dim=0)
    order = probabilities.argsort(descending=True, stable=True)[:5].tolist()

    out = tmp_path / "p.csv"
    argv = [
        "--checkpoint",
        str(classifier_ckpt),
        str(video),
        "--out",
        str(out),
        "--test_clips",
        str(test_clips),
    ]
    classify.main(argv)
    classes, written = _top(_rows(out)[0], 5)
    assert classes == [names[i] for i in order]
    assert written == pytest.approx(probabilities[order].tolist(), abs=1e-6)


def test_classify_errors_name_the_problem_with_exit_code_2(
    classifier_ckpt: Path,
    predictor_ckpt: Path,
    videos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = ["--checkpoint", str(classifier_ckpt), "--out", str(tmp_path / "c.csv")]
    line = _fails(classify.main, [*run, str(videos / "missing")], capsys)
    assert line == f"lstmvision classify: no such video file or folder: {videos / 'missing'}"
    assert f"{videos / 'broken.mp4'}: cannot" in _fails(
        classify.main, [*run, str(videos / "broken.mp4")], capsys
    )
    line = _fails(classify.main, [*run, "--top_k", "11", str(videos / "clip.mp4")], capsys)
    assert line.endswith("--top_k must be at most the 10 classes of the model, got 11")
    line = _fails(classify.main, ["--checkpoint", str(predictor_ckpt), str(videos / "clip.mp4")], capsys)
    assert "holds a ConvLSTMPredictor of a VideoPredictionTask run, not a video classifier" in line
    assert not (tmp_path / "c.csv").exists()


def test_clip_settings_follow_the_training_data() -> None:
    files = {"root": "videos", "num_frames": 8, "frame_stride": 2, "resize": 128, "crop_size": [112, 96],
             "short_clips": "loop", "test_clips": 3, "grayscale": False, "batch_size": 4}  # fmt: skip
    assert classify.clip_settings(files, channels=3) == {
        "num_frames": 8, "frame_stride": 2, "resize": 128, "crop_size": (112, 96), "short_clips": "loop",
        "test_clips": 3, "grayscale": False,
    }  # fmt: skip
    generated = {"image_size": 32, "seq_length": 16, "train_size": 100}
    assert classify.clip_settings(generated, channels=1) == {
        "num_frames": 16, "frame_stride": 1, "resize": (32, 32), "crop_size": None, "short_clips": "pad",
        "test_clips": 1, "grayscale": True,
    }  # fmt: skip
    given = classify.clip_settings(files, num_frames=5, test_clips=1, image_size=[20, 30], channels=1)
    assert (given["num_frames"], given["test_clips"], given["resize"], given["crop_size"]) == (
        5,
        1,
        (20, 30),
        None,
    )
    assert given["grayscale"] is True
    with pytest.raises(ValueError, match=r"record no clip length .*: give --num_frames"):
        classify.clip_settings({"batch_size": 4})


def test_class_names_come_from_the_training_data_module(tmp_path: Path) -> None:
    for name in ("jump", "run"):  # the layout is scanned, never decoded: empty frame folders will do
        for video in ("v0", "v1"):
            (tmp_path / name / video).mkdir(parents=True)
    data = VideoDataModule(str(tmp_path), test_fraction=0.5, val_fraction=0.0)
    saved = {
        "datamodule_hyper_parameters": {"_class_path": "lstmvision.data.VideoDataModule", **data.hparams}
    }
    loaded = LoadedNetwork(torch.nn.Identity(), saved, {}, tmp_path / "none.yaml", None)
    assert classify.class_names(loaded, 2) == ["jump", "run"]
    assert classify.class_names(loaded, 3) == ["0", "1", "2"]  # names that do not fit: indices
    named = loaded._replace(checkpoint={**saved, "hyper_parameters": {"class_names": ["a", "b"]}})
    assert classify.class_names(named, 2) == ["a", "b"]  # the task's names win
    for video in ("v0", "v1"):
        (tmp_path / "jump" / video).rmdir()
    (tmp_path / "jump").rmdir()  # the layout is gone: indices
    assert classify.class_names(loaded, 2) == ["0", "1"]


def test_forecast_and_classify_are_lstmvision_subcommands(
    predictor_ckpt: Path, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_main(["forecast", "--checkpoint", str(predictor_ckpt), str(videos / "still"), "--out", str(tmp_path)])
    assert _printed_paths(capsys.readouterr().out, "forecast") == [tmp_path / "still.gif"]
    with pytest.raises(SystemExit) as stop:
        cli_main(["classify", "--help"])
    assert stop.value.code == 0 and "--top_k" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- predict


def test_predict_prints_where_it_wrote_and_names_the_rows(
    classifier_ckpt: Path, predictor_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_main(["predict", *CLASSIFIER_RUN, "--ckpt_path", str(classifier_ckpt), "--runs_dir", str(tmp_path)])
    (path,) = _printed_paths(capsys.readouterr().out, "predictions")
    assert path.name == "predictions.csv" and path.is_file()
    rows = _rows(path)
    # the embedded set has no files: its 5 test clips are named by a stable id
    assert [row["video"] for row in rows] == [f"test/{i}" for i in range(5)]
    for row in rows:
        classes, probabilities = _top(row, 5)
        assert classes[0] == row["class_name"] and probabilities[0] == float(row["probability"])
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-5

    cli_main(["predict", *PREDICTOR_RUN, "--ckpt_path", str(predictor_ckpt), "--runs_dir", str(tmp_path)])
    (path,) = _printed_paths(capsys.readouterr().out, "predictions")
    assert path.name == "predictions.pt"
    saved = torch.load(path, weights_only=True)["predictions"]
    assert saved.shape == (6, FUTURE, 1, 32, 32)  # the 6 test clips of TINY
