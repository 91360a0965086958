"""The access package (Art. 15) and the portable data (Art. 20), as ZIP files behind an
expiring, single-use link.

Access: ``donnees.json`` (machine-readable), ``rapport.html`` (the French report with the
Art. 15(1) information derived from the mandate) and the audio of the subject's recordings
(voice is personal data: the audio is part of the copy, EDPB 01/2022). Portability: only what
the subject provided, for purposes based on consent or a contract, as JSON and CSV.

The ZIP is encrypted under the subject's key as it is stored; only the token's hash is kept.

The French labels of the report are in ``rights.report_fr``; the link, its token and the
stored file in ``rights.downloads``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import get_account, mandate_by_id, mandate_version
from permanence.audit import service as audit
from permanence.crypto.cipher import SubjectCipher
from permanence.crypto.keyring import Keyring
from permanence.crypto.stream import decrypt_stream
from permanence.db import utcnow
from permanence.delivery import ledger as delivery
from permanence.filestore import RecordingStore
from permanence.mandates.base import LegalBasis
from permanence.mandates.mandate import Mandate
from permanence.mandates.wording import CATEGORY_FR
from permanence.render import render
from permanence.rights import texts
from permanence.rights.base import Outbox
from permanence.rights.consultations import consultations_of
from permanence.rights.downloads import _random_token, _store, controller_token
from permanence.rights.lookup import records_of
from permanence.rights.model import RightsRequest
from permanence.rights.report_fr import (
    BASIS_FR,
    CHANNEL_FR,
    KIND_FR,
    RETENTION_FR,
    RIGHTS_FR,
    SOURCE_FR,
    _field_labels,
    call_seconds,
    date_fr,
    duration_fr,
    duration_text,
    status_fr,
)
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller

PORTABLE_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.CONTRACT})
PROCESSOR_ROLE_FR = (
    "sous-traitant du responsable (article 28 du RGPD) : reçoit vos appels, prend vos "
    "messages et vos rendez-vous et les transmet au responsable"
)


@dataclass(frozen=True)
class Built:
    token: str  # the requester's link (the letter, by e-mail or SMS)
    expires_at: dt.datetime
    download_id: uuid.UUID
    counts: dict[str, Any]
    controller_token: str = ""  # the client's own link (API, OpenDSR results_url)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _processors(session: Session, processor: tuple[str, str, str]) -> dict[str, Any]:
    """The processor (the provider) and its sub-processors from the live register: recipients
    of the person's data (Art. 15(1)(c), CJEU C-154/21: the actual recipients, by name)."""
    from permanence.contracts.model import SubProcessor

    if not processor[0]:
        from permanence.config import get_settings

        s = get_settings()
        processor = (s.provider_name, s.provider_address, s.provider_contact_email)
    name, address, contact = processor
    subs = session.scalars(
        select(SubProcessor).where(SubProcessor.status == "active").order_by(SubProcessor.name)
    ).all()
    return {
        "sous_traitant": {
            "nom": name,
            "adresse": address,
            "contact": contact,
            "role": PROCESSOR_ROLE_FR,
        },
        "sous_traitants_ulterieurs": [
            {"nom": s.name, "service": s.service, "pays": s.country} for s in subs
        ],
    }


