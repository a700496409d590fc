"""PredRNN video predictor (Wang et al., NeurIPS 2017): stacked spatiotemporal LSTMs with a zigzag memory,
and PredRNN-v2 (Wang et al., TPAMI 2022), the same network with the memory-decoupling loss.

https://papers.nips.cc/paper/6689-predrnn-recurrent-neural-networks-for-predictive-learning-using-spatiotemporal-lstms
https://arxiv.org/abs/2103.09504 (PredRNN: A Recurrent Neural Network for Spatiotemporal Predictive Learning)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.cells import SpatioTemporalLSTM, SpatioTemporalLSTMState
from lstmvision.models.predictor import RecurrentPredictor, check_num_hidden, check_positive
from lstmvision.models.registry import register_model

__all__ = ["PredRNNPredictor", "PredRNNv2"]


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


@register_model("predrnn_v2")
class PredRNNv2(PredRNNPredictor):
    r"""PredRNN-v2: :class:`PredRNNPredictor` that also computes the memory-decoupling loss.

    Every ST-LSTM layer ``l`` at every step ``t`` of a forward adds to its memories the increments
    :math:`Δc = i_t ⊙ g_t` and :math:`Δm = i'_t ⊙ g'_t` (each ``(B, Hc, H, W)``). One 1×1 convolution
    ``adapter`` (no bias), shared by all layers, maps both; each channel's map is flattened over space
    and L2-normalised, and the loss is the mean absolute cosine similarity of the two, over layers,
    every step of the forward, clips and channels:

    .. math::
        \mathcal{L}_{decouple} = \frac{1}{L\,T'\,B\,H_c} \sum_{l,t,b,k}
        \left| \frac{⟨A Δc^{l}_{t,b,k}, A Δm^{l}_{t,b,k}⟩}{\|A Δc^{l}_{t,b,k}\|\,\|A Δm^{l}_{t,b,k}\|} \right|

    with ``T'`` the forward's steps (``total_length - 1`` in training, observed ones included). The
    forward stores it as :attr:`decoupling_loss`; the prediction task adds ``decouple_beta`` times it to
    the frame loss (``decouple_beta``, the release's ``--decouple_beta``, 0.1). The model itself computes
    no loss on frames.

    Args:
        as :class:`PredRNNPredictor`; every entry of ``num_hidden`` must be equal, as the one adapter
        reads every layer's increments (the release's adapter has ``num_hidden[0]`` channels).

    Shape:
        as :class:`PredRNNPredictor`; :attr:`decoupling_loss` is a scalar in at least float32.

    Differences from the reference implementation (``core/models/predrnn_v2.py``): the loss is the
    model's attribute rather than part of a returned training loss; a vector of zeros normalises to
    zeros here (``F.normalize``), as there, and its cosine with anything is 0.
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
        sizes = check_num_hidden(num_hidden)
        if len(set(sizes)) != 1:
            raise ValueError(
                f"PredRNNv2 shares one adapter between its layers, so every num_hidden entry must be equal, "
                f"got {sizes}"
            )
        super().__init__(
            in_channels,
            patch_size=patch_size,
            num_hidden=sizes,
            filter_size=filter_size,
            input_length=input_length,
            total_length=total_length,
            layer_norm=layer_norm,
        )
        self.adapter = nn.Conv2d(sizes[0], sizes[0], kernel_size=1, bias=False)
        self.decoupling_loss: Tensor | None = None
        self._terms: list[Tensor] = []
        self._record = True  # whether this forward computes the decoupling loss (gradients on)

    def forward(
        self,
        frames: Tensor,
        *,
        future: int | None = None,
        sampling_prob: float = 0.0,
        input_sampling_prob: float = 1.0,
    ) -> Tensor:
        """As :meth:`RecurrentPredictor.forward`; with gradients on, also sets :attr:`decoupling_loss` for
        this forward. Under ``torch.no_grad`` / ``inference_mode`` (validation, test, forecasts) nothing
        trains on it, so it is not computed and :attr:`decoupling_loss` is None."""
        self._terms = []
        self._record = torch.is_grad_enabled()
        try:
            out = super().forward(
                frames, future=future, sampling_prob=sampling_prob, input_sampling_prob=input_sampling_prob
            )
            # every term is a mean over (B, Hc) of one layer and step, so their mean is the mean over all
            self.decoupling_loss = torch.stack(self._terms).mean() if self._record else None
        finally:
            self._terms = []
        return out

    def step(
        self, fed: list[Tensor], state: list[SpatioTemporalLSTMState] | None
    ) -> tuple[Tensor, list[SpatioTemporalLSTMState]]:
        if not self._record:  # no decoupling loss wanted: the plain ST-LSTM step, no increments
            return super().step(fed, state)
        h, states, increments = self.stack.step_increments(fed[-1], state)  # h: (B, Hc_top, H/p, W/p)
        for delta_c, delta_m in increments:
            self._terms.append(self.decoupling_term(delta_c, delta_m))
        return self.head(h), states

    def decoupling_term(self, delta_c: Tensor, delta_m: Tensor) -> Tensor:
        """Mean over clips and channels of ``|cos(adapter(Δc), adapter(Δm))|`` over space, in at least
        float32 (bf16/fp16 are widened, float64 stays)."""
        B, Hc = delta_c.shape[:2]
        dtype = self.adapter.weight.dtype
        both = self.adapter(torch.cat([delta_c, delta_m]).to(dtype))  # (2B, Hc, H, W): one call for both
        if both.dtype in (torch.bfloat16, torch.float16):
            both = both.float()
        # (2B, Hc, H, W) -> (2B, Hc, H*W): one vector per clip and channel, normalised over space
        a, b = F.normalize(both.reshape(2 * B, Hc, -1), dim=2).chunk(2)
        return (a * b).sum(dim=2).abs().mean()
