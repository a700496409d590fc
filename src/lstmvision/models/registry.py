"""Name -> model factory registry: ``create_model(name, **kwargs)`` and ``list_models()``; with
``pretrained``, trained weights from the model zoo (:mod:`lstmvision.models.zoo`) or an exported folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from torch import nn

from lstmvision._registry import Registry

F = TypeVar("F", bound=Callable[..., nn.Module])

_REGISTRY: Registry[nn.Module] = Registry("model")


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering a model class or factory function under ``name``."""
    return _REGISTRY.register(name)


def list_models(pattern: str | Sequence[str] | None = None, *, pretrained: bool = False) -> list[str]:
    """Sorted names of every registered model, or of those matching ``pattern``: a shell wildcard
    (``list_models("conv*")``) or a list of them, matched with ``fnmatch`` as timm's ``list_models``.

    ``pretrained=True`` lists the model zoo's entries instead (docs/zoo.md): the names that
    ``create_model(name, pretrained=True)`` loads with trained weights (a registered name whose
    architecture has a default entry loads that entry too)."""
    if pretrained:
        from lstmvision.models.zoo import list_zoo  # deferred: the zoo imports the model classes

        return list_zoo(pattern)
    return _REGISTRY.names(pattern)


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The class or factory registered as ``name``; an unknown name raises a ValueError listing the known ones."""
    return _REGISTRY.get(name)


def create_model(name: str, *, pretrained: bool | str | os.PathLike[str] = False, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with its constructor arguments, or with trained weights.

    Args:
        name: a registered model (``list_models()``), or with ``pretrained=True`` a model zoo entry
            (``list_models(pretrained=True)``).
        pretrained: ``False``: freshly initialised weights. ``True``: the weights of the zoo entry
            ``name``, or of the default entry of the architecture ``name`` (``"convlstm"`` ->
            ``"convlstm_demo"``), shipped in the package, their SHA-256 digest checked; the network is
            built from the entry's recorded arguments and returned in eval mode. A path: an exported
            folder of one's own (``lstmvision export``, :func:`save_pretrained`), loaded as
            :func:`load_pretrained` does (digest checked when its ``model.json`` records one); ``name``
            must be the model it holds.
        kwargs: constructor arguments. With pretrained weights they replace the recorded ones only where
            the weights still fit (same parameter names and shapes); one that changes the architecture
            (``num_hidden``, ``num_classes`` ...) is a ValueError naming it.

    Nothing is downloaded: the zoo ships inside the package (``$LSTMVISION_ZOO`` names another one).
    """
    if pretrained is False:
        return _REGISTRY.get(name)(**kwargs)  # an unknown name is reported with the known ones
    if pretrained is True:
        from lstmvision.models.zoo import find_entry, list_zoo, load_zoo_model  # deferred: see list_models

        if find_entry(name) is None:
            if name not in _REGISTRY:
                raise ValueError(
                    f"unknown model {name!r}; known models: {', '.join(_REGISTRY.names())}; model zoo "
                    f"entries: {', '.join(list_zoo()) or 'none yet'}"
                )
            raise ValueError(
                f"no pretrained weights are available for model {name!r} (model zoo entries: "
                f"{', '.join(list_zoo()) or 'none yet'}); use pretrained=False, or give an exported "
                "folder of your own: pretrained='path/to/folder'"
            )
        return load_zoo_model(name, overrides=kwargs)
    if isinstance(pretrained, (str, os.PathLike)):
        from lstmvision.models.pretrained import load_pretrained  # deferred: see list_models

        factory = _REGISTRY.get(name)
        model = load_pretrained(pretrained, overrides=kwargs, source=f"exported folder {pretrained}")
        if isinstance(factory, type) and not isinstance(model, factory):
            raise ValueError(
                f"{pretrained} holds a {type(model).__name__}, not the model {name!r} ({factory.__name__})"
            )
        return model
    raise ValueError(f"pretrained must be True, False or the path of an exported folder, got {pretrained!r}")
