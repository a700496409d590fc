"""PredRNN-v2's memory-decoupling loss: the model's value against the formula computed step by step, the
gradient it sends to the adapter, and the task option ``decouple_beta``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmvision.models import PredRNNPredictor, PredRNNv2, create_model
from lstmvision.tasks import VideoPredictionTask

KWARGS = dict(num_hidden=[4, 4], filter_size=3, patch_size=2, input_length=3, total_length=5)


def _clips() -> torch.Tensor:
    return torch.rand(2, 5, 1, 8, 8, generator=torch.Generator().manual_seed(3))


def _by_hand(model: PredRNNv2, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames and the decoupling loss of a forward that feeds every true frame, from the paper's
    equations with one F.conv2d per weight, and the release's cosine (F.cosine_similarity per step)."""
    p = model.patch_size
    B, T = clips.shape[:2]
    patches = F.pixel_unshuffle(clips.flatten(0, 1), p).unflatten(0, (B, T))
    cells = list(model.stack.cells)
    hs: list[torch.Tensor | None] = [None] * len(cells)
    cs: list[torch.Tensor | None] = [None] * len(cells)
    memory: torch.Tensor | None = None
    frames, terms = [], []
    for t in range(T - 1):
        x = patches[:, t]
        for layer, cell in enumerate(cells):
            i, f, g, o, i_m, f_m, g_m = F.conv2d(
                x, cell.input_conv.weight, cell.input_conv.bias, padding=1
            ).chunk(7, 1)
            if hs[layer] is not None:
                hi, hf, hg, ho = F.conv2d(hs[layer], cell.hidden_conv.weight, padding=1).chunk(4, 1)
                i, f, g, o = i + hi, f + hf, g + hg, o + ho
            if memory is not None:
                mi, mf, mg = F.conv2d(memory, cell.memory_conv.weight, padding=1).chunk(3, 1)
                i_m, f_m, g_m = i_m + mi, f_m + mf, g_m + mg
            delta_c = torch.sigmoid(i) * torch.tanh(g)
            delta_m = torch.sigmoid(i_m) * torch.tanh(g_m)
            c = delta_c if cs[layer] is None else delta_c + torch.sigmoid(f) * cs[layer]
            m = delta_m if memory is None else delta_m + torch.sigmoid(f_m) * memory
            cm = torch.cat([c, m], 1)
            o = torch.sigmoid(o + F.conv2d(cm, cell.output_conv.weight, padding=1))
            h = o * torch.tanh(F.conv2d(cm, cell.fuse_conv.weight))
            a_c = F.conv2d(delta_c, model.adapter.weight).flatten(2)  # (B, Hc, H*W)
            a_m = F.conv2d(delta_m, model.adapter.weight).flatten(2)
            terms.append(F.cosine_similarity(a_c, a_m, dim=2).abs().mean())
            hs[layer], cs[layer], memory, x = h, c, m, h
        frames.append(F.conv2d(x, model.head.weight))
    out = torch.stack(frames, 1)
    return F.pixel_shuffle(out.flatten(0, 1), p).unflatten(0, (B, T - 1)), torch.stack(terms).mean()


def test_decoupling_loss_equals_the_formula_step_by_step() -> None:
    torch.manual_seed(0)
    model = PredRNNv2(**KWARGS).double()  # type: ignore[arg-type]
    clips = _clips().double()
    frames = model(clips, sampling_prob=1.0)  # every true frame fed: the hand version does the same
    want_frames, want = _by_hand(model, clips)
    torch.testing.assert_close(frames, want_frames, rtol=0, atol=1e-12)
    assert model.decoupling_loss is not None
    err = (model.decoupling_loss - want).abs().item()
    assert err < 1e-12, f"decoupling loss {model.decoupling_loss.item()} vs formula {want.item()}: {err:.3g}"
    assert 0.0 < want.item() < 1.0


def test_increments_do_not_change_the_step() -> None:
    torch.manual_seed(0)
    stack = PredRNNv2(**KWARGS).stack  # type: ignore[arg-type]
    x = torch.rand(2, 4, 4, 4)
    h0, states0 = stack.step(x, None)
    h1, states1, increments = stack.step_increments(x, None)
    h0, states0 = stack.step(x, states0)
    h1, states1, increments = stack.step_increments(x, states1)
    torch.testing.assert_close(h1, h0, rtol=0, atol=0)
    for a, b in zip(states0, states1):
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, rtol=0, atol=0)
    assert len(increments) == 2 and all(d.shape == (2, 4, 4, 4) for pair in increments for d in pair)


def _pair(beta: float) -> tuple[VideoPredictionTask, VideoPredictionTask]:
    torch.manual_seed(0)
    v1 = PredRNNPredictor(**KWARGS)  # type: ignore[arg-type]
    v2 = PredRNNv2(**KWARGS)  # type: ignore[arg-type]
    missing, unexpected = v2.load_state_dict(v1.state_dict(), strict=False)
    assert missing == ["adapter.weight"] and unexpected == []
    return VideoPredictionTask(v1), VideoPredictionTask(v2, decouple_beta=beta)


def test_beta_zero_gives_the_old_loss_exactly_and_beta_adds_the_weighted_decoupling_loss() -> None:
    clips = _clips()
    for beta in (0.0, 0.1):
        old, new = _pair(beta)
        torch.manual_seed(5)  # the scheduled-sampling draws: the same in both
        want = old.training_step(clips, 0)
        torch.manual_seed(5)
        got = new.training_step(clips, 0)
        assert got is not None and want is not None
        decoupling = new.model.decoupling_loss
        assert isinstance(decoupling, torch.Tensor) and decoupling.item() > 0
        torch.testing.assert_close(got, want + beta * decoupling, rtol=0, atol=0)


def test_the_adapter_learns_through_the_decoupling_loss_only() -> None:
    clips = _clips()
    for beta in (0.0, 0.1):
        _, task = _pair(beta)
        loss = task.training_step(clips, 0)
        assert loss is not None
        loss.backward()
        grad = task.model.adapter.weight.grad
        if beta:
            assert grad is not None and grad.abs().sum() > 0
        else:
            assert grad is None


def test_decouple_beta_needs_a_network_with_the_loss() -> None:
    with pytest.raises(ValueError, match=r"decouple_beta=0\.1 needs .*PredRNNPredictor does not"):
        VideoPredictionTask(PredRNNPredictor(**KWARGS), decouple_beta=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"decouple_beta must be >= 0"):
        VideoPredictionTask(PredRNNv2(**KWARGS), decouple_beta=-0.1)  # type: ignore[arg-type]


def test_predrnn_v2_needs_equal_widths_for_its_shared_adapter() -> None:
    with pytest.raises(ValueError, match=r"every num_hidden entry must be equal, got \[4, 3\]"):
        create_model("predrnn_v2", num_hidden=[4, 3])
