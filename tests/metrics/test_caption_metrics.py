"""Caption metrics against pycocoevalcap called directly, hand-checkable values, the no-Java path, input
errors, and the Python PTB tokenizer against the Java one."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from lstmvision.metrics import captioning
from lstmvision.metrics.captioning import (
    METRIC_NAMES,
    CaptionScores,
    find_java,
    ptb_tokenize_python,
    score_caption_sets,
    score_captions,
)

pytestmark = pytest.mark.usefixtures("one_thread")

needs_java = pytest.mark.skipif(
    find_java() is None,
    reason="no Java runtime (`java` on PATH): pycocoevalcap's PTBTokenizer and METEOR need it",
)

# Raw captions on which the Java and the Python tokenizers agree (checked in test_python_tokenizer_...).
REFERENCES = {
    "vid1": [
        "A man is playing a guitar.",
        "A man plays the guitar on stage!",
        "Someone's playing an acoustic guitar",
        "a guy is strumming a guitar",
    ],
    "vid2": ["A dog runs in the park.", "The dog is running, fast.", "A brown dog runs on grass"],
    "vid3": [
        "A woman is slicing an onion.",
        "Someone slices onions (red ones) in the kitchen.",
        "A woman cuts an onion with a knife",
        "A lady is chopping onions.",
        "The woman can't stop cutting the onion",
    ],
    "vid4": [
        "Two kids are swimming in a pool",
        "Children swim in the pool.",
        "Kids don't want to leave the pool",
    ],
    "vid5": [
        "A cat is sitting on a T-shirt",
        "The cat sits on a shirt",
        "A kitten lies on clothes at 7 a.m.",
    ],
    "vid6": ["A man is driving a car.", "A person drives a red car", "The man's driving down the road"],
}
CANDIDATES = {
    "vid1": "A man is playing a guitar.",  # a perfect match of a reference
    "vid2": "A DOG is running in the park",
    "vid3": "a woman is cutting an onion ||| quickly",
    "vid4": "",  # empty
    "vid5": "A cat sits, on a T-shirt!",
    "vid6": "Purple elephants fly over mountains.",  # unrelated
}

ORDINARY_CAPTIONS = [
    "A man's riding a horse, isn't he?",
    "Two kids don't want to eat.",
    "She can't stop laughing; he won't either",
    "I'm sure you'll see we've got it, they'd say",
    "A well-known chef is cooking at 7 a.m. in the U.S.",
    "The boys' bikes are parked at 5 p.m.",
    "People are dancing (on a stage) in 3-D!",
    "He said \"don't\" at 2.5 o'clock & left",
    "The dogs' toys; they\u2019re 1,000 -- can't",
    "A person slices a cucumber into 1/2 inch pieces",
    "Mr. Smith is talking to Dr. Jones on Main St.",
    "it's 3:30 now and it costs $5 or 50% off",
    "A MAN IS RUNNING... fast",
    "a girl said 'hello' to the boy",
    "someone is cutting 10 onions: red and white",
    "the cat cannot jump, it's gonna fall",
    "he says hi!!! and leaves, a cat/dog [maybe] {or not}",
    "AT&T phones and a t-shirt, -5 degrees",
    "O'Neil's e-mails, the 1990s, etc.",
    "a man is wearing a hat ; he is smiling",
]


def _java_tokenize(captions: list[str]) -> list[str]:
    tokenized = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(captions)})
    return [tokenized[i][0] for i in range(len(captions))]


def _coco_reference(
    meteor: Meteor, candidates: dict[str, str] = CANDIDATES
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """The metrics as the COCO caption evaluation computes them: PTBTokenizer, then each scorer."""
    gts = PTBTokenizer().tokenize({v: [{"caption": c} for c in caps] for v, caps in REFERENCES.items()})
    res = PTBTokenizer().tokenize({v: [{"caption": candidates[v]}] for v in REFERENCES})
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, bleu_per_video = Bleu(4).compute_score(gts, res)
    meteor_score, meteor_per_video = meteor.compute_score(gts, res)
    rouge, rouge_per_video = Rouge().compute_score(gts, res)
    cider, cider_per_video = Cider().compute_score(gts, res)
    scores = {f"BLEU-{n + 1}": bleu[n] for n in range(4)}
    scores.update({"METEOR": meteor_score, "ROUGE-L": rouge, "CIDEr": cider})
    per_video = {"BLEU-4": bleu_per_video[3], "METEOR": meteor_per_video, "ROUGE-L": rouge_per_video}
    per_video["CIDEr"] = cider_per_video
    return scores, per_video


# every candidate moved to the next video: a second set of captions, scored with the first
SHIFTED = dict(zip(CANDIDATES, [*list(CANDIDATES.values())[1:], CANDIDATES["vid1"]]))


@dataclass
class _JavaRun:
    result: CaptionScores  # the candidates' scores
    scores: dict[str, float]  # pycocoevalcap's corpus values for them
    per_video: dict[str, Any]  # and its per-video values
    started: list[Meteor]  # the METEOR scorers score_caption_sets started
    shifted: CaptionScores  # the second set's scores
    shifted_reference: tuple[dict[str, float], dict[str, Any]]  # pycocoevalcap's values for it


@pytest.fixture(scope="module")
def java_run() -> Iterator[_JavaRun]:
    """score_captions on the Java path and the direct pycocoevalcap values. The reference METEOR starts
    first, so that its JVM loads while score_captions runs (each takes ~10 s to load). The candidates are
    scored by score_caption_sets beside a second set, SHIFTED, which shares their METEOR process: the
    first set's scores are score_captions', and test_a_second_set_shares_the_meteor_process checks the
    second set's."""
    if find_java() is None:
        pytest.skip("no Java runtime (`java` on PATH): pycocoevalcap's PTBTokenizer and METEOR need it")
    reference_meteor = Meteor()
    started: list[Meteor] = []

    class RecordingMeteor(Meteor):  # type: ignore[misc]  # records the instances score_captions starts
        def __init__(self) -> None:
            super().__init__()
            started.append(self)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(captioning, "Meteor", RecordingMeteor)
            sets = score_caption_sets(REFERENCES, {"given": CANDIDATES, "shifted": SHIFTED})
        scores, per_video = _coco_reference(reference_meteor)
        shifted_reference = _coco_reference(reference_meteor, SHIFTED)
    finally:
        reference_meteor.meteor_p.kill()
        reference_meteor.meteor_p.wait()
    yield _JavaRun(sets["given"], scores, per_video, started, sets["shifted"], shifted_reference)


