"""The video classification data module: video files or frame folders in one of four layouts
(class folders, UCF101, HMDB51, KTH videos), served as clips.

docs/data.md ("Video files and frame folders") describes layouts, sampling, transforms and errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from lstmvision.data.checks import check_choice, check_extensions, check_fraction, check_positive
from lstmvision.data.datamodules.base import LayoutDataModule, check_loader_args
from lstmvision.data.io.clips import VideoClips
from lstmvision.data.io.frames import VIDEO_EXTENSIONS
from lstmvision.data.io.reading import OnCorrupt
from lstmvision.data.io.sampling import ShortClips
from lstmvision.data.io.transforms import ClipTransform, check_size
from lstmvision.data.layouts.class_folders import read_folder_splits
from lstmvision.data.layouts.hmdb51 import read_hmdb51_splits
from lstmvision.data.layouts.kth import KTH_TEST_PERSONS, KTH_TRAIN_PERSONS, read_kth_video_splits
from lstmvision.data.layouts.split_lists import check_split
from lstmvision.data.layouts.splits import VideoSplits
from lstmvision.data.layouts.ucf101 import read_ucf101_splits

__all__ = ["Layout", "VideoDataModule"]

logger = logging.getLogger(__name__)

Layout = Literal["folders", "ucf101", "hmdb51", "kth"]
"""The layouts :class:`VideoDataModule` reads."""


class VideoDataModule(LayoutDataModule):
    """Video classification data from video files or frame folders in one of four layouts.

    ``layout`` picks the reader: ``"folders"`` (:func:`read_folder_splits`), ``"ucf101"``
    (:func:`read_ucf101_splits`), ``"hmdb51"`` (:func:`read_hmdb51_splits`) or ``"kth"``
    (:func:`read_kth_video_splits`). The layout is scanned and checked once, by ``setup()`` or by the
    first use of :attr:`class_names` / :attr:`num_classes`; no video is decoded then.

    Training draws a random clip of every video each epoch, with a random crop and flip; validation and
    test take ``test_clips`` uniformly spaced clips with a centre crop (see :class:`VideoClips`).
    ``predict_dataloader`` serves the test set.

    Args:
        root: the data set's root folder.
        layout: how videos, classes and splits are laid out.
        split: the official split (1-3) of UCF101 and HMDB51.
        splits_dir: folder of the UCF101 / HMDB51 split files (default: see the readers).
        num_frames, frame_stride: frames per clip and their distance in the video.
        resize, crop_size, flip, grayscale: see :class:`ClipTransform`.
        short_clips: ``"pad"``, ``"loop"`` or ``"reject"`` videos shorter than the clip span.
        test_clips: clips per validation / test video; batches gain an axis K when > 1.
        val_fraction: videos (folders, HMDB51), groups (UCF101) or persons (KTH, when ``val_persons``
            is ``None``) held out of training for validation; 0 validates on the test set. Unused when
            ``root/val`` exists (folders layout).
        test_fraction: videos of each class held out for testing (folders layout without
            ``root/train`` and ``root/test``).
        train_persons, val_persons, test_persons: KTH persons (``layout="kth"`` only); ``None`` uses
            the defaults of :func:`read_kth_video_splits`.
        batch_size, num_workers: DataLoader settings (workers stay alive between epochs).
        on_corrupt: ``"raise"`` on a video that cannot be decoded, or ``"skip"`` it (see
            :class:`VideoClips`).
        seed: seed of the held-out validation / test draws (not of the clip sampling, which follows
            torch's global generator: use ``seed_everything``).
        extensions: video file extensions (folders and KTH layouts).

    Batches are ``(clips, labels)``: ``float32 (B, T, C, H, W)`` in [0, 1] (``(B, K, T, C, H, W)`` for
    validation and test with ``test_clips = K > 1``) and ``int64 (B,)``.
    """

    def __init__(
        self,
        root: str,
        *,
        layout: Layout = "folders",
        split: int = 1,
        splits_dir: str | None = None,
        num_frames: int = 16,
        frame_stride: int = 1,
        resize: int | tuple[int, int] | None = 128,
        crop_size: int | tuple[int, int] | None = 112,
        flip: bool = True,
        grayscale: bool = False,
        short_clips: ShortClips = "pad",
        test_clips: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        train_persons: Sequence[int] | None = None,
        val_persons: Sequence[int] | None = None,
        test_persons: Sequence[int] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        on_corrupt: OnCorrupt = "raise",
        seed: int = 0,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
    ) -> None:
        super().__init__()
        check_choice("layout", layout, ("folders", "ucf101", "hmdb51", "kth"))
        check_positive(
            num_frames=num_frames, frame_stride=frame_stride, test_clips=test_clips, batch_size=batch_size
        )
        check_choice("short_clips", short_clips, ("pad", "loop", "reject"))
        check_choice("on_corrupt", on_corrupt, ("raise", "skip"))
        check_fraction("val_fraction", val_fraction, zero_ok=True)
        check_fraction("test_fraction", test_fraction, zero_ok=False)
        check_loader_args("VideoDataModule", num_workers=num_workers, seed=seed)
        if layout in ("ucf101", "hmdb51"):
            check_split(split)
        elif split != 1 or splits_dir is not None:
            raise ValueError(
                f"VideoDataModule: split and splits_dir apply to layouts ucf101 and hmdb51, not {layout!r}"
            )
        given = [
            n
            for n, p in (
                ("train_persons", train_persons),
                ("val_persons", val_persons),
                ("test_persons", test_persons),
            )
            if p is not None
        ]
        if given and layout != "kth":
            raise ValueError(f"VideoDataModule: {', '.join(given)} apply to layout 'kth', not {layout!r}")
        self.save_hyperparameters()
        self.root = Path(root)
        self.layout: Layout = layout
        self.split, self.splits_dir = split, splits_dir
        self.persons = (train_persons, val_persons, test_persons)
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.extensions = check_extensions(extensions)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.clip_options: dict[str, Any] = {
            "num_frames": num_frames,
            "frame_stride": frame_stride,
            "resize": check_size("resize", resize),
            "crop_size": check_size("crop_size", crop_size),
            "flip": flip,
            "grayscale": grayscale,
            "short_clips": short_clips,
            "on_corrupt": on_corrupt,
        }
        self.test_clips = test_clips
        ClipTransform(resize=resize, crop_size=crop_size)  # checks that the crop fits an exact resize
        self.splits: VideoSplits | None = None

    def _read_splits(self) -> VideoSplits:
        if self.layout == "folders":
            return read_folder_splits(
                self.root,
                val_fraction=self.val_fraction,
                test_fraction=self.test_fraction,
                seed=self.seed,
                extensions=self.extensions,
            )
        if self.layout in ("ucf101", "hmdb51"):
            read = read_ucf101_splits if self.layout == "ucf101" else read_hmdb51_splits
            return read(
                self.root,
                split=self.split,
                splits_dir=self.splits_dir,
                val_fraction=self.val_fraction,
                seed=self.seed,
            )
        train_persons, val_persons, test_persons = self.persons
        return read_kth_video_splits(
            self.root,
            train_persons=KTH_TRAIN_PERSONS if train_persons is None else train_persons,
            val_persons=val_persons,
            test_persons=KTH_TEST_PERSONS if test_persons is None else test_persons,
            val_fraction=self.val_fraction,
            extensions=self.extensions,
        )

    def _scan(self) -> VideoSplits:
        if self.splits is None:
            splits = self._read_splits()
            shared = " (the test videos)" if splits.val is splits.test else ""
            logger.info(
                "%s (%s layout): %d classes; %d training, %d validation%s and %d test videos",
                self.root,
                self.layout,
                len(splits.class_names),
                len(splits.train),
                len(splits.val),
                shared,
                len(splits.test),
            )
            self.splits = splits
        return self.splits

    def setup(self, stage: str | None = None) -> None:
        """Scan and check the layout, then build the sets ``stage`` needs (all three when ``None``)."""
        splits = self._scan()
        self.build_sets(
            stage,
            lambda which: VideoClips(
                getattr(splits, which),
                train=which == "train",
                test_clips=1 if which == "train" else self.test_clips,
                **self.clip_options,
            ),
        )
