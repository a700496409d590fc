"""Multi-view classifiers: MP-LSTM and the fusion baselines it is compared with.

Every model here takes the same inputs, so one config switches between them:

- frames of V views ``(B, V, T, C, H, W)`` when built with a frame ``encoder`` (one shared by all views,
  or one per view with ``share_encoder=False``), each view folded over its ``B·T`` frames;
- per-view feature sequences ``(B, V, T, D)``, or V tensors ``(B, T, D_v)`` when the views' sizes
  differ, when built with ``encoder=None`` and ``feature_size``.

Registered models:

- ``mp_lstm`` (:class:`MPLSTMClassifier`): the network of Sepas-Moghaddam et al. (CVPR 2021) — a
  bidirectional :class:`~lstmvision.cells.MultiPerspectiveLSTM`, attention over time, a linear softmax
  classifier;
- ``early_fusion`` (:class:`EarlyFusionClassifier`): the views' features concatenated per frame, one LSTM;
- ``late_fusion`` (:class:`LateFusionClassifier`): one LSTM per view, fused after pooling;
- ``mv_lstm`` (:class:`MVLSTMClassifier`): the multi-view LSTM of Rajagopalan et al. (ECCV 2016);
- ``single_view`` (:class:`SingleViewClassifier`): one chosen view only.

All recurrent models end in the same head: :class:`~lstmvision.layers.TemporalAttentionPooling` over
the outputs, dropout, a linear layer. They differ only in how the views meet.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmvision._checks import check_input_dtype, check_lengths, check_rate
from lstmvision.cells.common import split_views, view_sizes
from lstmvision.cells.mplstm import MultiPerspectiveLSTM
from lstmvision.cells.mvlstm import MultiViewLSTM
from lstmvision.layers import TemporalAttentionPooling, TimeDistributed
from lstmvision.models.registry import register_model
from lstmvision.models.video_classifier import as_frame_encoder

__all__ = [
    "EarlyFusionClassifier",
    "LateFusionClassifier",
    "MPLSTMClassifier",
    "MVLSTMClassifier",
    "SingleViewClassifier",
]

ViewInput = Tensor | Sequence[Tensor]


class _MultiViewClassifier(nn.Module):
    """What every multi-view classifier shares: input checks and the per-view encoders.

    ``input_rank`` (6 for frames, 4 for features) and ``time_dim`` (2) tell
    :class:`~lstmvision.tasks.VideoClassificationTask` where the time axis of a batch is.
    """

    time_dim = 2
    attention: nn.Module  # the head every subclass builds (late fusion has one per view instead)
    classifier: nn.Module

    def __init__(
        self,
        num_classes: int,
        num_views: int,
        encoder: nn.Module | str | None,
        *,
        in_channels: int,
        share_encoder: bool,
        feature_size: int | Sequence[int] | None,
        encoded_views: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.num_classes, self.num_views, self.in_channels = num_classes, num_views, in_channels
        self.share_encoder = share_encoder
        # the views that are read at all (single_view reads one): the others are never encoded
        self.encoded_views = list(range(num_views)) if encoded_views is None else list(encoded_views)
        self.encoders = nn.ModuleList()
        if encoder is None:
            if feature_size is None:
                raise ValueError(
                    "give a frame encoder, or encoder=None with feature_size (pre-extracted features)"
                )
            self.feature_sizes = view_sizes(feature_size, num_views)
            self.input_rank, self.input_layout = 4, "(B, V, T, D)"
            return
        if feature_size is not None:
            raise ValueError(
                "feature_size is for pre-extracted features (encoder=None); with a frame encoder the "
                f"feature size is the encoder's, got feature_size={feature_size!r}"
            )
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        frame_encoder = as_frame_encoder(encoder, in_channels)
        copies = 1 if share_encoder else len(self.encoded_views)
        # separate encoders start as copies of one (the same pretrained weights, if any) and diverge
        for k in range(copies):
            module = frame_encoder if k == 0 else copy.deepcopy(frame_encoder)
            self.encoders.append(TimeDistributed(module, input_rank=5))
        self.feature_sizes = [frame_encoder.feature_dim] * num_views
        self.input_rank, self.input_layout = 6, "(B, V, T, C, H, W)"

    @property
    def has_encoder(self) -> bool:
        return len(self.encoders) > 0

    def encode(self, x: ViewInput) -> list[Tensor]:
        """The feature sequences ``(B, T, D_v)`` of the views in ``encoded_views``, in that order."""
        name = type(self).__name__
        if not self.has_encoder:
            views = split_views(
                name, self, x, self.feature_sizes, 3, 1, "features (B, V, T, D) or a list of V (B, T, D_v)"
            )
            return [views[k] for k in self.encoded_views]
        if not isinstance(x, Tensor) or x.dim() != 6:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} expects frames (B, V, T, C, H, W), got {got}")
        B, V, _, C = x.shape[:4]
        if V != self.num_views:
            raise ValueError(f"{name} expects {self.num_views} views, got {V} in {tuple(x.shape)}")
        if C != self.in_channels:
            raise ValueError(f"{name} expects C={self.in_channels} channels, got {C} in {tuple(x.shape)}")
        if min(x.shape) < 1:
            raise ValueError(f"{name} expects non-empty frames, got shape {tuple(x.shape)}")
        check_input_dtype(name, x, self)
        if self.share_encoder:
            # (B, V', T, C, H, W); every view in order needs no copy
            chosen = x if self.encoded_views == list(range(V)) else x[:, self.encoded_views]
            _, pooled = self.encoders[0](chosen.flatten(0, 1))  # one call over all B·V'·T frames
            return list(pooled.unflatten(0, (B, len(self.encoded_views))).unbind(1))  # V' x (B, T, D)
        return [encoder(x[:, k])[1] for encoder, k in zip(self.encoders, self.encoded_views)]

    def forward(self, x: ViewInput, lengths: Tensor | None = None) -> Tensor:
        """Logits ``(B, K)``: encode the views, join them over time (:meth:`sequence`), pool with
        attention, classify."""
        views = self.encode(x)
        lengths = _lengths(views, lengths)
        pooled, _ = self.attention(self.sequence(views, lengths), lengths)
        return self.classifier(pooled)

    def sequence(self, views: list[Tensor], lengths: Tensor | None) -> Tensor:
        """The recurrent outputs ``(B, T, F)`` of the encoded views; what tells the models apart."""
        raise NotImplementedError


def _head(
    out_size: int, num_classes: int, attention_size: int, dropout: float
) -> tuple[nn.Module, nn.Module]:
    return TemporalAttentionPooling(out_size, attention_size), nn.Sequential(
        nn.Dropout(dropout), nn.Linear(out_size, num_classes)
    )


def _check_common(hidden_size: int, attention_size: int, num_layers: int, **dropouts: float) -> None:
    sizes = (("hidden_size", hidden_size), ("attention_size", attention_size), ("num_layers", num_layers))
    for name, value in sizes:
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    for name, rate in dropouts.items():
        check_rate(rate, name)


def _lstm(input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, dropout: float) -> nn.LSTM:
    """The baselines' ``nn.LSTM`` (batch first; ``dropout`` between layers only, as nn.LSTM warns otherwise)."""
    return nn.LSTM(
        input_size,
        hidden_size,
        num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


def _run_lstm(lstm: nn.Module, x: Tensor, lengths: Tensor | None) -> Tensor:
    """Outputs ``(B, T, dirs*H)`` of ``nn.LSTM`` over ``(B, T, D)``, packed when there are lengths."""
    if lengths is None:
        return lstm(x)[0]
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def _lengths(views: list[Tensor], lengths: Tensor | None) -> Tensor | None:
    B, T = views[0].shape[:2]
    return check_lengths(lengths, B, T, views[0].device)


@register_model("mp_lstm")
class MPLSTMClassifier(_MultiViewClassifier):
    """MP-LSTM classifier: per-view features -> bidirectional MP-LSTM -> attention over time -> linear.

    The released network's shape (BiMPLSTM, temporal attention, dense softmax) with the cell of
    :mod:`lstmvision.cells.mplstm`.

    Args:
        num_classes: K.
        num_views: V.
        encoder: a registered encoder name or an ``nn.Module`` for frames; ``None`` for pre-extracted
            features of ``feature_size``.
        in_channels: C, channels of a frame.
        share_encoder: one encoder for every view (True) or one per view, starting from copies of it.
        feature_size: D (or one D per view) of pre-extracted features; only with ``encoder=None``.
        hidden_size: H of the MP-LSTM (per direction).
        num_layers: stacked MP-LSTM layers.
        bidirectional: read the clip both ways (the released network does).
        peepholes: the cell's peephole connections.
        output_reduction: ``"sum"`` (the paper) or ``"mean"`` of the views' outputs.
        input_dropout, recurrent_dropout: the cell's variational dropout (one mask per view).
        attention_size: width of the attention's hidden layer.
        dropout: dropout before the classifier.

    Shape:
        - x: ``(B, V, T, C, H, W)`` frames, or ``(B, V, T, D)`` / V tensors ``(B, T, D_v)`` features;
          lengths: ``(B,)`` or None.
        - output: logits ``(B, K)``.
    """

    def __init__(
        self,
        num_classes: int,
        num_views: int,
        encoder: nn.Module | str | None = "small_cnn",
        *,
        in_channels: int = 3,
        share_encoder: bool = True,
        feature_size: int | list[int] | None = None,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        peepholes: bool = False,
        output_reduction: Literal["sum", "mean"] = "sum",
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        attention_size: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes,
            num_views,
            encoder,
            in_channels=in_channels,
            share_encoder=share_encoder,
            feature_size=feature_size,
        )
        _check_common(hidden_size, attention_size, num_layers, dropout=dropout)
        self.recurrent = MultiPerspectiveLSTM(
            self.feature_sizes,
            hidden_size,
            num_views,
            num_layers,
            bidirectional=bidirectional,
            peepholes=peepholes,
            output_reduction=output_reduction,
            input_dropout=input_dropout,
            recurrent_dropout=recurrent_dropout,
        )
        out_size = hidden_size * (2 if bidirectional else 1)
        self.attention, self.classifier = _head(out_size, num_classes, attention_size, dropout)

    def sequence(self, views: list[Tensor], lengths: Tensor | None) -> Tensor:
        return self.recurrent(views, lengths=lengths)[0]  # (B, T, dirs*H)


@register_model("early_fusion")
class EarlyFusionClassifier(_MultiViewClassifier):
    """Early fusion: the views' features concatenated per frame -> ``nn.LSTM`` -> attention -> linear.

    Args are those of :class:`MPLSTMClassifier` without the MP-LSTM cell's options; ``dropout_lstm``
    is ``nn.LSTM``'s dropout between layers.
    """

    def __init__(
        self,
        num_classes: int,
        num_views: int,
        encoder: nn.Module | str | None = "small_cnn",
        *,
        in_channels: int = 3,
        share_encoder: bool = True,
        feature_size: int | list[int] | None = None,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout_lstm: float = 0.0,
        attention_size: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes,
            num_views,
            encoder,
            in_channels=in_channels,
            share_encoder=share_encoder,
            feature_size=feature_size,
        )
        _check_common(hidden_size, attention_size, num_layers, dropout=dropout, dropout_lstm=dropout_lstm)
        self.lstm = _lstm(sum(self.feature_sizes), hidden_size, num_layers, bidirectional, dropout_lstm)
        out_size = hidden_size * (2 if bidirectional else 1)
        self.attention, self.classifier = _head(out_size, num_classes, attention_size, dropout)

    def sequence(self, views: list[Tensor], lengths: Tensor | None) -> Tensor:
        return _run_lstm(self.lstm, torch.cat(views, dim=-1), lengths)  # (B, T, sum D) -> (B, T, dirs*H)


@register_model("late_fusion")
class LateFusionClassifier(_MultiViewClassifier):
    """Late fusion: one ``nn.LSTM`` and attention pooling per view, fused at the end.

    Args are those of :class:`EarlyFusionClassifier`, plus ``fusion``: ``"logits_mean"`` (each view
    has its own linear classifier, the logits are averaged), ``"features_mean"`` (the pooled features
    are averaged, one classifier) or ``"features_concat"`` (concatenated, one classifier).
    """

    def __init__(
        self,
        num_classes: int,
        num_views: int,
        encoder: nn.Module | str | None = "small_cnn",
        *,
        in_channels: int = 3,
        share_encoder: bool = True,
        feature_size: int | list[int] | None = None,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout_lstm: float = 0.0,
        attention_size: int = 64,
        dropout: float = 0.0,
        fusion: Literal["logits_mean", "features_mean", "features_concat"] = "logits_mean",
    ) -> None:
        super().__init__(
            num_classes,
            num_views,
            encoder,
            in_channels=in_channels,
            share_encoder=share_encoder,
            feature_size=feature_size,
        )
        _check_common(hidden_size, attention_size, num_layers, dropout=dropout, dropout_lstm=dropout_lstm)
        if fusion not in ("logits_mean", "features_mean", "features_concat"):
            raise ValueError(
                f"fusion must be 'logits_mean', 'features_mean' or 'features_concat', got {fusion!r}"
            )
        self.fusion = fusion
        out_size = hidden_size * (2 if bidirectional else 1)
        self.lstms = nn.ModuleList(
            _lstm(size, hidden_size, num_layers, bidirectional, dropout_lstm) for size in self.feature_sizes
        )
        self.attentions = nn.ModuleList(
            TemporalAttentionPooling(out_size, attention_size) for _ in range(num_views)
        )
        heads = num_views if fusion == "logits_mean" else 1
        in_head = out_size * num_views if fusion == "features_concat" else out_size
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(in_head, num_classes)) for _ in range(heads)
        )

    def forward(self, x: ViewInput, lengths: Tensor | None = None) -> Tensor:
        views = self.encode(x)
        lengths = _lengths(views, lengths)
        pooled = [
            attention(_run_lstm(lstm, view, lengths), lengths)[0]  # (B, dirs*H)
            for lstm, attention, view in zip(self.lstms, self.attentions, views)
        ]
        if self.fusion == "logits_mean":
            return torch.stack([head(p) for head, p in zip(self.classifiers, pooled)]).mean(dim=0)
        fused = (
            torch.stack(pooled).mean(dim=0) if self.fusion == "features_mean" else torch.cat(pooled, dim=-1)
        )
        return self.classifiers[0](fused)


