"""Off-boarding a client (Art. 28(3)(g)): export everything, delete everything, certify.

1. ``export_account`` writes a ZIP (mode 0600) for the controller: every record of the account
   as JSON with its sealed fields opened, and every mandate version. The ZIP holds personal
   data in clear: hand it over, then delete it.
2. ``destroy_account`` deletes the account's subject keys and account keys first (crypto-
   shredding: any copy left anywhere, backups included, becomes unreadable), then every row of
   every account-owned table, and the client users; the account is marked off-boarded.
3. A certificate of deletion with the counts per table, signed with the audit checkpoint key
   (Ed25519), is stored and returned as JSON and HTML.

The off-boarding is journalled like a subject erasure (``backup.journal.record``: a row of
``erasure_journal`` of kind "account" and a line of the mirror file), so that restoring a
backup taken before it off-boards the account again: the restore's replay calls
``replay_offboarding`` (handed to it from above, ADR 0038), which calls ``destroy_account``
with that journal entry (``replay``), the one code path of an off-boarding.

Kept after off-boarding, because they prove what the provider did and hold no caller data:
the contract versions, the breach notices and counts, the sub-processor notices, the
certificate itself, the account's registry row (name, slug), and the audit log (pseudonymous).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import LargeBinary, Table, delete, func, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus, MandateVersion
from permanence.audit import service as audit
from permanence.audit.certificates import sign_document as sign_document
from permanence.audit.certificates import verify_certificate as verify_certificate
from permanence.audit.model import AuditHead
from permanence.backup import journal
from permanence.backup.journal import JournalEntry
from permanence.context import Role
from permanence.contracts import deletions
from permanence.contracts.model import Contract, OffboardingCertificate
from permanence.crypto.keyring import Keyring
from permanence.db import Base, ctx_of, utcnow
from permanence.errors import Conflict, NotFound, PermanenceError, PermissionDenied
from permanence.mandates.schema import dump_mandate, parse_mandate
from permanence.render import render

# Why each kept table survives the deletion (shown on the certificate).
RETAINED = {
    "contracts": "le contrat de sous-traitance : preuve des instructions et de leur fin",
    "contract_documents": "le contrat signé (PDF et son empreinte SHA-256)",
    "breach_accounts": "registre des violations : décompte d'un incident (art. 33(5))",
    "breach_notices": "registre des violations : ce qui a été notifié au client, et quand",
    "subprocessor_notices": "les avis de changement de sous-traitant donnés au client",
    "subprocessor_deletions": "les confirmations d'effacement des sous-traitants ultérieurs, "
    "avec leur date et leur justificatif (art. 28(3)(g) et 28(4))",
    "offboarding_certificates": "le présent certificat",
    "erasure_journal": "effacements pseudonymes qu'une sauvegarde restaurée doit rejouer "
    "(journal en ajout seul)",
}
# Kept outside the account's tables, said on the certificate with its reason.
KEPT_ELSEWHERE = {
    "audit_log": "entrées pseudonymes du journal d'audit (identifiants, sans donnée en clair) : "
    "preuve des traitements et de leur fin (art. 5(2)), élaguées à 12 mois derrière un point "
    "de contrôle signé",
}
CHOICE_FR = {
    "return_and_delete": "restitution des données (export remis) puis suppression",
    "delete": "suppression sans restitution",
}
KEY_TABLES = ("subject_keys", "account_keys")
# The tables whose rows name a file, and the store it is in ("files": the rights packages'): a
# recording's audio, a rights package. Named by table like the rest of the deletion, since
# off-boarding sits below the features that own them (rights, recordings; ADR 0038).
FILE_TABLES = (("recordings", "recordings"), ("rights_downloads", "files"))
# The provider's own processing kept in an account's tables: deleted with the account, never
# handed to the client in the export (call evaluation grids of the provider's staff).
PROVIDER_OWN = frozenset({"evaluations"})
# The recordings store's rows (PERMANENCE_RECORDINGS_BACKEND=postgresql, ADR 0036): the audio
# as ciphertext chunks, storage rather than records. Deleted with the account, left out of the
# export as the local store's files are (and never loaded whole into memory).
STORE_ROWS = frozenset({"stored_files", "stored_file_chunks"})
DESK = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})


def _check(session: Session, account_id: uuid.UUID) -> Account:
    ctx = ctx_of(session)
    if ctx.role not in DESK:
        raise PermissionDenied("off-boarding is done by the DPO or an administrator")
    if ctx.account_id != account_id:
        raise NotFound("no such account")
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    if account.status == AccountStatus.OFFBOARDED:
        raise Conflict("this account is already off-boarded")
    return account


def _owned_tables() -> list[Table]:
    """Every table with an account_id, in an order safe for deletion (children first)."""
    import permanence.models  # noqa: F401  (every table registered)

    return [t for t in reversed(Base.metadata.sorted_tables) if "account_id" in t.c]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    records: dict[str, int]
    unopened: int


def _open(keyring: Keyring, session: Session, table: Table, row: Any, column: str) -> Any:
    """Open one sealed value. Convention: ``X_sealed`` is bound to (table, X, row id,
    subject), the subject being the row's caller (or the caller row itself)."""
    blob = getattr(row, column)
    if blob is None:
        return None
    subject = getattr(row, "caller_id", None) or row.id
    if table.name != "callers" and "caller_id" not in table.c:
        raise KeyError(column)
    cipher = keyring.cipher(session, row.account_id, subject)
    raw = cipher.open(table.name, column.removesuffix("_sealed"), row.id, blob)
    text = raw.decode()
    try:
        return json.loads(text)
    except ValueError:
        return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


