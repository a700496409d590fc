"""Video files and frame folders: tiny videos written here with PyAV (mp4, avi, mkv, webm) and PNG frames."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from video_files import write_video

from lstmvision.data import (
    ClipTransform,
    VideoClips,
    VideoDataModule,
    VideoSample,
    clip_indices,
    clip_span,
    count_frames,
    random_start,
    read_folder_splits,
    read_frames,
    read_hmdb51_splits,
    read_kth_video_splits,
    read_ucf101_splits,
    scan_class_folders,
    uniform_starts,
)
from lstmvision.data.io import clips as clips_module
from lstmvision.data.io import reading as reading_module
from lstmvision.data.layouts import kth as kth_module

pytestmark = pytest.mark.usefixtures("one_thread")

T_VIDEO, HEIGHT, WIDTH = 24, 24, 32
STEP, RIGHT = 8, 60  # video frame i: left half 8*i, right half 8*i + 60 (gray)
# (extension, codec, encoder options): near-lossless settings, so a frame's index reads back exactly.
FORMATS = [
    ("mp4", "libx264", {"qp": "0"}),
    ("mp4", "mpeg4", {"qmax": "2"}),
    ("avi", "mpeg4", {"qmax": "2"}),
    ("mkv", "libx264", {"qp": "0"}),
    ("webm", "libvpx", {}),
]


# --------------------------------------------------------------------------------------------------
# helpers writing videos and frame folders
# --------------------------------------------------------------------------------------------------


def named(path: Path, text: str = "") -> str:
    """A pytest `match` pattern requiring the path, then `text`."""
    return re.escape(str(path)) + ".*" + text


def gray_frames(n: int = T_VIDEO) -> np.ndarray:
    frames = np.empty((n, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, :, : WIDTH // 2] = STEP * i
        frames[i, :, WIDTH // 2 :] = STEP * i + RIGHT
    return frames


def write_folder(
    folder: Path, frames: np.ndarray, name: Callable[[int], str] = "frame_{}.png".format
) -> Path:
    """PNG frames numbered from 1 without zero padding, so only natural order sorts them right."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / name(i + 1))
    return folder


