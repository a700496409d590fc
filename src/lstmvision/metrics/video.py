"""Per-frame metrics for video prediction: MSE, MAE, PSNR and SSIM.

Every function takes ``pred`` and ``target`` shaped ``(B, T, C, H, W)``, floating point, values in
``[0, data_range]``, and returns one value per frame shaped ``(B, T)``, so that a task can average
over the batch and keep the curve over the predicted-frame index (the way E3D-LSTM, PredRNN and
OpenSTL report their tables). Only 5-D input is accepted: a 4-D tensor could be ``(B, C, H, W)`` or
``(B, T, H, W)``, and guessing wrong gives plausible but wrong numbers; add the missing axis with
``unsqueeze`` instead.

The functions are pure torch, run on CPU and CUDA, and treat all ``B * T`` frames in one call
(no Python loop over frames). They compute in float32 outside autocast whatever the precision of the
network that made the frames (bf16/fp16 inputs are widened, float64 stays float64), so a metric does
not depend on the trainer's ``precision`` (docs/precision.md). They do not track gradients specially: call them under
``torch.no_grad()`` for evaluation, or use them as differentiable losses if you like.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmvision.metrics._fp32 import fp32

__all__ = ["METRIC_NAMES", "VideoMetrics", "frame_mae", "frame_mse", "frame_psnr", "frame_ssim"]

#: Names of the metrics that :class:`VideoMetrics` accumulates, in a fixed order.
METRIC_NAMES: tuple[str, ...] = ("mse", "mae", "psnr", "ssim")


def _check_pair(pred: Tensor, target: Tensor, fn: str) -> None:
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"{fn} expects torch.Tensor inputs, got {type(pred).__name__} and {type(target).__name__}"
        )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.dim() != 5:
        raise ValueError(f"{fn} expects (B, T, C, H, W) tensors, got shape {tuple(pred.shape)}")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise ValueError(f"{fn} expects floating-point tensors, got {pred.dtype} and {target.dtype}")


def _check_data_range(data_range: float, fn: str) -> None:
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"{fn} expects data_range > 0, got {data_range}")


@fp32
def frame_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Squared error summed over the channels and pixels of each frame.

    This is the "MSE per frame" of E3D-LSTM and OpenSTL: a *sum* over the frame, not a mean, so
    for a 64x64 Moving MNIST frame it is 4096 times the mean squared error.

    Shape:
        pred, target: ``(B, T, C, H, W)``. Output: ``(B, T)``.
    """
    _check_pair(pred, target, "frame_mse")
    return (pred - target).square().sum(dim=(2, 3, 4))


@fp32
def frame_mae(pred: Tensor, target: Tensor) -> Tensor:
    """Absolute error summed over the channels and pixels of each frame (see :func:`frame_mse`).

    Shape:
        pred, target: ``(B, T, C, H, W)``. Output: ``(B, T)``.
    """
    _check_pair(pred, target, "frame_mae")
    return (pred - target).abs().sum(dim=(2, 3, 4))


