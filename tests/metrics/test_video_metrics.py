"""Per-frame video metrics against scikit-image (SSIM, PSNR) and plain numpy sums (MSE, MAE)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lstmvision.metrics import VideoMetrics, frame_mae, frame_mse, frame_psnr, frame_ssim


def _noisy_pair(
    rng: np.random.Generator, shape: tuple[int, ...], *, sparse: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A target and a noisy copy, so that SSIM is neither 0 nor 1."""
    if sparse:
        # Moving-MNIST-like: mostly black with a few bright blocks; flat regions are where float32
        # SSIM loses precision (variance = E[x^2] - E[x]^2 of nearly equal numbers).
        target = np.zeros(shape)
        H, W = shape[-2:]
        for _ in range(4):
            r, c = rng.integers(0, H - 4), rng.integers(0, W - 4)
            target[..., r : r + 4, c : c + 4] = rng.random()
    else:
        target = rng.random(shape)
    pred = np.clip(target + 0.15 * rng.standard_normal(shape), 0.0, 1.0)
    return pred, target


def _skimage_ssim(pred: np.ndarray, target: np.ndarray, **kwargs: float) -> np.ndarray:
    B, T = pred.shape[:2]
    out = np.empty((B, T))
    for b in range(B):
        for t in range(T):
            out[b, t] = structural_similarity(
                pred[b, t],
                target[b, t],
                gaussian_weights=True,
                use_sample_covariance=False,
                channel_axis=0,
                **kwargs,
            )
    return out


SIZES = [(16, 16, 1), (32, 24, 1), (64, 64, 3), (24, 40, 3), (11, 11, 1)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(("H", "W", "C"), SIZES)
def test_ssim_matches_skimage(H: int, W: int, C: int, sparse: bool, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(H * 1000 + W * 10 + C)
    pred, target = _noisy_pair(rng, (2, 3, C, H, W), sparse=sparse)
    ours = frame_ssim(torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype))
    ref = _skimage_ssim(pred, target, sigma=1.5, data_range=1.0)
    err = np.abs(ours.double().numpy() - ref).max()
    assert err < 1e-4, f"max |ssim - skimage| = {err:.3e}"
    # The pairs are informative: neither identical nor unrelated.
    assert 0.05 < ref.min() and ref.max() < 0.99


def test_ssim_other_sigma_and_data_range_match_skimage() -> None:
    rng = np.random.default_rng(1)
    pred, target = _noisy_pair(rng, (1, 2, 3, 20, 28))
    pred, target = 2.0 * pred, 2.0 * target
    # scikit-image sizes its window from sigma: 2 * int(3.5 * 1.0 + 0.5) + 1 = 9.
    ours = frame_ssim(
        torch.tensor(pred), torch.tensor(target), data_range=2.0, window_size=9, sigma=1.0
    ).numpy()
    ref = _skimage_ssim(pred, target, sigma=1.0, data_range=2.0)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


def test_ssim_of_identical_frames_is_one() -> None:
    x = torch.rand(2, 3, 3, 16, 20)
    torch.testing.assert_close(frame_ssim(x, x.clone()), torch.ones(2, 3), rtol=0, atol=1e-6)


def test_ssim_frames_are_independent() -> None:
    rng = np.random.default_rng(2)
    pred, target = (torch.tensor(a) for a in _noisy_pair(rng, (3, 4, 1, 16, 16)))
    whole = frame_ssim(pred, target)
    one = frame_ssim(pred[1:2, 2:3], target[1:2, 2:3])
    assert whole[1, 2].item() == pytest.approx(one.item(), abs=1e-12)


def test_ssim_rejects_frames_smaller_than_window() -> None:
    x = torch.rand(1, 2, 1, 10, 32)
    with pytest.raises(ValueError, match=r"at least 11x11 .* got 10x32"):
        frame_ssim(x, x)


def test_ssim_rejects_even_window() -> None:
    x = torch.rand(1, 1, 1, 16, 16)
    with pytest.raises(ValueError, match="odd positive window_size, got 10"):
        frame_ssim(x, x, window_size=10)


@pytest.mark.parametrize("C", [1, 3])
def test_psnr_matches_skimage(C: int) -> None:
    rng = np.random.default_rng(3)
    pred, target = _noisy_pair(rng, (2, 3, C, 16, 24))
    ours = frame_psnr(torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32))
    ref = np.array(
        [
            [peak_signal_noise_ratio(target[b, t], pred[b, t], data_range=1.0) for t in range(3)]
            for b in range(2)
        ]
    )
    err = np.abs(ours.double().numpy() - ref).max()
    assert err < 1e-4, f"max |psnr - skimage| = {err:.3e}"


def test_psnr_uses_data_range_and_is_inf_for_identical_frames() -> None:
    target = torch.zeros(1, 2, 1, 4, 4)
    pred = target.clone()
    pred[0, 0] = 0.1  # mean squared error 0.01 -> 20 dB at range 1, 40 dB at range 10
    psnr = frame_psnr(pred, target, data_range=10.0)
    assert psnr[0, 0].item() == pytest.approx(40.0, abs=1e-4)
    assert psnr[0, 1].item() == float("inf")


