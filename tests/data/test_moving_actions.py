"""Moving digit actions: each action's motion measured from the frames, single frames that carry no class
information, reproducibility, the digit pools and the data module."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lstmvision.data import (
    MOVING_ACTIONS,
    EpochSampler,
    MovingDigitActions,
    MovingDigitActionsDataModule,
    generate_action_clip,
    load_digits,
)

DIGITS = load_digits("train").images
UP, DOWN, LEFT, RIGHT = (-1, 0), (1, 0), (0, -1), (0, 1)  # (dy, dx), y pointing down
TRANSLATIONS = {"left": LEFT, "right": RIGHT, "up": UP, "down": DOWN}
TWO_PART = {
    "right_then_up": (RIGHT, UP),
    "up_then_right": (UP, RIGHT),
    "left_then_down": (LEFT, DOWN),
    "down_then_left": (DOWN, LEFT),
}
REVERSED = {
    "left": "right",
    "up": "down",
    "rotate_clockwise": "rotate_counterclockwise",
    "right_then_up": "down_then_left",
    "up_then_right": "left_then_down",
}


def clips(action: str, n: int, *, seed: int = 0, **kwargs: Any) -> np.ndarray:
    """``n`` clips of ``action`` as ``(n, T, S, S)``."""
    label = MOVING_ACTIONS.index(action)
    rngs = [np.random.default_rng((seed, label, i)) for i in range(n)]
    return np.stack([generate_action_clip(rng, DIGITS, label, **kwargs)[:, 0] for rng in rngs])


# --------------------------------------------------------------------------------------------------
# measurements on a torus-shaped frame
# --------------------------------------------------------------------------------------------------


def circular_centre(frames: np.ndarray) -> np.ndarray:
    """Centre of intensity on the torus, ``(..., S, S) -> (..., 2)`` as (y, x) in [-S/2, S/2).

    Shifts exactly with a wrapped roll of the image, which a plain centre of mass does not."""
    S = frames.shape[-1]
    phase = np.exp(2j * np.pi * np.arange(S) / S)  # (S,)
    along_y = (frames.sum(axis=-1) * phase).sum(axis=-1)  # (...,)
    along_x = (frames.sum(axis=-2) * phase).sum(axis=-1)
    return np.stack([np.angle(along_y), np.angle(along_x)], axis=-1) * S / (2 * np.pi)


def wrap(d: np.ndarray, S: int) -> np.ndarray:
    """Displacements on the torus folded into [-S/2, S/2)."""
    return (d + S / 2) % S - S / 2


def steps(frames: np.ndarray) -> np.ndarray:
    """Frame-to-frame motion of the intensity centre, ``(..., T, S, S) -> (..., T-1, 2)`` (dy, dx)."""
    return wrap(np.diff(circular_centre(frames), axis=-2), frames.shape[-1])


def orientation(frames: np.ndarray) -> np.ndarray:
    """Principal-axis angle (mod pi) of each ``(S, S)`` frame after rolling its centre to the middle.

    With x to the right and y down, the angle grows when the image turns clockwise on screen."""
    S = frames.shape[-1]
    flat = frames.reshape(-1, S, S)
    centre = np.rint(circular_centre(flat)).astype(int)  # (N, 2)
    out = []
    for frame, (cy, cx) in zip(flat, centre):
        frame = np.roll(frame, (S // 2 - cy, S // 2 - cx), axis=(0, 1))  # digit now away from the borders
        y, x = np.mgrid[:S, :S].astype(float)
        mass = frame.sum()
        my, mx = (frame * y).sum() / mass, (frame * x).sum() / mass
        mu20 = (frame * (x - mx) ** 2).sum()
        mu02 = (frame * (y - my) ** 2).sum()
        mu11 = (frame * (x - mx) * (y - my)).sum()
        out.append(0.5 * np.arctan2(2 * mu11, mu20 - mu02))
    return np.array(out).reshape(frames.shape[:-2])


def turns(frames: np.ndarray) -> np.ndarray:
    """Frame-to-frame change of orientation folded into [-pi/2, pi/2), ``(..., T, S, S) -> (..., T-1)``."""
    return (np.diff(orientation(frames), axis=-1) + np.pi / 2) % np.pi - np.pi / 2


# --------------------------------------------------------------------------------------------------
# the generator: each action does what its name says
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("image_size", "seq_length"), [(64, 20), (32, 5), (16, 3)])
def test_clip_shape_dtype_range(image_size: int, seq_length: int) -> None:
    for label in range(len(MOVING_ACTIONS)):
        rng = np.random.default_rng(label)
        clip = generate_action_clip(
            rng, DIGITS, label, image_size=image_size, seq_length=seq_length, speed=1.0, num_distractors=1
        )
        assert clip.shape == (seq_length, 1, image_size, image_size)
        assert clip.dtype == np.float32
        assert clip.min() >= 0.0 and clip.max() <= 1.0
        assert (clip.sum(axis=(1, 2, 3)) > 1.0).all(), "every frame shows a digit"


@pytest.mark.parametrize("image_size", [64, 32])
def test_digit_size_factor_and_proportional_size(image_size: int) -> None:
    """Ink grows with the square of the size: 0.75..1.25 times MNIST size at 64 px, half that at 32 px."""
    digit = DIGITS[:1]
    masses = np.array(
        [
            generate_action_clip(np.random.default_rng(i), digit, 0, image_size=image_size, seq_length=3)[
                0
            ].sum()
            for i in range(100)
        ]
    )
    area = masses / (digit.sum() / 255) / (image_size / 64) ** 2  # (size factor)^2, up to interpolation
    assert 0.75**2 * 0.95 < area.min() < 0.75**2 * 1.1, area.min()
    assert 1.25**2 * 0.9 < area.max() < 1.25**2 * 1.05, area.max()


@pytest.mark.parametrize("action", list(TRANSLATIONS))
def test_translations_move_the_named_way(action: str) -> None:
    frames = clips(action, 30, speed=(1.0, 3.0))  # (n, T, S, S)
    moves = steps(frames)  # (n, T-1, 2)
    direction = np.array(TRANSLATIONS[action])
    along = moves @ direction  # (n, T-1)
    across = moves @ direction[::-1]
    assert np.abs(across).max() < 1e-3, f"{action}: sideways motion up to {np.abs(across).max()} px"
    # whole-pixel positions of a speed in [1, 3] advance 1..3 px every frame
    assert np.allclose(along, np.rint(along), atol=1e-3) and along.min() > 0.99 and along.max() < 3.01
    # every frame is the first frame rolled: a rigid motion, no rotation, no change of size
    shift = np.rint(np.cumsum(moves[0], axis=0)).astype(int)  # (T-1, 2)
    for t, (dy, dx) in enumerate(shift, start=1):
        np.testing.assert_allclose(frames[0, t], np.roll(frames[0, 0], (dy, dx), axis=(0, 1)), atol=1e-6)


@pytest.mark.parametrize(("action", "sign"), [("rotate_clockwise", 1), ("rotate_counterclockwise", -1)])
def test_rotations_turn_the_named_way(action: str, sign: int) -> None:
    frames = clips(action, 30, seq_length=10)  # (n, T, S, S)
    turn = turns(frames) * sign  # positive when turning the named way
    assert (turn > 0).mean() > 0.85, f"{action}: only {(turn > 0).mean():.0%} of steps turn that way"
    # a clip's median turn lies in the range the speed allows: rim speed 1..3 px at radius 7.5..12.5 px
    median = np.median(turn, axis=1)
    assert (median > 0.04).all() and (median < 0.5).all(), median
    # the digit turns in place: its box centre does not travel (the ink centre circles a little)
    drift = np.abs(wrap(circular_centre(frames[:, -1]) - circular_centre(frames[:, 0]), 64))
    assert drift.max() < 8.0, drift.max()
    still = turns(clips("left", 10, seq_length=10))
    assert np.abs(still).max() < 1e-6


@pytest.mark.parametrize("action", list(TWO_PART))
def test_two_part_actions_switch_once_in_the_middle_third(action: str) -> None:
    first, second = (np.array(d) for d in TWO_PART[action])
    T = 20
    moves = steps(clips(action, 40, seq_length=T))  # (n, T-1, 2)
    switches = []
    for clip_moves in moves:
        pure_first = np.isclose(clip_moves @ first[::-1], 0, atol=1e-3) & (clip_moves @ first > 0.99)
        pure_second = np.isclose(clip_moves @ second[::-1], 0, atol=1e-3) & (clip_moves @ second > 0.99)
        kinds = np.where(pure_first, 1, np.where(pure_second, 2, 0))  # 0: the step holding the switch
        assert (np.diff(kinds[kinds > 0]) >= 0).all(), f"{action}: motions out of order {kinds}"
        assert (kinds == 0).sum() <= 1, f"{action}: more than one mixed step {kinds}"
        switches.append(int((kinds == 1).sum()))  # frames before the switch
    switches_arr = np.array(switches)
    assert switches_arr.min() >= (T - 1) / 3 - 1 and switches_arr.max() <= 2 * (T - 1) / 3, switches
    assert switches_arr.max() - switches_arr.min() >= 3, f"switch time should vary, got {switches}"


def test_single_part_actions_have_no_switch() -> None:
    """``right`` moves right throughout, so the first third cannot tell it from ``right_then_up``."""
    right = steps(clips("right", 20, seq_length=20))  # (n, T-1, 2)
    right_then_up = steps(clips("right_then_up", 20, seq_length=20))
    for moves in (right[:, :6], right_then_up[:, :6], right[:, 13:]):
        assert np.allclose(moves[..., 0], 0, atol=1e-3) and (moves[..., 1] > 0.99).all()
    assert (right_then_up[:, 13:, 0] < -0.99).all(), "the last third of right_then_up moves up"


# --------------------------------------------------------------------------------------------------
# single frames carry no class information
# --------------------------------------------------------------------------------------------------


def test_first_frame_is_the_same_for_every_action() -> None:
    """Every action makes the same random draws, so one random state gives one first frame."""
    for seed in range(5):
        first = [
            generate_action_clip(np.random.default_rng(seed), DIGITS, label, num_distractors=2)[0]
            for label in range(len(MOVING_ACTIONS))
        ]
        for label, frame in enumerate(first[1:], start=1):
            np.testing.assert_array_equal(frame, first[0], err_msg=MOVING_ACTIONS[label])


def frame_statistics(frames: np.ndarray) -> np.ndarray:
    """Per-frame numbers a single-frame classifier could use, ``(n, S, S) -> (n, 7)``: where the digit is
    (as a point on each circle of the torus), how much ink it has, how it is turned."""
    S = frames.shape[-1]
    angle = 2 * np.pi * circular_centre(frames) / S  # (n, 2)
    turned = 2 * orientation(frames)  # (n,) the axis angle is defined mod pi
    return np.column_stack(
        [np.cos(angle), np.sin(angle), frames.sum(axis=(-2, -1)) / 100, np.cos(turned), np.sin(turned)]
    )


@pytest.mark.parametrize("frame", [6, 11])
def test_later_frames_are_distributed_alike_for_every_action(frame: int) -> None:
    """Position, ink and orientation of a middle or last frame agree across actions within sampling error
    (a design in which "left" starts on the right, "grow" starts small or rotations start upright fails)."""
    n = 150
    stats = {a: frame_statistics(clips(a, n, seq_length=12, seed=1)[:, frame]) for a in MOVING_ACTIONS}
    for action, own in stats.items():
        rest = np.concatenate([s for a, s in stats.items() if a != action])
        z = (own.mean(0) - rest.mean(0)) / np.sqrt(own.var(0) / len(own) + rest.var(0) / len(rest))
        assert np.abs(z).max() < 4.5, f"{action} frame {frame}: z-scores {np.round(z, 1)}"
    # positions are uniform on the torus: the mean of (cos, sin) of each coordinate is near 0
    pooled = np.concatenate(list(stats.values()))
    assert np.abs(pooled[:, :4].mean(0)).max() < 4.5 / np.sqrt(2 * len(pooled))


def motion_features(frames: np.ndarray) -> np.ndarray:
    """Per-clip motion summary ``(n, T, S, S) -> (n, 5)``: centre displacement over each half, total turn."""
    moves = steps(frames)  # (n, T-1, 2)
    half = moves.shape[1] // 2
    return np.column_stack([moves[:, :half].sum(1), moves[:, half:].sum(1), turns(frames).sum(1)])


@pytest.mark.parametrize(("action", "reverse"), list(REVERSED.items()))
def test_time_reversed_clip_is_distributed_like_the_reverse_action(action: str, reverse: str) -> None:
    n = 60
    backwards = motion_features(clips(action, n, seq_length=11, seed=2)[:, ::-1])
    forwards = motion_features(clips(reverse, n, seq_length=11, seed=3))
    z = (backwards.mean(0) - forwards.mean(0)) / np.sqrt((backwards.var(0) + forwards.var(0)) / n + 1e-12)
    assert np.abs(z).max() < 4.5, f"{action} reversed vs {reverse}: z-scores {np.round(z, 1)}"
    # and the reversed clip does not look like the action itself (the test can fail)
    same = motion_features(clips(action, n, seq_length=11, seed=3))
    z_same = (backwards.mean(0) - same.mean(0)) / np.sqrt((backwards.var(0) + same.var(0)) / n + 1e-12)
    assert np.abs(z_same).max() > 10


def test_distractors_leave_the_actor_unchanged() -> None:
    for seed in range(5):
        alone = generate_action_clip(np.random.default_rng(seed), DIGITS, 4)
        crowded = generate_action_clip(np.random.default_rng(seed), DIGITS, 4, num_distractors=2)
        assert (crowded >= alone).all(), "overlapping digits keep the brighter pixel"
        extra = (crowded - alone)[:, 0]  # (T, S, S) where a distractor is brighter
        assert (extra.sum(axis=(1, 2)) > 5).all()
        assert np.abs(np.diff(extra, axis=0)).sum() > 10, "distractors move"


def test_distractors_wander_without_a_steady_direction() -> None:
    """A distractor makes a random walk: it moves every frame, but its net travel grows like sqrt(T),
    whereas the actor's grows like T."""
    T, n, speed = 16, 30, 2.0
    walked, travelled = [], []
    for i in range(n):
        # the actor turns in place, so what the distractor adds is tracked by the centre of the extra ink
        alone = generate_action_clip(np.random.default_rng(i), DIGITS, 4, seq_length=T, speed=speed)
        crowded = generate_action_clip(
            np.random.default_rng(i), DIGITS, 4, num_distractors=1, seq_length=T, speed=speed
        )
        walked.append(np.linalg.norm(steps((crowded - alone)[:, 0]).sum(0)))
        straight = generate_action_clip(np.random.default_rng(i), DIGITS, 1, seq_length=T, speed=speed)
        travelled.append(np.linalg.norm(steps(straight[:, 0]).sum(0)))
    assert np.allclose(travelled, speed * (T - 1), atol=1.0)
    # E|walk| = speed * sqrt(pi (T-1) / 4) ~ 6.9 px here
    assert 3.0 < np.median(walked) < 12.0, np.median(walked)


