"""Multi-view classifiers: every view count, frames and features, the encoders, clear errors, the task."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lstmvision.models import (
    EarlyFusionClassifier,
    LateFusionClassifier,
    MPLSTMClassifier,
    SingleViewClassifier,
    create_model,
    load_pretrained,
    save_pretrained,
)
from lstmvision.tasks import VideoClassificationTask

pytestmark = pytest.mark.usefixtures("one_thread")

MULTIVIEW = ["mp_lstm", "early_fusion", "late_fusion", "mv_lstm", "single_view"]


def _frames(V: int, B: int = 2, T: int = 4) -> torch.Tensor:
    return torch.rand(B, V, T, 1, 8, 8)


@pytest.mark.parametrize("name", MULTIVIEW)
@pytest.mark.parametrize("V", [2, 3, 5])
def test_every_model_takes_2_3_and_5_views_of_frames(name: str, V: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, num_views=V, in_channels=1, hidden_size=6)
    logits = model(_frames(V))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    logits.sum().backward()


@pytest.mark.parametrize("name", MULTIVIEW)
def test_features_of_different_sizes_per_view(name: str) -> None:
    torch.manual_seed(0)
    sizes = [5, 7, 3]
    model = create_model(name, num_classes=3, num_views=3, encoder=None, feature_size=sizes, hidden_size=6)
    features = [torch.randn(2, 6, d) for d in sizes]
    logits = model(features)
    assert logits.shape == (2, 3)
    logits.sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    if name == "single_view":  # it reads view 0 only; the rest of its parameters must all learn
        assert not dead
    else:
        assert not dead, f"{name}: parameters without gradient: {dead}"
    # equal sizes also come as one (B, V, T, D) tensor, the same as the list of its views
    same = create_model(name, num_classes=3, num_views=3, encoder=None, feature_size=4, hidden_size=6).eval()
    stacked = torch.randn(2, 3, 6, 4)
    torch.testing.assert_close(same(stacked), same(list(stacked.unbind(1))))


@pytest.mark.parametrize("name", MULTIVIEW)
def test_a_wrong_view_count_or_feature_size_is_named(name: str) -> None:
    frames_model = create_model(name, num_classes=3, num_views=3, in_channels=1, hidden_size=4)
    who = type(frames_model).__name__
    with pytest.raises(ValueError, match=rf"{who} expects 3 views, got 2"):
        frames_model(_frames(2))
    with pytest.raises(ValueError, match=rf"{who} expects C=1 channels, got 3"):
        frames_model(torch.rand(2, 3, 4, 3, 8, 8))
    with pytest.raises(ValueError, match=rf"{who} expects frames \(B, V, T, C, H, W\)"):
        frames_model(torch.rand(2, 4, 1, 8, 8))
    features_model = create_model(
        name, num_classes=3, num_views=2, encoder=None, feature_size=[5, 6], hidden_size=4
    )
    with pytest.raises(ValueError, match=rf"{who} view 1 expects 6 features, got 5"):
        features_model([torch.randn(2, 4, 5), torch.randn(2, 4, 5)])
    with pytest.raises(ValueError, match=rf"{who} expects 2 views, got 3"):
        features_model([torch.randn(2, 4, 5), torch.randn(2, 4, 6), torch.randn(2, 4, 6)])


def test_shared_and_separate_encoders() -> None:
    shared = MPLSTMClassifier(3, 3, in_channels=1, hidden_size=4)
    separate = MPLSTMClassifier(3, 3, in_channels=1, hidden_size=4, share_encoder=False)
    assert len(shared.encoders) == 1 and len(separate.encoders) == 3
    encoder_params = sum(p.numel() for p in shared.encoders.parameters())
    assert sum(p.numel() for p in separate.encoders.parameters()) == 3 * encoder_params
    # the copies start equal and are separate tensors
    first, second = (list(e.parameters()) for e in separate.encoders[:2])
    assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr() for a, b in zip(first, second))


def test_shared_encoder_sees_every_view_in_one_call() -> None:
    model = EarlyFusionClassifier(3, 2, in_channels=1, hidden_size=4).eval()
    calls = []
    model.encoders[0].register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    model(_frames(2, B=3, T=5))
    assert calls == [(6, 5, 1, 8, 8)], "one encoder call over B·V clips"


def test_single_view_reads_only_its_view() -> None:
    torch.manual_seed(0)
    model = SingleViewClassifier(3, 3, in_channels=1, hidden_size=4, view=1).eval()
    x = _frames(3)
    y = x.clone()
    y[:, 0] = torch.rand_like(y[:, 0])
    y[:, 2] = torch.rand_like(y[:, 2])
    torch.testing.assert_close(model(x), model(y), rtol=0, atol=0)
    z = x.clone()
    z[:, 1] = torch.rand_like(z[:, 1])
    assert not torch.allclose(model(x), model(z))
    with pytest.raises(ValueError, match=r"view must be an index in \[0, 2\]"):
        SingleViewClassifier(3, 3, view=3)


@pytest.mark.parametrize("fusion", ["logits_mean", "features_mean", "features_concat"])
def test_late_fusion_modes(fusion: str) -> None:
    torch.manual_seed(0)
    model = LateFusionClassifier(3, 2, encoder=None, feature_size=4, hidden_size=5, fusion=fusion)  # type: ignore[arg-type]
    heads = 2 if fusion == "logits_mean" else 1
    assert len(model.classifiers) == heads
    assert model(torch.randn(2, 2, 3, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="fusion must be"):
        LateFusionClassifier(3, 2, encoder=None, feature_size=4, fusion="max")  # type: ignore[arg-type]


def test_feature_size_needs_no_encoder_and_features_need_a_size() -> None:
    with pytest.raises(ValueError, match="feature_size is for pre-extracted features"):
        MPLSTMClassifier(3, 2, encoder="small_cnn", feature_size=8)
    with pytest.raises(ValueError, match="encoder=None with feature_size"):
        MPLSTMClassifier(3, 2, encoder=None)


def test_lengths_leave_padded_steps_out() -> None:
    torch.manual_seed(0)
    model = MPLSTMClassifier(3, 2, encoder=None, feature_size=4, hidden_size=5).eval()
    x = torch.randn(2, 2, 6, 4)
    padded = x.clone()
    padded[1, :, 3:] = 99.0  # garbage after the last valid step
    lengths = torch.tensor([6, 3])
    got = model(padded, lengths)
    torch.testing.assert_close(got[1], model(x[1:, :, :3])[0])
    torch.testing.assert_close(got[0], model(x[:1])[0])


# -------------------------------------------------------------------------------------------- the task
def test_the_task_trains_tests_and_cuts_multi_view_clips_along_time() -> None:
    torch.manual_seed(0)
    model = MPLSTMClassifier(3, 2, in_channels=1, hidden_size=4).eval()
    task = VideoClassificationTask(model, observed_fractions=[0.5, 1.0])
    clips, labels = _frames(2, B=2, T=6), torch.tensor([0, 2])
    loss = task.training_step((clips, labels), 0)
    assert loss is not None and torch.isfinite(loss)
    with torch.no_grad():
        torch.testing.assert_close(task._logits(clips, 0.5), model(clips[:, :, :3]))
        # K clips per video, (B, K, V, T, C, H, W): a video's logits are the mean of its clips'
        multi = torch.stack([clips, clips.flip(2)], dim=1)
        want = (model(clips) + model(clips.flip(2))) / 2
        torch.testing.assert_close(task._logits(multi), want)
    with pytest.raises(
        ValueError, match=r"expects clips \(B, V, T, C, H, W\) or, for multi-clip testing, \(B, K, V, T"
    ):
        task._logits(torch.rand(2, 6, 1, 8, 8))


def test_the_task_takes_per_view_feature_lists() -> None:
    model = EarlyFusionClassifier(3, 2, encoder=None, feature_size=[4, 6], hidden_size=4)
    task = VideoClassificationTask(model)
    features = [torch.randn(2, 5, 4), torch.randn(2, 5, 6)]
    loss = task.training_step((features, torch.tensor([1, 2])), 0)
    assert loss is not None and torch.isfinite(loss)
    with pytest.raises(ValueError, match="a list of \\(B, T, D_v\\) tensors of one batch size"):
        task.training_step(([torch.randn(2, 5, 4), torch.randn(3, 5, 6)], torch.tensor([1, 2])), 0)
    with pytest.raises(ValueError, match=r"expects labels \(B,\) = \(2,\)"):
        task.training_step((features, torch.tensor([1, 2, 0])), 0)


def test_export_round_trip_with_one_encoder_per_view(tmp_path: Path) -> None:
    torch.manual_seed(0)
    init_args = {"num_classes": 3, "num_views": 2, "in_channels": 1, "hidden_size": 4, "share_encoder": False}
    model = MPLSTMClassifier(**init_args).eval()  # type: ignore[arg-type]
    with torch.no_grad():  # make the two encoders differ, as after training
        next(model.encoders[1].parameters()).add_(0.5)
    folder = save_pretrained(model, tmp_path / "mp_lstm", init_args=init_args)
    loaded = load_pretrained(folder).eval()
    x = _frames(2)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
