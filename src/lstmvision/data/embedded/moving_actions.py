"""Moving digit actions: an embedded action-recognition set rendered from real MNIST digits.

Each clip shows one MNIST digit (the *actor*) performing one of the motions in :data:`MOVING_ACTIONS`,
optionally among distractor digits that wander at random. The label depends only on the motion and
on the order of its parts, never on what a single frame shows:

- **Every frame has the same distribution under every class.** Whatever the class, frame ``t`` shows a
  digit drawn uniformly from the pool, at a per-clip scale drawn independently of the class, at a
  position uniform over the frame and at an angle uniform on the circle. Classes differ only in how
  position and angle change from frame to frame. This holds exactly because the frame is a torus (a
  digit leaving one border comes back through the opposite one): shifting a uniform position by any
  amount that does not depend on it leaves it uniform, and likewise for the angle. It cannot hold for a
  digit kept inside the frame: the mean position would have to fall during "left" clips and rise
  during "right" clips while being the same for both at the first and at the last frame (for the same
  reason there are no grow/shrink actions: a size cannot wrap without jumping). Every random
  draw is also made for every class, in the same order, so one random state gives the same first
  frame whatever the label.
- **Order matters.** ``right_then_up`` and ``up_then_right`` (and ``left_then_down`` /
  ``down_then_left``) make the same two motions in opposite order, switching at a random time in the
  middle third of the clip. Their first third looks like ``right`` and ``up`` (``left`` and ``down``),
  so accuracy from a prefix of the clip rises with the observed fraction (early activity recognition).
- **Closed under time reversal.** A clip played backwards is, in distribution, a clip of another class
  of the set: ``left`` ↔ ``right``, ``up`` ↔ ``down``, clockwise ↔ counter-clockwise,
  ``right_then_up`` ↔ ``down_then_left``, ``up_then_right`` ↔ ``left_then_down``.

docs/data.md ("Embedded action set") describes the rendering in full. The data module is
:class:`~lstmvision.data.datamodules.moving_actions.MovingDigitActionsDataModule`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lstmvision.data.checks import check_generated_set
from lstmvision.data.embedded.digits import DIGIT_SIZE, Split, load_digits
from lstmvision.data.embedded.moving_mnist import speed_range

__all__ = [
    "MOVING_ACTIONS",
    "MovingDigitActions",
    "action_class_names",
    "check_clip_args",
    "generate_action_clip",
]

MOVING_ACTIONS: tuple[str, ...] = (
    "left",
    "right",
    "up",
    "down",
    "rotate_clockwise",
    "rotate_counterclockwise",
    "right_then_up",
    "up_then_right",
    "left_then_down",
    "down_then_left",
)
"""Names of the actions; the label of an action is its index here."""

# Unit steps as (dy, dx) with y pointing down, as in the image.
_UP, _DOWN, _LEFT, _RIGHT, _STILL = (-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)
# action -> (direction before the switch, direction after it, spin); spin +1 turns clockwise on screen.
# A single motion repeats its direction, so the switch changes nothing.
_MOTIONS: dict[str, tuple[tuple[int, int], tuple[int, int], int]] = {
    "left": (_LEFT, _LEFT, 0),
    "right": (_RIGHT, _RIGHT, 0),
    "up": (_UP, _UP, 0),
    "down": (_DOWN, _DOWN, 0),
    "rotate_clockwise": (_STILL, _STILL, 1),
    "rotate_counterclockwise": (_STILL, _STILL, -1),
    "right_then_up": (_RIGHT, _UP, 0),
    "up_then_right": (_UP, _RIGHT, 0),
    "left_then_down": (_LEFT, _DOWN, 0),
    "down_then_left": (_DOWN, _LEFT, 0),
}

_REFERENCE_SIZE = 64  # digits are drawn at their MNIST size in a 64-pixel frame, proportionally otherwise
_SCALE_RANGE = (0.75, 1.25)  # per-digit size factor, log-uniform
_RIM_RADIUS = 10.0  # MNIST ink fits a centred 20x20 box: the rim of a rotating digit is ~10 px out
_MIN_IMAGE_SIZE = 16
_MIN_SEQ_LENGTH = 3  # two motions in order need at least two steps


def check_clip_args(
    image_size: int, seq_length: int, speed: float | tuple[float, float], num_distractors: int
) -> tuple[float, float]:
    """Check the generator's arguments; return the speed range."""
    if image_size < _MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {_MIN_IMAGE_SIZE}, got {image_size}")
    if seq_length < _MIN_SEQ_LENGTH:
        raise ValueError(
            f"seq_length must be >= {_MIN_SEQ_LENGTH} (two motions in order need two steps), got {seq_length}"
        )
    if num_distractors < 0:
        raise ValueError(f"num_distractors must be >= 0, got {num_distractors}")
    low, high = speed_range(speed)
    if low <= 0.0:
        raise ValueError(f"speed must be > 0 pixels per frame (a still digit shows no action), got {speed!r}")
    # A step of 1/8 of the frame keeps a wrapped translation (< half the frame) and a turn (< 90°
    # even for the smallest digit) unambiguous from one frame to the next.
    if high > image_size / 8:
        raise ValueError(
            f"speed must be at most image_size / 8 = {image_size / 8:g} pixels per frame (faster motion "
            f"is ambiguous between frames), got {speed!r}"
        )
    return low, high


