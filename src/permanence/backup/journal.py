"""The erasure journal outside the database: an append-only file that a restore replays.

Each erasure writes its ``erasure_journal`` row and, in the same call, one line here (fsynced
before the transaction commits: see docs/adr/0008-backups-and-the-erasure-journal.md). A line
holds pseudonymous ids and a time, authenticated with an HMAC under a key derived from the
master key, so a forged or altered line is refused rather than obeyed (a line makes a restore
destroy a caller's data). ``permanence rights journal-export`` writes the same format from
the database.

Each line of format 3 carries its ``seq``, its position in the file (1, 2, 3…), under the
HMAC: a line taken out leaves a gap, so a journal can show that it covers everything since a
given entry (``covers``: what a restore asks before it trusts a journal, docs/backup.md). A
file continues the count of the lines before it whatever their format.

Two kinds of entry: a subject erasure (``kind`` "subject", with the subject's id) and an
account off-boarding (``kind`` "account", no subject: ``contracts.offboarding``). Lines of
format 1 carry no kind and are subject erasures; format 2 and 3 lines carry it, under the
HMAC.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.orm import Session

from permanence.backup.model import ErasureJournal, JournalKind
from permanence.config import Settings
from permanence.crypto.keyring import Keyring
from permanence.errors import IntegrityFailure, ValidationFailed

MAC_PURPOSE = "erasure-journal"
# 1: no "kind" (every entry a subject erasure); 2: "kind" under the HMAC; 3: and "seq".
FORMAT = 3
KINDS = frozenset(k.value for k in JournalKind)


@dataclass(frozen=True)
class JournalEntry:
    id: uuid.UUID
    account_id: uuid.UUID
    subject_id: uuid.UUID | None
    request_id: uuid.UUID | None
    erased_at: dt.datetime
    kind: str = JournalKind.SUBJECT.value
    # Its position in the file it was read from (format 3), None for older lines.
    seq: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.subject_id is None) != (
            self.kind == JournalKind.ACCOUNT
        ):
            raise ValueError("a subject erasure names its subject; an off-boarding names none")

    @classmethod
    def of(cls, row: ErasureJournal) -> JournalEntry:
        return cls(row.id, row.account_id, row.subject_id, row.request_id, row.erased_at, row.kind)

    @classmethod
    def offboarding(cls, account_id: uuid.UUID, at: dt.datetime) -> JournalEntry:
        return cls(uuid.uuid4(), account_id, None, None, at, JournalKind.ACCOUNT.value)

    @property
    def is_account(self) -> bool:
        return self.kind == JournalKind.ACCOUNT

    def row(self) -> ErasureJournal:
        return ErasureJournal(
            id=self.id,
            account_id=self.account_id,
            kind=self.kind,
            subject_id=self.subject_id,
            request_id=self.request_id,
            erased_at=self.erased_at,
        )

    def fields(self, seq: int) -> dict[str, str | int | None]:
        return {
            "v": FORMAT,
            "seq": seq,
            "id": str(self.id),
            "account_id": str(self.account_id),
            "kind": self.kind,
            "subject_id": str(self.subject_id) if self.subject_id else None,
            "request_id": str(self.request_id) if self.request_id else None,
            "erased_at": self.erased_at.astimezone(dt.UTC).isoformat(),
        }


def _canonical(fields: dict[str, str | int | None]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def line_of(entry: JournalEntry, mac_key: bytes, seq: int) -> str:
    """The line of ``entry`` at position ``seq`` of its file."""
    fields = entry.fields(seq)
    mac = hmac.new(mac_key, _canonical(fields), hashlib.sha256).hexdigest()
    return json.dumps({**fields, "mac": mac}, sort_keys=True, separators=(",", ":")) + "\n"


def parse_lines(lines: Iterable[str], mac_key: bytes, where: str) -> list[JournalEntry]:
    """Every entry of a journal file; refuses the whole file at the first bad line.

    A line of format 1 has no ``kind`` (a subject erasure); one of format 2 must have it. The
    HMAC is over every field of the line, so a kind added, removed or changed is refused."""
    out: list[JournalEntry] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            mac = data.pop("mac")
            fields = {k: data[k] for k in ("v", "id", "account_id", "subject_id", "erased_at")}
            fields["request_id"] = data.get("request_id")
            if fields["v"] in (2, FORMAT):
                fields["kind"] = data["kind"]
            elif fields["v"] != 1:
                raise ValueError("unknown format")
            if fields["v"] == FORMAT:
                fields["seq"] = data["seq"]
                if type(fields["seq"]) is not int or fields["seq"] < 1:
                    raise ValueError("bad seq")
            if set(data) != set(fields):
                raise ValueError("unexpected field")
            expected = hmac.new(mac_key, _canonical(fields), hashlib.sha256).hexdigest()
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValidationFailed(f"{where}, line {n}: not an erasure journal entry") from None
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expected):
            raise IntegrityFailure(
                f"{where}, line {n}: the entry failed authentication (altered, forged, or "
                "written under another master key)"
            )
        try:
            erased_at = dt.datetime.fromisoformat(str(fields["erased_at"]))
            request, subject = fields["request_id"], fields["subject_id"]
            out.append(
                JournalEntry(
                    id=uuid.UUID(str(fields["id"])),
                    account_id=uuid.UUID(str(fields["account_id"])),
                    subject_id=uuid.UUID(str(subject)) if subject is not None else None,
                    request_id=uuid.UUID(str(request)) if request else None,
                    erased_at=erased_at.astimezone(dt.UTC),
                    kind=str(fields.get("kind", JournalKind.SUBJECT.value)),
                    seq=fields.get("seq"),
                )
            )
        except ValueError:
            raise ValidationFailed(f"{where}, line {n}: not an erasure journal entry") from None
    return out


def read_file(path: Path, mac_key: bytes) -> list[JournalEntry]:
    try:
        with path.open(encoding="utf-8") as fh:
            return parse_lines(fh, mac_key, str(path))
    except FileNotFoundError:
        raise ValidationFailed(f"erasure journal file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ValidationFailed(f"{path} is not an erasure journal file") from None


class ErasureMirror:
    """The append-only file: one fsynced line per erasure, under an exclusive lock so that
    several processes may append."""

    def __init__(self, path: Path, mac_key: bytes) -> None:
        self.path = path
        self.mac_key = mac_key

    @classmethod
    def from_settings(cls, settings: Settings, keyring: Keyring) -> ErasureMirror:
        return cls(settings.effective_erasure_journal_file, keyring.derived_secret(MAC_PURPOSE))

    def append(self, entries: Iterable[JournalEntry]) -> int:
        todo = list(entries)
        if not todo:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_seq(fd, where=str(self.path))
            data = "".join(
                line_of(e, self.mac_key, last + n) for n, e in enumerate(todo, start=1)
            ).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new name must survive a crash too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return data.count(b"\n")

    def entries(self) -> list[JournalEntry]:
        if not self.path.exists():
            return []
        return read_file(self.path, self.mac_key)


def _last_seq(fd: int, tail: int = 65536, where: str = "the erasure journal") -> int:
    """The position of the file's last line: its ``seq``, or the count of lines when that
    line is of an older format (or not JSON: cut short by a crash).

    A last line that is JSON but not an object is no entry of any format (a hand edit, or
    damage): refused as the replay refuses the file, naming ``where`` and the line."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    start = max(0, size - tail)
    chunk = os.pread(fd, size - start, start)
    lines = [x for x in chunk.split(b"\n") if x.strip()]
    if lines:
        try:
            last = json.loads(lines[-1])
        except ValueError:
            last = {}
        if not isinstance(last, dict):
            numbers = os.pread(fd, size, 0).split(b"\n")
            n = max(i for i, x in enumerate(numbers, start=1) if x.strip())
            raise ValidationFailed(f"{where}, line {n}: not an erasure journal entry")
        seq = last.get("seq")
        if type(seq) is int:
            return seq
    data = os.pread(fd, size, 0)  # older lines at the end: once, on the first new append
    return sum(1 for x in data.split(b"\n") if x.strip())


