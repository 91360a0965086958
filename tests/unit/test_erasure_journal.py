"""The erasure journal's line format is a promise: a restore obeys each line (it destroys a
caller's data), so a line must be read exactly as written, and refused whole when it was
altered, forged, or is not a journal line at all (ADR 0008, docs/backup.md).

Expected lines and MACs are written by hand here, the MAC computed with ``hmac`` over the
literal canonical text (never through ``permanence``). The database half (``read_database``,
``record``, ``ensure``) runs on an in-memory SQLite database holding only the journal table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.orm import Session

import permanence.accounts.model  # noqa: F401  (the journal table refers to accounts)
from permanence.backup import journal
from permanence.backup.journal import ErasureMirror, JournalEntry
from permanence.errors import IntegrityFailure, ValidationFailed
from permanence.rights.model import ErasureJournal

KEY = b"k" * 32
ACCOUNT = uuid.UUID("11111111-1111-4111-8111-111111111111")
SUBJECT = uuid.UUID("33333333-3333-4333-8333-333333333333")
REQUEST = uuid.UUID("44444444-4444-4444-8444-444444444444")
ENTRY_ID = uuid.UUID("55555555-5555-4555-8555-555555555555")
AT = dt.datetime(2027, 1, 4, 9, 30, tzinfo=dt.UTC)

ENTRY = JournalEntry(ENTRY_ID, ACCOUNT, SUBJECT, REQUEST, AT)
# Written by hand: keys sorted, no spaces, the time in UTC with its offset.
CANONICAL = (
    f'{{"account_id":"{ACCOUNT}","erased_at":"2027-01-04T09:30:00+00:00",'
    f'"id":"{ENTRY_ID}","kind":"subject","request_id":"{REQUEST}","seq":1,'
    f'"subject_id":"{SUBJECT}","v":3}}'
)


def mac_of(canonical: str, key: bytes = KEY) -> str:
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def signed(fields: dict[str, object], key: bytes = KEY) -> str:
    """A line with a correct MAC over exactly ``fields`` (to reach the checks after the MAC)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return json.dumps({**fields, "mac": mac_of(canonical, key)}, sort_keys=True) + "\n"


def fields_of(entry: JournalEntry = ENTRY) -> dict[str, object]:
    return dict(json.loads(CANONICAL)) if entry is ENTRY else dict(entry.fields())


def test_a_subject_erasure_line_known_value() -> None:
    line = journal.line_of(ENTRY, KEY, 1)
    # The line is the canonical fields and the MAC, keys sorted ("mac" after "kind").
    mac = mac_of(CANONICAL)
    assert line == CANONICAL.replace('"kind":"subject",', f'"kind":"subject","mac":"{mac}",') + "\n"
    # The MAC's key is the one given: another key, another MAC.
    assert journal.line_of(ENTRY, b"j" * 32, 1) != line
    # The position is under the MAC too.
    assert journal.line_of(ENTRY, KEY, 2) == line.replace('"seq":1', '"seq":2').replace(
        mac, mac_of(CANONICAL.replace('"seq":1', '"seq":2'))
    )


def test_an_offboarding_line_known_value() -> None:
    at = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    entry = JournalEntry(ENTRY_ID, ACCOUNT, None, None, at, "account")
    canonical = (
        f'{{"account_id":"{ACCOUNT}","erased_at":"2027-03-01T11:00:00+00:00",'
        f'"id":"{ENTRY_ID}","kind":"account","request_id":null,"seq":7,"subject_id":null,'
        '"v":3}'
    )
    mac = mac_of(canonical)
    expected = canonical.replace('"kind":"account",', f'"kind":"account","mac":"{mac}",')
    assert journal.line_of(entry, KEY, 7) == expected + "\n"
    assert entry.is_account and not ENTRY.is_account


