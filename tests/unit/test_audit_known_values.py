"""The audit chain's formats are promises: an auditor re-checks the log with their own tools.

Every expected value here was written by hand or computed once with ``hashlib`` and
``cryptography`` directly (never through ``permanence``), and is pasted as a literal: a change
of byte order, separator, key order or message layout breaks these tests, even if the code
stays consistent with itself. The format is described in docs/architecture.md (audit log).

The chain is built by hand in a SQLite database holding only the three audit tables, so
``verify`` is exercised without the rest of the application: in memory (walked in one
process) and in a file (walked in two, ADR 0042, whenever it is at least two entries long).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, delete, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from permanence.audit import chain, integrity
from permanence.audit import service as audit
from permanence.audit.model import GENESIS_HASH, AuditCheckpoint, AuditEntry, AuditHead

ACCOUNT = "11111111-1111-4111-8111-111111111111"
USER = "22222222-2222-4222-8222-222222222222"
SUBJECT = "33333333-3333-4333-8333-333333333333"

# Canonical bodies, written by hand: keys sorted, no spaces, ASCII only.
BODIES = [
    '{"account":null,"action":"account.create","actor":null,"details":{},'
    f'"object":"account:{ACCOUNT}","reason":"test","role":"system","subject":null,'
    '"ts":"2027-01-04T09:00:00+00:00"}',
    f'{{"account":"{ACCOUNT}","action":"caller.read","actor":"{USER}","actor_kind":"user",'
    '"details":{"fields":2},"object":"caller:x","reason":"call.answer","role":"agent",'
    f'"subject":"{SUBJECT}","ts":"2027-01-04T09:01:30.250000+00:00"}}',
    f'{{"account":"{ACCOUNT}","action":"message.create","actor":"{USER}","actor_kind":"user",'
    '"details":{},"object":"message","reason":"call.answer","role":"agent","subject":null,'
    '"ts":"2027-01-04T09:02:00+00:00"}',
]
# sha256(prev_hash as 32 bytes || seq as 8 bytes big-endian || body as UTF-8), by hashlib.
HASHES = [
    "564e6957231d59c50aa9199696ce4e3edd5ace614f95c81c57bcdee3bcee6301",
    "2d80ed9c148a200f12ad91c2a258e9d15e45a44293abae000ecf849d04422355",
    "fea82ab0093ecb08009f22622580b375eb41875e233f9f5e514f3cadf8239a5a",
]
TIMES = [
    dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC),
    dt.datetime(2027, 1, 4, 9, 1, 30, 250000, tzinfo=dt.UTC),
    dt.datetime(2027, 1, 4, 9, 2, tzinfo=dt.UTC),
]
ACTIONS = ["account.create", "caller.read", "message.create"]
ACTORS = [None, uuid.UUID(USER), uuid.UUID(USER)]
SUBJECTS = [None, uuid.UUID(SUBJECT), None]

# RFC 8032 Ed25519 is deterministic: this key signs each message to exactly one signature.
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC_B64 = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
CREATED = "2027-01-04T10:00:00+00:00"
# Ed25519 over b"permanence-audit-checkpoint|<seq>|<head hash>|<created_at>".
SIGNATURES = {
    1: "3Vv/72GQg0l0ZvApoqmwP387YzfPQP0gFgP/4pgs3ifMHDLxwMPnmh/WrNT3Y7sJpPno2WH2DNjExy++kw4VCw==",
    2: "LQmQl/xSf1Ej6N3M3I1g/j8Aq4xs35wsJ8owqheC3AGt/JdRkiwxVGLlkWjgw5dyLQSscM8IJLR067KusBWDBg==",
    3: "3VW2wAUimvjzS3i65192NELxNUJrXr++6H+nkQ64cKCyOVnK5c0r1X80s9Y0uo/DS+vHoeqZtxASKFojYDX1Bw==",
}


def checkpoint(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "head_hash": HASHES[seq - 1],
        "created_at": CREATED,
        "signature": SIGNATURES[seq],
    }


# --- formats ---------------------------------------------------------------------------------


def test_genesis_is_thirty_two_zero_bytes() -> None:
    assert GENESIS_HASH == "00" * 32


def test_entry_hash_of_a_fixed_chain() -> None:
    prev = GENESIS_HASH
    for seq, (body, expected) in enumerate(zip(BODIES, HASHES, strict=True), start=1):
        assert audit.entry_hash(prev, seq, body) == expected
        prev = expected
    # The construction, spelt out independently: 32 raw bytes, 8-byte big-endian seq, UTF-8.
    raw = bytes.fromhex(HASHES[0]) + (2).to_bytes(8, "big") + BODIES[1].encode("utf-8")
    assert hashlib.sha256(raw).hexdigest() == HASHES[1]


def test_entry_hash_binds_the_sequence_number_and_the_link() -> None:
    assert audit.entry_hash(GENESIS_HASH, 2, BODIES[0]) != HASHES[0]
    assert audit.entry_hash(HASHES[1], 1, BODIES[0]) != HASHES[0]
    # seq 256 needs the second byte of the 8: a 1-byte or little-endian encoding differs.
    # sha256(32 zero bytes || 00 00 00 00 00 00 01 00 || "{}"), computed by hashlib alone.
    assert (
        audit.entry_hash(GENESIS_HASH, 256, "{}")
        == "1da4f9354a4dd32189ccf8529032849734472b5f0d8db2d31fd07a51f60f0ddc"
    )


def test_canonical_body_is_sorted_compact_ascii_json() -> None:
    body = {
        "ts": "2027-01-04T09:00:00+00:00",
        "details": {"b": 2, "a": True, "c": None},
        "action": "caller.read",
        "object": "caller:Hélène",
    }
    assert audit.canonical(body) == (
        '{"action":"caller.read","details":{"a":true,"b":2,"c":null},'
        '"object":"caller:H\\u00e9l\\u00e8ne","ts":"2027-01-04T09:00:00+00:00"}'
    )


def test_checkpoint_message_bytes() -> None:
    assert integrity._message(3, HASHES[2], CREATED) == (
        b"permanence-audit-checkpoint|3|"
        b"fea82ab0093ecb08009f22622580b375eb41875e233f9f5e514f3cadf8239a5a|"
        b"2027-01-04T10:00:00+00:00"
    )


def test_public_key_is_raw_32_bytes_in_base64() -> None:
    assert integrity.public_key_b64(SIGNING_KEY.public_key()) == PUBLIC_B64
    assert len(base64.b64decode(PUBLIC_B64)) == 32


def test_a_checkpoint_signed_elsewhere_is_accepted() -> None:
    public = SIGNING_KEY.public_key()
    for seq in SIGNATURES:
        assert integrity._signature_ok(public, checkpoint(seq))
    # The numbers may come back from JSON as strings: the message is built from their text.
    assert integrity._signature_ok(public, dict(checkpoint(2), seq="2"))


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 3},
        {"head_hash": HASHES[0]},
        {"created_at": "2027-01-04T10:00:01+00:00"},
        {"signature": SIGNATURES[3]},
        {"signature": "not base64!"},
        {"signature": base64.b64encode(b"short").decode()},
        {"seq": "two"},
    ],
)
def test_a_checkpoint_that_does_not_match_its_signature_is_refused(
    change: dict[str, Any],
) -> None:
    assert not integrity._signature_ok(SIGNING_KEY.public_key(), dict(checkpoint(2), **change))


@pytest.mark.parametrize("missing", ["seq", "head_hash", "created_at", "signature"])
def test_a_checkpoint_missing_a_field_is_refused_without_raising(missing: str) -> None:
    cp = checkpoint(2)
    del cp[missing]
    assert not integrity._signature_ok(SIGNING_KEY.public_key(), cp)


def test_another_key_does_not_vouch_for_a_checkpoint() -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
    assert not integrity._signature_ok(other, checkpoint(2))


# --- indexed columns against the hashed body ---------------------------------------------------


def test_columns_that_copy_the_body_agree() -> None:
    for i in range(3):
        assert (
            integrity._column_differing(BODIES[i], TIMES[i], ACTIONS[i], ACTORS[i], SUBJECTS[i])
            is None
        )


@pytest.mark.parametrize(
    ("args", "column"),
    [
        (
            (
                BODIES[1],
                TIMES[1] + dt.timedelta(microseconds=1),
                ACTIONS[1],
                ACTORS[1],
                SUBJECTS[1],
            ),
            "ts",
        ),
        ((BODIES[1], TIMES[1].replace(tzinfo=None), ACTIONS[1], ACTORS[1], SUBJECTS[1]), "ts"),
        (
            (
                BODIES[1].replace("+00:00", ""),
                TIMES[1].replace(tzinfo=None),
                ACTIONS[1],
                ACTORS[1],
                SUBJECTS[1],
            ),
            "ts",
        ),
        ((BODIES[1], TIMES[1], "subject.export", ACTORS[1], SUBJECTS[1]), "action"),
        ((BODIES[1], TIMES[1], ACTIONS[1], None, SUBJECTS[1]), "actor_id"),
        ((BODIES[1], TIMES[1], ACTIONS[1], uuid.UUID(SUBJECT), SUBJECTS[1]), "actor_id"),
        ((BODIES[0], TIMES[0], ACTIONS[0], uuid.UUID(USER), None), "actor_id"),
        ((BODIES[1], TIMES[1], ACTIONS[1], ACTORS[1], None), "subject_id"),
        ((BODIES[2], TIMES[2], ACTIONS[2], ACTORS[2], uuid.UUID(SUBJECT)), "subject_id"),
        (("not json", TIMES[1], ACTIONS[1], ACTORS[1], SUBJECTS[1]), "body"),
        (('{"ts":"yesterday"}', TIMES[1], ACTIONS[1], ACTORS[1], SUBJECTS[1]), "body"),
        (("[1]", TIMES[1], ACTIONS[1], ACTORS[1], SUBJECTS[1]), "body"),
    ],
)
def test_the_first_column_that_differs_is_named(args: tuple[Any, ...], column: str) -> None:
    assert integrity._column_differing(*args) == column


def test_the_anchor_hash_is_the_second_half_of_the_anchor() -> None:
    assert integrity.prev_at_anchor((7, HASHES[2])) == HASHES[2]
    assert integrity.prev_at_anchor(None) is None


# --- verify over a chain written by hand --------------------------------------------------------


@pytest.fixture(params=["one process", "two processes"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """The hand-written chain; ``_verify`` walks it in two processes when it is in a file."""
    in_file = request.param == "two processes"
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}" if in_file else "sqlite://")
    tables = [AuditEntry.__table__, AuditHead.__table__, AuditCheckpoint.__table__]
    AuditEntry.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    with Session(engine) as s:
        prev = GENESIS_HASH
        for i in range(3):
            s.add(
                AuditEntry(
                    seq=i + 1,
                    ts=TIMES[i],
                    action=ACTIONS[i],
                    actor_id=ACTORS[i],
                    subject_id=SUBJECTS[i],
                    body=BODIES[i],
                    prev_hash=prev,
                    hash=HASHES[i],
                )
            )
            prev = HASHES[i]
        s.add(AuditHead(id=1, seq=3, hash=HASHES[2]))
        s.commit()
        yield s
    engine.dispose()


def _verify(s: Session, external: list[dict[str, Any]] | None = None, batch: int = 5000) -> Any:
    """``verify``, in two processes as soon as the chain has two entries in a SQLite file."""
    return integrity.verify(s, SIGNING_KEY.public_key(), external or [], batch=batch, split_at=2)


def _store(s: Session, seq: int) -> None:
    s.add(
        AuditCheckpoint(
            seq=seq,
            head_hash=HASHES[seq - 1],
            created_at=dt.datetime.fromisoformat(CREATED),
            public_key=PUBLIC_B64,
            signature=SIGNATURES[seq],
        )
    )
    s.commit()


@pytest.mark.parametrize("batch", [1, 2, 5000])
def test_the_hand_written_chain_verifies_in_any_batch_size(session: Session, batch: int) -> None:
    result = _verify(session, batch=batch)
    assert result == integrity.VerifyResult(True, 3, 3)
    assert result.line() == "audit chain intact: 3 entries, head at 3, 0 checkpoint(s) matched"


def test_stored_and_exported_checkpoints_are_each_matched(session: Session) -> None:
    _store(session, 1)
    result = _verify(session, [checkpoint(2), checkpoint(3)])
    assert result.ok and result.checkpoints == 3
    assert _verify(session).checkpoints == 1


def test_an_empty_log_verifies_as_empty() -> None:
    engine = create_engine("sqlite://")
    tables = [AuditEntry.__table__, AuditHead.__table__, AuditCheckpoint.__table__]
    AuditEntry.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    with Session(engine) as s:
        assert _verify(s) == integrity.VerifyResult(True, 0, 0)
    engine.dispose()


def test_a_gap_is_named_at_the_missing_entry(session: Session) -> None:
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    session.commit()
    result = _verify(session)
    assert (result.ok, result.entries, result.head_seq, result.broken_seq, result.column) == (
        False,
        1,
        1,
        2,
        "seq",
    )
    assert result.line() == "audit chain BROKEN at entry 2: entry missing (gap in sequence)"


@pytest.mark.parametrize(
    ("values", "column", "problem"),
    [
        (
            {"prev_hash": HASHES[0][::-1]},
            "prev_hash",
            "column prev_hash: previous-hash link does not match",
        ),
        (
            {"body": BODIES[1].replace('"fields":2', '"fields":3')},
            "body",
            "column body or hash: content does not match its hash",
        ),
        ({"hash": HASHES[2]}, "body", "column body or hash: content does not match its hash"),
        ({"hash": "00" * 32}, "body", "column body or hash: content does not match its hash"),
        ({"action": "subject.export"}, "action", "column action differs from the hashed body"),
        ({"subject_id": None}, "subject_id", "column subject_id differs from the hashed body"),
    ],
)
def test_an_altered_column_of_entry_two_is_named(
    session: Session, values: dict[str, Any], column: str, problem: str
) -> None:
    session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(**values))
    session.commit()
    result = _verify(session)
    assert (result.ok, result.entries, result.head_seq, result.broken_seq) == (False, 1, 1, 2)
    assert (result.column, result.problem) == (column, problem)


def test_a_removed_tail_is_found_against_the_head(session: Session) -> None:
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    session.commit()
    result = _verify(session)
    assert (result.ok, result.entries, result.head_seq, result.broken_seq) == (False, 2, 2, 3)
    assert result.problem == "entries after the last one were removed"


def test_a_head_pointing_elsewhere_is_found(session: Session) -> None:
    session.execute(update(AuditHead).values(hash=HASHES[1]))
    session.commit()
    assert _verify(session).problem == "entries after the last one were removed"


def test_a_checkpoint_beyond_the_head_is_found(session: Session) -> None:
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    session.execute(update(AuditHead).values(seq=2, hash=HASHES[1]))
    session.commit()
    assert _verify(session).ok
    result = _verify(session, [checkpoint(3)])
    assert (result.ok, result.broken_seq) == (False, 3)
    assert result.problem == "checkpoint at 3 is beyond the chain head"


def test_a_checkpoint_the_chain_does_not_match_is_found(session: Session) -> None:
    # A signed checkpoint for seq 2 whose head hash is not the chain's: signed by hand here.
    created = "2027-01-04T11:00:00+00:00"
    wrong = "ab" * 32
    sig = SIGNING_KEY.sign(f"permanence-audit-checkpoint|2|{wrong}|{created}".encode())
    cp = {
        "seq": 2,
        "head_hash": wrong,
        "created_at": created,
        "signature": base64.b64encode(sig).decode(),
    }
    result = _verify(session, [checkpoint(1), cp])
    assert (result.ok, result.broken_seq) == (False, 2)
    assert result.problem == "chain differs from a signed checkpoint (rewritten)"


def test_a_stored_checkpoint_with_a_bad_signature_is_refused(session: Session) -> None:
    _store(session, 2)
    session.execute(update(AuditCheckpoint).values(signature=SIGNATURES[3]))
    session.commit()
    result = _verify(session)
    assert (result.ok, result.broken_seq) == (False, 2)
    assert result.problem == "checkpoint signature is not valid"


class _Keyring:
    def checkpoint_signing_key(self) -> Ed25519PrivateKey:
        return SIGNING_KEY


def test_create_checkpoint_signs_the_head_in_the_documented_format(session: Session) -> None:
    cp = integrity.create_checkpoint(session, _Keyring())  # type: ignore[arg-type]
    assert set(cp) == {"seq", "head_hash", "created_at", "public_key", "signature"}
    assert (cp["seq"], cp["head_hash"], cp["public_key"]) == (3, HASHES[2], PUBLIC_B64)
    created = dt.datetime.fromisoformat(cp["created_at"])
    assert created.utcoffset() == dt.timedelta(0)
    message = f"permanence-audit-checkpoint|3|{HASHES[2]}|{cp['created_at']}".encode()
    SIGNING_KEY.public_key().verify(base64.b64decode(cp["signature"]), message)
    session.commit()
    stored = session.get(AuditCheckpoint, 3)
    assert stored is not None
    assert (stored.head_hash, stored.public_key, stored.signature) == (
        HASHES[2],
        PUBLIC_B64,
        cp["signature"],
    )
    # Asked again for the same head, it returns the stored statement, not a second one.
    again = integrity.create_checkpoint(session, _Keyring())  # type: ignore[arg-type]
    assert again == cp
    assert _verify(session).checkpoints == 1


def test_create_checkpoint_refuses_an_empty_log() -> None:
    engine = create_engine("sqlite://")
    tables = [AuditEntry.__table__, AuditHead.__table__, AuditCheckpoint.__table__]
    AuditEntry.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    with Session(engine) as s:
        with pytest.raises(ValueError, match="empty"):
            integrity.create_checkpoint(s, _Keyring())  # type: ignore[arg-type]
        s.add(AuditHead(id=1, seq=0, hash=GENESIS_HASH))
        s.commit()
        with pytest.raises(ValueError, match="empty"):
            integrity.create_checkpoint(s, _Keyring())  # type: ignore[arg-type]
    engine.dispose()


# --- both directions of every comparison --------------------------------------------------------
# A tampered value may sort before or after the true one: each check is tried both ways.


@pytest.mark.parametrize("wrong", ["00" * 32, "ff" * 32])
def test_a_wrong_link_is_found_whichever_way_it_sorts(session: Session, wrong: str) -> None:
    session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(prev_hash=wrong))
    session.commit()
    assert (_verify(session).broken_seq, _verify(session).column) == (2, "prev_hash")


@pytest.mark.parametrize(
    ("seq", "digest"), [(2, HASHES[2]), (4, HASHES[2]), (3, "00" * 32), (3, "ff" * 32)]
)
def test_a_head_that_is_not_the_last_entry_is_found(
    session: Session, seq: int, digest: str
) -> None:
    session.execute(update(AuditHead).values(seq=seq, hash=digest))
    session.commit()
    result = _verify(session)
    assert (result.ok, result.entries, result.head_seq, result.broken_seq) == (False, 3, 3, 4)
    assert result.problem == "entries after the last one were removed"


@pytest.mark.parametrize("action", ["account.create", "subject.export"])
def test_an_action_column_is_found_whichever_way_it_sorts(action: str) -> None:
    args = (BODIES[1], TIMES[1], action, ACTORS[1], SUBJECTS[1])
    assert integrity._column_differing(*args) == "action"


@pytest.mark.parametrize("wrong", ["00" * 32, "ff" * 32])
def test_a_checkpoint_is_compared_whichever_way_its_hash_sorts(
    session: Session, wrong: str
) -> None:
    result = _verify(session, [_signed(2, wrong)])
    assert (result.ok, result.broken_seq) == (False, 2)
    assert result.problem == "chain differs from a signed checkpoint (rewritten)"


def _signed(seq: int, head_hash: str, created: str = CREATED) -> dict[str, Any]:
    """A checkpoint signed here, over the message format spelt out by hand."""
    message = f"permanence-audit-checkpoint|{seq}|{head_hash}|{created}".encode()
    signature = base64.b64encode(SIGNING_KEY.sign(message)).decode()
    return {"seq": seq, "head_hash": head_hash, "created_at": created, "signature": signature}


def test_beyond_the_head_names_the_entry_after_the_last(session: Session) -> None:
    result = _verify(session, [_signed(5, "ab" * 32)])
    assert (result.ok, result.entries, result.head_seq, result.broken_seq) == (False, 3, 3, 4)
    assert result.problem == "checkpoint at 5 is beyond the chain head"


# --- a chain pruned behind a signed anchor (audit/retention.py) -------------------------------

PRUNE_BODY = (
    '{"account":null,"action":"audit.prune","actor":null,"details":{"through":2},'
    '"object":"audit_log","reason":"retention","role":"system","subject":null,'
    '"ts":"2027-01-04T09:03:00+00:00"}'
)
PRUNE_HASH = "9e37fb9e944e267d9706c196382f7d1e2449f59e229f08ce97764d3a609690b0"


@pytest.fixture
def pruned(session: Session) -> Session:
    """Entries 1-2 pruned behind the checkpoint at 2; entry 4 records the pruning."""
    session.add(
        AuditEntry(
            seq=4,
            ts=dt.datetime(2027, 1, 4, 9, 3, tzinfo=dt.UTC),
            action="audit.prune",
            actor_id=None,
            subject_id=None,
            body=PRUNE_BODY,
            prev_hash=HASHES[2],
            hash=PRUNE_HASH,
        )
    )
    session.execute(update(AuditHead).values(seq=4, hash=PRUNE_HASH))
    session.commit()
    _store(session, 2)
    session.execute(delete(AuditEntry).where(AuditEntry.seq <= 2))
    session.commit()
    return session


def test_the_prune_entry_hash_is_known() -> None:
    assert audit.entry_hash(HASHES[2], 4, PRUNE_BODY) == PRUNE_HASH


def test_a_pruned_chain_verifies_from_its_anchor(pruned: Session) -> None:
    result = _verify(pruned)
    assert result == integrity.VerifyResult(True, 2, 4, checkpoints=1, pruned_through=2)
    assert result.line() == (
        "audit chain intact: 2 entries, head at 4, 1 checkpoint(s) matched (from the signed "
        "anchor at 2: earlier entries pruned by the retention policy)"
    )


def test_a_pruned_chain_is_split_by_the_entries_it_holds(
    pruned: Session, halves: list[chain.Walk | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries 3 and 4 behind the anchor at 2: two entries, split from ``split_at`` 2, the
    second process walking entry 3 from the anchor's hash, this one entry 4 (an odd middle:
    the second half starts at middle + 1, not middle | 1)."""
    started: list[tuple[Any, ...]] = []
    real = chain.start_range

    def spy(*args: Any) -> Any:
        started.append(args[1:4])
        return real(*args)

    monkeypatch.setattr(chain, "start_range", spy)
    public = SIGNING_KEY.public_key()
    expected = integrity.VerifyResult(True, 2, 4, checkpoints=1, pruned_through=2)
    assert integrity.verify(pruned, public, split_at=3) == expected
    assert started == []
    assert integrity.verify(pruned, public, split_at=2) == expected
    in_file = bool(pruned.get_bind().url.database)
    assert started == ([(2, 3, HASHES[1])] if in_file else [])
    walked = halves[-1]
    assert (walked is not None) is in_file  # the halves met: not walked again in one


