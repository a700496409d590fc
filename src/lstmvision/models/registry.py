"""Name -> model factory registry: ``create_model(name, **kwargs)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from torch import nn

from lstmvision._registry import Registry

F = TypeVar("F", bound=Callable[..., nn.Module])

_REGISTRY: Registry[nn.Module] = Registry("model")


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering a model class or factory function under ``name``."""
    return _REGISTRY.register(name)


def list_models(pattern: str | Sequence[str] | None = None) -> list[str]:
    """Sorted names of every registered model, or of those matching ``pattern``: a shell wildcard
    (``list_models("conv*")``) or a list of them, matched with ``fnmatch`` as timm's ``list_models``."""
    return _REGISTRY.names(pattern)


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The class or factory registered as ``name``; an unknown name raises a ValueError listing the known ones."""
    return _REGISTRY.get(name)


# registered name -> where its pretrained weights come from; none ship yet (a model zoo will fill this)
_PRETRAINED: dict[str, str] = {}


def create_model(name: str, *, pretrained: bool = False, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with its constructor arguments.

    ``pretrained=True`` asks for published weights, as timm's ``create_model``; no model has any yet, so
    it raises a ValueError naming the model and the ones that do. Weights of one's own training load
    with :func:`lstmvision.models.load_pretrained`.
    """
    factory = _REGISTRY.get(name)  # an unknown name is reported first, with the known ones
    if not isinstance(pretrained, bool):
        raise ValueError(f"pretrained must be True or False, got {pretrained!r}")
    if pretrained and name not in _PRETRAINED:
        available = ", ".join(sorted(_PRETRAINED)) or "none yet"
        raise ValueError(
            f"no pretrained weights are available for model {name!r} (models with pretrained weights: "
            f"{available}); use pretrained=False, or load weights of your own with "
            "lstmvision.models.load_pretrained(path)"
        )
    return factory(**kwargs)
