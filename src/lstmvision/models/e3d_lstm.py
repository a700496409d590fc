"""E3D-LSTM (Wang et al., "Eidetic 3D LSTM: A Model for Video Prediction and Beyond", ICLR 2019).

https://openreview.net/forum?id=B1lKS2AqtX — the video predictor and the early-activity-recognition
classifier built on the same encoder (a stack of :class:`~lstmvision.cells.Eidetic3DLSTMCell`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from lstmvision._checks import check_fraction, check_input_dtype, check_tensor
from lstmvision._io import safe_load
from lstmvision.cells import Eidetic3DLSTM, Eidetic3DLSTMState
from lstmvision.layers import observed_frames
from lstmvision.models.predictor import RecurrentPredictor, check_num_hidden, to_patches
from lstmvision.models.registry import register_model

__all__ = ["E3DLSTMClassifier", "E3DLSTMPredictor"]


def _encoder(
    in_channels: int,
    num_hidden: Sequence[int],
    filter_size: int,
    window_length: int,
    recall_window: int | None,
    layer_norm: bool,
) -> Eidetic3DLSTM:
    sizes = check_num_hidden(num_hidden)
    return Eidetic3DLSTM(
        in_channels,
        sizes,
        filter_size,
        num_layers=len(sizes),
        window_length=window_length,
        recall_window=recall_window,
        layer_norm=layer_norm,
    )


@register_model("e3d_lstm")
class E3DLSTMPredictor(RecurrentPredictor):
    """E3D-LSTM video predictor: eidetic 3D LSTM cells over sliding windows of patched frames.

    At step ``t`` the stack reads the window of the last ``window_length`` frames fed (true or
    predicted; zero frames before the first, as the release prepends), the memory M climbs the stack
    and passes from the top layer at ``t - 1`` to the bottom layer at ``t``, and a 3D convolution with
    kernel and stride ``(window_length, 1, 1)`` (the release's ``generator``) folds the top hidden
    window into the next patched frame.

    Args:
        in_channels, patch_size, input_length, total_length: see
            :class:`~lstmvision.models.RecurrentPredictor`.
        num_hidden: hidden channels of each stacked cell (``--num_hidden``).
        filter_size: spatial kernel size of every 3D convolution (``--filter_size``).
        window_length: frames per input window, the temporal kernel size (the release's
            ``window_length``, fixed to 2 there).
        recall_window: past steps the recall gate attends over (None = all of them).
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
        window_length: int = 2,
        recall_window: int | None = None,
        input_length: int = 10,
        total_length: int = 20,
        layer_norm: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            patch_size=patch_size,
            input_length=input_length,
            total_length=total_length,
        )
        self.stack = _encoder(
            self.patch_channels, num_hidden, filter_size, window_length, recall_window, layer_norm
        )
        self.window_length = window_length
        w = window_length
        self.head = nn.Conv3d(num_hidden[-1], self.patch_channels, (w, 1, 1), stride=(w, 1, 1), bias=False)

    def step(
        self, fed: list[Tensor], state: list[Eidetic3DLSTMState] | None
    ) -> tuple[Tensor, list[Eidetic3DLSTMState]]:
        return self.window_step(self.frame_window(fed), state)

    def frame_window(self, fed: list[Tensor]) -> Tensor:
        """The last ``window_length`` frames fed, stacked oldest first: ``(B, Cp, w, H/p, W/p)``. Before
        frame ``w - 1`` the window starts with zero frames, as in the release."""
        w = self.window_length
        recent = fed[-w:]
        if len(recent) < w:
            recent = [torch.zeros_like(recent[0])] * (w - len(recent)) + recent
        return torch.stack(recent, dim=2)

    def window_step(
        self, window: Tensor, state: list[Eidetic3DLSTMState] | None
    ) -> tuple[Tensor, list[Eidetic3DLSTMState]]:
        """One time step from a :meth:`frame_window`: the cells, then the head. ``compile: true``
        compiles this part alone: one window tensor, whatever mix of true and predicted frames it holds,
        keeps the compiled graphs to a handful."""
        h, states = self.stack.step(window, state)  # (B, Hc_top, w, H/p, W/p)
        return self.head(h).squeeze(2), states  # (B, Cp, 1, H/p, W/p) -> (B, Cp, H/p, W/p)


