"""Keras ConvLSTM2D (torch backend) as the oracle: weights copied with load_keras_convlstm2d."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import pytest
import torch

from lstmvision.cells import ConvLSTM, ConvLSTMCell
from lstmvision.interop import load_keras_convlstm2d

C_IN, HIDDEN = 3, 4


def to_torch(array: object) -> torch.Tensor:
    return torch.as_tensor(keras.ops.convert_to_numpy(array))


def keras_layer(x: np.ndarray, seed: int, **kwargs: object) -> keras.layers.ConvLSTM2D:
    """A built ConvLSTM2D with a random bias (its initial bias is mostly 0, which would hide a bug)."""
    keras.utils.set_random_seed(seed)
    layer = keras.layers.ConvLSTM2D(return_sequences=True, return_state=True, **kwargs)
    layer.build(x.shape)
    weights = layer.get_weights()
    weights[-1] = np.random.default_rng(seed).uniform(-1, 1, weights[-1].shape).astype(np.float32)
    layer.set_weights(weights)
    return layer


def frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CONFIGS = {
    "odd-kernel": dict(kernel_size=3, padding="same"),
    "even-kernel-same": dict(kernel_size=(4, 2), padding="same"),
    "stride-2-even-kernel": dict(kernel_size=4, strides=2, padding="same"),
    "stride-2-valid": dict(kernel_size=3, strides=(2, 1), padding="valid"),
    "dilation-2": dict(kernel_size=3, dilation_rate=2, padding="same"),
    "valid": dict(kernel_size=(3, 2), padding="valid"),
    "go-backwards": dict(kernel_size=3, padding="same", go_backwards=True),
}


def torch_options(config: dict) -> dict:
    names = {"strides": "stride", "dilation_rate": "dilation"}
    return {names.get(k, k): v for k, v in config.items()}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_keras_convlstm2d(name: str) -> None:
    config = CONFIGS[name]
    x = frames((2, 4, 7, 8, C_IN))  # Keras is channels_last: (B, T, H, W, C)
    layer = keras_layer(x, seed=1, filters=HIDDEN, **config)
    y_k, h_k, c_k = (to_torch(t) for t in layer(x))
    model = ConvLSTM(C_IN, HIDDEN, **torch_options(config))
    load_keras_convlstm2d(model, layer)
    y, (h, c) = model(torch.from_numpy(x).permute(0, 1, 4, 2, 3))  # -> (B, T, C, H, W)
    y_k = y_k.permute(0, 1, 4, 2, 3)  # (B, T, H', W', Hc) -> (B, T, Hc, H', W')
    errors = {
        "sequence": (y - y_k).abs().max().item(),
        "h": (h[0] - h_k.permute(0, 3, 1, 2)).abs().max().item(),
        "c": (c[0] - c_k.permute(0, 3, 1, 2)).abs().max().item(),
    }
    assert max(errors.values()) < 1e-5, f"max abs errors {errors}"


def test_last_output_matches_keras_without_sequences() -> None:
    x = frames((2, 4, 6, 6, C_IN), seed=2)
    layer = keras_layer(x, seed=2, filters=HIDDEN, kernel_size=3, padding="same")
    last = keras.layers.ConvLSTM2D(HIDDEN, 3, padding="same", return_sequences=False)
    last.build(x.shape)
    last.set_weights(layer.get_weights())
    model = ConvLSTM(C_IN, HIDDEN, 3)
    load_keras_convlstm2d(model, last.get_weights())  # arrays, not the layer
    y, (h, _) = model(torch.from_numpy(x).permute(0, 1, 4, 2, 3))
    y_k = to_torch(last(x)).permute(0, 3, 1, 2)  # (B, H', W', Hc) -> (B, Hc, H', W')
    err = max((y[:, -1] - y_k).abs().max().item(), (h[0] - y_k).abs().max().item())
    assert err < 1e-5, f"max abs error {err:.3g}"


def test_two_stacked_layers_match_two_keras_layers() -> None:
    x = frames((2, 4, 6, 7, C_IN), seed=3)
    first = keras_layer(x, seed=3, filters=HIDDEN, kernel_size=3, padding="same")
    y1, h1, c1 = first(x)
    second = keras_layer(
        keras.ops.convert_to_numpy(y1), seed=4, filters=HIDDEN, kernel_size=3, padding="same"
    )
    y2, h2, c2 = second(y1)
    model = ConvLSTM(C_IN, HIDDEN, 3, num_layers=2)
    load_keras_convlstm2d(model.cells[0], first)
    load_keras_convlstm2d(model.cells[1], second)
    y, (h, c) = model(torch.from_numpy(x).permute(0, 1, 4, 2, 3))
    h_k = torch.stack([to_torch(t).permute(0, 3, 1, 2) for t in (h1, h2)])  # (layers, B, Hc, H', W')
    c_k = torch.stack([to_torch(t).permute(0, 3, 1, 2) for t in (c1, c2)])
    errors = {
        "sequence": (y - to_torch(y2).permute(0, 1, 4, 2, 3)).abs().max().item(),
        "h": (torch.stack(h) - h_k).abs().max().item(),  # h_n, c_n: tuples of per-layer tensors
        "c": (torch.stack(c) - c_k).abs().max().item(),
    }
    assert max(errors.values()) < 1e-5, f"max abs errors {errors}"


def test_cell_steps_match_keras() -> None:
    x = frames((2, 3, 5, 5, C_IN), seed=5)
    layer = keras_layer(x, seed=5, filters=HIDDEN, kernel_size=2, padding="same")
    y_k = to_torch(layer(x)[0]).permute(0, 1, 4, 2, 3)
    cell = load_keras_convlstm2d(ConvLSTMCell(C_IN, HIDDEN, 2), layer)
    state = None
    for t in range(3):
        h, state = cell(torch.from_numpy(x[:, t]).permute(0, 3, 1, 2), state)
        err = (h - y_k[:, t]).abs().max().item()
        assert err < 1e-5, f"step {t}: max abs error {err:.3g}"


def test_no_bias_layer() -> None:
    x = frames((1, 2, 5, 5, C_IN), seed=6)
    layer = keras.layers.ConvLSTM2D(HIDDEN, 3, padding="same", use_bias=False, return_sequences=True)
    y_k = to_torch(layer(x)).permute(0, 1, 4, 2, 3)
    model = load_keras_convlstm2d(ConvLSTM(C_IN, HIDDEN, 3, bias=False), layer)
    err = (model(torch.from_numpy(x).permute(0, 1, 4, 2, 3))[0] - y_k).abs().max().item()
    assert err < 1e-5, f"max abs error {err:.3g}"


def test_loader_rejects_mismatches() -> None:
    kernel = np.zeros((3, 3, C_IN, 4 * HIDDEN), np.float32)
    recurrent = np.zeros((3, 3, HIDDEN, 4 * HIDDEN), np.float32)
    bias = np.zeros(4 * HIDDEN, np.float32)
    cell = ConvLSTMCell(C_IN, HIDDEN, 3)
    with pytest.raises(
        ValueError, match=r"Keras kernel must have shape \(3, 3, 3, 16\) for this cell, got \(3, 3, 2, 16\)"
    ):
        load_keras_convlstm2d(cell, [kernel[:, :, :2], recurrent, bias])
    with pytest.raises(
        ValueError, match=r"recurrent_kernel must have shape \(3, 3, 4, 16\).*got \(2, 2, 4, 16\)"
    ):
        load_keras_convlstm2d(cell, [kernel, recurrent[:2, :2], bias])
    with pytest.raises(ValueError, match=r"Keras bias must have shape \(16,\) for this cell, got \(12,\)"):
        load_keras_convlstm2d(cell, [kernel, recurrent, bias[:12]])
    with pytest.raises(
        ValueError, match=r"expected 3 Keras arrays \(kernel, recurrent_kernel, bias\).*got 2"
    ):
        load_keras_convlstm2d(cell, [kernel, recurrent])
    with pytest.raises(ValueError, match="this ConvLSTM has 2 layers x 1 directions"):
        load_keras_convlstm2d(ConvLSTM(C_IN, HIDDEN, 3, 2), [kernel, recurrent, bias])
    with pytest.raises(ValueError, match="no peephole or layer norm"):
        load_keras_convlstm2d(ConvLSTMCell(C_IN, HIDDEN, 3, peephole=True), [kernel, recurrent, bias])
    layer = keras.layers.ConvLSTM2D(HIDDEN, 3, strides=2, padding="same")
    layer.build((1, 2, 6, 6, C_IN))
    with pytest.raises(ValueError, match=r"Keras layer has strides=\(2, 2\), the cell expects \(1, 1\)"):
        load_keras_convlstm2d(cell, layer)
    before = cell.input_conv.weight.clone()
    load_keras_convlstm2d(cell, [kernel, recurrent, bias])
    assert cell.input_conv.weight.abs().sum() == 0 and before.abs().sum() > 0