@fp32
def frame_psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio of each frame, in dB.

    ``10 * log10(data_range**2 / m)`` with ``m`` the squared error *averaged* over the frame's
    channels and pixels, as ``skimage.metrics.peak_signal_noise_ratio``. Identical frames give
    ``+inf`` (no cap, as scikit-image), so a mean over frames that contains one is ``+inf`` too.

    Shape:
        pred, target: ``(B, T, C, H, W)``. Output: ``(B, T)``.
    """
    _check_pair(pred, target, "frame_psnr")
    _check_data_range(data_range, "frame_psnr")
    mse = (pred - target).square().mean(dim=(2, 3, 4))
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(window_size: int, sigma: float, like: Tensor) -> Tensor:
    # Same taps as scipy.ndimage.gaussian_filter: exp(-x^2 / (2 sigma^2)) on integer offsets,
    # normalised to sum 1. Built in float64 so that float32 callers get correctly rounded taps.
    radius = window_size // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).to(dtype=like.dtype, device=like.device)


@fp32
def frame_ssim(
    pred: Tensor,
    target: Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Structural similarity (Wang et al. 2004) of each frame, Gaussian-weighted.

    With the defaults this equals scikit-image's
    ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1.0, channel_axis=...)`` on every frame: local statistics from an 11x11 Gaussian
    window (sigma 1.5), population covariances, ``C1 = (k1 * data_range)**2``,
    ``C2 = (k2 * data_range)**2``; the SSIM map is averaged over the pixels that lie at least
    ``window_size // 2`` from every border and then over channels.

    scikit-image filters the whole image (border mode ``reflect``) and then crops
    ``(window_size - 1) // 2`` pixels from each side; every value it keeps is computed from pixels
    inside the image only, so an unpadded ("valid") convolution gives exactly those values and the
    border mode never matters. scikit-image derives its window from sigma
    (``2 * int(3.5 * sigma + 0.5) + 1``, i.e. 11 for sigma 1.5); here ``window_size`` is given
    explicitly and the results match whenever it equals that number.

    Args:
        pred, target: frames in ``[0, data_range]``.
        data_range: the value range of the frames (1.0 for frames in [0, 1]).
        window_size: odd side of the square Gaussian window; frames must be at least this large.
        sigma: standard deviation of the Gaussian window, in pixels.
        k1, k2: the stabilising constants of the SSIM formula.

    Shape:
        pred, target: ``(B, T, C, H, W)`` with ``H, W >= window_size``. Output: ``(B, T)``.
    """
    _check_pair(pred, target, "frame_ssim")
    _check_data_range(data_range, "frame_ssim")
    if window_size < 1 or window_size % 2 != 1:
        raise ValueError(f"frame_ssim expects an odd positive window_size, got {window_size}")
    if not sigma > 0:
        raise ValueError(f"frame_ssim expects sigma > 0, got {sigma}")
    B, T, C, H, W = pred.shape
    if H < window_size or W < window_size:
        raise ValueError(
            f"frame_ssim needs frames of at least {window_size}x{window_size} pixels (window_size), "
            f"got {H}x{W} (H x W)"
        )

    x = pred.flatten(0, 1)  # (B*T, C, H, W)
    y = target.flatten(0, 1)  # (B*T, C, H, W)
    # The five local moments need five filterings; stacking their inputs along channels lets one
    # grouped convolution per axis filter all of them for all frames at once.
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B*T, 5C, H, W)
    groups = 5 * C
    taps = _gaussian_window(window_size, sigma, moments)
    row_kernel = taps.view(1, 1, 1, window_size).repeat(groups, 1, 1, 1)  # (5C, 1, 1, K)
    col_kernel = taps.view(1, 1, window_size, 1).repeat(groups, 1, 1, 1)  # (5C, 1, K, 1)
    # No padding: the "valid" output is exactly scikit-image's map after its border crop.
    moments = F.conv2d(moments, row_kernel, groups=groups)  # (B*T, 5C, H, W-K+1)
    moments = F.conv2d(moments, col_kernel, groups=groups)  # (B*T, 5C, H-K+1, W-K+1)
    mu_x, mu_y, m_xx, m_yy, m_xy = moments.unflatten(1, (5, C)).unbind(1)  # each (B*T, C, H', W')

    var_x = m_xx - mu_x * mu_x
    var_y = m_yy - mu_y * mu_y
    cov_xy = m_xy - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )  # (B*T, C, H', W')
    # Every channel has the same number of pixels, so the mean over (C, H', W') equals
    # scikit-image's mean over channels of per-channel means.
    return ssim_map.mean(dim=(1, 2, 3)).unflatten(0, (B, T))  # (B, T)


