"""Scheduled sampling for next-frame prediction: how often training feeds true frames, step by step.

The schedule is training policy, so the prediction task owns it and hands the predictor the two
probabilities of the current step (``forward(frames, sampling_prob=..., input_sampling_prob=...)``);
the predictors hold only their architecture. Two schedules, as the releases define them:

- :class:`ScheduledSampling` (E3D-LSTM / PredRNN release, Bengio et al. 2015): a future step reads
  the true frame with a probability that starts at ``start_value`` and falls by ``changing_rate`` per
  training iteration until ``stop_iter``, from where only the model's own predictions are fed back.
- :class:`ReverseScheduledSampling` (PredRNN-v2, Wang et al., TPAMI 2022): observed steps read the
  true frame with a probability rising from 0.5 to 1 and future steps with one falling from 0.5 to 0,
  both between ``step_1`` and ``step_2``.

Iterations count from 0 (Lightning's ``global_step``); the releases count from 1, so every schedule
here runs one iteration behind theirs (docs/predictor.md).

In YAML they are the prediction task's ``sampling`` argument (docs/predictor.md)::

    sampling:
      class_path: ScheduledSampling
      init_args: {start_value: 1.0, changing_rate: 2.0e-5, stop_iter: 50000}
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ReverseScheduledSampling", "SamplingSchedule", "ScheduledSampling"]


class SamplingSchedule:
    """The probabilities a predictor is trained with at an iteration; subclass it for another schedule."""

    def sampling_probability(self, iteration: int) -> float:
        """Probability that a future step reads the true frame (the rest read the model's prediction)."""
        raise NotImplementedError

    def input_sampling_probability(self, iteration: int) -> float:
        """Probability that an observed step after the first reads the true frame (1: always)."""
        return 1.0

    def init_args(self) -> dict[str, Any]:
        """The constructor arguments, as plain values (what checkpoints and configs record)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.init_args().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.init_args() == self.init_args()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.init_args().items())))


class ScheduledSampling(SamplingSchedule):
    """The E3D-LSTM / PredRNN release's schedule: ``eta = max(start_value - changing_rate * i, 0)``
    until iteration ``stop_iter``, 0 from there on; observed steps always read the true frame.

    Args:
        start_value: probability of feeding the true frame at iteration 0 (``--sampling_start_value``).
        changing_rate: decrease of that probability per training iteration (``--sampling_changing_rate``).
        stop_iter: iteration from which only the model's own predictions are fed back
            (``--sampling_stop_iter``).
    """

    def __init__(self, start_value: float = 1.0, changing_rate: float = 2e-5, stop_iter: int = 50000) -> None:
        if not 0.0 <= start_value <= 1.0:
            raise ValueError(f"start_value must be in [0, 1], got {start_value}")
        if changing_rate < 0 or stop_iter < 0:
            raise ValueError(f"changing_rate and stop_iter must be >= 0, got {changing_rate} and {stop_iter}")
        self.start_value = start_value
        self.changing_rate = changing_rate
        self.stop_iter = stop_iter

    def sampling_probability(self, iteration: int) -> float:
        if iteration >= self.stop_iter:
            return 0.0
        return max(self.start_value - self.changing_rate * iteration, 0.0)

    def init_args(self) -> dict[str, Any]:
        return {
            "start_value": self.start_value,
            "changing_rate": self.changing_rate,
            "stop_iter": self.stop_iter,
        }


class ReverseScheduledSampling(SamplingSchedule):
    """PredRNN-v2's reverse scheduled sampling.

    Before ``step_1`` both probabilities are 0.5. Between ``step_1`` and ``step_2`` the future-step
    probability falls linearly to 0 and the observed-step one rises as
    ``1 - 0.5 * exp(-(i - step_1) / exp_alpha)``; from ``step_2`` on they are 0 and 1.

    Args:
        step_1: iteration where both probabilities start to move (``--r_sampling_step_1``).
        step_2: iteration where they reach 0 (future) and 1 (observed) (``--r_sampling_step_2``).
        exp_alpha: time constant of the exponential rise of the observed-step probability
            (``--r_exp_alpha``).
    """

    def __init__(self, step_1: int = 25000, step_2: int = 50000, exp_alpha: float = 5000.0) -> None:
        if not 0 <= step_1 < step_2:
            raise ValueError(f"reverse sampling needs 0 <= step_1 < step_2, got {step_1} and {step_2}")
        if exp_alpha <= 0:
            raise ValueError(f"exp_alpha must be > 0, got {exp_alpha}")
        self.step_1 = step_1
        self.step_2 = step_2
        self.exp_alpha = exp_alpha

    def sampling_probability(self, iteration: int) -> float:
        if iteration < self.step_1:
            return 0.5
        return max(0.5 - 0.5 * (iteration - self.step_1) / (self.step_2 - self.step_1), 0.0)

    def input_sampling_probability(self, iteration: int) -> float:
        if iteration >= self.step_2:
            return 1.0
        if iteration < self.step_1:
            return 0.5
        return 1.0 - 0.5 * math.exp(-(iteration - self.step_1) / self.exp_alpha)

    def init_args(self) -> dict[str, Any]:
        return {"step_1": self.step_1, "step_2": self.step_2, "exp_alpha": self.exp_alpha}
