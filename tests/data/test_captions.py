"""Caption readers (MSVD CSV, MSR-VTT JSON, generic JSON), splits, tokenizer, vocabulary."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmvision.data import (
    CaptionSet,
    msvd_splits,
    read_caption_json,
    read_msrvtt,
    read_msvd_csv,
    read_youtube_mapping,
)
from lstmvision.text import Vocabulary, encode_captions, tokenize

pytestmark = pytest.mark.usefixtures("one_thread")

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MSVD_HEADER = "VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description"
MSVD_CSV = (
    MSVD_HEADER + "\n"
    "mv89psg6zh4,33,46,1,clean,19,English,A bird is bathing in a sink.\n"
    'mv89psg6zh4,33,46,2,unverified,20,English,"A bird, a parakeet, splashes."\n'
    "mv89psg6zh4,33,46,3,clean,21,German,Ein Vogel badet.\n"
    "mv89psg6zh4,33,46,4,clean,22,Chinese,一只鸟在洗澡\n"
    "60x_yxy7Sfw,1,7,5,clean,18,English,\n"
    "60x_yxy7Sfw,1,7,6,clean,18,English,A man's playing a guitar\n"
)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, data: object) -> Path:
    return write(path, json.dumps(data))


# ---------------------------------------------------------------------------------------------- tokenize
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A man's riding a horse, isn't he?", ["a", "man", "'s", "riding", "a", "horse", "is", "n't", "he"]),
        (
            "A woman is slicing a T-shirt... (quickly)!",
            ["a", "woman", "is", "slicing", "a", "t-shirt", "quickly"],
        ),
        (
            "He said \"don't\" at 2.5 o'clock & left",
            ["he", "said", "do", "n't", "at", "2.5", "o'clock", "&", "left"],
        ),
        (
            "The dogs' toys; they\u2019re 1,000 -- can't",
            ["the", "dogs", "toys", "they", "'re", "1,000", "ca", "n't"],
        ),
        ("the man 's hat", ["the", "man", "'s", "hat"]),
        ("  ", []),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


# ---------------------------------------------------------------------------------------------- MSVD
def test_msvd_csv_reads_english_rows(tmp: Path) -> None:
    path = write(tmp / "MSR Video Description Corpus.csv", MSVD_CSV)
    split = write_json(
        tmp / "split.json", {"train": ["mv89psg6zh4_33_46"], "val": [], "test": ["60x_yxy7Sfw_1_7"]}
    )
    data = read_msvd_csv(path, split_file=split)
    assert data.captions == {
        "mv89psg6zh4_33_46": ["A bird is bathing in a sink.", "A bird, a parakeet, splashes."],
        "60x_yxy7Sfw_1_7": ["A man's playing a guitar"],
    }
    assert data.splits == {"train": ["mv89psg6zh4_33_46"], "val": [], "test": ["60x_yxy7Sfw_1_7"]}


def test_msvd_unquoted_commas_join_description(tmp: Path) -> None:
    path = write(tmp / "m.csv", MSVD_HEADER + "\nabc,1,2,1,clean,3,English,a dog, a cat, run\n")
    data = read_msvd_csv(
        path, split_file=write_json(tmp / "s.json", {"train": ["abc_1_2"], "val": [], "test": []})
    )
    assert data.captions["abc_1_2"] == ["a dog, a cat, run"]


def _mapping_csv(tmp: Path, n: int) -> tuple[Path, Path]:
    rows = [f"clip{i},{i},{i + 1},1,clean,1,English,caption {i}" for i in range(n)]
    csv_path = write(tmp / "corpus.csv", MSVD_HEADER + "\n" + "\n".join(reversed(rows)) + "\n")
    mapping = write(
        tmp / "youtube_mapping.txt", "".join(f"clip{i}_{i}_{i + 1} vid{i + 1}\n" for i in range(n))
    )
    return csv_path, mapping


def test_msvd_standard_split_follows_mapping_order(tmp: Path) -> None:
    csv_path, mapping = _mapping_csv(tmp, 1970)
    data = read_msvd_csv(csv_path, mapping_file=mapping)
    assert [len(data.splits[name]) for name in ("train", "val", "test")] == [1200, 100, 670]
    assert data.splits["train"][0] == "clip0_0_1" and data.splits["val"][0] == "clip1200_1200_1201"
    assert data.splits["test"][-1] == "clip1969_1969_1970"
    assert read_youtube_mapping(mapping)[:2] == ["clip0_0_1", "clip1_1_2"]


def test_msvd_splits_needs_1970_videos() -> None:
    with pytest.raises(ValueError, match=r"needs the 1970 videos .* got 5 videos; give a split_file"):
        msvd_splits([f"v{i}" for i in range(5)])
    with pytest.raises(ValueError, match="listed twice"):
        msvd_splits(["a", "a"])


def test_msvd_split_folder_of_lists(tmp: Path) -> None:
    folder = tmp / "splits"
    folder.mkdir()
    write(folder / "train_list.txt", "a\n\nb\n")
    write(folder / "val_list.txt", "c\n")
    write(folder / "test_list.txt", "")
    assert msvd_splits(["a", "b", "c", "d"], folder) == {"train": ["a", "b"], "val": ["c"], "test": []}
    write(folder / "test_list.txt", "x\n\nb\n")
    with pytest.raises(ValueError, match=r"test_list.txt: line 1: video 'x' has no captions"):
        msvd_splits(["a", "b", "c"], folder)
    write(folder / "test_list.txt", "b\n")
    with pytest.raises(ValueError, match=r"test_list.txt: line 1: video 'b' is already in the train set"):
        msvd_splits(["a", "b", "c"], folder)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("VideoID,Start,End,Language\n", r"line 1: header misses the columns \['Description'\]"),
        (MSVD_HEADER + "\nabc,1,2,1,clean\n", "line 2: expected 8 fields, got 5"),
        (
            MSVD_HEADER + "\nabc,1.5,2,1,clean,3,English,x\n",
            r"line 2: Start must be a whole number .* got '1.5'",
        ),
        (MSVD_HEADER + "\n,1,2,1,clean,3,English,x\n", "line 2: VideoID is empty"),
        ("", r"line 1: header misses the columns \['VideoID'"),
    ],
)
def test_msvd_errors(tmp: Path, text: str, match: str) -> None:
    path = write(tmp / "bad.csv", text)
    with pytest.raises(ValueError, match=f"bad.csv: {match}"):
        read_msvd_csv(path, split_file=write_json(tmp / "s.json", {"train": [], "val": [], "test": []}))


def test_msvd_not_utf8_and_missing(tmp: Path) -> None:
    path = tmp / "latin.csv"
    path.write_bytes((MSVD_HEADER + "\nabc,1,2,1,clean,3,English,caf\xe9\n").encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv: line 2: not UTF-8"):
        read_msvd_csv(path)
    with pytest.raises(FileNotFoundError, match=r"nothing.csv: no such file"):
        read_msvd_csv(tmp / "nothing.csv")


def test_msvd_mapping_errors(tmp: Path) -> None:
    csv_path, mapping = _mapping_csv(tmp, 3)
    with pytest.raises(ValueError, match=r"youtube_mapping.txt: msvd_splits: .*got 3 videos"):
        read_msvd_csv(csv_path, mapping_file=mapping)
    write(mapping, "clip0_0_1 vid1\nclip9_9_10 vid2\n")
    with pytest.raises(
        ValueError, match=r"youtube_mapping.txt: 1 clips have no English caption .*clip9_9_10"
    ):
        read_msvd_csv(csv_path, mapping_file=mapping)
    write(mapping, "clip0_0_1 vid1\nclip1_1_2 vid3\n")
    with pytest.raises(ValueError, match=r"expected vid1..vid2 each once, missing \[2\]"):
        read_youtube_mapping(mapping)
    write(mapping, "clip0_0_1\n")
    with pytest.raises(ValueError, match="line 1: expected '<clip id> vid<N>'"):
        read_youtube_mapping(mapping)


# ---------------------------------------------------------------------------------------------- MSR-VTT
def _msrvtt(tmp: Path) -> tuple[Path, Path]:
    train_val = {
        "info": {"year": 2016},
        "videos": [
            {
                "category": 9,
                "url": "u",
                "video_id": "video0",
                "start time": 1.0,
                "end time": 2.0,
                "split": "train",
                "id": 0,
            },
            {"video_id": "video1", "split": "validate", "id": 1},
        ],
        "sentences": [
            {"caption": "a car is shown", "video_id": "video0", "sen_id": 0},
            {"caption": "a man talks", "video_id": "video1", "sen_id": 1},
            {"caption": "cars race", "video_id": "video0", "sen_id": 2},
        ],
    }
    test = {
        "videos": [{"video_id": "video2", "split": "test"}],
        "sentences": [{"caption": "x", "video_id": "video2"}],
    }
    return write_json(tmp / "train_val_videodatainfo.json", train_val), write_json(
        tmp / "test_videodatainfo.json", test
    )


def test_msrvtt(tmp: Path) -> None:
    train_val, test = _msrvtt(tmp)
    data = read_msrvtt(train_val, test)
    assert data.splits == {"train": ["video0"], "val": ["video1"], "test": ["video2"]}
    assert data.captions["video0"] == ["a car is shown", "cars race"]
    assert read_msrvtt(train_val).splits["test"] == []


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "top level: expected an object"),
        ({"videos": []}, "missing the key 'sentences'"),
        (
            {"videos": [{"video_id": 3, "split": "train"}], "sentences": []},
            r"videos\[0\].video_id: expected a string, got an integer",
        ),
        (
            {"videos": [{"video_id": "v", "split": "dev"}], "sentences": []},
            r"videos\[0\].split: expected one of",
        ),
        (
            {
                "videos": [{"video_id": "v", "split": "train"}],
                "sentences": [{"video_id": "w", "caption": "c"}],
            },
            r"sentences\[0\].video_id: video 'w' is not in any videos list",
        ),
        (
            {"videos": [{"video_id": "v", "split": "train"}], "sentences": []},
            r"1 videos have no caption: \['v'\]",
        ),
        (
            {"videos": [{"video_id": "v", "split": "train"}] * 2, "sentences": []},
            r"videos\[1\].video_id: video 'v' is listed twice",
        ),
    ],
)
def test_msrvtt_errors(tmp: Path, data: object, match: str) -> None:
    with pytest.raises(ValueError, match=f"bad.json: {match}"):
        read_msrvtt(write_json(tmp / "bad.json", data))


def test_msrvtt_invalid_json(tmp: Path) -> None:
    with pytest.raises(ValueError, match=r"bad.json: not valid JSON: line 1 column 2"):
        read_msrvtt(write(tmp / "bad.json", "{,}"))


# ---------------------------------------------------------------------------------------------- generic JSON
def test_caption_json_with_and_without_split(tmp: Path) -> None:
    path = write_json(tmp / "caps.json", {"a": ["one ", " "], "b": ["two"], "c": ["three"]})
    assert read_caption_json(path).splits == {"train": ["a", "b", "c"], "val": [], "test": []}
    data = read_caption_json(path, write_json(tmp / "split.json", {"train": ["b"], "val": ["a"], "test": []}))
    assert data.captions["a"] == ["one"]
    assert data.splits == {"train": ["b"], "val": ["a"], "test": []}  # "c" is in no set: left out
    assert data.split_captions("val") == {"a": ["one"]}


@pytest.mark.parametrize(
    ("captions", "split", "match"),
    [
        ({"a": "one"}, None, r"caps.json: \[\"a\"\]: expected a list of strings, got a string"),
        ({"a": [" "]}, None, r"caps.json: \[\"a\"\]: expected at least one non-blank caption"),
        ({"a": ["x"]}, {"train": ["a"], "val": []}, r"split.json: expected the keys .* missing \['test'\]"),
        (
            {"a": ["x"]},
            {"train": ["b"], "val": [], "test": []},
            r"split.json: \[\"train\"\]\[0\]: video 'b' has no captions",
        ),
        (
            {"a": ["x"]},
            {"train": ["a"], "val": [], "test": ["a"]},
            r"\[\"test\"\]\[0\]: video 'a' is already in the train",
        ),
    ],
)
def test_caption_json_errors(tmp: Path, captions: object, split: object, match: str) -> None:
    path = write_json(tmp / "caps.json", captions)
    split_file = None if split is None else write_json(tmp / "split.json", split)
    with pytest.raises(ValueError, match=match):
        read_caption_json(path, split_file)


def test_caption_set_validation() -> None:
    with pytest.raises(ValueError, match="has no captions"):
        CaptionSet({}, {"train": ["a"], "val": [], "test": []})
    with pytest.raises(ValueError, match="in the train set and again in the test set"):
        CaptionSet({"a": ["x"]}, {"train": ["a"], "val": [], "test": ["a"]})
    with pytest.raises(ValueError, match="splits must have the keys"):
        CaptionSet({}, {"train": []})


# ---------------------------------------------------------------------------------------------- vocabulary
def test_vocabulary_build_order_and_limits() -> None:
    vocab = Vocabulary.build(["a dog runs", "a cat runs", "a bird"], min_count=1)
    assert vocab.words == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "runs", "bird", "cat", "dog"]
    assert Vocabulary.build(["a dog runs", "a cat runs"], min_count=2).words[4:] == ["a", "runs"]
    assert len(Vocabulary.build(["a dog runs", "a cat runs"], max_size=5)) == 5
    with pytest.raises(ValueError, match="min_count must be an integer >= 1, got 0"):
        Vocabulary.build([], min_count=0)
    with pytest.raises(ValueError, match="max_size must be an integer >= 4"):
        Vocabulary.build([], max_size=3)


def test_vocabulary_encode_decode() -> None:
    vocab = Vocabulary.build(["a dog runs"])
    ids = vocab.encode("A dog flies.")
    assert ids == [1, vocab.index["a"], vocab.index["dog"], 3, 2]
    assert vocab.encode("a dog runs fast", max_length=3) == [1, vocab.index["a"], 2]
    assert vocab.decode(ids) == "a dog <unk>"
    assert vocab.decode(torch.tensor([1, vocab.index["dog"], 2, vocab.index["a"], 0])) == "dog"
    with pytest.raises(ValueError, match="id 99 is outside"):
        vocab.decode([99])
    with pytest.raises(ValueError, match="max_length must be an integer >= 2"):
        vocab.encode("a", max_length=1)


def test_vocabulary_dict_round_trip_through_torch_save() -> None:
    vocab = Vocabulary.build(["a dog runs", "über café"])
    buffer = io.BytesIO()
    torch.save({"vocab": vocab.to_dict()}, buffer)
    buffer.seek(0)
    assert Vocabulary.from_dict(torch.load(buffer, weights_only=True)["vocab"]) == vocab
    with pytest.raises(ValueError, match=r"expected format 'lstmvision.vocabulary' version 1"):
        Vocabulary.from_dict({"words": []})
    with pytest.raises(ValueError, match="the first words must be"):
        Vocabulary.from_dict({**vocab.to_dict(), "words": ["a"]})
    with pytest.raises(ValueError, match="words listed twice"):
        Vocabulary.from_dict({**vocab.to_dict(), "words": [*vocab.words, "a"]})


def test_encode_captions_pads() -> None:
    vocab = Vocabulary.build(["a dog runs"])
    ids, lengths = encode_captions(vocab, ["a dog", "a dog runs far away"], max_length=5)
    assert ids.dtype == torch.long and ids.shape == (2, 5)
    assert lengths.tolist() == [4, 5]
    assert ids[0].tolist() == [1, 4, 5, 2, 0] and ids[1, -1].item() == 2


# ---------------------------------------------------------------------------------------------- fuzzing
_SCRATCH = tempfile.TemporaryDirectory(prefix="lstmvision-captions-")


@pytest.fixture(scope="module", autouse=True)
def _remove_scratch() -> Iterator[None]:
    yield
    _SCRATCH.cleanup()


def _fresh(name: str) -> Path:
    return Path(tempfile.mkdtemp(dir=_SCRATCH.name)) / name


def expect_clear(call: Callable[[], object], name: str) -> None:
    try:
        call()
    except (ValueError, FileNotFoundError) as exc:
        assert name in str(exc), f"{type(exc).__name__} does not name {name!r}: {exc}"


@FUZZ
@given(
    cut=st.integers(0, len(MSVD_CSV.encode())),
    insert=st.binary(max_size=8),
    at=st.integers(0, len(MSVD_CSV.encode())),
)
def test_msvd_mutated_csv(cut: int, insert: bytes, at: int) -> None:
    data = MSVD_CSV.encode()[:cut]
    path = _fresh("corpus.csv")
    path.write_bytes(data[:at] + insert + data[at:])
    expect_clear(lambda: read_msvd_csv(path), "corpus.csv")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.sampled_from(["train", "validate", "v"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["video_id", "split", "caption", "x"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@FUZZ
@given(videos=json_values, sentences=json_values, drop=st.booleans())
def test_msrvtt_random_json(videos: object, sentences: object, drop: bool) -> None:
    path = _fresh("videodatainfo.json")
    data = {"videos": videos} if drop else {"videos": videos, "sentences": sentences}
    write_json(path, data)
    expect_clear(lambda: read_msrvtt(path), "videodatainfo.json")


@FUZZ
@given(
    captions=json_values | st.dictionaries(st.text(max_size=3), json_values, max_size=3), split=json_values
)
def test_caption_json_random(captions: object, split: object) -> None:
    path, split_path = _fresh("caps.json"), _fresh("split.json")
    write_json(path, captions)
    write_json(split_path, split)
    try:
        read_caption_json(path, split_path)
    except ValueError as exc:
        assert "caps.json" in str(exc) or "split.json" in str(exc), str(exc)


@FUZZ
@given(data=st.binary(max_size=60))
def test_youtube_mapping_random_bytes(data: bytes) -> None:
    path = _fresh("youtube_mapping.txt")
    path.write_bytes(data)
    expect_clear(lambda: read_youtube_mapping(path), "youtube_mapping.txt")
