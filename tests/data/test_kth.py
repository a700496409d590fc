"""KTH Actions: tiny frame folders written here with Pillow in the layout of the PredRNN / E3D-LSTM releases."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler

from lstmvision.data import (
    KTH_ACTIONS,
    KTH_TEST_PERSONS,
    KTH_TRAIN_PERSONS,
    KTHDataModule,
    KTHFrames,
    scan_kth_frames,
    sequence_starts,
)
from lstmvision.data.layouts import kth_frames as kth_frames_module

WIDTH, HEIGHT = 40, 30  # KTH frames are 160x120; the same 4:3 shape, tiny
PERSON_SCALE, NUMBER_SCALE = 9, 15  # pixel value = person * 9 (top half), frame number * 15 (bottom half)


# --------------------------------------------------------------------------------------------------
# helpers writing the frame-folder layout
# --------------------------------------------------------------------------------------------------


def named(path: Path, text: str = "") -> str:
    """A pytest `match` pattern requiring the path, then `text`."""
    return re.escape(str(path)) + ".*" + text


def frame_pixels(person: int, number: int) -> np.ndarray:
    pixels = np.empty((HEIGHT, WIDTH), dtype=np.uint8)
    pixels[: HEIGHT // 2] = person * PERSON_SCALE
    pixels[HEIGHT // 2 :] = number * NUMBER_SCALE
    return pixels


def write_video(
    root: Path,
    action: str,
    person: int,
    scenario: str = "d1",
    numbers: Iterable[int] = range(1, 13),
    *,
    suffix: str = "",
    pattern: str = "image_{:04d}.png",
) -> Path:
    folder = root / action / f"person{person:02d}_{action}_{scenario}{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        Image.fromarray(frame_pixels(person, number)).save(folder / pattern.format(number))
    return folder


def write_tree(
    root: Path, actions: Iterable[str] = KTH_ACTIONS, persons: Iterable[int] = (1, 2), n_frames: int = 12
) -> Path:
    actions, persons = tuple(actions), tuple(persons)
    for action in KTH_ACTIONS:
        (root / action).mkdir(parents=True, exist_ok=True)
    for action in actions:
        for person in persons:
            write_video(root, action, person, numbers=range(1, n_frames + 1))
    return root


@pytest.fixture(scope="module")
def kth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boxing, jogging (folders named ..._uncomp as in the releases) and walking; persons of both splits."""
    root = tmp_path_factory.mktemp("kth")
    for action in KTH_ACTIONS:
        (root / action).mkdir()
    for action in ("boxing", "jogging", "walking"):
        for person in (1, 16, 17, 25):
            suffix = "_uncomp" if action == "jogging" else ""
            write_video(root, action, person, suffix=suffix)
    write_video(root, "boxing", 1, "d2")
    (root / "boxing" / ".DS_Store").write_bytes(b"\x00\x01")  # stray files are ignored
    (root / "boxing" / "README.txt").write_text("notes")
    (root / "boxing" / "person01_boxing_d1" / "Thumbs.db").write_bytes(b"\x00")
    return root


