"""``lstmvision caption``: caption new videos end to end with a checkpoint of the captioning task.

The checkpoint (written by ``lstmvision fit`` with :class:`~lstmvision.tasks.CaptioningTask`) holds the
network's weights, the vocabulary and how the training data turned a video into the model's input:
frames (the embedded set: N frames, their size and channels) or features (an encoder, its arguments and
weights file, N frames and their size, as ``lstmvision extract-features`` recorded them). Each video is
read the same way — N frames sampled uniformly — and decoded with beam search. See docs/sa_lstm.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from lstmvision.checkpoints import load_network
from lstmvision.commands.video_inputs import (
    UnreadableVideo,
    build_encoder,
    failure_reason,
    frames_to_clip,
    list_videos,
    pooled_features,
    read_sampled_frames,
)
from lstmvision.data.checks import check_extensions
from lstmvision.data.io.frames import VIDEO_EXTENSIONS, frame_files
from lstmvision.data.io.sampling import uniform_frame_indices
from lstmvision.data.io.transforms import ClipTransform
from lstmvision.encoders import FrameEncoder
from lstmvision.tasks.captioning import CHECKPOINT_KEY, attention_rows
from lstmvision.text import Vocabulary
from lstmvision.viz import save_attention_map

__all__ = ["CaptionReport", "VideoCaption", "caption_videos", "main"]

log = logging.getLogger(__name__)


class VideoCaption(NamedTuple):
    """The caption of one video, its log-probability and the attention over its frames per word."""

    video_id: str
    path: Path
    caption: str
    score: float
    attention: Tensor  # (words + eos, frames)


class CaptionReport(NamedTuple):
    captions: list[VideoCaption]
    failed: dict[Path, str]  # videos that could not be read, with the reason
    out: Path


def _videos(paths: Sequence[str | Path], extensions: tuple[str, ...]) -> dict[str, Path]:
    """Video id -> file or frame folder, from video files and folders of videos."""
    videos: dict[str, Path] = {}
    for given in map(Path, paths):
        if not given.exists():
            raise FileNotFoundError(f"video not found: {given}")
        found = (
            list_videos(given, extensions)
            if given.is_dir() and not _is_frame_folder(given)
            else {given.name if given.is_dir() else given.stem: given}
        )
        for video_id, path in found.items():
            if video_id in videos and videos[video_id] != path:
                raise ValueError(f"two videos have the id {video_id!r}: {videos[video_id]} and {path}")
            videos[video_id] = path
    return videos


def _is_frame_folder(folder: Path) -> bool:
    """A folder of frame images (one video) rather than a folder of videos."""
    return bool(frame_files(folder))


class _Inputs:
    """Turns a video into the model's input ``(1, N, ...)`` as the checkpoint's training data did."""

    def __init__(self, spec: Mapping[str, Any], weights: str | None, device: torch.device) -> None:
        kind = spec.get("kind")
        self.device = device
        self.encoder: FrameEncoder | None = None
        self.num_frames: int | None = None
        if kind == "frames":
            self.frames = int(spec["frames"])
            size = int(spec["image_size"])
            self.transform = ClipTransform(resize=(size, size), grayscale=int(spec["channels"]) == 1)
        elif kind == "features":
            self.frames = int(spec["frames"])
            size = int(spec.get("image_size") or 0)
            path = weights if weights is not None else spec.get("weights") or None
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(
                    f"the encoder weights file the features were extracted with is not found: {path} "
                    "(give its new place with --weights)"
                )
            args = json.loads(spec["encoder_args"]) if isinstance(spec.get("encoder_args"), str) else {}
            encoder = build_encoder(str(spec["encoder"]), args, None if path is None else Path(path), device)
            self.encoder = encoder
            self.transform = ClipTransform(
                resize=(size, size) if size else None, grayscale=encoder.in_channels == 1
            )
            self.num_frames = spec.get("num_frames")
        else:
            raise ValueError(
                f"the checkpoint's input description has kind {kind!r}; expected 'frames' or 'features'"
            )

    def __call__(self, path: Path) -> tuple[Tensor, Tensor]:
        """The model's input ``(1, N, ...)`` and the frames ``(N, C, H, W)`` in [0, 1] (for pictures)."""
        pixels = read_sampled_frames(path, self.frames)  # uint8 (N, H, W, 3)
        frames = frames_to_clip(pixels, self.transform)  # (N, C, S, S)
        if self.encoder is None:
            return frames[None].to(self.device), frames
        features = pooled_features(frames, self.encoder, 64, self.device)  # (N, D)
        if self.num_frames is not None:
            features = features[uniform_frame_indices(features.shape[0], int(self.num_frames))]
        return torch.from_numpy(np.ascontiguousarray(features))[None].to(self.device), frames


