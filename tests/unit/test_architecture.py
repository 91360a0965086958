"""The layers hold (ADR 0021, docs/architecture.md): the import-linter contracts of
pyproject.toml - no import from a lower layer to a higher one, the web kit imports no feature
but sign-in's, no import circle inside the packages split in issue 14."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)  # the contracts are read from pyproject.toml
    # import-linter configures logging with dictConfig, which disables every logger that
    # exists already (uvicorn's access log among them: the log-leak checks would then read
    # nothing). Their state is put back.
    loggers = [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    disabled = [lg.disabled for lg in loggers]
    try:
        code = lint_imports(config_filename=os.fspath(ROOT / "pyproject.toml"), no_cache=True)
    finally:
        for lg, was in zip(loggers, disabled, strict=True):
            lg.disabled = was
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Contracts: 10 kept, 0 broken." in out, out
