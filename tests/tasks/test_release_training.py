"""The E3D-LSTM release's training (google/e3d_lstm, src/models/eidetic_3d_lstm_net.py and
src/models/model_factory.py): its loss, its Adam and its weight average, against the prediction task and
the shipped configs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from lstmvision.models import ConvLSTMPredictor
from lstmvision.tasks import VideoPredictionTask
from lstmvision.tasks.averaging import CHECKPOINT_KEY

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "lstmvision" / "configs"
E3D_CONFIGS = ["moving_mnist/e3d_lstm.yaml", "moving_mnist/e3d_lstm_small.yaml", "kth/e3d_lstm.yaml"]


def _release_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # eidetic_3d_lstm_net.rnn: tf.nn.l2_loss(gen - gt) + tf.reduce_sum(tf.abs(gen - gt)), l2_loss = sum(x^2)/2
    diff = pred - target
    return diff.square().sum() / 2 + diff.abs().sum()


# ------------------------------------------------------------------------------------------------ loss
def test_the_release_loss_is_the_task_loss_with_l1_weight_2_times_half_the_values() -> None:
    torch.manual_seed(0)
    model = ConvLSTMPredictor(num_hidden=[4], filter_size=3, patch_size=2, input_length=3, total_length=6)
    clips = torch.rand(3, 6, 1, 8, 8)
    task = VideoPredictionTask(model, l1_weight=2.0)
    with torch.no_grad():
        loss = task.training_step(clips, 0)  # iteration 0: every true frame fed (sampling probability 1)
        pred = model(clips, sampling_prob=1.0)
    assert loss is not None
    n = pred.numel()  # B * (T - 1) * C * H * W values the release sums over
    release = _release_loss(pred.double(), clips[:, 1:].double())
    torch.testing.assert_close(release, n / 2 * loss.double(), rtol=1e-6, atol=0)
    # l1_weight 1 (or plain MSE) is not the release's loss: the factor would not be constant
    plain = VideoPredictionTask(model, l1_weight=1.0).frame_loss(pred, clips[:, 1:])
    assert abs(release.item() - n / 2 * plain.item()) > 1e-3 * release.item()


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def _values_per_batch(config: dict) -> int:
    """N, the predicted values in one training batch: the release's loss is N/2 times the task's."""
    net = config["model"]["init_args"]["model"]["init_args"]
    data = config["data"]["init_args"]
    return data["batch_size"] * (net["total_length"] - 1) * net["in_channels"] * data["image_size"] ** 2


@pytest.mark.parametrize("name", E3D_CONFIGS)
def test_e3d_configs_train_the_release_loss_and_optimiser(name: str) -> None:
    task = _config(name)["model"]["init_args"]
    adam = task["optimizer"]["init_args"]
    assert task["optimizer"]["class_path"] == "torch.optim.Adam"
    assert task["l1_weight"] == 2.0
    assert adam["betas"] == [0.95, 0.9995]
    # the 400-step CPU variant keeps no average: 0.9995^400 = 0.82 of it would be the initial weights
    assert task["ema_decay"] == (None if name.endswith("_small.yaml") else 0.9995)
    # the release's 1e-8 under the square root on its N/2-times larger loss is eps = 1e-4 / (N/2) here
    assert adam["eps"] == pytest.approx(2e-4 / _values_per_batch(_config(name)), rel=0.01)


# ------------------------------------------------------------------------------------------------ Adam
def test_torch_adam_with_the_config_betas_and_eps_follows_the_release_adam() -> None:
    # The release steps its own Adam (model_factory.adam_updates, t counted from 1) on the gradient of its
    # sum loss; lstmvision steps torch.optim.Adam on the mean loss (l1_weight 2), whose gradient is
    # s = N/2 times smaller. Adam is scale-free but for epsilon: the release's update
    # m / sqrt(v + 1e-8) on the scaled gradients equals m / sqrt(v + (1e-4 / s)^2) on ours, torch's is
    # m / (sqrt(v) + eps) with eps = 1e-4 / s. The two denominators differ by at most eps relative to
    # sqrt(v); every gradient here is at least 2/N = 1/s in size (the L1 part), so sqrt(v) >= 1/s and the
    # relative difference of a step is at most 1e-4. With |m|/sqrt(v) ~ 1 for these steady gradients, K
    # steps of lr move the two apart by at most K * lr * 1e-4; the tolerance allows 3x that.
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 5, 1, 4, 4, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(target.shape, generator=g) < 0.5, -1.0, 1.0).double()
    start = target + sign * (0.5 + torch.rand(target.shape, generator=g, dtype=torch.float64))
    n = target.numel()
    lr, steps = 0.01, 40  # lr * steps < 0.5: no value crosses its target, the L1 gradient keeps its sign
    adam = _config("moving_mnist/e3d_lstm.yaml")["model"]["init_args"]["optimizer"]["init_args"]
    beta1, beta2 = adam["betas"]
    task = VideoPredictionTask(
        ConvLSTMPredictor(num_hidden=[2], filter_size=3, patch_size=1, input_length=1, total_length=2),
        l1_weight=2.0,
    )

    # the release, by hand, in float64
    p, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for t in range(1, steps + 1):
        q = p.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_release_loss(q, target), q)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad.square()
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        p = p - lr * m_hat / torch.sqrt(v_hat + 1e-8)

    def torch_adam(betas: tuple[float, float], eps: float) -> torch.Tensor:
        q = torch.nn.Parameter(start.clone())
        optimizer = torch.optim.Adam([q], lr=lr, betas=betas, eps=eps)
        for _ in range(steps):
            optimizer.zero_grad()
            task.frame_loss(q, target).backward()
            optimizer.step()
        return q.detach()

    ours = torch_adam((beta1, beta2), 2e-4 / n)  # the configs' eps rule for this N
    tolerance = 3 * steps * lr * 1e-4
    err = (ours - p).abs().max().item()
    assert err <= tolerance, f"torch Adam vs the release's Adam: max difference {err:.3g} > {tolerance:.3g}"
    # torch's default betas do not follow it: the test can tell
    default = (torch_adam((0.9, 0.999), 2e-4 / n) - p).abs().max().item()
    assert default > 10 * tolerance, f"default betas differ by only {default:.3g}"


# -------------------------------------------------------------------------------------- weight average
class _Clips(L.LightningDataModule):
    def __init__(self, clips: torch.Tensor) -> None:
        super().__init__()
        self.clips = clips

    def _loader(self) -> DataLoader:
        return DataLoader(list(self.clips), batch_size=2)

    train_dataloader = val_dataloader = test_dataloader = predict_dataloader = _loader


def _clips() -> torch.Tensor:
    return torch.rand(6, 4, 1, 12, 12, generator=torch.Generator().manual_seed(2))  # SSIM needs 11x11


def _ema_task(decay: float | None = 0.8) -> VideoPredictionTask:
    torch.manual_seed(0)
    model = ConvLSTMPredictor(num_hidden=[4], filter_size=3, patch_size=2, input_length=2, total_length=4)
    # no scheduled sampling: training draws no random numbers, so runs can be compared exactly
    return VideoPredictionTask(
        model,
        sampling=None,
        ema_decay=decay,
        optimizer=lambda params: torch.optim.Adam(params, lr=0.05),
    )


def _trainer(tmp_path: Path, **kwargs: object) -> L.Trainer:
    kwargs.setdefault("logger", False)
    return L.Trainer(
        accelerator="cpu",
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _weights(task: L.LightningModule) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in task.named_parameters()}


class _Record(Callback):
    """The weights after every optimiser step."""

    def __init__(self) -> None:
        self.after: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        self.after.append(_weights(pl_module))


def test_ema_decay_is_checked() -> None:
    for bad in (0.0, 1.0, -0.5, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="ema_decay must be a number strictly between 0 and 1"):
            _ema_task(bad)  # type: ignore[arg-type]


def test_the_average_is_the_release_recursion_and_validation_uses_it(tmp_path: Path) -> None:
    task, record, decay = _ema_task(0.8), _Record(), 0.8
    start = _weights(task)
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=0, callbacks=[record])
    trainer.fit(task, datamodule=_Clips(_clips()))
    assert len(record.after) == 3 and task.weight_average is not None
    # tf.train.ExponentialMovingAverage without num_updates: s_0 = w_0, s_k = s_{k-1} - (1 - d)(s_{k-1} - w_k)
    for name, first in start.items():
        shadow = first.double()
        for weights in record.after:
            shadow = shadow - (1 - decay) * (shadow - weights[name].double())
        torch.testing.assert_close(task.weight_average.shadow[name].double(), shadow, rtol=0, atol=1e-6)
        assert not torch.equal(task.weight_average.shadow[name], record.after[-1][name])
    assert task.weight_average.updates == 3

    trained = _weights(task)
    validated = _trainer(tmp_path).validate(task, datamodule=_Clips(_clips()), verbose=False)[0]["val/mse"]
    for name, tensor in trained.items():  # the training weights are back
        torch.testing.assert_close(dict(task.named_parameters())[name].detach(), tensor, rtol=0, atol=0)
    plain = _ema_task(None)
    plain.load_state_dict({**task.state_dict()})
    raw = _trainer(tmp_path).validate(plain, datamodule=_Clips(_clips()), verbose=False)[0]["val/mse"]
    with torch.no_grad():
        for name, p in plain.named_parameters():
            p.copy_(task.weight_average.shadow[name])
    averaged = _trainer(tmp_path).validate(plain, datamodule=_Clips(_clips()), verbose=False)[0]["val/mse"]
    assert validated == pytest.approx(averaged, rel=1e-6)
    assert abs(validated - raw) > 1e-4 * raw, "validation with the average must differ from the raw weights"


def test_a_failing_validation_puts_the_training_weights_back(tmp_path: Path) -> None:
    class _Failing(VideoPredictionTask):
        def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            raise RuntimeError("boom")

    torch.manual_seed(0)
    model = ConvLSTMPredictor(num_hidden=[4], filter_size=3, patch_size=2, input_length=2, total_length=4)
    task = _Failing(model, sampling=None, ema_decay=0.5)
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(task, datamodule=_Clips(_clips()))
    trained = _weights(task)
    assert task.weight_average is not None
    assert any(not torch.equal(task.weight_average.shadow[k], v) for k, v in trained.items())
    with pytest.raises(RuntimeError, match="boom"):
        _trainer(tmp_path).validate(task, datamodule=_Clips(_clips()), verbose=False)
    assert not task.weight_average.swapped_in
    for name, tensor in _weights(task).items():
        torch.testing.assert_close(tensor, trained[name], rtol=0, atol=0)


def test_checkpoints_keep_the_average_and_a_resumed_run_continues_it_exactly(tmp_path: Path) -> None:
    data = _Clips(_clips())
    # uninterrupted: 6 steps (two epochs of 3 batches), validating after each epoch
    whole = _ema_task()
    _trainer(tmp_path / "a", max_steps=6, limit_val_batches=1).fit(whole, datamodule=data)

    # 3 steps; the checkpoint is written at the end of validation, while the average is swapped in
    first = _ema_task()
    # a monitor keeps the task's default checkpoints out; written at the end of validation, not of the epoch
    saving = ModelCheckpoint(
        dirpath=tmp_path / "b", monitor="val/mse", save_last=True, save_on_train_epoch_end=False
    )
    _trainer(tmp_path / "b", max_steps=3, limit_val_batches=1, callbacks=[saving]).fit(first, datamodule=data)
    checkpoint = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)
    assert first.weight_average is not None and first.weight_average.shadow is not None
    for name, tensor in _weights(first).items():  # the checkpoint's weights are the training weights
        torch.testing.assert_close(checkpoint["state_dict"][name], tensor, rtol=0, atol=0)
        torch.testing.assert_close(
            checkpoint[CHECKPOINT_KEY]["shadow"][name], first.weight_average.shadow[name], rtol=0, atol=0
        )
    assert checkpoint[CHECKPOINT_KEY]["updates"] == 3

    resumed = _ema_task()
    _trainer(tmp_path / "c", max_steps=6, limit_val_batches=1).fit(
        resumed, datamodule=data, ckpt_path=tmp_path / "b" / "last.ckpt"
    )
    assert resumed.weight_average is not None and whole.weight_average is not None
    assert resumed.weight_average.updates == whole.weight_average.updates == 6
    for name, tensor in whole.weight_average.shadow.items():  # type: ignore[union-attr]
        torch.testing.assert_close(resumed.weight_average.shadow[name], tensor, rtol=0, atol=1e-7)  # type: ignore[index]
