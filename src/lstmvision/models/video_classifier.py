"""Video classifiers built on a frame encoder: CNN-LSTM, CNN-ConvLSTM and a single-frame baseline.

- ``cnn_lstm`` (:class:`CNNLSTM`): LRCN (Donahue et al., "Long-term Recurrent Convolutional Networks
  for Visual Recognition and Description", CVPR 2015, https://arxiv.org/abs/1411.4389): a CNN turns
  every frame into a vector, an LSTM reads the vectors, a linear layer classifies.
- ``cnn_convlstm`` (:class:`CNNConvLSTM`): the Keras recipe ``TimeDistributed(CNN)`` ->
  ``ConvLSTM2D(return_sequences=False)`` -> ``Flatten`` -> ``Dense`` -> ``Dense``: the recurrence runs
  on the CNN's feature maps, so it sees where things move.
- ``single_frame`` (:class:`SingleFrameClassifier`): the same encoder classifies each frame alone and
  the logits are averaged over frames — the baseline that tells how much the order of frames matters.

The encoder runs once over all ``B·T`` frames (:class:`~lstmvision.layers.TimeDistributed`), never in
a loop over frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmvision._checks import check_input_dtype, check_lengths, check_rate, check_tensor
from lstmvision.cells import ConvLSTM
from lstmvision.encoders import ExternalEncoder, FrameEncoder, create_encoder, dry_run
from lstmvision.layers import TemporalAttentionPooling, TimeDistributed, stack_frames, temporal_mean
from lstmvision.models.registry import register_model

__all__ = ["CNNLSTM", "CNNConvLSTM", "SingleFrameClassifier"]


def as_frame_encoder(encoder: nn.Module | str, in_channels: int) -> FrameEncoder:
    """A registered name, a FrameEncoder (checked) or any module (wrapped) as a FrameEncoder."""
    if isinstance(encoder, str):
        return create_encoder(encoder, in_channels=in_channels)
    if isinstance(encoder, FrameEncoder):
        if encoder.in_channels != in_channels:
            raise ValueError(
                f"the encoder {type(encoder).__name__} takes {encoder.in_channels} input channels but the "
                f"model feeds it {in_channels} (in_channels × frame_stack)"
            )
        return encoder
    if isinstance(encoder, nn.Module):
        return ExternalEncoder(encoder, in_channels=in_channels)
    raise TypeError(
        f"encoder must be a registered encoder name or an nn.Module, got {type(encoder).__name__}"
    )


class _FrameClassifier(nn.Module):
    """The part every classifier here shares: input checks, frame stacking, the folded encoder."""

    def __init__(
        self, num_classes: int, encoder: nn.Module | str, in_channels: int, frame_stack: int
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
        self.num_classes, self.in_channels, self.frame_stack = num_classes, in_channels, frame_stack
        frame_encoder = as_frame_encoder(encoder, in_channels * frame_stack)
        self.encoder = TimeDistributed(frame_encoder, input_rank=5)

    @property
    def frame_encoder(self) -> FrameEncoder:
        module = self.encoder.module
        assert isinstance(module, FrameEncoder)  # set in __init__; narrows the type for mypy
        return module

    def encode_frames(self, clips: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Feature maps ``(B, T', C', H', W')``, pooled features ``(B, T', D)`` and the steps' lengths."""
        check_tensor(type(self).__name__, clips, "clips")
        if clips.dim() != 5 or clips.shape[2] != self.in_channels:
            gray = clips.dim() == 5 and (self.in_channels, clips.shape[2]) == (1, 3)
            hint = "; `grayscale: true` in the data config gives one-channel frames" if gray else ""
            raise ValueError(
                f"{type(self).__name__} expects clips (B, T, C={self.in_channels}, H, W), "
                f"got shape {tuple(clips.shape)}{hint}"
            )
        check_input_dtype(type(self).__name__, clips, self)
        if min(clips.shape) < 1:
            # an empty frame would fail inside the encoder's first convolution with no word of the clip
            raise ValueError(
                f"{type(self).__name__} expects non-empty clips (B, T, C, H, W), got shape {tuple(clips.shape)}"
            )
        if self.frame_stack > 1:
            clips = stack_frames(clips, self.frame_stack)  # (B, T-s+1, s*C, H, W)
            if lengths is not None:
                # a clip padded after its last real frame: its last stack must end at that frame
                lengths = (torch.as_tensor(lengths) - self.frame_stack + 1).clamp(min=1)
        maps, pooled = self.encoder(clips)  # one encoder call over all B·T' frames
        return maps, pooled, lengths