# --------------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------------


def test_dataset_items_labels_and_reproducibility() -> None:
    ds = MovingDigitActions(25, seq_length=5, seed=3, stream=1)
    clip, label = ds[7]
    assert clip.shape == (5, 1, 64, 64) and clip.dtype == torch.float32
    assert label.dtype == torch.int64 and label.shape == () and int(label) == 7
    labels = [int(ds[i][1]) for i in range(25)]
    assert labels == [i % 10 for i in range(25)]
    assert np.bincount(labels).max() - np.bincount(labels).min() <= 1

    again = MovingDigitActions(25, seq_length=5, seed=3, stream=1)
    for i in (0, 7, 24):
        assert torch.equal(ds[i][0], again[i][0])
    assert torch.equal(ds[25 + 7][0], torch.from_numpy(ds.generate(7, epoch=1)[0]))
    assert not torch.equal(ds[7][0], ds[25 + 7][0]), "another epoch gives another clip"
    assert int(ds[25 + 7][1]) == 7, "the label depends on the index within the epoch"
    assert not torch.equal(ds[7][0], MovingDigitActions(25, seq_length=5, seed=3, stream=2)[7][0])
    assert not torch.equal(ds[7][0], MovingDigitActions(25, seq_length=5, seed=4, stream=1)[7][0])
    with pytest.raises(IndexError, match="index and epoch must be >= 0"):
        ds.generate(-1)