def caption_videos(
    checkpoint: str | Path,
    videos: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    config: str | Path | None = None,
    beam_size: int | None = None,
    max_length: int | None = None,
    length_penalty: float | None = None,
    attention_maps: int = 4,
    weights: str | None = None,
    on_error: Literal["skip", "raise"] = "skip",
    extensions: Sequence[str] | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> CaptionReport:
    """Caption every video of ``videos`` (files, frame folders, folders of videos) with ``checkpoint``.

    Writes ``captions.json`` and ``captions.csv`` and, for the first ``attention_maps`` videos,
    ``attention/<video id>.png`` into ``out`` (default: ``<run>/captions/`` beside the checkpoint's
    ``checkpoints/`` folder). Decoding settings default to the task's (``beam_size``, ``max_length``,
    ``length_penalty``). An unreadable video is reported and skipped, or raises with ``on_error="raise"``.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if attention_maps < 0:
        raise ValueError(f"attention_maps must be >= 0, got {attention_maps}")
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    loaded = load_network(ckpt, config=config)
    saved = loaded.checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(saved, Mapping) or "vocabulary" not in saved:
        raise ValueError(
            f"checkpoint {ckpt} has no captioning vocabulary: it was not written by CaptioningTask"
        )
    vocabulary = Vocabulary.from_dict(saved["vocabulary"])
    hparams = loaded.checkpoint.get("hyper_parameters") or {}
    beam = int(beam_size if beam_size is not None else hparams.get("beam_size", 5))
    penalty = float(length_penalty if length_penalty is not None else hparams.get("length_penalty", 0.0))
    steps = max_length if max_length is not None else hparams.get("max_length")
    torch_device = torch.device(device)
    model = loaded.model.to(torch_device).eval()
    inputs = _Inputs(saved.get("inputs") or {}, weights, torch_device)
    listed = _videos(videos, check_extensions(VIDEO_EXTENSIONS if extensions is None else extensions))
    if not listed:
        raise ValueError(f"no video found in {[str(v) for v in videos]}")
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    folder = Path(out) if out is not None else run / "captions"
    folder.mkdir(parents=True, exist_ok=True)

    results: list[VideoCaption] = []
    failed: dict[Path, str] = {}
    for video_id, path in tqdm(listed.items(), desc="caption", unit="video", disable=not progress):
        try:
            x, frames = inputs(path)
        except UnreadableVideo as error:
            reason = failure_reason(path, error)
            if on_error == "raise":
                raise ValueError(f"{path}: {reason}") from error
            failed[path] = reason
            log.warning("%s: %s; skipped", path, reason)
            continue
        with torch.no_grad():
            best = cast(Any, model).decode(x, beam_size=beam, max_length=steps, length_penalty=penalty)[0]
        caption = vocabulary.decode(best.tokens)
        results.append(VideoCaption(video_id, path, caption, float(best.score), best.attention.cpu()))
        if len(results) <= attention_maps:
            save_attention_map(
                folder / "attention" / f"{video_id}.png",
                best.attention.float().cpu(),
                attention_rows(vocabulary, best),
                frames,
                title=f"{video_id}: {caption}",
            )
    rows = [
        {"video_id": r.video_id, "path": str(r.path), "caption": r.caption, "log_prob": r.score}
        for r in results
    ]
    (folder / "captions.json").write_text(json.dumps(rows, indent=2) + "\n")
    with (folder / "captions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "path", "caption", "log_prob"])
        for r in results:
            writer.writerow([r.video_id, str(r.path), r.caption, f"{r.score:.6f}"])
    return CaptionReport(results, failed, folder)


def main(argv: list[str] | None = None) -> CaptionReport:
    """``lstmvision caption --checkpoint CKPT --videos PATH [PATH ...] [options]``."""
    parser = argparse.ArgumentParser(
        prog="lstmvision caption",
        description="Caption videos with a checkpoint of the captioning task (frames -> encoder -> decoder).",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="a .ckpt written by `lstmvision fit` (CaptioningTask)"
    )
    parser.add_argument(
        "--videos", required=True, nargs="+", help="video files, frame folders or folders of videos"
    )
    parser.add_argument("--out", default=None, help="output folder (default: <run>/captions/)")
    parser.add_argument(
        "--config", default=None, help="the run's YAML (default: config.yaml of the checkpoint's run)"
    )
    parser.add_argument(
        "--beam_size", "--beam-size", type=int, default=None, help="beam width (default: the task's)"
    )
    parser.add_argument(
        "--max_length",
        "--max-length",
        type=int,
        default=None,
        help="most tokens per caption (default: the model's)",
    )
    parser.add_argument(
        "--length_penalty",
        "--length-penalty",
        type=float,
        default=None,
        help="beam ranking score / length**penalty",
    )
    parser.add_argument(
        "--attention_maps",
        "--attention-maps",
        type=int,
        default=4,
        help="attention-map PNGs for the first N videos",
    )
    parser.add_argument("--weights", default=None, help="the feature encoder's weights file, if it has moved")
    parser.add_argument(
        "--on_error", "--on-error", choices=("skip", "raise"), default="skip", help="an unreadable video"
    )
    parser.add_argument("--extensions", nargs="+", default=None, help="video file extensions to look for")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        report = caption_videos(
            args.checkpoint,
            args.videos,
            out=args.out,
            config=args.config,
            beam_size=args.beam_size,
            max_length=args.max_length,
            length_penalty=args.length_penalty,
            attention_maps=args.attention_maps,
            weights=args.weights,
            on_error=args.on_error,
            extensions=args.extensions,
            progress=not args.no_progress,
            device=args.device,
        )
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"lstmvision caption: {error}")
    for result in report.captions:
        print(f"{result.video_id}: {result.caption}")
    for path, reason in report.failed.items():
        print(f"not captioned: {path}: {reason}")
    print(f"\ncaptions: {report.out / 'captions.json'}")
    return report
