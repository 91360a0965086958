"""The README names no command, option or setting that does not exist.

Every `permanence …` command the README shows (in its prose and in the command table, where
`audits list` after `permanence audits record …` means `permanence audits list`) is looked up
in the command tree of the installed entry point, with each `--option` it names; every
`PERMANENCE_*` variable is a field of `Settings` or, for the few read elsewhere, is read by
some code of the repository.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import typer

from permanence.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SPAN = re.compile(r"`([^`]+)`")
WORD = re.compile(r"[a-z][a-z0-9-]*\Z")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _root() -> Any:
    """The command tree behind the `permanence` script of pyproject.toml (click's objects,
    as typer vendors them: groups have ``commands``, commands have ``params``)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, _attr = scripts["permanence"].partition(":")
    command = typer.main.get_command(importlib.import_module(module).app)
    assert _is_group(command)
    return command


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def _resolve(root: Any, words: list[str]) -> tuple[list[str], Any] | None:
    """Walk ``words`` down the tree; the path and the command reached, None if one is unknown."""
    command = root
    path: list[str] = []
    for word in words:
        if not _is_group(command) or not WORD.match(word):
            break
        sub = command.commands.get(word)
        if sub is None:
            return None
        command, path = sub, [*path, word]
    return path, command


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def _uses() -> list[tuple[str, list[str]]]:
    """(what the README shows, the command words to resolve, already prefixed)."""
    uses: list[tuple[str, list[str]]] = []
    for line in README.splitlines():
        spans = SPAN.findall(line.split(" | ")[0] if line.startswith("| `permanence") else line)
        group: list[str] = []
        for span in spans:
            words = span.replace("\\|", "|").split()
            if words and words[0] == "permanence":
                uses.append((span, words[1:]))
                group = [w for w in words[1:2] if WORD.match(w)]
            elif line.startswith("| `permanence") and group and words and WORD.match(words[0]):
                # `audits list` names its group again; `scope REF` does not.
                uses.append((span, words if words[0] == group[0] else [*group, *words]))
    return uses


def test_every_command_and_option_the_readme_names_exists() -> None:
    root = _root()
    uses = _uses()
    assert len(uses) > 40, "the README's command table was not read"
    problems: list[str] = []
    for span, words in uses:
        if words and words[0].startswith("--"):  # `permanence --install-completion`
            if words[0] not in _options(root) and words[0] != "--install-completion":
                problems.append(f"{span}: no option {words[0]}")
            continue
        found = _resolve(root, words)
        if found is None or not found[0]:
            problems.append(f"{span}: no such command")
            continue
        path, command = found
        if _is_group(command):
            problems.append(f"{span}: '{' '.join(path)}' needs a subcommand")
            continue
        missing = set(OPTION.findall(span)) - _options(command)
        if missing:
            problems.append(f"{span}: '{' '.join(path)}' has no {', '.join(sorted(missing))}")
    assert not problems, "\n".join(problems)


def _named_settings() -> set[str]:
    """Every variable the README names; `PERMANENCE_SMTP_HOST`, `_SMTP_PORT` gives two, the
    short one under the longest prefix of the one before it that makes a setting."""
    known = {f"PERMANENCE_{name.upper()}" for name in Settings.model_fields}
    names: set[str] = set()
    for line in README.splitlines():
        last = ""
        for token in re.findall(r"(?<![\w])(PERMANENCE_[A-Z0-9_]+|_[A-Z][A-Z0-9_]+)", line):
            if token.startswith("PERMANENCE_"):
                names.add(token)
                last = token
            elif last:
                parts = last.split("_")
                candidates = ["_".join(parts[:n]) + token for n in range(len(parts) - 1, 0, -1)]
                names.add(next((c for c in candidates if c in known), candidates[-1]))
    return names


def test_every_setting_the_readme_names_exists() -> None:
    known = {f"PERMANENCE_{name.upper()}" for name in Settings.model_fields}
    named = _named_settings()
    assert {"PERMANENCE_SMTP_PORT", "PERMANENCE_PROVIDER_ADDRESS"} <= named  # the short forms
    code = (
        "\n".join(
            p.read_text()
            for folder in ("src", "tests", "tools")
            for p in (ROOT / folder).rglob("*.py")
            if p.name != Path(__file__).name
        )
        + (ROOT / "dev.py").read_text()
    )
    unknown = sorted(n for n in named - known if f'"{n}"' not in code)
    assert not unknown, f"the README names settings nothing reads: {unknown}"
