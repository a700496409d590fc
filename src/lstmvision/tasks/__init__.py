"""LightningModules: each owns a task's loss, metrics, optimiser and written outputs."""

from lstmvision.tasks.base import Task
from lstmvision.tasks.budget import TimeBudget
from lstmvision.tasks.captioning import CaptioningPlateau, CaptioningTask
from lstmvision.tasks.classification import VideoClassificationTask
from lstmvision.tasks.prediction import VideoPredictionTask
from lstmvision.tasks.schedules import ReverseScheduledSampling, SamplingSchedule, ScheduledSampling

__all__ = [
    "CaptioningPlateau",
    "CaptioningTask",
    "ReverseScheduledSampling",
    "SamplingSchedule",
    "ScheduledSampling",
    "Task",
    "TimeBudget",
    "VideoClassificationTask",
    "VideoPredictionTask",
]
