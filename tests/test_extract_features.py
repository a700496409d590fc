"""``lstmvision extract-features``: tiny mp4 files and a frame folder written here, a 2-stage SmallCNN."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from video_files import write_video

from lstmvision.commands.extract_features import (
    ExtractionReport,
    FeatureFileInfo,
    extract_features,
    read_feature_file_info,
    uniform_frame_indices,
)
from lstmvision.data import read_frames
from lstmvision.encoders import create_encoder

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE, N = 32, 5
ARGS = {"channels": [4, 8]}  # SmallCNN with two stages: D = 8
D = 8
# video id -> frame count; "b" is shorter than N, "d" is a frame folder
LENGTHS = {"a": 10, "b": 3, "c": 7, "d": 4}
# the centres of N = 5 equal segments of each video, worked out by hand: T=10 -> 1, 3, 5, 7, 9;
# T=3 -> 0.3, 0.9, 1.5, 2.1, 2.7; T=7 -> 0.7, 2.1, 3.5, 4.9, 6.3; T=4 -> 0.4, 1.2, 2.0, 2.8, 3.6
EXPECTED_INDICES = {
    "a": [1, 3, 5, 7, 9],
    "b": [0, 0, 1, 2, 2],
    "c": [0, 2, 3, 4, 6],
    "d": [0, 1, 2, 2, 3],
}


def frames_of(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIDE, SIDE, 3), dtype=np.uint8)


def write_videos(folder: Path, lengths: dict[str, int]) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for seed, (video_id, count) in enumerate(lengths.items()):
        frames = frames_of(seed, count)
        if video_id == "d":
            (folder / "d").mkdir(parents=True)
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / "d" / f"frame_{i + 1}.png")
            paths[video_id] = folder / "d"
        else:
            paths[video_id] = write_video(folder / f"{video_id}.mp4", frames)
    return paths


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_videos(tmp_path_factory.mktemp("videos"), LENGTHS)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SmallCNN whose BatchNorm statistics are not the identity, so eval mode matters."""
    torch.manual_seed(0)
    encoder = create_encoder("small_cnn", **ARGS)
    for name, value in encoder.state_dict().items():
        if name.endswith("running_mean"):
            value.uniform_(-0.2, 0.2)
        elif name.endswith("running_var"):
            value.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("weights") / "small_cnn.pt"
    torch.save(encoder.state_dict(), path)
    return path


def expected_features(path: Path, indices: list[int], weights: Path, **encoder_args: object) -> np.ndarray:
    """The encoder applied directly to the frames: ``(N, D)``."""
    encoder = create_encoder("small_cnn", **{**ARGS, **encoder_args})
    encoder.load_weights(weights)
    encoder.eval()
    x = torch.from_numpy(read_frames(path, indices)).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
    with torch.no_grad():
        return encoder(x)[1].numpy()


def run(videos: Path, out: Path, weights: Path | None = None, **kwargs: object) -> ExtractionReport:
    options: dict = {"encoder": "small_cnn", "encoder_args": ARGS, "frames": N, "progress": False}
    options.update(kwargs)
    return extract_features(videos, out, weights=weights, **options)


def cli_main(argv: list[str]) -> None:
    from lstmvision.cli import main  # imported here: the CLI pulls in Lightning and every task

    main(argv)


def read_all(out: Path) -> dict[str, np.ndarray]:
    with h5py.File(out, "r") as handle:
        return {key: handle[key][()] for key in handle}


# --------------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "frames", "expected"),
    [
        (10, 5, [1, 3, 5, 7, 9]),
        (100, 4, [12, 37, 62, 87]),  # centres 12.5, 37.5, 62.5, 87.5
        (7, 7, [0, 1, 2, 3, 4, 5, 6]),
        (3, 5, [0, 0, 1, 2, 2]),  # shorter than N: frames repeat
        (1, 3, [0, 0, 0]),
        (2, 4, [0, 0, 1, 1]),
        (26, 1, [13]),
    ],
)
def test_uniform_indices_are_segment_centres(total: int, frames: int, expected: list[int]) -> None:
    assert uniform_frame_indices(total, frames) == expected