def test_checkpoints_before_the_anchor_are_checked_for_signature_then_skipped(
    pruned: Session,
) -> None:
    # 1 is before the anchor (its entries are gone), 2 is the anchor, 3 and 4 are live.
    result = _verify(pruned, [checkpoint(1), checkpoint(3), _signed(4, PRUNE_HASH)])
    assert (result.ok, result.checkpoints) == (True, 3)
    forged = dict(checkpoint(1), head_hash=HASHES[1])
    assert _verify(pruned, [forged]).problem == "checkpoint signature is not valid"


@pytest.mark.parametrize("wrong", ["00" * 32, "ff" * 32])
def test_a_checkpoint_at_the_anchor_must_agree_with_it(pruned: Session, wrong: str) -> None:
    result = _verify(pruned, [_signed(2, wrong)])
    assert (result.ok, result.entries, result.head_seq, result.broken_seq) == (False, 2, 4, 2)
    assert result.problem == "chain differs from a signed checkpoint (rewritten)"


def test_entries_missing_with_no_anchor_stop_verification(session: Session) -> None:
    session.execute(delete(AuditEntry).where(AuditEntry.seq == 1))
    session.commit()
    result = _verify(session)
    assert result == integrity.VerifyResult(
        False, 0, 0, 1, "entries before 2 are missing and no signed anchor is at 1"
    )


