"""The automated compliance checks' registry: how a check is declared and run.

A check is a function ``(CheckRun) -> (passed, summary, evidence)`` registered with
``@check("code", "title")``. Features register their own (rights requests, recordings,
audits, DPIAs, need-to-know) by importing this module, not ``permanence.compliance`` (which
reads those features: importing it from them would close a circle); ``registered`` imports
the modules listed in ``CHECK_MODULES``. Each check runs in its own read-only transaction, so
one failing check never hides the others. The report, the DPO desk and ``permanence
compliance check`` read the results (``permanence.compliance``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.context import AccessContext
from permanence.runtime import Runtime


@dataclass(frozen=True)
class CheckResult:
    code: str
    title: str
    passed: bool
    summary: str
    evidence: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.code}: {self.summary}"


@dataclass
class CheckRun:
    """What a check may use: the runtime and the moment of the run."""

    rt: Runtime
    now: dt.datetime

    @contextmanager
    def session(self, account_id: uuid.UUID | None = None) -> Iterator[Session]:
        ctx = AccessContext.system("compliance:check", account_id=account_id)
        with self.rt.db.session(ctx, readonly=True) as s:
            yield s

    def accounts(self) -> list[Account]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(Account)
                    .where(Account.status == AccountStatus.ACTIVE)
                    .order_by(Account.slug)
                )
            )


CheckFn = Callable[[CheckRun], tuple[bool, str, list[str]]]


@dataclass(frozen=True)
class RegisteredCheck:
    code: str
    title: str
    fn: CheckFn


_REGISTRY: dict[str, RegisteredCheck] = {}
# Modules that register checks; other features append theirs (import path strings).
CHECK_MODULES: list[str] = [
    "permanence.compliance.checks",
    "permanence.rights.checks",
    "permanence.recordings.downloads",
    "permanence.audits.checks",
    "permanence.dpia.checks",
    "permanence.needtoknow.checks",
    "permanence.compliance.recording_checks",
    "permanence.contracts.checks",
]


def check(code: str, title: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check. ``fn`` returns (passed, one-line summary, evidence lines)."""

    def deco(fn: CheckFn) -> CheckFn:
        if code in _REGISTRY and _REGISTRY[code].fn is not fn:
            raise ValueError(f"compliance check '{code}' is registered twice")
        _REGISTRY[code] = RegisteredCheck(code, title, fn)
        return fn

    return deco


def registered() -> list[RegisteredCheck]:
    for module in CHECK_MODULES:
        importlib.import_module(module)
    return sorted(_REGISTRY.values(), key=lambda c: c.code)


def run_checks(rt: Runtime, now: dt.datetime | None = None) -> list[CheckResult]:
    run = CheckRun(rt, now or dt.datetime.now(dt.UTC))
    results = []
    for c in registered():
        passed, summary, evidence = c.fn(run)
        results.append(CheckResult(c.code, c.title, passed, summary, evidence))
    return results
