"""The auditor's evidence pack (Art. 28(3)(h), Art. 5(2)): one signed ZIP for an auditor or
the CNIL.

What is in it (README.txt in the archive says the same): the Art. 30 records, the compliance
checks with their results, the audit chain's verification with a checkpoint signed now, the
training status of each staff member, the rights register with deadlines met or missed, the
breach register, the sub-processors and the contracts, and the requirements matrix (each duty
-> where implemented -> the tests that prove it).

No personal data: staff appear by id and role, requests by id and dates, breaches by their
reference and codes; no caller identity is read. Signed: ``SHA256SUMS`` lists every file's
SHA-256 and ``SHA256SUMS.sig`` is its Ed25519 signature by the audit checkpoint key, whose
public key is ``public-key.pem`` (compare it with the one the provider gave you). Checked by
``permanence compliance verify-evidence FILE`` or by openssl and sha256sum (README.txt).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from sqlalchemy import select

from permanence.accounts.model import Account
from permanence.audit import integrity, publish
from permanence.audit import service as audit
from permanence.context import AccessContext
from permanence.db import acting_for
from permanence.runtime import Runtime

FORMAT = "permanence-evidence-1"
SUMS, SIGNATURE, PUBLIC_KEY = "SHA256SUMS", "SHA256SUMS.sig", "public-key.pem"

README = """Permanence - evidence pack ({format})
Deployment: {deployment}
Generated: {generated_at}

Files
  art30.html                 records of processing (Art. 30(1) and 30(2))
  compliance-checks.json     every automated compliance check and its result
  audit-verification.json    the audit chain recomputed, with a checkpoint signed now
  training.csv               staff (by id and role): courses, expiry, confidentiality
  rights-register.csv        data-subject requests: dates, deadline met or missed
  breaches.csv               the breach register (Art. 33(5)) with its clocks
  subprocessors.csv          sub-processors, location and safeguards
  contracts.csv              processing contracts (Art. 28(3)) per client account, with the
                             SHA-256 of each signed PDF (Decision (EU) 2021/915 clauses)
  dpia.csv                   impact assessments (Art. 35): per account and processing, each
                             version, validation, risks (severity/likelihood), client opinion
  dpia-*.json                each DPIA version in full (CNIL PIA structure)
  requirements-matrix.csv    each duty -> where implemented -> tests that prove it
  audits.csv                 audits of the service and of sub-processors, next due dates
  audit-actions.csv          their follow-up actions: owner (role:id), due date, state

No personal data is in this pack: staff and requests appear by identifier only.

Checking that the pack is whole and came from this deployment
  1. Compare public-key.pem with the public key the provider gave you.
  2. openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin \\
         -in SHA256SUMS -sigfile SHA256SUMS.sig
  3. sha256sum -c SHA256SUMS
  Or: permanence compliance verify-evidence THIS.zip