@needs_java
def test_a_second_set_shares_the_meteor_process(java_run: _JavaRun) -> None:
    # test_meteor_process_is_stopped: one METEOR process was started for both sets
    result = java_run.shifted
    scores, per_video = java_run.shifted_reference
    assert result.skipped == {} and list(result.scores) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert abs(result.scores[name] - scores[name]) < 1e-12, (name, result.scores[name], scores[name])
    for name, values in per_video.items():
        assert [result.per_video[v][name] for v in REFERENCES] == [float(x) for x in values], name
    assert result.scores["METEOR"] != pytest.approx(java_run.result.scores["METEOR"], abs=1e-6)


@needs_java
def test_scores_equal_pycocoevalcap(java_run: _JavaRun) -> None:
    result, scores, per_video = java_run.result, java_run.scores, java_run.per_video
    assert result.tokenizer == "ptb"
    assert result.skipped == {}
    assert list(result.scores) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        error = abs(result.scores[name] - scores[name])
        assert error < 1e-12, (
            f"{name}: ours {result.scores[name]} vs pycocoevalcap {scores[name]} ({error:.2e})"
        )
    for name, values in per_video.items():
        ours = [result.per_video[video_id][name] for video_id in REFERENCES]
        assert ours == [float(v) for v in values], f"per-video {name}: {ours} vs {list(values)}"
    assert set(result.per_video["vid1"]) == {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    # the empty candidate and the unrelated one score 0, the perfect match BLEU-4 1
    for name in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert result.per_video["vid4"][name] == pytest.approx(0.0, abs=1e-9), name
        assert result.per_video["vid6"][name] == pytest.approx(0.0, abs=1e-9), name
    assert result.per_video["vid1"]["BLEU-4"] == pytest.approx(1.0, abs=1e-9)
    assert 0.0 < result.scores["CIDEr"] and 0.0 < result.scores["METEOR"] < 1.0


@needs_java
def test_meteor_process_is_stopped(java_run: _JavaRun) -> None:
    started = java_run.started
    assert len(started) == 1, f"expected one METEOR process, got {len(started)}"
    assert started[0].meteor_p.poll() is not None, "METEOR's Java process still runs after score_captions"


def test_hand_checkable_values() -> None:
    refs = {
        "a": ["A man is playing a guitar."],
        "b": ["The dog runs in the park"],
        "c": ["a cat sleeps on a bed"],
    }
    same = score_captions(
        refs, {video_id: caps[0] for video_id, caps in refs.items()}, tokenizer="python", meteor=False
    )
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"):
        assert same.scores[name] == pytest.approx(1.0, abs=1e-9), name
    # one reference each, identical: every n-gram cosine is 1, times CIDEr's factor 10
    assert same.scores["CIDEr"] == pytest.approx(10.0, abs=1e-9)
    assert same.per_video["b"] == pytest.approx({"BLEU-4": 1.0, "ROUGE-L": 1.0, "CIDEr": 10.0}, abs=1e-9)
    assert same.skipped == {"METEOR": "not requested (meteor=False)"}
    assert "METEOR" not in same.scores

    unrelated = score_captions(
        refs,
        {"a": "purple elephants", "b": "fly over", "c": "snowy mountains"},
        tokenizer="python",
        meteor=False,
    )
    for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert unrelated.scores[name] == pytest.approx(0.0, abs=1e-9), name


def test_no_java_skips_meteor_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(captioning, "find_java", lambda: None)
    with caplog.at_level(logging.WARNING, logger="lstmvision.metrics.captioning"):
        result = score_captions(REFERENCES, CANDIDATES)
    assert result.tokenizer == "python"
    assert "METEOR" not in result.scores and "METEOR" not in result.per_video["vid1"]
    assert result.skipped == {
        "METEOR": "no Java runtime found: `java` is not on PATH (or `java -version` fails)"
    }
    assert list(result.scores) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"]
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(
        "no Java runtime found" in message
        and "METEOR is skipped" in message
        and "BLEU, ROUGE-L and CIDEr use the Python PTB tokenizer" in message
        for message in messages
    ), messages


@needs_java
def test_no_java_equals_java_path_where_tokenizers_agree(
    monkeypatch: pytest.MonkeyPatch, java_run: _JavaRun
) -> None:
    monkeypatch.setattr(captioning, "find_java", lambda: None)
    result = score_captions(REFERENCES, CANDIDATES)
    java_result = java_run.result
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert abs(result.scores[name] - java_result.scores[name]) < 1e-12, name
    for video_id in REFERENCES:
        java_scores = {
            name: value for name, value in java_result.per_video[video_id].items() if name != "METEOR"
        }
        assert result.per_video[video_id] == java_scores, video_id


def test_ptb_without_java_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captioning, "find_java", lambda: None)
    with pytest.raises(
        RuntimeError,
        match=r"tokenizer='ptb' runs Stanford CoreNLP's PTBTokenizer on Java, but no Java runtime found",
    ):
        score_captions(REFERENCES, CANDIDATES, tokenizer="ptb", meteor=False)