def covers(entries: Sequence[JournalEntry], anchor: uuid.UUID | None) -> str | None:
    """Whether a journal read from one file covers everything since ``anchor`` (the newest
    entry a backup holds; None: the backup holds none). None if it does, else what is missing.

    It covers when it holds the anchor (or, without one, starts at line 1) and its lines
    from the first onwards are numbered without a gap. What it cannot show is that nothing
    was cut from its end: keep the mirror on another volume (docs/backup.md)."""
    if not entries:
        return "it is empty"
    expected = None
    for n, e in enumerate(entries):
        if e.seq is None:
            if expected is not None:
                return f"entry {n + 1} has no sequence number after numbered entries"
            continue
        if expected is not None and e.seq != expected:
            if e.seq < expected:  # two files end to end, or lines out of order
                return f"entry {n + 1} is numbered {e.seq} after {expected - 1}: numbers go back"
            if e.seq == expected + 1:
                return f"entry {expected} is missing"
            return f"entries {expected} to {e.seq - 1} are missing"
        if expected is None and e.seq != n + 1 and anchor is None:
            if e.seq < n + 1:
                return f"entry {n + 1} is numbered {e.seq}, as if the {n} lines before it were not"
            return f"it starts at entry {e.seq - n}, not at the first"
        expected = e.seq + 1
    if expected is None:
        return "its entries carry no sequence numbers (written before format 3)"
    if anchor is not None and not any(e.id == anchor for e in entries):
        return "it does not hold the backup's newest erasure"
    return None