# --- beyond small integers ---------------------------------------------------------------------
# CPython shares the integer objects up to 256: a chain longer than that catches "is" written
# for "==" on sequence numbers.


Entry = tuple[dt.datetime, str, uuid.UUID | None, uuid.UUID | None, str]


def _add_chained(s: Session, entries: Iterable[Entry]) -> list[str]:
    """Entries 1.. (ts, action, actor, subject, body) linked and hashed by hashlib alone, and
    the head on the last; not committed. Their hashes, in order."""
    prev, hashes = GENESIS_HASH, []
    for seq, (ts, action, actor, subject, body) in enumerate(entries, 1):
        digest = hashlib.sha256(bytes.fromhex(prev) + seq.to_bytes(8, "big") + body.encode())
        s.add(
            AuditEntry(
                seq=seq,
                ts=ts,
                action=action,
                actor_id=actor,
                subject_id=subject,
                body=body,
                prev_hash=prev,
                hash=digest.hexdigest(),
            )
        )
        prev = digest.hexdigest()
        hashes.append(prev)
    s.merge(AuditHead(id=1, seq=len(hashes), hash=prev))
    return hashes


def _long_chain(s: Session, n: int) -> list[str]:
    """Entries 1..n, the last an audit.prune through n - 2; hashes by hashlib alone."""

    def entry(seq: int) -> Entry:
        ts = dt.datetime(2027, 1, 4, tzinfo=dt.UTC) + dt.timedelta(seconds=seq)
        action = "audit.prune" if seq == n else "caller.read"
        details = f'{{"through":{n - 2}}}' if seq == n else "{}"
        body = (
            f'{{"account":null,"action":"{action}","actor":null,"details":{details},'
            f'"object":"x","reason":"test","role":"system","subject":null,'
            f'"ts":"{ts.isoformat()}"}}'
        )
        return ts, action, None, None, body

    hashes = _add_chained(s, map(entry, range(1, n + 1)))
    s.commit()
    return hashes


