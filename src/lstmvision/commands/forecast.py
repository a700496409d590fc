"""``lstmvision forecast``: continue a person's own videos with a trained video predictor.

``lstmvision forecast --checkpoint CKPT VIDEO|FOLDER... [--out DIR] [--future N] [--format gif|mp4]``
rebuilds the predictor of a checkpoint written by ``lstmvision fit`` (:func:`lstmvision.checkpoints.load_network`),
reads each video (a file PyAV decodes, or a folder of frame images; a folder of videos gives each of
them), brings its frames to what the network was trained on (the frame size of the run's data, one
gray channel for a 1-channel model) and writes, per video, an animation of the observed frames
followed by the forecast. The observed frames are the **last** ``input_length`` frames of the video, so
that the forecast continues the video past its end, into frames nobody has seen; a forecast of an
earlier stretch could be compared with the truth, which ``lstmvision test`` already does on a data set.

The helpers here (:func:`collect_videos`, :func:`saved_data_args`, :func:`reported_errors`) also serve
``lstmvision classify`` (:mod:`lstmvision.commands.classify`). docs/inference.md documents both commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
import yaml
from torch import Tensor, nn

from lstmvision.checkpoints import LoadedNetwork, load_network, load_pretrained_network
from lstmvision.console import debug_requested, error_line
from lstmvision.data import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, ClipTransform, count_frames, read_frames
from lstmvision.viz import ANIMATION_FORMATS, save_forecast_animation

__all__ = [
    "Forecast",
    "add_video_and_weight_arguments",
    "collect_videos",
    "forecast_video",
    "frame_size",
    "load_weights",
    "main",
    "network_channels",
    "read_last_frames",
    "reported_errors",
    "saved_data_args",
]


class Forecast(NamedTuple):
    """The frames a forecast starts from, ``(1, input_length, C, H, W)`` float in [0, 1] at the network's
    frame size and channels, and the frames it predicts, ``(1, future, C, H, W)``: the network's output
    as it is (a frame predictor is not bound to [0, 1]; the animation clips it)."""

    observed: Tensor
    forecast: Tensor


# --------------------------------------------------------------------------------------- shared helpers


@contextmanager
def reported_errors(prog: str, *, debug: bool = False) -> Iterator[None]:
    """End the command with a one-line message on stderr and exit code 2 on an error a person can fix
    (a missing or unreadable file, a wrong checkpoint, a bad option value), as every ``lstmvision``
    command does (:mod:`lstmvision.console`); ``debug`` (or ``lstmvision --debug``) shows the traceback."""
    try:
        yield
    except (ValueError, OSError) as error:
        if debug or debug_requested():
            raise
        print(f"{prog}: {error_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def load_weights(checkpoint: str | None, pretrained: str | None, config: str | None) -> LoadedNetwork:
    """The network of ``--checkpoint CKPT [--config YAML]`` or of ``--pretrained NAME_OR_FOLDER`` (a model
    zoo entry or an exported folder: what ``model.json`` records of the training data replaces the run's
    config); exactly one of the two."""
    if (checkpoint is None) == (pretrained is None):
        raise ValueError("give exactly one of --checkpoint and --pretrained")
    if pretrained is not None:
        if config is not None:
            raise ValueError("--config goes with --checkpoint: --pretrained weights record their own network")
        return load_pretrained_network(pretrained)
    assert checkpoint is not None  # for mypy: checked above
    return load_network(checkpoint, config=config)


def _has_frames(folder: Path) -> bool:
    return any(
        entry.is_file()
        and not entry.name.startswith(".")
        and entry.suffix.lower().lstrip(".") in FRAME_EXTENSIONS
        for entry in folder.iterdir()
    )


def collect_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """The videos named on a command line, in the order given.

    A file is a video (whatever its extension: it was named on purpose). A folder holding frame images
    (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``) is one video, its frames in natural order. Any other folder
    gives its video files (by extension: ``.mp4``, ``.avi``, ``.mkv``, ``.webm``, ``.mov``, ``.mpg``) and
    its subfolders of frame images, sorted by name, not recursively; hidden entries are skipped.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a folder with no video in it, or no input at all.
    """
    if not inputs:
        raise ValueError("no video given: name video files, frame folders or folders of videos")
    videos: list[Path] = []
    for given in inputs:
        path = Path(given)
        if not path.exists():
            raise FileNotFoundError(f"no such video file or folder: {path}")
        if not path.is_dir() or _has_frames(path):
            videos.append(path)
            continue
        found = sorted(
            entry
            for entry in path.iterdir()
            if not entry.name.startswith(".")
            and (
                (entry.is_file() and entry.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS)
                or (entry.is_dir() and _has_frames(entry))
            )
        )
        if not found:
            raise ValueError(
                f"{path}: no video in the folder (video files {', '.join(VIDEO_EXTENSIONS)} or "
                f"folders of {', '.join(FRAME_EXTENSIONS)} frames)"
            )
        videos.extend(found)
    return videos


def saved_data_args(loaded: LoadedNetwork) -> tuple[str | None, dict[str, Any]]:
    """The class path and arguments of the data module the network was trained on: those the
    checkpoint saved (Lightning keeps a data module's ``save_hyperparameters`` under
    ``datamodule_hyper_parameters``), else ``data`` of the run's config, else ``(None, {})``."""
    saved = loaded.checkpoint.get("datamodule_hyper_parameters")
    if isinstance(saved, Mapping):
        class_path = saved.get("_class_path")
        args = {str(k): v for k, v in saved.items() if not str(k).startswith("_")}
        return class_path if isinstance(class_path, str) else None, args
    config = getattr(loaded, "config", None)
    if config is None or not Path(config).is_file():
        return None, {}
    try:
        document = yaml.safe_load(Path(config).read_text())  # plain values only
    except yaml.YAMLError:
        return None, {}
    data = document.get("data") if isinstance(document, Mapping) else None
    if not isinstance(data, Mapping):
        return None, {}
    init_args = data.get("init_args")
    class_path = data.get("class_path")
    arguments = dict(init_args) if isinstance(init_args, Mapping) else {}
    return class_path if isinstance(class_path, str) else None, arguments