def test_lines_read_back_as_written() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    entries = [
        ENTRY,
        JournalEntry(uuid.uuid4(), ACCOUNT, SUBJECT, None, AT.astimezone(paris)),
        JournalEntry.offboarding(ACCOUNT, AT),
    ]
    text_ = "".join(journal.line_of(e, KEY, n) for n, e in enumerate(entries, start=1))
    read = journal.parse_lines(text_.splitlines(keepends=True), KEY, "x")
    assert read == entries
    assert all(e.erased_at.tzinfo == dt.UTC for e in read)
    assert [e.kind for e in read] == ["subject", "subject", "account"]
    assert read[1].request_id is None and read[2].subject_id is None
    assert [e.seq for e in read] == [1, 2, 3]


def test_a_format_1_line_is_a_subject_erasure() -> None:
    fields = {k: v for k, v in fields_of().items() if k not in ("kind", "seq")} | {"v": 1}
    (entry,) = journal.parse_lines([signed(fields)], KEY, "x")
    assert entry == ENTRY and entry.kind == "subject"
    without_request = journal.parse_lines([signed(fields | {"request_id": None})], KEY, "x")
    assert [e.request_id for e in without_request] == [None]


def test_blank_lines_are_skipped_and_errors_name_the_line() -> None:
    good = journal.line_of(ENTRY, KEY, 1)
    assert journal.parse_lines(["\n", good, "   \n"], KEY, "x") == [ENTRY]
    with pytest.raises(ValidationFailed) as refused:
        journal.parse_lines([good, "\n", "not json\n"], KEY, "the mirror file")
    assert str(refused.value) == "the mirror file, line 3: not an erasure journal entry"
    altered = good.replace(str(SUBJECT), str(REQUEST))
    with pytest.raises(IntegrityFailure) as forged:
        journal.parse_lines(["\n", altered], KEY, "export.jsonl")
    assert str(forged.value).startswith("export.jsonl, line 2: the entry failed authentication")


@pytest.mark.parametrize(
    "field", ["v", "seq", "id", "account_id", "kind", "subject_id", "request_id", "erased_at"]
)
def test_every_field_is_under_the_mac(field: str) -> None:
    data = json.loads(journal.line_of(ENTRY, KEY, 1))
    data[field] = {
        "v": 2,
        "seq": 2,
        "id": str(uuid.uuid4()),
        "account_id": str(uuid.uuid4()),
        "kind": "account",
        "subject_id": str(uuid.uuid4()),
        "request_id": None,
        "erased_at": "2027-01-04T09:31:00+00:00",
    }[field]
    if field == "v":  # format 2 has no seq: drop it too, or the line is malformed instead
        del data["seq"]
    with pytest.raises(IntegrityFailure):
        journal.parse_lines([json.dumps(data)], KEY, "x")


@pytest.mark.parametrize(
    "mac",
    ["0" * 64, "f" * 64, mac_of(CANONICAL, b"j" * 32), mac_of(CANONICAL)[:-1], 1, None],
)
def test_a_wrong_mac_is_refused(mac: object) -> None:
    line = json.dumps({**fields_of(), "mac": mac})
    with pytest.raises(IntegrityFailure):
        journal.parse_lines([line], KEY, "x")


