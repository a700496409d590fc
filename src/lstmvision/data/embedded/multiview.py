"""Multi-view digit actions: an embedded multi-view recognition set rendered from real MNIST digits.

One scene — a digit performing one of :data:`~lstmvision.data.MOVING_ACTIONS` on a wrapping canvas
(:func:`~lstmvision.data.generate_action_clip`) — is filmed by V fixed cameras at once. Each camera has
its own rotation, zoom and part of the scene it looks at (its crop), so the same motion runs in a
different direction, at a different size and through a different window in every view. Each view is
also blocked, for a random stretch of every clip, by its own occluder: a screen of fresh noise that
hides the whole view. The stretches are drawn independently per view, except that every frame is
left visible in at least one view.

**One view alone is ambiguous, all views together are not.** An occluder hides about half of its
view's frames (``occlusion``), so a single camera often misses the first or the second part of a
two-part action (``right_then_up`` seen only after its switch looks like ``up``) while the views
together see every frame. A model must therefore learn, per view, when to trust it — the
per-perspective gates of MP-LSTM (:mod:`lstmvision.cells.mplstm`) are built for this.

docs/mp_lstm.md ("Embedded multi-view set") describes the rendering and the measured accuracies. The data
module is :class:`~lstmvision.data.datamodules.multiview_actions.MultiViewDigitActionsDataModule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from lstmvision.data.checks import check_generated_set
from lstmvision.data.embedded.digits import Split
from lstmvision.data.embedded.moving_actions import MOVING_ACTIONS, MovingDigitActions

__all__ = [
    "SCENE_MARGIN",
    "TRANSLATION_ACTIONS",
    "CameraView",
    "MultiViewDigitActions",
    "camera_views",
    "check_level",
    "check_occlusion",
    "render_views",
]

TRANSLATION_ACTIONS: tuple[str, ...] = tuple(name for name in MOVING_ACTIONS if "rotate" not in name)
"""The default classes: the eight actions made of translations (single and two-part)."""

_ZOOM_RANGE = (0.85, 1.15)  # scene pixels per view pixel, log-uniform per camera
SCENE_MARGIN = 1.25
"""The scene is this much wider than a view: each camera sees about 2/3 of it."""


class CameraView(NamedTuple):
    """One fixed camera: it sees the scene turned by ``angle`` (radians, clockwise on screen),
    ``zoom`` scene pixels per view pixel, centred on the scene point ``centre`` (y, x)."""

    angle: float
    zoom: float
    centre: tuple[float, float]


def camera_views(num_views: int, scene_size: int, seed: int = 0) -> list[CameraView]:
    """The ``num_views`` cameras of a data set: angles spread evenly around the circle from a random
    offset, zooms log-uniform in [0.85, 1.15], centres uniform over the scene; a function of ``seed``."""
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    rng = np.random.default_rng((seed, 7919))  # 7919 keeps the cameras apart from the clips' streams
    offset = rng.uniform(0.0, 2.0 * math.pi)
    zooms = np.exp(rng.uniform(math.log(_ZOOM_RANGE[0]), math.log(_ZOOM_RANGE[1]), size=num_views))
    centres = rng.uniform(0.0, scene_size, size=(num_views, 2))
    return [
        CameraView(
            angle=float((offset + 2.0 * math.pi * k / num_views) % (2.0 * math.pi)),
            zoom=float(zooms[k]),
            centre=(float(centres[k, 0]), float(centres[k, 1])),
        )
        for k in range(num_views)
    ]


def _view_coordinates(view: CameraView, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates (y, x), each ``(S, S)``, that the view's pixel centres look at."""
    offsets = (np.arange(image_size, dtype=np.float64) + 0.5 - image_size / 2) * view.zoom
    v, u = offsets[:, None], offsets[None, :]  # (S, 1) rows, (1, S) columns of the view
    cos, sin = math.cos(view.angle), math.sin(view.angle)
    # the view is the scene turned by -angle: a view pixel (u, v) comes from the scene point turned by +angle
    y = view.centre[0] + u * sin + v * cos
    x = view.centre[1] + u * cos - v * sin
    return y, x


def render_views(scene: np.ndarray, views: Sequence[CameraView], image_size: int) -> np.ndarray:
    """What each camera sees of a wrapping scene, by bilinear interpolation.

    Args:
        scene: ``float32 (T, N, N)``, a torus (coordinates wrap at ``N``).
        views: the cameras.
        image_size: height and width of every view.

    Returns:
        ``float32 (V, T, image_size, image_size)``.
    """
    T, N = scene.shape[0], scene.shape[-1]
    flat = scene.reshape(T, N * N)
    out = np.empty((len(views), T, image_size, image_size), dtype=np.float32)
    for k, view in enumerate(views):
        y, x = _view_coordinates(view, image_size)
        y0, x0 = np.floor(y), np.floor(x)
        wy, wx = (y - y0).astype(np.float32), (x - x0).astype(np.float32)
        r0, c0 = y0.astype(np.intp) % N, x0.astype(np.intp) % N
        r1, c1 = (r0 + 1) % N, (c0 + 1) % N
        top = flat[:, r0 * N + c0] * (1 - wx) + flat[:, r0 * N + c1] * wx  # (T, S, S)
        bottom = flat[:, r1 * N + c0] * (1 - wx) + flat[:, r1 * N + c1] * wx
        out[k] = top * (1 - wy) + bottom * wy
    return out


