"""The embedded multi-view set: cameras, occlusion, reproducibility, the data module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmvision.data import (
    TRANSLATION_ACTIONS,
    CameraView,
    MultiViewDigitActions,
    MultiViewDigitActionsDataModule,
    camera_views,
    render_views,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _scene(T: int = 3, N: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((T, N, N), dtype=np.float32)


def test_an_upright_camera_at_zoom_one_copies_the_scene_window() -> None:
    scene = _scene()
    # pixel centres at integer + 0.5 offsets from a centre on a pixel corner: exact pixel reads
    view = CameraView(angle=0.0, zoom=1.0, centre=(10.5, 7.5))
    out = render_views(scene, [view], 8)
    np.testing.assert_allclose(out[0], scene[:, 7:15, 4:12], atol=1e-6)


def test_a_quarter_turn_turns_the_window_and_the_scene_wraps() -> None:
    scene = _scene()
    view = CameraView(angle=math.pi / 2, zoom=1.0, centre=(0.5, 0.5))  # centred on a corner: wraps
    out = render_views(scene, [view], 6)
    window = np.roll(scene, (2, 2), axis=(1, 2))[:, :6, :6]  # scene pixels -2..3 around the corner (0.5, 0.5)
    expected = np.rot90(window, k=1, axes=(1, 2))  # the camera turned clockwise sees the scene counter-turned
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_cameras_are_spread_around_the_circle_and_reproducible() -> None:
    views = camera_views(4, 40, seed=3)
    assert views == camera_views(4, 40, seed=3)
    assert views != camera_views(4, 40, seed=4)
    gaps = np.diff(sorted(v.angle for v in views))
    np.testing.assert_allclose(gaps, math.pi / 2, atol=1e-9)
    assert all(0.85 <= v.zoom <= 1.15 for v in views)
    with pytest.raises(ValueError, match="num_views must be >= 1, got 0"):
        camera_views(0, 40)


@pytest.mark.parametrize("V", [1, 2, 3, 5])
def test_clips_have_every_view_and_every_frame_is_seen_somewhere(V: int) -> None:
    ds = MultiViewDigitActions(8, num_views=V, image_size=24, seq_length=8, occlusion=(0.5, 0.7))
    for index in range(8):
        views, hidden, label = ds.generate(index)
        assert views.shape == (V, 8, 1, 24, 24) and views.dtype == np.float32
        assert 0.0 <= views.min() and views.max() <= 1.0
        assert label == index % len(TRANSLATION_ACTIONS)
        if V > 1:
            assert not hidden.all(axis=0).any(), "some frame is hidden in every view"
            # each view's hidden frames are its occluder: low noise, not the black scene
            assert all(hidden[k].sum() >= 1 for k in range(V))
        occluded = views[:, :, 0][hidden]  # (n, S, S)
        assert occluded.size == 0 or (occluded.max() <= 0.2 and occluded.std() > 0.01)


def test_a_single_view_misses_part_of_the_clip_and_the_views_together_miss_none() -> None:
    ds = MultiViewDigitActions(64, num_views=3, image_size=24, seq_length=12)
    hidden = np.stack([ds.generate(i)[1] for i in range(64)])  # (N, V, T)
    fraction = hidden.mean()
    assert 0.35 < fraction < 0.6, f"each view should be hidden about half the time, got {fraction:.2f}"
    assert not hidden.all(axis=1).any()


def test_items_are_reproducible_and_fresh_every_epoch() -> None:
    ds = MultiViewDigitActions(4, num_views=2, image_size=24, seq_length=6)
    a, la = ds[1]
    b, lb = ds[1]
    assert torch.equal(a, b) and int(la) == int(lb) == 1
    c, lc = ds[4 + 1]  # the same index in the next epoch
    assert int(lc) == 1 and not torch.equal(a, c)
    assert a.shape == (2, 6, 1, 24, 24)


def test_no_occlusion_and_no_noise() -> None:
    ds = MultiViewDigitActions(2, num_views=2, image_size=24, seq_length=6, occlusion=(0.0, 0.0))
    views, hidden, _ = ds.generate(0)
    assert not hidden.any()
    ds_zero = MultiViewDigitActions(2, num_views=2, image_size=24, seq_length=6, occluder_level=0.0)
    views, hidden, _ = ds_zero.generate(0)
    assert hidden.any() and np.all(views[:, :, 0][hidden] == 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_views=0), "num_views must be >= 1"),
        (dict(occlusion=(0.7, 0.3)), "occlusion must be a"),
        (dict(occlusion=(0.1, 1.5)), "occlusion must be a"),
        (dict(occluder_level=1.5), "occluder_level must be in"),
        (dict(classes=["left", "spin"]), "unknown class names"),
        (dict(camera_seed=-1), "camera_seed"),
        (dict(image_size=8), "image_size must be >= 16"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MultiViewDigitActions(4, **kwargs)


def test_data_module_batches_and_class_names() -> None:
    dm = MultiViewDigitActionsDataModule(
        num_views=3, image_size=24, seq_length=6, train_size=8, val_size=4, test_size=4, batch_size=4
    )
    assert dm.class_names == list(TRANSLATION_ACTIONS) and dm.num_classes == 8
    dm.setup("fit")
    clips, labels = next(iter(dm.train_dataloader()))
    assert clips.shape == (4, 3, 6, 1, 24, 24) and labels.tolist() == [0, 1, 2, 3]
    dm.setup("test")
    first = next(iter(dm.test_dataloader()))[0]
    again = next(iter(dm.test_dataloader()))[0]
    assert torch.equal(first, again), "the test set is the same every time"
    # test clips come from the test digit pool: not the validation clips of the same index
    assert not torch.equal(first, next(iter(dm.val_dataloader()))[0])
    with pytest.raises(ValueError, match="MultiViewDigitActionsDataModule: num_views must be >= 1"):
        MultiViewDigitActionsDataModule(num_views=0)