@pytest.mark.parametrize("in_file", [False, True], ids=["one process", "two processes"])
def test_a_chain_of_three_hundred_entries_verifies_and_prunes(
    in_file: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[Any, ...]] = []
    real = chain.start_range

    def spy(*args: Any) -> Any:
        started.append(args[1:4])
        return real(*args)

    monkeypatch.setattr(chain, "start_range", spy)
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}" if in_file else "sqlite://")
    tables = [AuditEntry.__table__, AuditHead.__table__, AuditCheckpoint.__table__]
    AuditEntry.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    with Session(engine) as s:
        hashes = _long_chain(s, 301)
        assert _verify(s, batch=128) == integrity.VerifyResult(True, 301, 301)
        # An odd anchor: the entry after it is anchor + 1, not anchor ^ 1 or anchor | 1.
        anchor = _signed(299, hashes[298])
        s.add(
            AuditCheckpoint(
                seq=299,
                head_hash=hashes[298],
                created_at=dt.datetime.fromisoformat(CREATED),
                public_key=PUBLIC_B64,
                signature=anchor["signature"],
            )
        )
        s.execute(delete(AuditEntry).where(AuditEntry.seq <= 299))
        s.commit()
        result = _verify(s, [_signed(300, hashes[299])])
        assert result == integrity.VerifyResult(True, 2, 301, checkpoints=2, pruned_through=299)
    engine.dispose()
    # In a file, split in the middle each time: of 301 entries, then of the two after 299.
    assert started == ([(0, 150, GENESIS_HASH), (299, 300, hashes[298])] if in_file else [])


