"""Finding seeded personal data in server logs, however it was written there.

Used by the end-to-end session (tests/e2e/conftest.py), which collects everything its servers
log — the in-process uvicorn's records (access log included) and the output of server
subprocesses — and fails if any seeded name, phone, e-mail or message text appears in it.

A phone number is looked for in every form a log line could carry it: as typed ("06 12 34 56
78"), digits only, E.164, percent- or plus-encoded in a URL; every needle case-insensitively.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, unquote_plus

_PHONE = re.compile(r"^\+?[\d .\-]{9,}$")


def variants(needle: str) -> set[str]:
    """The forms of ``needle`` to look for (lower case)."""
    out = {needle.lower()}
    if _PHONE.match(needle):
        digits = re.sub(r"\D", "", needle)
        out.add(digits)
        if needle.startswith("+33"):
            out.add("0" + digits[2:])
        elif digits.startswith("0") and len(digits) == 10:
            out.add("+33" + digits[1:])
            out.add("33" + digits[1:])
    return out


def _readings(line: str) -> set[str]:
    """The line as written, and as decoded from a URL (a query string in an access log)."""
    forms = {line, unquote(line), unquote_plus(line)}
    # Separators inside a number ("06 12 34", "06.12.34") must not hide it.
    forms |= {re.sub(r"(?<=\d)[ .\-](?=\d)", "", f) for f in list(forms)}
    return {f.lower() for f in forms}


def find_leaks(lines: Iterable[str], needles: Iterable[str]) -> list[str]:
    """Each (needle, line) where a seeded identifier appears; the line cut short."""
    wanted = [(n, v) for n in needles for v in variants(n)]
    leaks = []
    for line in lines:
        readings = _readings(line)
        for needle, form in wanted:
            if any(form in r for r in readings):
                leaks.append(f"{needle!r} in {line[:160]!r}")
                break
    return leaks


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {record.getMessage()}"
        except (TypeError, ValueError):
            text = f"{record.name}: {record.msg} {record.args!r}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


class ServerLogs:
    """Everything the session's servers log: records of every logger (uvicorn's access log
    included, unredacted) and the files that server subprocesses write their output to."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._handler = _Lines()
        self.servers = 0  # servers started in the session, in process or as subprocesses

    def attach(self) -> None:
        logging.getLogger().addHandler(self._handler)
        # uvicorn's loggers may not propagate (its default configuration): listen to them too.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            if not logger.propagate:
                logger.addHandler(self._handler)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).removeHandler(self._handler)

    def output_file(self, name: str) -> Path:
        """Where a server subprocess writes its stdout and stderr."""
        self.servers += 1
        return self.directory / f"{self.servers:03d}-{name}.log"

    def in_process_server(self) -> None:
        self.servers += 1

    def lines(self) -> list[str]:
        out = list(self._handler.lines)
        for path in sorted(self.directory.glob("*.log")):
            out += path.read_text(encoding="utf-8", errors="replace").splitlines()
        return out

    def access_lines(self) -> list[str]:
        return [line for line in self.lines() if re.search(r'"[A-Z]+ /\S* HTTP/1\.[01]"', line)]
