"""PredRNN and E3D-LSTM predictors and the E3D-LSTM early-recognition classifier."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lstmvision.models import E3DLSTMClassifier, E3DLSTMPredictor, PredRNNPredictor

pytestmark = pytest.mark.usefixtures("one_thread")


def _predrnn(**overrides: object) -> PredRNNPredictor:
    torch.manual_seed(0)
    kwargs: dict = dict(num_hidden=[5, 4], filter_size=3, patch_size=2, input_length=3, total_length=6)
    return PredRNNPredictor(**{**kwargs, **overrides}).eval()


def _e3d(**overrides: object) -> E3DLSTMPredictor:
    torch.manual_seed(0)
    kwargs: dict = dict(num_hidden=[5, 4], filter_size=3, patch_size=2, input_length=3, total_length=6)
    return E3DLSTMPredictor(**{**kwargs, **overrides}).eval()


def _predrnn_reference(model: PredRNNPredictor, fed: list[torch.Tensor | None]) -> torch.Tensor:
    """Plain loop over the cells: the memory climbs the layers, then goes from the top back to layer 0."""
    p, cells = model.patch_size, list(model.stack.cells)
    states: list = [None] * len(cells)
    memory, last, outs = None, None, []
    for given in fed:
        x = F.pixel_unshuffle(given if given is not None else last, p)
        for i, cell in enumerate(cells):
            x, states[i] = cell(x, states[i], memory)
            memory = states[i].m
        last = F.pixel_shuffle(model.head(x), p)
        outs.append(last)
    return torch.stack(outs, 1)


def _e3d_reference(model: E3DLSTMPredictor, fed: list[torch.Tensor | None]) -> torch.Tensor:
    """Plain loop: windows of the last w frames fed (zero frames first), zigzag memory, 3D head."""
    p, w, cells = model.patch_size, model.window_length, list(model.stack.cells)
    states: list = [None] * len(cells)
    memory, frames, outs = None, [], []
    for given in fed:
        frames.append(given if given is not None else outs[-1])
        window = [torch.zeros_like(frames[0])] * max(w - len(frames), 0) + frames[-w:]
        x = torch.stack([F.pixel_unshuffle(f, p) for f in window], dim=2)  # (B, C*p*p, w, h, w)
        for i, cell in enumerate(cells):
            x, states[i] = cell(x, states[i], memory)
            memory = states[i].m
        outs.append(F.pixel_shuffle(model.head(x)[:, :, 0], p))
    return torch.stack(outs, 1)


@pytest.mark.parametrize(("build", "reference"), [(_predrnn, _predrnn_reference), (_e3d, _e3d_reference)])
def test_forecast_equals_a_plain_rollout(build, reference) -> None:
    model = build()
    frames = torch.rand(2, 6, 1, 8, 8)
    with torch.no_grad():
        out = model(frames)
        ref = reference(model, [frames[:, 0], frames[:, 1], frames[:, 2], None, None])
        teacher = model(frames, sampling_prob=1.0)
        ref_teacher = reference(model, [frames[:, t] for t in range(5)])
        changed = frames.clone()
        changed[:, 3:] = torch.rand_like(changed[:, 3:])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(teacher, ref_teacher, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(model(changed), out, rtol=0, atol=0)  # no future frame is seen


@pytest.mark.parametrize("build", [_predrnn, _e3d])
def test_horizon_and_resolution_can_change_at_inference(build) -> None:
    model = build()
    for size in ((8, 8), (6, 10)):
        frames = torch.rand(1, 3, 1, *size)
        with torch.no_grad():
            short, long = model(frames, future=2), model(frames, future=9)
        assert long.shape == (1, 2 + 9, 1, *size)
        torch.testing.assert_close(long[:, : short.shape[1]], short, rtol=0, atol=1e-6)


def test_e3d_window_length_and_filter_size_are_honoured() -> None:
    model = _e3d(window_length=3, filter_size=5)
    conv = model.stack.cells[0].input_conv
    assert conv.kernel_size == (3, 5, 5)
    assert model.head.kernel_size == (3, 1, 1) and model.head.stride == (3, 1, 1)
    frames = torch.rand(2, 6, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            model(frames), _e3d_reference(model, [*frames[:, :3].unbind(1), None, None]), rtol=0, atol=1e-6
        )


def test_e3d_recall_reaches_the_first_frame() -> None:
    model = _e3d(input_length=8, total_length=9)
    frames = torch.rand(1, 8, 1, 8, 8)
    changed = frames.clone()
    changed[:, 0] = torch.rand_like(changed[:, 0])
    with torch.no_grad():
        a, b = model(frames), model(changed)
    # the prediction made at step 6 (of frame 7) still depends on frame 0, six steps back
    assert (a[:, 6] - b[:, 6]).abs().max() > 1e-6


def _classifier(**overrides: object) -> E3DLSTMClassifier:
    torch.manual_seed(0)
    kwargs: dict = dict(num_classes=4, num_hidden=[5, 4], filter_size=3, patch_size=2)
    return E3DLSTMClassifier(**{**kwargs, **overrides}).eval()


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_classifier_sees_only_the_observed_fraction(pooling: str) -> None:
    model = _classifier(pooling=pooling)
    clips = torch.rand(3, 8, 1, 8, 8)
    changed = clips.clone()
    changed[:, 4:] = torch.rand_like(changed[:, 4:])
    with torch.no_grad():
        half = model(clips, observed_fraction=0.5)
        torch.testing.assert_close(model(changed, observed_fraction=0.5), half, rtol=0, atol=0)
        torch.testing.assert_close(model(clips[:, :4]), half, rtol=0, atol=1e-6)
        assert not torch.allclose(model(changed), model(clips))
        hidden, _ = model.stack(F.pixel_unshuffle(clips[:, :4].flatten(0, 1), 2).unflatten(0, (3, 4)))
        pooled = hidden[:, -1] if pooling == "last" else hidden.mean(1)
        expected = model.classifier(pooled.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(half, expected, rtol=0, atol=1e-6)
    assert _classifier(observed_fraction=0.25)(clips).shape == (3, 4)


def test_classifier_starts_from_a_trained_predictor(tmp_path: Path) -> None:
    predictor = _e3d()
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in predictor.state_dict().items()}}, tmp_path / "p.ckpt"
    )
    model = _classifier(pretrained_encoder=str(tmp_path / "p.ckpt"))
    for key, value in predictor.stack.state_dict().items():
        torch.testing.assert_close(model.stack.state_dict()[key], value, rtol=0, atol=0)

    torch.save({"state_dict": {"model.stack.cells.0.nope": torch.zeros(1)}}, tmp_path / "bad.ckpt")
    with pytest.raises(
        ValueError, match=r"does not match this encoder: missing \[.*unexpected \['cells.0.nope'\]"
    ):
        _classifier(pretrained_encoder=str(tmp_path / "bad.ckpt"))
    torch.save({"state_dict": {"model.head.weight": torch.zeros(1)}}, tmp_path / "none.ckpt")
    with pytest.raises(ValueError, match="has no E3D-LSTM encoder weights"):
        _classifier(pretrained_encoder=str(tmp_path / "none.ckpt"))
    with pytest.raises(FileNotFoundError, match="pretrained_encoder: file not found"):
        _classifier(pretrained_encoder=str(tmp_path / "missing.ckpt"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(observed_fraction=0.0), r"observed_fraction must be in \(0, 1\], got 0.0"),
        (dict(pooling="max"), "pooling must be 'last' or 'mean'"),
        (dict(num_classes=0), "num_classes must be >= 1"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    ],
)
def test_classifier_refuses_bad_configuration(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _classifier(**kwargs)


@pytest.mark.parametrize(
    ("clips", "kwargs", "message"),
    [
        (torch.rand(2, 8, 8, 8), {}, r"expects frames \(B, T, C, H, W\), got shape \(2, 8, 8, 8\)"),
        (torch.rand(2, 8, 3, 8, 8), {}, "expects 1 channels, got 3"),
        (
            torch.rand(2, 8, 1, 7, 8),
            {},
            "patch_size=2 must divide the frame height and width .*, got frames of 7x8",
        ),
        (torch.rand(2, 8, 1, 8, 8), dict(observed_fraction=1.5), r"observed_fraction must be in \(0, 1\]"),
    ],
)
def test_classifier_refuses_bad_input(clips: torch.Tensor, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _classifier()(clips, **kwargs)


@pytest.mark.parametrize("build", [_predrnn, _e3d])
def test_predictors_refuse_bad_configuration(build) -> None:
    with pytest.raises(ValueError, match="num_hidden must be a non-empty list"):
        build(num_hidden=[])
    with pytest.raises(ValueError, match="total_length must be greater than input_length"):
        build(total_length=3)
