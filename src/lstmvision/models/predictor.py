"""Recurrent next-frame video predictors: the shared rollout and the ConvLSTM predictor (Shi et al. 2015).

Every predictor here follows the training scheme of the PredRNN / E3D-LSTM releases. Frames are cut into
``patch_size × patch_size`` patches stacked on the channel axis (space-to-depth), a stack of recurrent
cells runs over them, and a head maps the top hidden state back to a patched frame. The first
``input_length`` frames are observed; after them the model feeds its own predictions back in, up to
``total_length`` frames (or any horizon chosen at inference).

During training ``forward`` feeds, per clip and step, the true frame with the probabilities it is given
(``sampling_prob`` for future steps, ``input_sampling_prob`` for observed ones); the schedule of those
probabilities over training is the prediction task's (:mod:`lstmvision.tasks.schedules`,
docs/predictor.md), not the model's.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lstmvision._checks import check_input_dtype, check_tensor
from lstmvision.cells import ConvLSTMCell, ConvLSTMState, sequence_pass
from lstmvision.models.registry import register_model

__all__ = [
    "MOVED_TO_TASK",
    "ConvLSTMPredictor",
    "RecurrentPredictor",
    "drop_moved_arguments",
    "to_frames",
    "to_patches",
]

log = logging.getLogger(__name__)

_FORWARD = "use the prediction task's `sampling: {class_path: %s, init_args: {%s: ...}}` (docs/predictor.md)"

# the predictors' scheduled-sampling arguments before issue 17 -> where each one lives now (the CLI shows
# the line; recorded constructor arguments of older checkpoints and exports drop them, with a note)
MOVED_TO_TASK: dict[str, str] = {
    "sampling_start_value": _FORWARD % ("ScheduledSampling", "start_value"),
    "sampling_changing_rate": _FORWARD % ("ScheduledSampling", "changing_rate"),
    "sampling_stop_iter": _FORWARD % ("ScheduledSampling", "stop_iter"),
    "reverse_scheduled_sampling": (
        "use the prediction task's `sampling: {class_path: ReverseScheduledSampling}` (docs/predictor.md)"
    ),
    "r_sampling_step_1": _FORWARD % ("ReverseScheduledSampling", "step_1"),
    "r_sampling_step_2": _FORWARD % ("ReverseScheduledSampling", "step_2"),
    "r_exp_alpha": _FORWARD % ("ReverseScheduledSampling", "exp_alpha"),
}


def drop_moved_arguments(init_args: Mapping[str, object], source: str) -> dict[str, object]:
    """``init_args`` of a network without the arguments that moved to the task (:data:`MOVED_TO_TASK`),
    logging a note naming them: a network recorded before they moved still rebuilds, its weights are
    the same."""
    moved = sorted(key for key in init_args if key in MOVED_TO_TASK)
    if moved:
        log.warning(
            "%s: dropped the recorded %s: scheduled sampling is now the prediction task's `sampling` "
            "argument, and it does not change the network's weights (docs/predictor.md)",
            source,
            ", ".join(moved),
        )
    return {key: value for key, value in init_args.items() if key not in MOVED_TO_TASK}


def to_patches(frames: Tensor, p: int) -> Tensor:
    """Space-to-depth of every frame: ``(B, T, C, H, W)`` -> ``(B, T, C*p*p, H/p, W/p)``, the channel
    order of ``F.pixel_unshuffle``. One copy through a permutation: ATen's pixel_unshuffle and
    pixel_shuffle took 2-2.7x as long on the CPU (docs/predictor.md, "The network")."""
    B, T, C, H, W = frames.shape
    x = frames.reshape(B, T, C, H // p, p, W // p, p)  # (B, T, C, H/p, i, W/p, j)
    return x.permute(0, 1, 2, 4, 6, 3, 5).reshape(B, T, C * p * p, H // p, W // p)  # (B, T, C*i*j, H/p, W/p)


def to_frames(patches: Tensor, p: int) -> Tensor:
    """Depth-to-space, the inverse of :func:`to_patches`: ``(B, T, C*p*p, h, w)`` -> ``(B, T, C, h*p, w*p)``
    (``F.pixel_shuffle``'s order)."""
    B, T, channels, h, w = patches.shape
    C = channels // (p * p)
    x = patches.reshape(B, T, C, p, p, h, w)  # (B, T, C, i, j, h, w)
    return x.permute(0, 1, 2, 5, 3, 6, 4).reshape(B, T, C, h * p, w * p)  # (B, T, C, h*i, w*j)


def check_positive(**values: int) -> None:
    """A ValueError naming the first argument below 1 (sizes, lengths, kernel sizes of the predictors)."""
    for key, value in values.items():
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")


def check_num_hidden(num_hidden: Sequence[int]) -> list[int]:
    """``num_hidden`` as a list of positive ints, or a ValueError naming it."""
    sizes = list(num_hidden)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"num_hidden must be a non-empty list of positive sizes, got {sizes}")
    return sizes


