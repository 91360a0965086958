"""The design system (docs/web.md): one stylesheet whose colours are named tokens. Outside the
token block, a rule uses ``var(--color-…)``, never a literal colour, and every token a rule uses
is defined; every page links that one stylesheet and no other."""

from __future__ import annotations

import re
from pathlib import Path

import permanence.web

STATIC = Path(permanence.web.__file__).parent / "static"
TEMPLATES = Path(permanence.web.__file__).parent / "templates"


def _split() -> tuple[str, str]:
    css = (STATIC / "app.css").read_text()
    root = re.search(r":root\s*\{(.*?)\n\}", css, re.S)
    assert root, "app.css has no :root token block"
    return root.group(1), css[: root.start()] + css[root.end() :]


def test_rules_use_colour_tokens_not_literals() -> None:
    _tokens, rules = _split()
    literals = re.findall(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(", rules)
    assert literals == []


def test_every_token_used_is_defined() -> None:
    tokens, rules = _split()
    defined = set(re.findall(r"(--[a-z0-9-]+)\s*:", tokens))
    used = set(re.findall(r"var\((--[a-z0-9-]+)\)", rules + tokens))
    assert used - defined == set()
    for family in ("--color-", "--space-", "--text-", "--font-"):
        assert any(t.startswith(family) for t in defined), family


def test_one_stylesheet_for_every_page() -> None:
    sheets = sorted(p.name for p in STATIC.glob("*.css"))
    assert sheets == ["app.css"]
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for href in re.findall(r'rel="stylesheet" href="([^"]+)"', text):
            assert href == "/static/app.css", template
