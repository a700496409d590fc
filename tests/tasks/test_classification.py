"""VideoClassificationTask: written metrics equal a direct evaluation of the trained model, multi-clip
averaging and early recognition equal their manual versions, and bad inputs raise named errors."""

from __future__ import annotations

import csv
import json
import math
import re
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lstmvision.data import VideoDataModule
from lstmvision.tasks import VideoClassificationTask

NUM_CLASSES = 4


class _MeanLinear(nn.Module):
    """Mean of each channel over time and pixels, then a linear layer: (N, T, C, H, W) -> (N, K)."""

    def __init__(self, channels: int = 4, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.linear = nn.Linear(channels, num_classes)
        self.calls: list[tuple[int, ...]] = []  # input shape of every call

    def forward(self, clips: Tensor) -> Tensor:
        self.calls.append(tuple(clips.shape))
        return self.linear(clips.mean(dim=(1, 3, 4)))


class _FractionAware(_MeanLinear):
    """Takes ``observed_fraction`` and zeroes the unseen frames, which differs from cutting them off."""

    def forward(self, clips: Tensor, observed_fraction: float = 1.0) -> Tensor:  # type: ignore[override]
        self.calls.append((*clips.shape, observed_fraction))
        T = clips.shape[1]
        seen = (torch.arange(T) < math.ceil(observed_fraction * T - 1e-9)).float()  # (T,)
        return self.linear((clips * seen[None, :, None, None, None]).mean(dim=(1, 3, 4)))


def _data(n: int, *, clips_per_video: int = 0, T: int = 8, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random clips whose label's channel is brighter in the second half: early frames say little."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    shape = (n, clips_per_video, T, NUM_CLASSES, 3, 3) if clips_per_video else (n, T, NUM_CLASSES, 3, 3)
    clips = torch.rand(shape, generator=g)
    bump = 0.3 * F.one_hot(labels, NUM_CLASSES).float()  # (n, C)
    if clips_per_video:
        clips[:, :, T // 2 :] += bump[:, None, None, :, None, None]
    else:
        clips[:, T // 2 :] += bump[:, None, :, None, None]
    return clips, labels


def _loader(clips: Tensor, labels: Tensor | None = None, batch_size: int = 8) -> DataLoader:
    dataset = TensorDataset(clips) if labels is None else TensorDataset(clips, labels)
    return DataLoader(dataset, batch_size=batch_size)


def _trainer(tmp_path: Path, **kwargs: object) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _valid_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_fit_then_test_writes_metrics_equal_to_a_direct_evaluation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    clips, labels = _data(22)  # batches of 8, 8 and 6: the counts must not be batch means
    task = VideoClassificationTask(
        _MeanLinear(),
        class_names=["walk", "run", "box", "wave"],
        optimizer=partial(torch.optim.AdamW, lr=0.05),
        lr_scheduler=torch.optim.lr_scheduler.CosineAnnealingLR,
        top_k=(1, 2, 5),
        observed_fractions=[1.0, 0.3, 0.5],
    )
    trainer = _trainer(tmp_path, max_epochs=2, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(task, train_dataloaders=_loader(clips, labels), val_dataloaders=_loader(clips, labels))
    logged = trainer.test(task, dataloaders=_loader(clips, labels))[0]
    out = tmp_path / "lightning_logs" / "version_0"

    # training: a cosine schedule over all steps, the best checkpoint chosen by val/acc
    scheduler = trainer.lr_scheduler_configs[0]
    assert isinstance(scheduler.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert scheduler.interval == "step" and scheduler.scheduler.T_max == 6
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)
    assert trainer.checkpoint_callback is not None and trainer.checkpoint_callback.monitor == "val/acc"
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(names) == 2 and names[-1] == "last.ckpt", names
    assert re.fullmatch(r"best-00[01]-00000[36]\.ckpt", names[0]), names
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["observed_fractions"] == [1.0, 0.3, 0.5]
    with (out / "metrics.csv").open() as handle:
        assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(next(csv.reader(handle)))

    # the same numbers computed here from the trained model
    model = task.model.eval()
    with torch.no_grad():
        logits = model(clips)
    pred = logits.argmax(1)
    accuracy = (pred == labels).float().mean().item()
    top2 = (logits.topk(2, dim=1).indices == labels[:, None]).any(1).float().mean().item()
    confusion = [[int(((labels == t) & (pred == p)).sum()) for p in range(4)] for t in range(4)]
    per_class = [(pred[labels == c] == c).float().mean().item() for c in range(4)]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 22 and metrics["num_classes"] == 4
    assert metrics["class_names"] == ["walk", "run", "box", "wave"]
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["top1"] == pytest.approx(accuracy)
    assert metrics["top2"] == pytest.approx(top2)
    assert "top5" not in metrics, "top-5 of 4 classes is not reported"
    assert metrics["confusion_matrix"] == confusion
    assert list(metrics["per_class_accuracy"].values()) == pytest.approx(per_class)
    assert list(metrics["per_class_accuracy"]) == ["walk", "run", "box", "wave"]
    assert metrics["mean_class_accuracy"] == pytest.approx(sum(per_class) / 4)
    assert {"accuracy", "top{k}", "confusion_matrix"} <= set(metrics["definitions"])
    assert logged["test/acc"] == pytest.approx(accuracy)
    assert logged["test/top2"] == pytest.approx(top2)
    assert logged["test/mean_class_acc"] == pytest.approx(sum(per_class) / 4)

    # early recognition: the first ceil(f * 8) frames, cut off (the model takes no observed_fraction)
    early = json.loads((out / "early_recognition.json").read_text())
    assert list(early) == ["0.3", "0.5", "1"]
    rows = list(csv.DictReader((out / "early_recognition.csv").open()))
    assert [row["observed_frames"] for row in rows] == ["3", "4", "8"]
    for (key, frames), row in zip([("0.3", 3), ("0.5", 4), ("1", 8)], rows):
        with torch.no_grad():
            cut = model(clips[:, :frames])
        expected = (cut.argmax(1) == labels).float().mean().item()
        assert early[key]["observed_frames"] == frames and early[key]["count"] == 22
        assert early[key]["accuracy"] == pytest.approx(expected), key
        assert float(row["accuracy"]) == pytest.approx(expected)
        assert logged[f"test/acc_observed_{key}"] == pytest.approx(expected)
        assert metrics["early_recognition"][key] == early[key]
    assert early["1"]["accuracy"] == pytest.approx(accuracy)
    assert list(rows[0]) == [
        "observed_fraction",
        "observed_frames",
        "accuracy",
        "top2",
        "mean_class_accuracy",
        "count",
    ]

    assert _valid_png(out / "confusion_matrix.png")[0] > 200
    assert _valid_png(out / "accuracy_vs_observed.png")[0] > 200


def test_multi_clip_test_averages_logits_and_passes_the_observed_fraction(tmp_path: Path) -> None:
    torch.manual_seed(1)
    clips, labels = _data(10, clips_per_video=3)  # (10, 3, 8, 4, 3, 3)
    model = _FractionAware()
    task = VideoClassificationTask(model, observed_fractions=[0.25, 1.0], top_k=(1, 3))
    _trainer(tmp_path).test(task, dataloaders=_loader(clips, labels, batch_size=4))
    out = tmp_path / "lightning_logs" / "version_0"

    # one model call per batch and fraction over all B*K clips, whole clips with the fraction given
    assert model.calls[:3] == [(12, 8, 4, 3, 3, 1.0), (12, 8, 4, 3, 3, 0.25), (12, 8, 4, 3, 3, 1.0)]
    with torch.no_grad():
        per_clip = torch.stack([model(clips[:, k]) for k in range(3)], dim=1)  # (10, 3, classes)
        early = torch.stack([model(clips[:, k], observed_fraction=0.25) for k in range(3)], dim=1)
    video = per_clip.mean(1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx((video.argmax(1) == labels).float().mean().item())
    top3 = (video.topk(3, dim=1).indices == labels[:, None]).any(1).float().mean().item()
    assert metrics["top3"] == pytest.approx(top3)
    written = json.loads((out / "early_recognition.json").read_text())
    assert written["0.25"]["observed_frames"] == 2
    assert written["0.25"]["accuracy"] == pytest.approx(
        (early.mean(1).argmax(1) == labels).float().mean().item()
    )
    # zeroing unseen frames is not cutting them: the model, not the task, handled the fraction
    with torch.no_grad():
        cut = torch.stack([model.linear(clips[:, k, :2].mean(dim=(1, 3, 4))) for k in range(3)], 1).mean(1)
    assert not torch.allclose(cut, early.mean(1))


def test_multi_clip_logits_are_the_mean_of_per_clip_logits_from_one_call() -> None:
    model = _MeanLinear()
    task = VideoClassificationTask(model)
    clips = torch.rand(2, 5, 6, 4, 3, 3)  # 2 videos, 5 clips each
    with torch.no_grad():
        got = task._logits(clips)
        assert len(model.calls) == 1 and model.calls[0][0] == 10
        expected = torch.stack([model(clips[:, k]) for k in range(5)]).mean(0)
    torch.testing.assert_close(got, expected)


def test_predict_writes_class_names_and_probabilities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(2)
    clips, _ = _data(5)
    task = VideoClassificationTask(_MeanLinear(), class_names=["a", "b", "c", "d"])
    out = _trainer(tmp_path).predict(task, dataloaders=_loader(clips, batch_size=3))
    assert [tuple(o["predicted"].shape) for o in out] == [(3,), (2,)]
    with torch.no_grad():
        probabilities = task.model(clips).softmax(1)
    torch.testing.assert_close(torch.cat([o["probabilities"] for o in out]), probabilities)
    path = tmp_path / "lightning_logs" / "version_0" / "predictions.csv"
    assert capsys.readouterr().out.splitlines() == [f"predictions: {path}"]
    rows = list(csv.DictReader(path.open()))
    assert [row["index"] for row in rows] == ["0", "1", "2", "3", "4"]
    # clips of a loader given directly: no file, a stable id each
    assert [row["video"] for row in rows] == [f"predict/{i}" for i in range(5)]
    assert [row["class_name"] for row in rows] == ["abcd"[i] for i in probabilities.argmax(1).tolist()]
    assert [float(row["probability"]) for row in rows] == pytest.approx(
        probabilities.max(1).values.tolist(), abs=1e-6
    )
    # top-k with k = min(5, num_classes) = 4: every class, most probable first
    ranked = probabilities.sort(dim=1, descending=True, stable=True)
    for row, values, indices in zip(rows, ranked.values.tolist(), ranked.indices.tolist()):
        assert [row[f"top{r}_class"] for r in range(1, 5)] == ["abcd"[i] for i in indices]
        assert [float(row[f"top{r}_probability"]) for r in range(1, 5)] == pytest.approx(values, abs=1e-6)
        assert "top5_class" not in row


def test_predict_rows_name_the_video_files_of_a_data_module(tmp_path: Path) -> None:
    # three classes of two tiny frame folders each; a third of each class is the test set
    for name in ("left", "right", "still"):
        for number in range(3):
            folder = tmp_path / "videos" / name / f"{name}_{number}"
            folder.mkdir(parents=True)
            for frame in range(3):
                Image.new("RGB", (6, 6), (40 * number, 80 * frame, 0)).save(folder / f"f{frame}.png")
    data = VideoDataModule(
        str(tmp_path / "videos"), num_frames=2, resize=None, crop_size=None, val_fraction=0.0,
        test_fraction=0.34, batch_size=2,
    )  # fmt: skip
    task = VideoClassificationTask(_MeanLinear(channels=3, num_classes=3))
    _trainer(tmp_path).predict(task, datamodule=data)
    rows = list(csv.DictReader((tmp_path / "lightning_logs" / "version_0" / "predictions.csv").open()))
    tested = data.splits.test if data.splits is not None else []
    assert len(tested) == 3 and [row["video"] for row in rows] == [str(s.path) for s in tested]
    assert all(row["top3_class"] in task.class_names for row in rows)  # the folders' names


def _rows(tmp_path: Path, version: int) -> list[dict[str, str]]:
    return list(
        csv.DictReader((tmp_path / "lightning_logs" / f"version_{version}" / "predictions.csv").open())
    )


def _six_videos(tmp_path: Path) -> dict[str, object]:
    """Six two-frame videos of one class under tmp_path/videos, and VideoDataModule settings testing 3."""
    for number in range(6):
        folder = tmp_path / "videos" / "only" / f"clip_{number}"
        folder.mkdir(parents=True)
        for frame in range(2):
            Image.new("RGB", (6, 6), (40 * number, 100 * frame, 7 * number)).save(folder / f"f{frame}.png")
    return dict(num_frames=2, resize=None, crop_size=None, val_fraction=0.0, test_fraction=0.5, batch_size=2)


def test_a_skipped_video_keeps_its_row_with_empty_predictions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a video found corrupt in a DataLoader worker: the worker serves the next video in its place, and
    # the main process, which writes predictions.csv, must still learn which row that was
    settings = _six_videos(tmp_path)
    task = VideoClassificationTask(_MeanLinear(channels=3, num_classes=2), class_names=["a", "b"])
    data = VideoDataModule(str(tmp_path / "videos"), **settings)  # type: ignore[arg-type]
    _trainer(tmp_path).predict(task, datamodule=data)
    clean = _rows(tmp_path, 0)
    assert data.splits is not None and len(clean) == 3
    bad = data.splits.test[1].path
    (bad / "f1.png").write_bytes(b"not a picture")
    data = VideoDataModule(str(tmp_path / "videos"), num_workers=1, on_corrupt="skip", **settings)  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="lstmvision"):
        _trainer(tmp_path).predict(task, datamodule=data)
    rows = _rows(tmp_path, 1)
    assert [row["video"] for row in rows] == [row["video"] for row in clean] and rows[1]["video"] == str(bad)
    assert rows[0] == clean[0] and rows[2] == clean[2], "the other videos keep their own predictions"
    assert rows[1]["index"] == "1" and set(list(rows[1].values())[2:]) == {""}, rows[1]
    assert "1 unusable video(s) skipped (on_corrupt: skip) have empty prediction cells" in caplog.text
    assert str(bad) in caplog.text


def test_a_skipped_video_is_left_out_of_the_test_metrics(tmp_path: Path) -> None:
    # the row served in place of a corrupt video is the next video again: counting it would count that
    # video twice
    settings = _six_videos(tmp_path)
    task = VideoClassificationTask(_MeanLinear(channels=3, num_classes=2), class_names=["a", "b"])
    data = VideoDataModule(str(tmp_path / "videos"), **settings)  # type: ignore[arg-type]
    _trainer(tmp_path).predict(task, datamodule=data)
    _trainer(tmp_path).test(task, datamodule=data)
    clean = json.loads((tmp_path / "lightning_logs" / "version_1" / "metrics.json").read_text())
    assert clean["count"] == 3 and clean["skipped_unusable"] == 0
    bad_class = int(_rows(tmp_path, 0)[1]["class_index"])  # the prediction for the video made corrupt
    assert data.splits is not None
    (data.splits.test[1].path / "f1.png").write_bytes(b"not a picture")
    data = VideoDataModule(str(tmp_path / "videos"), num_workers=1, on_corrupt="skip", **settings)  # type: ignore[arg-type]
    _trainer(tmp_path).test(task, datamodule=data)
    result = json.loads((tmp_path / "lightning_logs" / "version_2" / "metrics.json").read_text())
    assert result["count"] == 2 and result["skipped_unusable"] == 1
    expected = [row[:] for row in clean["confusion_matrix"]]
    expected[0][bad_class] -= 1  # the corrupt video's own prediction is gone, the others count once
    assert result["confusion_matrix"] == expected
    assert result["accuracy"] == pytest.approx(expected[0][0] / 2)


def test_a_skipped_video_is_left_out_of_the_validation_metrics(tmp_path: Path) -> None:
    settings = _six_videos(tmp_path)
    settings.update(val_fraction=0.5, test_fraction=0.2)
    task = VideoClassificationTask(_MeanLinear(channels=3, num_classes=2), class_names=["a", "b"])
    data = VideoDataModule(str(tmp_path / "videos"), **settings)  # type: ignore[arg-type]
    data.setup("validate")
    assert data.splits is not None and len(data.splits.val) == 3
    clean = _trainer(tmp_path).validate(task, datamodule=data)[0]
    (data.splits.val[1].path / "f1.png").write_bytes(b"not a picture")
    data = VideoDataModule(str(tmp_path / "videos"), num_workers=1, on_corrupt="skip", **settings)  # type: ignore[arg-type]
    skipping = _trainer(tmp_path).validate(task, datamodule=data)[0]
    # videos 0 and 2 once each: their mean, from the clean run's per-video values
    assert skipping["val/loss"] != pytest.approx(clean["val/loss"], rel=1e-6)
    with torch.no_grad():
        clips = [data.val_dataloader().dataset[i] for i in (0, 2)]
        logits = task.model(torch.stack([clip for clip, _ in clips]))
        labels = torch.tensor([label for _, label in clips])
    assert skipping["val/loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)


def test_label_smoothing_changes_the_loss_as_cross_entropy_says() -> None:
    clips, labels = _data(6)
    task = VideoClassificationTask(_MeanLinear(), label_smoothing=0.2)
    loss = task.training_step((clips, labels), 0)
    with torch.no_grad():
        logits = task.model(clips)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, label_smoothing=0.2))
    assert not torch.allclose(loss, F.cross_entropy(logits, labels)), "smoothing must change the loss"


def test_training_on_observed_fractions_draws_one_per_batch() -> None:
    clips, labels = _data(6)
    task = VideoClassificationTask(_FractionAware(), train_observed_fractions=[0.25, 0.5])
    torch.manual_seed(0)
    losses = [task.training_step((clips, labels), i) for i in range(12)]
    seen = [call[-1] for call in task.model.calls]
    assert set(seen) == {0.25, 0.5}, "every batch sees one of the listed fractions, and both are drawn"
    with torch.no_grad():
        expected = F.cross_entropy(task.model(clips, observed_fraction=seen[0]), labels)
    torch.testing.assert_close(losses[0], expected)
    plain = _MeanLinear()
    task = VideoClassificationTask(plain, train_observed_fractions=[0.5])
    task.training_step((clips, labels), 0)
    assert plain.calls == [(6, 4, NUM_CLASSES, 3, 3)], (
        "a model without observed_fraction gets the first frames"
    )


def test_sgd_with_plateau_schedule_follows_val_acc(tmp_path: Path) -> None:
    clips, labels = _data(8)
    task = VideoClassificationTask(
        _MeanLinear(),
        optimizer=partial(torch.optim.SGD, lr=1e-3, momentum=0.5),
        lr_scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau,
    )
    trainer = _trainer(tmp_path, max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(task, train_dataloaders=_loader(clips, labels), val_dataloaders=_loader(clips, labels))
    config = trainer.lr_scheduler_configs[0]
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert config.monitor == "val/acc" and config.scheduler.mode == "max"
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.5


def test_a_configured_checkpoint_with_a_monitor_wins(tmp_path: Path) -> None:
    task = VideoClassificationTask(_MeanLinear())
    task.trainer = _trainer(tmp_path, callbacks=[ModelCheckpoint(monitor="val/loss")])
    assert task.configure_callbacks() == []
    task.trainer = _trainer(tmp_path)  # Lightning's default ModelCheckpoint has no monitor
    [best] = task.configure_callbacks()
    assert isinstance(best, ModelCheckpoint) and best.monitor == "val/acc" and best.mode == "max"


def test_non_finite_loss_names_the_step() -> None:
    clips, labels = _data(4)
    model = _MeanLinear()
    with torch.no_grad():
        model.linear.bias.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="non-finite training loss nan at step 0"):
        VideoClassificationTask(model).training_step((clips, labels), 0)


class _WrongOutput(_MeanLinear):
    def forward(self, clips: Tensor) -> Tensor:
        return super().forward(clips)[:, :3]


def test_bad_batches_raise_named_errors() -> None:
    task = VideoClassificationTask(_MeanLinear())
    labels = torch.zeros(2, dtype=torch.long)
    with pytest.raises(
        ValueError, match=r"\(B, T, C, H, W\) or.*\(B, K, T, C, H, W\), got shape \(2, 8, 4, 3\)"
    ):
        task.training_step((torch.rand(2, 8, 4, 3), labels), 0)
    with pytest.raises(ValueError, match=r"got shape \(2, 1, 1, 8, 4, 3, 3\)"):
        task.test_step((torch.rand(2, 1, 1, 8, 4, 3, 3), labels), 0)
    with pytest.raises(ValueError, match=r"expects batches \(clips, labels\), got a Tensor"):
        task.training_step(torch.rand(2, 8, 4, 3, 3), 0)
    with pytest.raises(ValueError, match=r"labels \(B,\) = \(2,\) for clips \(2, 8, 4, 3, 3\), got \(3,\)"):
        task.validation_step((torch.rand(2, 8, 4, 3, 3), torch.zeros(3, dtype=torch.long)), 0)
    with pytest.raises(ValueError, match=r"integer labels, got dtype torch\.float32"):
        task.training_step((torch.rand(2, 8, 4, 3, 3), torch.zeros(2)), 0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\).*from 0 to 4"):
        task.training_step((torch.rand(2, 8, 4, 3, 3), torch.tensor([0, 4])), 0)
    wrong = VideoClassificationTask(_WrongOutput())
    with pytest.raises(ValueError, match=r"logits \(N, num_classes\) = \(2, 4\), got \(2, 3\)"):
        wrong.training_step((torch.rand(2, 8, 4, 3, 3), labels), 0)


class _NoClasses(nn.Module):
    def forward(self, clips: Tensor) -> Tensor:
        return clips.mean(dim=(1, 3, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\), got 1.0"),
        ({"label_smoothing": -0.1}, "label_smoothing must be in"),
        ({"observed_fractions": [0.5, 0.0]}, r"observed_fractions must be .* in \(0, 1\], got \[0.5, 0.0\]"),
        ({"observed_fractions": [1.5]}, "observed_fractions must be"),
        ({"observed_fractions": []}, "observed_fractions must be a non-empty list"),
        ({"observed_fractions": [0.5, 0.5]}, "observed_fractions must not repeat"),
        (
            {"train_observed_fractions": [0.0]},
            r"train_observed_fractions must be .* in \(0, 1\], got \[0.0\]",
        ),
        ({"class_names": ["a", "b"]}, "class_names must hold num_classes=4 names, got 2"),
        ({"class_names": ["a", "a", "b", "c"]}, "class_names must be distinct"),
        ({"top_k": [0, 1]}, r"top_k must hold integers >= 1, got \[0, 1\]"),
        ({"optimizer": "rmsprop"}, r"`optimizer: rmsprop` is not a class"),
        ({"optimizer": "sgd"}, r"`optimizer: sgd` moved: use `optimizer: \{class_path: torch.optim.SGD\}`"),
        ({"lr_scheduler": "step"}, r"`lr_scheduler: step` is not a class"),
        ({"num_classes": 5}, "num_classes=5 disagrees with the model's num_classes=4"),
    ],
)
def test_bad_arguments_name_the_key(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VideoClassificationTask(_MeanLinear(), **kwargs)  # type: ignore[arg-type]


def test_num_classes_comes_from_the_model_or_the_argument() -> None:
    assert VideoClassificationTask(_MeanLinear(num_classes=6)).num_classes == 6
    assert VideoClassificationTask(_NoClasses(), num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match="num_classes is not given and the model has no 'num_classes'"):
        VideoClassificationTask(_NoClasses())
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        VideoClassificationTask(_NoClasses(), num_classes=1)


def test_a_weight_average_is_what_validation_and_test_score(tmp_path: Path) -> None:
    torch.manual_seed(0)
    clips, labels = _data(16)
    task = VideoClassificationTask(_MeanLinear(), ema_decay=0.5, optimizer=partial(torch.optim.SGD, lr=0.5))
    trainer = _trainer(tmp_path, max_steps=4, limit_val_batches=0)
    trainer.fit(task, train_dataloaders=_loader(clips, labels))
    assert task.weight_average is not None and task.weight_average.updates == 4
    trained = {name: p.detach().clone() for name, p in task.named_parameters()}
    shadow = task.weight_average.shadow

    def logits(weights: dict[str, Tensor]) -> Tensor:  # the network with these weights ("model." names)
        network = {name.removeprefix("model."): tensor for name, tensor in weights.items()}
        return torch.func.functional_call(task.model, network, (clips,))

    def direct(weights: dict[str, Tensor]) -> float:
        return F.cross_entropy(logits(weights), labels).item()

    scorer = _trainer(tmp_path)
    logged = scorer.validate(task, dataloaders=_loader(clips, labels, batch_size=16), verbose=False)[0]
    assert logged["val/loss"] == pytest.approx(direct(shadow), rel=1e-6)
    assert abs(direct(shadow) - direct(trained)) > 1e-3, "the average must differ from the training weights"
    tested = scorer.test(task, dataloaders=_loader(clips, labels, batch_size=16), verbose=False)[0]
    accuracy = (logits(shadow).argmax(1) == labels).float().mean()
    assert tested["test/acc"] == pytest.approx(accuracy.item())
    for name, p in task.named_parameters():  # the training weights are back after each
        torch.testing.assert_close(p.detach(), trained[name], rtol=0, atol=0)