def _pair(value: Any) -> tuple[int, int] | None:
    """An ``(H, W)`` from an int or a pair of ints; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def frame_size(data_args: Mapping[str, Any], given: Sequence[int] | None) -> tuple[int, int] | None:
    """The ``(H, W)`` the network reads: ``given`` (``--image_size``: one side, or height and width),
    else the training data's: its ``image_size`` (the generated sets and KTH: square frames), else its
    ``crop_size`` or an exact ``(H, W)`` ``resize`` (video files); None when nothing says."""
    if given:
        if len(given) not in (1, 2) or min(given) < 1:
            raise ValueError(f"--image_size takes one side or a height and a width >= 1, got {list(given)}")
        return (given[0], given[0]) if len(given) == 1 else (given[0], given[1])
    for key in ("image_size", "crop_size"):
        size = _pair(data_args.get(key))
        if size is not None:
            return size
    resize = data_args.get("resize")
    return _pair(resize) if isinstance(resize, (list, tuple)) else None


def network_channels(loaded: LoadedNetwork) -> int | None:
    """The channels of a frame the network reads: its ``in_channels``, else its constructor argument."""
    channels = getattr(loaded.model, "in_channels", None)
    if channels is None:
        channels = (loaded.spec.get("init_args") or {}).get("in_channels")
    return channels if isinstance(channels, int) else None


# ---------------------------------------------------------------------------------------------- reading


def read_last_frames(path: Path, count: int) -> Tensor:
    """The last ``count`` frames of a video file or frame folder, ``uint8 (count, 3, H, W)`` RGB.

    Raises ``ValueError`` naming the video when it cannot be decoded or has fewer than ``count`` frames."""
    total = count_frames(path)  # a file's header count: cheap, and right for nearly every file
    if total < count and not path.is_dir():
        total = count_frames(path, exact=True)
    if total < count:
        raise ValueError(
            f"{path}: {total} frames, but the model observes input_length={count} frames before it forecasts"
        )
    try:
        frames = read_frames(path, list(range(total - count, total)))
    except ValueError:
        if path.is_dir():
            raise
        # the header overstated the length (a truncated or re-muxed file): count by decoding, once
        exact = count_frames(path, exact=True)
        if exact == total:
            raise
        if exact < count:
            raise ValueError(
                f"{path}: {exact} frames, but the model observes input_length={count} frames before it "
                "forecasts"
            ) from None
        frames = read_frames(path, list(range(exact - count, exact)))
    return torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, H, W, 3) -> (T, 3, H, W)


def _length(model: nn.Module, name: str) -> int:
    """A predictor's ``input_length`` or ``total_length`` (plain ints on every predictor here)."""
    return int(getattr(model, name))


def _predicted(model: nn.Module, observed: Tensor, future: int) -> Tensor:
    forecast = getattr(model, "forecast", None)
    if callable(forecast):
        return forecast(observed, future)
    # a predictor without the method: forward also returns the predictions of observed frames 1 .. L-1
    length = _length(model, "input_length")
    return model(observed, future=future)[:, length - 1 :]


@torch.no_grad()
def forecast_video(
    model: nn.Module,
    path: Path,
    *,
    future: int,
    size: tuple[int, int] | None,
    channels: int | None,
    device: torch.device | str = "cpu",
) -> Forecast:
    """Forecast ``future`` frames after the last ``model.input_length`` frames of the video at ``path``.

    The frames are resized (bilinear, antialiased; the aspect ratio is not kept, as the data modules do
    for square training frames) to ``size`` and grayed (ITU-R 601-2 luma) for a 1-channel model: the
    transforms of :class:`lstmvision.data.ClipTransform`. ``size`` None keeps the video's size, cut
    down to a multiple of the model's ``patch_size``.
    """
    length = _length(model, "input_length")
    frames = read_last_frames(path, length)  # (L, 3, H, W) uint8
    patch = getattr(model, "patch_size", 1)
    if size is None:
        height, width = frames.shape[-2:]
        size = (max(patch, height - height % patch), max(patch, width - width % patch))
    if isinstance(patch, int) and (size[0] % patch or size[1] % patch):
        raise ValueError(
            f"frames of {size[0]}x{size[1]} do not fit the model's patch_size={patch}: give --image_size "
            f"with sides that are multiples of {patch}"
        )
    transform = ClipTransform(resize=size, grayscale=channels == 1)
    observed = transform(frames).unsqueeze(0).to(device)  # (1, L, C, H, W)
    return Forecast(observed.cpu(), _predicted(model, observed, future).float().cpu())


