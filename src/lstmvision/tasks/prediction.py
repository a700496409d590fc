"""Video prediction as a LightningModule: loss, scheduled sampling, metrics, and the files a test writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal, Protocol, cast

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lstmvision.metrics import METRIC_NAMES, VideoMetrics, fp32, frame_mse, frame_ssim
from lstmvision.tasks.base import Interval, Task
from lstmvision.tasks.compiling import compile_time_step
from lstmvision.tasks.outputs import CountedRows, RowMeans, announce, gather_on_rank_zero, skipped_rows
from lstmvision.tasks.reliability import NonFinitePolicy
from lstmvision.tasks.schedules import SamplingSchedule, ScheduledSampling
from lstmvision.viz import plot_per_frame_metrics, save_frames_png, save_prediction_gif

__all__ = ["VideoPredictionTask"]

log = logging.getLogger(__name__)

_SERIES = ("model", "copy_last_frame")

# the loss reductions run in float32 outside autocast whatever the network's precision (docs/precision.md)
_mse_loss = fp32(F.mse_loss)
_l1_loss = fp32(F.l1_loss)


class _Predictor(Protocol):
    """What the task needs of a model (``ConvLSTMPredictor`` and the later predictors have it)."""

    input_length: int
    total_length: int

    def __call__(
        self,
        frames: Tensor,
        *,
        future: int | None = None,
        sampling_prob: float = 0.0,
        input_sampling_prob: float = 1.0,
    ) -> Tensor: ...


class VideoPredictionTask(Task):
    """Train and evaluate a next-frame predictor on clips ``(B, T, C, H, W)`` in [0, 1].

    Training minimises the mean squared error of every next-frame prediction (plus ``l1_weight`` times
    the mean absolute error), feeding true frames with the probabilities of the ``sampling`` schedule
    at the current step. Validation and test observe ``model.input_length`` frames and predict the rest
    with no true frame fed back. The test reports per-frame MSE and MAE (summed over a frame's pixels,
    averaged over frames — the figure E3D-LSTM and OpenSTL report), PSNR and SSIM for the model and for
    the copy-last-frame baseline on the same clips, and writes ``metrics.json``,
    ``per_frame_metrics.png``, ``predictions.gif`` and optionally PNG frames into the run directory.
    ``predict`` forecasts ``predict_future`` frames of every clip from its first ``input_length`` ones,
    writes them as ``predictions.pt`` (``{"predictions": uint8 (N, future, C, H, W)}``, levels 0-255, and
    ``"skipped"``: int64 indices of clips skipped as unusable, whose rows forecast the next usable clip)
    and prints its path. ``val/mse`` picks the best checkpoint.

    Args:
        model: a predictor with ``input_length``, ``total_length`` and
            ``forward(frames, *, future, sampling_prob, input_sampling_prob)`` (every
            :class:`~lstmvision.models.RecurrentPredictor`).
        optimizer: builds the optimiser (default Adam, lr 1e-3, as the releases); see
            :class:`~lstmvision.tasks.base.Task` and docs/optimisers.md.
        lr_scheduler: builds the learning-rate scheduler (default None: a constant rate).
        lr_scheduler_interval: when the scheduler steps (``"auto"``: see docs/optimisers.md).
        sampling: the scheduled-sampling schedule (:mod:`lstmvision.tasks.schedules`): the release's
            :class:`~lstmvision.tasks.schedules.ScheduledSampling` (the default, with the releases'
            values), PredRNN-v2's :class:`~lstmvision.tasks.schedules.ReverseScheduledSampling`, or
            None: future steps always read the model's own predictions, as at test time.
        l1_weight: weight of the added L1 term (0 = plain MSE). The E3D-LSTM release's loss,
            ``l2_loss(p - g) + sum|p - g|``, is this loss with ``l1_weight: 2.0`` times N/2, N the number
            of predicted values in the batch (docs/e3d_lstm.md).
        decouple_beta: weight of PredRNN-v2's memory-decoupling loss (the release's ``--decouple_beta``,
            0.1 there), added to the frame loss; it needs a network that computes it
            (:class:`~lstmvision.models.PredRNNv2`, docs/predrnn.md). 0: not added.
        reverse_input: also train on every clip played backwards (the releases' ``--reverse_input``);
            the loss is the mean of the forward and backward losses.
        gif_samples: test clips shown in ``predictions.gif``.
        save_frames: test clips whose frames are written as PNG (the release's ``--num_save_samples``
            into ``--gen_frm_dir``); 0 writes none.
        predict_future: frames to forecast in ``predict`` (None = ``total_length - input_length``).
        on_nonfinite_loss: a NaN/inf training loss ``"raise"``s ``FloatingPointError`` naming the step, or
            ``"skip"``s the batch (no optimiser step) with a warning; ``skipped_batches`` counts them
            (logged as ``train/skipped_batches``).
        compile: compile the network's time step with ``torch.compile`` once, when the trainer sets
            the task up (docs/precision.md): the first steps then wait 36-136 s on this CPU, which only
            pays off in long runs; a handful of compiled graphs serve every time step and forecast
            horizon (lstmvision.tasks.compiling).
        ema_decay: evaluate (validate, test, predict) an exponential moving average of the weights
            with this constant decay in (0, 1) (the E3D-LSTM release's 0.9995), updated after every
            optimiser step and kept in the checkpoints (docs/optimisers.md, "Weight average"); None
            (default): no average.
    """

    monitor = "val/mse"
    monitor_mode = "min"

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Interval = "auto",
        sampling: SamplingSchedule | None = ScheduledSampling(),  # noqa: B008 - immutable, shown in --help
        l1_weight: float = 0.0,
        decouple_beta: float = 0.0,
        reverse_input: bool = False,
        gif_samples: int = 4,
        save_frames: int = 0,
        predict_future: int | None = None,
        on_nonfinite_loss: NonFinitePolicy = "raise",
        compile: bool = False,
        ema_decay: float | None = None,
    ) -> None:
        for attr in ("input_length", "total_length"):
            if not hasattr(model, attr):
                raise ValueError(
                    f"VideoPredictionTask needs a predictor model with {attr!r}, got {type(model).__name__}"
                )
        if sampling is not None and not isinstance(sampling, SamplingSchedule):
            raise ValueError(
                "sampling must be a SamplingSchedule (ScheduledSampling, ReverseScheduledSampling) or None, "
                f"got {type(sampling).__name__}"
            )
        for key, value in (
            ("l1_weight", l1_weight),
            ("decouple_beta", decouple_beta),
            ("gif_samples", gif_samples),
            ("save_frames", save_frames),
        ):
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        if decouple_beta > 0 and not hasattr(model, "decoupling_loss"):
            raise ValueError(
                f"decouple_beta={decouple_beta} needs a network that computes PredRNN-v2's memory-decoupling "
                f"loss (lstmvision.models.PredRNNv2, registered as 'predrnn_v2'); {type(model).__name__} "
                "does not: use decouple_beta: 0.0 or that network"
            )
        if predict_future is not None and predict_future < 1:
            raise ValueError(f"predict_future must be >= 1, got {predict_future}")
        super().__init__(
            model,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            on_nonfinite_loss=on_nonfinite_loss,
            compile=compile,
            ema_decay=ema_decay,
            plain_hyperparameters={"sampling": sampling},
        )
        self.sampling = sampling
        self.l1_weight = l1_weight
        self.decouple_beta = decouple_beta
        # (configured, steps): the schedule's run length and the run it is fitted to (TimeBudget)
        self._sampling_pace = (1, 1)
        self.reverse_input = reverse_input
        self.gif_samples = gif_samples
        self.save_frames = save_frames
        self.predict_future = predict_future
        self._metrics = {name: VideoMetrics() for name in _SERIES}
        self._rows, self._val_rows = CountedRows("test"), CountedRows("val")
        self._val_means = RowMeans("mse", "ssim")
        self._shown: dict[str, list[Tensor]] = {}
        self._frames_written = 0
        self._test_dir: Path | None = None
        self._predictions: list[Tensor] = []

    # ----------------------------------------------------------------------------------------- training
    @property
    def predictor(self) -> _Predictor:
        return cast(_Predictor, self.model)

    @property
    def input_length(self) -> int:
        return self.predictor.input_length

    @property
    def total_length(self) -> int:
        return self.predictor.total_length

    def _clips(self, batch: Tensor | tuple | list, key: Literal["total_length", "input_length"]) -> Tensor:
        """The first ``total_length`` frames (to train and evaluate) or ``input_length`` (to forecast)."""
        need: int = getattr(self, key)
        frames = batch[0] if isinstance(batch, (tuple, list)) else batch
        if frames.dim() != 5:
            raise ValueError(
                f"VideoPredictionTask expects batches (B, T, C, H, W), got shape {tuple(frames.shape)}"
            )
        if frames.shape[1] < need:
            raise ValueError(
                f"VideoPredictionTask needs clips of at least {key}={need} frames, got {frames.shape[1]}"
            )
        return frames[:, :need]

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor | None:
        frames = self._clips(batch, "total_length")
        eta, r_eta = self.sampling_probabilities(self.global_step)
        if self.reverse_input:
            # the backward clips join the batch: one rollout, and the mean loss weighs both halves alike
            frames = torch.cat([frames, frames.flip(1)])
        # (B, T-1, C, H, W): the predictions of frames 1..T-1
        pred = self.predictor(frames, sampling_prob=eta, input_sampling_prob=r_eta)
        loss = self.frame_loss(pred, frames[:, 1:])
        if self.decouple_beta:
            # the network computed it in the forward above (PredRNN-v2), in float32
            decoupling: Tensor = getattr(self.model, "decoupling_loss")  # noqa: B009
            loss = loss + self.decouple_beta * decoupling.float()
            self.log("train/decoupling_loss", decoupling.detach().float())
        if not self.finite(loss):
            return None  # skipped: no backward pass, no optimiser step
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/sampling_prob", eta)
        if r_eta < 1.0:
            self.log("train/input_sampling_prob", r_eta)
        return loss

    def frame_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """``mean((pred - target)^2) + l1_weight * mean|pred - target|`` over every value, in float32."""
        mse = _mse_loss(pred, target)
        return mse + self.l1_weight * _l1_loss(pred, target) if self.l1_weight else mse

    def sampling_probabilities(self, iteration: int) -> tuple[float, float]:
        """``(sampling_prob, input_sampling_prob)`` of the ``sampling`` schedule at a training iteration:
        the chances that a future and an observed step read the true frame (``(0, 1)`` without one). A
        schedule fitted to a shorter run (:meth:`fit_sampling_to_length`) reads the iteration scaled up."""
        if self.sampling is None:
            return 0.0, 1.0
        configured, steps = self._sampling_pace
        iteration = iteration * configured // steps
        return (
            self.sampling.sampling_probability(iteration),
            self.sampling.input_sampling_probability(iteration),
        )

    def on_fit_start(self) -> None:
        super().on_fit_start()
        # each fit starts from the configured schedule; TimeBudget fits it again (a resumed run from its
        # saved plan) at the start of training, which comes after this
        self._sampling_pace = (1, 1)

    def fit_sampling_to_length(self, steps: int, configured: int) -> list[str]:
        """Run the scheduled-sampling schedule, written for a run of ``configured`` steps, over ``steps``
        instead: iteration ``k`` reads the schedule at ``k * configured // steps``, so every phase keeps
        its share of the run (:class:`~lstmvision.tasks.budget.TimeBudget` with ``fit_sampling: true``
        calls it). Returns what it changed, one phrase."""
        if steps < 1 or configured < 1:
            raise ValueError(f"a run's length must be >= 1 step, got {steps} of {configured}")
        if self.sampling is None:
            return []
        self._sampling_pace = (configured, steps)
        if steps == configured:
            return ["scheduled sampling follows its schedule as configured"]
        return [f"scheduled sampling runs its {configured}-step schedule over {steps} steps"]

    def _forecast(self, frames: Tensor, future: int) -> Tensor:
        """Predict ``future`` frames from the first ``input_length`` ones; no true future frame is seen."""
        observed = frames[:, : self.input_length]
        pred = self.predictor(observed, future=future)[:, self.input_length - 1 :]
        # float32 from here on (metrics, pictures, predictions.pt), whatever the network's precision
        return pred.float().clamp(0.0, 1.0)

    def on_validation_epoch_start(self) -> None:
        self._val_rows.start(self._trainer)
        self._val_means.reset()

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        # a row served in place of a clip skipped as unusable, or repeated by a DDP sampler: not counted
        (frames,) = self._val_rows.counted(self._clips(batch, "total_length"))
        if not len(frames):
            return
        truth = frames[:, self.input_length :]
        pred = self._forecast(frames, truth.shape[1])
        mse, ssim = frame_mse(pred, truth).mean(dim=1), frame_ssim(pred, truth).mean(dim=1)  # per clip
        self._val_means.add(len(frames), mse=mse.sum(), ssim=ssim.sum())

    def on_validation_epoch_end(self) -> None:
        # means over the clips of every process, the same on each (RowMeans); logged once an epoch
        for key, value in self._val_means.means(self._trainer).items():
            self.log(f"val/{key}", value, prog_bar=key == "mse", sync_dist=True)

    # ----------------------------------------------------------------------------------------- testing
    def on_test_epoch_start(self) -> None:
        for metrics in self._metrics.values():
            metrics.reset()
        self._shown = {}
        self._frames_written = 0
        # read once on every rank: trainer.log_dir is a broadcast under DDP, and ranks may run
        # different numbers of test batches
        self._test_dir = self.run_folder()
        self._rows.start(self._trainer)

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        frames = self._clips(batch, "total_length")
        observed, truth = frames[:, : self.input_length], frames[:, self.input_length :]
        series = {
            "model": self._forecast(frames, truth.shape[1]),
            "copy_last_frame": observed[:, -1:].expand_as(truth),
        }
        # a row served in place of a clip skipped as unusable repeats the next clip: neither counted nor
        # shown (the GIF and frames/ would show that clip twice)
        observed, truth, *counted = self._rows.counted(observed, truth, *series.values())
        if not len(truth):
            return
        for name, pred in zip(series, counted):
            self._metrics[name].update(pred, truth)
        self._keep_for_pictures(observed, truth, counted[0])

    def _keep_for_pictures(self, observed: Tensor, truth: Tensor, pred: Tensor) -> None:
        have = sum(len(x) for x in self._shown.get("pred", []))
        take = self.gif_samples - have
        if take > 0:
            for key, value in (("observed", observed), ("truth", truth), ("pred", pred)):
                self._shown.setdefault(key, []).append(value[:take].detach().cpu())
        take = self.save_frames - self._frames_written
        out = self._test_dir
        if take > 0 and self.trainer.is_global_zero and out is not None:
            save_frames_png(
                out / "frames",
                pred[:take].detach().cpu(),
                truth=truth[:take].detach().cpu(),
                inputs=observed[:take].detach().cpu(),
                first_sample_index=self._frames_written + 1,
            )
            self._frames_written += min(take, pred.shape[0])

    def on_test_epoch_end(self) -> None:
        summary: dict[str, dict[str, float]] = {name: {} for name in _SERIES}
        curves: dict[str, dict[str, list[float]]] = {metric: {} for metric in METRIC_NAMES}
        for name, metrics in self._metrics.items():
            # sums and counts from every process, so each one reports the metrics of the whole test set
            state = {
                k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in metrics.state_dict().items()
            }
            metrics.load_state_dict(state)
            for metric, values in metrics.per_frame().items():
                summary[name][metric] = values.mean().item()
                curves[metric][name] = values.tolist()
                self.log(
                    f"test/{metric}" if name == "model" else f"test/{name}_{metric}", values.mean().float()
                )
        skipped = self._rows.total_left_out(self._trainer)  # a collective: before rank 0 alone writes
        self._write_test_outputs(summary, curves, self._metrics["model"].count, skipped)

    def _write_test_outputs(self, summary: dict, curves: dict, count: int, skipped: int) -> None:
        out = self.run_folder()
        if out is None or not self.trainer.is_global_zero or self.trainer.sanity_checking:
            return
        out.mkdir(parents=True, exist_ok=True)
        ratio = summary["model"]["mse"] / max(summary["copy_last_frame"]["mse"], 1e-12)
        result = {
            "num_sequences": count,
            "skipped_unusable": skipped,
            "input_length": self.input_length,
            "future_length": len(curves["mse"]["model"]),
            "model": summary["model"],
            "copy_last_frame": summary["copy_last_frame"],
            "mse_ratio_to_copy_last_frame": ratio,
            "per_frame": {name: {m: curves[m][name] for m in METRIC_NAMES} for name in _SERIES},
            "definitions": {
                "skipped_unusable": "test clips skipped as unusable (on_corrupt: skip), not in the metrics",
                "mse": "squared error summed over a frame's pixels, averaged over predicted frames and clips",
                "mae": "absolute error summed over a frame's pixels, averaged over predicted frames and clips",
                "psnr": "10 log10(1 / mean squared error of a frame), averaged",
                "ssim": "SSIM, 11x11 Gaussian window, sigma 1.5, data range 1, averaged",
            },
        }
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        plot_per_frame_metrics(out / "per_frame_metrics.png", curves, first_frame_index=self.input_length + 1)
        if self._shown:
            shown = {key: torch.cat(value) for key, value in self._shown.items()}
            save_prediction_gif(
                out / "predictions.gif",
                shown["observed"],
                shown["truth"],
                shown["pred"],
                max_samples=self.gif_samples,
            )
        log.info("test outputs written to %s", out)

    # --------------------------------------------------------------------------------------- prediction
    def predict_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        future = self.predict_future or self.total_length - self.input_length
        pred = self._forecast(self._clips(batch, "input_length"), future)
        self._predictions.append(pred.detach().cpu())
        return pred

    def on_predict_epoch_start(self) -> None:
        self._predictions = []

    def on_predict_epoch_end(self) -> None:
        out = self.run_folder()
        # every process's forecasts, in the order of the set, reach rank 0, which alone writes them
        gathered = gather_on_rank_zero(self._trainer, self._predictions)
        skipped = skipped_rows(self._trainer)  # a collective too
        if out is None or not gathered or not self.trainer.is_global_zero:
            return
        out.mkdir(parents=True, exist_ok=True)
        predictions = torch.cat(gathered)
        # uint8 like the public Moving MNIST files: 4x smaller than float32, exact to 1/255; "skipped":
        # the clips found unusable (on_corrupt: skip), whose rows forecast the next usable clip instead
        path = out / "predictions.pt"
        torch.save(
            {
                "predictions": (predictions * 255).round().to(torch.uint8),
                "skipped": torch.tensor(skipped, dtype=torch.int64),
            },
            path,
        )
        if skipped:
            log.warning(
                "%d unusable clip(s) skipped (on_corrupt: skip); their rows of %s forecast the next usable "
                "clip, listed under 'skipped'",
                len(skipped),
                path,
            )
        log.info("%d forecasts written to %s", len(predictions), path)
        announce("predictions", path)

    # ------------------------------------------------------------------------------------------ set-up
    def compile_network_once(self) -> None:
        compile_time_step(self.model)

    def setup(self, stage: str) -> None:
        # a patch size that does not divide the frames would only fail at the first batch, after the
        # data was built: refuse it now, naming both keys
        size = getattr(getattr(self._trainer, "datamodule", None), "image_size", None)
        patch = getattr(self.predictor, "patch_size", None)
        if isinstance(size, int) and isinstance(patch, int) and size % patch:
            raise ValueError(
                f"the model's patch_size={patch} must divide the data's image_size={size} "
                "(frames are cut into patch_size x patch_size patches)"
            )