def test_dataset_class_subset_maps_labels_to_named_actions() -> None:
    ds = MovingDigitActions(4, seq_length=6, classes=["up", "rotate_clockwise"])
    assert ds.class_names == ["up", "rotate_clockwise"] and ds.num_classes == 2
    clip, label = ds[0]
    assert int(label) == 0
    moves = steps(clip[:, 0].numpy())
    assert np.allclose(moves[:, 1], 0, atol=1e-3) and (moves[:, 0] < -0.99).all(), "label 0 moves up"
    clip, label = ds[1]
    assert int(label) == 1 and (turns(clip[:, 0].numpy()) > 0).mean() > 0.5, "label 1 turns clockwise"


def write_idx_pool(directory: Path, split_prefix: str, value: int, n: int = 10) -> None:
    """MNIST idx images and labels files whose digits are all ``value``."""
    images = np.full((n, 28, 28), value, dtype=np.uint8)
    header = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images.shape)
    (directory / f"{split_prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
    label_header = (2049).to_bytes(4, "big") + n.to_bytes(4, "big")
    (directory / f"{split_prefix}-labels-idx1-ubyte").write_bytes(label_header + bytes(n))


def test_val_and_test_sets_draw_from_the_test_pool(tmp_path: Path) -> None:
    write_idx_pool(tmp_path, "train", 0)  # blank training digits
    write_idx_pool(tmp_path, "t10k", 255)  # solid test digits
    dm = MovingDigitActionsDataModule(
        seq_length=4, train_size=6, val_size=6, test_size=6, batch_size=6, mnist_path=str(tmp_path)
    )
    dm.setup()
    train_clips, _ = next(iter(dm.train_dataloader()))
    assert train_clips.max() == 0
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        held_out, _ = next(iter(loader))
        assert (held_out.sum(dim=(2, 3, 4)) > 100).all()


# --------------------------------------------------------------------------------------------------
# data module
# --------------------------------------------------------------------------------------------------


def test_data_module_batches_epochs_and_class_names() -> None:
    dm = MovingDigitActionsDataModule(
        image_size=32, seq_length=4, train_size=8, val_size=6, test_size=5, batch_size=4, seed=1
    )
    assert dm.class_names == list(MOVING_ACTIONS) and dm.num_classes == 10
    with pytest.raises(RuntimeError, match="call setup"):
        dm.train_dataloader()
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler)
    clips_, labels = next(iter(loader))
    assert clips_.shape == (4, 4, 1, 32, 32) and clips_.dtype == torch.float32
    assert labels.shape == (4,) and labels.dtype == torch.int64 and labels.tolist() == [0, 1, 2, 3]
    epoch0 = torch.cat([c for c, _ in loader])
    epoch1 = torch.cat([c for c, _ in loader])
    assert epoch0.shape == (8, 4, 1, 32, 32) and not torch.equal(epoch0, epoch1), "fresh clips every epoch"
    val0 = torch.cat([c for c, _ in dm.val_dataloader()])
    val1 = torch.cat([c for c, _ in dm.val_dataloader()])
    assert val0.shape[0] == 6 and torch.equal(val0, val1), "validation clips are fixed"
    dm.setup("predict")
    predicted = torch.cat([c for c, _ in dm.predict_dataloader()])
    tested = torch.cat([c for c, _ in dm.test_dataloader()])
    assert predicted.shape[0] == 5 and torch.equal(predicted, tested)
    assert not torch.equal(val0[:5], tested), "validation and test sets differ"


