"""``lstmvision extract-features``: the frame features of every video in a folder, into one HDF5 file.

Video captioning (SA-LSTM on MSVD / MSR-VTT, docs/sa_lstm.md) reads pre-extracted features: each video
is decoded once, ``frames`` frames are sampled uniformly (:func:`uniform_frame_indices`), and a frame
encoder (:mod:`lstmvision.encoders`) turns each into its pooled vector. The file holds one dataset per
video (key: the video id, ``float32 (frames, D)``) and root attributes that name how the features were
made (:class:`FeatureFileInfo`, read back by :func:`read_feature_file_info`), so that a captioning model
can re-create the same encoder for new videos and a rerun never mixes features made another way.

A run resumes: videos already in the file are skipped, each video is written and the file flushed
before the next one. An undecodable video is skipped and reported (``on_error="skip"``) or stops the
run (``"raise"``). docs/feature_extraction.md describes the command, the file layout and the errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import h5py
import numpy as np
import torch
from tqdm import tqdm

from lstmvision.commands.video_inputs import (
    UnreadableVideo,
    args_json,
    build_encoder,
    failure_reason,
    frames_to_clip,
    list_videos,
    pooled_features,
    read_sampled_frames,
)

# the data package's listing and extension check: the same videos as the classification data
from lstmvision.data.checks import check_extensions, check_positive
from lstmvision.data.io.frames import VIDEO_EXTENSIONS
from lstmvision.data.io.sampling import uniform_frame_indices
from lstmvision.data.io.transforms import ClipTransform
from lstmvision.encoders import FrameEncoder, list_encoders

__all__ = [
    "FORMAT_VERSION",
    "ExtractionReport",
    "FeatureFileInfo",
    "extract_features",
    "main",
    "read_feature_file_info",
    "uniform_frame_indices",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the feature file layout, stored as the root attribute ``format_version``."""
_FORMAT = "lstmvision-frame-features"
_ATTRIBUTES = (
    "format",
    "format_version",
    "encoder",
    "encoder_args",
    "weights",
    "weights_sha256",
    "frames",
    "image_size",
    "feature_size",
)
# what a run must agree on with an existing file before adding to it (the weights by their content: a
# moved weights file is the same weights, a file overwritten in place is not)
_MUST_MATCH = ("encoder", "encoder_args", "weights_sha256", "frames", "image_size", "feature_size")

OnError = Literal["skip", "raise"]


class FeatureFileInfo(NamedTuple):
    """How the features of a file were made (its root attributes).

    Attributes:
        encoder: the registered encoder name (:func:`lstmvision.encoders.create_encoder`).
        encoder_args: its constructor arguments.
        weights: the weights file loaded into it (absolute path), ``""`` for none.
        weights_sha256: SHA-256 of that file's bytes, ``""`` for none.
        frames: N, frames sampled per video.
        image_size: side of the square frames the encoder saw; None: frames at their decoded size.
        feature_size: D, size of a frame's feature.
    """

    encoder: str
    encoder_args: dict[str, Any]
    weights: str
    weights_sha256: str
    frames: int
    image_size: int | None
    feature_size: int


class ExtractionReport(NamedTuple):
    """What a run did: ids written now, ids already in the file (not recomputed), videos that failed
    (path -> reason; not written, so a rerun tries them again)."""

    written: list[str]
    skipped_existing: list[str]
    failed: dict[Path, str]


# --------------------------------------------------------------------------------------------------
# The file's attributes
# --------------------------------------------------------------------------------------------------


