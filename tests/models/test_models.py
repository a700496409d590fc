"""Every registered model: gradients reach every parameter, batch items are independent, bad input is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmvision.models import ConvLSTMPredictor, create_model, list_models, register_model

# a small configuration and an input maker for every registered model; a new model without an entry fails
SMALL: dict[str, tuple[dict, tuple[int, ...]]] = {
    "convlstm": (
        dict(num_hidden=[6, 5], filter_size=3, patch_size=2, input_length=3, total_length=5, layer_norm=True),
        (2, 5, 1, 8, 8),
    ),
    "predrnn": (
        dict(num_hidden=[6, 5], filter_size=3, patch_size=2, input_length=3, total_length=5, layer_norm=True),
        (2, 5, 1, 8, 8),
    ),
    "e3d_lstm": (
        dict(num_hidden=[6, 5], filter_size=3, patch_size=2, input_length=3, total_length=5, recall_window=2),
        (2, 5, 1, 8, 8),
    ),
    "e3d_lstm_classifier": (
        dict(num_classes=3, num_hidden=[6, 5], filter_size=3, patch_size=2, observed_fraction=0.6),
        (2, 5, 1, 8, 8),
    ),
    "cnn_lstm": (dict(num_classes=3, in_channels=1, hidden_size=6, pooling="attention"), (2, 5, 1, 8, 8)),
    "cnn_convlstm": (
        dict(num_classes=3, in_channels=1, hidden_channels=4, image_size=8, dense_size=6),
        (2, 5, 1, 8, 8),
    ),
    "single_frame": (dict(num_classes=3, in_channels=1), (2, 5, 1, 8, 8)),
    # multi-view models: (B, V, T, C, H, W)
    "mp_lstm": (
        dict(num_classes=3, num_views=2, in_channels=1, hidden_size=6, peepholes=True),
        (2, 2, 4, 1, 8, 8),
    ),
    "early_fusion": (dict(num_classes=3, num_views=2, in_channels=1, hidden_size=6), (2, 2, 4, 1, 8, 8)),
    "late_fusion": (
        dict(num_classes=3, num_views=2, in_channels=1, hidden_size=6, share_encoder=False),
        (2, 2, 4, 1, 8, 8),
    ),
    "mv_lstm": (dict(num_classes=3, num_views=2, in_channels=1, hidden_size=6), (2, 2, 4, 1, 8, 8)),
    "single_view": (
        dict(num_classes=3, num_views=2, in_channels=1, hidden_size=6, view=1),
        (2, 2, 4, 1, 8, 8),
    ),
}


def _build(name: str) -> tuple[nn.Module, torch.Tensor]:
    kwargs, shape = SMALL[name]
    torch.manual_seed(0)
    return create_model(name, **kwargs), torch.rand(*shape)


def test_every_model_has_a_small_configuration() -> None:
    assert set(list_models()) <= set(SMALL), f"add a SMALL entry for {set(list_models()) - set(SMALL)}"


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model, x = _build(name)
    model(x).square().sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"{name}: parameters without gradient: {dead}"


@pytest.mark.parametrize("name", list_models())
def test_batch_items_are_independent(name: str) -> None:
    model, x = _build(name)
    model.eval()
    with torch.no_grad():
        before = model(x)
        x2 = x.clone()
        x2[0] = torch.rand_like(x2[0])
        after = model(x2)
    assert not torch.allclose(before[0], after[0]), "changing item 0 must change its output"
    torch.testing.assert_close(before[1:], after[1:], rtol=0, atol=1e-6)


def test_registry_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="'convlstm' is already registered"):
        register_model("convlstm")(ConvLSTMPredictor)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'nope'; known models: .*convlstm"):
        create_model("nope")