def test_data_module_class_subset() -> None:
    dm = MovingDigitActionsDataModule(classes=["down", "left", "rotate_counterclockwise"], val_size=3)
    assert dm.class_names == ["down", "left", "rotate_counterclockwise"] and dm.num_classes == 3
    dm.setup("validate")
    assert dm.datasets["val"].class_names == dm.class_names
    val = dm.datasets["val"]
    assert sorted(int(val[i][1]) for i in range(len(val))) == [0, 1, 2]


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

CLIP_ERRORS = [
    ({"image_size": 8}, "image_size must be >= 16, got 8"),
    ({"seq_length": 2}, "seq_length must be >= 3 .*got 2"),
    ({"num_distractors": -1}, "num_distractors must be >= 0, got -1"),
    ({"speed": 0.0}, "speed must be > 0 .*got 0.0"),
    ({"speed": (0.0, 2.0)}, r"speed must be > 0 .*got \(0.0, 2.0\)"),
    ({"speed": (3.0, 1.0)}, r"speed must be .*\(low, high\).*got \(3.0, 1.0\)"),
    ({"speed": (1.0, 9.0)}, r"speed must be at most image_size / 8 = 8 .*got \(1.0, 9.0\)"),
    ({"image_size": 32, "speed": 5.0}, "speed must be at most image_size / 8 = 4 .*got 5.0"),
]
CLASS_ERRORS = [
    ({"classes": ["left", "jump"]}, r"unknown class names \['jump'\]; known classes are \['left', 'right'"),
    ({"classes": "left"}, "classes must be a sequence of class names, got the string 'left'"),
    ({"classes": ["up", "down", "up"]}, r"must not repeat a name, got \['up', 'down', 'up'\]"),
    ({"classes": ["up"]}, r"at least 2 actions, got \['up'\]"),
    ({"classes": []}, r"at least 2 actions, got \[\]"),
]


