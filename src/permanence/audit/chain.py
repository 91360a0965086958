"""The audit chain's walk: what ``integrity.verify`` checks of each entry, in order.

Standard library only, and no import of Permanence: the module also runs as a script in a
fresh interpreter (``python -I -S chain.py FILE``, started in a few milliseconds), which walks
the first part of a long chain in a SQLite file while ``verify`` walks the rest (ADR 0042).
Both parts run the same ``walk``. The format checked is pinned by
tests/unit/test_audit_known_values.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable

# What only the first process needs is imported where it is used, and typing not at all: the
# second process starts in about 27 ms of CPU, not 45 (json with re, subprocess and theirs).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any

# The second process's batches: the columns walk() reads, in its order, after the last entry
# walked, up to the end of its part.
RANGE_SQL = (
    "SELECT seq, body, prev_hash, hash, action, actor_id, subject_id, ts FROM audit_log "
    "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
)


class Walk:
    """Where the walk along the chain stands: the entry expected next and the hash it must
    link to, the entries checked, the hashes kept for the checkpoints, the first fault."""

    __slots__ = ("count", "expected", "failure", "hashes_at", "last", "leads", "prev", "wanted")

    def __init__(self, after: int, prev: str, wanted: set[int]) -> None:
        self.expected, self.last, self.prev, self.count = after + 1, after, prev, 0
        self.wanted = wanted  # the sequence numbers whose hash a checkpoint vouches for
        self.hashes_at: dict[int, str] = {}
        # The first fault: (entry, problem, column); the walk stops there.
        self.failure: tuple[int, str, str] | None = None
        # What the copies' test builds from the columns is remembered: actions and actors
        # recur along the chain. (action, actor) -> '"action":…,"actor":…,'
        self.leads: dict[tuple[object, object], str] = {}


def walk(w: Walk, rows: Iterable[Any], differing: Callable[[int], str | None]) -> int:
    """Check ``rows`` (seq, body, prev_hash, hash, action, actor_id, subject_id, ts; in order
    of seq) from where ``w`` stands; return the number of rows read. Stops at the first fault
    (``w.failure``). ``differing(seq)`` is asked, for an entry whose indexed columns do not
    pass the quick test below, which column differs from its hashed body (None: none does)."""
    if len(w.leads) > 100_000:
        w.leads.clear()
    leads, wanted = w.leads, w.wanted
    expected, prev, last, count = w.expected, w.prev, w.last, w.count
    sha256, prev_raw, iso, seen = hashlib.sha256, bytes.fromhex(prev), _iso_utc, 0
    for seq, body, prev_hash, digest, action, actor, subject, ts in rows:
        seen += 1
        if seq != expected:
            w.failure = (expected, "entry missing (gap in sequence)", "seq")
            break
        if prev_hash != prev:
            w.failure = (seq, "column prev_hash: previous-hash link does not match", "prev_hash")
            break
        computed = sha256(prev_raw + seq.to_bytes(8, "big") + body.encode()).digest()
        if computed.hex() != digest:
            w.failure = (seq, "column body or hash: content does not match its hash", "body")
            break
        # The quick test, on the body's canonical text (``canonical``: sorted keys; codes and
        # ids hold no quote): "action" and "actor" come before "details" (the one nested
        # object), "subject" and "ts" are the body's last two keys. It passes only when every
        # copy matches; a row that does not pass it is checked field by field (``differing``),
        # which names the column (or finds the row fine: a ts written without microseconds,
        # an older body). Written out in the loop: it runs for every entry.
        lead = leads.get((action, actor))
        if lead is None:
            lead = leads[(action, actor)] = _lead_text(action, actor)
        at = body.find(lead) if lead else -1
        if type(subject) is str and len(subject) == 32:  # SQLite's uuid: 32 hex digits
            # Not escaped as JSON: at its place in the body only the quoted id it stands for
            # can equal this text (a uuid's text holds no quote).
            u = subject
            subject_j = f'"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"'
        else:
            subject_j = _id_json(subject)
        # SQLite keeps ts as naive UTC text ("2026-12-06 16:28:56.771494")
        ts_j = ts.replace(" ", "T", 1) + "+00:00" if type(ts) is str else iso(ts)
        if (
            at < 0
            or body.find('"details":') <= at
            or not body.endswith(f',"subject":{subject_j},"ts":"{ts_j}"}}')
        ):
            differs = differing(seq)
            if differs is not None:
                w.failure = (seq, f"column {differs} differs from the hashed body", differs)
                break
        if seq in wanted:
            w.hashes_at[seq] = digest
        prev, expected, last, count = digest, seq + 1, seq, count + 1
        prev_raw = computed
    w.expected, w.prev, w.last, w.count = expected, prev, last, count
    return seen


def _uuid_text(value: object) -> str | None:
    """A uuid column as the DB-API driver returns it (UUID, or SQLite's 32 hex digits), as the
    body writes it; None for NULL."""
    if value is None:
        return None
    text = str(value)  # a UUID's text is the body's (36 characters)
    if len(text) == 32:
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


def _id_json(value: object) -> str:
    """An id column's JSON text in the body (``"…"`` or ``null``)."""
    text = _uuid_text(value)
    if text is None:
        return "null"
    if text.isascii() and text.replace("-", "").isalnum():  # a uuid: nothing to escape
        return f'"{text}"'
    import json

    return json.dumps(text)


def _lead_text(action: object, actor: object) -> str:
    """The body's text from "action" to the actor's id, for these columns ("": a column no
    canonical body can hold — a quote or a backslash in the action; checked field by
    field)."""
    if not isinstance(action, str) or '"' in action or "\\" in action:
        return ""
    return '"action":"' + action + '","actor":' + _id_json(actor) + ","


def _iso_utc(value: object) -> str:
    """The ts column as the body writes it (``isoformat()`` of an aware UTC datetime), for a
    driver that returns it as an object; SQLite's text is read in ``walk`` itself."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat()
    return str(value).replace(" ", "T", 1) + "+00:00"  # SQLite's naive UTC text


# --- the second process ---------------------------------------------------------------------


def start_range(
    path: str, after: int, through: int, prev: str, wanted: Iterable[int], batch: int
) -> subprocess.Popen[bytes] | None:
    """Start walking entries ``after`` + 1 to ``through`` of the SQLite file at ``path`` in a
    process of its own (this module run as a script by an isolated interpreter), from the
    hash ``prev``, keeping the hashes at ``wanted``; None when it could not be started. Its
    answer: ``range_result``; ``stop`` it in every case."""
    import subprocess

    arguments = [path, str(after), str(through), prev, str(batch)]
    try:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, this file, no shell
            [sys.executable, "-I", "-S", __file__, *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # It needs no setting of the application's, and is given none (the master key…).
            env={k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")},
        )
    except (OSError, ValueError):
        return None
    try:
        assert proc.stdin is not None
        proc.stdin.write(" ".join(str(q) for q in sorted(wanted) if after < q <= through).encode())
        proc.stdin.close()
    except OSError:  # it ended before reading its request
        stop(proc)
        return None
    return proc


def range_result(
    proc: subprocess.Popen[bytes],
) -> tuple[int, str, dict[int, str], list[int]] | None:
    """What the process walked, once it has ended: where its walk stopped (the end of its
    range, or the entry before the first fault), on which hash, the hashes kept, the entries
    to check field by field. None when it failed."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait() != 0:
        return None
    try:
        stopped, hashes, suspects = out.decode().split("\n")
        last, prev = stopped.split(" ")
        kept = {int(q): h for q, h in (item.split(":") for item in hashes.split())}
        return int(last), prev, kept, [int(q) for q in suspects.split()]
    except ValueError:
        return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the process if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _main(path: str, after: int, through: int, prev: str, batch: int) -> int:
    """Walk the range given (``start_range``) of the SQLite file at ``path``, read only, and
    answer on stdout in three lines: where the walk stopped and on which hash; the hashes at
    the sequence numbers read on stdin (``seq:hash``); the entries whose columns missed the
    quick test (the asker checks them field by field)."""
    w = Walk(after, prev, {int(seq) for seq in sys.stdin.buffer.read().split()})
    suspects: list[int] = []

    def differing(seq: int) -> None:
        suspects.append(seq)

    # A URI, to open the file read only; in a file name, "?", "#" and "%" are escaped there.
    name = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    con = sqlite3.connect(f"file:{name}?mode=ro", uri=True, timeout=30)
    try:
        cursor = con.cursor()
        while w.failure is None and w.last < through:
            if not walk(w, cursor.execute(RANGE_SQL, (w.last, through, batch)), differing):
                break
    finally:
        con.close()
    hashes = " ".join(f"{seq}:{digest}" for seq, digest in w.hashes_at.items())
    sys.stdout.write(f"{w.last} {w.prev}\n{hashes}\n{' '.join(map(str, suspects))}")
    return 0


if __name__ == "__main__":
    path, after, through, prev, batch = sys.argv[1:]
    sys.exit(_main(path, int(after), int(through), prev, int(batch)))