"""


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(
            ["" if v is None else v.isoformat() if isinstance(v, dt.datetime) else v for v in row]
        )
    return out.getvalue().encode()


def _json(data: Any) -> bytes:
    return (
        json.dumps(data, indent=1, sort_keys=True, default=str, ensure_ascii=False) + "\n"
    ).encode()


def _accounts(rt: Runtime, ctx: AccessContext) -> list[tuple[Any, str]]:
    with rt.db.session(ctx, readonly=True) as s:
        return [(a.id, a.slug) for a in s.scalars(select(Account).order_by(Account.slug))]


def _training(rt: Runtime, ctx: AccessContext, now: dt.datetime) -> bytes:
    from permanence.staff.training import staff_status

    rows = []
    with rt.db.session(ctx, readonly=True) as s:
        for st in staff_status(s, now):
            status = "ok" if not st.problems else "missing:" + "+".join(st.problems)
            latest = {t.course: t for t in reversed(st.trainings)}
            if not latest:
                rows.append(
                    [st.user_id, st.role, st.mfa, "", "", "", bool(st.undertakings), status]
                )
            for course, t in sorted(latest.items()):
                rows.append(
                    [
                        st.user_id,
                        st.role,
                        st.mfa,
                        course,
                        t.completed_at,
                        t.expires_at,
                        bool(st.undertakings),
                        status,
                    ]
                )
    header = [
        "user_id",
        "role",
        "mfa",
        "course",
        "completed_at",
        "expires_at",
        "undertaking_signed",
        "status",
    ]
    return _csv(header, rows)


def _deadline(req: Any, now: dt.datetime) -> str:
    done = req.completed_at or req.cancelled_at
    if done is not None:
        return "met" if done <= req.due_at else "missed"
    return "overdue" if now > req.due_at else "open"


def _rights(rt: Runtime, ctx: AccessContext, now: dt.datetime) -> tuple[bytes, dict[str, int]]:
    from permanence.rights.model import RightsRequest

    rows, tally = [], {"met": 0, "missed": 0, "open": 0, "overdue": 0}
    with rt.db.session(ctx, readonly=True) as s:
        for account_id, slug in _accounts(rt, ctx):
            with acting_for(s, account_id):
                for r in s.scalars(
                    select(RightsRequest)
                    .where(RightsRequest.account_id == account_id)
                    .order_by(RightsRequest.received_at)
                ):
                    verdict = _deadline(r, now)
                    tally[verdict] += 1
                    rows.append(
                        [
                            slug,
                            r.id,
                            r.kind,
                            r.source,
                            r.state,
                            r.received_at,
                            r.first_due_at,
                            r.due_at,
                            r.extension_reason,
                            r.completed_at,
                            r.cancelled_at,
                            r.refusal_reason,
                            verdict,
                        ]
                    )
    header = [
        "account",
        "request_id",
        "kind",
        "source",
        "state",
        "received_at",
        "first_due_at",
        "due_at",
        "extension_reason",
        "completed_at",
        "cancelled_at",
        "refusal_reason",
        "deadline",
    ]
    return _csv(header, rows), tally


def _breaches(rt: Runtime, ctx: AccessContext, now: dt.datetime) -> bytes:
    from permanence.breaches import service as breaches

    rows = []
    with rt.db.session(ctx, readonly=True) as s:
        for v in breaches.register(s, now):
            b = v.breach
            rows.append(
                [
                    v.reference,
                    b.aware_at,
                    b.decision,
                    len(v.accounts),
                    v.controller_clock.due_at,
                    v.controller_clock.state(now),
                    v.cnil_clock.due_at,
                    "+".join(v.missing),
                    v.overdue,
                ]
            )
    header = [
        "reference",
        "aware_at",
        "decision",
        "accounts_affected",
        "controllers_due_at",
        "controllers_clock",
        "cnil_due_at",
        "missing_contents",
        "overdue",
    ]
    return _csv(header, rows)


def _subprocessors(rt: Runtime, ctx: AccessContext) -> bytes:
    from permanence.contracts import service as contracts

    with rt.db.session(ctx, readonly=True) as s:
        rows = [
            [p.code, p.name, p.service, p.country, p.safeguard, p.hds_certified, p.status]
            for p in contracts.registry(s, include_removed=True)
        ]
    header = ["code", "name", "service", "country", "safeguard", "hds_certified", "status"]
    return _csv(header, rows)


def _contracts(rt: Runtime, ctx: AccessContext, now: dt.datetime) -> bytes:
    from permanence.contracts import service as contracts
    from permanence.contracts.scc import document_of

    rows = []
    with rt.db.session(ctx, readonly=True) as s:
        for account_id, slug in _accounts(rt, ctx):
            with acting_for(s, account_id):
                st = contracts.contract_status(s, now)
                for c in st.versions:
                    rows.append(
                        [
                            slug,
                            c.reference,
                            c.version,
                            c.signed_at,
                            c.effective_from,
                            c.ends_at,
                            c.terminated_at,
                            "+".join(contracts.missing_clauses(c)),
                            st.contract is not None and st.contract.id == c.id,
                            c.template or "",
                            doc.sha256 if (doc := document_of(s, c.id)) is not None else "",
                        ]
                    )
    header = [
        "account",
        "reference",
        "version",
        "signed_at",
        "effective_from",
        "ends_at",
        "terminated_at",
        "missing_clauses",
        "in_force",
        "template",
        "signed_pdf_sha256",
    ]
    return _csv(header, rows)


def _dpias(rt: Runtime, ctx: AccessContext, now: dt.datetime) -> dict[str, bytes]:
    """dpia.csv, one row per version, and each version's content (no personal data: the
    assessment describes processings, not people; validators appear by id)."""
    from permanence.dpia import service as dpias

    rows, out = [], {}
    with rt.db.session(ctx, readonly=True) as s:
        for account_id, slug in _accounts(rt, ctx):
            with acting_for(s, account_id):
                current = {st.processing: st for st in dpias.account_status(s, now)}
                for d in dpias.versions(s):
                    content = dpias.content_of(d)
                    st = current.get(d.processing)
                    rows.append(
                        [
                            slug,
                            d.processing,
                            d.version,
                            d.mandate_version,
                            d.created_at,
                            d.validated_at,
                            d.validated_by,
                            " ".join(
                                f"{r.code}:{r.severity}/{r.likelihood}" for r in content.risks
                            ),
                            d.client_opinion_at,
                            st is not None and st.validated is not None and st.validated.id == d.id,
                            (st.problem or "") if st is not None else "not required",
                        ]
                    )
                    out[f"dpia-{slug}-{d.processing}-v{d.version}.json"] = _json(
                        {
                            "account": slug,
                            "processing": d.processing,
                            "version": d.version,
                            "mandate_version": d.mandate_version,
                            "validated_at": d.validated_at.isoformat() if d.validated_at else None,
                            "dpo_opinion": d.dpo_opinion,
                            "client_opinion": d.client_opinion,
                            "content": content.model_dump(),
                        }
                    )
    header = [
        "account",
        "processing",
        "version",
        "mandate_version",
        "created_at",
        "validated_at",
        "validated_by",
        "risks_severity_likelihood",
        "client_opinion_at",
        "current",
        "problem",
    ]
    out["dpia.csv"] = _csv(header, rows)
    return out


def _audits(rt: Runtime, ctx: AccessContext, now: dt.datetime) -> tuple[bytes, bytes]:
    from permanence.audits import service as audits

    today = now.date()
    with rt.db.session(ctx, readonly=True) as s:
        views = audits.history(s)
    done = _csv(
        ["audit_id", "target", "performed_on", "scope", "findings", "next_due_on", "overdue"],
        [
            [
                v.audit.id,
                v.target,
                v.audit.performed_on,
                v.audit.scope,
                v.audit.findings,
                v.audit.next_due_on,
                v.overdue(today),
            ]
            for v in views
        ],
    )
    actions = _csv(
        ["action_id", "audit_id", "action", "owner", "due_on", "done_at", "state"],
        [
            [
                a.action.id,
                v.audit.id,
                a.action.action,
                a.owner,
                a.action.due_on,
                a.action.done_at,
                a.state(today),
            ]
            for v in views
            for a in v.actions
        ],
    )
    return done, actions


def _matrix() -> bytes:
    from permanence.compliance.matrix import rows

    return _csv(
        ["duty", "what", "where_implemented", "tests"],
        [[r["ref"], r["duty"], r["where"], " ".join(r["tests"])] for r in rows()],
    )


@dataclass(frozen=True)
class Pack:
    data: bytes
    summary: dict[str, Any]


def build(rt: Runtime, ctx: AccessContext, now: dt.datetime | None = None) -> Pack:
    """The signed archive. ``ctx``: the DPO (page) or the system (command line)."""
    from permanence.compliance import art30
    from permanence.compliance.checks import run_checks

    now = now or dt.datetime.now(dt.UTC)
    files: dict[str, bytes] = {}
    with rt.db.session(ctx) as s:
        files["art30.html"] = art30.export(s, rt.settings, "html").encode()
        audit.record(s, "compliance.evidence", "evidence", details={"format": FORMAT})
    results = run_checks(rt, now)
    files["compliance-checks.json"] = _json([asdict(r) for r in results])
    with rt.db.session(ctx) as s:
        checkpoint = integrity.create_checkpoint(s, rt.keyring)
    publish.append(rt.settings.effective_audit_checkpoint_file, checkpoint)
    path = rt.settings.effective_audit_checkpoint_file
    external = publish.read(path) if path.exists() else [checkpoint]
    with rt.db.session(ctx, readonly=True) as s:
        result = integrity.verify(s, rt.keyring.checkpoint_signing_key().public_key(), external)
    files["audit-verification.json"] = _json(
        {
            "ok": result.ok,
            "result": result.line(),
            "entries": result.entries,
            "head_seq": result.head_seq,
            "checkpoints_matched": result.checkpoints,
            "broken_entry": result.broken_seq,
            "broken_column": result.column,
            "latest_checkpoint": checkpoint,
        }
    )
    files["training.csv"] = _training(rt, ctx, now)
    files["rights-register.csv"], tally = _rights(rt, ctx, now)
    files["breaches.csv"] = _breaches(rt, ctx, now)
    files["subprocessors.csv"] = _subprocessors(rt, ctx)
    files["contracts.csv"] = _contracts(rt, ctx, now)
    files.update(_dpias(rt, ctx, now))
    files["requirements-matrix.csv"] = _matrix()
    files["audits.csv"], files["audit-actions.csv"] = _audits(rt, ctx, now)
    files["README.txt"] = README.format(
        format=FORMAT, deployment=rt.settings.public_base_url, generated_at=now.isoformat()
    ).encode()
    summary = {
        "checks_failed": [r.code for r in results if not r.passed],
        "audit_chain_ok": result.ok,
        "rights_deadlines": tally,
    }
    return Pack(_sign(rt, files), summary)


def _sign(rt: Runtime, files: dict[str, bytes]) -> bytes:
    key = rt.keyring.checkpoint_signing_key()
    sums = "".join(
        f"{hashlib.sha256(body).hexdigest()}  {name}\n" for name, body in sorted(files.items())
    ).encode()
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in sorted(files.items()):
            z.writestr(name, body)
        z.writestr(SUMS, sums)
        z.writestr(SIGNATURE, key.sign(sums))
        z.writestr(PUBLIC_KEY, pem)
    return out.getvalue()


def verify_pack(data: bytes, public_key: Ed25519PublicKey | None = None) -> list[str]:
    """Problems with a pack (empty: whole, and signed by ``public_key`` — by default the key
    the pack carries, which the auditor must compare with the one the provider gave)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = set(z.namelist())
        sums, sig, pem = z.read(SUMS), z.read(SIGNATURE), z.read(PUBLIC_KEY)
    except (zipfile.BadZipFile, KeyError, OSError):
        return ["not an evidence pack (SHA256SUMS, its signature or the public key is missing)"]
    if public_key is None:
        loaded = load_pem_public_key(pem)
        if not isinstance(loaded, Ed25519PublicKey):
            return ["public-key.pem is not an Ed25519 key"]
        public_key = loaded
    try:
        public_key.verify(sig, sums)
    except InvalidSignature:
        return ["the signature of SHA256SUMS does not verify with this public key"]
    problems, listed = [], set()
    for line in sums.decode().splitlines():
        digest, _, name = line.partition("  ")
        listed.add(name)
        if name not in names:
            problems.append(f"{name}: listed but missing")
        elif hashlib.sha256(z.read(name)).hexdigest() != digest:
            problems.append(f"{name}: content differs from its signed SHA-256")
    extra = names - listed - {SUMS, SIGNATURE, PUBLIC_KEY}
    problems += [f"{n}: not covered by the signature" for n in sorted(extra)]
    return problems
