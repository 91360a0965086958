"""An erasure survives a forensic look at PostgreSQL's own files (issue 19, ADR 0029).

The erased caller's key row stays in the table's file as a dead tuple and in the WAL segments
(PostgreSQL never zeroes them). The test carves the raw files under the data directory for
the key's wrapped bytes, before and after the erasure and the epoch rotation, and shows that
what it finds opened before the rotation and opens with nothing that exists after it.
(SQLite: tests/web/test_rights_rectification.py carves its main file and WAL.)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, select, text
from sqlalchemy.engine import make_url

from permanence.crypto.model import KeyEpoch, SubjectKey
from permanence.crypto.primitives import open_sealed
from permanence.errors import IntegrityFailure, KeyUnavailable
from tests.conftest import PG_OWNER_URL, PG_URL, SmtpSink
from tests.factories import caller_with_records, ctx_for
from tests.web.conftest import World

FIRST, LAST = "Ermengarde", "Carottier"
PHONE, EMAIL = "06 72 31 54 98", "ermengarde.carottier@exemple.fr"


def _superuser() -> tuple[object, Path, list[Path]]:
    """A superuser engine (CHECKPOINT), the data directory and the database's folders."""
    if not PG_URL:
        pytest.skip("PostgreSQL only (SQLite: test_the_destroyed_key_is_not_in_the_sqlite_files)")
    assert PG_OWNER_URL
    url = os.environ.get("PERMANENCE_TEST_DATABASE_SUPERUSER_URL") or str(
        make_url(PG_OWNER_URL).set(username="postgres")
    )
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            if not conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar():
                pytest.skip("needs a PostgreSQL superuser (PERMANENCE_TEST_DATABASE_SUPERUSER_URL)")
            data = Path(conn.execute(text("SHOW data_directory")).scalar_one())
            db_dir = data / str(
                conn.execute(
                    text("SELECT oid FROM pg_database WHERE datname = current_database()")
                ).scalar_one()
            )
    except Exception as exc:
        pytest.skip(f"no superuser connection to PostgreSQL ({type(exc).__name__})")
    base = data / "base" / db_dir.name
    wal = data / "pg_wal"
    if not (os.access(base, os.R_OK | os.X_OK) and os.access(wal, os.R_OK | os.X_OK)):
        pytest.skip(f"the PostgreSQL data directory {data} is not readable by this user")
    return engine, data, [base, wal]


def _carve(engine: object, folders: list[Path], needle: bytes) -> list[Path]:
    """Every raw file (table files, WAL segments) holding ``needle``, once per occurrence,
    after a CHECKPOINT has written the shared buffers to the table files."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text("CHECKPOINT"))
    found: list[Path] = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                try:
                    found += [path] * path.read_bytes().count(needle)
                except OSError:
                    continue  # a WAL segment recycled while we read
    return found


@pytest.mark.gdpr("Art. 17")
def test_the_destroyed_key_opens_with_nothing_left_in_postgresql_files(
    world: World, smtp: SmtpSink
) -> None:
    from permanence.rights.service import Outbox

    engine, data, folders = _superuser()
    rt, account = world.rt, world.plumber.id
    world.app.state.rights_outbox = Outbox.from_settings(rt.settings)  # type: ignore[attr-defined]
    made = caller_with_records(rt, account, first=FIRST, last=LAST, phone=PHONE, email=EMAIL)
    with rt.db.session(ctx_for(account)) as s:
        key = s.get(SubjectKey, made.caller_id)
        assert key is not None
        wrapped, epoch, version = bytes(key.wrapped_dek), key.epoch, key.kek_version
        kek = rt.keyring._kek(s, account, version)
    ad_for = rt.keyring._epoch_ad
    dek_ad = rt.keyring._dek_ad(account, made.caller_id, version)

    # Before: the raw files hold the key, and master key + epoch key open it (the attack).
    assert _carve(engine, folders, wrapped)
    epoch_key = rt.keyring.epochs.get(epoch)  # type: ignore[union-attr]
    assert epoch_key is not None
    dek = open_sealed(
        kek, open_sealed(epoch_key, wrapped, ad_for(account, made.caller_id, epoch)), dek_ad
    )
    assert len(dek) == 32

    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{account}/rights/requests"
    req = client.post(
        base,
        json={"kind": "erasure", "requester": {"phone": PHONE}, "verified_by_controller": True},
    )
    done = client.post(f"{base}/{req.json()['id']}/execute")
    assert done.status_code == 200, done.text
    assert rt.keyring.epoch_rotation_due(rt.db, 0, 0) == "erasure"
    rotated = rt.keyring.rotate_epoch(rt.db, grace=0)
    assert rotated["epoch"] > epoch and rotated["destroyed"] >= 1

    # After: PostgreSQL still holds the bytes (a dead tuple, the WAL: not zeroed)...
    found = _carve(engine, folders, wrapped)
    assert found, "the carving should find the residue (else it proves nothing)"
    assert any(p.parent.name == "pg_wal" for p in found)
    # ...and nothing that exists opens them: the epoch key that wrapped them is destroyed,
    # the current epoch keys (whatever epoch number is tried) and the KEK alone fail.
    fresh = type(rt.keyring.epochs)(rt.keyring.epochs.path, rt.keyring._master_raw)  # type: ignore[union-attr,arg-type]
    assert fresh.get(epoch) is None
    with rt.db.session(ctx_for(account), readonly=True) as s:
        numbers = set(s.scalars(select(KeyEpoch.epoch)).all())
    assert fresh.epochs() == {rotated["epoch"]} and epoch in numbers
    for e in fresh.epochs():
        current = fresh.get(e)
        assert current is not None
        for n in numbers:
            with pytest.raises(IntegrityFailure):
                open_sealed(current, wrapped, ad_for(account, made.caller_id, n))
    with pytest.raises(IntegrityFailure):
        open_sealed(kek, wrapped, dek_ad)
    residue = SubjectKey(
        subject_id=made.caller_id, account_id=account, kek_version=version, epoch=epoch,
        wrapped_dek=wrapped,
    )  # fmt: skip
    with pytest.raises(KeyUnavailable):
        rt.keyring._outer_open(residue, account)
    assert data.is_dir() and uuid.UUID(str(made.caller_id))