def _info_from_attributes(attrs: Mapping[str, Any], path: Path) -> FeatureFileInfo:
    where = f"{path}: not a feature file written by lstmvision extract-features"
    missing = [key for key in _ATTRIBUTES if key not in attrs]
    if missing:
        raise ValueError(f"{where}: root attribute(s) {missing} missing")
    if attrs["format"] != _FORMAT:
        raise ValueError(f"{where}: attribute 'format' is {attrs['format']!r}, expected {_FORMAT!r}")
    if int(attrs["format_version"]) != FORMAT_VERSION:
        raise ValueError(
            f"{path}: feature file format_version {int(attrs['format_version'])}, this version of "
            f"lstmvision reads {FORMAT_VERSION}"
        )
    texts = {key: attrs[key] for key in ("encoder", "encoder_args", "weights", "weights_sha256")}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise ValueError(f"{path}: attribute {key!r} must be a string, got {type(value).__name__}")
    numbers = {}
    for key in ("frames", "image_size", "feature_size"):
        value = attrs[key]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{path}: attribute {key!r} must be an integer, got {value!r}")
        numbers[key] = int(value)
    try:
        encoder_args = json.loads(texts["encoder_args"])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: attribute 'encoder_args' is not JSON ({exc}): {texts['encoder_args']!r}"
        ) from exc
    if not isinstance(encoder_args, dict):
        raise ValueError(
            f"{path}: attribute 'encoder_args' must be a JSON object, got {texts['encoder_args']!r}"
        )
    return FeatureFileInfo(
        encoder=texts["encoder"],
        encoder_args=encoder_args,
        weights=texts["weights"],
        weights_sha256=texts["weights_sha256"],
        frames=numbers["frames"],
        image_size=numbers["image_size"] or None,  # stored as 0: HDF5 attributes have no None
        feature_size=numbers["feature_size"],
    )


