"""ONNX export of lstmvision networks with dynamic batch, frame size and, where the model allows, time.

:func:`export_onnx` writes any module traced on one example input. :func:`export_network` does it for a
video predictor (``(B, input_length, C, H, W)`` frames in, the forecast out) or a video classifier
(``(B, T, C, H, W)`` clips in, logits out) and checks the file against PyTorch with onnxruntime at
other batch sizes, frame sizes and clip lengths: an axis is declared dynamic only if the exported
graph reproduces PyTorch there. ``lstmvision export --format onnx`` calls it. See docs/export.md.

The file comes from PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``):
it keeps the batch, height and width dynamic. The ``torch.export``-based exporter (``dynamo=True``)
specialises the batch size and fails on the cells' explicit convolution padding.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from lstmvision._checks import check_tensor
from lstmvision.models.predictor import RecurrentPredictor

__all__ = ["ONNX_FILE", "OPSET", "OnnxExport", "export_network", "export_onnx", "run_onnx"]

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 17  # ONNX opset of the written graphs: onnxruntime >= 1.13 runs it
# largest |onnxruntime - PyTorch| difference, relative to the largest |PyTorch| output (at least 1),
# for an axis to count as dynamic: float32 rounding of the same graph is far below it
_TOLERANCE = 1e-4
_INSTALL = "pip install 'lstmvision[onnx]' (onnx and onnxruntime)"


class OnnxExport(NamedTuple):
    """What :func:`export_network` wrote: the file, its input's name and example shape, and the input
    axes that are dynamic (by name: ``batch``, ``time``, ``height``, ``width``)."""

    path: Path
    input_name: str
    example_shape: tuple[int, ...]
    dynamic_axes: dict[int, str]


class _Forecast(nn.Module):
    """A predictor with its forecast horizon fixed, so that the traced graph has one input."""

    def __init__(self, predictor: RecurrentPredictor, future: int) -> None:
        super().__init__()
        self.predictor, self.future = predictor, future

    def forward(self, frames: Tensor) -> Tensor:
        """The predictions ``(B, input_length - 1 + future, C, H, W)`` of ``frames``."""
        return self.predictor(frames, future=self.future)


class _Classify(nn.Module):
    """A classifier called with its clips only: the exporter would pass every other argument of
    ``forward`` positionally with its default, which a keyword-only one refuses."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, clips: Tensor) -> Tensor:
        """The logits ``(B, num_classes)`` of ``clips``."""
        return self.classifier(clips)


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f"ONNX export needs the {module} package: {_INSTALL}") from error


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike[str],
    example: Tensor,
    *,
    dynamic_axes: Mapping[int, str],
    output_axes: Mapping[int, str] | None = None,
    input_name: str = "frames",
    output_name: str = "output",
    opset: int = OPSET,
) -> Path:
    """Trace ``module`` on ``example`` (in eval mode, without gradient) and write it as ONNX to ``path``.

    Args:
        module: a module whose ``forward`` takes one tensor and returns one tensor.
        path: the ``.onnx`` file to write (its folder is created).
        example: an input the module accepts; the non-dynamic axes keep its sizes.
        dynamic_axes: input axis -> name, e.g. ``{0: "batch", 3: "height", 4: "width"}``.
        output_axes: output axis -> name; by default ``{0: "batch"}`` when the input's batch is dynamic.
        input_name, output_name: the graph's input and output names.
        opset: the ONNX opset version.

    The graph follows the Python control flow taken for ``example``: a loop over time is unrolled, so
    the time axis is dynamic only where the module does not loop over it (:func:`export_network`
    checks that). The module's training mode is restored afterwards.
    """
    check_tensor("export_onnx", example, "example")
    axes = dict(dynamic_axes)
    bad = [axis for axis in axes if not isinstance(axis, int) or not -example.dim() <= axis < example.dim()]
    if bad:
        raise ValueError(f"dynamic_axes must be axes of the {example.dim()}-d example input, got {bad}")
    axes = {axis % example.dim(): name for axis, name in axes.items()}
    if output_axes is None:
        output_axes = {0: axes[0]} if 0 in axes else {}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns at every Python branch on a shape (the input checks); the legacy
            # exporter warns that it is legacy: both are expected here, the result is checked instead
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # nn.LSTM's zero initial state follows the input's batch here (export_network checks it)
            warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1")
            torch.onnx.export(
                module,
                (example,),
                str(target),
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: axes, output_name: dict(output_axes)},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        module.train(was_training)
    return target


