"""A name -> factory registry shared by ``models`` and ``encoders`` (private).

Registering a name twice is an error (two modules silently fighting over one name would make a config
mean different things depending on import order); an unknown name lists the known ones.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")
# a class or factory function; bound to Callable[..., Any] because a TypeVar bound cannot use T
F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Factories of one kind of object (``"model"``, ``"encoder"``) by name.

    Args:
        kind: the noun used in error messages: ``"model 'x' is already registered"``,
            ``"unknown model 'x'; known models: a, b"``.
    """

    def __init__(self, kind: str) -> None:
        if not kind:
            raise ValueError("Registry kind must be a non-empty string, got ''")
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering a class or factory function under ``name``; returns it unchanged."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorate(factory: F) -> F:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {self._factories[name]!r})")
            self._factories[name] = factory
            return factory

        return decorate

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``, or a ValueError listing the known names."""
        if name not in self._factories:
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}")
        return self._factories[name]

    def names(self, pattern: str | Sequence[str] | None = None) -> list[str]:
        """Sorted registered names; with ``pattern`` (a shell wildcard such as ``"conv*"``, or several),
        only those matching one of them (case-sensitive ``fnmatch``, as timm's ``list_models``)."""
        if pattern is None:
            return sorted(self._factories)
        patterns = [pattern] if isinstance(pattern, str) else pattern
        if not isinstance(patterns, Sequence) or not all(isinstance(p, str) for p in patterns):
            raise TypeError(
                f"{self.kind} name pattern must be a string such as 'conv*' or a list of them, got {pattern!r}"
            )
        return sorted(n for n in self._factories if any(fnmatch.fnmatchcase(n, p) for p in patterns))

    def create(self, name: str, **kwargs: Any) -> T:
        """Call the factory registered as ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __len__(self) -> int:
        return len(self._factories)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