# ---------------------------------------------------------------------------------------------- command


def _check_predictor(loaded: LoadedNetwork, checkpoint: str) -> None:
    model = loaded.model
    if not all(hasattr(model, key) for key in ("input_length", "total_length")):
        task = f" of a {loaded.task_class.rsplit('.', 1)[-1]} run" if loaded.task_class else ""
        raise ValueError(
            f"checkpoint {checkpoint} holds a {type(model).__name__}{task}, not a video predictor "
            "(a network with input_length and total_length): `lstmvision forecast` needs a checkpoint of a "
            "VideoPredictionTask run; `lstmvision classify` takes classifiers"
        )


def _unique_path(folder: Path, stem: str, suffix: str, taken: set[Path]) -> Path:
    """``folder/stem.suffix``, or ``stem-2``, ``stem-3`` ... when an earlier input of this run took it."""
    path, number = folder / f"{stem}.{suffix}", 1
    while path in taken:
        number += 1
        path = folder / f"{stem}-{number}.{suffix}"
    taken.add(path)
    return path


def add_video_and_weight_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments ``forecast`` and ``classify`` share: the videos, and the weights (exactly one of
    ``--checkpoint`` and ``--pretrained``) with the ``--config`` that goes with a checkpoint."""
    parser.add_argument("videos", nargs="+", metavar="VIDEO|FOLDER",
                        help="video files, frame folders, or folders of videos")  # fmt: skip
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", default=None, help="a .ckpt written by `lstmvision fit`")
    weights.add_argument(
        "--pretrained", default=None, metavar="NAME_OR_FOLDER",
        help="a model zoo entry (docs/zoo.md) or an exported folder (a path: ./NAME for one here)",
    )  # fmt: skip
    parser.add_argument(
        "--config",
        default=None,
        help="with --checkpoint: the run's YAML (default: what the checkpoint or its run records)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmvision forecast",
        description="Forecast the frames after the end of your own videos with a video predictor trained by "
        "`lstmvision fit`, and write per video an animation of the observed frames followed by the "
        "forecast. The last input_length frames of each video are observed.",
    )
    add_video_and_weight_arguments(parser)
    parser.add_argument("--out", default="forecasts", help="output folder (default: ./forecasts)")
    parser.add_argument(
        "--future", type=int, default=None, help="frames to forecast (default: total_length - input_length)"
    )
    parser.add_argument("--format", choices=ANIMATION_FORMATS, default="gif", help="animation format")
    parser.add_argument(
        "--image_size", type=int, nargs="+", default=None, metavar="SIDE",
        help="frame size the network reads: one side or height and width (default: the training data's)",
    )  # fmt: skip
    parser.add_argument("--fps", type=float, default=4.0, help="animation frames per second")
    parser.add_argument("--scale", type=int, default=2, help="enlarge every frame this many times")
    parser.add_argument("--device", default="cpu", help="torch device to run the network on (e.g. cuda)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def main(argv: list[str] | None = None) -> list[Path]:
    """``lstmvision forecast``: the command line of :func:`forecast_video`; returns the files written."""
    args = _parser().parse_args(argv)
    with reported_errors("lstmvision forecast", debug=args.debug):
        for key, value in (("future", args.future), ("scale", args.scale)):
            if value is not None and value < 1:
                raise ValueError(f"--{key} must be >= 1, got {value}")
        if not args.fps > 0:
            raise ValueError(f"--fps must be > 0, got {args.fps}")
        videos = collect_videos(args.videos)  # before the checkpoint: a typo in a path fails at once
        loaded = load_weights(args.checkpoint, args.pretrained, args.config)
        _check_predictor(loaded, args.checkpoint or args.pretrained)
        model = loaded.model.to(args.device).eval()
        future = args.future or _length(model, "total_length") - _length(model, "input_length")
        size = frame_size(saved_data_args(loaded)[1], args.image_size)
        channels = network_channels(loaded)
        taken: set[Path] = set()  # files written by this run: two inputs named alike get two files
        written: list[Path] = []
        for video in videos:
            result = forecast_video(
                model, video, future=future, size=size, channels=channels, device=args.device
            )
            path = _unique_path(
                Path(args.out), video.stem if video.is_file() else video.name, args.format, taken
            )
            save_forecast_animation(
                path, result.observed, result.forecast, format=args.format, fps=args.fps, scale=args.scale
            )
            print(f"forecast: {path}", flush=True)
            written.append(path)
    return written
