"""Captioning data modules: batches of frames or HDF5 features with their captions, the vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lstmvision.data import (
    CaptionCollate,
    CaptionedDigits,
    CaptionedDigitsDataModule,
    CaptionFeaturesDataModule,
    Vocabulary,
    most_frequent_caption,
    uniform_frame_indices,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CAPTIONS = {
    "v0": ["A dog runs.", "the dog is running"],
    "v1": ["A cat sleeps", "a cat is sleeping on a sofa"],
    "v2": ["a man cooks", "someone is cooking"],
    "v3": ["a zebra gallops"],  # "zebra" and "gallops" appear in the test set only
}
SPLIT = {"train": ["v0", "v1"], "val": ["v2"], "test": ["v3"]}
FRAMES = {"v0": 5, "v1": 3, "v2": 4, "v3": 2}


def _write_features(path: Path, ids: list[str], D: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    values = {video_id: rng.standard_normal((FRAMES[video_id], D)).astype(np.float32) for video_id in ids}
    with h5py.File(path, "w") as handle:
        handle.attrs["encoder"] = "small_cnn"
        handle.attrs["frames"] = 5
        for video_id, array in values.items():
            handle[video_id] = array
    return values


def _json_set(tmp_path: Path, ids: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    (tmp_path / "captions.json").write_text(json.dumps(CAPTIONS))
    (tmp_path / "split.json").write_text(json.dumps(SPLIT))
    values = _write_features(tmp_path / "features.h5", list(CAPTIONS) if ids is None else ids)
    args = dict(
        features=str(tmp_path / "features.h5"),
        dataset="json",
        captions=str(tmp_path / "captions.json"),
        split_file=str(tmp_path / "split.json"),
    )
    return values, args


def test_uniform_indices_are_segment_centres() -> None:
    assert uniform_frame_indices(10, 5) == [1, 3, 5, 7, 9]
    assert uniform_frame_indices(8, 4) == [1, 3, 5, 7]
    assert uniform_frame_indices(3, 6) == [0, 0, 1, 1, 2, 2]  # shorter than asked: steps repeat
    assert uniform_frame_indices(1, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match="num_video_frames must be an integer >= 1, got 0"):
        uniform_frame_indices(0, 3)


def test_collate_pads_inputs_and_targets() -> None:
    vocab = Vocabulary.build(["a dog runs", "the cat"])
    items = [
        (torch.ones(3, 2), ["a dog runs", "the cat"], "x"),
        (torch.full((1, 2), 7.0), ["the cat"], "y"),
    ]
    batch = CaptionCollate(vocab, 10, sample_target=False)(items)
    assert batch.inputs.shape == (2, 3, 2)
    assert torch.equal(batch.inputs[1], torch.tensor([[7.0, 7.0], [0, 0], [0, 0]]))
    assert batch.lengths.tolist() == [3, 1]
    ids = [vocab.BOS, *(vocab.index[w] for w in "a dog runs".split()), vocab.EOS]
    assert batch.tokens[0].tolist() == ids  # the first reference without sampling
    assert batch.tokens[1].tolist() == [
        vocab.BOS,
        vocab.index["the"],
        vocab.index["cat"],
        vocab.EOS,
        vocab.PAD,
    ]
    assert batch.references == [["a dog runs", "the cat"], ["the cat"]]
    assert batch.video_ids == ["x", "y"]
    # max_caption_length cuts the target and keeps <eos>
    short = CaptionCollate(vocab, 3, sample_target=False)(items[:1])
    assert short.tokens[0].tolist() == [vocab.BOS, vocab.index["a"], vocab.EOS]


def test_training_targets_are_drawn_from_every_reference() -> None:
    vocab = Vocabulary.build(["one", "two", "three"])
    collate = CaptionCollate(vocab, 5, sample_target=True)
    torch.manual_seed(0)
    seen = {int(collate([(torch.zeros(1, 1), ["one", "two", "three"], "v")]).tokens[0, 1]) for _ in range(60)}
    assert seen == {vocab.index["one"], vocab.index["two"], vocab.index["three"]}


def test_collate_errors() -> None:
    collate = CaptionCollate(Vocabulary.build(["a"]), 5, sample_target=False)
    with pytest.raises(ValueError, match="empty batch"):
        collate([])
    with pytest.raises(ValueError, match=r"differ in shape per step: \[\(2,\), \(3,\)\]"):
        collate([(torch.zeros(2, 2), ["a"], "x"), (torch.zeros(2, 3), ["a"], "y")])
    with pytest.raises(ValueError, match="video 'x' has no caption"):
        collate([(torch.zeros(2, 2), [], "x")])


def test_most_frequent_caption_merges_case_and_punctuation() -> None:
    refs = [["A dog runs.", "a cat"], ["a dog runs", "a cat"], ["a dog runs"]]
    assert most_frequent_caption(refs) == "a dog runs"  # 3 of "a dog runs" in two raw forms
    assert most_frequent_caption([["b a", "a b"], ["a b", "b a"]]) == "b a"  # a tie: the first seen
    with pytest.raises(ValueError, match="no captions"):
        most_frequent_caption([])


def test_features_module_serves_hdf5_values_with_captions(tmp_path: Path) -> None:
    values, args = _json_set(tmp_path)
    module = CaptionFeaturesDataModule(**args, batch_size=2)
    module.setup("fit")
    assert module.feature_size == 6
    assert module.vocabulary is not None and "zebra" not in module.vocabulary  # train captions only
    assert "dog" in module.vocabulary and "sofa" in module.vocabulary
    batch = next(iter(module.train_dataloader()))
    assert sorted(batch.video_ids) == ["v0", "v1"]
    for b, video_id in enumerate(batch.video_ids):
        n = FRAMES[video_id]
        assert int(batch.lengths[b]) == n
        assert torch.equal(batch.inputs[b, :n], torch.from_numpy(values[video_id]))
        assert bool((batch.inputs[b, n:] == 0).all())
        assert batch.references[b] == CAPTIONS[video_id]
    val = next(iter(module.val_dataloader()))
    assert val.video_ids == ["v2"] and val.references == [CAPTIONS["v2"]]
    assert module.baseline_caption in CAPTIONS["v0"] + CAPTIONS["v1"]
    spec = module.input_spec()
    assert spec["kind"] == "features" and spec["encoder"] == "small_cnn" and spec["frames"] == 5


def test_features_module_samples_k_frames(tmp_path: Path) -> None:
    values, args = _json_set(tmp_path)
    module = CaptionFeaturesDataModule(**args, num_frames=4, batch_size=4)
    module.setup("test")
    batch = next(iter(module.test_dataloader()))
    assert batch.lengths.tolist() == [4]
    expected = values["v3"][uniform_frame_indices(2, 4)]  # v3 has 2 steps: each twice
    assert torch.equal(batch.inputs[0], torch.from_numpy(expected))


def test_missing_features_raise_or_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, args = _json_set(tmp_path, ids=["v0", "v2", "v3"])
    with pytest.raises(ValueError, match=r"features.h5: no features for 1 of 4 captioned videos: v1"):
        CaptionFeaturesDataModule(**args).setup("fit")
    module = CaptionFeaturesDataModule(**args, on_missing="skip")
    module.setup("fit")
    assert "1 captioned videos have no features" in captions_log(caplog)
    assert module.datasets["train"].ids == ["v0"]


def captions_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


def test_bad_feature_files_are_named(tmp_path: Path) -> None:
    _, args = _json_set(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"features file not found: .*nothing\.h5"):
        CaptionFeaturesDataModule(**{**args, "features": str(tmp_path / "nothing.h5")}).setup("fit")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"bad\.h5: not a readable HDF5 file"):
        CaptionFeaturesDataModule(**{**args, "features": str(tmp_path / "bad.h5")}).setup("fit")
    with h5py.File(tmp_path / "features.h5", "a") as handle:
        del handle["v1"]
        handle["v1"] = np.zeros((3, 4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'v1' must be a \(frames, features\) dataset, got \(3, 4, 2\)"):
        CaptionFeaturesDataModule(**args).setup("fit")
    with h5py.File(tmp_path / "features.h5", "a") as handle:
        del handle["v1"]
        handle["v1"] = np.zeros((3, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"feature sizes differ: \[5, 6\]"):
        CaptionFeaturesDataModule(**args).setup("fit")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dataset", "coco", "dataset must be 'msvd', 'msrvtt' or 'json', got 'coco'"),
        ("on_missing", "ignore", "on_missing must be 'raise' or 'skip', got 'ignore'"),
        ("num_frames", 0, "num_frames must be >= 1 or null, got 0"),
        ("test_captions", "t.json", "test_captions is for dataset 'msrvtt' only"),
        ("min_count", 0, "min_count must be >= 1, got 0"),
        ("max_vocab_size", 4, "max_vocab_size must be >= 5"),
        ("max_caption_length", 1, "max_caption_length must be >= 2"),
        ("batch_size", 0, "batch_size must be >= 1, got 0"),
    ],
)
def test_features_module_arguments(tmp_path: Path, key: str, value: object, message: str) -> None:
    _, args = _json_set(tmp_path)
    with pytest.raises(ValueError, match=message):
        CaptionFeaturesDataModule(**{**args, key: value})  # type: ignore[arg-type]


def test_msrvtt_features_module(tmp_path: Path) -> None:
    videos = [
        {"video_id": f"video{i}", "split": split} for i, split in enumerate(["train", "validate", "test"])
    ]
    sentences = [{"video_id": f"video{i}", "caption": f"caption number {i}", "sen_id": i} for i in range(3)]
    (tmp_path / "tv.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    with h5py.File(tmp_path / "f.h5", "w") as handle:
        for i in range(3):
            handle[f"video{i}"] = np.full((2, 3), float(i), dtype=np.float32)
    module = CaptionFeaturesDataModule(
        features=str(tmp_path / "f.h5"), dataset="msrvtt", captions=str(tmp_path / "tv.json")
    )
    module.setup("fit")
    batch = next(iter(module.val_dataloader()))
    assert batch.video_ids == ["video1"] and bool((batch.inputs == 1.0).all())
    assert batch.references == [["caption number 1"]]


def test_digits_module_batches_are_the_generated_clips() -> None:
    module = CaptionedDigitsDataModule(
        image_size=40, seq_length=4, train_size=6, val_size=3, test_size=2, batch_size=3
    )
    module.setup("fit")
    assert module.vocabulary is not None and "digit" in module.vocabulary and "circle" in module.vocabulary
    batch = next(iter(module.val_dataloader()))
    clips = CaptionedDigits(3, split="test", image_size=40, seq_length=4, stream=1)
    for b in range(3):
        frames, references, video_id = clips[b]
        assert torch.equal(batch.inputs[b], frames) and batch.references[b] == references
        assert batch.video_ids[b] == video_id
        assert batch.tokens[b, 0] == module.vocabulary.BOS
        # the first reference (the canonical sentence) is the target when no target is sampled
        assert batch.tokens[b, : len(ids := module.vocabulary.encode(references[0]))].tolist() == ids
    assert batch.lengths.tolist() == [4, 4, 4]
    train = CaptionedDigits(6, split="train", image_size=40, seq_length=4, stream=0)
    pool = [train.captions(i) for i in range(4000)]  # clip k does not depend on the set's length
    assert module.baseline_caption == most_frequent_caption(pool)
    assert len(module.vocabulary) == 46  # the whole grammar, even from 6 training clips
    assert module.input_spec() == {"kind": "frames", "frames": 4, "image_size": 40, "channels": 1}


def test_vocabulary_state_round_trip(caplog: pytest.LogCaptureFixture) -> None:
    module = CaptionedDigitsDataModule(image_size=40, seq_length=4, train_size=4, val_size=2, test_size=2)
    module.setup("fit")
    state = module.state_dict()
    other = CaptionedDigitsDataModule(image_size=40, seq_length=4, train_size=4, val_size=2, test_size=2)
    other.load_state_dict(state)
    assert other.vocabulary == module.vocabulary
    module.load_state_dict({"vocabulary": Vocabulary([*Vocabulary.SPECIALS, "x", "y"]).to_dict()})
    assert module.vocabulary == Vocabulary([*Vocabulary.SPECIALS, "x", "y"])
    assert "the checkpoint's is used" in caplog.text


def test_digits_module_arguments() -> None:
    with pytest.raises(ValueError, match="train_size must be >= 1, got 0"):
        CaptionedDigitsDataModule(train_size=0)
    with pytest.raises(ValueError, match="image_size"):
        CaptionedDigitsDataModule(image_size=20)
    with pytest.raises(RuntimeError, match="no vocabulary yet"):
        CaptionedDigitsDataModule(image_size=40, seq_length=4).loader_collate("train")
