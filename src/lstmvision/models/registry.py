"""Name -> model factory registry: ``create_model(name, **kwargs)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

F = TypeVar("F", bound=Callable[..., nn.Module])

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering a model class or factory function under ``name``."""

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name]!r})")
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(_REGISTRY)


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with its constructor arguments."""
    return get_model_factory(name)(**kwargs)
