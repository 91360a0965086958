"""The French catalog covers every message of the interface, and the committed .mo is the
compiled .po (so that `pip install` needs no build step)."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "permanence" / "web"
PO = WEB / "locale" / "fr" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")


def _catalog(path: Path) -> list[object]:
    with path.open("rb") as f:
        return list(read_mo(f) if path.suffix == ".mo" else read_po(f))


def _extracted() -> set[str | tuple[str, ...]]:
    """The interface's templates, and every ``_()``/``gettext``/``N_`` string of the package's
    Python (pages live outside web/ too: stats/pages.py, mandates/layer2.py's wordings)."""
    method_map = [("web/templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"web/templates/**.html": {"trimmed": "true"}}
    found = extract_from_dir(str(WEB.parent), method_map, options)
    return {
        msgid if isinstance(msgid, str) else tuple(msgid)
        for _file, _line, msgid, _comments, _context in found
    }


def test_every_message_of_the_interface_has_a_french_translation() -> None:
    translated = {
        m.id if isinstance(m.id, str) else tuple(m.id)
        for m in _catalog(PO)  # type: ignore[attr-defined]
        if m.id and m.string and all(m.string)  # type: ignore[attr-defined]
    }
    missing = {(m if isinstance(m, str) else m[0]) for m in _extracted() if m not in translated}
    assert not missing, f"untranslated (run pybabel extract/update, see docs/web.md): {missing}"


def test_the_committed_mo_is_the_compiled_po() -> None:
    compiled = io.BytesIO()
    with PO.open("rb") as f:
        write_mo(compiled, read_po(f))
    compiled.seek(0)
    expected = {str(m.id): m.string for m in read_mo(compiled) if m.id}
    committed = {str(m.id): m.string for m in _catalog(MO) if m.id}  # type: ignore[attr-defined]
    assert committed == expected, "recompile: pybabel compile -d src/permanence/web/locale"