def export_account(
    session: Session, keyring: Keyring, account_id: uuid.UUID, dest_dir: Path
) -> ExportResult:
    """Write ``<slug>-export-<date>.zip`` in ``dest_dir``; every opened subject is audited."""
    account = _check(session, account_id)
    dest_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, int] = {}
    unopened = 0
    buffer = io.BytesIO()
    opened_subjects: set[uuid.UUID] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for table in reversed(_owned_tables()):
            if table.name in KEY_TABLES or table.name in RETAINED or table.name in PROVIDER_OWN:
                continue
            if table.name in STORE_ROWS:
                continue
            rows = session.execute(
                select(table).where(table.c.account_id == account_id).order_by(*table.primary_key)
            ).all()
            out = []
            for row in rows:
                item: dict[str, Any] = {}
                for col in table.c:
                    name = col.name
                    value = getattr(row, name)
                    if name in {"password_hash", "totp_sealed"}:
                        continue  # credentials are not the controller's data
                    if name.endswith("_sealed") and isinstance(col.type, LargeBinary):
                        try:
                            item[name.removesuffix("_sealed")] = _open(
                                keyring, session, table, row, name
                            )
                            subject = getattr(row, "caller_id", None) or row.id
                            opened_subjects.add(subject)
                        except (PermanenceError, KeyError, ValueError):
                            item[name] = _jsonable(value)
                            unopened += value is not None
                    else:
                        item[name] = _jsonable(value)
                out.append(item)
            records[table.name] = len(out)
            zf.writestr(f"{table.name}.json", json.dumps(out, ensure_ascii=False, indent=1))
        for mv in session.scalars(
            select(MandateVersion)
            .where(MandateVersion.account_id == account_id)
            .order_by(MandateVersion.version)
        ):
            zf.writestr(
                f"mandates/v{mv.version}.yaml", dump_mandate(parse_mandate(mv.document), "yaml")
            )
        zf.writestr(
            "manifest.json",
            json.dumps(
                {
                    "account": account.slug,
                    "generated_at": utcnow().isoformat(),
                    "records": records,
                    "unopened_values": unopened,
                },
                indent=1,
            ),
        )
    data = buffer.getvalue()
    path = dest_dir / f"{account.slug}-export-{utcnow():%Y%m%d%H%M%S}.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    digest = hashlib.sha256(data).hexdigest()
    for subject in sorted(opened_subjects, key=str):
        audit.record(session, "subject.export", "caller", subject, subject_id=subject)
    audit.record(
        session,
        "account.export",
        "account",
        account_id,
        details={"records": sum(records.values()), "sha256": digest[:16]},
    )
    return ExportResult(path, digest, records, unopened)


