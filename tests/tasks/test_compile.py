"""``compile=True``: a handful of compiled graphs serve every step and horizon and equal the eager step;
checkpoints keep plain names."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader

from lstmvision.models import ConvLSTMPredictor, E3DLSTMPredictor, PredRNNv2
from lstmvision.tasks import VideoPredictionTask
from lstmvision.tasks.compiling import compile_time_step


def _graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


def test_compiled_predictor_compiles_once_for_every_step_and_horizon(tmp_path) -> None:
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = ConvLSTMPredictor(1, patch_size=2, num_hidden=[4], filter_size=3, input_length=3, total_length=6)
    plain_names = set(VideoPredictionTask(model).state_dict())
    task = VideoPredictionTask(model, compile=True, gif_samples=0)
    clips = torch.rand(4, 6, 1, 8, 8)
    loader = DataLoader(list(clips), batch_size=2)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)  # a training step, then validation
    with torch.no_grad():
        task.eval()
        task._forecast(clips[:2], 3)  # every graph a forecast needs exists now
        compiled = _graphs()
        assert compiled > 0, "the time step was compiled"
        # another training step (another scheduled-sampling probability), then new horizons
        task.train()
        with torch.enable_grad():
            task.predictor(clips[:2], sampling_prob=0.3).square().mean().backward()
        task.eval()
        for horizon in (1, 5, 9):
            assert task._forecast(clips[:2], horizon).shape == (2, horizon, 1, 8, 8)
    assert _graphs() == compiled, f"recompiled: {compiled} graphs, then {_graphs()}"

    # checkpoints hold the names of the uncompiled network, and load into an uncompiled task
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert set(saved) == plain_names and not any("_orig_mod" in name for name in saved)
    fresh = ConvLSTMPredictor(1, patch_size=2, num_hidden=[4], filter_size=3, input_length=3, total_length=6)
    VideoPredictionTask(fresh).load_state_dict(saved)  # strict: every name matches


def _e3d(recall_window: int | None) -> E3DLSTMPredictor:
    torch.manual_seed(0)
    return E3DLSTMPredictor(
        1, patch_size=2, num_hidden=[4], filter_size=3, window_length=2, recall_window=recall_window,
        input_length=2, total_length=5, layer_norm=False,
    )  # fmt: skip


def _predrnn_v2() -> PredRNNv2:
    torch.manual_seed(0)
    return PredRNNv2(1, patch_size=2, num_hidden=[4, 4], filter_size=3, input_length=2, total_length=5)


@pytest.mark.parametrize(
    "make",
    [lambda: _e3d(1), lambda: _e3d(None), _predrnn_v2],
    ids=["e3d_lstm recall_window 1", "e3d_lstm recalling every step", "predrnn_v2"],
)
def test_a_compiled_step_equals_the_eager_one_and_compiles_a_handful_of_graphs(
    make: Callable[[], nn.Module],
) -> None:
    torch._dynamo.reset()
    counters.clear()
    eager, compiled = make(), make()
    compile_time_step(compiled)
    clips = torch.rand(2, 5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    # training with scheduled sampling: windows mixing true frames (slices of the clip) and predictions
    results = []
    for model in (eager, compiled):
        torch.manual_seed(3)
        out = model(clips, sampling_prob=0.5)
        loss = out.square().mean()
        decoupling = getattr(model, "decoupling_loss", None)  # PredRNN-v2's, through the compiled step
        if decoupling is not None:
            loss = loss + decoupling
        loss.backward()
        results.append((out.detach(), loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=0)
    for name, grad in results[0][2].items():
        torch.testing.assert_close(results[1][2][name], grad, rtol=0, atol=1e-6, msg=name)
    with torch.no_grad():
        for model in (eager, compiled):
            model.eval()
        for horizon in (3, 6):  # a horizon longer than the training clips, from 2 or 4 observed frames
            for observed in (clips[:, :2], clips[:, :4]):
                torch.testing.assert_close(
                    compiled.forecast(observed, horizon), eager.forecast(observed, horizon), rtol=0, atol=1e-6
                )
    # the first step (no state), the windows filling, training and evaluation: 5 graphs for the E3D-LSTM
    # and 6 for PredRNN-v2 with torch 2.13; a graph per step, window mix or horizon reaches torch's
    # limit of 8 graphs a function (and stops compiling there), as the E3D-LSTM did before its window
    # was stacked eagerly
    assert "step" in compiled.__dict__, "the step was not compiled"
    assert 0 < _graphs() < 8, f"{_graphs()} graphs"