def read_feature_file_info(path: str | Path) -> FeatureFileInfo:
    """The root attributes of a feature file written by :func:`extract_features`.

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` naming the file when it
    is not HDF5 or lacks (or has ill-typed) attributes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    try:
        with h5py.File(path, "r") as handle:
            return _info_from_attributes(dict(handle.attrs), path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open the HDF5 file ({exc})") from exc


def _write_attributes(handle: h5py.File, info: FeatureFileInfo) -> None:
    handle.attrs["format"] = _FORMAT
    handle.attrs["format_version"] = FORMAT_VERSION
    handle.attrs["encoder"] = info.encoder
    handle.attrs["encoder_args"] = args_json(info.encoder_args)
    handle.attrs["weights"] = info.weights
    handle.attrs["weights_sha256"] = info.weights_sha256
    handle.attrs["frames"] = info.frames
    handle.attrs["image_size"] = info.image_size or 0
    handle.attrs["feature_size"] = info.feature_size


def _check_same_setup(path: Path, found: FeatureFileInfo, wanted: FeatureFileInfo) -> None:
    """An existing file may only grow with features made exactly as its own were."""
    for key in _MUST_MATCH:
        got, want = getattr(found, key), getattr(wanted, key)
        if key == "encoder_args":
            got, want = args_json(got), args_json(want)
        if got != want:
            extra = ""
            if key == "weights_sha256":
                extra = (
                    f" (the file's weights {found.weights or 'none'}, this run's {wanted.weights or 'none'})"
                )
            raise ValueError(
                f"{path}: attribute {key!r} of the existing file is {got!r}, this run asks for {want!r}"
                f"{extra}; features made differently are never mixed: write to another --out file, or "
                "delete this one to start again"
            )


def _check_datasets(handle: h5py.File, path: Path, info: FeatureFileInfo) -> list[str]:
    """The video ids already in the file, each checked to be ``float32 (frames, feature_size)``."""
    expected = (info.frames, info.feature_size)
    for key, item in handle.items():
        if not isinstance(item, h5py.Dataset) or item.shape != expected or item.dtype != np.float32:
            got = f"{item.dtype} {item.shape}" if isinstance(item, h5py.Dataset) else "a group"
            raise ValueError(f"{path}: entry {key!r} must be a float32 {expected} dataset, got {got}")
    return list(handle.keys())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Checks, the encoder, one video
# --------------------------------------------------------------------------------------------------


def _declared_size(encoder: FrameEncoder) -> int | None:
    """The square input side an encoder declares as ``input_size`` (an int), if it declares one."""
    size = getattr(encoder, "input_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------


def extract_features(
    videos: str | Path,
    out: str | Path,
    *,
    encoder: str,
    encoder_args: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
    frames: int,
    image_size: int | None = None,
    batch_size: int = 64,
    on_error: OnError = "skip",
    extensions: Sequence[str] | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> ExtractionReport:
    """Write the frame features of every video in ``videos`` to the HDF5 file ``out``.

    Each video (a file with one of ``extensions``, or a folder of frame images; id = file stem or folder
    name) gets ``frames`` frames at :func:`uniform_frame_indices`, scaled to [0, 1], resized to
    ``image_size × image_size`` (bilinear, antialiased), made gray when the encoder takes 1 channel, and
    encoded in eval mode without gradients; a frame's feature is the encoder's pooled vector. Input
    normalisation is the encoder's own (its ``mean``/``std`` arguments, docs/encoders.md).

    Args:
        videos: the folder of videos.
        out: the HDF5 file; an existing one is added to (videos already in it are skipped) when its
            attributes match this run's, else ``ValueError``.
        encoder: a registered encoder name (:func:`lstmvision.encoders.list_encoders`).
        encoder_args: its constructor arguments (JSON-serialisable; ``weights`` goes in ``weights``).
        weights: a weights file loaded into the encoder (``encoder.load_weights``); None: its random
            initialisation (only useful for tests).
        frames: N, frames sampled per video.
        image_size: side of the square frames fed to the encoder; None: the encoder's ``input_size``
            when it declares one, else the decoded size.
        batch_size: frames per encoder call.
        on_error: an undecodable video is logged and reported (``"skip"``) or raises ``ValueError``
            naming it (``"raise"``); the videos written before it stay in the file either way.
        extensions: video file extensions; None: :data:`lstmvision.data.VIDEO_EXTENSIONS`.
        progress: show a progress bar over the videos.
        device: where the encoder runs.

    Returns:
        :class:`ExtractionReport`.
    """
    check_positive(frames=frames, batch_size=batch_size)
    if image_size is not None:
        check_positive(image_size=image_size)
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    exts = check_extensions(VIDEO_EXTENSIONS if extensions is None else extensions)
    args = dict(encoder_args or {})
    if any(not isinstance(key, str) for key in args):
        raise ValueError(f"encoder_args keys must be argument names (strings), got {list(args)}")
    if "weights" in args:
        raise ValueError("encoder_args must not hold 'weights': pass the weights file as weights (--weights)")
    try:
        args_json(args)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"encoder_args must be JSON-serialisable (they are stored in the file): {exc}"
        ) from exc
    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    weights_path = None if weights is None else Path(weights).resolve()
    if weights_path is not None and not weights_path.is_file():
        raise FileNotFoundError(f"weights file not found: {weights_path}")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"out must be an HDF5 file path, got the folder {out}")

    listed = list_videos(Path(videos), exts)
    model = build_encoder(encoder, args, weights_path, torch_device)
    size = image_size if image_size is not None else _declared_size(model)
    transform = ClipTransform(resize=None if size is None else (size, size), grayscale=model.in_channels == 1)
    wanted = FeatureFileInfo(
        encoder=encoder,
        encoder_args=args,
        weights="" if weights_path is None else str(weights_path),
        weights_sha256="" if weights_path is None else _sha256(weights_path),
        frames=frames,
        image_size=size,
        feature_size=model.feature_dim,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = h5py.File(out, "a")
    except OSError as exc:
        raise ValueError(f"{out}: cannot open the HDF5 file ({exc})") from exc
    written: list[str] = []
    failed: dict[Path, str] = {}
    with handle:
        if len(handle.attrs) == 0 and len(handle) == 0:  # new (or empty) file
            _write_attributes(handle, wanted)
            handle.flush()
        else:
            _check_same_setup(out, _info_from_attributes(dict(handle.attrs), out), wanted)
        present = set(_check_datasets(handle, out, wanted))
        skipped = [video_id for video_id in listed if video_id in present]
        if skipped:
            logger.info("%s: %d of %d videos already in the file, skipped", out, len(skipped), len(listed))
        todo = [(video_id, path) for video_id, path in listed.items() if video_id not in present]
        for video_id, path in tqdm(todo, desc="extract-features", unit="video", disable=not progress):
            try:
                pixels = read_sampled_frames(path, frames)
            except UnreadableVideo as exc:
                reason = failure_reason(path, exc)
                if on_error == "raise":
                    raise ValueError(
                        f"{path}: {reason} (on_error='raise'; the {len(present) + len(written)} videos "
                        f"already written stay in {out})"
                    ) from exc
                failed[path] = reason
                logger.warning("%s: %s; video skipped, not written", path, reason)
                continue
            features = pooled_features(
                frames_to_clip(pixels, transform), model, batch_size, torch_device
            )  # (N, D)
            if not np.isfinite(features).all():
                raise ValueError(
                    f"{path}: the encoder gave non-finite features (NaN or inf); check the weights"
                )
            handle.create_dataset(video_id, data=features.astype(np.float32, copy=False))
            handle.flush()  # an interrupted run loses at most the video in progress
            written.append(video_id)
    if failed:
        logger.warning(
            "%d video(s) could not be read and were not written (a rerun tries them again): %s",
            len(failed),
            ", ".join(str(path) for path in failed),
        )
    return ExtractionReport(written=written, skipped_existing=skipped, failed=failed)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmvision extract-features",
        description="Sample frames uniformly from every video of a folder, encode each with a frame encoder, "
        "and write one float32 (frames, D) dataset per video (key: the video id) to an HDF5 file. A rerun "
        "skips the videos already in the file. See docs/feature_extraction.md.",
    )
    parser.add_argument("--videos", required=True, help="folder of video files (or frame folders)")
    parser.add_argument(
        "--encoder", required=True, help=f"encoder name, one of: {', '.join(list_encoders())}"
    )
    parser.add_argument(
        "--encoder_args",
        "--encoder-args",
        default="{}",
        help="encoder constructor arguments as a JSON object, e.g. '{\"in_channels\": 3}'",
    )
    parser.add_argument("--weights", help="weights file for the encoder (.safetensors or a torch state dict)")
    parser.add_argument("--frames", type=int, required=True, help="frames sampled uniformly per video")
    parser.add_argument("--out", required=True, help="the HDF5 feature file (added to when it exists)")
    parser.add_argument(
        "--image_size",
        "--image-size",
        type=int,
        help="side of the square frames the encoder sees (default: decoded size)",
    )
    parser.add_argument(
        "--batch_size", "--batch-size", type=int, default=64, help="frames per encoder call (default 64)"
    )
    parser.add_argument(
        "--on_error",
        "--on-error",
        choices=("skip", "raise"),
        default="skip",
        help="an undecodable video is reported and skipped (default) or stops the run",
    )
    parser.add_argument(
        "--extensions", nargs="+", help=f"video file extensions (default: {' '.join(VIDEO_EXTENSIONS)})"
    )
    parser.add_argument("--device", default="cpu", help="where the encoder runs (default cpu)")
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> ExtractionReport:
    """Entry point of ``lstmvision extract-features``; exits with a message on any bad argument or file."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    prog = "lstmvision extract-features"
    try:
        encoder_args = json.loads(args.encoder_args)
    except json.JSONDecodeError as exc:
        sys.exit(f"{prog}: --encoder-args is not valid JSON ({exc}): {args.encoder_args!r}")
    if not isinstance(encoder_args, dict):
        sys.exit(f"{prog}: --encoder-args must be a JSON object {{...}}, got {args.encoder_args!r}")
    try:
        report = extract_features(
            args.videos,
            args.out,
            encoder=args.encoder,
            encoder_args=encoder_args,
            weights=args.weights,
            frames=args.frames,
            image_size=args.image_size,
            batch_size=args.batch_size,
            on_error=args.on_error,
            extensions=args.extensions,
            progress=not args.no_progress,
            device=args.device,
        )
    except (ValueError, OSError) as exc:  # FileNotFoundError is an OSError
        sys.exit(f"{prog}: {exc}")
    info = read_feature_file_info(args.out)
    print(
        f"features: {Path(args.out).resolve()} ({info.encoder}, {info.frames} frames x {info.feature_size} "
        "features per video)"
    )
    print(
        f"written {len(report.written)}, already in the file {len(report.skipped_existing)}, "
        f"failed {len(report.failed)}"
    )
    if report.failed:
        print("failed videos (not written; a rerun tries them again):")
        for path, reason in report.failed.items():
            print(f"  {path}: {reason}")
    return report