def rgb_pattern(n: int = T_VIDEO) -> np.ndarray:
    """Frame i: R = 10 i, G = 8 x, B = 8 y: frame index and crop position read back exactly."""
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    frames = np.empty((n, HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames[..., 0] = (10 * np.arange(n))[:, None, None]
    frames[..., 1], frames[..., 2] = 8 * x, 8 * y
    return frames


def video_indices(clip: torch.Tensor) -> list[int]:
    """Frame indices of a (T, C, H, W) clip of `gray_frames`, from the mean of its left quarter."""
    left = clip[:, 0, :, : clip.shape[-1] // 4].mean(dim=(-1, -2))  # (T,)
    return (left * 255 / STEP).round().to(torch.int64).tolist()


def pattern_indices(clip: torch.Tensor) -> list[int]:
    return (clip[:, 0, 0, 0] * 255 / 10).round().to(torch.int64).tolist()


def clips_of(samples: list[tuple[Path, int]], **kwargs: object) -> VideoClips:
    options: dict[str, object] = {"resize": None, "crop_size": None, "flip": False}
    options.update(kwargs)
    return VideoClips(samples, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    frames = gray_frames()
    written = {
        f"{ext}-{codec}": write_video(root / f"v_{codec}.{ext}", frames, codec, options)
        for ext, codec, options in FORMATS
    }
    written["short"] = write_video(root / "short.mp4", gray_frames(5))
    with av.open(str(written["mp4-libx264"])) as container:  # decoded frames, saved losslessly
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    written["folder"] = write_folder(root / "decoded_frames", decoded)
    written["pattern"] = write_folder(root / "pattern", rgb_pattern())
    written["random"] = root / "random.mp4"
    written["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    data = written["mp4-libx264"].read_bytes()
    written["truncated"] = root / "truncated.mp4"
    written["truncated"].write_bytes(data[: len(data) // 2])
    return written


# --------------------------------------------------------------------------------------------------
# clip sampling (pure functions)
# --------------------------------------------------------------------------------------------------


def test_clip_indices_start_and_stride() -> None:
    assert clip_span(4, 3) == 10 and clip_span(1, 5) == 1
    assert clip_indices(20, 4, 3, 5) == [5, 8, 11, 14]
    assert clip_indices(10, 4, 3, 0) == [0, 3, 6, 9]  # the span exactly fills the video
    with pytest.raises(ValueError, match=r"start must be in \[0, 10\].*got 11"):
        clip_indices(20, 4, 3, 11)
    with pytest.raises(ValueError, match="frame_stride must be an integer >= 1, got 0"):
        clip_indices(20, 4, 0)
    with pytest.raises(ValueError, match="short_clips must be one of"):
        clip_indices(20, 4, short_clips="crop")  # type: ignore[arg-type]


def test_clip_indices_short_videos() -> None:
    assert clip_indices(5, 4, 2, short_clips="pad") == [0, 2, 4, 4]
    assert clip_indices(5, 4, 2, short_clips="loop") == [0, 2, 4, 1]
    assert clip_indices(2, 5, 1, short_clips="loop") == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="5 frames is shorter than the clip span of 7 frames"):
        clip_indices(5, 4, 2, short_clips="reject")
    with pytest.raises(ValueError, match="start must be 0"):
        clip_indices(5, 4, 2, 1)


def test_uniform_starts_centre_and_spread() -> None:
    assert uniform_starts(20, 4) == [8]  # last start 16: the centre clip
    assert uniform_starts(24, 4, 3) == [7]
    assert uniform_starts(24, 4, 3, count=3) == [2, 7, 11]
    assert uniform_starts(5, 4, 2, count=3) == [0, 0, 0]  # short: the only start, K times
    assert uniform_starts(10, 4, 3, count=2) == [0, 0]


def test_random_start_covers_the_valid_range() -> None:
    generator = torch.Generator().manual_seed(0)
    starts = [random_start(24, 4, 3, generator=generator) for _ in range(400)]
    assert set(starts) == set(range(15))  # 0 .. 24 - 10
    assert random_start(5, 4, 2) == 0
    again = torch.Generator().manual_seed(0)
    assert [random_start(24, 4, 3, generator=again) for _ in range(400)] == starts


# --------------------------------------------------------------------------------------------------
# decoding: every container, frame indices, counts, early stop
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [f"{ext}-{codec}" for ext, codec, _ in FORMATS])
def test_centre_clip_of_every_container(videos: dict[str, Path], key: str) -> None:
    path = videos[key]
    assert count_frames(path) == T_VIDEO and count_frames(path, exact=True) == T_VIDEO
    clip, label = clips_of([(path, 3)], num_frames=4, frame_stride=3)[0]
    assert clip.shape == (4, 3, HEIGHT, WIDTH) and clip.dtype == torch.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    assert video_indices(clip) == [7, 10, 13, 16]  # centre start (24 - 10) // 2
    assert label.dtype == torch.int64 and label.item() == 3
    assert np.abs(read_frames(path, [5, 1, 5]).astype(int) - gray_frames()[[5, 1, 5]]).max() <= 1


def test_decoding_stops_after_the_last_needed_frame(videos: dict[str, Path]) -> None:
    frames, decoded = reading_module.decode_video(videos["mp4-libx264"], [0, 2])
    assert decoded == 3 and sorted(frames) == [0, 2]
    _, decoded = reading_module.decode_video(videos["mp4-libx264"], [100])
    assert decoded == T_VIDEO  # asked past the end: the true length


def test_wrong_frame_count_hint_is_corrected(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = videos["mkv-libx264"]
    expected = clips_of([(path, 0)], num_frames=4, frame_stride=3)[0][0]
    monkeypatch.setattr(clips_module, "video_frame_hint", lambda path: 40)  # says 40, holds 24
    dataset = clips_of([(path, 0)], num_frames=4, frame_stride=3, test_clips=3)
    clips, _ = dataset[0]
    assert [video_indices(c) for c in clips] == [[2, 5, 8, 11], [7, 10, 13, 16], [11, 14, 17, 20]]
    assert dataset._lengths[path] == T_VIDEO
    assert torch.equal(clips[1], expected)


def test_training_starts_are_random_in_range_and_reproducible(videos: dict[str, Path]) -> None:
    dataset = clips_of([(videos["mp4-libx264"], 0)], num_frames=4, frame_stride=3, train=True)
    torch.manual_seed(1)
    indices = [video_indices(dataset[0][0]) for _ in range(25)]
    for clip in indices:
        assert 0 <= clip[0] <= T_VIDEO - 10 and clip == list(range(clip[0], clip[0] + 10, 3))
    assert len({clip[0] for clip in indices}) >= 6
    torch.manual_seed(1)
    assert [video_indices(dataset[0][0]) for _ in range(25)] == indices


def test_test_clips_are_uniform(videos: dict[str, Path]) -> None:
    dataset = clips_of([(videos["avi-mpeg4"], 1)], num_frames=4, frame_stride=3, test_clips=3)
    clips, label = dataset[0]
    assert clips.shape == (3, 4, 3, HEIGHT, WIDTH) and label.item() == 1
    assert [video_indices(c) for c in clips] == [[2, 5, 8, 11], [7, 10, 13, 16], [11, 14, 17, 20]]
    with pytest.raises(ValueError, match="test_clips applies to evaluation"):
        clips_of([(videos["avi-mpeg4"], 1)], train=True, test_clips=3)


def test_short_clips_pad_loop_reject(videos: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    short, long = videos["short"], videos["mp4-libx264"]
    pad = clips_of([(short, 0)], num_frames=4, frame_stride=2, train=True)
    assert video_indices(pad[0][0]) == [0, 2, 4, 4]
    loop = clips_of([(short, 0)], num_frames=4, frame_stride=2, short_clips="loop")
    assert video_indices(loop[0][0]) == [0, 2, 4, 1]
    reject = clips_of([(short, 0), (long, 1)], num_frames=4, frame_stride=2, short_clips="reject")
    with pytest.raises(ValueError, match=named(short, "5 frames, shorter than the clip span of 7 frames")):
        reject[0]
    skip = clips_of(
        [(short, 0), (long, 1)], num_frames=4, frame_stride=2, short_clips="reject", on_corrupt="skip"
    )
    with caplog.at_level(logging.WARNING, logger="lstmvision.data.io.clips"):
        clip, label = skip[0]
    assert label.item() == 1 and video_indices(clip) == [8, 10, 12, 14]  # the next video, centre clip
    assert skip.skipped == 1 and str(short) in caplog.text


# --------------------------------------------------------------------------------------------------
# frame folders and transforms
# --------------------------------------------------------------------------------------------------


def test_frame_folder_gives_the_clip_of_the_video(videos: dict[str, Path]) -> None:
    options = {"num_frames": 5, "frame_stride": 2, "resize": 12, "crop_size": (10, 14)}
    for train in (False, True):
        a = clips_of([(videos["mp4-libx264"], 0)], train=train, flip=True, **options)
        b = clips_of([(videos["folder"], 0)], train=train, flip=True, **options)
        torch.manual_seed(3)
        clip_a = a[0][0]
        torch.manual_seed(3)
        clip_b = b[0][0]
        assert clip_a.shape == (5, 3, 10, 14)
        assert torch.equal(clip_a, clip_b), f"max error {(clip_a - clip_b).abs().max():.3g}"
    # frame_2 before frame_10: natural order, not text order
    assert video_indices(clips_of([(videos["folder"], 0)], num_frames=24)[0][0]) == list(range(24))


def test_crop_and_flip_are_the_same_on_every_frame(videos: dict[str, Path]) -> None:
    options = {"num_frames": 6, "frame_stride": 2, "crop_size": 16, "train": True}
    flipping = clips_of([(videos["pattern"], 0)], flip=True, **options)
    plain = clips_of([(videos["pattern"], 0)], flip=False, **options)
    flips, corners = set(), set()
    for seed in range(12):
        torch.manual_seed(seed)
        clip = flipping[0][0]
        torch.manual_seed(seed)
        reference = plain[0][0]  # same draws for start and crop; only the flip differs
        flipped = not torch.equal(clip, reference)
        assert torch.equal(clip, reference.flip(-1) if flipped else reference)
        green, blue = ((reference[:, c] * 255 / 8).round().to(torch.int64) for c in (1, 2))  # (T, 16, 16)
        assert (green == green[0]).all() and (blue == blue[0]).all()  # one crop for the whole clip
        top, left = int(blue[0, 0, 0]), int(green[0, 0, 0])
        assert 0 <= top <= HEIGHT - 16 and 0 <= left <= WIDTH - 16
        assert torch.equal(green[0, 0], torch.arange(left, left + 16))
        start = pattern_indices(reference)[0]
        assert pattern_indices(reference) == list(range(start, start + 11, 2))
        flips.add(flipped)
        corners.add((top, left))
    assert flips == {False, True} and len(corners) > 3


def test_resize_centre_crop_and_grayscale(videos: dict[str, Path]) -> None:
    folder = videos["pattern"]
    assert clips_of([(folder, 0)], num_frames=2, resize=12)[0][0].shape == (2, 3, 12, 16)  # shorter side
    assert clips_of([(folder, 0)], num_frames=2, resize=(10, 20))[0][0].shape == (2, 3, 10, 20)
    centre = clips_of([(folder, 0)], num_frames=2, crop_size=(8, 12))[0][0]
    assert (centre[0, 1, 0, 0] * 255 / 8).round() == (WIDTH - 12) // 2
    assert (centre[0, 2, 0, 0] * 255 / 8).round() == (HEIGHT - 8) // 2
    gray, _ = clips_of([(folder, 0)], num_frames=3, grayscale=True)[0]
    assert gray.shape == (3, 1, HEIGHT, WIDTH)
    rgb = torch.from_numpy(rgb_pattern()[10:13]).to(torch.float64) / 255  # centre clip: frames 10-12
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert torch.allclose(gray[:, 0].double(), luma, atol=1e-6)
    with pytest.raises(
        ValueError, match=r"crop_size \(12, 12\) does not fit in the resized frames \(10, 20\)"
    ):
        ClipTransform(resize=(10, 20), crop_size=12)
    with pytest.raises(
        ValueError, match=r"crop_size \(30, 30\) is larger than the \(resized\) frames \(24, 32\)"
    ):
        clips_of([(folder, 0)], num_frames=2, crop_size=30)[0]
    with pytest.raises(ValueError, match="resize must be an integer >= 1, a pair"):
        ClipTransform(resize=(10, 0))


# --------------------------------------------------------------------------------------------------
# corrupt videos
# --------------------------------------------------------------------------------------------------


def test_corrupt_videos_raise_naming_the_file(videos: dict[str, Path], tmp_path: Path) -> None:
    empty_folder = tmp_path / "empty_frames"
    empty_folder.mkdir()
    bad_png = write_folder(tmp_path / "bad_png", rgb_pattern(3))
    (bad_png / "frame_2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cases = [
        (videos["random"], "cannot open the video"),
        (videos["truncated"], "cannot open the video"),
        (empty_folder, "holds no frame images"),
        (bad_png / "frame_2.png", "cannot decode the frame image"),
    ]
    for path, reason in cases:
        video = path.parent if path.suffix == ".png" else path
        with pytest.raises(ValueError, match=named(path, reason)):
            clips_of([(video, 0)], num_frames=3)[0]
    with pytest.raises(ValueError, match=named(videos["random"], "cannot open")):
        count_frames(videos["random"])


def test_corrupt_videos_skipped_and_counted(
    videos: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    samples = [
        (videos["random"], 0),
        (videos["mp4-libx264"], 1),
        (videos["truncated"], 2),
        (videos["folder"], 3),
    ]
    dataset = clips_of(samples, num_frames=4, on_corrupt="skip")
    with caplog.at_level(logging.WARNING, logger="lstmvision.data.io.clips"):
        clips, labels = next(iter(DataLoader(dataset, batch_size=4)))
    assert clips.shape == (4, 4, 3, HEIGHT, WIDTH)
    assert labels.tolist() == [1, 1, 3, 3]  # each bad video replaced by the next usable one
    assert dataset.skipped == 2
    assert str(videos["random"]) in caplog.text and str(videos["truncated"]) in caplog.text
    assert len(caplog.records) == 2  # a known-bad video is not decoded again
    with pytest.raises(RuntimeError, match="every one of the 2 videos is unusable"):
        clips_of([(videos["random"], 0), (videos["truncated"], 1)], on_corrupt="skip")[0]


# --------------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------------


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_class_folders_held_out_split(tmp_path: Path) -> None:
    for name in ("cat", "dog"):
        for i in range(10):
            touch(tmp_path / name / f"clip{i}.{'mp4' if i % 2 else 'AVI'}")
    (tmp_path / "dog" / "frames_of_clip10").mkdir()  # a frame folder is a video too
    touch(tmp_path / "dog" / "notes.txt")
    touch(tmp_path / "dog" / ".hidden.mp4")
    samples, names = scan_class_folders(tmp_path)
    assert names == ["cat", "dog"] and len(samples) == 21
    assert [s.path.name for s in samples[:3]] == ["clip0.AVI", "clip1.mp4", "clip2.AVI"]
    splits = read_folder_splits(tmp_path, val_fraction=0.1, test_fraction=0.2, seed=5)
    assert [len(s) for s in splits[:3]] == [21 - 2 - 4, 2, 4]  # per class of 10 / 11: val 1, test 2
    everything = splits.train + splits.val + splits.test
    assert sorted(everything) == sorted(samples)
    for sample in everything:
        assert sample.label == names.index(sample.path.parent.name)
    assert read_folder_splits(tmp_path, seed=5) == splits
    assert read_folder_splits(tmp_path, seed=6) != splits
    no_val = read_folder_splits(tmp_path, val_fraction=0.0, seed=5)
    assert no_val.val == no_val.test == splits.test


def test_class_folders_with_split_folders(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("test", 2)):
        for name in ("a", "b"):
            for i in range(count):
                touch(tmp_path / split / name / f"{split}{i}.webm")
    splits = read_folder_splits(tmp_path, val_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 4)
    assert all(s.path.parent.parent.name == "train" for s in splits.train + splits.val)
    touch(tmp_path / "val" / "b" / "v.mkv")
    splits = read_folder_splits(tmp_path)
    assert (len(splits.train), splits.val) == (8, [VideoSample(tmp_path / "val" / "b" / "v.mkv", 1)])
    touch(tmp_path / "test" / "c" / "x.mp4")
    with pytest.raises(
        ValueError, match=named(tmp_path / "test" / "c", "class 'c' is not one of the training")
    ):
        read_folder_splits(tmp_path)


def test_class_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=named(tmp_path / "nowhere")):
        read_folder_splits(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=named(tmp_path, "no class folder")):
        read_folder_splits(tmp_path)
    touch(tmp_path / "a" / "x.mp4")
    touch(tmp_path / "a" / "y.mp4")
    touch(tmp_path / "a" / "z.mp4")
    touch(tmp_path / "b" / "readme.txt")
    with pytest.raises(ValueError, match=named(tmp_path / "b", "empty class folder")):
        read_folder_splits(tmp_path)
    touch(tmp_path / "b" / "w.mov")
    with pytest.raises(ValueError, match="class 'b' has 1 videos; holding out"):
        read_folder_splits(tmp_path)
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 0"):
        read_folder_splits(tmp_path, test_fraction=0)


def write_ucf101(root: Path, lists: Path) -> None:
    classes = {
        "ApplyEyeMakeup": "ApplyEyeMakeup",
        "HandstandPushups": "HandStandPushups",
    }  # UCF101's own quirk
    train_lines, test_lines = [], []
    for label, (folder, stem) in enumerate(classes.items(), 1):
        for group in (1, 2, 3, 4):
            for clip in (1, 2):
                relative = f"{folder}/v_{stem}_g{group:02d}_c{clip:02d}.avi"
                touch(root / relative)
                if group <= 2:
                    test_lines.append(relative)
                else:
                    train_lines.append(f"{relative} {label}")
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    (lists / "trainlist01.txt").write_text("\r\n".join(train_lines) + "\r\n")
    (lists / "testlist01.txt").write_text("\n".join(test_lines) + "\n\n")


def test_ucf101_split_and_group_validation(tmp_path: Path) -> None:
    write_ucf101(tmp_path, tmp_path / "ucfTrainTestlist")
    splits = read_ucf101_splits(tmp_path, split=1, val_fraction=0.5, seed=0)
    assert splits.class_names == ["ApplyEyeMakeup", "HandstandPushups"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 4, 8)

    def groups(samples: list[VideoSample]) -> set[str]:
        return {s.path.name.split("_")[2] for s in samples}

    assert groups(splits.test) == {"g01", "g02"}
    assert len(groups(splits.val)) == 1 and groups(splits.train) == {"g03", "g04"} - groups(splits.val)
    for sample in splits.train + splits.val + splits.test:
        assert sample.label == splits.class_names.index(sample.path.parent.name)
    no_val = read_ucf101_splits(tmp_path, val_fraction=0)
    assert len(no_val.train) == 8 and no_val.val == no_val.test
    # frames extracted to folders named like the videos without .avi
    video = tmp_path / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g03_c01.avi"
    video.unlink()
    video.with_suffix("").mkdir()
    assert video.with_suffix("") in [s.path for s in read_ucf101_splits(tmp_path, val_fraction=0).train]


def test_ucf101_errors(tmp_path: Path) -> None:
    write_ucf101(tmp_path, tmp_path)
    trainlist, index = tmp_path / "trainlist01.txt", tmp_path / "classInd.txt"
    with pytest.raises(ValueError, match="split must be 1, 2 or 3, got 4"):
        read_ucf101_splits(tmp_path, split=4)
    with pytest.raises(FileNotFoundError, match=named(tmp_path / "trainlist02.txt")):
        read_ucf101_splits(tmp_path, split=2)
    lines = trainlist.read_text().splitlines()
    trainlist.write_text("\n".join([*lines, "Skiing/v_Skiing_g05_c01.avi 3"]))
    with pytest.raises(ValueError, match=named(trainlist, ":9: class 'Skiing' is not in .*classInd.txt")):
        read_ucf101_splits(tmp_path)
    trainlist.write_text("\n".join([*lines, "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1"]))
    with pytest.raises(FileNotFoundError, match=named(trainlist, ":9: listed video .*g09_c01.avi not found")):
        read_ucf101_splits(tmp_path)
    trainlist.write_text("\n".join([*lines, "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi 2"]))
    with pytest.raises(ValueError, match=named(trainlist, ":9: label '2' disagrees with")):
        read_ucf101_splits(tmp_path)
    trainlist.write_text("\n".join(lines))
    index.write_text("1 ApplyEyeMakeup\n3 HandstandPushups\n")
    with pytest.raises(ValueError, match=named(index, ":2: expected class index 2")):
        read_ucf101_splits(tmp_path)


def write_hmdb51(root: Path) -> Path:
    lists = root / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    for name in ("brush_hair", "cartwheel"):
        lines = []
        for i, marker in enumerate([1, 1, 1, 1, 2, 2, 0]):
            touch(root / name / f"{name}_clip_{i}.avi")
            lines.append(f"{name}_clip_{i}.avi {marker} ")  # the published files end lines with a space
        (lists / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")
        (lists / f"{name}_test_split2.txt").write_text("\n".join(lines[::-1]) + "\n")
    return lists


def test_hmdb51_split_and_validation(tmp_path: Path) -> None:
    write_hmdb51(tmp_path)
    splits = read_hmdb51_splits(tmp_path, split=1, val_fraction=0.25, seed=0)
    assert splits.class_names == ["brush_hair", "cartwheel"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 4)
    assert sorted(s.label for s in splits.val) == [0, 1]
    for sample in splits.train + splits.val:
        assert int(sample.path.stem[-1]) < 4 and sample.label == splits.class_names.index(
            sample.path.parent.name
        )
    assert {int(s.path.stem[-1]) for s in splits.test} == {4, 5}  # marker 0 (clip 6) unused


def test_hmdb51_errors(tmp_path: Path) -> None:
    lists = write_hmdb51(tmp_path)
    with pytest.raises(FileNotFoundError, match=named(lists, "no HMDB51 split file <class>_test_split3.txt")):
        read_hmdb51_splits(tmp_path, split=3)
    split_file = lists / "cartwheel_test_split1.txt"
    lines = split_file.read_text().splitlines()
    split_file.write_text("\n".join([*lines[:2], "cartwheel_clip_2.avi 3"]))
    with pytest.raises(ValueError, match=named(split_file, ":3: marker '3' is not 0 .*, 1 .* or 2")):
        read_hmdb51_splits(tmp_path)
    split_file.write_text("\n".join([*lines, "cartwheel_missing.avi 1"]))
    with pytest.raises(
        FileNotFoundError, match=named(split_file, ":8: listed video .*cartwheel_missing.avi")
    ):
        read_hmdb51_splits(tmp_path)
    split_file.write_text("cartwheel_clip_1.avi\n")
    with pytest.raises(ValueError, match=named(split_file, ":1: expected '<video name>.avi <0|1|2>'")):
        read_hmdb51_splits(tmp_path)


def write_kth(root: Path, persons: tuple[int, ...] = (1, 2, 15, 16, 17, 25)) -> None:
    for action in kth_module.KTH_ACTIONS:
        for person in persons:
            touch(root / action / f"person{person:02d}_{action}_d1_uncomp.avi")
    touch(root / "boxing" / "00sequences.txt")  # ignored: not a video extension


def test_kth_video_persons(tmp_path: Path) -> None:
    write_kth(tmp_path)
    splits = read_kth_video_splits(tmp_path)
    assert splits.class_names == list(kth_module.KTH_ACTIONS)

    def persons(samples: list[VideoSample]) -> set[int]:
        return {int(s.path.name[6:8]) for s in samples}

    assert (persons(splits.train), persons(splits.val), persons(splits.test)) == ({1, 2}, {15, 16}, {17, 25})
    assert all(s.label == kth_module.KTH_ACTIONS.index(s.path.parent.name) for s in splits.train)
    custom = read_kth_video_splits(tmp_path, train_persons=[1, 2, 15], val_persons=[16], test_persons=[25])
    assert (persons(custom.train), persons(custom.val), persons(custom.test)) == ({1, 2, 15}, {16}, {25})
    same = read_kth_video_splits(tmp_path, val_persons=[])
    assert same.val == same.test and persons(same.train) == {1, 2, 15, 16}
    with pytest.raises(ValueError, match=r"persons \[17\] are both test and training"):
        read_kth_video_splits(tmp_path, train_persons=[1, 17])
    touch(tmp_path / "walking" / "person03_running_d1_uncomp.avi")
    with pytest.raises(
        ValueError, match=named(tmp_path / "walking" / "person03_running", "expected a KTH video")
    ):
        read_kth_video_splits(tmp_path)
    shutil.rmtree(tmp_path / "walking")
    with pytest.raises(FileNotFoundError, match=named(tmp_path, "action folder 'walking' not found")):
        read_kth_video_splits(tmp_path)


# --------------------------------------------------------------------------------------------------
# data module
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def class_root(tmp_path_factory: pytest.TempPathFactory, videos: dict[str, Path]) -> Path:
    """Two classes of three videos each: an mp4, an avi and a frame folder."""
    root = tmp_path_factory.mktemp("classes")
    for name in ("jump", "wave"):
        (root / name).mkdir()
        shutil.copy(videos["mp4-libx264"], root / name / "a.mp4")
        shutil.copy(videos["avi-mpeg4"], root / name / "b.avi")
        shutil.copytree(videos["folder"], root / name / "c_frames")
    return root


def test_data_module_batches(class_root: Path) -> None:
    module = VideoDataModule(str(class_root), num_frames=4, resize=16, crop_size=16, batch_size=2)
    assert module.class_names == ["jump", "wave"] and module.num_classes == 2  # before setup()
    module.setup("fit")
    for loader in (module.train_dataloader(), module.val_dataloader()):
        for clips, labels in loader:
            assert clips.shape == (2, 4, 3, 16, 16) and clips.dtype == torch.float32
            assert labels.dtype == torch.int64 and sorted(labels.tolist()) == [0, 1]  # train is shuffled
    with pytest.raises(RuntimeError, match="the test set is not set up"):
        module.test_dataloader()
    multi = VideoDataModule(
        str(class_root), num_frames=3, resize=16, crop_size=8, test_clips=2, grayscale=True
    )
    multi.setup("test")
    clips, labels = next(iter(multi.predict_dataloader()))
    assert clips.shape == (2, 2, 3, 1, 8, 8) and labels.tolist() == [0, 1]


def test_data_module_other_layouts(tmp_path: Path, videos: dict[str, Path]) -> None:
    write_ucf101(tmp_path, tmp_path)
    for path in tmp_path.glob("*/*.avi"):
        shutil.copy(videos["avi-mpeg4"], path)
    module = VideoDataModule(
        str(tmp_path), layout="ucf101", num_frames=2, resize=None, crop_size=None, batch_size=16
    )
    module.setup()
    clips, labels = next(iter(module.train_dataloader()))
    assert clips.shape == (4, 2, 3, HEIGHT, WIDTH) and sorted(labels.tolist()) == [0, 0, 1, 1]
    assert len(module.datasets["test"]) == 8
    hmdb_root = tmp_path / "hmdb51"
    write_hmdb51(hmdb_root)
    for path in hmdb_root.glob("*/*.avi"):
        shutil.copy(videos["avi-mpeg4"], path)
    hmdb = VideoDataModule(str(hmdb_root), layout="hmdb51", num_frames=3, resize=None, crop_size=None,
                           val_fraction=0.25, batch_size=16)  # fmt: skip
    hmdb.setup()
    clips, labels = next(iter(hmdb.test_dataloader()))  # markers 2: clips 4 and 5 of each class
    assert clips.shape == (4, 3, 3, HEIGHT, WIDTH) and labels.tolist() == [0, 0, 1, 1]
    centre = clip_indices(T_VIDEO, 3, 1, uniform_starts(T_VIDEO, 3)[0])
    assert all(video_indices(clip) == centre for clip in clips), "the centre clip of every test video"
    assert len(hmdb.datasets["train"]) + len(hmdb.datasets["val"]) == 8  # markers 1; 0 is unused
    kth_root = tmp_path / "kth"
    write_kth(kth_root)
    kth = VideoDataModule(str(kth_root), layout="kth", train_persons=[1, 2, 15, 16], val_persons=[15, 16])
    assert kth.class_names == list(kth_module.KTH_ACTIONS)
    kth.setup("fit")
    assert len(kth.datasets["train"]) == 12 and len(kth.datasets["val"]) == 12


def test_data_module_argument_errors(class_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split and splits_dir apply to layouts ucf101 and hmdb51"):
        VideoDataModule(str(class_root), split=2)
    with pytest.raises(ValueError, match="train_persons apply to layout 'kth', not 'folders'"):
        VideoDataModule(str(class_root), train_persons=[1])
    with pytest.raises(ValueError, match="layout must be one of"):
        VideoDataModule(str(class_root), layout="kinetics")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"crop_size \(112, 112\) does not fit"):
        VideoDataModule(str(class_root), resize=(64, 64))
    with pytest.raises(FileNotFoundError, match=named(tmp_path / "missing")):
        VideoDataModule(str(tmp_path / "missing")).setup("fit")


def test_data_module_with_a_worker(class_root: Path, tmp_path: Path, videos: dict[str, Path]) -> None:
    module = VideoDataModule(
        str(class_root), num_frames=4, resize=16, crop_size=16, batch_size=2, num_workers=1
    )
    module.setup("fit")
    loader = module.train_dataloader()
    assert loader.persistent_workers
    clips, labels = next(iter(loader))
    assert clips.shape == (2, 4, 3, 16, 16) and sorted(labels.tolist()) == [0, 1]
    bad_root = tmp_path / "bad"
    (bad_root / "only").mkdir(parents=True)
    shutil.copy(videos["random"], bad_root / "only" / "broken.mp4")
    iterator = iter(DataLoader(VideoClips([(bad_root / "only" / "broken.mp4", 0)]), num_workers=1))
    try:
        with pytest.raises(
            ValueError, match=named(bad_root / "only" / "broken.mp4", "cannot open the video")
        ):
            next(iterator)
    finally:
        # After a worker's error the iterator is only collected later, and its shutdown then waits out a
        # 5 s timeout; shutting it down here costs ~0.1 s.
        iterator._shutdown_workers()  # type: ignore[attr-defined]