@dataclass(frozen=True)
class Certificate:
    document: dict[str, Any]
    signature: str
    public_key: str
    # (store, key) of the files the deleted rows pointed at: recordings ("recordings") and
    # rights packages ("files"), deleted by the caller after the commit (a rollback must not
    # leave rows whose files are gone).
    files: tuple[tuple[str, str], ...] = ()

    def json(self) -> str:
        return json.dumps(
            {
                "certificate": self.document,
                "signature": self.signature,
                "public_key": self.public_key,
            },
            ensure_ascii=False,
            indent=2,
        )

    def html(self) -> str:
        return render(
            "permanence.contracts",
            "certificate.html",
            doc=self.document,
            signature=self.signature,
            public_key=self.public_key,
        )


def destroy_account(
    session: Session,
    keyring: Keyring,
    account_id: uuid.UUID,
    *,
    export: ExportResult | None,
    replay: JournalEntry | None = None,
) -> Certificate:
    """Crypto-shred, then delete every row the account owns; journal it; sign a certificate.

    ``replay``: the journal entry of an off-boarding being carried out again on a restored
    database (``replay_offboarding``): that entry is put back instead of a new one written,
    and the audit entry says it is a replay."""
    account = _check(session, account_id)
    if replay is not None and (not replay.is_account or replay.account_id != account_id):
        raise Conflict("this journal entry is not the off-boarding of this account")
    files = freed_files(session, account_id)
    context = _certificate_context(session, account_id)
    # Each sub-processor is asked to confirm its deletion (contracts.deletions): the
    # off-boarding is complete once every one has (shown in the compliance report).
    deletions.request_confirmations(session, account_id, utcnow())
    backup_days = context.pop("_backup_days")
    deleted: dict[str, int] = {}
    keys: dict[str, int] = {}
    for name in KEY_TABLES:
        table = Base.metadata.tables[name]
        keys[name] = _delete(session, table, account_id)
    keyring.forget_account(account_id)
    for table in _owned_tables():
        if table.name in RETAINED or table.name in KEY_TABLES:
            continue
        deleted[table.name] = _delete(session, table, account_id)
    now = utcnow()
    for contract in session.scalars(
        select(Contract).where(Contract.account_id == account_id, Contract.terminated_at.is_(None))
    ):
        contract.terminated_at = now
    account.status = AccountStatus.OFFBOARDED
    session.flush()
    if replay is None:
        entry = JournalEntry.offboarding(account_id, now)
        journal.record(session, entry)
    else:
        entry = replay
        journal.ensure(session, replay)
    audit.record(
        session,
        "account.offboard" if replay is None else "account.offboard.replay",
        "account",
        account_id,
        details={
            "rows": sum(deleted.values()),
            "subject_keys": keys["subject_keys"],
            "journal_entry": entry.id,
        },
    )
    head = session.get(AuditHead, 1)
    assert head is not None
    document: dict[str, Any] = {
        "type": "permanence-certificate-of-deletion",
        "account": {"id": str(account.id), "slug": account.slug, "name": account.name},
        "issued_at": now.isoformat(),
        "export": (
            {"file": export.path.name, "sha256": export.sha256, "records": export.records}
            if export
            else None
        ),
        "keys_destroyed": keys,
        "journal_entry": str(entry.id),
        "replay_of": entry.erased_at.isoformat() if replay is not None else None,
        "rows_deleted": deleted,
        "retained": {k: RETAINED[k] for k in sorted(RETAINED)},
        "kept_elsewhere": KEPT_ELSEWHERE,
        "audit": {"seq": head.seq, "head_hash": head.hash},
        **context,
        "controller_choice": CHOICE_FR["return_and_delete" if export else "delete"],
        "last_backup_expires_on": (now + dt.timedelta(days=backup_days)).date().isoformat(),
    }
    signature, public_key = sign_document(keyring, document)
    session.add(
        OffboardingCertificate(
            account_id=account_id,
            issued_at=now,
            document=audit.canonical(document),
            signature=signature,
            public_key=public_key,
        )
    )
    session.flush()
    return Certificate(document, signature, public_key, files)