def test_create_checkpoint_reads_the_head_under_lock(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SELECT … FOR UPDATE (a no-op on SQLite, a lock on PostgreSQL): an append running at the
    same time cannot move the head between reading it and signing it."""
    asked: list[dict[str, Any]] = []
    real_get = Session.get

    def spy(self: Session, entity: Any, ident: Any, **kw: Any) -> Any:
        if entity is AuditHead:
            asked.append(kw)
        return real_get(self, entity, ident, **kw)

    monkeypatch.setattr(Session, "get", spy)
    integrity.create_checkpoint(session, _Keyring())  # type: ignore[arg-type]
    assert asked and all(kw.get("with_for_update") is True for kw in asked)


# --- a chain walked in two processes (ADR 0042) --------------------------------------------------
# The second process walks entries 1 to 20 of a 40-entry chain in a SQLite file, this one 21 to
# 40: every fault, on either side of the seam or on it, is named exactly as when the chain is
# walked in one.

LONG = 40
MIDDLE = LONG // 2


def _ids(seq: int) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """Actor and subject of entry ``seq``: some with ids, some without."""
    actor = uuid.UUID(int=seq * 7919) if seq % 3 else None
    return actor, uuid.UUID(int=seq * 104729) if seq % 4 else None


@pytest.fixture
def long_chain(tmp_path: Path) -> Iterator[tuple[Session, list[str]]]:
    """Entries 1..LONG in a SQLite file, hashed by hashlib alone; stamped with microseconds
    (the quick test passes) except every fifth, on the whole second (checked field by field,
    found fine). The file's folder has in its name what a URI would read otherwise."""
    folder = tmp_path / "a ?b#c%41d"
    folder.mkdir()
    engine = create_engine(URL.create("sqlite", database=str(folder / "audit.db")))
    tables = [AuditEntry.__table__, AuditHead.__table__, AuditCheckpoint.__table__]
    AuditEntry.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]

    def entry(seq: int) -> Entry:
        ts = dt.datetime(2027, 1, 4, tzinfo=dt.UTC) + dt.timedelta(
            seconds=seq, microseconds=0 if seq % 5 == 0 else seq * 1001
        )
        action = "caller.read" if seq % 2 else "message.create"
        actor, subject = _ids(seq)
        actor_j = f'"{actor}"' if actor else "null"
        subject_j = f'"{subject}"' if subject else "null"
        body = (
            f'{{"account":null,"action":"{action}","actor":{actor_j},"details":{{}},'
            f'"object":"x","reason":"test","role":"agent","subject":{subject_j},'
            f'"ts":"{ts.isoformat()}"}}'
        )
        return ts, action, actor, subject, body

    with Session(engine) as s:
        hashes = _add_chained(s, map(entry, range(1, LONG + 1)))
        s.commit()
        yield s, hashes
    engine.dispose()


