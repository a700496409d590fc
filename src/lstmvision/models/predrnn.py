"""PredRNN video predictor (Wang et al., NeurIPS 2017): stacked spatiotemporal LSTMs with a zigzag memory.

https://papers.nips.cc/paper/6689-predrnn-recurrent-neural-networks-for-predictive-learning-using-spatiotemporal-lstms
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lstmvision.cells import SpatioTemporalLSTM, SpatioTemporalLSTMState
from lstmvision.models.predictor import RecurrentPredictor, check_num_hidden, check_positive
from lstmvision.models.registry import register_model

__all__ = ["PredRNNPredictor"]


@register_model("predrnn")
class PredRNNPredictor(RecurrentPredictor):
    """PredRNN: a stack of :class:`~lstmvision.cells.SpatioTemporalLSTMCell` over patched frames.

    The spatiotemporal memory M climbs the stack within a step and passes from the top layer at step
    ``t - 1`` to the bottom layer at step ``t``; a 1×1 convolution (no bias, as the release's
    ``conv_last``) maps the top hidden state to the next patched frame.

    Args:
        in_channels, patch_size, input_length, total_length: see
            :class:`~lstmvision.models.RecurrentPredictor`.
        num_hidden: hidden channels of each stacked cell (``--num_hidden``).
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
        sizes = check_num_hidden(num_hidden)
        check_positive(filter_size=filter_size)
        self.stack = SpatioTemporalLSTM(
            self.patch_channels, sizes, filter_size, num_layers=len(sizes), layer_norm=layer_norm
        )
        self.head = nn.Conv2d(sizes[-1], self.patch_channels, kernel_size=1, bias=False)

    def step(
        self, fed: list[Tensor], state: list[SpatioTemporalLSTMState] | None
    ) -> tuple[Tensor, list[SpatioTemporalLSTMState]]:
        h, states = self.stack.step(fed[-1], state)  # (B, Hc_top, H/p, W/p)
        return self.head(h), states
