"""The end-to-end session's check of server logs (tests/pii_logs.py) can fail: a seeded phone,
e-mail, name or message text in a log line is flagged in every form a line may carry it."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.pii_logs import ServerLogs, find_leaks

SEEDED = ("06 12 34 56 78", "camille.martin@exemple.fr", "Lemoine", "Fuite sous l'évier")


def test_a_seeded_phone_in_an_access_log_line_is_flagged_in_any_form() -> None:
    lines = [
        '127.0.0.1:51234 - "GET /console/appelants?tel=06%2012%2034%2056%2078 HTTP/1.1" 200',
        '127.0.0.1:51234 - "GET /console/appelants?tel=%2B33612345678 HTTP/1.1" 200',
        '127.0.0.1:51234 - "GET /console/appelants?tel=0612345678 HTTP/1.1" 200',
        "permanence.calls: caller +33 6 12 34 56 78 not found",
        "permanence.calls: caller 06.12.34.56.78 not found",
    ]
    leaks = find_leaks(lines, SEEDED)
    assert len(leaks) == len(lines)
    assert all("06 12 34 56 78" in leak for leak in leaks)


def test_e_mails_names_and_message_text_are_flagged_whatever_their_case() -> None:
    lines = [
        "permanence.delivery: sent to Camille.Martin@Exemple.FR",
        '127.0.0.1:1 - "GET /recherche?q=camille.martin%40exemple.fr HTTP/1.1" 200',
        "permanence.messages: LEMOINE",
        "permanence.messages: description=Fuite+sous+l%27%C3%A9vier",
    ]
    assert len(find_leaks(lines, SEEDED)) == 4


def test_clean_lines_are_not_flagged() -> None:
    lines = [
        '127.0.0.1:51234 - "GET /console/appels/3f1c2e4a-1b2c-4d5e-8f90-123456789abc HTTP/1.1" 200',
        "permanence.audit: checkpoint 1234 signed",
        "uvicorn.error: Application startup complete.",
        '127.0.0.1:1 - "POST /api/v1/calls HTTP/1.1" 201',
    ]
    assert find_leaks(lines, SEEDED) == []


def test_the_collector_reads_records_and_subprocess_output(tmp_path: Path) -> None:
    # A number of its own: the records really go through logging, where the end-to-end
    # tests' own collector (if it runs in this session) must not mistake it for a leak.
    number = "06 98 76 54 32"
    logs = ServerLogs(tmp_path)
    logs.attach()
    try:
        logging.getLogger("uvicorn.access").warning(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/x?t=0698765432", "1.1", 200
        )
    finally:
        logs.detach()
    logs.output_file("child").write_text('INFO: 127.0.0.1:2 - "GET /ok HTTP/1.1" 200 OK\n')
    assert len(logs.access_lines()) == 2
    assert len(find_leaks(logs.lines(), [number])) == 1
