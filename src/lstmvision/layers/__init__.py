"""Reusable blocks shared by models and tasks."""

from lstmvision.layers.observe import observed_frames

__all__ = ["observed_frames"]