def pixel_codes(clip: torch.Tensor) -> tuple[list[int], list[int]]:
    """(persons, frame numbers) read back from the top-left and bottom-left pixel of every frame."""
    values = (clip[:, 0, :, 0] * 255).round().to(torch.int64)  # (T, S)
    return (values[:, 0] // PERSON_SCALE).tolist(), (values[:, -1] // NUMBER_SCALE).tolist()


# --------------------------------------------------------------------------------------------------
# scanning: split, labels, frame order
# --------------------------------------------------------------------------------------------------


def test_scan_split_by_persons_and_labels(kth_root: Path) -> None:
    train = scan_kth_frames(kth_root, persons=KTH_TRAIN_PERSONS)
    test = scan_kth_frames(kth_root, persons=KTH_TEST_PERSONS)
    assert {v.person for v in train} == {1, 16} and {v.person for v in test} == {17, 25}
    assert len(train) == 3 * 2 + 1 and len(test) == 3 * 2
    for video in train + test:
        assert video.label == KTH_ACTIONS.index(video.action)
        assert video.path.parent.name == video.action
        assert [f.name for f in video.frames] == [f"image_{n:04d}.png" for n in range(1, 13)]
    # canonical order: (label, person, scenario)
    keys = [(v.label, v.person, v.scenario) for v in train]
    assert keys == sorted(keys)
    assert [(v.action, v.person, v.scenario) for v in train[:3]] == [
        ("boxing", 1, "d1"),
        ("boxing", 1, "d2"),
        ("boxing", 16, "d1"),
    ]
    jogging = [v for v in train if v.action == "jogging"]
    assert jogging[0].path.name == "person01_jogging_d1_uncomp"
    only_walking = scan_kth_frames(kth_root, persons=(1,), actions=("walking",))
    assert [(v.action, v.label) for v in only_walking] == [("walking", 5)]


def test_frames_sorted_by_number_not_by_name(tmp_path: Path) -> None:
    root = write_tree(tmp_path, actions=())
    folder = write_video(root, "handwaving", 3, pattern="image_{}.png")  # image_1 ... image_12, unpadded
    (video,) = scan_kth_frames(root)
    assert [f.name for f in video.frames][:3] == ["image_1.png", "image_2.png", "image_3.png"]
    assert sorted(p.name for p in folder.iterdir())[:2] == ["image_1.png", "image_10.png"]  # names mislead
    dataset = KTHFrames(root, persons=(3,), seq_length=12, image_size=16)
    clip, label = dataset[0]
    assert pixel_codes(clip) == ([3] * 12, list(range(1, 13)))
    assert int(label) == KTH_ACTIONS.index("handwaving")


# --------------------------------------------------------------------------------------------------
# items: values, grayscale, resize
# --------------------------------------------------------------------------------------------------


def test_items_shape_dtype_range_and_frames(kth_root: Path) -> None:
    dataset = KTHFrames(kth_root, persons=KTH_TRAIN_PERSONS, seq_length=4, image_size=16)
    for index in range(len(dataset)):
        clip, label = dataset[index]
        video, start = dataset.locate(index)
        assert clip.shape == (4, 1, 16, 16) and clip.dtype == torch.float32
        assert label.shape == () and label.dtype == torch.int64 and int(label) == video.label
        assert float(clip.min()) >= 0.0 and float(clip.max()) <= 1.0
        persons, numbers = pixel_codes(clip)
        assert persons == [video.person] * 4
        assert numbers == list(range(start + 1, start + 5))
        assert video.person in KTH_TRAIN_PERSONS
    # the documented pipeline exactly: Pillow "L", bilinear squash to a square, / 255
    clip, _ = dataset[1]
    video, start = dataset.locate(1)
    expected = np.stack(
        [
            np.asarray(Image.open(f).convert("L").resize((16, 16), Image.Resampling.BILINEAR))
            for f in video.frames[start : start + 4]
        ]
    )
    np.testing.assert_array_equal(clip[:, 0].numpy(), expected.astype(np.float32) / np.float32(255.0))
    # test persons only in the test set, and upsampling works too
    test = KTHFrames(kth_root, persons=KTH_TEST_PERSONS, seq_length=4, image_size=48)
    assert {test.locate(i)[0].person for i in range(len(test))} == {17, 25}
    assert test[0][0].shape == (4, 1, 48, 48)


def test_rgb_frames_become_luma(tmp_path: Path) -> None:
    root = write_tree(tmp_path, actions=())
    folder = root / "running" / "person05_running_d4"
    folder.mkdir()
    for number in range(1, 5):
        Image.new("RGB", (WIDTH, HEIGHT), (200, 100, 50)).save(folder / f"image_{number:04d}.png")
    clip, label = KTHFrames(root, persons=(5,), seq_length=4, image_size=8)[0]
    luma = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)  # ITU-R 601-2: 124
    assert luma == 124
    torch.testing.assert_close(clip, torch.full((4, 1, 8, 8), 124 / 255), rtol=0, atol=1e-7)
    assert int(label) == 4


