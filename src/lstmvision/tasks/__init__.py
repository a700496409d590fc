"""LightningModules: each owns a task's loss, metrics, optimiser and written outputs."""

from lstmvision.tasks.captioning import CaptioningTask
from lstmvision.tasks.classification import VideoClassificationTask
from lstmvision.tasks.prediction import VideoPredictionTask

__all__ = ["CaptioningTask", "VideoClassificationTask", "VideoPredictionTask"]