def replay_offboarding(
    session: Session, keyring: Keyring, entry: JournalEntry
) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """Carry out again a journalled off-boarding on a restored database: if the account is
    there and not off-boarded, ``destroy_account`` (the one code path of an off-boarding,
    audited as a replay); if it is already off-boarded, only its journal row is put back if
    missing. Returns whether anything changed (running it twice changes nothing the second
    time) and the files the deleted rows pointed at, for the caller to delete after the
    commit. The off-boarding's step of the journal's replay (``backup.replay.ReplaySteps``,
    handed in by ``rights.journal``): it moved here from ``backup.replay`` (ADR 0038)."""
    account = session.get(Account, entry.account_id)
    if account is None:
        return False, ()
    if account.status != AccountStatus.OFFBOARDED:
        cert = destroy_account(session, keyring, entry.account_id, export=None, replay=entry)
        return True, cert.files
    if not journal.ensure(session, entry):
        return False, ()
    audit.record(
        session,
        "account.offboard.replay",
        "account",
        entry.account_id,
        details={"journal_entry": entry.id, "journal_restored": True},
    )
    return True, ()


def _certificate_context(session: Session, account_id: uuid.UUID) -> dict[str, Any]:
    """Who issues and signs the certificate, under which contract, and what each
    sub-processor must confirm: read before the account's rows go."""
    from permanence.config import get_settings
    from permanence.contracts.model import ContractDocument, SubProcessor
    from permanence.staff.model import User

    settings = get_settings()
    contract = session.scalars(
        select(Contract)
        .where(Contract.account_id == account_id, Contract.signed_at.is_not(None))
        .order_by(Contract.version.desc())
    ).first()
    signed = (
        session.scalars(
            select(ContractDocument).where(ContractDocument.contract_id == contract.id)
        ).first()
        if contract is not None
        else None
    )
    dpo = session.scalars(
        select(User).where(User.role == Role.DPO, User.active.is_(True)).order_by(User.email)
    ).first()
    subprocessors = session.scalars(
        select(SubProcessor).where(SubProcessor.status == "active").order_by(SubProcessor.code)
    ).all()
    return {
        "issuer": {
            "name": settings.provider_name,
            "address": settings.provider_address,
            "contact": settings.provider_contact_email,
        },
        "signatory": (
            {"name": dpo.display_name, "capacity": "délégué à la protection des données"}
            if dpo is not None
            else {"name": settings.provider_name, "capacity": "le sous-traitant"}
        ),
        "contract": (
            {
                "reference": contract.reference,
                "version": contract.version,
                "signed_at": contract.signed_at.isoformat() if contract.signed_at else None,
                "signed_pdf_sha256": signed.sha256 if signed is not None else None,
            }
            if contract is not None
            else None
        ),
        # Each sub-processor held the account's data only encrypted under keys destroyed
        # here; its confirmation of deletion is asked when the certificate is issued.
        "subprocessors": [
            {
                "code": sp.code,
                "name": sp.name,
                "service": sp.service,
                "confirmation": "demandée à l'émission du certificat, à confirmer sous "
                f"{deletions.CONFIRMATION_DAYS} jours avec date et justificatif ; données "
                "chiffrées sous des clés détruites (effacement cryptographique)",
            }
            for sp in subprocessors
        ],
        "_backup_days": settings.backup_retention_days,
    }


def freed_files(session: Session, account_id: uuid.UUID) -> tuple[tuple[str, str], ...]:
    """The files of the account's recordings and rights packages, as (store, key)."""
    _owned_tables()  # every table registered
    freed: list[tuple[str, str]] = []
    for name, store in FILE_TABLES:
        table = Base.metadata.tables[name]
        keys = session.scalars(select(table.c.storage_key).where(table.c.account_id == account_id))
        freed += ((store, k) for k in keys)
    return tuple(freed)


def _delete(session: Session, table: Table, account_id: uuid.UUID) -> int:
    result = session.execute(delete(table).where(table.c.account_id == account_id))
    return int(getattr(result, "rowcount", 0) or 0)


def remaining_rows(session: Session, account_id: uuid.UUID) -> dict[str, int]:
    """Rows the account still owns, per table (after off-boarding: only the retained ones)."""
    out = {}
    for table in _owned_tables():
        n = session.scalar(
            select(func.count()).select_from(table).where(table.c.account_id == account_id)
        )
        if n:
            out[table.name] = int(n)
    return out
