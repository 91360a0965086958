"""Callers: sealed at rest, found by blind index, unreadable once their key is destroyed."""

from __future__ import annotations

import dataclasses
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


def test_a_lookup_needs_an_identifier_and_ignores_empty_ones(rt: Runtime) -> None:
    from permanence.errors import ValidationFailed

    account = make_account(rt)
    cid = make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id)) as s:
        for empty in ({}, {"phone": "", "email": "", "name": ""}, {"name": None}):
            with pytest.raises(ValidationFailed, match="give a phone number"):
                subjects.find(s, rt.keyring, **empty)
        # An empty field beside a given one is not a condition (a form sends all three).
        found = subjects.find(s, rt.keyring, phone="", email="camille.martin@exemple.fr", name="")
        assert [c.id for c in found] == [cid]


@pytest.mark.gdpr("Art. 5(2)")
def test_a_lookup_is_audited_with_what_was_searched_by_and_how_many_were_found(
    rt: Runtime,
) -> None:
    from permanence.audit.model import AuditEntry

    account = make_account(rt)
    make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id)) as s:
        subjects.find(s, rt.keyring, phone="0639981234", email="camille.martin@exemple.fr")
        subjects.find(s, rt.keyring, name="Nadia Benali")
        bodies = s.scalars(select(AuditEntry.body).order_by(AuditEntry.seq.desc()).limit(2)).all()
    assert '"by":"email+phone"' in bodies[1] and '"found":1' in bodies[1]
    assert '"by":"name"' in bodies[0] and '"found":0' in bodies[0]
    assert all('"action":"subject.lookup"' in b and "0639981234" not in b for b in bodies)


def test_a_caller_known_by_one_name_only_is_found_by_it(rt: Runtime) -> None:
    account = make_account(rt)
    last_only = make_caller(rt, account.id, first="", last="Benali", phone=None, email=None)
    first_only = make_caller(rt, account.id, first="Nadia", last="", phone="0639987777")
    with rt.db.session(ctx_for(account.id)) as s:
        assert [c.id for c in subjects.find(s, rt.keyring, name="benali")] == [last_only]
        assert [c.id for c in subjects.find(s, rt.keyring, name="NADIA")] == [first_only]
        ident = subjects.identity(s, rt.keyring, subjects.get(s, last_only))
        assert (ident.first_name, ident.last_name, ident.full_name) == ("", "Benali", "Benali")
        assert (ident.phone, ident.email) == (None, None)
    assert subjects.Identity(first_name="Nadia", last_name="Benali").full_name == "Nadia Benali"
    assert subjects.Identity(first_name="", last_name=None).full_name is None


def test_an_identifier_removed_is_no_longer_found_nor_stored(rt: Runtime) -> None:
    account = make_account(rt)
    cid = make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id)) as s:
        caller = subjects.get(s, cid)
        subjects.update_identity(s, rt.keyring, caller, subjects.Identity(last_name="Martin"))
    with rt.db.session(ctx_for(account.id)) as s:
        caller = subjects.get(s, cid)
        assert (caller.phone_bidx, caller.phone_sealed) == (None, None)
        assert (caller.email_bidx, caller.email_sealed) == (None, None)
        assert caller.name_bidx is not None and caller.name_sealed is not None
        assert subjects.find(s, rt.keyring, phone="0639981234") == []
        assert subjects.find(s, rt.keyring, email="camille.martin@exemple.fr") == []
        assert [c.id for c in subjects.find(s, rt.keyring, name="martin")] == [cid]
        subjects.update_identity(s, rt.keyring, caller, subjects.Identity(phone="0639981234"))
    with rt.db.session(ctx_for(account.id)) as s:
        caller = subjects.get(s, cid)
        assert (caller.name_bidx, caller.name_sealed) == (None, None)
        assert subjects.find(s, rt.keyring, name="martin") == []
        assert [c.id for c in subjects.find(s, rt.keyring, phone="+33639981234")] == [cid]


def test_the_account_check_refuses_another_account_as_not_found(rt: Runtime) -> None:
    accounts = [make_account(rt, slug) for slug in ("cabinet-lefevre", "b-plomberie", "c-serrures")]
    # The acting account sorts between the two others: a check written < or > instead of !=
    # would let one side through.
    low, b, high = sorted(accounts, key=lambda account: account.id)
    with rt.db.session(ctx_for(b.id)) as s:
        subjects.check_account(s, b.id)
        subjects.check_account(s, uuid.UUID(str(b.id)))  # equal, not the same object
        for other in (low.id, high.id):
            with pytest.raises(NotFound):
                subjects.check_account(s, other)


