"""One implementation that a lower module calls and a higher one provides (ADR 0037): the
higher module registers it with ``slot.register`` as a decorator; the lower one reads it with
``slot.get()``, which imports the providing module by name first (as ``permanence.checks``
imports the checks), so that the lower module never imports the higher one."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Slot(Generic[F]):
    def __init__(self, module: str, taken: str) -> None:
        self.module = module  # the module that registers the implementation
        self._taken = taken  # the error when a second, different one is registered
        self._fn: F | None = None

    def register(self, fn: F) -> F:
        """Register ``fn`` (one only; registering the same one again is harmless)."""
        if self._fn is not None and self._fn is not fn:
            raise ValueError(self._taken)
        self._fn = fn
        return fn

    def get(self) -> F:
        """The registered implementation (its module imported first)."""
        importlib.import_module(self.module)
        if self._fn is None:
            raise LookupError(f"{self.module} registered nothing")
        return self._fn
