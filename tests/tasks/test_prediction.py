"""VideoPredictionTask: training reduces the loss, the test metrics and baseline equal direct computation."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from PIL import Image, ImageSequence
from torch.utils.data import DataLoader, Dataset

from lstmvision.cells import _fusion
from lstmvision.data import SkippedSamples, SkipsUnusable
from lstmvision.models import ConvLSTMPredictor
from lstmvision.tasks import ScheduledSampling, VideoPredictionTask


class _Clips(L.LightningDataModule):
    def __init__(self, clips: torch.Tensor, batch_size: int) -> None:
        super().__init__()
        self.clips, self.batch_size = clips, batch_size

    def _loader(self) -> DataLoader:
        return DataLoader(list(self.clips), batch_size=self.batch_size)

    train_dataloader = val_dataloader = test_dataloader = predict_dataloader = _loader


def _moving_squares(n: int, T: int = 6, size: int = 12) -> torch.Tensor:
    """A bright 2x2 square moving one pixel right per frame from a random start: (n, T, 1, size, size)."""
    g = torch.Generator().manual_seed(1)
    clips = torch.zeros(n, T, 1, size, size)
    for i in range(n):
        r, c = torch.randint(0, size - 2, (2,), generator=g).tolist()
        for t in range(T):
            cc = (c + t) % (size - 1)
            clips[i, t, 0, r : r + 2, cc : cc + 2] = 1.0
    return clips


def _gif_pixels(path: Path) -> np.ndarray:
    """Every frame of a GIF as RGB pixels ``(frames, H, W, 3)``."""
    with Image.open(path) as gif:
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)])


def _task(**kwargs: object) -> VideoPredictionTask:
    torch.manual_seed(0)
    model = ConvLSTMPredictor(
        num_hidden=[8],
        filter_size=3,
        patch_size=2,
        input_length=3,
        total_length=6,
    )
    kwargs.setdefault("sampling", ScheduledSampling(changing_rate=0.1, stop_iter=5))
    return VideoPredictionTask(model, **kwargs)  # type: ignore[arg-type]


def _trainer(tmp_path, **kwargs: object) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_test_metrics_and_baseline_equal_direct_computation(tmp_path) -> None:
    clips = _moving_squares(7)
    task = _task(gif_samples=3, save_frames=2)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=2, num_sanity_val_steps=0)
    trainer.fit(task, datamodule=_Clips(clips, batch_size=3))
    trainer.test(task, datamodule=_Clips(clips, batch_size=3))  # batches of 3, 3, 1: weighting matters
    out = tmp_path / "lightning_logs" / "version_0"
    metrics = json.loads((out / "metrics.json").read_text())

    observed, truth = clips[:, :3], clips[:, 3:]
    base = (observed[:, -1:] - truth).square().sum((2, 3, 4))  # (clips, future frames)
    with torch.no_grad():
        pred = task.model.eval()(observed, future=3)[:, 2:].clamp(0, 1)
    model_mse = (pred - truth).square().sum((2, 3, 4))
    assert metrics["num_sequences"] == 7
    assert metrics["copy_last_frame"]["mse"] == pytest.approx(base.mean().item(), rel=1e-5)
    assert metrics["per_frame"]["copy_last_frame"]["mse"] == pytest.approx(base.mean(0).tolist(), rel=1e-5)
    assert metrics["model"]["mse"] == pytest.approx(model_mse.mean().item(), rel=1e-4)
    assert metrics["mse_ratio_to_copy_last_frame"] == pytest.approx(
        model_mse.mean().item() / base.mean().item(), rel=1e-4
    )
    assert set(metrics["model"]) == {"mse", "mae", "psnr", "ssim"}

    gif = Image.open(out / "predictions.gif")
    assert gif.n_frames == 6, "one animation frame per observed and predicted frame"
    assert Image.open(out / "per_frame_metrics.png").size[0] > 200
    assert len([p for p in (out / "frames").rglob("*.png")]) > 0


def test_training_lowers_the_loss_and_uses_scheduled_sampling(tmp_path) -> None:
    clips = _moving_squares(16)
    task = _task(optimizer=partial(torch.optim.Adam, lr=1e-2))
    trainer = _trainer(
        tmp_path, max_epochs=6, num_sanity_val_steps=0, log_every_n_steps=1, limit_val_batches=0
    )
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(task.model(clips), clips[:, 1:]).item()
    trainer.fit(task, datamodule=_Clips(clips, batch_size=8))
    with torch.no_grad():
        after = torch.nn.functional.mse_loss(task.model(clips), clips[:, 1:]).item()
    assert after < 0.7 * before, f"loss {before:.4f} -> {after:.4f}"
    assert trainer.global_step == 12
    assert task.sampling is not None and task.sampling.sampling_probability(trainer.global_step) == 0.0


def test_predict_forecasts_the_requested_horizon(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    task = _task(predict_future=5)
    out = _trainer(tmp_path).predict(task, datamodule=_Clips(_moving_squares(4)[:, :3], batch_size=2))
    assert [tuple(o.shape) for o in out] == [(2, 5, 1, 12, 12)] * 2
    path = tmp_path / "lightning_logs" / "version_0" / "predictions.pt"
    assert capsys.readouterr().out.splitlines() == [f"predictions: {path}"]
    saved = torch.load(path, weights_only=True)
    assert saved["predictions"].dtype == torch.uint8
    torch.testing.assert_close(
        saved["predictions"].float() / 255, torch.cat(out), rtol=0, atol=0.5 / 255 + 1e-6
    )
    assert saved["skipped"].dtype == torch.int64 and saved["skipped"].tolist() == []


class _SkippingClips(SkipsUnusable, Dataset[torch.Tensor]):
    """Clips of which those in ``bad`` are unusable: served by the next clip, as the readers do."""

    def __init__(self, clips: torch.Tensor, bad: set[int]) -> None:
        self.clips, self.bad = clips, bad
        self._skips = SkippedSamples(len(clips))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        while index in self.bad:
            self._skips.add(index)
            index += 1
        return self.clips[index]


def test_predictions_list_the_clips_skipped_in_a_worker(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    clips = _moving_squares(4)[:, :3]
    loader = DataLoader(_SkippingClips(clips, {1}), batch_size=2, num_workers=1)
    with caplog.at_level("WARNING", logger="lstmvision"):
        out = _trainer(tmp_path).predict(_task(predict_future=2), dataloaders=loader)
    saved = torch.load(tmp_path / "lightning_logs" / "version_0" / "predictions.pt", weights_only=True)
    assert saved["skipped"].tolist() == [1]
    torch.testing.assert_close(out[0][1], out[1][0])  # row 1 is clip 2's forecast, as the list says
    assert "1 unusable clip(s) skipped (on_corrupt: skip)" in caplog.text


def test_a_skipped_clip_is_left_out_of_the_test_metrics_and_pictures(tmp_path) -> None:
    # row 1 repeats clip 2: the metrics must be those of clips 0, 2 and 3, each counted once, and the
    # GIF and frames/ show those 3 clips, none twice
    clips, task = _moving_squares(4), _task(gif_samples=4, save_frames=4)
    clips[2] *= 0.5  # a fainter square: counting clip 2 twice moves every figure
    loaders = [
        DataLoader(_SkippingClips(clips, {1}), batch_size=2, num_workers=1),
        DataLoader(clips[[0, 2, 3]], batch_size=2),
        DataLoader(clips[[0, 2, 2, 3]], batch_size=2),  # what counting the served row measured
    ]
    for loader in loaders:
        _trainer(tmp_path).test(task, dataloaders=loader)
    skipping, usable, twice = (
        json.loads((tmp_path / "lightning_logs" / f"version_{v}" / "metrics.json").read_text())
        for v in range(3)
    )
    assert (skipping["num_sequences"], skipping["skipped_unusable"]) == (3, 1)
    assert (usable["num_sequences"], usable["skipped_unusable"]) == (3, 0)
    for series in ("model", "copy_last_frame"):
        assert skipping[series] == pytest.approx(usable[series], rel=1e-6), series
    assert skipping["model"]["mse"] != pytest.approx(twice["model"]["mse"], rel=0.05)
    assert skipping["copy_last_frame"]["mse"] != pytest.approx(twice["copy_last_frame"]["mse"], rel=0.05)
    runs = [tmp_path / "lightning_logs" / f"version_{v}" for v in range(3)]
    gifs = [_gif_pixels(run / "predictions.gif") for run in runs]
    assert gifs[0].shape == gifs[1].shape and np.array_equal(gifs[0], gifs[1])
    assert gifs[2].shape != gifs[1].shape  # one clip more: what showing the served row drew
    frames = [sorted(p.relative_to(run) for p in (run / "frames").rglob("*.png")) for run in runs]
    assert frames[0] == frames[1] and {p.parts[1] for p in frames[0]} == {"1", "2", "3"}
    for name in frames[0]:
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name


def test_a_skipped_clip_is_left_out_of_the_validation_metrics(tmp_path) -> None:
    clips, task = _moving_squares(4), _task()
    clips[2] *= 0.5
    loaders = [
        DataLoader(_SkippingClips(clips, {1}), batch_size=2, num_workers=1),
        DataLoader(clips[[0, 2, 3]], batch_size=2),
        DataLoader(clips[[0, 2, 2, 3]], batch_size=2),
    ]
    skipping, usable, twice = (_trainer(tmp_path).validate(task, dataloaders=loader)[0] for loader in loaders)
    for key in ("val/mse", "val/ssim"):
        assert skipping[key] == pytest.approx(usable[key], rel=1e-6), key
    assert skipping["val/mse"] != pytest.approx(twice["val/mse"], rel=0.05)


def test_task_refuses_a_model_that_is_not_a_predictor() -> None:
    with pytest.raises(ValueError, match="needs a predictor model with 'input_length'"):
        VideoPredictionTask(torch.nn.Linear(2, 2))


def test_short_clips_are_refused_naming_the_limit() -> None:
    task = _task()
    with pytest.raises(ValueError, match="needs clips of at least total_length=6 frames, got 4"):
        task.training_step(torch.rand(2, 4, 1, 12, 12), 0)
    # forecasting needs only the observed frames: the limit is input_length, and the message says so
    with pytest.raises(ValueError, match="at least input_length=3 frames, got 2") as error:
        task.predict_step(torch.rand(2, 2, 1, 12, 12), 0)
    assert "total_length" not in str(error.value)


def test_reverse_input_trains_on_forward_and_backward_clips() -> None:
    clips = _moving_squares(3)
    seen: list[torch.Tensor] = []

    class _Recorder(ConvLSTMPredictor):
        def forward(self, frames: torch.Tensor, **kwargs: object) -> torch.Tensor:
            seen.append(frames)
            return super().forward(frames, **kwargs)  # type: ignore[arg-type]

    torch.manual_seed(0)
    model = _Recorder(num_hidden=[4], filter_size=3, patch_size=2, input_length=3, total_length=6)
    task = VideoPredictionTask(model, reverse_input=True)
    with torch.no_grad():
        loss = task.training_step(clips, 0)
        both = torch.cat([clips, clips.flip(1)])
        # at step 0 the schedule feeds every true frame (sampling probability 1)
        expected = torch.nn.functional.mse_loss(model(both, sampling_prob=1.0), both[:, 1:])
    torch.testing.assert_close(seen[0], both, rtol=0, atol=0)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)


def test_l1_weight_adds_the_weighted_mean_absolute_error_to_the_loss() -> None:
    # the demo trains with l1_weight 1.0: the loss is MSE + w * L1 over the predicted next frames
    clips = _moving_squares(3)
    plain, weighted = _task(), _task(l1_weight=0.7)
    with torch.no_grad():
        pred = plain.model(clips, sampling_prob=1.0)
        mse = torch.nn.functional.mse_loss(pred, clips[:, 1:])
        l1 = torch.nn.functional.l1_loss(pred, clips[:, 1:])
        torch.testing.assert_close(plain.training_step(clips, 0), mse, rtol=1e-6, atol=0)
        torch.testing.assert_close(weighted.training_step(clips, 0), mse + 0.7 * l1, rtol=1e-6, atol=0)
    assert l1 > 0


@pytest.mark.parametrize("amx", [True, False])
def test_cell_weights_take_the_layout_of_the_runs_precision(tmp_path, monkeypatch, amx: bool) -> None:
    # the hidden convolution reads 128 channels: NCHW in fp32 on a CPU with AMX, else channels-last
    monkeypatch.setattr(_fusion, "_nchw_cpu", lambda: amx)
    build = partial(
        ConvLSTMPredictor, num_hidden=[128], filter_size=3, patch_size=2, input_length=3, total_length=6
    )
    torch.manual_seed(0)
    model = build()
    cell = model.cells[0]
    task = VideoPredictionTask(model, gif_samples=0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(list(_moving_squares(4, size=8)), batch_size=2)
    cl = torch.channels_last

    fit = dict(max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=tmp_path)
    _trainer(tmp_path, precision="32-true", **fit).fit(task, train_dataloaders=loader)
    assert cell.input_conv.weight.is_contiguous(memory_format=cl)
    assert cell.hidden_conv.weight.is_contiguous(memory_format=cl) is not amx
    assert cell.hidden_conv.weight.is_contiguous() is amx
    assert any(not torch.equal(initial[k], v) for k, v in model.state_dict().items()), "it trained"

    trainer = _trainer(tmp_path, precision="bf16-mixed", **fit)
    trainer.fit(task, train_dataloaders=loader)
    assert cell.hidden_conv.weight.is_contiguous(memory_format=cl), "bf16: channels-last at every width"
    # the checkpoint holds the same values, and loads into a model built in the default layout
    trainer.save_checkpoint(tmp_path / "w.ckpt")
    torch.manual_seed(1)
    fresh = VideoPredictionTask(build())
    fresh.load_state_dict(torch.load(tmp_path / "w.ckpt", weights_only=True)["state_dict"])
    assert all(torch.equal(v, task.state_dict()[k]) for k, v in fresh.state_dict().items())
