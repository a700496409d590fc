"""Name -> model factory registry: ``create_model(name, **kwargs)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from lstmvision._registry import Registry

F = TypeVar("F", bound=Callable[..., nn.Module])

_REGISTRY: Registry[nn.Module] = Registry("model")


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering a model class or factory function under ``name``."""
    return _REGISTRY.register(name)


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return _REGISTRY.names()


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The class or factory registered as ``name``; an unknown name raises a ValueError listing the known ones."""
    return _REGISTRY.get(name)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with its constructor arguments."""
    return _REGISTRY.create(name, **kwargs)
