"""Every registered model: gradients reach every parameter, batch items are independent, bad input is refused."""

from __future__ import annotations

from pathlib import Path

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
    # PredRNN-v2's adapter is shared by all layers: equal widths
    "predrnn_v2": (
        dict(num_hidden=[6, 6], filter_size=3, patch_size=2, input_length=3, total_length=5, layer_norm=True),
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
    # the captioner: features (B, T, D) plus caption tokens (see _inputs)
    "sa_lstm": (
        dict(
            vocab_size=9,
            feature_size=5,
            embed_size=4,
            hidden_size=6,
            attention_size=3,
            dropout=0.0,
            encoder="bilstm",
            encoder_size=4,
            context_gate=True,
            deep_output=True,
        ),
        (2, 4, 5),
    ),
}


class _Inputs(tuple):
    """The positional inputs of a model that takes more than one."""


def _inputs(name: str, shape: tuple[int, ...]) -> torch.Tensor | _Inputs:
    x = torch.rand(*shape)
    if name == "sa_lstm":  # teacher forcing: tokens start with <bos> = 1
        tokens = torch.tensor([[1, 4, 5, 2], [1, 6, 2, 0]])
        return _Inputs((x, tokens))
    return x


def _build(name: str) -> tuple[nn.Module, torch.Tensor | _Inputs]:
    kwargs, shape = SMALL[name]
    torch.manual_seed(0)
    return create_model(name, **kwargs), _inputs(name, shape)


def _call(model: nn.Module, x: torch.Tensor | _Inputs) -> torch.Tensor:
    return model(*x) if isinstance(x, _Inputs) else model(x)


def _auxiliary_loss(model: nn.Module) -> torch.Tensor | float:
    """A loss the network computed in its last forward for the task to add (PredRNN-v2's decoupling
    loss), else 0: the parameters only it reaches (the adapter) are trained through it."""
    loss = getattr(model, "decoupling_loss", None)
    return loss if isinstance(loss, torch.Tensor) else 0.0


def test_every_model_has_a_small_configuration() -> None:
    assert set(list_models()) <= set(SMALL), f"add a SMALL entry for {set(list_models()) - set(SMALL)}"


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model, x = _build(name)
    (_call(model, x).square().sum() + _auxiliary_loss(model)).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"{name}: parameters without gradient: {dead}"


@pytest.mark.parametrize("name", list_models())
def test_batch_items_are_independent(name: str) -> None:
    model, x = _build(name)
    model.eval()
    with torch.no_grad():
        before = _call(model, x)
        first = x[0] if isinstance(x, _Inputs) else x
        x2 = first.clone()
        x2[0] = torch.rand_like(x2[0])
        after = _call(model, _Inputs((x2, *x[1:])) if isinstance(x, _Inputs) else x2)
    assert not torch.allclose(before[0], after[0]), "changing item 0 must change its output"
    torch.testing.assert_close(before[1:], after[1:], rtol=0, atol=1e-6)


def test_registry_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="'convlstm' is already registered"):
        register_model("convlstm")(ConvLSTMPredictor)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'nope'; known models: .*convlstm"):
        create_model("nope")


def test_list_models_filters_with_shell_wildcards_as_timm() -> None:
    every = list_models()
    assert list_models("conv*") == ["convlstm"]
    assert list_models("*lstm") == [name for name in every if name.endswith("lstm")]
    assert list_models(["e3d*", "predrnn"]) == ["e3d_lstm", "e3d_lstm_classifier", "predrnn"]
    assert list_models("*") == every and list_models("CONV*") == []  # case-sensitive
    with pytest.raises(TypeError, match=r"model name pattern must be a string such as 'conv\*'.*got 3"):
        list_models(3)  # type: ignore[arg-type]


def test_pretrained_false_is_the_default_and_true_names_the_zoo_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs, _ = SMALL["convlstm"]
    torch.manual_seed(0)
    default = create_model("convlstm", **kwargs)
    torch.manual_seed(0)
    explicit = create_model("convlstm", pretrained=False, **kwargs)
    assert all(
        torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values())
    )
    # an empty zoo (tests/models/test_zoo.py tests a filled one)
    (tmp_path / "index.json").write_text('{"format": 1, "entries": {}}')
    monkeypatch.setenv("LSTMVISION_ZOO", str(tmp_path))
    with pytest.raises(
        ValueError,
        match=r"no pretrained weights are available for model 'convlstm' \(model zoo entries: none yet\); "
        r"use pretrained=False, or give an exported folder of your own: pretrained='path/to/folder'",
    ):
        create_model("convlstm", pretrained=True, **kwargs)
    with pytest.raises(
        ValueError, match=r"unknown model 'nope'; known models: .*; model zoo entries: none yet"
    ):
        create_model("nope", pretrained=True)
    with pytest.raises(
        ValueError, match="pretrained must be True, False or the path of an exported folder, got 3"
    ):
        create_model("convlstm", pretrained=3)  # type: ignore[arg-type]
