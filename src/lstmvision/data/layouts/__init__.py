"""Folder layouts of public data sets: class folders, UCF101, HMDB51, KTH (frame folders and videos),
OuluVS2 and light-field faces. Each lists samples; the single-view readers return :class:`VideoSplits`."""

from lstmvision.data.layouts.class_folders import read_folder_splits, scan_class_folders
from lstmvision.data.layouts.hmdb51 import read_hmdb51_splits
from lstmvision.data.layouts.kth import (
    KTH_ACTIONS,
    KTH_FAST_ACTIONS,
    KTH_TEST_PERSONS,
    KTH_TRAIN_PERSONS,
    KTHVideo,
    read_kth_video_splits,
    scan_kth_frames,
    sequence_starts,
)
from lstmvision.data.layouts.kth_frames import KTHFrames
from lstmvision.data.layouts.lightfield import LIGHTFIELD_VIEWS
from lstmvision.data.layouts.ouluvs2 import (
    OULUVS2_DIGIT_SEQUENCES,
    OULUVS2_PHRASES,
    OULUVS2_VIEW_ANGLES,
    ouluvs2_utterance_classes,
)
from lstmvision.data.layouts.splits import VideoSplits
from lstmvision.data.layouts.ucf101 import read_ucf101_splits

__all__ = [
    "KTH_ACTIONS",
    "KTH_FAST_ACTIONS",
    "KTH_TEST_PERSONS",
    "KTH_TRAIN_PERSONS",
    "LIGHTFIELD_VIEWS",
    "OULUVS2_DIGIT_SEQUENCES",
    "OULUVS2_PHRASES",
    "OULUVS2_VIEW_ANGLES",
    "KTHFrames",
    "KTHVideo",
    "VideoSplits",
    "ouluvs2_utterance_classes",
    "read_folder_splits",
    "read_hmdb51_splits",
    "read_kth_video_splits",
    "read_ucf101_splits",
    "scan_class_folders",
    "scan_kth_frames",
    "sequence_starts",
]
