"""Reusable blocks shared by models and tasks."""

from lstmvision.layers.attention import TemporalAttentionPooling, length_mask, temporal_mean
from lstmvision.layers.observe import observed_frames
from lstmvision.layers.time_distributed import TimeDistributed, stack_frames

__all__ = [
    "TemporalAttentionPooling",
    "TimeDistributed",
    "length_mask",
    "observed_frames",
    "stack_frames",
    "temporal_mean",
]
