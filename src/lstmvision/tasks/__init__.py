"""LightningModules: each owns a task's loss, metrics, optimiser and written outputs."""

from lstmvision.tasks.prediction import VideoPredictionTask

__all__ = ["VideoPredictionTask"]

from lstmvision.tasks.classification import VideoClassificationTask

__all__ += ["VideoClassificationTask"]
