"""CaptioningTask: training with teacher forcing, CIDEr validation, test scores and outputs, the checkpoint's
vocabulary, and ``lstmvision caption`` on real video files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar

import h5py
import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from video_files import write_video

from lstmvision.cli import main as cli_main
from lstmvision.commands.caption import caption_videos
from lstmvision.commands.configs import find_config
from lstmvision.commands.lightning import LstmVisionCLI
from lstmvision.data import (
    CaptionedDigits,
    CaptionedDigitsDataModule,
    CaptionFeaturesDataModule,
    ClipTransform,
    read_frames,
    uniform_frame_indices,
)
from lstmvision.encoders import SmallCNN
from lstmvision.metrics import score_captions
from lstmvision.models import SALSTM
from lstmvision.tasks import CaptioningTask

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, STEPS = 40, 4
CONFIG = find_config("captioned_digits/sa_lstm")


def _data(**kwargs: Any) -> CaptionedDigitsDataModule:
    sizes = dict(train_size=8, val_size=4, test_size=6, batch_size=4)
    return CaptionedDigitsDataModule(image_size=SIZE, seq_length=STEPS, **{**sizes, **kwargs})


def _model(vocab_size: int, **kwargs: Any) -> SALSTM:
    torch.manual_seed(0)
    encoder = SmallCNN(1, [4, 8], pool_size=2, feature_dim=12)
    args = dict(embed_size=8, hidden_size=12, attention_size=6, dropout=0.0, max_length=8)
    return SALSTM(vocab_size, 12, frame_encoder=encoder, **{**args, **kwargs})


def _trainer(tmp_path: Path, **kwargs: Any) -> L.Trainer:
    args = dict(
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**args, **kwargs})


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, CaptioningTask, CaptionedDigitsDataModule]:
    """One short fit and test of a tiny SA-LSTM on the embedded set (shared by the output tests)."""
    root = tmp_path_factory.mktemp("captioning")
    data = _data()
    data.setup("fit")
    assert data.vocabulary is not None
    task = CaptioningTask(_model(len(data.vocabulary)), beam_size=3, attention_maps=2)
    trainer = _trainer(root, max_epochs=2)
    trainer.fit(task, datamodule=data)
    trainer.test(task, datamodule=data, ckpt_path="best", weights_only=True)
    return root, task, data


def test_test_writes_scores_captions_and_attention_maps(
    trained: tuple[Path, CaptioningTask, CaptionedDigitsDataModule],
) -> None:
    root, _, data = trained
    scores = json.loads((root / "scores.json").read_text())
    captions = json.loads((root / "captions.json").read_text())
    test = CaptionedDigits(6, split="test", image_size=SIZE, seq_length=STEPS, stream=2)
    assert [c["video_id"] for c in captions] == [test.video_id(i) for i in range(6)]
    assert [c["references"] for c in captions] == [test.captions(i) for i in range(6)]
    # the written scores are the COCO scorers' on the written captions, beside the baseline's
    refs = {c["video_id"]: c["references"] for c in captions}
    model = score_captions(refs, {c["video_id"]: c["caption"] for c in captions})
    assert scores["model"] == pytest.approx(model.scores, abs=1e-12)
    assert scores["baseline_caption"] == data.baseline_caption
    baseline = score_captions(refs, dict.fromkeys(refs, data.baseline_caption))
    assert scores["most_frequent_caption"] == pytest.approx(baseline.scores, abs=1e-12)
    assert scores["num_videos"] == 6 and scores["beam_size"] == 3
    for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert name in scores["model"]
    with (root / "captions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["caption"] for r in rows] == [c["caption"] for c in captions]
    assert float(rows[0]["CIDEr"]) == pytest.approx(model.per_video[rows[0]["video_id"]]["CIDEr"], abs=1e-6)
    maps = sorted((root / "attention").glob("*.png"))
    assert [p.stem for p in maps] == [test.video_id(0), test.video_id(1)]  # attention_maps=2


def test_checkpoint_keeps_the_vocabulary(
    trained: tuple[Path, CaptioningTask, CaptionedDigitsDataModule],
) -> None:
    root, _, data = trained
    best = next((root / "checkpoints").glob("best-*.ckpt"))
    saved = torch.load(best, weights_only=True)
    assert saved["captioning"]["vocabulary"] == data.vocabulary.to_dict()  # type: ignore[union-attr]
    assert saved["captioning"]["inputs"] == {
        "kind": "frames",
        "frames": STEPS,
        "image_size": SIZE,
        "channels": 1,
    }
    assert saved["captioning"]["baseline_caption"] == data.baseline_caption
    assert "val/CIDEr" in str(saved["callbacks"])  # the best checkpoint is chosen by validation CIDEr


def test_validation_logs_cider_and_bleu(tmp_path: Path) -> None:
    data = _data()
    data.setup("fit")
    assert data.vocabulary is not None
    task = CaptioningTask(_model(len(data.vocabulary)))
    trainer = _trainer(tmp_path, limit_train_batches=1)
    trainer.fit(task, datamodule=data)
    logged = trainer.callback_metrics
    for name in ("val/CIDEr", "val/BLEU-4", "val/ROUGE-L", "val/loss"):
        assert name in logged
    assert "val/METEOR" not in logged  # validation needs no Java


def test_validation_loss_is_the_mean_over_every_token_of_the_set(tmp_path: Path) -> None:
    # batches of 2, 2 and 1 videos with captions of different lengths: the mean of the batches' means,
    # weighted by videos, would differ from the mean over the set's tokens
    whole = _data(val_size=5, batch_size=5)
    whole.setup("fit")
    assert whole.vocabulary is not None
    model = _model(len(whole.vocabulary))
    (batch,) = list(whole.val_dataloader())
    with torch.no_grad():
        logits = model.eval()(batch.inputs, batch.tokens, batch.lengths)
    targets = batch.tokens[:, 1:]
    keep = targets != 0
    assert len(set(keep.sum(dim=1).tolist())) > 1, "the captions must differ in length for this test"
    expected = F.cross_entropy(logits[keep], targets[keep], label_smoothing=0.1).item()
    for batch_size in (2, 5):
        task = CaptioningTask(model, label_smoothing=0.1, val_beam_size=1)
        (logged,) = _trainer(tmp_path).validate(task, datamodule=_data(val_size=5, batch_size=batch_size))
        assert logged["val/loss"] == pytest.approx(expected, rel=1e-6), batch_size


def test_vocabulary_size_must_match_the_model(tmp_path: Path) -> None:
    data = _data()
    data.setup("fit")
    assert data.vocabulary is not None
    n = len(data.vocabulary)
    task = CaptioningTask(_model(n + 3))
    with pytest.raises(ValueError, match=f"vocabulary of {n} tokens but the model has vocab_size={n + 3}"):
        _trainer(tmp_path, fast_dev_run=1).fit(task, datamodule=data)


def test_loss_is_cross_entropy_of_the_next_token_without_padding() -> None:
    data = _data()
    data.setup("fit")
    assert data.vocabulary is not None
    batch = next(iter(data.val_dataloader()))
    task = CaptioningTask(_model(len(data.vocabulary)), label_smoothing=0.1)
    logits = task.model(batch.inputs, batch.tokens, batch.lengths)
    targets = batch.tokens[:, 1:]
    keep = targets != 0
    expected = F.cross_entropy(logits[keep], targets[keep], label_smoothing=0.1)
    torch.testing.assert_close(task._loss(batch, 1.0), expected)


def test_teacher_forcing_schedule() -> None:
    task = CaptioningTask(
        _model(10), teacher_forcing=1.0, teacher_forcing_final=0.6, teacher_forcing_steps=100
    )
    ratios = []
    for step in (0, 50, 100, 400):
        task.__dict__["_fixed_step"] = step
        type(task).global_step = property(lambda self: self.__dict__["_fixed_step"])  # type: ignore[assignment]
        ratios.append(task.teacher_forcing_ratio())
    del type(task).global_step
    assert ratios == pytest.approx([1.0, 0.8, 0.6, 0.6])
    assert CaptioningTask(_model(10), teacher_forcing=0.9).teacher_forcing_ratio() == 0.9


class _RecordingSGD(torch.optim.SGD):
    """SGD that records the global gradient norm it steps with."""

    norms: ClassVar[list[float]] = []

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = closure() if closure is not None else None
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        type(self).norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        super().step()
        return loss


class _ClippedTask(CaptioningTask):
    def configure_optimizers(self) -> Any:
        return _RecordingSGD(self.parameters(), lr=0.0)


def test_gradients_are_clipped_to_max_grad_norm(tmp_path: Path) -> None:
    data = _data()
    data.setup("fit")
    assert data.vocabulary is not None
    _RecordingSGD.norms = []
    task = _ClippedTask(_model(len(data.vocabulary)), max_grad_norm=1e-3)
    _trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(task, datamodule=data)
    assert len(_RecordingSGD.norms) == 2
    assert max(_RecordingSGD.norms) == pytest.approx(1e-3, rel=1e-3)


def test_bad_batches_and_arguments() -> None:
    task = CaptioningTask(_model(10))
    with pytest.raises(ValueError, match=r"expects CaptionBatch batches .* got tuple"):
        task.training_step((torch.zeros(1), torch.zeros(1)), 0)
    with pytest.raises(ValueError, match="has no integer 'vocab_size'"):
        CaptioningTask(torch.nn.Linear(2, 2))
    for key, value, message in [
        ("lr_scheduler", "plateau", "`lr_scheduler: plateau` is not a class"),
        ("label_smoothing", 1.0, r"label_smoothing must be in \[0, 1\), got 1.0"),
        ("teacher_forcing", 1.5, r"teacher_forcing must be in \[0, 1\], got 1.5"),
        ("beam_size", 0, "beam_size must be >= 1, got 0"),
        ("max_grad_norm", 0.0, "max_grad_norm must be > 0 or null, got 0.0"),
    ]:
        with pytest.raises(ValueError, match=message):
            CaptioningTask(_model(10), **{key: value})


def test_caption_command_captions_video_files(
    trained: tuple[Path, CaptioningTask, CaptionedDigitsDataModule], tmp_path: Path
) -> None:
    root, task, data = trained
    best = next((root / "checkpoints").glob("best-*.ckpt"))
    # LightningCLI saves the config beside the checkpoints folder; write the one this run would have
    (root / "config.yaml").write_text(
        json.dumps(
            {
                "model": {
                    "class_path": "lstmvision.tasks.CaptioningTask",
                    "init_args": {"model": _model_spec(len(data.vocabulary))},  # type: ignore[arg-type]
                }
            }
        )
    )
    clips = CaptionedDigits(2, split="test", image_size=SIZE, seq_length=10, stream=5)
    videos = tmp_path / "videos"
    for i in range(2):
        frames = clips.generate(i)[0]  # (10, 1, S, S) in [0, 1]
        rgb = np.repeat((frames[:, 0, :, :, None] * 255).round().astype(np.uint8), 3, axis=-1)
        write_video(videos / f"clip{i}.mp4", rgb)
    (videos / "broken.mp4").write_bytes(b"\x00" * 64)
    report = caption_videos(best, [videos], attention_maps=1, progress=False)
    assert [r.video_id for r in report.captions] == ["clip0", "clip1"]
    assert list(report.failed) == [videos / "broken.mp4"]
    # the same frames through the trained network give the same caption
    model = task.model.eval()
    transform = ClipTransform(resize=(SIZE, SIZE), grayscale=True)
    for result in report.captions:
        pixels = read_frames(result.path, uniform_frame_indices(10, STEPS))
        x = transform(torch.from_numpy(pixels).permute(0, 3, 1, 2))[None]
        best_caption = model.decode(x, beam_size=3)[0]
        assert result.caption == data.vocabulary.decode(best_caption.tokens)  # type: ignore[union-attr]
    written = json.loads((report.out / "captions.json").read_text())
    assert [row["caption"] for row in written] == [r.caption for r in report.captions]
    assert [p.name for p in (report.out / "attention").glob("*.png")] == ["clip0.png"]
    with pytest.raises(SystemExit, match="lstmvision caption: checkpoint not found"):
        cli_main(["caption", "--checkpoint", str(tmp_path / "none.ckpt"), "--videos", str(videos)])


def _model_spec(vocab_size: int) -> dict[str, Any]:
    encoder = {
        "class_path": "lstmvision.encoders.SmallCNN",
        "init_args": {"in_channels": 1, "channels": [4, 8], "pool_size": 2, "feature_dim": 12},
    }
    args = dict(
        vocab_size=vocab_size,
        feature_size=12,
        embed_size=8,
        hidden_size=12,
        attention_size=6,
        dropout=0.0,
        max_length=8,
    )
    return {"class_path": "lstmvision.models.SALSTM", "init_args": {**args, "frame_encoder": encoder}}


def test_config_trains_and_tests_through_the_cli(tmp_path: Path) -> None:
    args = ["--config", str(CONFIG), "--runs_dir", str(tmp_path), "--trainer.max_steps", "2",
            "--trainer.limit_val_batches", "1", "--data.init_args.train_size", "4", "--data.init_args.val_size", "2",
            "--data.init_args.test_size", "2", "--data.init_args.batch_size", "2", "--data.init_args.num_workers", "0",
            "--trainer.enable_progress_bar", "false"]  # fmt: skip
    cli = LstmVisionCLI(args=["fit", *args])
    assert cli.trainer.global_step == 2
    LstmVisionCLI(args=["test", *args, "--ckpt_path", "best"])
    (run,) = (tmp_path / "captioned_digits_sa_lstm" / "version_0").glob("test-*")  # the test's own folder
    scores = json.loads((run / "scores.json").read_text())
    assert scores["num_videos"] == 2 and "CIDEr" in scores["model"]


def test_caption_command_on_a_features_checkpoint(tmp_path: Path) -> None:
    """Extract features, train on them, then caption the videos end to end (frames -> the extraction
    encoder recorded in the checkpoint -> decoder): the captions equal the model's on the stored features."""
    clips = CaptionedDigits(4, split="test", image_size=SIZE, seq_length=6, stream=4)
    videos = tmp_path / "videos"
    captions = {}
    for i in range(4):
        frames, references, _ = clips.generate(i)
        rgb = np.repeat((frames[:, 0, :, :, None] * 255).round().astype(np.uint8), 3, axis=-1)
        write_video(videos / f"v{i}.mp4", rgb)
        captions[f"v{i}"] = references
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "split.json").write_text(json.dumps({"train": ["v0", "v1"], "val": ["v2"], "test": ["v3"]}))
    encoder_args = {"in_channels": 1, "channels": [4], "feature_dim": 12}
    torch.manual_seed(3)
    torch.save(SmallCNN(**encoder_args).state_dict(), tmp_path / "cnn.pt")  # the extraction weights file
    cli_main(["extract-features", "--videos", str(videos), "--encoder", "small_cnn", "--frames", "3",
              "--encoder-args", json.dumps(encoder_args), "--weights", str(tmp_path / "cnn.pt"),
              "--out", str(tmp_path / "f.h5"), "--no-progress"])  # fmt: skip
    data = CaptionFeaturesDataModule(
        features=str(tmp_path / "f.h5"),
        dataset="json",
        captions=str(tmp_path / "captions.json"),
        split_file=str(tmp_path / "split.json"),
        batch_size=2,
    )
    data.setup("fit")
    assert data.vocabulary is not None
    spec = {"class_path": "lstmvision.models.SALSTM", "init_args": {"vocab_size": len(data.vocabulary), "feature_size": 12,
            "embed_size": 8, "hidden_size": 12, "attention_size": 6, "dropout": 0.0, "max_length": 8}}  # fmt: skip
    task = CaptioningTask(SALSTM(**spec["init_args"]), beam_size=2)
    trainer = _trainer(tmp_path / "run", max_steps=2)
    trainer.fit(task, datamodule=data)
    (tmp_path / "run" / "config.yaml").write_text(json.dumps({"model": {"init_args": {"model": spec}}}))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    report = caption_videos(last, [videos / "v3.mp4", videos / "v0.mp4"], beam_size=2, progress=False)
    model = task.model.eval()
    with h5py.File(tmp_path / "f.h5", "r") as handle:
        for result in report.captions:
            features = torch.from_numpy(handle[result.video_id][()])[None]  # (1, 3, 12)
            expected = data.vocabulary.decode(model.decode(features, beam_size=2)[0].tokens)
            assert result.caption == expected, result.video_id
    assert [r.video_id for r in report.captions] == ["v3", "v0"]
