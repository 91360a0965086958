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


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    """No circle of imports between any modules of the product, lazy imports inside
    functions included (grimp reads them as import-linter does): a module that needs one
    that needs it back has a piece in the wrong place (issue 14). Imports made only for type
    annotations (``if TYPE_CHECKING:``) are not counted: they never run (the mandate's rules
    name the ``Mandate`` they check, which runs them)."""
    import grimp

    graph = grimp.build_graph("permanence", cache_dir=None, exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if not m.startswith("permanence.migrations")}
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    assert _circles(edges) == []


def test_the_circle_finder_sees_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(edges) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_feature_package_imports_itself_back_through_others() -> None:
    """The features (every sub-package but the interfaces, the registry and the runtime,
    tools/import_cycles.py's NOT_FEATURES) form no circle as packages either: each one has a
    place in one order (ADR 0037, 0038)."""
    import grimp
    from tools.import_cycles import NOT_FEATURES

    graph = grimp.build_graph("permanence", cache_dir=None)

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        if module.count(".") < 1 or package(module) in NOT_FEATURES:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = package(module), package(imported)
            if a != b and b not in NOT_FEATURES and imported.count(".") >= 1:
                edges.setdefault(a, set()).add(b)
            edges.setdefault(a, set())
    assert _circles(edges) == []
