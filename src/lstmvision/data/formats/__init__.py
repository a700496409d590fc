"""Readers of public file formats: MNIST idx, Moving MNIST ``.npy``/``.npz``, caption annotations
(MSVD CSV, MSR-VTT JSON, generic JSON) and HDF5 feature files, with the datasets that read them."""

from lstmvision.data.formats.caption_features import CaptionFeatures
from lstmvision.data.formats.captions import SPLITS, CaptionSet, read_caption_json
from lstmvision.data.formats.mnist_idx import read_mnist_idx
from lstmvision.data.formats.moving_mnist import MovingMNISTArray, read_e3d_npz, read_moving_mnist_npy
from lstmvision.data.formats.msrvtt import read_msrvtt
from lstmvision.data.formats.msvd import MSVD_SPLIT_SIZES, msvd_splits, read_msvd_csv, read_youtube_mapping
from lstmvision.data.formats.multiview_features import MultiViewFeatures

__all__ = [
    "MSVD_SPLIT_SIZES",
    "SPLITS",
    "CaptionFeatures",
    "CaptionSet",
    "MovingMNISTArray",
    "MultiViewFeatures",
    "msvd_splits",
    "read_caption_json",
    "read_e3d_npz",
    "read_mnist_idx",
    "read_moving_mnist_npy",
    "read_msrvtt",
    "read_msvd_csv",
    "read_youtube_mapping",
]
