"""Callers: sealed at rest, found by blind index, unreadable once their key is destroyed."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from permanence.context import AccessContext, Role
from permanence.errors import KeyUnavailable, NotFound
from permanence.runtime import Runtime
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller
from tests.factories import ctx_for, make_account, make_caller


def test_caller_found_by_phone_in_any_format(rt: Runtime) -> None:
    account = make_account(rt)
    cid = make_caller(rt, account.id, phone="06 39 98 12 34")
    make_caller(rt, account.id, first="Léa", last="Petit", phone="06 39 98 55 55", email=None)
    with rt.db.session(ctx_for(account.id)) as s:
        for form in ("+33639981234", "06.39.98.12.34", "0033 6 39 98 12 34"):
            assert [c.id for c in subjects.find(s, rt.keyring, phone=form)] == [cid]


def test_caller_found_by_email_and_by_name_in_either_order(rt: Runtime) -> None:
    account = make_account(rt)
    cid = make_caller(
        rt, account.id, first="Hélène", last="Lefèvre-Dubois", email="Helene@Exemple.fr"
    )
    with rt.db.session(ctx_for(account.id)) as s:
        assert [c.id for c in subjects.find(s, rt.keyring, email="helene@exemple.FR")] == [cid]
        assert [c.id for c in subjects.find(s, rt.keyring, name="lefevre dubois helene")] == [cid]
        assert subjects.find(s, rt.keyring, name="Hélène Lefèvre") == []


def test_a_lookup_by_several_identifiers_needs_all_of_them_to_match(rt: Runtime) -> None:
    account = make_account(rt)
    cid = make_caller(
        rt,
        account.id,
        first="Inès",
        last="Garnier",
        phone="06 39 98 44 21",
        email="ines@exemple.fr",
    )
    make_caller(rt, account.id, first="Paul", last="Roux", phone="06 39 98 44 22", email=None)
    with rt.db.session(ctx_for(account.id)) as s:
        both = subjects.find(s, rt.keyring, phone="0639984421", email="ines@exemple.fr")
        assert [c.id for c in both] == [cid]
        # The phone matches, the e-mail does not: no one (an "any" match would return Inès).
        assert subjects.find(s, rt.keyring, phone="0639984421", email="autre@exemple.fr") == []
        assert subjects.find(s, rt.keyring, email="ines@exemple.fr", name="Paul Roux") == []
        assert subjects.find(s, rt.keyring, phone="0639984422", name="Inès Garnier") == []


def test_blind_index_collisions_are_resolved_by_decryption(rt: Runtime) -> None:
    rt.keyring.index_bits = 2  # four buckets: many callers share each one
    account = make_account(rt)
    ids = [
        make_caller(rt, account.id, first=f"P{i}", phone=f"06 39 98 00 {i:02d}", email=None)
        for i in range(12)
    ]
    with rt.db.session(ctx_for(account.id)) as s:
        buckets = s.execute(select(Caller.phone_bidx, Caller.id).where(Caller.id.in_(ids))).all()
        by_bucket: dict[int, list[uuid.UUID]] = {}
        for bidx, cid in buckets:
            by_bucket.setdefault(bidx, []).append(cid)
        shared = max(by_bucket.values(), key=len)  # 12 callers, 4 buckets: at least 3 share one
        assert len(shared) >= 3
        target = ids.index(shared[1])
        found = subjects.find(s, rt.keyring, phone=f"06 39 98 00 {target:02d}")
        assert [c.id for c in found] == [shared[1]]


@pytest.mark.gdpr("Art. 5(2)")
def test_identity_round_trips_and_the_read_is_audited(rt: Runtime) -> None:
    from permanence.audit.model import AuditEntry

    account = make_account(rt)
    cid = make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id, reason="call:abc")) as s:
        ident = subjects.identity(s, rt.keyring, subjects.get(s, cid))
        body = s.scalars(select(AuditEntry.body).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert (ident.first_name, ident.last_name, ident.phone, ident.email) == (
        "Camille",
        "Martin",
        "+33639981234",
        "camille.martin@exemple.fr",
    )
    assert '"action":"subject.read"' in body and '"reason":"call:abc"' in body
    assert "Camille" not in body and "639981234" not in body


def test_another_accounts_caller_is_not_found(rt: Runtime) -> None:
    a = make_account(rt)
    b = make_account(rt, "plomberie-durand")
    cid = make_caller(rt, a.id)
    with rt.db.session(ctx_for(b.id)) as s:
        with pytest.raises(NotFound):
            subjects.get(s, cid)
        assert subjects.find(s, rt.keyring, phone="06 39 98 12 34") == []


@pytest.mark.gdpr("Art. 32")
def test_destroyed_key_makes_every_sealed_value_unreadable(rt: Runtime) -> None:
    account = make_account(rt)
    cid = make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id)) as s:
        subjects.identity(s, rt.keyring, subjects.get(s, cid))  # warms the key cache
        assert rt.keyring.destroy_subject_key(s, account.id, cid)
    with rt.db.session(ctx_for(account.id)) as s, pytest.raises(KeyUnavailable):
        subjects.identity(s, rt.keyring, subjects.get(s, cid))
    # Even with the key cache of a fresh process and the raw row, nothing opens.
    fresh = Runtime.from_settings(rt.settings)
    try:
        with fresh.db.session(ctx_for(account.id)) as s, pytest.raises(KeyUnavailable):
            fresh.keyring.cipher(s, account.id, cid)
    finally:
        fresh.close()


def test_key_rotation_rewraps_without_touching_data(rt: Runtime) -> None:
    account = make_account(rt)
    cid = make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id), readonly=True) as s:
        sealed_before = s.scalar(select(Caller.name_sealed).where(Caller.id == cid))
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        version, count = rt.keyring.rotate_account(s, account.id)
    assert (version, count) == (2, 1)
    fresh = Runtime.from_settings(rt.settings)  # no cached keys: must unwrap through v2
    try:
        with fresh.db.session(ctx_for(account.id)) as s:
            caller = subjects.get(s, cid)
            assert caller.name_sealed == sealed_before
            assert subjects.identity(s, fresh.keyring, caller).last_name == "Martin"
            assert [c.id for c in subjects.find(s, fresh.keyring, phone="0639981234")] == [cid]
    finally:
        fresh.close()


def test_restricted_caller_is_hidden_from_operators(rt: Runtime) -> None:
    from permanence.db import utcnow
    from permanence.errors import PermissionDenied

    account = make_account(rt)
    cid = make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id, Role.DPO)) as s:
        subjects.get(s, cid).restricted_at = utcnow()
    with rt.db.session(ctx_for(account.id)) as s, pytest.raises(PermissionDenied):
        subjects.identity(s, rt.keyring, subjects.get(s, cid))


def test_unknown_id_is_not_found(rt: Runtime) -> None:
    account = make_account(rt)
    with rt.db.session(ctx_for(account.id)) as s, pytest.raises(NotFound):
        subjects.get(s, uuid.uuid4())


def test_caller_found_by_the_sha256_of_the_email_even_one_registered_before_the_index(
    rt: Runtime,
) -> None:
    """OpenDSR's hashed identity: the SHA-256 (hex) of the normalised address, through its own
    keyed blind index; a caller registered before migration 0087 (no index yet) is indexed on
    the account's first hashed lookup."""
    import hashlib

    from sqlalchemy import update

    from permanence.errors import ValidationFailed

    account = make_account(rt)
    new = make_caller(rt, account.id, phone="06 39 98 77 01", email="Noemie@Exemple.fr")
    old = make_caller(rt, account.id, phone="06 39 98 77 02", email="ancien@exemple.fr")
    make_caller(rt, account.id, phone="06 39 98 77 03", email=None)
    with rt.db.session(ctx_for(account.id)) as s:
        s.execute(update(Caller).where(Caller.id == old).values(email_sha256_bidx=None))

    def sha(email: str) -> str:
        return hashlib.sha256(email.encode()).hexdigest()

    with rt.db.session(ctx_for(account.id)) as s:
        found = subjects.find(s, rt.keyring, email_sha256=sha("noemie@exemple.fr"))
        assert [c.id for c in found] == [new]
        assert subjects.find(s, rt.keyring, email_sha256=sha("Noemie@Exemple.fr")) == []
        upper = sha("ancien@exemple.fr").upper()  # hex in either case
        assert [c.id for c in subjects.find(s, rt.keyring, email_sha256=upper)] == [old]
        assert s.get(Caller, old).email_sha256_bidx is not None  # type: ignore[union-attr]
        with pytest.raises(ValidationFailed, match="64 hexadecimal"):
            subjects.find(s, rt.keyring, email_sha256="ancien@exemple.fr")
