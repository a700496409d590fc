"""What a task does to its network for speed before a run.

The cells' convolution weights are stored in the memory format their convolutions run in at the run's
precision (:func:`match_run_layout`; docs/precision.md, "Weight layout").

``compile: true`` of the prediction task compiles what a predictor's time loop repeats, once, in place.

A predictor's ``forward`` loops over the horizon; compiled whole, it would compile again for every
horizon and scheduled-sampling branch. So its ``step`` (one time step's cells and head) is compiled and
the loop stays eager. Parameter names, and so checkpoints, do not change: the compiled step is an
instance attribute that shadows the method.

- ``step`` gets only the newest frame, made contiguous: a true frame is a slice of the clip, whose
  strides depend on the clip's length, and a compiled graph is specialised to its inputs' strides.
- A model that reads a window of frames (E3D-LSTM) has its ``window_step`` compiled and its
  ``frame_window`` (the stacking) run eagerly: one window tensor, whatever mix of true and predicted
  frames it holds, so that the mix does not make a graph each.
- A state that grows at every step (E3D-LSTM recalling every earlier step, ``recall_window=None``)
  compiles at its first length and once more with that length dynamic (dynamo's automatic dynamic
  shapes). With torch 2.13: 6 graphs in all for a 12-frame training rollout and a 14-frame forecast
  (the same as with the length marked dynamic from the start), 7 for 20-frame clips (10 -> 10) and
  forecasts of 10 and 30 frames, under torch's limit of 8 a function.
- A model without ``step`` is compiled whole.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from lstmvision.cells import match_weight_layout

__all__ = ["compile_time_step", "match_run_layout"]


def match_run_layout(network: nn.Module, trainer: L.Trainer) -> None:
    """:func:`lstmvision.cells.match_weight_layout` for ``trainer``'s precision and device; called before
    DDP wraps the network and before the optimisers exist, which then hold the converted weights."""
    device, fp32 = trainer.strategy.root_device.type, str(trainer.precision) == "32-true"
    match_weight_layout(network, fp32=fp32, device_type=device)


def compile_time_step(model: nn.Module) -> None:
    """Compile ``model``'s time step in place (see the module docstring)."""
    window_step, frame_window = getattr(model, "window_step", None), getattr(model, "frame_window", None)
    step = getattr(model, "step", None)
    if callable(window_step) and callable(frame_window):
        compiled = torch.compile(window_step)

        def compiled_step(fed: list[Tensor], state: Any) -> Any:
            return compiled(frame_window(fed), state)
    elif callable(step):
        compiled = torch.compile(step)

        def compiled_step(fed: list[Tensor], state: Any) -> Any:
            return compiled([fed[-1].contiguous()], state)
    else:
        model.compile()
        return
    model.__dict__["step"] = compiled_step