def test_java_tokenizer_failure_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def read_only(self: PTBTokenizer, captions: object) -> None:
        raise PermissionError("[Errno 13] Permission denied: '/site-packages/pycocoevalcap/tokenizer/tmpx'")

    monkeypatch.setattr(captioning, "find_java", lambda: "/usr/bin/java")
    monkeypatch.setattr(captioning.PTBTokenizer, "tokenize", read_only)
    with caplog.at_level(logging.WARNING, logger="lstmvision.metrics.captioning"):
        result = score_captions(REFERENCES, CANDIDATES, tokenizer="ptb", meteor=False)
    assert result.tokenizer == "python"
    expected = score_captions(REFERENCES, CANDIDATES, tokenizer="python", meteor=False)
    assert result.scores == expected.scores
    assert any(
        "Java PTB tokenizer failed (PermissionError: [Errno 13] Permission denied" in record.getMessage()
        and "Python PTB tokenizer instead" in record.getMessage()
        for record in caplog.records
    ), [record.getMessage() for record in caplog.records]


@needs_java
def test_line_breaks_keep_captions_aligned() -> None:
    """CoreNLP starts a new line at \\r or \\u2028: without sanitising, every later caption would move."""
    refs = {"a": ["a man\ris\u2028running", "a man runs"], "b": ["a dog barks", "a dog\nis barking"]}
    cands = {"a": "a man is running", "b": "a dog\u2029barks"}
    result = score_captions(refs, cands, tokenizer="ptb", meteor=False)
    flat_refs = {v: [" ".join(c.split()) for c in caps] for v, caps in refs.items()}
    flat = score_captions(
        flat_refs, {v: " ".join(c.split()) for v, c in cands.items()}, tokenizer="python", meteor=False
    )
    assert result.tokenizer == "ptb"
    assert result.per_video == flat.per_video
    assert result.per_video["a"]["BLEU-4"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    ("references", "candidates", "match"),
    [
        ({}, {}, r"expected at least one video, got empty references"),
        ([("a", ["x"])], {"a": "x"}, r"references must be a mapping video id -> captions, got list"),
        (
            {"a": ["x"], "b": ["y"], "c": ["z"]},
            {"a": "x", "d": "w"},
            r"candidates must have the video ids of references, got 2 missing \['b', 'c'\] and 1 extra \['d'\]",
        ),
        ({"a": []}, {"a": "x"}, r"references\['a'\]: expected at least one caption, got none"),
        ({"a": "a dog"}, {"a": "x"}, r"references\['a'\] must be a list of captions, got a str"),
        ({"a": ["a dog", 3]}, {"a": "x"}, r"references\['a'\]\[1\] must be a str, got int 3"),
        ({"a": ["a dog"]}, {"a": ["a dog"]}, r"candidates\['a'\] must be a str, got list"),
        ({"a": ["a dog"]}, {"a": None}, r"candidates\['a'\] must be a str, got NoneType None"),
    ],
)
def test_bad_inputs_raise(references: Any, candidates: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        score_captions(references, candidates, tokenizer="python", meteor=False)


def test_bad_tokenizer_raises() -> None:
    with pytest.raises(ValueError, match=r"tokenizer must be one of \['auto', 'ptb', 'python'\], got 'nltk'"):
        score_captions({"a": ["a dog"]}, {"a": "a dog"}, tokenizer="nltk", meteor=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("A man's riding a horse, isn't he?", "a man 's riding a horse is n't he"),
        (
            "People dance (on a stage) at 7 a.m. in the U.S.!",
            "people dance -lrb- on a stage -rrb- at 7 a.m. in the u.s.",
        ),
        ("Mr. Smith cannot cut 1/2 of it at 3:30, wow!!!", "mr. smith can not cut 1/2 of it at 3:30 wow !!!"),
        ("AT&T, at&t and O'Neil's rock'n'roll", "at&t at & t and o'neil 's rock 'n' roll"),
        ("  ", ""),
    ],
)
def test_python_tokenizer_values(caption: str, expected: str) -> None:
    assert ptb_tokenize_python(caption) == expected


