"""``compile=True``: one compiled time step serves every step and horizon; checkpoints keep plain names."""

from __future__ import annotations

import lightning as L
import torch
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader

from lstmvision.models import ConvLSTMPredictor
from lstmvision.tasks import VideoPredictionTask


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
