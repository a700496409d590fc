"""Video clip loading speed of ``lstmvision.data.VideoClips`` against PyAV decoding alone.

One test video is written to a temporary folder (300 frames of 320×240, H.264 in mp4, a moving
gradient with a moving square and some noise, so that frames differ as in real footage). Prints,
from one run, the decoded frames per second of:

- PyAV alone decoding the whole file to ``uint8`` RGB numpy arrays, converting every frame with one
  shared ``VideoReformatter`` (the reference, and what the dataset does); the same with
  ``frame.to_ndarray(format="rgb24")``, which builds a new swscale context for every frame; and
  decoding without any RGB conversion (the floor of any reader);
- ``VideoClips.__getitem__`` making clips of 16 frames from the same file, with the default transforms
  (shorter side resized to 128 with antialiasing, 112×112 crop): the centre clip (evaluation), 4
  uniformly spaced clips (evaluation), a random clip with a random crop and flip (training, the
  same seed every round so every round decodes the same frames).

A dataset item decodes the file from its start up to the last frame it needs and converts only the
clip's frames to RGB; its rate is counted per *decoded* frame (those up to the last needed one), and
the ratio to the reference shows what the dataset's own work (frame selection, stacking, transforms)
costs per decoded frame. torch runs on one thread, as in a DataLoader worker; the dataset's cached
frame count is filled in by the warm-up rounds.

Every variant is timed once per round, rounds interleaved, and each figure is the median over rounds.

Usage: ``python benchmarks/video_loader.py [--quick]``. Not part of the test run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from timing import interleaved_medians, load_average, parse_rounds

from lstmvision.data import VideoClips, clip_span, random_start, uniform_starts

FRAMES, WIDTH, HEIGHT, CLIP = 300, 320, 240, 16
TRAIN_SEED = 0
REFERENCE = "PyAV decode -> RGB numpy (reference)"
CENTRE, UNIFORM, TRAIN = (
    "VideoClips eval, centre clip",
    "VideoClips eval, 4 uniform clips",
    "VideoClips train, random clip",
)


def write_test_video(path: Path) -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for t in range(FRAMES):
            frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
            frame[..., 0] = (x + 2 * t) % 256
            frame[..., 1] = (y + t) % 256
            frame[..., 2] = 128
            top, left = (3 * t) % (HEIGHT - 40), (5 * t) % (WIDTH - 40)
            frame[top : top + 40, left : left + 40] = 255
            frame += rng.integers(0, 8, frame.shape, dtype=np.uint8)  # sensor-like noise
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def pyav_decode(path: Path, rgb: Literal["reformatter", "to_ndarray", "none"]) -> Callable[[], None]:
    """Decode the whole file; convert every frame to RGB with one shared reformatter (as the dataset
    does), with ``frame.to_ndarray(format="rgb24")`` (a new swscale context per frame), or not at all."""

    def run() -> None:
        reformatter = VideoReformatter()
        with av.open(str(path)) as container:
            if rgb == "reformatter":
                frames = [
                    reformatter.reformat(f, format="rgb24").to_ndarray() for f in container.decode(video=0)
                ]
            elif rgb == "to_ndarray":
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            else:
                frames = [f.to_ndarray() for f in container.decode(video=0)]  # the YUV planes, no conversion
        assert len(frames) == FRAMES

    return run


def dataset_item(dataset: VideoClips, seed: int | None = None) -> Callable[[], None]:
    def run() -> None:
        if seed is not None:
            torch.manual_seed(seed)
        dataset[0]

    return run


def main() -> None:
    warmup, rounds = parse_rounds(__doc__, quick=(1, 3), full=(2, 9))
    torch.set_num_threads(1)
    span = clip_span(CLIP)
    torch.manual_seed(TRAIN_SEED)
    train_start = random_start(FRAMES, CLIP)  # the start the training variant draws every round
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "test.mp4"
        write_test_video(path)
        samples = [(path, 0)]
        datasets = {
            CENTRE: VideoClips(samples, num_frames=CLIP),
            UNIFORM: VideoClips(samples, num_frames=CLIP, test_clips=4),
            TRAIN: VideoClips(samples, num_frames=CLIP, train=True),
        }
        variants: dict[str, Callable[[], None]] = {
            REFERENCE: pyav_decode(path, "reformatter"),
            "PyAV decode, to_ndarray(rgb24) each": pyav_decode(path, "to_ndarray"),
            "PyAV decode only (no RGB conversion)": pyav_decode(path, "none"),
            CENTRE: dataset_item(datasets[CENTRE]),
            UNIFORM: dataset_item(datasets[UNIFORM]),
            TRAIN: dataset_item(datasets[TRAIN], seed=TRAIN_SEED),
        }
        decoded = dict.fromkeys(variants, FRAMES)
        decoded[CENTRE] = uniform_starts(FRAMES, CLIP)[0] + span
        decoded[UNIFORM] = uniform_starts(FRAMES, CLIP, count=4)[-1] + span
        decoded[TRAIN] = train_start + span
        converted = dict.fromkeys(variants, FRAMES) | {CENTRE: CLIP, UNIFORM: 4 * CLIP, TRAIN: CLIP}
        converted["PyAV decode only (no RGB conversion)"] = 0
        load = load_average()
        median = interleaved_medians(variants, warmup, rounds)

    print(
        f"PyAV {av.__version__}, torch {torch.__version__} ({torch.get_num_threads()} thread), load average "
        f"before {load:.2f}; {FRAMES} frames {WIDTH}x{HEIGHT} H.264, clips of {CLIP} frames, resize 128, "
        f"crop 112; median of {rounds} interleaved rounds"
    )
    reference = FRAMES / median[REFERENCE]
    print(f"{'variant':40s} {'ms/call':>8s} {'decoded':>8s} {'to RGB':>7s} {'frames/s':>9s} {'ratio':>6s}")
    for name, seconds in median.items():
        rate = decoded[name] / seconds
        print(
            f"{name:40s} {seconds * 1e3:8.2f} {decoded[name]:8d} {converted[name]:7d} {rate:9.0f} "
            f"{rate / reference:6.2f}"
        )
    print("frames/s counts decoded frames (up to the last one a call needs); ratio = frames/s / reference")


if __name__ == "__main__":
    main()