@register_model("mv_lstm")
class MVLSTMClassifier(_MultiViewClassifier):
    """MV-LSTM classifier: bidirectional :class:`~lstmvision.cells.MultiViewLSTM` -> attention -> linear.

    Args are those of :class:`EarlyFusionClassifier`, plus ``view_specific_fraction`` (the paper's α).
    ``hidden_size`` is the number of cells *per view*, so the whole memory holds ``V * hidden_size``.
    """

    def __init__(
        self,
        num_classes: int,
        num_views: int,
        encoder: nn.Module | str | None = "small_cnn",
        *,
        in_channels: int = 3,
        share_encoder: bool = True,
        feature_size: int | list[int] | None = None,
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        view_specific_fraction: float = 0.5,
        dropout_lstm: float = 0.0,
        attention_size: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes,
            num_views,
            encoder,
            in_channels=in_channels,
            share_encoder=share_encoder,
            feature_size=feature_size,
        )
        _check_common(hidden_size, attention_size, num_layers, dropout=dropout, dropout_lstm=dropout_lstm)
        self.recurrent = MultiViewLSTM(
            self.feature_sizes,
            hidden_size,
            num_views,
            num_layers,
            view_specific_fraction=view_specific_fraction,
            dropout=dropout_lstm,
            bidirectional=bidirectional,
        )
        out_size = hidden_size * num_views * (2 if bidirectional else 1)
        self.attention, self.classifier = _head(out_size, num_classes, attention_size, dropout)

    def sequence(self, views: list[Tensor], lengths: Tensor | None) -> Tensor:
        return self.recurrent(views, lengths=lengths)[0]  # (B, T, V*H*dirs)


