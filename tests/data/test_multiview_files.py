"""Multi-view file readers: OuluVS2 trees, light-field trees and per-view HDF5 features, on tiny files
written here in the real formats (PyAV videos, Pillow images, h5py)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from video_files import write_video

from lstmvision.data import (
    OULUVS2_DIGIT_SEQUENCES,
    OULUVS2_PHRASES,
    MultiViewFeaturesDataModule,
    MultiViewVideoDataModule,
    ouluvs2_utterance_classes,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16
VIEW_STEP, FRAME_STEP = 50, 5  # gray level of frame i of view v: 50 v + 5 i


def view_frames(view: int, n: int) -> np.ndarray:
    levels = VIEW_STEP * view + FRAME_STEP * np.arange(n)
    return np.broadcast_to(levels[:, None, None, None], (n, SIZE, SIZE, 3)).astype(np.uint8).copy()


def decode(clip: torch.Tensor) -> tuple[int, list[int]]:
    """(view, frame indices) of a (T, C, H, W) clip of `view_frames`."""
    levels = clip.mean(dim=(1, 2, 3)) * 255  # (T,)
    view = int(round(levels[0].item()) // VIEW_STEP)
    return view, ((levels - VIEW_STEP * view) / FRAME_STEP).round().to(torch.int64).tolist()


def write_folder(folder: Path, frames: np.ndarray, name: str = "frame_{}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / name.format(i))
    return folder


def write_ouluvs2(root: Path, speakers: int = 4, utterances: tuple[int, ...] = (31, 34, 1)) -> Path:
    """Speakers 1-3: videos named s<s>_v<v>_u<u>.mp4 (speaker 2: u<u>.mp4), view 2 one frame shorter;
    speaker 4 (if any): frame folders named <u>/."""
    for s in range(1, speakers + 1):
        for v in (1, 2, 3):
            n = 8 if v != 2 else 7
            for u in utterances:
                folder = root / str(s) / str(v)
                if s == 4:
                    write_folder(folder / str(u), view_frames(v, n))
                else:
                    name = f"u{u}.mp4" if s == 2 else f"s{s}_v{v}_u{u}.mp4"
                    write_video(folder / name, view_frames(v, n))
    return root


@pytest.fixture(scope="module")
def oulu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ouluvs2(tmp_path_factory.mktemp("ouluvs2"))


def oulu_module(root: Path, **kwargs: object) -> MultiViewVideoDataModule:
    options: dict[str, object] = {"resize": None, "num_frames": 4, "batch_size": 4, "test_fraction": 0.25}
    options.update(kwargs)
    return MultiViewVideoDataModule(str(root), **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# OuluVS2
# --------------------------------------------------------------------------------------------------


def test_ouluvs2_batch_views_and_synchronised_indices(oulu: Path) -> None:
    dm = oulu_module(oulu, val_fraction=0.25)
    dm.setup()
    assert dm.view_names == ["1", "2", "3"] and dm.num_views == 3
    clips, labels = next(iter(dm.train_dataloader()))
    assert clips.shape == (4, 3, 4, 3, SIZE, SIZE) and clips.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.shape == (4,)
    for item in clips:
        decoded = [decode(item[k]) for k in range(3)]
        assert [view for view, _ in decoded] == [1, 2, 3]  # view k of the batch comes from view k's file
        first = decoded[0][1]
        assert all(idx == first for _, idx in decoded), decoded  # same frame indices in every view
        assert first == list(range(first[0], first[0] + 4)) and first[-1] < 7  # within the shortest view
    test_clips, _ = next(iter(dm.test_dataloader()))
    assert decode(test_clips[0, 0])[1] == [1, 2, 3, 4]  # centre window of 7 frames


def test_ouluvs2_labels_of_phrases_digits_and_custom(oulu: Path) -> None:
    dm = oulu_module(oulu)
    dm.setup()
    assert dm.class_names == list(OULUVS2_PHRASES) and dm.num_classes == 10
    samples = [s for which in ("train", "test") for s in dm.datasets[which].samples]
    assert {s.name.split()[-1]: s.label for s in samples} == {"31": 0, "34": 1}  # u1 is no phrase
    mapping = ouluvs2_utterance_classes("phrases")
    assert mapping["31"] == mapping["33"] == "Excuse me" and mapping["60"] == "You are welcome"
    digits = oulu_module(oulu, task="digits")
    digits.setup("test")
    assert digits.class_names == list(OULUVS2_DIGIT_SEQUENCES)
    assert {s.label for s in digits.datasets["test"].samples} == {0}
    custom = oulu_module(oulu, task="custom", utterance_classes={"u34": "b", "31": "a", "u1": "b"})
    custom.setup("test")
    assert custom.class_names == ["b", "a"]
    assert sorted(s.label for s in custom.datasets["test"].samples) == [0, 0, 1]


def test_ouluvs2_splits_are_speaker_disjoint(oulu: Path) -> None:
    dm = oulu_module(oulu, val_fraction=0.25, seed=3)
    dm.setup()
    speakers = {w: {s.group for s in dm.datasets[w].samples} for w in ("train", "val", "test")}
    assert not (speakers["train"] & speakers["val"]) and not (speakers["train"] & speakers["test"])
    assert not (speakers["val"] & speakers["test"])
    assert speakers["train"] | speakers["val"] | speakers["test"] == {"1", "2", "3", "4"}
    listed = oulu_module(oulu, train_speakers=["s1", 2], val_speakers=[], test_speakers=["4"])
    listed.setup()
    assert {s.group for s in listed.datasets["train"].samples} == {"1", "2"}
    assert listed.datasets["val"].samples == listed.datasets["test"].samples  # no val speakers
    with pytest.raises(ValueError, match=r"speakers \['2'\] are in both train_speakers and test_speakers"):
        oulu_module(oulu, train_speakers=[1, 2], test_speakers=[2])
    with pytest.raises(ValueError, match=r"test_speakers \['9'\] have no sample"):
        oulu_module(oulu, train_speakers=[1], test_speakers=[9]).setup()


def test_ouluvs2_view_subset_in_order(oulu: Path) -> None:
    dm = oulu_module(oulu, views=["3", 1])
    dm.setup("test")
    clip, _ = dm.datasets["test"][0]
    assert clip.shape[0] == 2 and [decode(clip[k])[0] for k in range(2)] == [3, 1]
    with pytest.raises(
        ValueError, match=r"no view 5 folder under any speaker; views found: \['1', '2', '3'\]"
    ):
        oulu_module(oulu, views=[5]).setup()
    with pytest.raises(ValueError, match="name a view twice"):
        oulu_module(oulu, views=[1, "v1"])


def test_ouluvs2_missing_view_raises_or_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_ouluvs2(tmp_path / "oulu", speakers=3, utterances=(31,))
    (root / "2" / "3" / "u31.mp4").unlink()
    write_video(root / "2" / "3" / "u32.mp4", view_frames(3, 8))
    with pytest.raises(ValueError, match="speaker 2 utterance 31 has no view 3"):
        oulu_module(root).setup()
    dm = oulu_module(root, on_missing_view="skip", views=[1, 3], val_fraction=0.0, test_fraction=0.4)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.missing_views == 2 and "speaker 2 utterance 31 has no view 3" in caplog.text  # u31 and u32


def test_ouluvs2_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="OuluVS2 root folder not found"):
        oulu_module(tmp_path / "absent").setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no speaker folder"):
        oulu_module(tmp_path / "empty").setup()
    (tmp_path / "a" / "alice").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"alice: expected a speaker folder named <number> or s<number>"):
        oulu_module(tmp_path / "a").setup()
    (tmp_path / "b" / "s1").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"s1: no view folder"):
        oulu_module(tmp_path / "b").setup()
    (tmp_path / "c" / "s1" / "front").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"front: expected a view folder named <number> or v<number>"):
        oulu_module(tmp_path / "c").setup()
    (tmp_path / "d" / "1" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"1: empty view folder"):
        oulu_module(tmp_path / "d").setup()
    write_video(tmp_path / "e" / "1" / "1" / "hello.mp4", view_frames(1, 2))
    with pytest.raises(ValueError, match=r"hello.mp4: expected an utterance named"):
        oulu_module(tmp_path / "e").setup()
    write_video(tmp_path / "f" / "1" / "1" / "s2_v1_u31.mp4", view_frames(1, 2))
    with pytest.raises(
        ValueError, match=r"s2_v1_u31.mp4: the name says speaker 2 view 1, the folders say speaker 1"
    ):
        oulu_module(tmp_path / "f").setup()
    write_video(tmp_path / "g" / "1" / "1" / "u31.mp4", view_frames(1, 2))
    write_folder(tmp_path / "g" / "1" / "1" / "31", view_frames(1, 2))
    with pytest.raises(ValueError, match=r"utterance 31 of view 1 also in"):
        oulu_module(tmp_path / "g").setup()


def test_constructor_errors(tmp_path: Path) -> None:
    root = str(tmp_path)
    with pytest.raises(ValueError, match="utterance_classes is required with task='custom'"):
        MultiViewVideoDataModule(root, task="custom")
    with pytest.raises(ValueError, match="utterance_classes: an utterance must be a number"):
        MultiViewVideoDataModule(root, task="custom", utterance_classes={"x1": "a"})
    with pytest.raises(ValueError, match="layout must be one of"):
        MultiViewVideoDataModule(root, layout="lfw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give train_speakers and test_speakers together"):
        MultiViewVideoDataModule(root, train_speakers=[1])
    with pytest.raises(ValueError, match="a speaker must be a number or 's<number>'"):
        MultiViewVideoDataModule(root, train_speakers=["bob"], test_speakers=[2])
    with pytest.raises(ValueError, match=r"\*_samples apply to layout 'lightfield'"):
        MultiViewVideoDataModule(root, train_samples=["a"], test_samples=["b"])
    with pytest.raises(ValueError, match="unknown light-field views"):
        MultiViewVideoDataModule(root, layout="lightfield", views=["diagonal"])
    with pytest.raises(ValueError, match="val_fraction \\+ test_fraction must be < 1"):
        MultiViewVideoDataModule(root, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="frame_stride applies to sampling='window'"):
        MultiViewVideoDataModule(root, sampling="resample", frame_stride=2)


def test_ouluvs2_corrupt_view_raises_or_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_ouluvs2(tmp_path / "oulu", speakers=2, utterances=(31, 34))
    bad = root / "1" / "2" / "s1_v2_u31.mp4"
    bad.write_bytes(b"not a video at all" * 20)
    dm = oulu_module(root, train_speakers=[2], test_speakers=[1])
    dm.setup("test")
    with pytest.raises(ValueError, match=rf"sample speaker 1 utterance 31, view 2: {bad}"):
        dm.datasets["test"][0]
    skipping = oulu_module(root, train_speakers=[2], test_speakers=[1], on_corrupt="skip")
    skipping.setup("test")
    with caplog.at_level(logging.WARNING):
        _, label = skipping.datasets["test"][0]
    assert label.item() == 1 and skipping.datasets["test"].skipped == 1 and str(bad) in caplog.text


# --------------------------------------------------------------------------------------------------
# Light field
# --------------------------------------------------------------------------------------------------


def write_lightfield(root: Path, subjects: int = 2, samples: int = 3, images: int = 11) -> Path:
    for subject in range(subjects):
        for sample in range(samples):
            for view, folder in enumerate(("horizontal", "vertical")):
                # names img_2 < img_10 in natural order: frame i must be read i-th
                write_folder(
                    root / f"subj{subject}" / f"s{sample}" / folder,
                    view_frames(view + 1, images),
                    "img_{}.png",
                )
    return root


def test_lightfield_batches_labels_and_order(tmp_path: Path) -> None:
    root = write_lightfield(tmp_path / "lf")
    dm = MultiViewVideoDataModule(
        str(root),
        layout="lightfield",
        num_frames=11,
        resize=None,
        batch_size=2,
        val_fraction=0.34,
        test_fraction=0.34,
    )
    dm.setup()
    assert dm.class_names == ["subj0", "subj1"] and dm.view_names == ["horizontal", "vertical"]
    for which in ("train", "val", "test"):  # each subject's samples divided between the sets
        assert sorted(s.group for s in dm.datasets[which].samples) == ["subj0", "subj1"]
    clips, labels = next(iter(dm.test_dataloader()))
    assert clips.shape == (2, 2, 11, 3, SIZE, SIZE) and labels.tolist() == [0, 1]
    assert decode(clips[0, 0]) == (1, list(range(11))) and decode(clips[0, 1]) == (2, list(range(11)))
    listed = MultiViewVideoDataModule(
        str(root),
        layout="lightfield",
        num_frames=3,
        train_samples=["s0", "s1"],
        test_samples=["subj0/s2", "subj1/s2"],
        views=["vertical"],
        grayscale=True,
        resize=(8, 8),
    )
    listed.setup("test")
    clip, _ = listed.datasets["test"][0]
    assert clip.shape == (1, 3, 1, 8, 8) and listed.datasets["test"].samples[0].name == "subj0/s2"
    with pytest.raises(ValueError, match="test_samples names 's9', which is no sample"):
        MultiViewVideoDataModule(
            str(root), layout="lightfield", train_samples=["s0"], test_samples=["s9"]
        ).setup()


def test_lightfield_unequal_counts_error_or_resample(tmp_path: Path) -> None:
    root = write_lightfield(tmp_path / "lf", subjects=1, samples=3, images=6)
    (root / "subj0" / "s1" / "vertical" / "img_5.png").unlink()
    with pytest.raises(
        ValueError,
        match=r"s1: the perspectives hold different numbers of images \(horizontal: 6, vertical: 5\)",
    ):
        MultiViewVideoDataModule(str(root), layout="lightfield").setup()
    dm = MultiViewVideoDataModule(
        str(root),
        layout="lightfield",
        sampling="resample",
        num_frames=4,
        resize=None,
        train_samples=["s0"],
        test_samples=["s1"],
    )
    dm.setup("test")
    clip, _ = dm.datasets["test"][0]
    assert decode(clip[0])[1] == [0, 2, 3, 5] and decode(clip[1])[1] == [
        0,
        1,
        3,
        4,
    ]  # each over its own count
    (root / "subj0" / "s2" / "horizontal").rename(root / "subj0" / "s2" / "left")
    with pytest.raises(ValueError, match=r"subj0/s2 has no view horizontal"):
        MultiViewVideoDataModule(str(root), layout="lightfield", sampling="resample").setup()
    for image in (root / "subj0" / "s0" / "vertical").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match=r"s0/vertical: no image"):
        MultiViewVideoDataModule(str(root), layout="lightfield", views=["vertical"]).setup()


# --------------------------------------------------------------------------------------------------
# HDF5 features
# --------------------------------------------------------------------------------------------------


def write_features(
    path: Path, sizes: dict[str, int], n: int = 8, frames: int = 5, **attrs: object
) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    data: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "w") as f:
        for i in range(n):
            group = f.create_group(f"clip{i}")
            group.attrs["label"] = i % 3
            group.attrs["speaker"] = f"spk{i % 4}"
            for key, value in attrs.items():
                group.attrs[key] = value
            data[f"clip{i}"] = {}
            for view, d in sizes.items():
                values = rng.standard_normal((frames, d)).astype(np.float32)
                group.create_dataset(view, data=values)
                data[f"clip{i}"][view] = values
    return data


def test_features_round_trip_stacked(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    data = write_features(path, {"front": 4, "side": 4, "top": 4})
    dm = MultiViewFeaturesDataModule(str(path), views=["side", "front"], batch_size=8, test_fraction=0.25)
    dm.setup()
    assert dm.feature_sizes == [4, 4] and dm.num_views == 2 and dm.class_names == ["0", "1", "2"]
    for which in ("train", "val", "test"):
        dataset = dm.datasets[which]
        features, labels = next(iter(dm._loader(dataset, shuffle=False)))
        assert features.shape == (len(dataset), 2, 5, 4)
        for row, entry in enumerate(dataset.entries):
            assert torch.equal(features[row, 0], torch.from_numpy(data[entry.key]["side"]))
            assert torch.equal(features[row, 1], torch.from_numpy(data[entry.key]["front"]))
            assert labels[row].item() == int(entry.key[4:]) % 3
    speakers = {w: {int(e.key[4:]) % 4 for e in dm.datasets[w].entries} for w in ("train", "val", "test")}
    assert not (speakers["train"] & speakers["test"]) and not (speakers["train"] & speakers["val"])


def test_features_unequal_sizes_give_a_tuple_and_num_frames_resamples(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    data = write_features(path, {"a": 3, "b": 6}, frames=3, split="test")
    with h5py.File(path, "a") as f:
        for i in range(8):
            f[f"clip{i}"].attrs["split"] = "train" if i < 6 else "test"
            f[f"clip{i}"].attrs["label"] = ["no", "yes"][i % 2]
    dm = MultiViewFeaturesDataModule(str(path), num_frames=5, batch_size=2)
    dm.setup("test")
    assert dm.view_names == ["a", "b"] and dm.feature_sizes == [3, 6] and dm.class_names == ["no", "yes"]
    (a, b), labels = next(iter(dm.test_dataloader()))
    assert a.shape == (2, 5, 3) and b.shape == (2, 5, 6) and labels.tolist() == [0, 1]
    expected = data["clip6"]["b"][[0, 1, 2, 2, 2]]  # shorter: the last frame repeated
    assert torch.equal(b[0], torch.from_numpy(expected))


def test_features_errors(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    with pytest.raises(FileNotFoundError, match="HDF5 feature file not found"):
        MultiViewFeaturesDataModule(str(path)).setup()
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=rf"{path}: cannot open the HDF5 file"):
        MultiViewFeaturesDataModule(str(path)).setup()
    write_features(path, {"a": 3, "b": 3})
    with h5py.File(path, "a") as f:
        del f["clip3/b"]
        f.create_dataset("clip3/b", data=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"sample 'clip3': views of different lengths T \(a: 5, b: 4\)"):
        MultiViewFeaturesDataModule(str(path)).setup()
    MultiViewFeaturesDataModule(str(path), num_frames=2).setup()
    with h5py.File(path, "a") as f:
        del f["clip3/b"]
        f.create_dataset("clip3/b", data=np.zeros((5, 7)))
    with pytest.raises(
        ValueError,
        match=r"sample 'clip3', view 'b': feature size D expected 3 \(as in the first sample\), got 7",
    ):
        MultiViewFeaturesDataModule(str(path)).setup()
    with pytest.raises(ValueError, match=r"sample 'clip0' has no view 'c' \(it holds \['a', 'b'\]\)"):
        MultiViewFeaturesDataModule(str(path), views=["c"]).setup()
    write_features(path, {"a": 3}, split="later")
    with pytest.raises(
        ValueError, match=r"sample 'clip0': attribute 'split' must be 'train', 'val' or 'test'"
    ):
        MultiViewFeaturesDataModule(str(path)).setup()
    write_features(path, {"a": 3}, label=-1)
    with pytest.raises(ValueError, match=r"sample 'clip0': attribute 'label' must be an int >= 0"):
        MultiViewFeaturesDataModule(str(path)).setup()
    write_features(path, {"a": 3})
    with h5py.File(path, "a") as f:
        del f["clip2"].attrs["label"]
        f.create_dataset("loose", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"sample 'clip2' has no 'label' attribute"):
        MultiViewFeaturesDataModule(str(path)).setup()
    with h5py.File(path, "a") as f:
        f["clip2"].attrs["label"] = 1
    with pytest.raises(ValueError, match=r"sample 'loose' is a dataset; expected a group"):
        MultiViewFeaturesDataModule(str(path)).setup()


# --------------------------------------------------------------------------------------------------
# Property tests: malformed inputs work or raise a clear error naming the file / key
# --------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_SCRATCH = tempfile.TemporaryDirectory(prefix="lstmvision-multiview-")


@pytest.fixture(scope="module", autouse=True)
def _remove_scratch() -> Iterator[None]:
    yield
    _SCRATCH.cleanup()


@pytest.fixture(scope="module")
def good_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_video(tmp_path_factory.mktemp("good") / "v.mp4", view_frames(1, 6)).read_bytes()


@FUZZ
@given(
    mode=st.sampled_from(["random", "truncate", "flip"]),
    data=st.binary(max_size=200),
    cut=st.floats(0.0, 1.0),
)
def test_corrupt_view_video_is_named(good_video: bytes, mode: str, data: bytes, cut: float) -> None:
    root = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    for s in (1, 2):
        for v in (1, 2):
            (root / str(s) / str(v)).mkdir(parents=True)
            (root / str(s) / str(v) / f"s{s}_v{v}_u31.mp4").write_bytes(good_video)
    bad = root / "1" / "2" / "s1_v2_u31.mp4"
    if mode == "random":
        content = data
    elif mode == "truncate":
        content = good_video[: int(len(good_video) * cut)]
    else:
        at = int((len(good_video) - 1) * cut)
        content = good_video[:at] + bytes([good_video[at] ^ 0xFF]) + data[:8] + good_video[at + 1 :]
    bad.write_bytes(content)
    dm = oulu_module(root, train_speakers=[2], test_speakers=[1], num_frames=3)
    dm.setup("test")
    try:
        clip, _ = dm.datasets["test"][0]
        assert clip.shape[:2] == (2, 3)
    except ValueError as exc:
        assert str(bad) in str(exc), exc


def test_views_of_different_frame_sizes_name_each_file(tmp_path: Path) -> None:
    # found by test_corrupt_view_video_is_named: a flipped byte made a view decode at 64x256
    paths = {}
    for s in (1, 2):
        for v in (1, 2):
            size = 24 if (s, v) == (1, 2) else 16
            path = tmp_path / str(s) / str(v) / f"s{s}_v{v}_u31.mp4"
            paths[s, v] = write_video(path, np.zeros((6, size, size, 3), dtype=np.uint8))
    dm = oulu_module(tmp_path, train_speakers=[2], test_speakers=[1], num_frames=3)
    dm.setup("test")
    with pytest.raises(ValueError, match="views of different frame sizes") as info:
        dm.datasets["test"][0]
    message = str(info.value)
    assert f"1: (16, 16) {paths[1, 1]}" in message and f"2: (24, 24) {paths[1, 2]}" in message, message
    assert "give resize=[H, W]" in message


labels = st.one_of(
    st.integers(-3, 5),
    st.text(st.characters(exclude_characters="\x00"), max_size=3),  # h5py cannot store a NUL in a string
    st.floats(allow_nan=True),
    st.binary(max_size=3),
    st.lists(st.integers(0, 2), max_size=2),
)


@FUZZ
@given(
    label=labels,
    split=st.none() | st.sampled_from(["train", "test", "val", "x", ""]) | st.integers(0, 2),
    shape=st.lists(st.integers(0, 3), min_size=0, max_size=3),
    kind=st.sampled_from(["f4", "i2", "S3", "bool"]),
)
def test_malformed_hdf5_is_named(label: object, split: object, shape: list[int], kind: str) -> None:
    path = Path(tempfile.mkdtemp(dir=_SCRATCH.name)) / "features.h5"
    with h5py.File(path, "w") as f:
        for i in range(4):
            group = f.create_group(f"s{i}")
            group.attrs["label"] = i % 2
            group.create_dataset("a", data=np.ones((3, 2), dtype=np.float32))
        odd = f["s1"]
        odd.attrs["label"] = label
        if split is not None:
            for i in range(4):
                f[f"s{i}"].attrs["split"] = "train" if i != 3 else "test"
            odd.attrs["split"] = split
        del odd["a"]
        odd.create_dataset("a", data=np.zeros(shape, dtype=kind))
    dm = MultiViewFeaturesDataModule(str(path), test_fraction=0.25, val_fraction=0.0)
    try:
        dm.setup()
        for which in ("train", "test"):
            for item in dm.datasets[which]:
                assert isinstance(item[0], torch.Tensor)
    except ValueError as exc:
        assert str(path) in str(exc), exc


def test_features_nan_or_unreadable_sample_raises_or_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "features.h5"
    data = write_features(path, {"v1": 4, "v2": 4}, n=8)
    with h5py.File(path, "r+") as f:
        f["clip2/v2"][1, 0] = np.nan
        for i in range(8):  # clips 0-5 train, 6 val, 7 test
            f[f"clip{i}"].attrs["split"] = "train" if i < 6 else "val" if i == 6 else "test"
    raising = MultiViewFeaturesDataModule(str(path), batch_size=6)
    raising.setup("fit")
    with pytest.raises(ValueError, match=r"features\.h5: dataset 'clip2/v2' holds NaN or inf values"):
        list(raising.train_dataloader())
    skipping = MultiViewFeaturesDataModule(str(path), batch_size=6, on_corrupt="skip")
    skipping.setup("fit")
    dataset = skipping.datasets["train"]
    with caplog.at_level("WARNING"):
        items = [dataset[i] for i in range(6)]
    assert dataset.skipped == 1 and "clip2/v2" in caplog.text
    # the bad sample is replaced by the next readable one, the others are read unchanged
    keys = [entry.key for entry in dataset.entries]
    replaced = keys.index("clip2")
    torch.testing.assert_close(items[replaced][0], items[(replaced + 1) % 6][0])
    good = (replaced + 2) % 6
    torch.testing.assert_close(items[good][0][0], torch.from_numpy(data[keys[good]]["v1"]))
    with pytest.raises(ValueError, match="on_corrupt must be one of"):
        MultiViewFeaturesDataModule(str(path), on_corrupt="ignore")  # type: ignore[arg-type]