def action_class_names(classes: Sequence[str] | None) -> list[str]:
    """The classes of an action set: a subset of :data:`MOVING_ACTIONS` in label order (all for None)."""
    if classes is None:
        return list(MOVING_ACTIONS)
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of class names, got the string {classes!r}")
    names = list(classes)
    unknown = [name for name in names if name not in MOVING_ACTIONS]
    if unknown:
        raise ValueError(f"classes: unknown class names {unknown}; known classes are {list(MOVING_ACTIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"classes must not repeat a name, got {names}")
    if len(names) < 2:
        raise ValueError(f"classes must name at least 2 actions, got {names}")
    return names


@functools.lru_cache(maxsize=64)
def _sample_offsets(patch: int, supersample: int) -> np.ndarray:
    """Sample points of a ``patch``-pixel square, ``supersample``² per pixel, relative to its centre."""
    n = patch * supersample
    offsets = (np.arange(n, dtype=np.float32) + 0.5) / supersample - patch / 2  # (n,)
    offsets.flags.writeable = False
    return offsets


def _render_digit(digit: np.ndarray, angles: np.ndarray, scale: float) -> np.ndarray:
    """The digit turned by each of ``angles`` and magnified ``scale`` times, centred in a square patch.

    Inverse mapping: every output sample point is turned back and scaled back into the digit's own
    coordinates and read there by bilinear interpolation (zero outside the 28x28 box). When the digit
    is shrunk, each pixel averages ``k x k`` samples so that thin strokes do not vanish.

    Args:
        digit: ``uint8 (28, 28)``.
        angles: ``(A,)`` radians; a positive angle turns clockwise on screen (y points down).
        scale: output pixels per digit pixel.

    Returns:
        ``float32 (A, P, P)`` in [0, 1] with ``P`` even, so the digit's centre falls on a pixel corner
        and an unturned digit at scale 1 is copied without blur.
    """
    patch = 2 * math.ceil(DIGIT_SIZE / math.sqrt(2) * scale) + 2  # holds the turned 28x28 box
    supersample = max(1, round(1.0 / scale))  # samples at most ~1.5 digit pixels apart
    offsets = _sample_offsets(patch, supersample)  # (n,)
    y, x = offsets[:, None], offsets[None, :]  # (n, 1), (1, n)
    cos = np.cos(angles).astype(np.float32)[:, None, None]  # (A, 1, 1)
    sin = np.sin(angles).astype(np.float32)[:, None, None]

    # A zero border wide enough that every sample and its lower-right neighbours fall inside: reads
    # need no clipping, and one flat index addresses all four neighbours (2-D fancy indexing with
    # clipped indices was 8x slower).
    reach = patch / math.sqrt(2) / scale  # farthest sample from the digit's centre, in digit pixels
    pad = math.ceil(reach) - 11
    width = DIGIT_SIZE + 2 * pad
    ink = np.pad(digit.astype(np.float32) * np.float32(1.0 / 255.0), pad).reshape(-1)  # (width²,)
    centre = np.float32((DIGIT_SIZE - 1) / 2 + pad)
    inverse = np.float32(1.0 / scale)
    # Turning the screen back by -angle: (x, y) -> (x cos + y sin, -x sin + y cos), then unscale.
    src_x = (x * cos + y * sin) * inverse + centre  # (A, n, n) in padded digit pixels
    src_y = (y * cos - x * sin) * inverse + centre
    fy, fx = np.floor(src_y), np.floor(src_x)
    wy, wx = src_y - fy, src_x - fx  # (A, n, n) bilinear weights of the lower and right neighbours
    corner = fy.astype(np.intp) * width + fx.astype(np.intp)  # (A, n, n) flat index of the upper left
    upper_left, upper_right = ink[corner], ink[corner + 1]
    lower_left, lower_right = ink[corner + width], ink[corner + width + 1]
    upper = upper_left + wx * (upper_right - upper_left)
    lower = lower_left + wx * (lower_right - lower_left)
    samples = upper + wy * (lower - upper)  # (A, n, n)
    if supersample > 1:
        k = supersample
        samples = samples.reshape(len(angles), patch, k, patch, k).mean(axis=(2, 4))  # (A, P, P)
    return samples


def _paste_wrapped(canvas: np.ndarray, patches: np.ndarray, corners: np.ndarray) -> None:
    """Write ``patches`` ``(A, P, P)`` (A = 1 or T) into ``canvas`` ``(T, S, S)`` with top-left corners
    ``corners`` ``(T, 2)``, wrapping around the borders; overlaps keep the brighter pixel."""
    T, S = canvas.shape[0], canvas.shape[-1]
    offs = np.arange(patches.shape[-1])
    rows = (corners[:, 0, None] + offs) % S  # (T, P)
    cols = (corners[:, 1, None] + offs) % S  # (T, P)
    # Flat indices into the canvas (one-dimensional indexing is ~3x faster than three index arrays).
    index = (np.arange(T)[:, None, None] * S + rows[:, :, None]) * S + cols[:, None, :]  # (T, P, P)
    flat = canvas.reshape(-1)
    # P <= S, so no pixel of one frame is written twice.
    flat[index] = np.maximum(flat[index], patches)


def _draw_digits(
    rng: np.random.Generator, pool: int, count: int, image_size: int, low: float, high: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digit indices, size factors, top-left corners (y, x), angles and speeds of ``count`` digits."""
    chosen = rng.integers(pool, size=count)  # (count,)
    log_factor = rng.uniform(math.log(_SCALE_RANGE[0]), math.log(_SCALE_RANGE[1]), size=count)
    scale = (image_size / _REFERENCE_SIZE) * np.exp(log_factor)  # (count,) output px per digit px
    start = rng.uniform(0.0, image_size, size=(count, 2))  # (count, 2)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=count)  # (count,)
    step = rng.uniform(low, high, size=count)  # (count,) pixels per frame
    return chosen, scale, start, angle, step


def generate_action_clip(
    rng: np.random.Generator,
    digits: np.ndarray,
    label: int,
    *,
    image_size: int = 64,
    seq_length: int = 20,
    speed: float | tuple[float, float] = (1.0, 3.0),
    num_distractors: int = 0,
) -> np.ndarray:
    """Render one clip of a digit performing the action ``MOVING_ACTIONS[label]``.

    Each digit (actor first, then the distractors) is drawn uniformly from ``digits`` and gets a size
    factor log-uniform in [0.75, 1.25] (times ``image_size / 64``), a position uniform over the frame,
    an angle uniform on the circle and a speed uniform in ``speed``. Then, over the clip:

    - translations move the actor ``speed`` pixels per frame; positions are rounded to whole pixels;
    - the two-part actions switch direction at a time uniform in the middle third of the clip;
    - rotations turn the actor so that its rim (10 px from the centre at MNIST size) moves ``speed``
      pixels per frame; a positive angle is clockwise on screen;
    - each distractor makes a random walk: every frame a step of its speed in a new uniformly random
      direction, at a fixed angle, so it never shows a steady motion.

    The frame is a torus: a digit crossing a border reappears at the opposite one. This makes the
    distribution of every single frame the same for all actions (see the module docstring).
    Overlapping digits keep the brighter pixel.

    Random draws, in this order and the same for every label: the actor's digit index, size factor,
    position, angle and speed; the switch time; the same five for the distractors; the distractors'
    step directions. One random state therefore gives the same first frame for every label, and the
    same actor whatever ``num_distractors``.

    Args:
        rng: the random source; the clip is a pure function of its state and the arguments.
        digits: ``uint8`` pool shaped ``(N, 28, 28)``.
        label: index into :data:`MOVING_ACTIONS`.
        image_size: frame height and width, >= 16.
        seq_length: frames per clip, >= 3.
        speed: pixels per frame, a number or a ``(low, high)`` range, with ``0 < low <= high <=
            image_size / 8``.
        num_distractors: randomly wandering digits besides the actor.

    Returns:
        ``float32 (seq_length, 1, image_size, image_size)`` in [0, 1].
    """
    low, high = check_clip_args(image_size, seq_length, speed, num_distractors)
    if digits.ndim != 3 or digits.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or len(digits) == 0:
        raise ValueError(f"digits must be a non-empty (N, 28, 28) array, got shape {digits.shape}")
    if digits.dtype != np.uint8:
        raise ValueError(f"digits must be uint8 (pixel values 0-255), got dtype {digits.dtype}")
    if not 0 <= label < len(MOVING_ACTIONS):
        raise ValueError(f"label must be in [0, {len(MOVING_ACTIONS) - 1}] (MOVING_ACTIONS), got {label}")
    S, T, n = image_size, seq_length, 1 + num_distractors

    # The actor's draws come first, so adding distractors leaves the actor unchanged.
    actor = _draw_digits(rng, len(digits), 1, S, low, high)
    switch = rng.uniform((T - 1) / 3, 2 * (T - 1) / 3)
    others = _draw_digits(rng, len(digits), num_distractors, S, low, high)
    chosen, scale, start, angle, step = (np.concatenate(pair) for pair in zip(actor, others))  # (n, ...)
    heading = rng.uniform(0.0, 2.0 * np.pi, size=(num_distractors, T - 1))  # (n-1, T-1)

    t = np.arange(T, dtype=np.float64)  # (T,)
    first, second, spin = _MOTIONS[MOVING_ACTIONS[label]]
    before, after = np.minimum(t, switch), np.maximum(t - switch, 0.0)  # (T,) time in each part
    actor_path = step[0] * (before[:, None] * first + after[:, None] * second)  # (T, 2)
    walk = step[1:, None, None] * np.stack([np.sin(heading), np.cos(heading)], axis=-1)  # (n-1, T-1, 2)
    walk_path = np.concatenate([np.zeros((n - 1, 1, 2)), np.cumsum(walk, axis=1)], axis=1)  # (n-1, T, 2)
    paths = np.concatenate([actor_path[None], walk_path])  # (n, T, 2)
    corners = np.rint(start[:, None] + paths).astype(np.intp) % S  # (n, T, 2)

    frames = np.zeros((T, S, S), dtype=np.float32)
    for i in range(n):  # a handful of digits; frames are rendered together
        if i == 0 and spin:
            turn = spin * step[0] / (_RIM_RADIUS * scale[0])  # radians per frame
            angles = angle[0] + turn * t  # (T,)
        else:
            angles = angle[i : i + 1]  # (1,): the same patch in every frame
        patches = _render_digit(digits[chosen[i]], angles, float(scale[i]))  # (A, P, P)
        _paste_wrapped(frames, patches, corners[i])
    np.clip(frames, 0.0, 1.0, out=frames)  # bilinear sums may pass 1 by a rounding error
    return frames[:, None]  # (T, 1, S, S)


class MovingDigitActions(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Action clips generated on demand, reproducible from ``(seed, stream, epoch, index)``.

    Item ``k`` is generated with ``np.random.default_rng((seed, stream, epoch, index))`` where
    ``epoch, index = divmod(k, length)``, as in :class:`~lstmvision.data.GeneratedMovingMNIST`:
    :class:`~lstmvision.data.EpochSampler` asks for ``epoch * length + index`` to get fresh clips every
    epoch. Its label is ``index % num_classes``: the classes are balanced (counts differ by at most
    one) and consecutive items cycle through them.

    Args:
        length: clips per epoch.
        split: digit pool, ``"train"`` or ``"test"`` (disjoint, see :func:`~lstmvision.data.load_digits`).
        image_size, seq_length, speed, num_distractors: see :func:`generate_action_clip`.
        seed: non-negative base seed.
        stream: separates independent sets drawn with the same seed.
        mnist_path: MNIST idx files to draw digits from instead of the shipped asset.
        classes: the actions to use, a subset of :data:`MOVING_ACTIONS` in the order that defines
            their labels; ``None`` uses all of them.

    Shape:
        item: ``(clip float32 (seq_length, 1, image_size, image_size) in [0, 1], label int64 ())``.
    """

    def __init__(
        self,
        length: int,
        *,
        split: Split = "train",
        image_size: int = 64,
        seq_length: int = 20,
        speed: float | tuple[float, float] = (1.0, 3.0),
        num_distractors: int = 0,
        seed: int = 0,
        stream: int = 0,
        mnist_path: str | Path | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        check_generated_set(length, seed=seed, stream=stream)
        self.speed = check_clip_args(image_size, seq_length, speed, num_distractors)
        self.class_names = action_class_names(classes)
        self.length, self.image_size, self.seq_length = length, image_size, seq_length
        self.num_distractors, self.seed, self.stream = num_distractors, seed, stream
        self.digits = load_digits(split, mnist_path)
        self._actions = [MOVING_ACTIONS.index(name) for name in self.class_names]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return self.length

    def generate(self, index: int, epoch: int = 0) -> tuple[np.ndarray, int]:
        """Clip ``index`` of ``epoch`` as ``(frames (T, 1, H, W), label)``."""
        _, frames, label = self.draw(index, epoch)
        return frames, label

    def draw(self, index: int, epoch: int = 0) -> tuple[np.random.Generator, np.ndarray, int]:
        """As :meth:`generate`, also returning the clip's random state after the clip was drawn, so that
        a set built on these clips (the multi-view set) continues the same stream."""
        if index < 0 or epoch < 0:
            raise IndexError(f"index and epoch must be >= 0, got {index} and {epoch}")
        label = index % self.num_classes
        rng = np.random.default_rng((self.seed, self.stream, epoch, index))
        frames = generate_action_clip(
            rng,
            self.digits.images,
            self._actions[label],
            image_size=self.image_size,
            seq_length=self.seq_length,
            speed=self.speed,
            num_distractors=self.num_distractors,
        )
        return rng, frames, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, item = divmod(int(index), self.length)
        frames, label = self.generate(item, epoch)
        return torch.from_numpy(frames), torch.tensor(label, dtype=torch.int64)