def test_mse_and_mae_are_sums_over_each_frame() -> None:
    rng = np.random.default_rng(4)
    pred, target = _noisy_pair(rng, (2, 5, 3, 8, 6))
    diff = pred - target
    np.testing.assert_allclose(
        frame_mse(torch.tensor(pred), torch.tensor(target)).numpy(), (diff**2).sum(axis=(2, 3, 4)), rtol=1e-12
    )
    np.testing.assert_allclose(
        frame_mae(torch.tensor(pred), torch.tensor(target)).numpy(),
        np.abs(diff).sum(axis=(2, 3, 4)),
        rtol=1e-12,
    )
    # A single differing pixel: the per-frame sum equals that pixel's error, not a mean.
    a, b = torch.zeros(1, 1, 1, 64, 64), torch.zeros(1, 1, 1, 64, 64)
    a[0, 0, 0, 5, 5] = 0.5
    assert frame_mse(a, b).item() == 0.25
    assert frame_mae(a, b).item() == 0.5


Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ALL_METRICS: list[Metric] = [frame_mse, frame_mae, frame_psnr, frame_ssim]


@pytest.mark.parametrize("fn", ALL_METRICS)
def test_rejects_different_shapes(fn: Metric) -> None:
    with pytest.raises(
        ValueError, match=r"pred and target must have the same shape, got \(1, 2, 1, 16, 16\) and"
    ):
        fn(torch.rand(1, 2, 1, 16, 16), torch.rand(1, 3, 1, 16, 16))


@pytest.mark.parametrize("fn", ALL_METRICS)
def test_rejects_non_5d(fn: Metric) -> None:
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"expects \(B, T, C, H, W\) tensors, got shape \(2, 1, 16, 16\)"):
        fn(x, x)


@pytest.mark.parametrize("fn", ALL_METRICS)
def test_rejects_integer_frames(fn: Metric) -> None:
    x = torch.randint(0, 255, (1, 1, 1, 16, 16), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"floating-point tensors, got torch\.uint8"):
        fn(x, x)


def test_rejects_bad_data_range() -> None:
    x = torch.rand(1, 1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"data_range > 0, got 0\.0"):
        frame_psnr(x, x, data_range=0.0)


def _batches(seed: int, n: int, T: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    pairs = [_noisy_pair(rng, (int(rng.integers(1, 4)), T, 1, 16, 16)) for _ in range(n)]
    return [(torch.tensor(p, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)) for p, t in pairs]


def test_video_metrics_accumulates_per_frame_means() -> None:
    batches = _batches(5, 3)
    acc = VideoMetrics()
    returned = [acc.update(p, t) for p, t in batches]
    pred = torch.cat([p for p, _ in batches])
    target = torch.cat([t for _, t in batches])
    expected = {
        "mse": frame_mse(pred, target),
        "mae": frame_mae(pred, target),
        "psnr": frame_psnr(pred, target),
        "ssim": frame_ssim(pred, target),
    }
    assert acc.count == pred.shape[0] and acc.num_frames == 4
    per_frame, overall = acc.per_frame(), acc.compute()
    for name, values in expected.items():
        torch.testing.assert_close(per_frame[name], values.double().mean(0), rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(overall[name], values.double().mean(), rtol=1e-6, atol=1e-9)
        # update() hands back the batch's own (B, T) values.
        torch.testing.assert_close(torch.cat([r[name] for r in returned]), values)


def test_video_metrics_merge_and_state_dict_round_trip() -> None:
    batches = _batches(6, 4)
    whole, left, right = VideoMetrics(), VideoMetrics(), VideoMetrics()
    for i, (p, t) in enumerate(batches):
        whole.update(p, t)
        (left if i < 2 else right).update(p, t)
    left.merge(right)
    merged_into_empty = VideoMetrics().merge(whole)
    for acc in (left, merged_into_empty):
        for name, value in whole.per_frame().items():
            torch.testing.assert_close(acc.per_frame()[name], value)

    buffer = io.BytesIO()
    torch.save(whole.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    restored = VideoMetrics()
    restored.load_state_dict(state)
    assert restored.count == whole.count
    for name, value in whole.compute().items():
        torch.testing.assert_close(restored.compute()[name], value)


def test_video_metrics_errors() -> None:
    acc = VideoMetrics()
    with pytest.raises(RuntimeError, match="no data"):
        acc.compute()
    acc.update(*_batches(7, 1, T=4)[0])
    with pytest.raises(ValueError, match="T=4 predicted frames, got T=3"):
        acc.update(*_batches(8, 1, T=3)[0])
    with pytest.raises(ValueError, match="state must have keys"):
        acc.load_state_dict({"count": torch.tensor(1)})
    acc.reset()
    assert acc.num_frames == 0 and acc.count == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    pred, target = _batches(9, 1)[0]
    for fn in ALL_METRICS:
        torch.testing.assert_close(
            fn(pred.cuda(), target.cuda()).cpu(), fn(pred, target), rtol=1e-5, atol=1e-4
        )
    acc = VideoMetrics()
    acc.update(pred.cuda(), target.cuda())
    assert acc.compute()["ssim"].device.type == "cuda"