@register_model("cnn_lstm")
class CNNLSTM(_FrameClassifier):
    """CNN-LSTM (LRCN): encoder -> pooled vector per frame -> ``torch.nn.LSTM`` -> pooling over time -> linear.

    Args:
        num_classes: K, the number of classes.
        encoder: a registered encoder name (``lstmvision.encoders.list_encoders()``), built with
            ``in_channels * frame_stack`` input channels and its defaults, or any ``nn.Module`` (in YAML:
            ``class_path``/``init_args``) mapping ``(N, C, H, W)`` to feature maps or vectors.
        in_channels: C, channels of a frame.
        hidden_size: hidden size of the LSTM.
        num_layers: stacked LSTM layers.
        bidirectional: a bidirectional LSTM (features of both directions are concatenated).
        dropout: dropout between LSTM layers (``nn.LSTM``'s ``dropout``).
        feature_dropout: dropout on the frame features before the LSTM.
        classifier_dropout: dropout before the linear classifier.
        pooling: ``"last"``: the final hidden state (for a bidirectional LSTM, the forward direction at
            the last valid frame and the backward one at the first); ``"mean"``: the mean of the outputs
            over the valid frames; ``"attention"``: :class:`~lstmvision.layers.TemporalAttentionPooling`.
        frame_stack: feed the encoder ``frame_stack`` consecutive frames as channels (VGG-M on 5 grey
            frames for lip reading); the LSTM then has ``T - frame_stack + 1`` steps.

    Shape:
        - clips: ``(B, T, C, H, W)``; lengths: ``(B,)`` valid frames per clip, or None.
        - output: logits ``(B, K)``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder: nn.Module | str = "small_cnn",
        *,
        in_channels: int = 3,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        feature_dropout: float = 0.0,
        classifier_dropout: float = 0.0,
        pooling: Literal["last", "mean", "attention"] = "last",
        frame_stack: int = 1,
    ) -> None:
        super().__init__(num_classes, encoder, in_channels, frame_stack)
        if pooling not in ("last", "mean", "attention"):
            raise ValueError(f"pooling must be 'last', 'mean' or 'attention', got {pooling!r}")
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1, got {hidden_size} and {num_layers}")
        for name, value in (
            ("dropout", dropout),
            ("feature_dropout", feature_dropout),
            ("classifier_dropout", classifier_dropout),
        ):
            check_rate(value, name)
        self.pooling = pooling
        self.feature_dropout = nn.Dropout(feature_dropout)
        self.lstm = nn.LSTM(
            self.frame_encoder.feature_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,  # nn.LSTM warns about dropout on one layer
            bidirectional=bidirectional,
        )
        out_size = hidden_size * (2 if bidirectional else 1)
        self.attention = TemporalAttentionPooling(out_size) if pooling == "attention" else None
        self.classifier = nn.Sequential(nn.Dropout(classifier_dropout), nn.Linear(out_size, num_classes))

    def forward(self, clips: Tensor, lengths: Tensor | None = None) -> Tensor:
        _, features, lengths = self.encode_frames(clips, lengths)  # features (B, T, D)
        features = self.feature_dropout(features)
        B, T, _ = features.shape
        if lengths is None:
            outputs, (h_n, _) = self.lstm(features)  # outputs (B, T, dirs*H); h_n (layers*dirs, B, H)
        else:
            lengths = check_lengths(lengths, B, T, features.device)
            assert lengths is not None
            packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)  # fmt: skip
            packed_out, (h_n, _) = self.lstm(packed)  # h_n: each clip's state at its last valid frame
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)
        if self.pooling == "last":
            directions = 2 if self.lstm.bidirectional else 1
            pooled = torch.cat(list(h_n[-directions:]), dim=-1)  # top layer: (B, dirs*H)
        elif self.pooling == "mean":
            pooled = temporal_mean(outputs, lengths)
        else:
            assert self.attention is not None  # built for pooling="attention"
            pooled, _ = self.attention(outputs, lengths)
        return self.classifier(pooled)


@register_model("cnn_convlstm")
class CNNConvLSTM(_FrameClassifier):
    """CNN-ConvLSTM: encoder feature maps -> lstmvision ConvLSTM -> flatten or pool -> dense -> linear.

    The Keras recipe ``TimeDistributed(MobileNet)`` -> ``ConvLSTM2D(return_sequences=False)`` ->
    ``Flatten`` -> ``Dense(dense_size, relu)`` -> ``Dense(num_classes)``. The classifier reads the
    final hidden state of the top ConvLSTM layer (at each clip's last valid frame).

    Args:
        num_classes: K, the number of classes.
        encoder: as in :class:`CNNLSTM`; its feature maps feed the ConvLSTM.
        in_channels: C, channels of a frame.
        hidden_channels: hidden channels of each ConvLSTM layer (int, or one per layer).
        kernel_size: ConvLSTM kernel size.
        num_layers: stacked ConvLSTM layers.
        bidirectional: a bidirectional ConvLSTM (final states of both directions are concatenated).
        head: ``"flatten"`` the final hidden maps (Keras ``Flatten``; needs ``image_size``, since the
            dense layer's size depends on the map size) or ``"pool"`` them by global average (any size).
        image_size: frame size (int or (H, W)) the flatten head is built for.
        dense_size: width of the hidden dense layer (ReLU); ``None`` puts the classifier right after
            the flatten/pool.
        dropout: dropout between ConvLSTM layers and before each dense layer.
        frame_stack: as in :class:`CNNLSTM`.

    Shape:
        - clips: ``(B, T, C, H, W)``; lengths: ``(B,)`` or None.
        - output: logits ``(B, K)``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder: nn.Module | str = "small_cnn",
        *,
        in_channels: int = 3,
        hidden_channels: int | Sequence[int] = 64,
        kernel_size: int = 3,
        num_layers: int = 1,
        bidirectional: bool = False,
        head: Literal["flatten", "pool"] = "flatten",
        image_size: int | tuple[int, int] | None = None,
        dense_size: int | None = 256,
        dropout: float = 0.0,
        frame_stack: int = 1,
    ) -> None:
        super().__init__(num_classes, encoder, in_channels, frame_stack)
        if head not in ("flatten", "pool"):
            raise ValueError(f"head must be 'flatten' or 'pool', got {head!r}")
        if dense_size is not None and dense_size < 1:
            raise ValueError(f"dense_size must be >= 1 or None, got {dense_size}")
        check_rate(dropout, "dropout")
        if not self.frame_encoder.has_maps:
            raise ValueError(
                f"CNNConvLSTM needs an encoder that returns feature maps (N, C, H, W); "
                f"{type(self.frame_encoder).__name__} returns only vectors"
            )
        self.head = head
        self.convlstm = ConvLSTM(
            self.frame_encoder.out_channels,
            hidden_channels,
            kernel_size,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
        )
        top = self.convlstm.hidden_channels[-1] * (2 if bidirectional else 1)
        self.map_size: tuple[int, int] | None = None
        if head == "flatten":
            if image_size is None:
                raise ValueError("head='flatten' needs image_size: the dense layer's size depends on it")
            self.map_size = self._map_size(image_size)
            flat = top * self.map_size[0] * self.map_size[1]
        else:
            flat = top
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(dropout)]
        if dense_size is not None:
            layers += [nn.Linear(flat, dense_size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            flat = dense_size
        layers.append(nn.Linear(flat, num_classes))
        self.classifier = nn.Sequential(*layers)

    def _map_size(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """The encoder's map size for frames of ``image_size``, by one forward pass on zeros."""
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        if not (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(v, int) and v >= 1 for v in size)
        ):
            raise ValueError(
                f"image_size must be a positive int or a pair (height, width) of them, got {image_size!r}"
            )
        maps, _ = dry_run(self.frame_encoder, self.frame_encoder.in_channels, *size)
        assert maps is not None  # has_maps was checked before
        return int(maps.shape[-2]), int(maps.shape[-1])

    def forward(self, clips: Tensor, lengths: Tensor | None = None) -> Tensor:
        maps, _, lengths = self.encode_frames(clips, lengths)  # maps (B, T, C', H', W')
        if self.map_size is not None and tuple(maps.shape[-2:]) != self.map_size:
            raise ValueError(
                f"CNNConvLSTM's flatten head was built for {self.map_size[0]}x{self.map_size[1]} feature "
                f"maps (image_size), but frames of {clips.shape[-2]}x{clips.shape[-1]} give "
                f"{maps.shape[-2]}x{maps.shape[-1]}: set image_size to the frame size or use head='pool'"
            )
        _, (h_n, _) = self.convlstm(maps, lengths=lengths)  # h_n (layers*dirs, B, Hc, H', W')
        directions = 2 if self.convlstm.bidirectional else 1
        final = torch.cat(list(h_n[-directions:]), dim=1)  # top layer: (B, dirs*Hc, H', W')
        if self.head == "pool":
            final = final.mean(dim=(-2, -1))  # (B, dirs*Hc)
        return self.classifier(final)


@register_model("single_frame")
class SingleFrameClassifier(_FrameClassifier):
    """Single-frame baseline: every frame is classified alone; the clip's logits are their mean.

    No recurrence, so it can only use what one frame shows. On a data set whose classes differ only in
    motion it stays at chance, which is what it is for.

    Args:
        num_classes: K, the number of classes.
        encoder: as in :class:`CNNLSTM`; its pooled vector feeds the linear classifier.
        in_channels: C, channels of a frame.
        dropout: dropout before the classifier.
        frame_stack: as in :class:`CNNLSTM` (then each "frame" is a stack).

    Shape:
        - clips: ``(B, T, C, H, W)``; lengths: ``(B,)`` or None (padded frames are left out of the mean).
        - output: logits ``(B, K)``.
    """

    def __init__(
        self,
        num_classes: int,
        encoder: nn.Module | str = "small_cnn",
        *,
        in_channels: int = 3,
        dropout: float = 0.0,
        frame_stack: int = 1,
    ) -> None:
        super().__init__(num_classes, encoder, in_channels, frame_stack)
        check_rate(dropout, "dropout")
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(self.frame_encoder.feature_dim, num_classes)
        )

    def forward(self, clips: Tensor, lengths: Tensor | None = None) -> Tensor:
        _, features, lengths = self.encode_frames(clips, lengths)  # (B, T, D)
        logits = self.classifier(features)  # (B, T, K): each frame on its own
        return temporal_mean(logits, lengths)
