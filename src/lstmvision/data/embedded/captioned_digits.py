"""Captioned digits: an embedded video-captioning set rendered from real MNIST digits.

Each clip shows one or two MNIST digits inside a square frame, each making one of the motions in
:data:`DIGIT_MOTIONS` (drawn at random per digit), and comes with several reference sentences that say
which digit does what, e.g. ``"the digit 7 moves up and down while the digit 2 moves left and right"``
and ``"a 2 bounces horizontally and a 7 goes up and down"``. The first reference of every clip is its
canonical sentence (a natural training target); the others are paraphrases drawn from a small grammar.

Digits are named by their numeral (``"7"``), never by a word; the article before a numeral follows
its spoken form (``"an 8"``). Two digits of one clip always have different labels, so every sentence
names each digit unambiguously.

Item ``k`` of :class:`CaptionedDigits` is reproducible from ``(seed, stream, epoch, index)`` as in
:class:`~lstmvision.data.GeneratedMovingMNIST`. The random numbers are drawn in an order that puts
every pixel last: :meth:`CaptionedDigits.captions` returns the sentences of a clip without rendering it.

docs/captioned_digits.md gives the rendering, the grammar and an example.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from lstmvision.data.checks import check_generated_set
from lstmvision.data.embedded.digits import DIGIT_SIZE, MNISTDigits, Split, load_digits

__all__ = [
    "DIGIT_MOTIONS",
    "MAX_REFERENCES",
    "CaptionedClipInfo",
    "CaptionedDigits",
    "generate_captioned_clip",
]

DIGIT_MOTIONS: dict[str, str] = {
    "up_down": "moves up and down",
    "left_right": "moves left and right",
    "diagonal": "moves diagonally",
    "still": "stays still",
    "circle": "moves in a circle",
}
"""Motion names and their canonical verb phrases (the phrase used in the first reference)."""

# Verb phrases per motion; the first is the canonical one. Every phrase is true of the rendered motion.
_VERB_PHRASES: dict[str, tuple[str, ...]] = {
    "up_down": (
        "moves up and down",
        "goes up and down",
        "bounces up and down",
        "bounces vertically",
        "moves vertically",
    ),
    "left_right": (
        "moves left and right",
        "goes left and right",
        "bounces left and right",
        "bounces horizontally",
        "moves horizontally",
    ),
    "diagonal": (
        "moves diagonally",
        "goes diagonally",
        "bounces diagonally",
        "bounces around diagonally",
        "travels diagonally",
    ),
    "still": ("stays still", "does not move", "stays in place", "stands still", "remains still"),
    "circle": (
        "moves in a circle",
        "goes in a circle",
        "goes round in a circle",
        "circles around",
        "travels in a circle",
    ),
}
# Noun phrase templates; "{a}" is the indefinite article that fits the numeral's spoken form.
_NOUN_PHRASES = ("the digit {d}", "{a} {d}", "the {d}", "the number {d}")
_CONJUNCTIONS = ("while", "and", "as")  # the first is canonical
_VERBS_PER_MOTION = 5
_ONE_DIGIT_SENTENCES = len(_NOUN_PHRASES) * _VERBS_PER_MOTION

MAX_REFERENCES = _ONE_DIGIT_SENTENCES
"""Most references per clip: the number of different sentences the grammar has for one digit."""

_MIN_TRAVEL = 12  # pixels of room for the digit box on each axis, so that every motion is visible
_MIN_IMAGE_SIZE = DIGIT_SIZE + _MIN_TRAVEL
_MIN_SEQ_LENGTH = 4  # a circle needs 4 points to show a turn; a bounce is capped at half the room per step
_BOUNCE_FACTOR = (1.0, 2.0)  # a bounce travels this many times the room over the clip
_PARAMS_PER_DIGIT = 10
# Which axes (y, x) of each straight-line motion move; a circle moves both, along another path.
_MOVING_AXES = {
    "up_down": (True, False),
    "left_right": (False, True),
    "diagonal": (True, True),
    "still": (False, False),
}  # uniform numbers drawn per digit for its trajectory, whatever its motion


class CaptionedClipInfo(NamedTuple):
    """What a captioned clip shows, one entry per digit in the order of the canonical sentence.

    ``indices`` index the digit pool, ``labels`` are the MNIST labels, ``motions`` keys of
    :data:`DIGIT_MOTIONS`, and ``corners`` the integer top-left corners ``(num_digits, T, 2)`` as
    (y, x) of each digit's 28x28 box in every frame.
    """

    indices: tuple[int, ...]
    labels: tuple[int, ...]
    motions: tuple[str, ...]
    corners: np.ndarray


def _check_args(
    image_size: int,
    seq_length: int,
    num_digits: int | Sequence[int],
    motions: Sequence[str] | None,
    num_references: int,
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Check the generator's arguments; return the allowed digit counts and motions."""
    if image_size < _MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be >= {_MIN_IMAGE_SIZE} (the {DIGIT_SIZE}-pixel digit plus {_MIN_TRAVEL} "
            f"pixels of room to move), got {image_size}"
        )
    if seq_length < _MIN_SEQ_LENGTH:
        raise ValueError(
            f"seq_length must be >= {_MIN_SEQ_LENGTH} (a motion must be visible), got {seq_length}"
        )
    counts = (num_digits,) if isinstance(num_digits, int) else tuple(num_digits)
    if not counts or any(count not in (1, 2) for count in counts):
        raise ValueError(f"num_digits must be 1, 2 or a non-empty sequence of them, got {num_digits!r}")
    if motions is None:
        names = tuple(DIGIT_MOTIONS)
    else:
        if isinstance(motions, str):
            raise ValueError(f"motions must be a sequence of motion names, got the string {motions!r}")
        names = tuple(motions)
        unknown = [name for name in names if name not in DIGIT_MOTIONS]
        if unknown:
            raise ValueError(f"motions: unknown names {unknown}; known motions are {list(DIGIT_MOTIONS)}")
        if not names or len(set(names)) != len(names):
            raise ValueError(f"motions must name at least one motion, each once, got {list(names)}")
    if not 1 <= num_references <= MAX_REFERENCES:
        raise ValueError(f"num_references must be in [1, {MAX_REFERENCES}], got {num_references}")
    return counts, names