def _malformed() -> Iterator[tuple[str, str]]:
    fields = fields_of()
    yield "not JSON", "{"
    yield "JSON but not an object", "[1, 2]\n"
    yield "no mac", json.dumps(fields)
    for name in ("v", "id", "account_id", "subject_id", "erased_at"):
        yield f"no {name}", signed({k: v for k, v in fields.items() if k != name})
    yield "format 3 without a kind", signed({k: v for k, v in fields.items() if k != "kind"})
    yield "format 3 without a seq", signed({k: v for k, v in fields.items() if k != "seq"})
    yield "format 2 with a seq", signed(fields | {"v": 2})
    yield "a seq of 0", signed(fields | {"seq": 0})
    yield "a seq as text", signed(fields | {"seq": "1"})
    yield "format 1 with a kind", signed({k: v for k, v in fields.items() if k != "seq"} | {"v": 1})
    yield "an unknown format", signed(fields | {"v": 4})
    without_kind = {k: v for k, v in fields.items() if k not in ("kind", "seq")}
    yield "a later format without a kind", signed(without_kind | {"v": 4})
    yield "format 0", signed(without_kind | {"v": 0})
    yield "an unexpected field", signed(fields | {"note": "x"})
    # A line without its request id, under a MAC over a null one: a field is missing.
    no_request = json.loads(signed(fields | {"request_id": None}))
    del no_request["request_id"]
    yield "no request_id", json.dumps(no_request)
    yield "a time that is not one", signed(fields | {"erased_at": "2027-13-01T00:00:00"})
    yield "an id that is not one", signed(fields | {"id": "not-a-uuid"})
    yield "an account that is not one", signed(fields | {"account_id": "x"})
    yield "a subject that is not one", signed(fields | {"subject_id": "x"})
    yield "a request that is not one", signed(fields | {"request_id": "x"})
    yield "an unknown kind", signed(fields | {"kind": "everything"})
    yield "an off-boarding naming a subject", signed(fields | {"kind": "account"})
    yield "a subject erasure naming none", signed(fields | {"subject_id": None})


@pytest.mark.parametrize(("case", "line"), list(_malformed()), ids=[c for c, _ in _malformed()])
def test_a_malformed_line_is_refused_without_raising_anything_else(case: str, line: str) -> None:
    with pytest.raises(ValidationFailed, match=r"^x, line 1: not an erasure journal entry$"):
        journal.parse_lines([line], KEY, "x")


def test_an_entry_names_its_subject_exactly_when_it_is_a_subject_erasure() -> None:
    JournalEntry(ENTRY_ID, ACCOUNT, None, None, AT, "account")
    for subject, kind in ((None, "subject"), (SUBJECT, "account"), (SUBJECT, "other")):
        with pytest.raises(ValueError, match="a subject erasure names its subject"):
            JournalEntry(ENTRY_ID, ACCOUNT, subject, None, AT, kind)
    made = JournalEntry.offboarding(ACCOUNT, AT)
    assert (made.account_id, made.subject_id, made.request_id, made.erased_at, made.kind) == (
        ACCOUNT,
        None,
        None,
        AT,
        "account",
    )
    assert made.id != JournalEntry.offboarding(ACCOUNT, AT).id


def test_an_entry_is_read_back_from_its_table_row() -> None:
    offboarded = JournalEntry.offboarding(ACCOUNT, AT)
    for entry in (ENTRY, offboarded):
        row = entry.row()
        assert (row.id, row.account_id, row.kind, row.subject_id, row.request_id) == (
            entry.id,
            ACCOUNT,
            entry.kind,
            entry.subject_id,
            entry.request_id,
        )
        assert JournalEntry.of(row) == entry
    # Checked once when made, an entry cannot be changed afterwards.
    with pytest.raises(dataclasses.FrozenInstanceError):
        ENTRY.kind = "account"  # type: ignore[misc]
    # Ids as a driver may give them, objects or text.
    assert journal._uuid(ENTRY_ID) is ENTRY_ID and journal._uuid(ENTRY_ID.hex) == ENTRY_ID


def test_merge_keeps_one_entry_per_id_oldest_first() -> None:
    later = JournalEntry(uuid.UUID(int=1), ACCOUNT, SUBJECT, None, AT + dt.timedelta(seconds=1))
    same_time_low = JournalEntry(uuid.UUID(int=2), ACCOUNT, SUBJECT, None, AT)
    same_time_high = JournalEntry(uuid.UUID(int=3), ACCOUNT, None, None, AT, "account")
    copy = JournalEntry(later.id, ACCOUNT, SUBJECT, REQUEST, AT - dt.timedelta(days=1))
    merged = journal.merge([later, same_time_high], [copy, same_time_low], [later])
    # The first source's version of an id wins; ties in time go by id.
    assert merged == [same_time_low, same_time_high, later]
    assert journal.merge() == [] and journal.merge([], [ENTRY]) == [ENTRY]


