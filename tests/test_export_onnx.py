"""ONNX export: the written graph reproduces PyTorch through onnxruntime at other batch and frame sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lstmvision.export_onnx import export_network, export_onnx, run_onnx
from lstmvision.models import CNNLSTM, ConvLSTMPredictor, SingleFrameClassifier

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")

# (batch, height, width) pairs: two batch sizes and two frame sizes, none of them the example's
SIZES = [(1, 8, 8), (3, 12, 20)]


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def predictor() -> ConvLSTMPredictor:
    torch.manual_seed(0)
    return ConvLSTMPredictor(
        1, patch_size=2, num_hidden=[4, 3], filter_size=3, input_length=3, total_length=5
    ).eval()


@pytest.fixture(scope="module")
def predictor_file(predictor: ConvLSTMPredictor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    written = export_network(predictor, tmp_path_factory.mktemp("onnx") / "convlstm.onnx", frame_size=16)
    assert written.dynamic_axes == {0: "batch", 3: "height", 4: "width"}  # time: the unrolled rollout
    assert written.input_name == "frames" and written.example_shape == (2, 3, 1, 16, 16)
    return written.path


@pytest.mark.parametrize(("batch", "height", "width"), SIZES)
def test_predictor_round_trip(
    predictor: ConvLSTMPredictor, predictor_file: Path, batch: int, height: int, width: int
) -> None:
    frames = torch.rand(batch, 3, 1, height, width, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = predictor(frames)  # the model's own horizon: input_length - 1 + 2 frames
    got = run_onnx(predictor_file, frames)
    assert got.shape == expected.shape == (batch, 4, 1, height, width)
    assert _max_err(got, expected) < 1e-4, f"onnxruntime differs from PyTorch by {_max_err(got, expected)}"


def test_predictor_file_declares_its_dynamic_axes(predictor_file: Path) -> None:
    graph = onnx.load(str(predictor_file)).graph
    onnx.checker.check_model(onnx.load(str(predictor_file)))
    (frames,) = graph.input
    dims = [d.dim_param or d.dim_value for d in frames.type.tensor_type.shape.dim]
    assert frames.name == "frames" and dims == ["batch", 3, 1, "height", "width"]
    assert [o.name for o in graph.output] == ["forecast"]


@pytest.fixture(scope="module")
def classifier() -> CNNLSTM:
    torch.manual_seed(0)
    return CNNLSTM(4, "small_cnn", in_channels=1, hidden_size=6, pooling="mean").eval()


@pytest.fixture(scope="module")
def classifier_file(classifier: CNNLSTM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    written = export_network(classifier, tmp_path_factory.mktemp("onnx") / "cnn_lstm.onnx", frame_size=16)
    # nn.LSTM becomes one ONNX LSTM node, so even the clip length stays dynamic
    assert written.dynamic_axes == {0: "batch", 1: "time", 3: "height", 4: "width"}
    assert written.input_name == "clips"
    return written.path


@pytest.mark.parametrize("steps", [3, 8])
@pytest.mark.parametrize(("batch", "height", "width"), SIZES)
def test_classifier_round_trip(
    classifier: CNNLSTM, classifier_file: Path, batch: int, height: int, width: int, steps: int
) -> None:
    clips = torch.rand(batch, steps, 1, height, width, generator=torch.Generator().manual_seed(steps))
    with torch.no_grad():
        expected = classifier(clips)
    got = run_onnx(classifier_file, clips)
    assert got.shape == expected.shape == (batch, 4)
    assert _max_err(got, expected) < 1e-4, f"onnxruntime differs from PyTorch by {_max_err(got, expected)}"


def test_export_leaves_the_training_mode_as_it_was(tmp_path: Path) -> None:
    model = SingleFrameClassifier(3, "small_cnn", in_channels=1).train()
    export_network(model, tmp_path / "m.onnx", frame_size=8, clip_length=2)
    assert model.training and all(m.training for m in model.modules())


def test_a_python_time_loop_is_unrolled_by_the_trace(tmp_path: Path) -> None:
    # a module that loops over the steps in Python: the traced graph is unrolled for 4 of them
    class Loop(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return sum(x[:, t] for t in range(x.shape[1]))  # type: ignore[return-value]

    path = export_onnx(
        Loop(), tmp_path / "loop.onnx", torch.rand(2, 4, 3), dynamic_axes={0: "batch", 1: "time"}
    )
    x = torch.rand(5, 4, 3)
    assert _max_err(run_onnx(path, x), Loop()(x)) < 1e-6  # batch: dynamic
    longer = torch.rand(5, 6, 3)
    # time: the graph still sums 4 steps, so PyTorch's 6-step sum is not reproduced
    assert _max_err(run_onnx(path, longer), longer[:, :4].sum(1)) < 1e-6
    assert _max_err(run_onnx(path, longer), Loop()(longer)) > 0.1


def test_unsupported_models_and_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ONNX export takes a video predictor .* got Linear"):
        export_network(nn.Linear(3, 2), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match=r"dynamic_axes must be axes of the 2-d example input, got \[5\]"):
        export_onnx(nn.Linear(3, 2), tmp_path / "x.onnx", torch.rand(2, 3), dynamic_axes={5: "batch"})
    with pytest.raises(
        TypeError, match=r"export_onnx expects example to be a torch\.Tensor, got builtins\.list"
    ):
        export_onnx(nn.Linear(3, 2), tmp_path / "x.onnx", [1.0, 2.0], dynamic_axes={})  # type: ignore[arg-type]
    assert not (tmp_path / "x.onnx").exists()
