"""Recurrent next-frame video predictor (Shi et al. 2015; the E3D-LSTM/PredRNN release's training scheme).

Frames are cut into ``patch_size × patch_size`` patches stacked on the channel axis (space-to-depth, as
the E3D-LSTM and PredRNN releases do), a stack of ConvLSTM cells runs over them, and a 1×1 convolution
maps the top hidden state back to a patched frame. The first ``input_length`` frames are observed; after
them the model feeds its own predictions back in, up to ``total_length`` frames (or any horizon chosen
at inference). Scheduled sampling follows the release: during training each future step takes the true
frame with probability ``eta``, which starts at ``sampling_start_value`` and falls by
``sampling_changing_rate`` per iteration until ``sampling_stop_iter``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.cells import ConvLSTMCell, ConvLSTMState
from lstmvision.models.registry import register_model

__all__ = ["ConvLSTMPredictor"]


@register_model("convlstm")
class ConvLSTMPredictor(nn.Module):
    """ConvLSTM encoder-forecaster predicting every next frame of a clip.

    Args:
        in_channels: channels of a frame (1 for Moving MNIST and KTH).
        patch_size: side of the square patches folded into channels; must divide the frame size.
        num_hidden: hidden channels of each stacked cell (the release's ``--num_hidden``).
        filter_size: kernel size of every cell's convolutions (``--filter_size``).
        input_length: observed frames (``--input_length``).
        total_length: observed plus predicted frames used in training (``--total_length``).
        layer_norm: normalise each cell's gates (``--layer_norm``).
        sampling_start_value: probability of feeding the true frame at iteration 0.
        sampling_changing_rate: decrease of that probability per training iteration.
        sampling_stop_iter: iteration from which only the model's own predictions are fed back.

    Shape:
        - frames: ``(B, T, C, H, W)`` with ``T >= input_length``, values in [0, 1].
        - output: ``(B, input_length - 1 + future, C, H, W)``: the prediction of frames
          ``1 … input_length + future - 1`` (each made from the frames before it).
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        patch_size: int = 4,
        num_hidden: Sequence[int] = (64, 64, 64, 64),
        filter_size: int = 5,
        input_length: int = 10,
        total_length: int = 20,
        layer_norm: bool = False,
        sampling_start_value: float = 1.0,
        sampling_changing_rate: float = 2e-5,
        sampling_stop_iter: int = 50000,
    ) -> None:
        super().__init__()
        num_hidden = list(num_hidden)
        for key, value in (
            ("in_channels", in_channels),
            ("patch_size", patch_size),
            ("filter_size", filter_size),
            ("input_length", input_length),
        ):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if not num_hidden or min(num_hidden) < 1:
            raise ValueError(f"num_hidden must be a non-empty list of positive sizes, got {num_hidden}")
        if total_length <= input_length:
            raise ValueError(
                f"total_length must be greater than input_length, got total_length={total_length}, "
                f"input_length={input_length}"
            )
        if not 0.0 <= sampling_start_value <= 1.0:
            raise ValueError(f"sampling_start_value must be in [0, 1], got {sampling_start_value}")
        if sampling_changing_rate < 0 or sampling_stop_iter < 0:
            raise ValueError(
                "sampling_changing_rate and sampling_stop_iter must be >= 0, got "
                f"{sampling_changing_rate} and {sampling_stop_iter}"
            )
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.input_length = input_length
        self.total_length = total_length
        self.sampling_start_value = sampling_start_value
        self.sampling_changing_rate = sampling_changing_rate
        self.sampling_stop_iter = sampling_stop_iter

        patch_channels = in_channels * patch_size**2
        sizes = [patch_channels, *num_hidden]
        self.cells = nn.ModuleList(
            ConvLSTMCell(sizes[i], sizes[i + 1], filter_size, layer_norm=layer_norm)
            for i in range(len(num_hidden))
        )
        # the release's output head: a 1x1 convolution from the top hidden state, no bias, no squashing
        self.head = nn.Conv2d(num_hidden[-1], patch_channels, kernel_size=1, bias=False)

    @property
    def future_length(self) -> int:
        """Frames predicted after the observed ones in training (``total_length - input_length``)."""
        return self.total_length - self.input_length

    def sampling_probability(self, iteration: int) -> float:
        """Probability of feeding a true future frame at a training iteration (scheduled sampling)."""
        if iteration >= self.sampling_stop_iter:
            return 0.0
        return max(self.sampling_start_value - self.sampling_changing_rate * iteration, 0.0)

    def forward(self, frames: Tensor, *, future: int | None = None, sampling_prob: float = 0.0) -> Tensor:
        """Predict each next frame; after ``input_length`` frames feed predictions back ``future`` times.

        ``sampling_prob`` > 0 (training) feeds, per clip and step, the true frame with that probability
        instead of the prediction, so ``frames`` must then hold ``input_length + future - 1`` frames.
        """
        future = self.future_length if future is None else future
        self._check_input(frames, future, sampling_prob)
        B, T = frames.shape[:2]
        p = self.patch_size
        steps = self.input_length + future - 1

        # (B, T, C, H, W) -> (B, T, C*p*p, H/p, W/p): space-to-depth on every frame at once
        patches = F.pixel_unshuffle(frames.flatten(0, 1), p).unflatten(0, (B, T))
        if sampling_prob > 0.0:
            n_mixed = steps - self.input_length
            # one Bernoulli draw per clip and future step, shared by all pixels (as in the release)
            use_truth = torch.rand(B, n_mixed, 1, 1, 1, device=frames.device) < sampling_prob
        states: list[ConvLSTMState | None] = [None] * len(self.cells)
        outputs = []
        prediction = patches[:, 0]
        for t in range(steps):
            if t < self.input_length:
                x = patches[:, t]
            elif sampling_prob > 0.0:
                x = torch.where(use_truth[:, t - self.input_length], patches[:, t], prediction)
            else:
                x = prediction
            for i, cell in enumerate(self.cells):
                x, states[i] = cell(x, states[i])
            prediction = self.head(x)
            outputs.append(prediction)
        out = torch.stack(outputs, dim=1)  # (B, steps, C*p*p, H/p, W/p)
        return F.pixel_shuffle(out.flatten(0, 1), p).unflatten(0, (B, steps))  # (B, steps, C, H, W)

    def _check_input(self, frames: Tensor, future: int, sampling_prob: float) -> None:
        if frames.dim() != 5:
            raise ValueError(
                f"ConvLSTMPredictor expects frames (B, T, C, H, W), got shape {tuple(frames.shape)}"
            )
        if not frames.is_floating_point():
            raise ValueError(f"ConvLSTMPredictor expects floating-point frames, got dtype {frames.dtype}")
        _, T, C, H, W = frames.shape
        if C != self.in_channels:
            raise ValueError(
                f"ConvLSTMPredictor expects {self.in_channels} channels, got {C} (shape {tuple(frames.shape)})"
            )
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide the frame size, got {H}x{W}")
        if T < self.input_length:
            raise ValueError(
                f"ConvLSTMPredictor needs at least input_length={self.input_length} frames, got {T}"
            )
        if future < 1:
            raise ValueError(f"future must be >= 1, got {future}")
        if not 0.0 <= sampling_prob <= 1.0:
            raise ValueError(f"sampling_prob must be in [0, 1], got {sampling_prob}")
        if sampling_prob > 0.0 and T < self.input_length + future - 1:
            raise ValueError(
                f"scheduled sampling needs the true frames: expected at least {self.input_length + future - 1} "
                f"frames, got {T}"
            )