# --------------------------------------------------------------------------------------------------
# cutting sequences
# --------------------------------------------------------------------------------------------------


def test_sequence_starts_rule() -> None:
    numbers = list(range(1, 13))
    assert sequence_starts(numbers, 4, 4) == [0, 4, 8]  # no overlap, aligned with the folder's end
    assert sequence_starts(numbers, 4, 3) == [2, 5, 8]
    assert sequence_starts(numbers, 4, 1) == list(range(9))
    assert sequence_starts(numbers, 12, 3) == [0]
    assert sequence_starts(numbers, 13, 1) == []
    # frame 6 missing: no sequence crosses the gap
    gapped = [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert sequence_starts(gapped, 4, 4) == [1, 7]
    assert sequence_starts(gapped, 4, 1) == [0, 1, 5, 6, 7]
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        sequence_starts(numbers, 4, 0)


def test_dataset_strides_follow_releases(kth_root: Path) -> None:
    def starts_by_action(dataset: KTHFrames, person: int = 1) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for index in range(len(dataset)):
            video, start = dataset.locate(index)
            if video.person == person and video.scenario == "d1":
                found.setdefault(video.action, []).append(start)
        return found

    default = KTHFrames(kth_root, persons=(1,), seq_length=4, image_size=8)
    # boxing and walking: seq_length apart; jogging (and running): 3 apart
    assert starts_by_action(default) == {"boxing": [0, 4, 8], "jogging": [2, 5, 8], "walking": [0, 4, 8]}
    assert len(default) == 3 + 3 + 3 + 3  # boxing d2 as well
    assert default.stride_of("running") == 3 and default.stride_of("handclapping") == 4
    uniform = KTHFrames(kth_root, persons=(1,), seq_length=4, image_size=8, stride=2)
    assert starts_by_action(uniform) == {
        action: [0, 2, 4, 6, 8] for action in ("boxing", "jogging", "walking")
    }
    fast = KTHFrames(kth_root, persons=(1,), seq_length=4, image_size=8, fast_stride=5)
    assert starts_by_action(fast)["jogging"] == [3, 8]
    # the mapping is fixed: a second scan gives the same (video, start) for every index
    again = KTHFrames(kth_root, persons=(1,), seq_length=4, image_size=8)
    assert [(v.path, s) for v, s in map(again.locate, range(len(again)))] == [
        (v.path, s) for v, s in map(default.locate, range(len(default)))
    ]


def test_short_and_gapped_folders_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_tree(tmp_path, actions=())
    write_video(root, "boxing", 1)
    write_video(root, "boxing", 2, numbers=range(1, 4))  # 3 frames
    write_video(root, "boxing", 3, numbers=[1, 2, 3, 5, 6, 7])  # no 4 consecutive
    (root / "boxing" / "person04_boxing_d1").mkdir()  # empty
    with caplog.at_level(logging.WARNING, logger="lstmvision.data.layouts.kth_frames"):
        dataset = KTHFrames(root, persons=(1, 2, 3, 4), seq_length=4, image_size=8)
    assert len(dataset) == 3 and {dataset.locate(i)[0].person for i in range(3)} == {1}
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert "skipped 3 of 4 video folders" in message
    assert all(f"person0{p}_boxing_d1" in message for p in (2, 3, 4))
    with pytest.raises(ValueError, match=named(root, "no sequence of seq_length=20 consecutive frames")):
        KTHFrames(root, persons=(1, 2, 3, 4), seq_length=20, image_size=8)


# --------------------------------------------------------------------------------------------------
# errors in the layout and the arguments
# --------------------------------------------------------------------------------------------------


def test_root_and_action_folder_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=named(missing)):
        scan_kth_frames(missing)
    a_file = tmp_path / "kth.tar.gz"
    a_file.write_bytes(b"\x1f\x8b")
    with pytest.raises(ValueError, match=named(a_file, "expected the KTH root folder")):
        scan_kth_frames(a_file)
    root = tmp_path / "kth"
    write_video(root, "boxing", 1)
    with pytest.raises(FileNotFoundError, match=named(root, "action folder 'handclapping' not found")):
        scan_kth_frames(root)
    assert len(scan_kth_frames(root, actions=("boxing",))) == 1
    (root / "walking").write_text("not a folder")
    with pytest.raises(ValueError, match=named(root / "walking", "expected the folder of action 'walking'")):
        scan_kth_frames(root, actions=("boxing", "walking"))


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("misc", "not a KTH video folder name; expected person<NN>_boxing_<d1-d4>"),
        ("person1_boxing_d1", "not a KTH video folder name"),
        ("person01_walking_d1", "a 'walking' video inside the 'boxing' folder"),
        ("person26_boxing_d1", "person 26 is outside the KTH persons 01-25"),
        ("person00_boxing_d2", "person 00 is outside"),
        ("person03_boxing_d5", "scenario 'd5' is not one of"),
        ("person01_boxing_d1_uncomp", "the same video as person01_boxing_d1"),
    ],
)
def test_bad_video_folder(tmp_path: Path, folder: str, message: str) -> None:
    root = write_tree(tmp_path, actions=("boxing",), persons=(1,), n_frames=4)
    (root / "boxing" / folder).mkdir()
    # checked even when that folder's person is not asked for
    with pytest.raises(ValueError, match=named(root / "boxing" / folder, message)):
        scan_kth_frames(root, persons=(1,))