@needs_java
def test_python_tokenizer_equals_java_ptb_on_ordinary_captions() -> None:
    captions = (
        ORDINARY_CAPTIONS + [c for caps in REFERENCES.values() for c in caps] + list(CANDIDATES.values())
    )
    java = _java_tokenize(captions)
    different = [
        (caption, expected, ptb_tokenize_python(caption))
        for caption, expected in zip(captions, java)
        if ptb_tokenize_python(caption) != expected
    ]
    assert not different, "caption, Java PTB, Python:\n" + "\n".join(map(repr, different))


@needs_java
def test_the_java_tokenizer_prints_nothing_unless_it_fails(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert captioning._ptb_tokenize_java(["A man, is playing!", "", "Two dogs."]) == [
        "a man is playing",
        "",
        "two dogs",
    ]
    assert capfd.readouterr().err == "", "the tokenizer's 'PTBTokenizer tokenized ...' line must stay out"

    def failing(self: PTBTokenizer, payload: dict) -> dict:
        os.write(2, b"java says why\n")  # as the Java process writes to the stderr it inherits
        raise RuntimeError("tokenizer died")

    monkeypatch.setattr(PTBTokenizer, "tokenize", failing)
    with pytest.raises(RuntimeError, match="tokenizer died"):
        captioning._ptb_tokenize_java(["a"])
    assert "java says why" in capfd.readouterr().err