class VideoMetrics:
    """Accumulates per-frame-index sums of MSE, MAE, PSNR and SSIM over batches.

    Each :meth:`update` adds, for every predicted-frame index t, the sum over the batch of each
    metric of frame t, and counts the sequences. :meth:`per_frame` returns the mean over all
    sequences seen for every frame index ``(T,)``; :meth:`compute` returns the mean over frame
    indices as well (0-d). Sums are kept in float64 on the device of the first batch, so nothing
    leaves the GPU until the caller reads the results.

    The state is a dict of plain tensors (:meth:`state_dict` / :meth:`load_state_dict`), so it can
    be checkpointed with ``torch.save(..., weights_only=True)`` or summed across processes with
    ``all_reduce``; :meth:`merge` adds another accumulator's state into this one.

    PSNR of identical frames is ``+inf`` (see :func:`frame_psnr`) and makes its mean ``+inf``.

    Args:
        data_range: value range of the frames, passed to PSNR and SSIM.
        ssim_window_size: side of the SSIM Gaussian window.
        ssim_sigma: standard deviation of the SSIM Gaussian window.
    """

    def __init__(
        self, *, data_range: float = 1.0, ssim_window_size: int = 11, ssim_sigma: float = 1.5
    ) -> None:
        _check_data_range(data_range, "VideoMetrics")
        self.data_range = data_range
        self.ssim_window_size = ssim_window_size
        self.ssim_sigma = ssim_sigma
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        # A zero-length sum means "no frame count known yet"; the first update fixes T.
        self._sums: dict[str, Tensor] = {name: torch.zeros(0, dtype=torch.float64) for name in METRIC_NAMES}
        self._count = torch.zeros((), dtype=torch.int64)

    @property
    def num_frames(self) -> int:
        """Number of frame indices T (0 before the first update)."""
        return self._sums[METRIC_NAMES[0]].numel()

    @property
    def count(self) -> int:
        """Number of sequences accumulated."""
        return int(self._count.item())

    def _add(self, sums: dict[str, Tensor], count: Tensor) -> None:
        T = sums[METRIC_NAMES[0]].numel()
        if self.num_frames == 0:
            device = sums[METRIC_NAMES[0]].device
            self._sums = {name: torch.zeros(T, dtype=torch.float64, device=device) for name in METRIC_NAMES}
            self._count = self._count.to(device)
        elif T != self.num_frames:
            raise ValueError(f"VideoMetrics holds sums for T={self.num_frames} predicted frames, got T={T}")
        device = self._count.device
        for name in METRIC_NAMES:
            self._sums[name] += sums[name].to(device=device, dtype=torch.float64)
        self._count += count.to(device)

    @torch.no_grad()
    @fp32
    def update(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Add a batch ``(B, T, C, H, W)``; returns this batch's per-frame values, each ``(B, T)``."""
        values = {
            "mse": frame_mse(pred, target),
            "mae": frame_mae(pred, target),
            "psnr": frame_psnr(pred, target, self.data_range),
            "ssim": frame_ssim(
                pred,
                target,
                data_range=self.data_range,
                window_size=self.ssim_window_size,
                sigma=self.ssim_sigma,
            ),
        }
        self._add(
            {name: v.sum(dim=0) for name, v in values.items()},
            torch.tensor(pred.shape[0], dtype=torch.int64),
        )
        return values

    def merge(self, other: VideoMetrics) -> VideoMetrics:
        """Add ``other``'s sums and count into this accumulator; returns ``self``."""
        if other.num_frames:
            self._add(other._sums, other._count)
        return self

    def per_frame(self) -> dict[str, Tensor]:
        """Mean of each metric per predicted-frame index, each ``(T,)`` float64."""
        if self.count == 0:
            raise RuntimeError("VideoMetrics has no data: call update() before per_frame()/compute()")
        return {name: s / self._count for name, s in self._sums.items()}

    def compute(self) -> dict[str, Tensor]:
        """Mean of each metric over all sequences and frame indices, each a 0-d float64 tensor."""
        # Every frame index has the same count, so the mean of per-index means is the overall mean.
        return {name: v.mean() for name, v in self.per_frame().items()}

    def state_dict(self) -> dict[str, Tensor]:
        """The accumulated state as plain tensors: ``<metric>_sum`` ``(T,)`` and ``count`` (0-d)."""
        state = {f"{name}_sum": s.clone() for name, s in self._sums.items()}
        state["count"] = self._count.clone()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Replace the accumulated state with one returned by :meth:`state_dict`."""
        expected = {f"{name}_sum" for name in METRIC_NAMES} | {"count"}
        if set(state) != expected:
            raise ValueError(f"VideoMetrics state must have keys {sorted(expected)}, got {sorted(state)}")
        lengths = {state[f"{name}_sum"].numel() for name in METRIC_NAMES}
        if len(lengths) != 1:
            raise ValueError(f"VideoMetrics state sums must all have the same length, got lengths {lengths}")
        self._sums = {name: state[f"{name}_sum"].to(torch.float64).clone() for name in METRIC_NAMES}
        # Keep the count beside the sums so that update() and merge() never mix devices.
        self._count = state["count"].to(dtype=torch.int64, device=self._sums[METRIC_NAMES[0]].device).clone()