def record(session: Session, entry: JournalEntry) -> ErasureJournal:
    """Write one erasure (of a subject, or an account's off-boarding) to the journal table
    and to the mirror file (if configured).

    The line is fsynced before the transaction commits (write-ahead): a crash in between
    leaves a line for an erasure the database does not show, and a later restore carries
    that erasure out; it never leaves a committed erasure without its line.
    """
    row = entry.row()
    session.add(row)
    session.flush()
    mirror = session.info.get("erasure_mirror")
    if isinstance(mirror, ErasureMirror):
        mirror.append([entry])
    return row


def ensure(session: Session, entry: JournalEntry) -> bool:
    """Insert ``entry`` into the table unless it is there (replay); True if inserted."""
    if session.get(ErasureJournal, entry.id) is not None:
        return False
    session.add(entry.row())
    session.flush()
    return True


def read_database(conn: Connection) -> list[JournalEntry]:
    """Every entry of a database's journal table, read through a connection of the schema
    owner. On PostgreSQL the table is under row-level security, so it is read account by
    account. An absent table (a database never migrated) gives no entries; a table from
    before the ``kind`` column (revision 0050) holds subject erasures only."""
    insp = inspect(conn)
    if "erasure_journal" not in insp.get_table_names():
        return []
    present = {c["name"] for c in insp.get_columns("erasure_journal")}
    table = ErasureJournal.__table__
    query = select(*(c for c in table.c if c.name in present))
    if conn.dialect.name != "postgresql":
        rows = conn.execute(query).all()
    else:
        rows = []
        for (account_id,) in conn.execute(text("SELECT id FROM accounts")).all():
            conn.execute(
                text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account_id)}
            )
            rows += conn.execute(query).all()
    out = []
    for r in rows:
        erased = r.erased_at
        if isinstance(erased, str):
            erased = dt.datetime.fromisoformat(erased)
        if erased.tzinfo is None:
            erased = erased.replace(tzinfo=dt.UTC)
        out.append(
            JournalEntry(
                _uuid(r.id),
                _uuid(r.account_id),
                _uuid(r.subject_id) if r.subject_id is not None else None,
                _uuid(r.request_id) if r.request_id else None,
                erased.astimezone(dt.UTC),
                str(r._mapping.get("kind", JournalKind.SUBJECT.value)),
            )
        )
    return out


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def merge(*sources: Iterable[JournalEntry]) -> list[JournalEntry]:
    """One entry per id, oldest erasure first."""
    seen: dict[uuid.UUID, JournalEntry] = {}
    for source in sources:
        for e in source:
            seen.setdefault(e.id, e)
    return sorted(seen.values(), key=lambda e: (e.erased_at, str(e.id)))
