"""The requirements matrix: each duty -> where implemented -> the tests that prove it.

Built from the tests themselves: a test proves a duty by carrying
``@pytest.mark.gdpr("Art. 33(2)")``. ``scan`` reads the test sources (AST, nothing is run or
imported) and the result is committed as ``requirements.json`` beside this module, so that an
installed deployment (which has no tests/) ships it; tests/integration/test_evidence.py fails
when the file is stale, when a marker names an unknown duty, or when a duty has no test.

Regenerate after adding or moving a marker:
``python -m permanence.compliance.matrix tests > src/permanence/compliance/requirements.json``
"""

from __future__ import annotations

import ast
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from permanence.compliance.duties import DUTIES

MARKER = "gdpr"


def _refs(decorator: ast.expr) -> list[str]:
    """The duty references of one ``pytest.mark.gdpr(...)`` decorator (else none)."""
    if not isinstance(decorator, ast.Call):
        return []
    f = decorator.func
    if not (isinstance(f, ast.Attribute) and f.attr == MARKER):
        return []
    if not (isinstance(f.value, ast.Attribute) and f.value.attr == "mark"):
        return []
    return [
        a.value for a in decorator.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
    ]


def scan(tests: Path) -> dict[str, list[str]]:
    """{duty reference: sorted test ids ("tests/…/test_x.py::test_y")} from the sources."""
    found: dict[str, set[str]] = {}
    root = tests.resolve().parent
    for path in sorted(tests.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.resolve().relative_to(root).as_posix()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                for dec in node.decorator_list:
                    for ref in _refs(dec):
                        found.setdefault(ref, set()).add(f"{rel}::{node.name}")
    return {ref: sorted(ids) for ref, ids in sorted(found.items())}


def shipped() -> dict[str, list[str]]:
    """The matrix generated at build time (requirements.json in the package)."""
    text = resources.files("permanence.compliance").joinpath("requirements.json").read_text()
    data: dict[str, list[str]] = json.loads(text)
    return data


def rows(proofs: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """One row per duty: reference, duty, where implemented, tests."""
    proofs = shipped() if proofs is None else proofs
    return [
        {"ref": d.ref, "duty": d.duty, "where": d.where, "tests": proofs.get(d.ref, [])}
        for d in DUTIES
    ]


def render(proofs: dict[str, list[str]]) -> str:
    return json.dumps(proofs, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover - a developer's command
    sys.stdout.write(render(scan(Path(sys.argv[1] if len(sys.argv) > 1 else "tests"))))