def run_onnx(path: str | os.PathLike[str], x: Tensor) -> Tensor:
    """Run the exported file on ``x`` with onnxruntime (CPU) and return its first output as a tensor."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures surface as exceptions; don't also print them to stderr
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy()})[0])


def _mismatch(path: Path, module: nn.Module, inputs: Sequence[Tensor]) -> str | None:
    """Why the file does not reproduce ``module`` on ``inputs`` (an error or the difference), or None."""
    for x in inputs:
        try:
            with torch.no_grad():
                expected = module(x)
        except (ValueError, RuntimeError) as error:  # e.g. a flatten head built for one frame size
            return f"input {tuple(x.shape)}: PyTorch refuses it ({str(error).splitlines()[0]})"
        try:
            got = run_onnx(path, x)
        except Exception as error:  # onnxruntime reports a shape the graph cannot take as a failure
            return f"input {tuple(x.shape)}: onnxruntime failed ({str(error).splitlines()[0]})"
        if got.shape != expected.shape:
            return f"input {tuple(x.shape)}: output {tuple(got.shape)}, PyTorch {tuple(expected.shape)}"
        err = (got - expected).abs().max().item()
        if err > _TOLERANCE * max(1.0, expected.abs().max().item()):
            return f"input {tuple(x.shape)}: differs from PyTorch by {err:.3g}"
    return None


def _resized(example: Tensor, axes: Mapping[int, int], rng: torch.Generator) -> Tensor:
    """A random input like ``example`` whose axes grow by the given amounts."""
    shape = [size + axes.get(axis, 0) for axis, size in enumerate(example.shape)]
    return torch.rand(shape, generator=rng, dtype=example.dtype)


def export_network(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    frame_size: int | tuple[int, int] = 64,
    clip_length: int = 8,
    batch_size: int = 2,
) -> OnnxExport:
    """Write a video predictor or classifier as ONNX and return what was written.

    - a :class:`~lstmvision.models.RecurrentPredictor` (ConvLSTM, PredRNN, E3D-LSTM): input ``frames``
      ``(B, input_length, C, H, W)``, output ``forecast`` ``(B, input_length - 1 + future_length, C, H,
      W)``, the model's own forecast horizon; time is fixed (the rollout is unrolled).
    - a classifier of clips (a model with ``num_classes`` and 5-d input, e.g. ``cnn_lstm``): input
      ``clips`` ``(B, T, C, H, W)``, output ``logits`` ``(B, num_classes)``; time is dynamic when the
      graph reproduces PyTorch at another clip length (``cnn_lstm``: its ``nn.LSTM`` becomes an ONNX
      LSTM), else fixed at ``clip_length``.

    Batch, height and width are dynamic when the graph reproduces PyTorch at other sizes, else fixed
    (e.g. ``cnn_convlstm`` with ``head="flatten"`` keeps the frame size). The checks run onnxruntime at
    the example sizes plus one clip, one patch-multiple of pixels and two frames.

    Args:
        model: the network (put in eval mode for the export; its mode is restored).
        path: the ``.onnx`` file to write.
        frame_size: size of the example frames, ``S`` or ``(H, W)``, rounded up to a multiple of the
            model's ``patch_size``; give the training size when the model needs one (a flatten head).
        clip_length: frames of a classifier's example clip.
        batch_size: clips in the example.

    Raises:
        ImportError: onnx or onnxruntime is not installed.
        ValueError: a model that is neither a predictor nor a classifier of ``(B, T, C, H, W)`` clips,
            or whose graph matches PyTorch at no batch size but the example's.
    """
    _require("onnx")
    _require("onnxruntime")
    height, width = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
    if min(height, width, clip_length, batch_size) < 1:
        raise ValueError(
            "frame_size, clip_length and batch_size must be >= 1, got "
            f"{frame_size}, {clip_length} and {batch_size}"
        )
    target = Path(path)
    name = type(model).__name__
    in_channels = getattr(model, "in_channels", None)
    patch = int(getattr(model, "patch_size", 1))
    # rounded up to a multiple of the patch size
    height, width = -(-height // patch) * patch, -(-width // patch) * patch
    spatial = {3: "height", 4: "width"}
    if isinstance(model, RecurrentPredictor):
        module: nn.Module = _Forecast(model, model.future_length)
        example_shape = (batch_size, model.input_length, model.in_channels, height, width)
        input_name, output_name = "frames", "forecast"
        candidates = [{0: "batch", **spatial}, {0: "batch"}]
        output_spatial = spatial
    elif (
        isinstance(getattr(model, "num_classes", None), int)
        and isinstance(in_channels, int)
        and getattr(model, "input_rank", 5) == 5
    ):
        module = _Classify(model)
        example_shape = (batch_size, clip_length, in_channels, height, width)
        input_name, output_name = "clips", "logits"
        candidates = [{0: "batch", 1: "time", **spatial}, {0: "batch", **spatial}, {0: "batch", 1: "time"}]
        candidates.append({0: "batch"})
        output_spatial = {}
    else:
        raise ValueError(
            f"ONNX export takes a video predictor (RecurrentPredictor) or a classifier of (B, T, C, H, W) "
            f"clips (a model with num_classes and in_channels), got {name}"
        )
    rng = torch.Generator().manual_seed(0)
    reference = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    example = torch.rand(example_shape, generator=rng, dtype=dtype)
    growth = {0: 1, 1: 2, 3: patch * max(1, 4 // patch), 4: 2 * patch * max(1, 4 // patch)}
    was_training = model.training
    module.eval()  # the wrapper and the model: export_onnx restores the wrapper's mode, so set it too
    try:
        problems = []
        for axes in candidates:
            output_axes = {0: "batch"} | {a: n for a, n in output_spatial.items() if a in axes}
            try:
                export_onnx(
                    module,
                    target,
                    example,
                    dynamic_axes=axes,
                    output_axes=output_axes,
                    input_name=input_name,
                    output_name=output_name,
                )
            except Exception as error:  # torch.onnx's errors have no common base; an op it cannot export
                problem: str | None = f"the exporter failed ({str(error).splitlines()[0]})"
            else:
                # the example itself, then every dynamic axis grown at once
                probes = [example, _resized(example, {a: growth[a] for a in axes}, rng)]
                problem = _mismatch(target, module, probes)
            if problem is None:
                log.info("%s: wrote %s, input %s dynamic on %s", name, target, input_name, axes)
                return OnnxExport(target, input_name, example_shape, dict(axes))
            problems.append(f"dynamic {list(axes.values())}: {problem}")
            log.info("%s: the ONNX graph is not dynamic on %s (%s)", name, list(axes.values()), problem)
    finally:
        model.train(was_training)
    target.unlink(missing_ok=True)
    raise ValueError(f"cannot write {name} as ONNX with even the batch size dynamic: {'; '.join(problems)}")