def test_duplicate_frame_number(tmp_path: Path) -> None:
    root = write_tree(tmp_path, actions=(), persons=())
    folder = write_video(root, "jogging", 7, numbers=range(1, 5))
    Image.fromarray(frame_pixels(7, 1)).save(folder / "image_1.jpg")
    with pytest.raises(ValueError, match=named(folder, "two files hold frame 1")):
        scan_kth_frames(root)


def test_no_persons_of_the_split(tmp_path: Path) -> None:
    root = write_tree(tmp_path, actions=("boxing", "walking"), persons=(1, 2), n_frames=4)
    with pytest.raises(
        ValueError, match=named(root, r"no video folder of persons \[17, 18.*persons \[1, 2\]")
    ):
        KTHFrames(root, persons=KTH_TEST_PERSONS, seq_length=4)
    with pytest.raises(ValueError, match=named(root, "persons none")):
        KTHFrames(write_tree(tmp_path / "empty", actions=()), persons=(1,), seq_length=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq_length": 0}, "seq_length must be >= 1, got 0"),
        ({"image_size": 0}, "image_size must be >= 1, got 0"),
        ({"stride": 0}, "stride must be >= 1, got 0"),
        ({"fast_stride": -1}, "fast_stride must be >= 1, got -1"),
        ({"persons": ()}, "persons must name at least one person"),
        ({"persons": (0, 26)}, r"persons must be KTH persons 1-25, got \[0, 26\]"),
        ({"actions": ("dancing",)}, r"unknown KTH actions \['dancing'\]"),
        ({"actions": ()}, "actions must name at least one"),
        ({"actions": ("boxing", "boxing")}, "actions must not repeat"),
        ({"on_corrupt": "ignore"}, "on_corrupt must be 'raise' or 'skip', got 'ignore'"),
    ],
)
def test_bad_arguments(kth_root: Path, kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"persons": (1,), **kwargs}
    with pytest.raises(ValueError, match=message):
        KTHFrames(kth_root, **arguments)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# corrupt frames
# --------------------------------------------------------------------------------------------------


def _tree_with_truncated_frame(root: Path) -> Path:
    write_tree(root, actions=("boxing",), persons=(1,))
    bad = root / "boxing" / "person01_boxing_d1" / "image_0006.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return bad