@pytest.mark.parametrize(("total", "frames", "name"), [(0, 3, "num_video_frames"), (5, 0, "frames")])
def test_uniform_indices_reject_non_positive(total: int, frames: int, name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1, got 0"):
        uniform_frame_indices(total, frames)


# --------------------------------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------------------------------


def test_round_trip_equals_encoder_on_sampled_frames(
    videos: dict[str, Path], weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features.h5"
    report = run(videos["a"].parent, out, weights)
    assert report == ExtractionReport(written=["a", "b", "c", "d"], skipped_existing=[], failed={})
    with h5py.File(out, "r") as handle:
        assert sorted(handle) == ["a", "b", "c", "d"]
        for video_id, path in videos.items():
            dataset = handle[video_id]
            assert dataset.dtype == np.float32 and dataset.shape == (N, D)
            want = expected_features(path, EXPECTED_INDICES[video_id], weights)
            error = np.abs(dataset[()] - want).max()
            assert error < 1e-5, f"{video_id}: max error {error}"
        # videos differ, and so do the frames of one video: no constant output hides a bug
        assert not np.allclose(handle["a"][0], handle["a"][1])
        assert np.array_equal(handle["b"][0], handle["b"][1])  # index 0 twice
    info = read_feature_file_info(out)
    assert info == FeatureFileInfo(
        encoder="small_cnn",
        encoder_args=ARGS,
        weights=str(weights.resolve()),
        weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest(),
        frames=N,
        image_size=None,
        feature_size=D,
    )


def test_resize_and_gray_for_a_one_channel_encoder(videos: dict[str, Path], tmp_path: Path) -> None:
    torch.manual_seed(1)
    weights = tmp_path / "gray.pt"
    torch.save(create_encoder("small_cnn", in_channels=1, **ARGS).state_dict(), weights)
    out = tmp_path / "gray.h5"
    run(videos["a"].parent, out, weights, encoder_args={**ARGS, "in_channels": 1}, image_size=16)
    encoder = create_encoder("small_cnn", in_channels=1, weights=str(weights), **ARGS).eval()
    frames = torch.from_numpy(read_frames(videos["c"], EXPECTED_INDICES["c"])).permute(0, 3, 1, 2)
    resized = F.interpolate(frames, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    gray = (resized.float() / 255 * luma).sum(dim=1, keepdim=True)  # (N, 1, 16, 16)
    with torch.no_grad():
        want = encoder(gray)[1].numpy()
    got = read_all(out)["c"]
    assert np.abs(got - want).max() < 1e-5, f"max error {np.abs(got - want).max()}"
    info = read_feature_file_info(out)
    assert (info.image_size, info.encoder_args) == (16, {**ARGS, "in_channels": 1})


def test_not_a_feature_file(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not a feature file.*'encoder'"):
        read_feature_file_info(path)
    with pytest.raises(FileNotFoundError, match="feature file not found"):
        read_feature_file_info(tmp_path / "missing.h5")


# --------------------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------------------


def test_resume_skips_written_videos_and_fills_gaps(
    videos: dict[str, Path], weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, out = videos["a"].parent, tmp_path / "features.h5"
    run(folder, out, weights)
    first = read_all(out)
    with caplog.at_level(logging.INFO, logger="lstmvision.commands.extract_features"):
        again = run(folder, out, weights)
    assert again == ExtractionReport(written=[], skipped_existing=["a", "b", "c", "d"], failed={})
    assert "4 of 4 videos already in the file, skipped" in caplog.text
    with h5py.File(out, "a") as handle:
        del handle["c"]
    refill = run(folder, out, weights)
    assert refill.written == ["c"] and refill.skipped_existing == ["a", "b", "d"]
    second = read_all(out)
    assert sorted(second) == sorted(first)
    for video_id in first:
        assert np.array_equal(second[video_id], first[video_id]), video_id


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"frames": 4}, "attribute 'frames' of the existing file is 5, this run asks for 4"),
        ({"image_size": 16}, "attribute 'image_size' of the existing file is None, this run asks for 16"),
        ({"encoder_args": {"channels": [4, 8], "pool_size": 2}}, "attribute 'encoder_args'"),
        ({"weights": None}, "attribute 'weights_sha256'.*this run's none"),
    ],
)
def test_resume_refuses_other_settings(
    videos: dict[str, Path], weights: Path, tmp_path: Path, change: dict, pattern: str
) -> None:
    out = tmp_path / "features.h5"
    run(videos["a"].parent, out, weights)
    before = read_all(out)
    options = {"weights": weights, **change}
    with pytest.raises(ValueError, match=re.escape(str(out)) + ".*" + pattern):
        run(videos["a"].parent, out, **options)
    after = read_all(out)
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(after[key], before[key]) for key in before)


