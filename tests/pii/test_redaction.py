from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from permanence.pii import RedactingFilter, mask, scan_lines, undeclared

from ._factories import iban_with_check, luhn_complete, nir_with_key

NIR = nir_with_key("2690575123456")
IBAN = iban_with_check("FR", "30006000011234567890189")
CARD = luhn_complete("513012345678901")


def test_mask_default_and_custom_placeholder() -> None:
    text = "Mme Martin, 06 12 34 56 78, martin@free.fr, diabète"
    assert mask(text) == "Mme [PERSON], [PHONE], [EMAIL], [HEALTH]"
    assert mask(text, ["PHONE", "EMAIL"]) == "Mme Martin, [PHONE], [EMAIL], diabète"
    assert mask(text, ["PHONE"], placeholder="<{type}>") == (
        "Mme Martin, <PHONE>, martin@free.fr, diabète"
    )
    assert mask("rien à signaler") == "rien à signaler"


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.pii.redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_filter_masks_message_and_percent_args(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("callback to %s for %s (nir %s, iban %s)", "06 12 34 56 78", "a@b.fr", NIR, IBAN)
    logger.warning("card %(card)s declined", {"card": CARD})
    lines = stream.getvalue().splitlines()
    assert lines == [
        "INFO callback to [PHONE] for [EMAIL] (nir [NIR], iban [IBAN])",
        "WARNING card [CARD] declined",
    ]


def test_filter_keeps_non_structured_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("Mme Martin, diabète, %d appels", 3)
    assert stream.getvalue() == "INFO Mme Martin, diabète, 3 appels\n"


def test_filter_survives_bad_args_and_masks_exceptions(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("two placeholders %s %s", "06 12 34 56 78")  # wrong arg count
    try:
        raise ValueError("bad number 06 98 76 54 32")
    except ValueError:
        logger.exception("failed")
    out = stream.getvalue()
    assert "06 12 34 56 78" not in out and "06 98 76 54 32" not in out
    assert "[PHONE]" in out and "ValueError: bad number [PHONE]" in out


def test_filter_record_is_kept_and_args_cleared() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "tel %s", ("0612345678",), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "tel [PHONE]"
    assert record.args is None


def test_undeclared() -> None:
    note = f"Fuite chez Mme Martin, 06 12 34 56 78, elle est enceinte. NIR {NIR}"
    plumber = {"PERSON", "PHONE", "ADDRESS", "EMAIL"}
    assert [(e.type, e.text) for e in undeclared(note, plumber)] == [
        ("HEALTH", "enceinte"),
        ("NIR", NIR),
    ]
    assert undeclared("Fuite chez Mme Martin", plumber) == []


def test_scan_lines_json() -> None:
    source = io.StringIO("Mme Martin 06 12 34 56 78\n\nrien\ncontact a@b.fr\n")
    out = io.StringIO()
    assert scan_lines(source, out, mask=False) == 3
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records == [
        {"line": 1, "type": "PERSON", "start": 4, "end": 10, "text": "Martin"},
        {"line": 1, "type": "PHONE", "start": 11, "end": 25, "text": "06 12 34 56 78"},
        {"line": 4, "type": "EMAIL", "start": 8, "end": 14, "text": "a@b.fr"},
    ]


def test_scan_lines_mask() -> None:
    source = io.StringIO("Mme Martin 06 12 34 56 78\r\nrien")
    out = io.StringIO()
    assert scan_lines(source, out, mask=True) == 2
    assert out.getvalue().splitlines() == ["Mme [PERSON] [PHONE]", "rien"]


def test_permanence_pii_scan_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "permanence", "pii", "scan", "--mask", "--types", "PHONE"],
        input="Mme Martin 06 12 34 56 78\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "Mme Martin [PHONE]\n"
    result = subprocess.run(
        [sys.executable, "-m", "permanence", "pii", "scan"],
        input="rien\nécrire à a@b.fr\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"line": 2, "type": "EMAIL", "start": 9, "end": 15, "text": "a@b.fr"}
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "permanence", "pii", "scan", "--types", "NOPE"],
        input="x\n",
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: unknown type")