@register_model("single_view")
class SingleViewClassifier(_MultiViewClassifier):
    """One view only: its features -> ``nn.LSTM`` -> attention -> linear; the other views are ignored
    (never encoded). Takes the same multi-view inputs as the other models, so it runs on the same data.

    Args are those of :class:`EarlyFusionClassifier`, plus ``view``: the index of the view to use.
    """

    def __init__(
        self,
        num_classes: int,
        num_views: int,
        encoder: nn.Module | str | None = "small_cnn",
        *,
        view: int = 0,
        in_channels: int = 3,
        feature_size: int | list[int] | None = None,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout_lstm: float = 0.0,
        attention_size: int = 64,
        dropout: float = 0.0,
    ) -> None:
        if isinstance(view, bool) or not isinstance(view, int) or not 0 <= view < num_views:
            raise ValueError(
                f"view must be an index in [0, {num_views - 1}] (num_views={num_views}), got {view!r}"
            )
        super().__init__(
            num_classes,
            num_views,
            encoder,
            in_channels=in_channels,
            share_encoder=True,
            feature_size=feature_size,
            encoded_views=[view],
        )
        _check_common(hidden_size, attention_size, num_layers, dropout=dropout, dropout_lstm=dropout_lstm)
        self.view = view
        self.lstm = _lstm(self.feature_sizes[view], hidden_size, num_layers, bidirectional, dropout_lstm)
        out_size = hidden_size * (2 if bidirectional else 1)
        self.attention, self.classifier = _head(out_size, num_classes, attention_size, dropout)

    def sequence(self, views: list[Tensor], lengths: Tensor | None) -> Tensor:
        (features,) = views  # (B, T, D) of the chosen view, the only one encoded
        return _run_lstm(self.lstm, features, lengths)