# --------------------------------------------------------------------------------------------------
# corrupt videos
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def with_corrupt(videos: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    """a.mp4, b_bad.mp4 (the first 40 bytes of a real file), c.mp4."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for video_id in ("a", "c"):
        (folder / f"{video_id}.mp4").write_bytes(videos[video_id].read_bytes())
    bad = folder / "b_bad.mp4"
    bad.write_bytes(videos["a"].read_bytes()[:40])
    return folder, bad


def test_corrupt_video_skipped_and_reported(
    with_corrupt: tuple[Path, Path], weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, bad = with_corrupt
    out = tmp_path / "features.h5"
    with caplog.at_level(logging.WARNING, logger="lstmvision.commands.extract_features"):
        report = run(folder, out, weights)
    assert report.written == ["a", "c"]
    assert list(report.failed) == [bad]
    assert "cannot open the video" in report.failed[bad]
    assert f"{bad}: cannot open the video" in caplog.text
    assert "1 video(s) could not be read" in caplog.text
    assert sorted(read_all(out)) == ["a", "c"]


def test_corrupt_video_raises_and_keeps_earlier_videos(
    with_corrupt: tuple[Path, Path], weights: Path, tmp_path: Path
) -> None:
    folder, bad = with_corrupt
    out = tmp_path / "features.h5"
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ": cannot open the video.*1 videos already"):
        run(folder, out, weights, on_error="raise")
    assert sorted(read_all(out)) == ["a"]  # written before the bad one, c never reached


# --------------------------------------------------------------------------------------------------
# arguments, ids
# --------------------------------------------------------------------------------------------------


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    first = write_video(tmp_path / "v" / "clip.avi", frames_of(0, 2), codec="mpeg4")
    second = write_video(tmp_path / "v" / "clip.mp4", frames_of(1, 2))
    pattern = "two videos have the id 'clip': " + re.escape(f"{first} and {second}")
    with pytest.raises(ValueError, match=pattern):
        run(tmp_path / "v", tmp_path / "f.h5")
    assert not (tmp_path / "f.h5").exists()


def test_folder_without_videos(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "notes.txt").write_text("not a video")
    with pytest.raises(
        ValueError, match=re.escape(str(tmp_path / "v")) + ": no video; expected video files \\(gif\\)"
    ):
        run(tmp_path / "v", tmp_path / "f.h5", extensions=[".gif"])
    with pytest.raises(FileNotFoundError, match="videos folder not found"):
        run(tmp_path / "none", tmp_path / "f.h5")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"frames": 0}, "frames must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"image_size": -2}, "image_size must be an integer >= 1, got -2"),
        ({"on_error": "ignore"}, "on_error must be 'skip' or 'raise', got 'ignore'"),
        ({"encoder": "nope"}, "unknown encoder 'nope'; known encoders: .*small_cnn"),
        ({"encoder_args": {"weights": "w.pt"}}, "must not hold 'weights'"),
        ({"encoder_args": {"bogus": 1}}, "cannot build encoder 'small_cnn'.*bogus"),
        ({"encoder_args": {"in_channels": 5}}, "takes 5 input channels"),
        ({"extensions": "mp4"}, "list of file extensions"),
        ({"extensions": ["mp-4"]}, "alphanumeric extensions"),
    ],
)
def test_bad_arguments(videos: dict[str, Path], tmp_path: Path, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        run(videos["a"].parent, tmp_path / "f.h5", **kwargs)


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def test_cli_writes_the_file_and_prints_a_summary(
    videos: dict[str, Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.h5"
    argv = [
        "--videos",
        str(videos["a"].parent),
        "--encoder",
        "small_cnn",
        "--encoder-args",
        '{"channels": [4, 8]}',
    ]
    argv += [
        "--weights",
        str(weights),
        "--frames",
        "3",
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--no-progress",
    ]
    cli_main(["extract-features", *argv])
    printed = capsys.readouterr().out
    assert f"features: {out.resolve()} (small_cnn, 3 frames x 8 features per video)" in printed
    assert "written 4, already in the file 0, failed 0" in printed
    got = read_all(out)
    assert sorted(got) == ["a", "b", "c", "d"]
    # a batch of 2 frames per call gives what one call over all frames gives (eval-mode BatchNorm)
    want = expected_features(videos["a"], uniform_frame_indices(10, 3), weights)
    assert np.abs(got["a"] - want).max() < 1e-5
    cli_main(["extract-features", *argv])
    assert "written 0, already in the file 4, failed 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"--encoder": "nope"}, "unknown encoder 'nope'; known encoders: .*small_cnn"),
        ({"--videos": "MISSING"}, "videos folder not found: .*missing_dir"),
        ({"--encoder-args": "{channels: 4}"}, "--encoder-args is not valid JSON"),
        ({"--encoder-args": "[4, 8]"}, "--encoder-args must be a JSON object"),
        ({"--frames": "0"}, "frames must be an integer >= 1, got 0"),
    ],
)
def test_cli_errors_exit_with_a_message(
    videos: dict[str, Path], tmp_path: Path, change: dict[str, str], pattern: str
) -> None:
    options = {
        "--videos": str(videos["a"].parent),
        "--encoder": "small_cnn",
        "--frames": "2",
        "--out": str(tmp_path / "f.h5"),
        **change,
    }
    if options["--videos"] == "MISSING":
        options["--videos"] = str(tmp_path / "missing_dir")
    argv = [item for pair in options.items() for item in pair]
    with pytest.raises(SystemExit, match=r"^lstmvision extract-features: .*" + pattern):
        cli_main(["extract-features", *argv, "--no-progress"])
