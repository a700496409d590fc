"""Captioned digits: every motion measured from the frames, sentences that name the right digits and
motions, reproducibility, the digit pools and argument errors."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from lstmvision.data import (
    DIGIT_MOTIONS,
    DIGIT_SIZE,
    MAX_REFERENCES,
    CaptionedDigits,
    generate_captioned_clip,
    load_digits,
)

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = load_digits("train")
S, T = 64, 16
TRAVEL = S - DIGIT_SIZE
# words every paraphrase of a motion contains
MOTION_WORDS = {
    "up_down": "up and down|vertically",
    "left_right": "left and right|horizontally",
    "diagonal": "diagonally",
    "still": "still|not move|in place",
    "circle": "circle",
}


def one_digit_clips(
    motion: str, n: int = 12, **kwargs: int
) -> list[tuple[np.ndarray, list[str], tuple[int, ...]]]:
    out = []
    for i in range(n):
        rng = np.random.default_rng((7, i))
        frames, captions, info = generate_captioned_clip(
            rng, DIGITS, num_digits=1, motions=[motion], **kwargs
        )
        out.append((frames, captions, info.labels))
    return out


def mass_centre(frames: np.ndarray) -> np.ndarray:
    """Centre of intensity per frame, ``(T, 1, S, S) -> (T, 2)`` as (y, x)."""
    image = frames[:, 0].astype(np.float64)  # (T, S, S)
    total = image.sum(axis=(1, 2))  # (T,)
    grid = np.arange(image.shape[-1])
    y = (image.sum(axis=2) * grid).sum(axis=1) / total
    x = (image.sum(axis=1) * grid).sum(axis=1) / total
    return np.stack([y, x], axis=1)


# --------------------------------------------------------------------------------------------------
# the motion is real
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("motion", "moves"),
    [
        ("up_down", (True, False)),
        ("left_right", (False, True)),
        ("diagonal", (True, True)),
        ("still", (False, False)),
    ],
)
def test_straight_motions_move_along_their_axes(motion: str, moves: tuple[bool, bool]) -> None:
    for frames, _, _ in one_digit_clips(motion):
        centre = mass_centre(frames)  # (T, 2)
        spread = np.ptp(centre, axis=0)  # (2,)
        for axis in (0, 1):
            if moves[axis]:
                # a bounce crosses the room or turns, so it spans at least a third of the room
                assert spread[axis] >= TRAVEL / 3, f"{motion}: axis {axis} spans only {spread[axis]:.1f} px"
                steps = np.diff(centre[:, axis])
                assert (np.abs(steps) > 0.5).mean() > 0.5, f"{motion}: axis {axis} mostly still: {steps}"
            else:
                assert spread[axis] < 1e-6, f"{motion}: axis {axis} moved {spread[axis]} px"


def test_bounce_turns_or_crosses_the_room() -> None:
    for frames, _, _ in one_digit_clips("up_down", n=20):
        y = mass_centre(frames)[:, 0]
        steps = np.sign(np.diff(y))
        steps = steps[steps != 0]  # a reflection between two frames can leave the rounded box in place
        turns = int((steps[1:] * steps[:-1] < 0).sum())
        assert turns >= 1 or np.ptp(y) >= TRAVEL - 2, f"no reversal and only {np.ptp(y):.1f} px travelled"


def test_circle_keeps_its_distance_from_a_centre() -> None:
    for frames, _, _ in one_digit_clips("circle"):
        centre = mass_centre(frames)  # (T, 2)
        spread = np.ptp(centre, axis=0)
        assert (spread >= TRAVEL / 2 - 2).all(), f"circle spans only {spread}"
        # one full turn sampled evenly: the mean position is the circle's centre
        radius = np.linalg.norm(centre - centre.mean(axis=0), axis=1)  # (T,)
        assert np.ptp(radius) < 0.15 * radius.mean() + 1.5, f"not a circle: radii {radius.round(1)}"
        # the direction of travel turns the same way all round
        velocity = np.diff(centre, axis=0)  # (T-1, 2)
        cross = velocity[:-1, 0] * velocity[1:, 1] - velocity[:-1, 1] * velocity[1:, 0]
        assert (np.sign(cross) == np.sign(cross.sum())).mean() > 0.8


def test_two_digits_follow_their_recorded_corners() -> None:
    frames, _, info = generate_captioned_clip(np.random.default_rng(3), DIGITS, num_digits=2)
    assert info.corners.shape == (2, T, 2)
    assert info.labels[0] != info.labels[1]
    for t in range(T):
        for k in range(2):
            y, x = info.corners[k, t]
            box = frames[t, 0, y : y + DIGIT_SIZE, x : x + DIGIT_SIZE]
            digit = DIGITS.images[info.indices[k]].astype(np.float32) / 255
            assert (box >= digit - 1e-6).all(), "a digit is missing where its corners say it is"


# --------------------------------------------------------------------------------------------------
# sentences
# --------------------------------------------------------------------------------------------------


def test_captions_name_the_digits_and_motions() -> None:
    ds = CaptionedDigits(60, seq_length=8)
    canonical = re.compile(r"the digit (\d) (.+?)(?: while the digit (\d) (.+))?")
    for index in range(len(ds)):
        captions, info = ds.captions(index), ds.info(index)
        assert len(captions) == 5 and len(set(captions)) == 5
        match = canonical.fullmatch(captions[0])
        assert match is not None, captions[0]
        named = [(int(match[1]), match[2])] + ([(int(match[3]), match[4])] if match[3] else [])
        assert named == [(label, DIGIT_MOTIONS[m]) for label, m in zip(info.labels, info.motions)]
        for caption in captions:
            numerals = sorted(int(d) for d in re.findall(r"\d", caption))
            assert numerals == sorted(info.labels), caption
            for motion in info.motions:
                assert re.search(MOTION_WORDS[motion], caption), f"{motion} missing from {caption!r}"


def test_sentence_grammar() -> None:
    ds = CaptionedDigits(40, num_references=MAX_REFERENCES, num_digits=1)
    for index in range(len(ds)):
        captions = ds.captions(index)
        assert len(set(captions)) == MAX_REFERENCES  # one digit: every sentence of the grammar
        for caption in captions:
            assert caption == caption.strip().lower() and "  " not in caption
            assert re.fullmatch(r"[a-z0-9 ]+", caption), caption
            assert not re.search(r"\ba 8\b|\ban [0-79]\b", caption), caption
    two = CaptionedDigits(40, num_digits=2, num_references=12)
    words = {w for i in range(len(two)) for c in two.captions(i) for w in c.split()}
    assert {"while", "and", "as", "goes", "bounces", "number"} <= words


def test_captions_do_not_depend_on_num_references_prefix() -> None:
    few = CaptionedDigits(10, num_references=1)
    many = CaptionedDigits(10, num_references=8)
    for index in range(10):
        assert few.captions(index) == many.captions(index)[:1]
        assert np.array_equal(few.generate(index)[0], many.generate(index)[0])


# --------------------------------------------------------------------------------------------------
# dataset, reproducibility, pools
# --------------------------------------------------------------------------------------------------


def test_item_layout_and_reproducibility() -> None:
    ds = CaptionedDigits(5, stream=3, image_size=48, seq_length=6)
    frames, captions, video_id = ds[2]
    assert frames.shape == (6, 1, 48, 48) and frames.dtype == torch.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0 and float(frames.max()) > 0.5
    assert video_id == "digits3_000002"
    assert captions == ds.captions(2)
    again = CaptionedDigits(5, stream=3, image_size=48, seq_length=6)[2]
    assert torch.equal(frames, again[0]) and captions == again[1]
    next_epoch = ds[5 + 2]  # epoch 1, same index: same id, another clip
    assert next_epoch[2] == video_id and not torch.equal(frames, next_epoch[0])
    other_stream = CaptionedDigits(5, stream=4, image_size=48, seq_length=6)[2]
    assert not torch.equal(frames, other_stream[0])


def test_train_and_test_pools_are_disjoint() -> None:
    def shown(split: str) -> set[bytes]:
        ds = CaptionedDigits(30, split=split)  # type: ignore[arg-type]
        return {ds.digits.images[k].tobytes() for i in range(len(ds)) for k in ds.info(i).indices}

    train, test = shown("train"), shown("test")
    assert train and test and not train & test
    assert not {d.tobytes() for d in load_digits("train").images} & test


def test_generation_speed() -> None:
    ds = CaptionedDigits(50)
    start = time.perf_counter()
    for index in range(len(ds)):
        ds[index]
    render = (time.perf_counter() - start) / len(ds)
    start = time.perf_counter()
    for index in range(len(ds)):
        ds.captions(index)
    words = (time.perf_counter() - start) / len(ds)
    print(f"render {render * 1e3:.2f} ms/clip, captions only {words * 1e3:.3f} ms/clip")  # not asserted


# --------------------------------------------------------------------------------------------------
# argument errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 39}, "image_size must be >= 40"),
        ({"seq_length": 3}, "seq_length must be >= 4"),
        ({"num_digits": 3}, "num_digits must be 1, 2"),
        ({"num_digits": ()}, "num_digits must be 1, 2"),
        ({"num_digits": (1, 0)}, "num_digits must be 1, 2"),
        ({"motions": ["spin"]}, "unknown names \\['spin'\\]"),
        ({"motions": "still"}, "motions must be a sequence"),
        ({"motions": []}, "at least one motion"),
        ({"motions": ["still", "still"]}, "each once"),
        ({"num_references": 0}, "num_references must be in \\[1, 20\\]"),
        ({"num_references": MAX_REFERENCES + 1}, "num_references must be in"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_captioned_clip(np.random.default_rng(0), DIGITS, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        CaptionedDigits(4, **kwargs)  # type: ignore[arg-type]


def test_bad_dataset_arguments_and_digits() -> None:
    with pytest.raises(ValueError, match="length must be >= 1"):
        CaptionedDigits(0)
    with pytest.raises(ValueError, match="stream must be >= 0"):
        CaptionedDigits(3, stream=-1)
    with pytest.raises(IndexError, match="index and epoch must be >= 0"):
        CaptionedDigits(3).captions(-1)
    same_label = DIGITS._replace(labels=np.zeros_like(DIGITS.labels))
    with pytest.raises(ValueError, match="two different labels"):
        generate_captioned_clip(np.random.default_rng(0), same_label)
    with pytest.raises(ValueError, match="uint8 \\(N, 28, 28\\)"):
        generate_captioned_clip(np.random.default_rng(0), DIGITS._replace(images=DIGITS.images[:, :20]))