def _occlusion(rng: np.random.Generator, V: int, T: int, occlusion: tuple[float, float]) -> np.ndarray:
    """``bool (V, T)``: each view hidden over one stretch of ``occlusion`` (a fraction range) of the frames;
    a frame hidden in every view is given back to one view drawn at random, so no frame is lost."""
    lengths = np.rint(rng.uniform(occlusion[0], occlusion[1], size=V) * T).astype(np.intp)  # (V,)
    starts = rng.integers(0, T - lengths + 1)  # (V,)
    t = np.arange(T)
    hidden = (t >= starts[:, None]) & (t < (starts + lengths)[:, None])  # (V, T)
    rescue = rng.integers(V, size=T)  # (T,) drawn always, so the stream does not depend on the overlap
    all_hidden = hidden.all(axis=0)
    hidden[rescue[all_hidden], t[all_hidden]] = False
    return hidden


class MultiViewDigitActions(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Multi-view action clips generated on demand, reproducible from ``(seed, stream, epoch, index)``.

    Item ``k`` is generated with ``np.random.default_rng((seed, stream, epoch, index))`` where ``epoch,
    index = divmod(k, length)`` (see :class:`~lstmvision.data.EpochSampler`); its label is ``index %
    num_classes``. The scene is rendered by :func:`~lstmvision.data.generate_action_clip` on a canvas
    1.25 times the view size, then filmed by the cameras of :func:`camera_views` (fixed for the data
    set by ``camera_seed``). Each view is then hidden by a noise screen over one stretch of the clip,
    whose length is a fraction of the clip drawn uniformly from ``occlusion``, at a uniform position,
    independently per view; a frame hidden in every view is shown in one of them.

    Args:
        length: clips per epoch.
        num_views: cameras V >= 1.
        split: digit pool, ``"train"`` or ``"test"``.
        image_size: height and width of a view, >= 16.
        seq_length: frames per clip, >= 3.
        speed: pixels per frame of the scene (see :func:`~lstmvision.data.generate_action_clip`).
        num_distractors: randomly wandering digits in the scene besides the actor.
        occlusion: ``(low, high)`` fraction of each view's frames its occluder hides; ``(0, 0)`` for none.
        classes: actions to use, in label order (default :data:`TRANSLATION_ACTIONS`).
        seed, stream: the random state of the clips; ``camera_seed``: of the cameras.
        mnist_path: MNIST idx files to draw digits from instead of the shipped asset.

    Shape:
        item: ``(clip float32 (V, seq_length, 1, image_size, image_size) in [0, 1], label int64 ())``.
    """

    def __init__(
        self,
        length: int,
        *,
        num_views: int = 3,
        split: Split = "train",
        image_size: int = 32,
        seq_length: int = 12,
        speed: float | tuple[float, float] = (1.5, 3.0),
        num_distractors: int = 0,
        occlusion: tuple[float, float] = (0.4, 0.6),
        occluder_level: float = 0.2,
        classes: Sequence[str] | None = None,
        seed: int = 0,
        stream: int = 0,
        camera_seed: int = 0,
        mnist_path: str | Path | None = None,
    ) -> None:
        check_generated_set(length, camera_seed=camera_seed)
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.occlusion = check_occlusion(occlusion)
        self.occluder_level = check_level(occluder_level)
        self.scene_size = math.ceil(image_size * SCENE_MARGIN)
        # the scenes are the single-view set's clips on the larger canvas, from the same random streams
        self.scenes = MovingDigitActions(
            length,
            split=split,
            image_size=self.scene_size,
            seq_length=seq_length,
            speed=speed,
            num_distractors=num_distractors,
            seed=seed,
            stream=stream,
            mnist_path=mnist_path,
            classes=TRANSLATION_ACTIONS if classes is None else classes,
        )
        self.num_views, self.image_size, self.seq_length = num_views, image_size, seq_length
        self.views = camera_views(num_views, self.scene_size, camera_seed)

    @property
    def class_names(self) -> list[str]:
        return self.scenes.class_names

    @property
    def num_classes(self) -> int:
        return self.scenes.num_classes

    def __len__(self) -> int:
        return len(self.scenes)

    def generate(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
        """Clip ``index`` of ``epoch`` as ``(views (V, T, 1, S, S), hidden bool (V, T), label)``."""
        rng, scene, label = self.scenes.draw(index, epoch)  # scene (T, 1, N, N); rng continues its stream
        views = render_views(scene[:, 0], self.views, self.image_size)  # (V, T, S, S)
        hidden = _occlusion(rng, self.num_views, self.seq_length, self.occlusion)  # (V, T)
        noise = rng.random(views.shape, dtype=np.float32)  # drawn whole, so the stream ignores `hidden`
        views[hidden] = noise[hidden] * self.occluder_level
        np.clip(views, 0.0, 1.0, out=views)
        return views[:, :, None], hidden, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, item = divmod(int(index), len(self))
        views, _, label = self.generate(item, epoch)
        return torch.from_numpy(views), torch.tensor(label, dtype=torch.int64)


def check_level(level: float) -> float:
    """The occluders' noise level, in [0, 1]."""
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"occluder_level must be in [0, 1], got {level}")
    return float(level)


def check_occlusion(occlusion: Sequence[float]) -> tuple[float, float]:
    """The ``(low, high)`` fraction range of a view's frames that its occluder hides."""
    values = tuple(float(v) for v in occlusion)
    if len(values) != 2 or not 0.0 <= values[0] <= values[1] <= 1.0:
        raise ValueError(
            f"occlusion must be a (low, high) fraction range with 0 <= low <= high <= 1, got {occlusion!r}"
        )
    return values[0], values[1]