def _check_digits(digits: MNISTDigits) -> None:
    images, labels = digits
    if images.ndim != 3 or images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or images.dtype != np.uint8:
        raise ValueError(f"digits.images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"digits.labels must be shaped ({len(images)},), got {labels.shape}")
    if len(np.unique(labels)) < 2:
        raise ValueError("digits must hold at least two different labels (two digits of a clip differ)")


def _trajectories(params: np.ndarray, motions: Sequence[str], image_size: int, seq_length: int) -> np.ndarray:
    """Integer top-left corners ``(D, T, 2)`` as (y, x) from uniform numbers ``params (D, 10)``.

    A bounce moves at a constant speed on its axis, reflected at the borders, and covers 1 to 2 times
    the room over the clip (at most half the room per frame, so the reflection is not aliased away):
    it therefore travels the whole room, or turns at least once. A circle makes exactly one turn over
    the clip at a radius between a quarter and a half of the room.
    """
    travel = float(image_size - DIGIT_SIZE)  # room for the box's top-left corner on each axis
    T = seq_length
    t = np.arange(T, dtype=np.float64)  # (T,)
    corners = np.empty((len(motions), T, 2), dtype=np.float64)
    for i, motion in enumerate(motions):
        start, factor, sign, circle = params[i, 0:2], params[i, 2:4], params[i, 4:6], params[i, 6:10]
        low, high = _BOUNCE_FACTOR
        speed = np.minimum((low + (high - low) * factor) * travel / (T - 1), travel / 2)  # (2,) px/frame
        velocity = np.where(sign < 0.5, -speed, speed)  # (2,)
        moving = _MOVING_AXES.get(motion)
        if moving is not None:
            free = travel * start + np.where(moving, velocity, 0.0) * t[:, None]  # (T, 2)
            # reflection in closed form: a triangle wave of period 2*travel folds the free line
            corners[i] = travel - np.abs(travel - np.mod(free, 2.0 * travel))
        else:  # circle
            radius = travel * (0.25 + 0.25 * circle[0])
            centre = radius + (travel - 2 * radius) * circle[1:3]  # (2,) keeps the circle in the room
            turn = 2 * np.pi / T * (1.0 if circle[3] < 0.5 else -1.0)  # one full turn over T frames
            phase = 2 * np.pi * start[0] + turn * t  # (T,)
            corners[i] = centre + radius * np.stack([np.sin(phase), np.cos(phase)], axis=1)
    return np.clip(np.rint(corners), 0, travel).astype(np.intp)


def _noun(template: str, label: int) -> str:
    article = "an" if label == 8 else "a"  # numerals are read aloud: "an 8", "a 7"
    return template.format(a=article, d=label)


def _sentence(labels: Sequence[int], motions: Sequence[str], code: int) -> str:
    """The sentence numbered ``code`` in the mixed-radix enumeration of the grammar; 0 is canonical.

    Digits: noun form (4) x verb of each digit (5 each) x order (2) x conjunction (3).
    """
    code, noun = divmod(code, len(_NOUN_PHRASES))
    verbs = []
    for motion in motions:
        code, verb = divmod(code, _VERBS_PER_MOTION)
        verbs.append(_VERB_PHRASES[motion][verb])
    clauses = [f"{_noun(_NOUN_PHRASES[noun], label)} {verb}" for label, verb in zip(labels, verbs)]
    if len(clauses) == 1:
        return clauses[0]
    swap, conjunction = divmod(code, len(_CONJUNCTIONS))
    first, second = (clauses[1], clauses[0]) if swap else (clauses[0], clauses[1])
    return f"{first} {_CONJUNCTIONS[conjunction]} {second}"


def _num_sentences(num_digits: int) -> int:
    count = len(_NOUN_PHRASES) * _VERBS_PER_MOTION**num_digits
    return count if num_digits == 1 else count * 2 * len(_CONJUNCTIONS)


def _plan(
    rng: np.random.Generator,
    digits: MNISTDigits,
    counts: tuple[int, ...],
    motion_names: tuple[str, ...],
    image_size: int,
    seq_length: int,
    num_references: int,
) -> tuple[list[str], CaptionedClipInfo]:
    """Every random draw of a clip, in a fixed order (digits, motions, trajectories, sentences)."""
    count = counts[int(rng.integers(len(counts)))]
    labels = digits.labels
    first = int(rng.integers(len(labels)))
    chosen = [first]
    if count == 2:
        others = np.flatnonzero(labels != labels[first])  # the second digit has another label
        chosen.append(int(others[rng.integers(len(others))]))
    motions = tuple(motion_names[int(k)] for k in rng.integers(len(motion_names), size=count))
    params = rng.random((count, _PARAMS_PER_DIGIT))  # (D, 10), drawn whatever the motions
    corners = _trajectories(params, motions, image_size, seq_length)  # (D, T, 2)
    clip_labels = tuple(int(labels[k]) for k in chosen)
    # The canonical sentence is code 0; the paraphrases are distinct other codes.
    codes = 1 + rng.choice(_num_sentences(count) - 1, size=num_references - 1, replace=False)
    captions = [_sentence(clip_labels, motions, int(code)) for code in (0, *codes)]
    return captions, CaptionedClipInfo(tuple(chosen), clip_labels, motions, corners)


def _render(images: np.ndarray, info: CaptionedClipInfo, image_size: int) -> np.ndarray:
    """Paste every digit box at its corners; overlapping digits keep the brighter pixel."""
    D, T = info.corners.shape[:2]
    offs = np.arange(DIGIT_SIZE)
    rows = (info.corners[..., 0, None] + offs)[..., :, None]  # (D, T, 28, 1)
    cols = (info.corners[..., 1, None] + offs)[..., None, :]  # (D, T, 1, 28)
    layer = np.arange(D)[:, None, None, None]  # (D, 1, 1, 1)
    time = np.arange(T)[None, :, None, None]  # (1, T, 1, 1)
    canvas = np.zeros((D, T, image_size, image_size), dtype=np.uint8)  # (D, T, H, W)
    canvas[layer, time, rows, cols] = images[list(info.indices)][:, None]  # values (D, 1, 28, 28)
    frames = canvas.max(axis=0).astype(np.float32) / np.float32(255.0)  # (T, H, W)
    return frames[:, None]  # (T, 1, H, W)


def generate_captioned_clip(
    rng: np.random.Generator,
    digits: MNISTDigits,
    *,
    image_size: int = 64,
    seq_length: int = 16,
    num_digits: int | Sequence[int] = (1, 2),
    motions: Sequence[str] | None = None,
    num_references: int = 5,
) -> tuple[np.ndarray, list[str], CaptionedClipInfo]:
    """Render one clip of moving digits and describe it in ``num_references`` sentences.

    The number of digits is drawn uniformly from ``num_digits``; each digit uniformly from the pool
    (the second among the digits whose label differs from the first) and its motion uniformly from
    ``motions``. Motions, for the digit's 28x28 box inside the frame:

    - ``up_down`` / ``left_right``: a bounce on one axis from a uniform start, at a constant speed
      that covers 1 to 2 times the room over the clip, reflected at the borders, so the digit crosses
      the whole room or turns at least once; the other axis stays fixed;
    - ``diagonal``: such a bounce on both axes at once, with independent speeds;
    - ``still``: a fixed uniform position;
    - ``circle``: one full turn over the clip (clockwise or not) at a radius of 1/4 to 1/2 the room.

    Positions are rounded to whole pixels. Random draws, in this order: the digit count, the digits,
    the motions, ten uniform numbers per digit for its trajectory, the paraphrases. No draw depends
    on pixels, so the sentences come without rendering (see :meth:`CaptionedDigits.captions`).

    Args:
        rng: the random source; the clip is a pure function of its state and the arguments.
        digits: the pool (see :func:`~lstmvision.data.load_digits`).
        image_size: frame height and width, >= 40.
        seq_length: frames per clip, >= 4.
        num_digits: 1, 2, or the counts to choose from.
        motions: keys of :data:`DIGIT_MOTIONS` to choose from; ``None`` uses all.
        num_references: sentences per clip, in [1, :data:`MAX_REFERENCES`]; the first is canonical,
            the others are distinct paraphrases (docs/captioned_digits.md gives the grammar).

    Returns:
        ``frames float32 (seq_length, 1, image_size, image_size)`` in [0, 1], the sentences, and a
        :class:`CaptionedClipInfo`.
    """
    counts, names = _check_args(image_size, seq_length, num_digits, motions, num_references)
    _check_digits(digits)
    captions, info = _plan(rng, digits, counts, names, image_size, seq_length, num_references)
    return _render(digits.images, info, image_size), captions, info


class CaptionedDigits(Dataset[tuple[torch.Tensor, list[str], str]]):
    """Captioned clips generated on demand, reproducible from ``(seed, stream, epoch, index)``.

    Item ``k`` is generated with ``np.random.default_rng((seed, stream, epoch, index))`` where
    ``epoch, index = divmod(k, length)``, as in :class:`~lstmvision.data.GeneratedMovingMNIST`:
    :class:`~lstmvision.data.EpochSampler` asks for ``epoch * length + index`` to get fresh clips every
    epoch. The video id names the stream and the index (not the epoch): ``"digits{stream}_{index:06d}"``.

    Args:
        length: clips per epoch.
        split: digit pool, ``"train"`` or ``"test"`` (disjoint, see :func:`~lstmvision.data.load_digits`).
        image_size, seq_length, num_digits, motions, num_references: see
            :func:`generate_captioned_clip`.
        seed: non-negative base seed.
        stream: separates independent sets drawn with the same seed.
        mnist_path: MNIST idx files to draw digits from instead of the shipped asset.

    Shape:
        item: ``(frames float32 (seq_length, 1, image_size, image_size) in [0, 1], captions list of
        num_references str, video id str)``.
    """

    def __init__(
        self,
        length: int,
        *,
        split: Split = "train",
        image_size: int = 64,
        seq_length: int = 16,
        num_digits: int | Sequence[int] = (1, 2),
        motions: Sequence[str] | None = None,
        num_references: int = 5,
        seed: int = 0,
        stream: int = 0,
        mnist_path: str | Path | None = None,
    ) -> None:
        check_generated_set(length, seed=seed, stream=stream)
        self.num_digits, self.motions = _check_args(
            image_size, seq_length, num_digits, motions, num_references
        )
        self.length, self.image_size, self.seq_length = length, image_size, seq_length
        self.num_references, self.seed, self.stream = num_references, seed, stream
        self.digits = load_digits(split, mnist_path)
        _check_digits(self.digits)

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int, epoch: int) -> np.random.Generator:
        if index < 0 or epoch < 0:
            raise IndexError(f"index and epoch must be >= 0, got {index} and {epoch}")
        return np.random.default_rng((self.seed, self.stream, epoch, index))

    def _plan(self, index: int, epoch: int) -> tuple[list[str], CaptionedClipInfo]:
        rng = self._rng(index, epoch)
        return _plan(
            rng,
            self.digits,
            self.num_digits,
            self.motions,
            self.image_size,
            self.seq_length,
            self.num_references,
        )

    def generate(self, index: int, epoch: int = 0) -> tuple[np.ndarray, list[str], CaptionedClipInfo]:
        """Clip ``index`` of ``epoch`` as ``(frames (T, 1, H, W), captions, info)``."""
        captions, info = self._plan(index, epoch)
        return _render(self.digits.images, info, self.image_size), captions, info

    def captions(self, index: int, epoch: int = 0) -> list[str]:
        """The references of clip ``index`` of ``epoch``, without rendering it (microseconds)."""
        return self._plan(index, epoch)[0]

    def info(self, index: int, epoch: int = 0) -> CaptionedClipInfo:
        """What clip ``index`` of ``epoch`` shows, without rendering it."""
        return self._plan(index, epoch)[1]

    def video_id(self, index: int) -> str:
        return f"digits{self.stream}_{index:06d}"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, list[str], str]:
        epoch, item = divmod(int(index), self.length)
        frames, captions, _ = self.generate(item, epoch)
        return torch.from_numpy(frames), captions, self.video_id(item)
