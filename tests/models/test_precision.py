"""Every registered model trains under CPU bf16 autocast and its forward stays close to the fp32 one.

The suite runs the gate arithmetic eagerly (tests/conftest.py); tests/cells/test_fusion.py checks that the
compiled form equals it.
"""

from __future__ import annotations

import pytest
import torch
from test_models import _auxiliary_loss, _build, _call

from lstmvision.models import list_models

# bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 0.002); through a few layers and time steps of
# these tiny models the output drifts by a few such roundings. The bound is relative to the output scale.
TOLERANCE = 0.05


def _loss(y: torch.Tensor) -> torch.Tensor:
    # in fp32, as the tasks compute it, whatever the network's precision
    return y.float().square().mean()


@pytest.mark.parametrize("name", list_models())
def test_a_bf16_autocast_training_step_is_finite_and_reaches_every_parameter(name: str) -> None:
    model, x = _build(name)
    (_loss(_call(model, x)) + _auxiliary_loss(model)).backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = _call(model, x)
    loss = _loss(y) + _auxiliary_loss(model)
    loss.backward()
    assert torch.isfinite(loss), f"{name}: loss {loss.item()} under bf16 autocast"
    missing = sorted(n for n, p in model.named_parameters() if n in trained and p.grad is None)
    assert not missing, f"{name}: parameters without gradient under bf16 autocast: {missing}"
    bad = sorted(n for n, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all())
    assert not bad, f"{name}: non-finite gradients under bf16 autocast: {bad}"


@pytest.mark.parametrize("name", list_models())
def test_bf16_autocast_forward_is_close_to_fp32(name: str) -> None:
    model, x = _build(name)
    model.eval()
    with torch.no_grad():
        expected = _call(model, x).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = _call(model, x).float()
    scale = max(expected.abs().max().item(), 1.0)
    err = (got - expected).abs().max().item()
    assert err <= TOLERANCE * scale, (
        f"{name}: bf16 autocast output differs from fp32 by {err:.3g} (output scale {scale:.3g}, "
        f"tolerance {TOLERANCE} x scale)"
    )