class RecurrentPredictor(nn.Module, abc.ABC):
    """Patching, input checks, the feeding of true or predicted frames and the autoregressive rollout
    shared by predictors.

    A subclass builds its cells and head and implements :meth:`step`, which reads the patched frames fed
    so far and returns the next patched frame. Everything else — which frame is fed at each step, the
    horizon — lives here, once. How often true frames are fed during training is given to ``forward``;
    the schedule that decides it belongs to the prediction task (:mod:`lstmvision.tasks.schedules`).

    Args:
        in_channels: channels of a frame (1 for Moving MNIST and KTH).
        patch_size: side of the square patches folded into channels; must divide the frame size.
        input_length: observed frames (``--input_length``).
        total_length: observed plus predicted frames used in training (``--total_length``).

    Shape:
        - frames: ``(B, T, C, H, W)`` with ``T >= input_length``, values in [0, 1].
        - output: ``(B, input_length - 1 + future, C, H, W)``: the prediction of frames
          ``1 … input_length + future - 1`` (each made from the frames before it).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        patch_size: int,
        input_length: int,
        total_length: int,
    ) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, patch_size=patch_size, input_length=input_length)
        if total_length <= input_length:
            raise ValueError(
                f"total_length must be greater than input_length, got total_length={total_length}, "
                f"input_length={input_length}"
            )
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.input_length = input_length
        self.total_length = total_length

    @property
    def patch_channels(self) -> int:
        """Channels of a patched frame, ``in_channels * patch_size**2``."""
        return self.in_channels * self.patch_size**2

    @property
    def future_length(self) -> int:
        """Frames predicted after the observed ones in training (``total_length - input_length``)."""
        return self.total_length - self.input_length

    # ------------------------------------------------------------------------------------------ rollout
    @abc.abstractmethod
    def step(self, fed: list[Tensor], state: Any) -> tuple[Tensor, Any]:
        """Predict the next patched frame from the patched frames ``fed`` so far (the last is the newest).

        ``state`` is what the previous call returned (``None`` at the first step).
        """

    def forward(
        self,
        frames: Tensor,
        *,
        future: int | None = None,
        sampling_prob: float = 0.0,
        input_sampling_prob: float = 1.0,
    ) -> Tensor:
        """Predict each next frame; after ``input_length`` frames feed predictions back ``future`` times.

        ``sampling_prob`` > 0 (training) feeds, per clip and future step, the true frame with that
        probability instead of the prediction, so ``frames`` must then hold ``input_length + future - 1``
        frames. ``input_sampling_prob`` < 1 (reverse scheduled sampling) feeds, per clip and observed
        step after the first, the model's own prediction with probability ``1 - input_sampling_prob``.
        """
        future = self.future_length if future is None else future
        self._check_input(frames, future, sampling_prob, input_sampling_prob)
        B = frames.shape[0]
        p = self.patch_size
        steps = self.input_length + future - 1

        patches = to_patches(frames, p)  # (B, T, C*p*p, H/p, W/p)
        # per clip and step: read the true frame? One Bernoulli draw shared by all pixels (as the releases)
        use_truth = torch.ones(B, steps, 1, 1, 1, dtype=torch.bool, device=frames.device)
        if input_sampling_prob < 1.0:
            draws = torch.rand(B, self.input_length - 1, 1, 1, 1, device=frames.device)
            use_truth[:, 1 : self.input_length] = draws < input_sampling_prob
        use_truth[:, self.input_length :] = (
            torch.rand(B, steps - self.input_length, 1, 1, 1, device=frames.device) < sampling_prob
        )
        fed: list[Tensor] = []
        outputs: list[Tensor] = []
        state: Any = None
        # every step's convolutions share one weight-gradient computation (or cast) per weight (cells/_pooled.py)
        with sequence_pass():
            for t in range(steps):
                if t == 0:
                    x = patches[:, 0]
                elif t < self.input_length and input_sampling_prob >= 1.0:
                    x = patches[:, t]
                elif t >= self.input_length and sampling_prob <= 0.0:
                    x = outputs[-1]
                else:
                    x = torch.where(use_truth[:, t], patches[:, t], outputs[-1])
                fed.append(x)
                prediction, state = self.step(fed, state)
                outputs.append(prediction)
        return to_frames(torch.stack(outputs, dim=1), p)  # (B, steps, C, H, W)

    def forecast(self, frames: Tensor, future: int | None = None) -> Tensor:
        """The ``future`` frames after the first ``input_length`` of ``frames``, and nothing else.

        ``forward`` also returns its one-step predictions of observed frames ``1 … input_length - 1``
        (what training scores); this is the part of its output that lies past the observed frames,
        made with no true frame fed back. Frames after the first ``input_length`` are not read.

        Shape:
            - frames: ``(B, T, C, H, W)`` with ``T >= input_length``.
            - output: ``(B, future, C, H, W)``; ``future`` defaults to ``total_length - input_length``.
        """
        future = self.future_length if future is None else future
        # forward's step input_length - 1 predicts the first unseen frame
        return self(frames[:, : self.input_length], future=future)[:, self.input_length - 1 :]

    def _check_input(
        self, frames: Tensor, future: int, sampling_prob: float, input_sampling_prob: float
    ) -> None:
        name = type(self).__name__
        check_tensor(name, frames, "frames")
        if frames.dim() != 5:
            raise ValueError(f"{name} expects frames (B, T, C, H, W), got shape {tuple(frames.shape)}")
        check_input_dtype(name, frames, self)
        _, T, C, H, W = frames.shape
        if C != self.in_channels:
            hint = (
                "; `grayscale: true` in the data config gives one-channel frames"
                if (self.in_channels, C) == (1, 3)
                else ""
            )
            raise ValueError(
                f"{name} expects {self.in_channels} channels, got {C} (shape {tuple(frames.shape)}){hint}"
            )
        if H == 0 or W == 0:
            raise ValueError(f"{name} expects frames of at least 1x1 pixels, got {H}x{W}")
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(
                f"patch_size={self.patch_size} must divide the frame height and width (the data's "
                f"image_size), got frames of {H}x{W}"
            )
        if T < self.input_length:
            raise ValueError(f"{name} needs at least input_length={self.input_length} frames, got {T}")
        if future < 1:
            raise ValueError(f"future must be >= 1, got {future}")
        for key, value in (("sampling_prob", sampling_prob), ("input_sampling_prob", input_sampling_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {value}")
        if sampling_prob > 0.0 and T < self.input_length + future - 1:
            need = self.input_length + future - 1
            raise ValueError(
                f"{name}: scheduled sampling (sampling_prob={sampling_prob}) feeds true frames, so it needs "
                f"input_length + future - 1 = {need} frames (total_length - 1 when future is not given), "
                f"got {T}"
            )


@register_model("convlstm")
class ConvLSTMPredictor(RecurrentPredictor):
    """ConvLSTM encoder-forecaster predicting every next frame of a clip.

    Args:
        in_channels, patch_size, input_length, total_length: see :class:`RecurrentPredictor`.
        num_hidden: hidden channels of each stacked cell (the release's ``--num_hidden``).
        filter_size: kernel size of every cell's convolutions (``--filter_size``).
        layer_norm: normalise each cell's gates (``--layer_norm``).

    Shape:
        - frames: ``(B, T, C, H, W)`` with ``T >= input_length``, values in [0, 1].
        - output: ``(B, input_length - 1 + future, C, H, W)``.
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
    ) -> None:
        super().__init__(
            in_channels,
            patch_size=patch_size,
            input_length=input_length,
            total_length=total_length,
        )
        sizes = [self.patch_channels, *check_num_hidden(num_hidden)]
        check_positive(filter_size=filter_size)
        self.cells = nn.ModuleList(
            ConvLSTMCell(sizes[i], sizes[i + 1], filter_size, layer_norm=layer_norm)
            for i in range(len(sizes) - 1)
        )
        # the release's output head: a 1x1 convolution from the top hidden state, no bias, no squashing
        self.head = nn.Conv2d(sizes[-1], self.patch_channels, kernel_size=1, bias=False)

    def step(
        self, fed: list[Tensor], state: list[ConvLSTMState | None] | None
    ) -> tuple[Tensor, list[ConvLSTMState | None]]:
        states: list[ConvLSTMState | None] = state if state is not None else [None] * len(self.cells)
        x = fed[-1]
        for i, cell in enumerate(self.cells):
            x, states[i] = cell(x, states[i])
        return self.head(x), states
