"""Reading videos for the commands that encode them (``extract-features``, ``caption``): listing a
folder of videos by id, building the frame encoder, sampling and decoding frames, pooled features."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmvision.data.io.frames import videos_in
from lstmvision.data.io.reading import count_frames, read_frames
from lstmvision.data.io.sampling import uniform_frame_indices
from lstmvision.data.io.transforms import ClipTransform
from lstmvision.encoders import FrameEncoder, create_encoder, encode, list_encoders

__all__ = [
    "UnreadableVideo",
    "args_json",
    "build_encoder",
    "failure_reason",
    "frames_to_clip",
    "list_videos",
    "pooled_features",
    "read_sampled_frames",
]

logger = logging.getLogger(__name__)


class UnreadableVideo(ValueError):
    """A video that cannot be decoded into the frames it should have."""


def args_json(encoder_args: Mapping[str, Any]) -> str:
    """Canonical JSON of the encoder arguments (sorted keys: the same arguments give the same text)."""
    return json.dumps(dict(encoder_args), sort_keys=True)


def list_videos(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """Video id -> video (file or frame folder) in natural order of names; an id twice is an error."""
    if not folder.exists():
        raise FileNotFoundError(f"videos folder not found: {folder}")
    if not folder.is_dir():
        raise ValueError(f"{folder}: expected a folder of videos, got a file")
    videos: dict[str, Path] = {}
    for video in videos_in(folder, extensions):
        video_id = video.name if video.is_dir() else video.stem
        if video_id in videos:
            raise ValueError(
                f"two videos have the id {video_id!r}: {videos[video_id]} and {video}; the id (file stem or "
                "frame folder name) keys the feature file, so it must be unique"
            )
        videos[video_id] = video
    if not videos:
        raise ValueError(
            f"{folder}: no video; expected video files ({', '.join(extensions)}) or frame folders"
        )
    return videos


def build_encoder(
    name: str, encoder_args: Mapping[str, Any], weights: Path | None, device: torch.device
) -> FrameEncoder:
    """The registered encoder ``name`` built with ``encoder_args``, its weights loaded, in eval mode."""
    if name not in list_encoders():
        raise ValueError(f"unknown encoder {name!r}; known encoders: {', '.join(list_encoders())}")
    try:
        encoder = create_encoder(name, **encoder_args)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"cannot build encoder {name!r} with encoder_args {args_json(encoder_args)}: {exc}"
        ) from exc
    if encoder.in_channels not in (1, 3):
        raise ValueError(
            f"encoder {name!r} takes {encoder.in_channels} input channels; feature extraction feeds it RGB "
            "frames (3) or gray ones (1): set in_channels to 1 or 3 in encoder_args"
        )
    if weights is not None:
        encoder.load_weights(weights)
    else:
        logger.warning("no weights file: encoder %r keeps its random initialisation", name)
    return encoder.to(device).eval()


def read_sampled_frames(path: Path, frames: int) -> np.ndarray:
    """``uint8 (frames, H, W, 3)``: the uniformly sampled frames, or :class:`UnreadableVideo`."""
    try:
        total = count_frames(path)  # the container's count: decoding stops at the last sampled frame
        if total < 1:
            raise UnreadableVideo(f"{path}: the video holds no frames")
        # a truncated file decodes fewer frames than its header says: read_frames refuses it
        return read_frames(path, uniform_frame_indices(total, frames))
    except (ValueError, OSError) as exc:
        raise UnreadableVideo(str(exc)) from exc


def frames_to_clip(pixels: np.ndarray, transform: ClipTransform) -> torch.Tensor:
    """Decoded ``uint8 (N, H, W, 3)`` frames as the encoder's input ``(N, C, S, S)``, floats in [0, 1]."""
    return transform(torch.from_numpy(pixels).permute(0, 3, 1, 2))


def pooled_features(
    clip: torch.Tensor, encoder: FrameEncoder, batch_size: int, device: torch.device
) -> np.ndarray:
    """``float32 (N, D)``: the pooled vector of each frame of ``clip`` ``(N, C, S, S)``, ``batch_size``
    frames per encoder call."""
    chunks = []
    with torch.no_grad():
        for start in range(0, clip.shape[0], batch_size):
            _, pooled = encode(encoder, clip[start : start + batch_size].to(device))  # (b, D)
            chunks.append(pooled.float().cpu())
    return torch.cat(chunks).numpy()


def failure_reason(path: Path, exc: Exception) -> str:
    """The message of a failure on ``path`` without the path it starts with (the report names it)."""
    return str(exc).removeprefix(f"{path}: ")