def test_the_mirror_appends_private_fsynced_lines(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal" / "erasures.jsonl"  # neither directory exists yet
    mirror = ErasureMirror(path, KEY)
    assert mirror.entries() == []
    assert mirror.append([]) == 0 and not path.parent.exists()
    other = JournalEntry.offboarding(ACCOUNT, AT)
    assert mirror.append([ENTRY]) == 1
    assert mirror.append(iter([other, ENTRY])) == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Each line carries its position in the file, continuing across appends.
    lines = [journal.line_of(e, KEY, n) for n, e in enumerate((ENTRY, other, ENTRY), start=1)]
    assert path.read_text() == "".join(lines)
    assert mirror.entries() == [ENTRY, other, ENTRY]
    assert journal.read_file(path, KEY) == [ENTRY, other, ENTRY]
    with pytest.raises(IntegrityFailure):
        ErasureMirror(path, b"j" * 32).entries()


def test_the_mirror_syncs_its_directory_when_it_creates_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Write-ahead (ADR 0008): a new file's name must survive a crash too, so its directory is
    # synced once, when the file is created; every append syncs the file. os.fsync is only
    # watched here (the real one runs).
    synced: list[bool] = []
    real_fsync = os.fsync

    def watched(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(journal.os, "fsync", watched)
    mirror = ErasureMirror(tmp_path / "erasures.jsonl", KEY)
    mirror.append([ENTRY])
    assert sorted(synced) == [False, True]  # the file, then its directory
    synced.clear()
    mirror.append([ENTRY])
    assert synced == [False]


def test_a_missing_or_binary_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="does not exist"):
        journal.read_file(tmp_path / "absent.jsonl", KEY)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValidationFailed, match="is not an erasure journal file"):
        journal.read_file(binary, KEY)


# -- numbered lines: where a file continues, and what it covers ---------------------------


def numbered(*seqs: int | None) -> list[JournalEntry]:
    """Entries as read from a file: ``seq`` None for a line of format 1 or 2."""
    return [
        dataclasses.replace(JournalEntry(uuid.UUID(int=n + 1), ACCOUNT, SUBJECT, None, AT), seq=s)
        for n, s in enumerate(seqs)
    ]


