"""``lstmvision classify``: the most probable classes of a person's own videos, by a trained classifier.

``lstmvision classify --checkpoint CKPT VIDEO|FOLDER... [--out FILE.csv] [--top_k K]`` rebuilds the
classifier of a checkpoint written by ``lstmvision fit`` (:func:`lstmvision.checkpoints.load_network`), cuts
clips from each video as the classification data modules do at test time (:class:`lstmvision.data.VideoClips`
in evaluation: ``test_clips`` uniformly spaced clips of ``num_frames`` frames, resized and centre-cropped
as in training, gray for a 1-channel model), averages the logits of a video's clips (as
:class:`lstmvision.tasks.VideoClassificationTask` does) and writes a CSV with the file and its ``top_k``
classes and probabilities, most probable first. The clip settings are those of the training data, read
from the checkpoint (or the run's config); options override them. docs/inference.md has the details.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from torch import nn

from lstmvision.checkpoints import LoadedNetwork
from lstmvision.commands.forecast import (
    add_video_and_weight_arguments,
    collect_videos,
    frame_size,
    load_weights,
    network_channels,
    reported_errors,
    saved_data_args,
)
from lstmvision.data import VideoClips

__all__ = ["Classification", "class_names", "classify_video", "clip_settings", "main"]

log = logging.getLogger(__name__)


class Classification(NamedTuple):
    """A video's most probable classes (indices, most probable first) and their probabilities."""

    file: Path
    classes: list[int]
    probabilities: list[float]


# -------------------------------------------------------------------------------------- what to read


def clip_settings(
    data_args: Mapping[str, Any],
    *,
    num_frames: int | None = None,
    test_clips: int | None = None,
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
) -> dict[str, Any]:
    """The :class:`~lstmvision.data.VideoClips` arguments the classifier was tested with (all but the
    samples and ``train``).

    A video-file data module (``num_frames``, ``frame_stride``, ``resize``, ``crop_size``,
    ``short_clips``, ``test_clips``) gives its own; a generated set or KTH (``seq_length``,
    ``image_size``) gives clips of ``seq_length`` frames squashed to ``image_size`` squares. The given
    ``num_frames``, ``test_clips`` and ``image_size`` (one side or height and width: an exact resize,
    no crop) win over the saved values; the network's input ``channels``, when given, decide ``grayscale``
    (one channel: the ITU-R 601-2 luma of RGB frames)."""
    settings: dict[str, Any] = {"frame_stride": 1, "resize": None, "crop_size": None, "short_clips": "pad"}
    settings |= {"test_clips": 1, "grayscale": bool(data_args.get("grayscale", False))}
    if "num_frames" in data_args:  # VideoDataModule: the clips of its test set
        keys = ("num_frames", "frame_stride", "resize", "crop_size", "short_clips", "test_clips")
        settings |= {key: data_args[key] for key in keys if key in data_args}
    elif "seq_length" in data_args:  # a generated set or KTH: whole sequences of square frames
        settings["num_frames"] = data_args["seq_length"]
        settings["resize"] = frame_size(data_args, None)
    if num_frames is not None:
        settings["num_frames"] = num_frames
    if test_clips is not None:
        settings["test_clips"] = test_clips
    if image_size:
        settings["resize"], settings["crop_size"] = frame_size({}, image_size), None
    if channels is not None:
        settings["grayscale"] = channels == 1
    if "num_frames" not in settings:
        raise ValueError(
            "the checkpoint and its run record no clip length (the data's num_frames or seq_length): "
            "give --num_frames"
        )
    if isinstance(settings["resize"], list):
        settings["resize"] = tuple(settings["resize"])
    if isinstance(settings["crop_size"], list):
        settings["crop_size"] = tuple(settings["crop_size"])
    return settings


def _data_module_names(class_path: str | None, args: Mapping[str, Any]) -> list[str] | None:
    """The ``class_names`` of the training data module, rebuilt from its saved arguments, if it can be
    without data (generated sets name their classes; a file layout is scanned, not decoded, if it is
    still there)."""
    if class_path is None or not class_path.startswith("lstmvision.data."):
        return None  # only the package's own data modules are imported
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module_name), name)
        if not (isinstance(cls, type) and issubclass(cls, L.LightningDataModule)):
            return None
        names = getattr(cls(**args), "class_names", None)
    except (ImportError, AttributeError, TypeError, ValueError, OSError) as error:
        log.info("class names not read from the training data module %s: %s", class_path, error)
        return None
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else None


def class_names(loaded: LoadedNetwork, num_classes: int) -> list[str]:
    """The names of the classes, in label order: those the checkpoint records (``class_names``, or the
    task's ``class_names`` hyper-parameter), else those of the training data module (generated sets,
    and file layouts still on disk), else the class indices ``"0"``, ``"1"`` ..."""
    saved = loaded.checkpoint
    hyper = saved.get("hyper_parameters")
    candidates = [saved.get("class_names"), hyper.get("class_names") if isinstance(hyper, Mapping) else None]
    for names in candidates:
        if isinstance(names, (list, tuple)) and len(names) == num_classes:
            return [str(n) for n in names]
    names = _data_module_names(*saved_data_args(loaded))
    if names is not None and len(names) == num_classes:
        return names
    return [str(i) for i in range(num_classes)]


