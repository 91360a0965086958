"""The layers hold (ADR 0021, docs/architecture.md): the import-linter contracts of
pyproject.toml - no import from a lower layer to a higher one, the web kit imports no feature
but sign-in's, no import circle inside the packages split in issue 14."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)  # the contracts are read from pyproject.toml
    code = lint_imports(config_filename=os.fspath(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Contracts: 3 kept, 0 broken." in out, out