def last_seq_of(path: Path, content: str, tail: int | None = None) -> int:
    path.write_text(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        return journal._last_seq(fd) if tail is None else journal._last_seq(fd, tail)
    finally:
        os.close(fd)


def older_line(n: int) -> str:
    """A line of format 1 (no kind, no seq), as an older version wrote it."""
    fields = {k: v for k, v in fields_of().items() if k not in ("kind", "seq")} | {"v": 1}
    return signed(fields | {"id": str(uuid.UUID(int=n))})


def test_a_file_continues_from_its_last_lines_number(tmp_path: Path) -> None:
    path = tmp_path / "erasures.jsonl"
    assert last_seq_of(path, "") == 0
    # A file whose first lines were cut continues from its last number, not from its count:
    # the gap stays visible to ``covers``.
    cut = journal.line_of(ENTRY, KEY, 5) + journal.line_of(ENTRY, KEY, 6)
    assert last_seq_of(path, cut) == 6
    assert last_seq_of(path, journal.line_of(ENTRY, KEY, 5)) == 5  # one line only
    assert last_seq_of(path, cut + "\n  \n\n") == 6  # blank lines after it are not lines
    assert last_seq_of(path, "\n\n") == 0
    # Lines of an older format, last: their count (blank lines not counted).
    older = older_line(1) + "\n" + older_line(2) + " \n" + older_line(3)
    assert last_seq_of(path, older) == 3
    assert last_seq_of(path, cut + older) == 5
    # A last line that is not JSON (cut short by a crash) or whose seq is not a number: the
    # count of lines.
    assert last_seq_of(path, cut + '{"seq": 9, "acc') == 3
    assert last_seq_of(path, cut + '{"seq": true}\n') == 3
    assert last_seq_of(path, cut + '{"seq": "9"}\n') == 3
    # Only the end of a long file is read for its last line.
    long = "".join(journal.line_of(ENTRY, KEY, n) for n in range(301, 501))
    assert len(long) > 65536
    assert last_seq_of(path, long) == 500
    assert last_seq_of(path, long, tail=len(journal.line_of(ENTRY, KEY, 500)) + 1) == 500
    # The end is counted back from the file's size: a last line across the 64 KiB mark.
    lines = []
    while sum(map(len, lines)) < 65536:
        lines.append(journal.line_of(ENTRY, KEY, 301 + len(lines)))
    assert sum(map(len, lines[:-1])) < 65536 <= sum(map(len, lines)) < 65536 * 2
    assert last_seq_of(path, "".join(lines)) == 300 + len(lines)


@pytest.mark.parametrize("last", ["[1]", "3", "null", "true", '"seq"', "[]"])
def test_a_last_line_that_is_json_but_no_object_is_refused_as_the_replay_refuses_it(
    tmp_path: Path, last: str
) -> None:
    """Hand-edited or damaged: no entry of any format. The mirror neither counts past it nor
    fails with a traceback (it raised AttributeError), it names the line as ``read_file`` does;
    nothing is appended."""
    path = tmp_path / "erasures.jsonl"
    lines = journal.line_of(ENTRY, KEY, 1) + "\n" + journal.line_of(ENTRY, KEY, 2) + last + "\n\n"
    said = rf"^{re.escape(str(path))}, line 4: not an erasure journal entry$"
    with pytest.raises(ValidationFailed, match=r"^the erasure journal, line 4: not an erasure"):
        last_seq_of(path, lines)
    with pytest.raises(ValidationFailed, match=said):
        journal.read_file(path, KEY)
    with pytest.raises(ValidationFailed, match=said):
        ErasureMirror(path, KEY).entries()
    with pytest.raises(ValidationFailed, match=said):
        ErasureMirror(path, KEY).append([ENTRY])
    assert path.read_text() == lines
    # Read from the end only (a long file): the line is still numbered in the whole file.
    with pytest.raises(ValidationFailed, match=r"line 4: "):
        last_seq_of(path, lines, tail=len(last) + 3)


def test_the_mirror_numbers_its_lines_after_those_already_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "erasures.jsonl"
    other = JournalEntry.offboarding(ACCOUNT, AT)
    path.write_text(older_line(1) + older_line(2))
    assert ErasureMirror(path, KEY).append([ENTRY, other]) == 2
    assert [json.loads(x).get("seq") for x in path.read_text().splitlines()] == [None, None, 3, 4]
    path.write_text(journal.line_of(ENTRY, KEY, 41))
    ErasureMirror(path, KEY).append([other])
    assert [e.seq for e in journal.read_file(path, KEY)] == [41, 42]


@pytest.mark.parametrize(
    ("seqs", "anchor", "missing"),
    [
        ((1, 2, 3), None, None),
        ((1,), None, None),
        ((1, 2, 3), 2, None),
        ((1, 2, 3), 3, None),
        ((1, 2, 3), 9, "it does not hold the backup's newest erasure"),
        # An anchor held by none, sorting before every id or after: ids compared by equality.
        ((1, 2, 3), uuid.UUID(int=0), "it does not hold the backup's newest erasure"),
        ((1, 2, 3), uuid.UUID(int=2**128 - 1), "it does not hold the backup's newest erasure"),
        ((4, 5), 1, None),  # lines cut, all older than the backup's newest erasure
        ((4, 5), 2, None),
        ((4, 5), None, "it starts at entry 4, not at the first"),
        ((2,), None, "it starts at entry 2, not at the first"),
        ((None, None, 3, 4), None, None),  # older lines count as lines
        ((None, 2, 3), None, None),
        ((None,) * 300 + (301, 302), None, None),  # positions past 256 compared by value
        ((None, None, 5, 6), None, "it starts at entry 3, not at the first"),
        ((None, 2), 1, None),
        ((None, None, 1, 2), None, "entry 3 is numbered 1, as if the 2 lines before it were not"),
        ((256, 257, 258), 1, None),  # numbers past 256 (not shared objects) compared by value
        ((1, 2, 4), None, "entry 3 is missing"),
        ((1, 2, 6, 7), 1, "entries 3 to 5 are missing"),
        ((4, 6), 1, "entry 5 is missing"),
        ((1, 2, 5), None, "entries 3 to 4 are missing"),
        # A number again, or going back (two files end to end).
        ((1, 2, 2), None, "entry 3 is numbered 2 after 2: numbers go back"),
        ((1, 1), 1, "entry 2 is numbered 1 after 1: numbers go back"),
        ((1, 3, 2), None, "entry 2 is missing"),
        ((1, 2, 3, 1, 2), None, "entry 4 is numbered 1 after 3: numbers go back"),
        ((1, None), None, "entry 2 has no sequence number after numbered entries"),
        ((1, 2, None, 4), None, "entry 3 has no sequence number after numbered entries"),
        ((None, None), None, "its entries carry no sequence numbers (written before format 3)"),
        ((None,), 1, "its entries carry no sequence numbers (written before format 3)"),
        ((), None, "it is empty"),
        ((), 1, "it is empty"),
    ],
)
def test_what_a_journal_covers(
    seqs: tuple[int | None, ...], anchor: int | uuid.UUID | None, missing: str | None
) -> None:
    # The anchor is the id of the entry at that position (from 1), or an id of none.
    if isinstance(anchor, int):
        anchor = uuid.UUID(int=anchor)
    assert journal.covers(numbered(*seqs), anchor) == missing


# -- the journal table -------------------------------------------------------------------


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    with engine.begin() as c:
        yield c
    engine.dispose()


def test_a_database_without_the_journal_table_has_no_entries(conn: Connection) -> None:
    assert journal.read_database(conn) == []


def test_entries_recorded_read_back_from_the_table(conn: Connection) -> None:
    ErasureJournal.__table__.create(conn)  # type: ignore[attr-defined]
    session = Session(bind=conn)
    offboarded = JournalEntry.offboarding(uuid.uuid4(), AT - dt.timedelta(hours=1))
    assert journal.record(session, ENTRY).id == ENTRY_ID
    assert journal.ensure(session, offboarded) is True
    assert journal.ensure(session, offboarded) is False
    assert journal.ensure(session, ENTRY) is False
    session.commit()
    read = journal.read_database(conn)
    assert sorted(read, key=lambda e: e.erased_at) == [offboarded, ENTRY]
    assert all(e.erased_at.tzinfo == dt.UTC for e in read)


def test_a_table_from_before_the_kind_column_holds_subject_erasures(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE erasure_journal (id CHAR(32) PRIMARY KEY, account_id CHAR(32), "
            "subject_id CHAR(32), request_id CHAR(32), erased_at DATETIME)"
        )
    )
    conn.execute(
        text("INSERT INTO erasure_journal VALUES (:i, :a, :s, NULL, '2027-01-04 09:30:00')"),
        {"i": ENTRY_ID.hex, "a": ACCOUNT.hex, "s": SUBJECT.hex},
    )
    assert journal.read_database(conn) == [
        JournalEntry(ENTRY_ID, ACCOUNT, SUBJECT, None, AT, "subject")
    ]