@register_model("e3d_lstm_classifier")
class E3DLSTMClassifier(nn.Module):
    """Early activity recognition: classify a clip from the E3D-LSTM encoder's states on its first part.

    The clip's first ``ceil(observed_fraction × T)`` frames are patched and run through a stack of
    eidetic 3D LSTM cells (the same encoder as :class:`E3DLSTMPredictor`, so its weights can start from
    a trained predictor); the top hidden states are pooled over time (``"last"`` step or ``"mean"``),
    then over the window and positions, and a linear layer gives the class logits.

    Args:
        in_channels: channels of a frame.
        num_classes: number of classes.
        patch_size, num_hidden, filter_size, window_length, recall_window, layer_norm: the encoder, as
            in :class:`E3DLSTMPredictor`.
        observed_fraction: fraction of each clip the classifier sees, in (0, 1]; ``forward`` can
            override it (the classification task sweeps it at test time).
        pooling: how the top hidden states of the observed steps are pooled over time.
        dropout: dropout before the linear classifier, in training only.
        pretrained_encoder: a checkpoint of an ``e3d_lstm`` predictor (a Lightning ``.ckpt`` or a saved
            ``state_dict``) whose encoder weights initialise this one; loaded with ``weights_only``.

    Shape:
        - frames: ``(B, T, C, H, W)``, values in [0, 1].
        - output: logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 6,
        *,
        patch_size: int = 4,
        num_hidden: Sequence[int] = (64, 64),
        filter_size: int = 5,
        window_length: int = 2,
        recall_window: int | None = None,
        layer_norm: bool = True,
        observed_fraction: float = 1.0,
        pooling: Literal["last", "mean"] = "last",
        dropout: float = 0.0,
        pretrained_encoder: str | None = None,
    ) -> None:
        super().__init__()
        for key, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("patch_size", patch_size),
        ):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        check_fraction(observed_fraction, "observed_fraction")
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.num_classes, self.patch_size = in_channels, num_classes, patch_size
        self.observed_fraction = observed_fraction
        self.pooling = pooling
        self.stack = _encoder(
            in_channels * patch_size**2, num_hidden, filter_size, window_length, recall_window, layer_norm
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(num_hidden[-1], num_classes)
        if pretrained_encoder is not None:
            self.load_encoder(pretrained_encoder)

    def load_encoder(self, path: str | Path) -> None:
        """Copy the encoder (``stack``) weights of a saved ``e3d_lstm`` predictor or classifier."""
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"pretrained_encoder: file not found: {file}")
        # weights_only: a pickle naming code is refused before it runs (UnsafeFileError names the file)
        saved = safe_load(file, what="pretrained_encoder checkpoint")
        state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"pretrained_encoder: {file} holds no state_dict")
        # keys end in "stack.<...>" whatever wraps the network (a task's "model." prefix, or none)
        encoder = {key.split("stack.", 1)[1]: value for key, value in state.items() if "stack." in key}
        if not encoder:
            raise ValueError(f"pretrained_encoder: {file} has no E3D-LSTM encoder weights (keys '*stack.*')")
        missing, unexpected = self.stack.load_state_dict(encoder, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"pretrained_encoder: {file} does not match this encoder: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )

    def forward(self, frames: Tensor, *, observed_fraction: float | None = None) -> Tensor:
        fraction = self.observed_fraction if observed_fraction is None else observed_fraction
        check_fraction(fraction, "observed_fraction")
        check_tensor(type(self).__name__, frames, "frames")
        if frames.dim() != 5:
            raise ValueError(
                f"E3DLSTMClassifier expects frames (B, T, C, H, W), got shape {tuple(frames.shape)}"
            )
        _, T, C, H, W = frames.shape
        if C != self.in_channels:
            raise ValueError(f"E3DLSTMClassifier expects {self.in_channels} channels, got {C}")
        check_input_dtype("E3DLSTMClassifier", frames, self)
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(
                f"patch_size={self.patch_size} must divide the frame height and width (the data's "
                f"image_size), got frames of {H}x{W}"
            )
        seen = observed_frames(fraction, T)
        observed = frames[:, :seen]
        patches = to_patches(observed, self.patch_size)  # (B, seen, C*p*p, H/p, W/p)
        hidden, _ = self.stack(patches)  # (B, steps, Hc, w, H/p, W/p)
        pooled = hidden[:, -1] if self.pooling == "last" else hidden.mean(dim=1)  # (B, Hc, w, H/p, W/p)
        features = pooled.mean(dim=(2, 3, 4))  # (B, Hc)
        return self.classifier(self.dropout(features))
