"""An exponential moving average of a task's weights, the E3D-LSTM release's ``ExponentialMovingAverage``.

:class:`WeightAverage` keeps a float32 shadow copy ``s`` of every trainable parameter ``w`` of a module
and, after every optimiser step, moves it towards the new weights with a constant ``decay``::

    s <- s - (1 - decay) * (s - w)          (tf.train.ExponentialMovingAverage without num_updates)

starting from the weights the run starts with. The E3D-LSTM release builds its average as
``tf.train.ExponentialMovingAverage(decay=0.9995)`` with no ``num_updates``, so its decay is the
constant 0.9995 from the first step: TensorFlow's ``min(decay, (1 + n) / (10 + n))`` warm-up applies
only when ``num_updates`` is given, and it is therefore not implemented here.

The task (:class:`~lstmvision.tasks.base.Task`, ``ema_decay``) swaps the average in for validation,
test and predict and the training weights back afterwards (:meth:`swap_in`, :meth:`swap_out`; the
:class:`AverageGuard` callback swaps back when a run stops on an exception), and stores the average in
every checkpoint under :data:`CHECKPOINT_KEY` so that a resumed run continues it exactly
(docs/optimisers.md, "Weight average").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from lstmvision.checkpoints import AVERAGE_KEY

__all__ = ["CHECKPOINT_KEY", "AverageGuard", "WeightAverage", "check_decay"]

# where a checkpoint keeps the average (next to Lightning's own keys, plain tensors and numbers only)
CHECKPOINT_KEY = AVERAGE_KEY


def check_decay(decay: float | None) -> float | None:
    """``decay`` as a float in (0, 1), or None; a ValueError naming ``ema_decay`` otherwise."""
    if decay is None:
        return None
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < float(decay) < 1.0:
        raise ValueError(
            f"ema_decay must be a number strictly between 0 and 1 (the release's is 0.9995), or null for "
            f"no weight average, got {decay!r}"
        )
    return float(decay)


class WeightAverage:
    """The exponential moving average of ``module``'s trainable parameters (see the module docstring).

    Buffers (normalisation statistics) are not averaged: while the average is swapped in the module
    keeps its buffers as they are.

    Args:
        module: the module whose trainable parameters are averaged (the task: names are its own).
        decay: the constant decay, in (0, 1).
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        checked = check_decay(decay)
        assert checked is not None
        self.module = module
        self.decay = checked
        self.updates = 0  # optimiser steps averaged so far (saved; the release's rule does not read it)
        self.shadow: dict[str, Tensor] | None = None
        self._training_weights: dict[str, Tensor] | None = None

    def _parameters(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.module.named_parameters() if p.requires_grad}

    @property
    def swapped_in(self) -> bool:
        """Whether the module holds the average now (its training weights are kept aside)."""
        return self._training_weights is not None

    # --------------------------------------------------------------------------------------- updates
    @torch.no_grad()
    def start(self) -> None:
        """Start the average at the current weights, unless it exists (restored from a checkpoint)."""
        if self.shadow is None:
            self.shadow = {name: p.detach().float().clone() for name, p in self._parameters().items()}
            self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Fold the weights after an optimiser step into the average: ``s += (1 - decay) * (w - s)``."""
        if self.swapped_in:
            raise RuntimeError("the weight average cannot be updated while it is swapped in")
        if self.shadow is None:
            self.start()
        assert self.shadow is not None
        for name, p in self._parameters().items():
            shadow = self.shadow[name]
            if shadow.device != p.device:  # restored on the CPU, or the module moved
                shadow = self.shadow[name] = shadow.to(p.device)
            shadow.lerp_(p.detach().float(), 1.0 - self.decay)
        self.updates += 1

    # ---------------------------------------------------------------------------------------- swaps
    @torch.no_grad()
    def swap_in(self) -> bool:
        """Put the average into the module, keeping the training weights aside; False when there is no
        average yet (nothing trained or restored) or it is already in."""
        if self.shadow is None or self.swapped_in:
            return False
        parameters = self._parameters()
        self._training_weights = {name: p.detach().clone() for name, p in parameters.items()}
        for name, p in parameters.items():
            p.copy_(self.shadow[name])  # to the parameter's dtype and device
        return True

    @torch.no_grad()
    def swap_out(self) -> None:
        """Put the training weights back (nothing happens when the average is not in)."""
        kept, self._training_weights = self._training_weights, None
        if kept is None:
            return
        for name, p in self._parameters().items():
            p.copy_(kept[name])

    def training_weights(self) -> Mapping[str, Tensor] | None:
        """The training weights kept aside while the average is in (parameter name -> tensor), else None."""
        return self._training_weights

    # ------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        shadow = (
            None if self.shadow is None else {k: v.detach().cpu().clone() for k, v in self.shadow.items()}
        )
        return {"decay": self.decay, "updates": self.updates, "shadow": shadow}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a saved average; the decay is the task's (a changed ``ema_decay`` applies from here on)."""
        shadow = state.get("shadow")
        if shadow is None:
            self.shadow, self.updates = None, 0
            return
        names = set(self._parameters())
        if set(shadow) != names:
            missing, extra = sorted(names - set(shadow)), sorted(set(shadow) - names)
            raise ValueError(
                f"the checkpoint's weight average does not fit this network: missing {missing[:5]}, "
                f"unexpected {extra[:5]}"
            )
        self.shadow = {name: tensor.float().clone() for name, tensor in shadow.items()}
        self.updates = int(state.get("updates", 0))


class AverageGuard(Callback):
    """Puts the training weights back when a run stops on an exception while the average is in
    (Lightning calls ``on_exception`` on callbacks, not on the LightningModule)."""

    def __init__(self, average: WeightAverage) -> None:
        self.average = average

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.average.swap_out()