def test_corrupt_frame_raise(tmp_path: Path) -> None:
    bad = _tree_with_truncated_frame(tmp_path)
    dataset = KTHFrames(tmp_path, persons=(1,), seq_length=4, image_size=8)  # scanning opens no image
    assert len(dataset) == 3
    dataset[0]
    with pytest.raises(ValueError, match=named(bad, "cannot decode the image")):
        dataset[1]  # frames 5-8
    with pytest.raises(ValueError, match=named(bad, "cannot decode the image")):
        list(DataLoader(dataset, batch_size=3))
    garbage = tmp_path / "boxing" / "person01_boxing_d1" / "image_0011.png"
    garbage.write_text("not an image")
    with pytest.raises(ValueError, match=named(garbage, "cannot decode the image")):
        dataset[2]


def test_a_corrupt_frame_in_overlapping_sequences_is_decoded_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # stride 2: sequences 1 (frames 3-6) and 2 (frames 5-8) both hold the truncated frame 6
    bad = _tree_with_truncated_frame(tmp_path)
    decoded: list[Path] = []
    decode = kth_frames_module._decode_frame
    monkeypatch.setattr(
        kth_frames_module, "_decode_frame", lambda path, size: decoded.append(path) or decode(path, size)
    )
    dataset = KTHFrames(tmp_path, persons=(1,), seq_length=4, image_size=8, stride=2, on_corrupt="skip")
    assert [dataset.locate(i)[1] for i in range(len(dataset))] == [0, 2, 4, 6, 8]
    with caplog.at_level(logging.WARNING, logger="lstmvision.data.skips"):
        clip, _ = dataset[1]
    assert pixel_codes(clip)[1] == [7, 8, 9, 10]  # sequence 3, the next one without frame 6
    assert decoded.count(bad) == 1 and dataset.skipped_indices() == [1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert f"{bad}: cannot decode the image" in warnings[0]
    assert warnings[0].endswith("(sequence 1); sequence skipped, 1 unusable sequence(s) met so far")
    assert warnings[1] == (
        f"{bad}: found corrupt before (sequence 2); sequence skipped, 2 unusable sequence(s) met so far"
    )


def test_corrupt_frame_raise_through_worker(tmp_path: Path) -> None:
    bad = _tree_with_truncated_frame(tmp_path)
    dataset = KTHFrames(tmp_path, persons=(1,), seq_length=4, image_size=8)
    with pytest.raises(ValueError, match=named(bad, "cannot decode the image")):
        list(DataLoader(dataset, batch_size=1, num_workers=1))


def test_corrupt_frame_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = _tree_with_truncated_frame(tmp_path)
    dataset = KTHFrames(tmp_path, persons=(1,), seq_length=4, image_size=8, on_corrupt="skip")
    with caplog.at_level(logging.WARNING, logger="lstmvision.data.skips"):
        clip, label = dataset[1]  # replaced by the next readable sequence, frames 9-12
        dataset[1]  # the bad file is remembered: not decoded, nor reported, twice
    assert pixel_codes(clip)[1] == [9, 10, 11, 12] and int(label) == 0
    torch.testing.assert_close(clip, dataset[2][0], rtol=0, atol=0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(bad) in warnings[0]
    assert "(sequence 1); sequence skipped, 1 unusable sequence(s) met so far" in warnings[0]
    # a whole epoch runs: every index gives a clip
    batches = list(DataLoader(dataset, batch_size=2))
    clips = torch.cat([b[0] for b in batches])
    assert clips.shape == (3, 4, 1, 8, 8)
    assert [pixel_codes(c)[1][0] for c in clips] == [1, 9, 9]
    # nothing readable left: an error, not an endless search
    lonely = tmp_path / "lonely"
    write_tree(lonely, actions=("boxing",), persons=(1,), n_frames=4)
    frame = lonely / "boxing" / "person01_boxing_d1" / "image_0002.png"
    frame.write_bytes(frame.read_bytes()[:20])
    with pytest.raises(
        RuntimeError, match=named(lonely, "every one of the 1 sequences holds a corrupt frame")
    ):
        KTHFrames(lonely, persons=(1,), seq_length=4, image_size=8, on_corrupt="skip")[0]


# --------------------------------------------------------------------------------------------------
# DataLoader and data module
# --------------------------------------------------------------------------------------------------


def test_dataloader_batches(kth_root: Path) -> None:
    dataset = KTHFrames(kth_root, persons=KTH_TRAIN_PERSONS, seq_length=5, image_size=16)
    clips, labels = next(iter(DataLoader(dataset, batch_size=3, num_workers=0)))
    assert clips.shape == (3, 5, 1, 16, 16) and clips.dtype == torch.float32
    assert labels.shape == (3,) and labels.dtype == torch.int64
    assert labels.tolist() == [dataset.locate(i)[0].label for i in range(3)]


def test_datamodule_fit_test_predict(kth_root: Path) -> None:
    module = KTHDataModule(root=str(kth_root), image_size=16, seq_length=4, batch_size=2)
    with pytest.raises(RuntimeError, match="train set is not set up"):
        module.train_dataloader()
    module.setup("fit")
    train = module.datasets["train"]
    assert {train.locate(i)[0].person for i in range(len(train))} == {1, 16}
    loader = module.train_dataloader()
    assert isinstance(loader.sampler, RandomSampler)
    clips, labels = next(iter(loader))
    assert clips.shape == (2, 4, 1, 16, 16) and labels.shape == (2,) and labels.dtype == torch.int64
    # validation is the test persons by default, as in the releases
    val = module.datasets["val"]
    assert val is module.datasets["test"]
    assert {val.locate(i)[0].person for i in range(len(val))} == {17, 25}
    module.setup("test")
    module.setup("predict")
    test_batch = next(iter(module.test_dataloader()))
    for got, expected in zip(next(iter(module.predict_dataloader())), test_batch):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(next(iter(module.val_dataloader()))[0], test_batch[0], rtol=0, atol=0)


def test_datamodule_val_persons_strides_actions(kth_root: Path) -> None:
    module = KTHDataModule(
        root=str(kth_root),
        image_size=8,
        seq_length=4,
        train_persons=range(1, 16),
        val_persons=[16],
        train_stride=1,
        test_stride=4,
        actions=("boxing", "jogging"),
    )
    module.setup()
    train, val, test = (module.datasets[k] for k in ("train", "val", "test"))
    assert {train.locate(i)[0].person for i in range(len(train))} == {1}
    assert {val.locate(i)[0].person for i in range(len(val))} == {16}
    assert {test.locate(i)[0].person for i in range(len(test))} == {17, 25}
    assert len(train) == 3 * 9  # boxing d1, d2, jogging d1: every start
    assert len(test) == 2 * 2 * 3  # two persons, two actions, three non-overlapping sequences
    assert {test.locate(i)[0].action for i in range(len(test))} == {"boxing", "jogging"}


def test_datamodule_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"train_persons and val_persons share persons \[16\]"):
        KTHDataModule(root=str(tmp_path), val_persons=(16,))
    with pytest.raises(ValueError, match=r"train_persons and test_persons share persons \[17\]"):
        KTHDataModule(root=str(tmp_path), train_persons=(1, 17))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        KTHDataModule(root=str(tmp_path), batch_size=0)
    with pytest.raises(ValueError, match="num_workers must be >= 0, got -1"):
        KTHDataModule(root=str(tmp_path), num_workers=-1)
    with pytest.raises(ValueError, match="train_stride must be >= 1, got 0"):
        KTHDataModule(root=str(tmp_path), train_stride=0)
    missing = tmp_path / "kth"
    module = KTHDataModule(root=str(missing))  # the folders are checked in setup(), not here
    with pytest.raises(FileNotFoundError, match=named(missing)):
        module.setup("fit")
    with pytest.raises(ValueError, match="stage must be one of"):
        module.setup("train")
    root = write_tree(tmp_path / "train_only", persons=(1,), n_frames=4)
    with pytest.raises(ValueError, match=named(root, r"no video folder of persons \[17")):
        KTHDataModule(root=str(root), seq_length=4).setup("test")