# ---------------------------------------------------------------------------------------- classifying


@torch.no_grad()
def classify_video(
    model: nn.Module,
    path: Path,
    settings: Mapping[str, Any],
    *,
    top_k: int,
    device: torch.device | str = "cpu",
) -> Classification:
    """The ``top_k`` most probable classes of the video at ``path``: the softmax of the mean of the
    logits of its clips (:func:`clip_settings`), ties in index order."""
    clips = VideoClips([(path, 0)], train=False, flip=False, **settings)
    clip, _ = clips[0]  # (T, C, H, W), or (K, T, C, H, W) with test_clips K > 1
    batch = clip.unsqueeze(0) if clip.dim() == 4 else clip  # (K, T, C, H, W)
    # float32 before the mean, as the task does: the probabilities equal those of `lstmvision test`
    logits = model(batch.to(device)).float().mean(dim=0)  # (num_classes,)
    probabilities, order = logits.softmax(dim=0).sort(descending=True, stable=True)
    return Classification(path, order[:top_k].tolist(), probabilities[:top_k].tolist())


def _check_classifier(loaded: LoadedNetwork, checkpoint: str) -> int:
    model = loaded.model
    num_classes = getattr(model, "num_classes", None)
    task = f" of a {loaded.task_class.rsplit('.', 1)[-1]} run" if loaded.task_class else ""
    if not isinstance(num_classes, int) or hasattr(model, "total_length"):
        raise ValueError(
            f"checkpoint {checkpoint} holds a {type(model).__name__}{task}, not a video classifier (a "
            "network with num_classes): `lstmvision classify` needs a checkpoint of a VideoClassificationTask "
            "run; `lstmvision forecast` takes predictors"
        )
    if getattr(model, "input_rank", 5) != 5:
        raise ValueError(
            f"checkpoint {checkpoint} holds a {type(model).__name__}, which reads "
            f"{getattr(model, 'input_layout', 'several views')}: `lstmvision classify` reads one video per "
            "sample (B, T, C, H, W)"
        )
    return num_classes


def _write_csv(path: Path, results: list[Classification], names: list[str], top_k: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["file", *[f"top{r}_{key}" for r in range(1, top_k + 1) for key in ("class", "probability")]]
        )
        for result in results:
            row: list[str] = [str(result.file)]
            for cls, probability in zip(result.classes, result.probabilities):
                row += [names[cls], f"{probability:.6f}"]
            writer.writerow(row)


def _table(results: list[Classification], names: list[str]) -> str:
    """Each video's three most probable classes, one line per video."""
    shown = min(3, len(results[0].classes))
    header = ["file", *[f"top-{r}" for r in range(1, shown + 1)]]
    rows = [
        [
            result.file.name,
            *[f"{names[c]} {p:.3f}" for c, p in zip(result.classes[:shown], result.probabilities)],
        ]
        for result in results
    ]
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in (header, *rows)
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmvision classify",
        description="Classify your own videos with a classifier trained by `lstmvision fit`: a CSV with each "
        "file's most probable classes and their probabilities. Clips are cut as the test set's were.",
    )
    add_video_and_weight_arguments(parser)
    parser.add_argument(
        "--out", default="classifications.csv", help="CSV to write (default: ./classifications.csv)"
    )
    parser.add_argument(
        "--top_k", type=int, default=None, help="classes per video (default: min(5, classes))"
    )
    parser.add_argument(
        "--num_frames", type=int, default=None, help="frames per clip (default: the training data's)"
    )
    parser.add_argument(
        "--test_clips", type=int, default=None, help="clips per video (default: the test set's)"
    )
    parser.add_argument(
        "--image_size", type=int, nargs="+", default=None, metavar="SIDE",
        help="resize frames to one side or height and width, no crop (default: the training data's transform)",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device to run the network on (e.g. cuda)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def main(argv: list[str] | None = None) -> Path:
    """``lstmvision classify``: the command line of :func:`classify_video`; returns the CSV written."""
    args = _parser().parse_args(argv)
    with reported_errors("lstmvision classify", debug=args.debug):
        for key in ("top_k", "num_frames", "test_clips"):
            value = getattr(args, key)
            if value is not None and value < 1:
                raise ValueError(f"--{key} must be >= 1, got {value}")
        videos = collect_videos(args.videos)  # before the checkpoint: a typo in a path fails at once
        loaded = load_weights(args.checkpoint, args.pretrained, args.config)
        num_classes = _check_classifier(loaded, args.checkpoint or args.pretrained)
        top_k = min(5, num_classes) if args.top_k is None else args.top_k
        if top_k > num_classes:
            raise ValueError(f"--top_k must be at most the {num_classes} classes of the model, got {top_k}")
        settings = clip_settings(
            saved_data_args(loaded)[1],
            num_frames=args.num_frames,
            test_clips=args.test_clips,
            image_size=args.image_size,
            channels=network_channels(loaded),
        )
        names = class_names(loaded, num_classes)
        model = loaded.model.to(args.device).eval()
        results = [
            classify_video(model, video, settings, top_k=top_k, device=args.device) for video in videos
        ]
        out = Path(args.out)
        _write_csv(out, results, names, top_k)
    print(f"classifications: {out}")
    print(_table(results, names), flush=True)
    return out
