"""Migration scripts. ``_tenant_tables`` gathers what the revisions put under RLS."""

from __future__ import annotations

import importlib
import pkgutil


def _tenant_tables() -> set[str]:
    tables: set[str] = set()
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        tables |= set(getattr(module, "TENANT_TABLES", ()))
    return tables