def test_index_keys_differ_per_account_and_column_and_stay_stable(rt: Runtime) -> None:
    a = make_account(rt)
    b = make_account(rt, "plomberie-durand")
    keys = {}
    for account in (a.id, b.id):
        with rt.db.session(AccessContext.system("test", account)) as s:
            for column in ("phone", "email", "name"):
                keys[(account, column)] = rt.keyring.index_key(s, account, "callers", column)
    assert len(set(keys.values())) == 6 and all(len(k) == 32 for k in keys.values())
    with rt.db.session(AccessContext.system("test", a.id)) as s:
        e164, index = rt.keyring.phone_index(s, a.id, "callers", "06 39 98 12 34")
        assert e164 == "+33639981234"
        assert index == rt.keyring.index(s, a.id, "callers", "phone", "+33639981234")
        assert 0 <= index < 2**rt.keyring.index_bits
    # A fresh process derives the same keys from the stored root (indexes stay searchable).
    fresh = Runtime.from_settings(rt.settings)
    try:
        for account, column in ((a.id, "email"), (b.id, "name")):
            with fresh.db.session(AccessContext.system("test", account)) as s:
                key = fresh.keyring.index_key(s, account, "callers", column)
                assert key == keys[(account, column)]
    finally:
        fresh.close()


def test_a_subject_key_opens_only_for_its_own_account(rt: Runtime) -> None:
    accounts = [make_account(rt, slug) for slug in ("cabinet-lefevre", "b-plomberie", "c-serrures")]
    # The caller's account sorts between two others, which have keys of their own: a check
    # written < or > instead of != would let one side try its key on the caller's.
    low, a, high = sorted(accounts, key=lambda account: account.id)
    cid = make_caller(rt, a.id)
    with rt.db.session(AccessContext.system("test", a.id)) as s:
        for other in (low.id, high.id):
            with pytest.raises(KeyUnavailable):
                rt.keyring.cipher(s, other, cid)
        with pytest.raises(KeyUnavailable):
            rt.keyring.cipher(s, a.id, uuid.uuid4())
        # Destroying it under the wrong account, or a key that does not exist, destroys nothing.
        for other in (low.id, high.id, uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
            assert rt.keyring.destroy_subject_key(s, other, cid) is False
        assert rt.keyring.destroy_subject_key(s, a.id, uuid.uuid4()) is False
        assert rt.keyring.cipher(s, a.id, cid).subject_id == cid
        assert rt.keyring.destroy_subject_key(s, a.id, cid) is True
        assert rt.keyring.destroy_subject_key(s, a.id, cid) is False


@pytest.mark.gdpr("Art. 32")
def test_an_erased_subjects_data_key_leaves_the_memory_cache_others_stay_bounded(
    rt: Runtime,
) -> None:
    account = make_account(rt)
    ids = [make_caller(rt, account.id, phone=f"06 39 98 00 {i:02d}") for i in range(4)]
    fresh = Runtime.from_settings(rt.settings)  # a key cache of its own, bounded at three
    keyring = fresh.keyring
    keyring._dek_cache_size = 3
    try:
        with fresh.db.session(AccessContext.system("test", account.id)) as s:
            for cid in ids:
                keyring.cipher(s, account.id, cid)
            # The oldest leaves first; never more than the bound.
            assert [subject for subject, _ in keyring._deks] == ids[1:]
            # Erase the one whose id sorts between the other two: only its key leaves.
            low, middle, high = sorted(ids[1:])
            keyring.cipher(s, account.id, middle)  # from the cache
            # The id as the erasure reads it: equal, not the same object as the cache's.
            assert keyring.destroy_subject_key(s, account.id, uuid.UUID(str(middle)))
            assert sorted(subject for subject, _ in keyring._deks) == [low, high]
            with pytest.raises(KeyUnavailable):
                keyring.cipher(s, account.id, middle)
    finally:
        fresh.close()


def test_a_lookup_opens_only_the_callers_sharing_the_index(rt: Runtime) -> None:
    # A lookup never decrypts a whole table: only the candidates in the value's bucket are
    # opened (their data keys are the only ones the keyring unwraps).
    account = make_account(rt)
    phones = [f"06 39 98 01 {i:02d}" for i in range(8)]
    for phone in phones:
        make_caller(rt, account.id, phone=phone, email=None)
    with rt.db.session(ctx_for(account.id)) as s:
        buckets = dict(s.execute(select(Caller.id, Caller.phone_bidx)).all())
        by_phone = {
            phone: rt.keyring.phone_index(s, account.id, "callers", phone)[1] for phone in phones
        }
    # The lowest and the highest bucket: a query written <= or >= would open others.
    for phone in (min(phones, key=by_phone.__getitem__), max(phones, key=by_phone.__getitem__)):
        sharing = {cid for cid, bidx in buckets.items() if bidx == by_phone[phone]}
        fresh = Runtime.from_settings(rt.settings)
        try:
            with fresh.db.session(ctx_for(account.id)) as s:
                found = subjects.find(s, fresh.keyring, phone=phone)
            assert len(found) == 1 and found[0].id in sharing
            assert {subject for subject, _ in fresh.keyring._deks} == sharing
        finally:
            fresh.close()


def test_another_accounts_caller_is_never_a_candidate_even_in_the_same_bucket(
    rt: Runtime,
) -> None:
    # One bit of index: both accounts' callers share the two buckets. The query's account
    # filter (row-level security is a second line on PostgreSQL only) keeps the other
    # account's callers out: their keys are never even tried.
    rt.keyring.index_bits = 1
    accounts = [make_account(rt, slug) for slug in ("cabinet-lefevre", "b-plomberie", "c-serrures")]
    # The searching account is the one whose id sorts between the two others: a filter
    # written <= or >= instead of == lets one of them in.
    low, b, high = sorted(accounts, key=lambda account: account.id)
    theirs = [
        make_caller(rt, other.id, first=f"A{i}", phone=f"06 39 98 0{2 + n} {i:02d}", email=None)
        for n, other in enumerate((low, high))
        for i in range(3)
    ]
    mine = make_caller(rt, b.id, first="B", phone="06 39 98 04 00", email=None)
    with rt.db.session(ctx_for(b.id)) as s:
        for cid in theirs:
            with pytest.raises(NotFound):
                subjects.get(s, cid)
        assert [c.id for c in subjects.find(s, rt.keyring, phone="0639980400")] == [mine]
        for n in (2, 3):
            for i in range(3):
                assert subjects.find(s, rt.keyring, phone=f"06 39 98 0{n} {i:02d}") == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        subjects.Identity(first_name="A").first_name = "B"  # type: ignore[misc]


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


def test_a_hashed_lookup_indexes_only_its_own_accounts_older_callers(rt: Runtime) -> None:
    """The first hashed lookup of an account indexes that account's callers registered before
    migration 0087, never another account's: their keys are not even tried, their index stays
    missing until their own account's first hashed lookup."""
    import hashlib

    from sqlalchemy import update

    accounts = [make_account(rt, slug) for slug in ("cabinet-lefevre", "b-plomberie", "c-serrures")]
    # The searching account's id sorts between the two others: a filter written <= or >=
    # instead of == lets one of them in.
    low, b, high = sorted(accounts, key=lambda account: account.id)
    email = "meme.adresse@exemple.fr"  # the same address in the three accounts
    older = {
        account.id: make_caller(rt, account.id, phone=None, email=email)
        for account in (low, b, high)
    }
    for account_id, cid in older.items():
        with rt.db.session(ctx_for(account_id)) as s:
            s.execute(update(Caller).where(Caller.id == cid).values(email_sha256_bidx=None))
    hashed = hashlib.sha256(email.encode()).hexdigest()

    def index_of(account_id: uuid.UUID) -> bytes | None:
        with rt.db.session(ctx_for(account_id)) as s:
            return s.get(Caller, older[account_id]).email_sha256_bidx  # type: ignore[union-attr]

    fresh = Runtime.from_settings(rt.settings)
    try:
        with fresh.db.session(ctx_for(b.id)) as s:
            assert [c.id for c in subjects.find(s, fresh.keyring, email_sha256=hashed)] == [
                older[b.id]
            ]
        assert {subject for subject, _ in fresh.keyring._deks} == {older[b.id]}
    finally:
        fresh.close()
    assert index_of(b.id) is not None
    assert index_of(low.id) is None and index_of(high.id) is None
    for account in (low, high):
        with rt.db.session(ctx_for(account.id)) as s:
            found = subjects.find(s, rt.keyring, email_sha256=hashed)
            assert [c.id for c in found] == [older[account.id]]
        assert index_of(account.id) is not None