@pytest.mark.parametrize(("kwargs", "message"), CLIP_ERRORS)
def test_generator_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_action_clip(np.random.default_rng(0), DIGITS, 0, **kwargs)


@pytest.mark.parametrize(
    ("digits", "label", "message"),
    [
        (DIGITS, 10, r"label must be in \[0, 9\] \(MOVING_ACTIONS\), got 10"),
        (DIGITS, -1, r"label must be in \[0, 9\] .*got -1"),
        (DIGITS[:, :20], 0, r"digits must be a non-empty \(N, 28, 28\) array, got shape \(4000, 20, 28\)"),
        (DIGITS[:0], 0, r"non-empty .*got shape \(0, 28, 28\)"),
        (DIGITS.astype(np.float32), 0, "digits must be uint8 .*got dtype float32"),
    ],
)
def test_generator_rejects_bad_digits_and_labels(digits: np.ndarray, label: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_action_clip(np.random.default_rng(0), digits, label)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *CLIP_ERRORS,
        *CLASS_ERRORS,
        ({"length": 0}, "length must be >= 1, got 0"),
        ({"seed": -1}, r"seed must be >= 0 \(numpy SeedSequence\), got -1"),
        ({"stream": -2}, r"stream must be >= 0 \(numpy SeedSequence\), got -2"),
        ({"split": "val"}, "split must be 'train' or 'test', got 'val'"),
    ],
)
def test_dataset_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    kwargs = {"length": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        MovingDigitActions(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *CLIP_ERRORS,
        *CLASS_ERRORS,
        *[
            ({name: 0}, f"MovingDigitActionsDataModule: {name} must be >= 1, got 0")
            for name in ("train_size", "val_size", "test_size", "batch_size")
        ],
        ({"num_workers": -1}, "MovingDigitActionsDataModule: num_workers must be >= 0, got -1"),
        ({"seed": -3}, "MovingDigitActionsDataModule: seed must be >= 0, got -3"),
    ],
)
def test_data_module_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MovingDigitActionsDataModule(**kwargs)


def test_data_module_rejects_an_unknown_stage() -> None:
    dm = MovingDigitActionsDataModule()
    with pytest.raises(
        ValueError, match=re.escape("stage must be one of ['fit', 'predict', 'test', 'validate']")
    ):
        dm.setup("train")
