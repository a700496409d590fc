"""Weight loading from other frameworks' layers into lstmvision cells.

Keras is not a dependency of lstmvision: these functions take the arrays a Keras layer returns (or the
layer itself, duck-typed through ``get_weights()``), so nothing here imports keras.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lstmvision.cells.convlstm import ConvLSTM, ConvLSTMCell

__all__ = ["load_keras_convlstm2d"]


def load_keras_convlstm2d(
    module: ConvLSTMCell | ConvLSTM, weights: Sequence[Any] | Any
) -> ConvLSTMCell | ConvLSTM:
    """Copy a Keras ``ConvLSTM2D``'s weights into a cell (or a one-layer unidirectional ConvLSTM).

    Keras stores ``kernel`` ``(kh, kw, C, 4*Hc)``, ``recurrent_kernel`` ``(kh, kw, Hc, 4*Hc)`` and
    ``bias`` ``(4*Hc,)``, gates ordered (i, f, c, o), which is this cell's (i, f, g, o); both frameworks
    compute cross-correlations, so the kernels only need their axes moved to ``(4*Hc, C, kh, kw)``.

    Args:
        module: the destination; its kernel size, channels and ``bias`` flag must match the layer's.
            Strides, dilation and padding are not in the arrays: the caller sets them to the layer's
            (they are checked when ``weights`` is a layer).
        weights: ``layer.get_weights()`` (``[kernel, recurrent_kernel]`` plus ``bias`` with
            ``use_bias=True``) or the Keras layer itself.

    Returns:
        ``module``, with its convolution weights replaced (in place, without recording gradients).
    """
    cell = _single_cell(module)
    if hasattr(weights, "get_weights"):  # a Keras layer
        layer: Any = weights
        _check_keras_config(cell, layer.get_config())
        weights = layer.get_weights()
    arrays = [np.asarray(w) for w in weights]
    has_bias = cell.input_conv.bias is not None
    names = ["kernel", "recurrent_kernel", "bias"] if has_bias else ["kernel", "recurrent_kernel"]
    if len(arrays) != len(names):
        raise ValueError(
            f"expected {len(names)} Keras arrays ({', '.join(names)}) for a cell with bias={has_bias}, "
            f"got {len(arrays)}"
        )
    kh, kw = cell.kernel_size
    C, Hc = cell.in_channels, cell.hidden_channels
    expected = {"kernel": (kh, kw, C, 4 * Hc), "recurrent_kernel": (kh, kw, Hc, 4 * Hc), "bias": (4 * Hc,)}
    for name, array in zip(names, arrays):
        if array.shape != expected[name]:
            raise ValueError(
                f"Keras {name} must have shape {expected[name]} for this cell, got {array.shape}"
            )
    targets = [cell.input_conv.weight, cell.hidden_conv.weight, cell.input_conv.bias]
    with torch.no_grad():
        for array, target in zip(arrays, targets):
            # (kh, kw, in, out) -> (out, in, kh, kw); the bias is already (4*Hc,)
            value = torch.from_numpy(array.transpose(3, 2, 0, 1) if array.ndim == 4 else array)
            target.copy_(value.to(dtype=target.dtype, device=target.device))  # type: ignore[union-attr]
    return module


def _single_cell(module: ConvLSTMCell | ConvLSTM) -> ConvLSTMCell:
    if isinstance(module, ConvLSTM):
        if len(module.cells) != 1:
            raise ValueError(
                f"a Keras ConvLSTM2D is one unidirectional layer; this ConvLSTM has {module.num_layers} "
                f"layers x {module.num_directions} directions: load into module.cells[k] one by one"
            )
        module = module.cells[0]  # type: ignore[assignment]
    if not isinstance(module, ConvLSTMCell):
        raise ValueError(f"expected a ConvLSTMCell or ConvLSTM, got {type(module).__name__}")
    if module.peephole_weight is not None or module.norm_x is not None:
        raise ValueError("Keras ConvLSTM2D has no peephole or layer norm; build the cell without them")
    return module


def _check_keras_config(cell: ConvLSTMCell, config: dict[str, Any]) -> None:
    # the arrays cannot tell these apart, so a layer object is checked against the cell's settings
    padding = config.get("padding", "valid")
    wanted = {
        "strides": (tuple(config.get("strides", (1, 1))), cell.stride),
        "dilation_rate": (tuple(config.get("dilation_rate", (1, 1))), cell.dilation),
        "padding": (padding, cell.padding if cell.padding in ("same", "valid") else "explicit"),
        "activation": (config.get("activation", "tanh"), "tanh"),
        "recurrent_activation": (config.get("recurrent_activation", "sigmoid"), "sigmoid"),
    }
    for key, (keras_value, cell_value) in wanted.items():
        if keras_value != cell_value:
            raise ValueError(f"Keras layer has {key}={keras_value!r}, the cell expects {cell_value!r}")