def _both(s: Session, external: list[dict[str, Any]] | None = None) -> Any:
    """The result walked in two processes, which must be the one walked in one."""
    public = SIGNING_KEY.public_key()
    split = integrity.verify(s, public, external or [], batch=7, split_at=2)
    assert split == integrity.verify(s, public, external or [], batch=7, split_at=LONG + 1)
    return split


@pytest.fixture
def halves(monkeypatch: pytest.MonkeyPatch) -> list[chain.Walk | None]:
    """What each two-process walk returned: a walk when both halves held and met, None when
    the chain was then walked again in one."""
    seen: list[chain.Walk | None] = []
    real = integrity._walked_in_two

    def spy(*args: Any) -> chain.Walk | None:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(integrity, "_walked_in_two", spy)
    return seen


def test_an_intact_long_chain_is_walked_in_two_processes_that_meet(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s, hashes = long_chain
    cps = [_signed(seq, hashes[seq - 1]) for seq in (1, MIDDLE - 1, MIDDLE, MIDDLE + 1, LONG)]
    public = SIGNING_KEY.public_key()
    checked: list[int] = []
    real = integrity._column_differing_at

    def field_by_field(session: Session, seq: int) -> str | None:
        checked.append(seq)
        return real(session, seq)

    monkeypatch.setattr(integrity, "_column_differing_at", field_by_field)
    result = integrity.verify(s, public, cps, batch=7, split_at=2)
    assert result == integrity.VerifyResult(True, LONG, LONG, checkpoints=5)
    # Only the entries stamped on the whole second miss the quick test, in either half.
    assert sorted(checked) == list(range(5, LONG + 1, 5))
    walked = halves[0]
    assert walked is not None  # the halves met: not walked again in one
    assert (walked.count, walked.last, walked.prev) == (LONG, LONG, hashes[-1])
    assert walked.hashes_at == {seq: hashes[seq - 1] for seq in (1, 19, 20, 21, 40)}
    # From the threshold on, in two; below it, in one.
    assert integrity.verify(s, public, cps, split_at=LONG) == result
    assert halves[1] is not None
    assert integrity.verify(s, public, cps, split_at=LONG + 1) == result
    assert halves[2:] == [None]


def test_the_second_process_is_given_none_of_the_applications_settings(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERMANENCE_MASTER_KEY", "not for the second process")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    started: list[dict[str, Any]] = []
    real = subprocess.Popen

    def spy(*args: Any, **kw: Any) -> Any:
        started.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(subprocess, "Popen", spy)
    assert _both(long_chain[0]).ok
    assert halves[0] is not None and len(started) == 1
    assert "PERMANENCE_MASTER_KEY" not in started[0]["env"]
    assert started[0]["env"]["UNRELATED_SETTING"] == "kept"


def test_a_rewritten_first_half_is_caught_by_a_checkpoint_it_holds(
    long_chain: tuple[Session, list[str]],
) -> None:
    s, _ = long_chain
    result = _both(s, [_signed(MIDDLE - 5, "ab" * 32)])
    assert (result.ok, result.broken_seq) == (False, MIDDLE - 5)
    assert result.problem == "chain differs from a signed checkpoint (rewritten)"


# Two entries trade places (their rows unchanged otherwise); statements split on ";".
_SWAP = (
    "UPDATE audit_log SET seq = -1 WHERE seq = {a}; UPDATE audit_log SET seq = {a} WHERE seq = {b};"
    " UPDATE audit_log SET seq = {b} WHERE seq = -1"
)


@pytest.mark.parametrize(
    ("sql", "broken", "column", "problem"),
    [
        # the last entry of the first half, the first of the second, and their link
        (
            f"UPDATE audit_log SET body = replace(body, 'test', 'tset') WHERE seq = {MIDDLE}",
            MIDDLE,
            "body",
            "column body or hash: content does not match its hash",
        ),
        (
            f"UPDATE audit_log SET hash = '{'00' * 32}' WHERE seq = {MIDDLE}",
            MIDDLE,
            "body",
            "column body or hash: content does not match its hash",
        ),
        (
            f"UPDATE audit_log SET prev_hash = '{'ff' * 32}' WHERE seq = {MIDDLE + 1}",
            MIDDLE + 1,
            "prev_hash",
            "column prev_hash: previous-hash link does not match",
        ),
        (
            f"UPDATE audit_log SET prev_hash = 'not hex' WHERE seq = {MIDDLE + 1}",
            MIDDLE + 1,
            "prev_hash",
            "column prev_hash: previous-hash link does not match",
        ),
        (
            f"UPDATE audit_log SET body = replace(body, 'test', 'tset') WHERE seq = {MIDDLE + 1}",
            MIDDLE + 1,
            "body",
            "column body or hash: content does not match its hash",
        ),
        # removed: on the seam, on either side of it, far from it
        (f"DELETE FROM audit_log WHERE seq = {MIDDLE}", MIDDLE, "seq", None),
        (f"DELETE FROM audit_log WHERE seq = {MIDDLE + 1}", MIDDLE + 1, "seq", None),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "seq", None),
        ("DELETE FROM audit_log WHERE seq = 33", 33, "seq", None),
        # reordered: across the seam, and within each half
        (_SWAP.format(a=MIDDLE, b=MIDDLE + 1), MIDDLE, "prev_hash", None),
        (_SWAP.format(a=4, b=5), 4, "prev_hash", None),
        (_SWAP.format(a=30, b=31), 30, "prev_hash", None),
        # a copied column, in the first half (checked here after the second process listed
        # it) and in the second
        (
            f"UPDATE audit_log SET action = 'subject.export' WHERE seq = {MIDDLE}",
            MIDDLE,
            "action",
            "column action differs from the hashed body",
        ),
        (
            f"UPDATE audit_log SET subject_id = NULL WHERE seq = {MIDDLE - 2}",
            MIDDLE - 2,
            "subject_id",
            "column subject_id differs from the hashed body",
        ),
        (
            f"UPDATE audit_log SET actor_id = NULL WHERE seq = {MIDDLE + 2}",
            MIDDLE + 2,
            "actor_id",
            "column actor_id differs from the hashed body",
        ),
    ],
)
def test_a_fault_on_either_side_of_the_seam_is_named_as_when_walked_in_one(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    sql: str,
    broken: int,
    column: str,
    problem: str | None,
) -> None:
    s, _ = long_chain
    for statement in sql.split(";"):
        s.execute(text(statement))
    s.commit()
    result = _both(s)
    assert (result.ok, result.broken_seq, result.column) == (False, broken, column)
    assert (result.entries, result.head_seq) == (broken - 1, broken - 1)
    expected = problem or (
        "entry missing (gap in sequence)"
        if column == "seq"
        else "column prev_hash: previous-hash link does not match"
    )
    assert result.problem == expected
    assert halves[0] is None  # the halves did not vouch for it: walked again in one


def _rehash_from(s: Session, first: int, link: str) -> None:
    """Entries ``first``..LONG hashed again from ``link`` (bodies unchanged), the head moved
    with them: a rewrite that holds together from ``first`` on."""
    prev = link
    for entry in s.scalars(select(AuditEntry).where(AuditEntry.seq >= first).order_by("seq")):
        digest = hashlib.sha256(bytes.fromhex(prev) + entry.seq.to_bytes(8, "big"))
        digest.update(entry.body.encode())
        entry.prev_hash, entry.hash = prev, digest.hexdigest()
        prev = entry.hash
    s.execute(update(AuditHead).values(hash=prev))
    s.commit()


@pytest.mark.parametrize("link", ["00" * 32, "ff" * 32])
def test_a_second_half_rewritten_from_another_link_is_found_at_the_seam(
    long_chain: tuple[Session, list[str]], halves: list[chain.Walk | None], link: str
) -> None:
    """Every entry of the second half holds, and so does the head: only the seam does not
    (whichever way the wrong link sorts against the right one)."""
    s, _ = long_chain
    _rehash_from(s, MIDDLE + 1, link)
    result = _both(s)
    assert (result.ok, result.entries, result.broken_seq, result.column) == (
        False,
        MIDDLE,
        MIDDLE + 1,
        "prev_hash",
    )
    assert result.problem == "column prev_hash: previous-hash link does not match"
    assert halves[0] is None


def test_the_first_halfs_last_entry_removed_and_linked_over_is_found(
    long_chain: tuple[Session, list[str]], halves: list[chain.Walk | None]
) -> None:
    """Entry MIDDLE removed, the second half hashed again from the entry before it: the
    first half ends early but on the link the second half carries."""
    s, hashes = long_chain
    s.execute(delete(AuditEntry).where(AuditEntry.seq == MIDDLE))
    _rehash_from(s, MIDDLE + 1, hashes[MIDDLE - 2])
    result = _both(s)
    assert (result.ok, result.entries, result.broken_seq, result.column) == (
        False,
        MIDDLE - 1,
        MIDDLE,
        "seq",
    )
    assert result.problem == "entry missing (gap in sequence)"
    assert halves[0] is None


def test_a_removed_tail_is_found_when_walked_in_two(
    long_chain: tuple[Session, list[str]],
) -> None:
    s, _ = long_chain
    s.execute(text(f"DELETE FROM audit_log WHERE seq > {LONG - 3}"))
    s.commit()
    result = _both(s)
    assert (result.ok, result.entries, result.head_seq, result.broken_seq) == (
        False,
        LONG - 3,
        LONG - 3,
        LONG - 2,
    )
    assert result.problem == "entries after the last one were removed"


# No such interpreter (OSError), or a name Popen refuses (ValueError: a NUL in it).
@pytest.mark.parametrize("executable", ["/nonexistent/python", "python\0"])
def test_a_second_process_that_cannot_start_leaves_the_walk_to_one(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    monkeypatch: pytest.MonkeyPatch,
    executable: str,
) -> None:
    s, _ = long_chain
    monkeypatch.setattr(chain.sys, "executable", executable)
    _assert_clean_and_walked_in_one(s, halves)


def test_a_second_process_that_fails_leaves_the_walk_to_one(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It exits non-zero (here: its file does not exist): its answer is not taken."""
    s, _ = long_chain
    real = chain.start_range

    def elsewhere(path: str, *args: Any) -> Any:
        return real(path + ".missing", *args)

    monkeypatch.setattr(chain, "start_range", elsewhere)
    _assert_clean_and_walked_in_one(s, halves)


# A stand-in for the second process: chain.start_range runs ``sys.executable -I -S chain.py
# …``; these tests make sys.executable a shell script that ignores its arguments.


def _assert_clean_and_walked_in_one(s: Session, halves: list[chain.Walk | None]) -> None:
    """The clean long chain verifies, after one two-process attempt whose result was not taken
    (the chain was walked again in one process)."""
    result = integrity.verify(s, SIGNING_KEY.public_key(), batch=7, split_at=2)
    assert result == integrity.VerifyResult(True, LONG, LONG)
    assert halves == [None]


def _stand_in(
    folder: Path, monkeypatch: pytest.MonkeyPatch, script: str
) -> list[subprocess.Popen[bytes]]:
    """``script`` (sh) run as the second process; the processes started, once started."""
    path = folder / "stand-in.sh"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    monkeypatch.setattr(chain.sys, "executable", str(path))
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def spy(*args: Any, **kw: Any) -> Any:
        started.append(real(*args, **kw))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", spy)
    return started


@pytest.mark.parametrize("end", ["exit 3", "kill -KILL $$"], ids=["exit status", "signal"])
def test_the_answer_of_a_second_process_that_failed_is_not_taken(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    end: str,
) -> None:
    """It wrote an answer that would vouch for the first half (ending on the link the second
    half starts from), then failed: the answer is not taken, and the rewritten entry 3 it
    would have hidden is found by the walk in one."""
    s, hashes = long_chain
    s.execute(text("UPDATE audit_log SET body = replace(body, 'test', 'tset') WHERE seq = 3"))
    s.commit()
    answer = f"{MIDDLE} {hashes[MIDDLE - 1]}"
    started = _stand_in(
        tmp_path, monkeypatch, f"cat >/dev/null\nprintf '%s\\n\\n' '{answer}'\n{end}"
    )
    result = integrity.verify(s, SIGNING_KEY.public_key(), batch=7, split_at=2)
    assert (result.ok, result.broken_seq, result.column) == (False, 3, "body")
    assert len(started) == 1 and started[0].returncode != 0
    assert halves == [None]


@pytest.mark.parametrize(
    "answer",
    ["", f"{MIDDLE}", f"{MIDDLE} x y\n\n", f"{MIDDLE} x\n5\n", f"{MIDDLE} x\n\n5 y", "a b\n\n"],
)
def test_a_second_process_that_answers_nonsense_leaves_the_walk_to_one(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    answer: str,
) -> None:
    """It ends well (status 0) but its answer is not three lines of the right form."""
    s, _ = long_chain
    printed = answer.replace("\n", "\\n")
    _stand_in(tmp_path, monkeypatch, f"cat >/dev/null\nprintf '{printed}'")
    _assert_clean_and_walked_in_one(s, halves)


def test_a_second_process_that_ends_before_reading_its_request_leaves_the_walk_to_one(
    long_chain: tuple[Session, list[str]],
    halves: list[chain.Walk | None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Its request (the checkpoints in its half) cannot be written: it is stopped, and the
    chain walked in one."""
    s, hashes = long_chain
    started = _stand_in(tmp_path, monkeypatch, "exit 0")
    real = subprocess.Popen  # the spy

    def ended(*args: Any, **kw: Any) -> Any:
        proc = real(*args, **kw)
        proc.wait()  # ended before anything is written to it
        return proc

    monkeypatch.setattr(subprocess, "Popen", ended)
    cps = [_signed(5, hashes[4])]
    result = integrity.verify(s, SIGNING_KEY.public_key(), cps, batch=7, split_at=2)
    assert result == integrity.VerifyResult(True, LONG, LONG, checkpoints=1)
    assert halves == [None]
    assert len(started) == 1 and started[0].stdout is not None and started[0].stdout.closed


def test_a_fault_in_this_processs_walk_stops_the_second_process(
    long_chain: tuple[Session, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """An error in this process's half (here: the column-by-column check of entry 25) while
    the second process still runs: it is killed, not waited for, and its pipe closed."""
    s, _ = long_chain
    started = _stand_in(tmp_path, monkeypatch, "exec sleep 10")

    def broken(session: Session, seq: int) -> str | None:
        raise RuntimeError(f"cannot read entry {seq}")

    monkeypatch.setattr(integrity, "_column_differing_at", broken)
    with pytest.raises(RuntimeError, match="entry 25"):
        integrity.verify(s, SIGNING_KEY.public_key(), batch=7, split_at=2)
    assert len(started) == 1
    assert started[0].returncode == -9  # SIGKILL: it would have ended with 0 after 10 s
    assert started[0].stdout is not None and started[0].stdout.closed