def _art15(
    mandate: Mandate,
    recipients: list[dict[str, Any]],
    processors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    purposes = []
    for p in mandate.purposes:
        retention = {
            label: duration_fr(mandate.retention(kind, p.code))
            for kind, label in RETENTION_FR.items()
            if mandate.retention(kind, p.code) is not None
        }
        purposes.append(
            {
                "code": p.code,
                "finalite": p.label_fr,
                "base_legale": BASIS_FR[p.legal_basis],
                "interet_legitime": p.legitimate_interest,
                "base_article_9": p.special_category_basis.value
                if p.special_category_basis
                else None,
                "categories": sorted({CATEGORY_FR[f.category] for f in p.resolved_fields}),
                "conservation": retention,
            }
        )
    ctrl = mandate.controller
    return {
        "responsable": {
            "nom": ctrl.name,
            "adresse": ctrl.address,
            "contact": ctrl.contact_email,
            "dpo": ctrl.dpo.email if ctrl.dpo else None,
            "contact_droits": ctrl.rights_contact,
        },
        "finalites": purposes,
        "destinataires": recipients
        or [{"canal": CHANNEL_FR.get("portal", "portal"), "destinataire": "le responsable"}],
        **(processors or {}),
        "transferts_hors_ue": [
            {"pays": t.country, "garantie": t.safeguard.value} for t in mandate.transfers
        ],
        "source": SOURCE_FR,
        "decision_automatisee": "aucune décision fondée exclusivement sur un traitement automatisé",
        "droits": RIGHTS_FR,
        "reclamation_cnil": texts.CNIL_COMPLAINT_URL,
        "recours": texts.REMEDIES_FR,
    }


def _audio_ext(content_type: str) -> str:
    return {"audio/mpeg": "mp3", "audio/ogg": "ogg", "audio/x-wav": "wav"}.get(content_type, "wav")


def build(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    req: RightsRequest,
    caller: Caller,
    *,
    portability: bool,
    now: dt.datetime | None = None,
) -> Built:
    now = now or utcnow()
    recs = records_of(session, caller)
    cipher = keyring.cipher(session, caller.account_id, caller.id)
    ident = subjects.identity(session, keyring, caller, audited=False)
    mandates: dict[uuid.UUID, Mandate] = {}

    def mandate_of(mid: uuid.UUID) -> Mandate:
        if mid not in mandates:
            mandates[mid] = mandate_by_id(session, mid)[1]
        return mandates[mid]

    you = {
        "prenom": ident.first_name,
        "nom": ident.last_name,
        "telephone": ident.phone,
        "email": ident.email,
    }
    files: dict[str, bytes] = {}
    if portability:
        data = _portable(cipher, recs, mandate_of, you)
        files["portabilite.json"] = json.dumps(data, ensure_ascii=False, indent=2).encode()
        files["portabilite.csv"] = _portable_csv(data)
        counts = {"messages": len(data["messages"]), "appointments": len(data["rendez_vous"])}
    else:
        data, audio = _access(
            session, cipher, recs, outbox.recordings, you, req, now, outbox.processor
        )
        files["donnees.json"] = json.dumps(data, ensure_ascii=False, indent=2).encode()
        account = get_account(session, caller.account_id)
        files["rapport.html"] = render(
            "permanence.rights",
            "rapport.html",
            d=data,
            account=account.name,
            now=now,
            date_fr=date_fr,
            duration=duration_text,
            status_fr=status_fr,
            labels=_field_labels(recs, mandate_of),
            kinds=KIND_FR,
        ).encode()
        files.update(audio)
        counts = {
            "calls": len(data["appels"]),
            "messages": len(data["messages"]),
            "appointments": len(data["rendez_vous"]),
            "consents": len(data["consentements"]),
            "recordings": len(audio),
            "requests": len(data["demandes"]),
            "consultations": len(data["consultations"]),
        }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    payload = buf.getvalue()
    purpose = "portability" if portability else "access_package"
    # One link per recipient, each its own copy of the file (deleted once that link is used):
    # the client opening its link leaves the requester's untouched, and each use is audited.
    rows = {
        "requester": _store(
            session, outbox, cipher, req, caller, purpose, payload, now, _random_token(caller)
        ),
        "controller": _store(
            session,
            outbox,
            cipher,
            req,
            caller,
            purpose,
            payload,
            now,
            controller_token(keyring, req.account_id, req.id),
        ),
    }
    download = rows["requester"][0]
    token = rows["requester"][1]
    session.flush()
    audit.record(
        session,
        "rights.package",
        "rights_request",
        req.id,
        subject_id=caller.id,
        details={"purpose": purpose, "links": len(rows), **counts},
    )
    return Built(
        token,
        download.expires_at,
        download.id,
        {**counts, "bytes": len(payload)},
        controller_token=rows["controller"][1],
    )


def _access(
    session: Session,
    cipher: SubjectCipher,
    recs: Any,
    store: RecordingStore,
    you: dict[str, Any],
    req: RightsRequest,
    now: dt.datetime,
    processor: tuple[str, str, str] = ("", "", ""),
) -> tuple[dict[str, Any], dict[str, bytes]]:
    calls = []
    recorded_states = ("recording", "stored")
    recorded_calls = {r.call_id for r in recs.recordings}
    for c in recs.calls:
        calls.append(
            {
                "id": str(c.id),
                "debut": _iso(c.started_at),
                "decroche": _iso(c.answered_at),
                "fin": _iso(c.ended_at),
                "duree_s": call_seconds(c),
                "statut": c.status,
                "issue": c.outcome,
                "version_information": c.notice_version,
                "enregistrement": c.recording_state,
                # Whether a recording of this call is held (and is in this package).
                "enregistre": c.id in recorded_calls or c.recording_state in recorded_states,
                "numero_appelant": cipher.open_text("calls", "from", c.id, c.from_sealed)
                if c.from_sealed
                else None,
            }
        )
    seen: dict[tuple[str, str], dt.datetime] = {}
    messages = []
    for m in recs.messages:
        got = delivery.recipients_of(session, m.id)
        for r in got:
            key = (r.channel, r.description)
            seen[key] = min(seen.get(key, r.first_received_at), r.first_received_at)
        messages.append(
            {
                "id": str(m.id),
                "cree_le": _iso(m.created_at),
                "finalite": m.purpose,
                "statut": m.status,
                "champs": cipher.open_json("messages", "payload", m.id, m.payload_sealed),
                "destinataires": [
                    {"canal": CHANNEL_FR.get(r.channel, r.channel), "destinataire": r.description}
                    for r in got
                ],
            }
        )
    appointments = [
        {
            "id": str(a.id),
            "debut": _iso(a.starts_at),
            "fin": _iso(a.ends_at),
            "finalite": a.purpose,
            "statut": a.status,
            "champs": cipher.open_json("appointments", "payload", a.id, a.payload_sealed),
        }
        for a in recs.appointments
    ]
    consents = [
        {
            "id": str(c.id),
            "finalite": c.purpose,
            "version_texte": c.wording_version,
            "canal": c.channel,
            "donne_le": _iso(c.given_at),
            "retire_le": _iso(c.withdrawn_at),
        }
        for c in recs.consents
    ]
    audio: dict[str, bytes] = {}
    recordings = []
    for r in recs.recordings:
        name = f"enregistrements/{r.id}.{_audio_ext(r.content_type)}"
        ad = cipher.ad("recordings", "audio", r.id)
        with store.open(r.storage_key) as fh:
            audio[name] = b"".join(decrypt_stream(cipher.dek, ad, fh))
        recordings.append(
            {
                "id": str(r.id),
                "appel": str(r.call_id),
                "type": r.kind,
                "cree_le": _iso(r.created_at),
                "duree_s": r.duration_s,
                "fichier": name,
            }
        )
    rectifications = [
        {
            "le": _iso(x.at),
            "objet": x.record_kind,
            "changement": cipher.open_json("rectifications", "changed", x.id, x.changed_sealed),
        }
        for x in recs.rectifications
    ]
    requests = [
        {"id": str(q.id), "type": q.kind, "recue_le": _iso(q.received_at), "etat": q.state}
        for q in recs.requests
    ]
    recipients = [
        {"canal": CHANNEL_FR.get(ch, ch), "destinataire": desc, "depuis": _iso(at)}
        for (ch, desc), at in sorted(seen.items(), key=lambda kv: kv[1])
    ]
    _row, current = mandate_version(session, recs.caller.account_id)
    data = {
        "format": "permanence.acces.v1",
        "genere_le": now.isoformat(),
        "demande": {"id": str(req.id), "recue_le": _iso(req.received_at)},
        "vous": you,
        "appels": calls,
        "messages": messages,
        "rendez_vous": appointments,
        "consentements": consents,
        "enregistrements": recordings,
        "rectifications": rectifications,
        "demandes": requests,
        "consultations": [
            c.json() for c in consultations_of(session, recs.caller.id) if c.at <= now
        ],
        "informations": _art15(current, recipients, _processors(session, processor)),
    }
    return data, audio


def _portable(
    cipher: SubjectCipher, recs: Any, mandate_of: Any, you: dict[str, Any]
) -> dict[str, Any]:
    def portable(mandate_id: uuid.UUID, purpose: str) -> bool:
        try:
            return mandate_of(mandate_id).purpose(purpose).legal_basis in PORTABLE_BASES
        except LookupError:
            return False

    messages = [
        {
            "id": str(m.id),
            "date": _iso(m.created_at),
            "finalite": m.purpose,
            "champs": cipher.open_json("messages", "payload", m.id, m.payload_sealed),
        }
        for m in recs.messages
        if portable(m.mandate_id, m.purpose)
    ]
    appointments = [
        {
            "id": str(a.id),
            "date": _iso(a.starts_at),
            "finalite": a.purpose,
            "champs": cipher.open_json("appointments", "payload", a.id, a.payload_sealed),
        }
        for a in recs.appointments
        if portable(a.mandate_id, a.purpose)
    ]
    return {
        "format": "permanence.portabilite.v1",
        "vous": you,
        "messages": messages,
        "rendez_vous": appointments,
    }


def _portable_csv(data: dict[str, Any]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["type", "id", "date", "finalite", "champ", "valeur"])
    for key, value in data["vous"].items():
        if value is not None:
            w.writerow(["vous", "", "", "", key, value])
    for kind, rows in (("message", data["messages"]), ("rendez_vous", data["rendez_vous"])):
        for row in rows:
            for name, value in sorted(row["champs"].items()):
                w.writerow([kind, row["id"], row["date"], row["finalite"], name, value])
    return out.getvalue().encode()
