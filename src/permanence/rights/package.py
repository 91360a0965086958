"""The access package (Art. 15) and the portable data (Art. 20), as ZIP files behind an
expiring, single-use link.

Access: ``donnees.json`` (machine-readable), ``rapport.html`` (the French report with the
Art. 15(1) information derived from the mandate) and the audio of the subject's recordings
(voice is personal data: the audio is part of the copy, EDPB 01/2022). Portability: only what
the subject provided, for purposes based on consent or a contract, as JSON and CSV.

The ZIP is encrypted under the subject's key as it is stored; only the token's hash is kept.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import secrets
import uuid
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from permanence.accounts.service import get_account, mandate_by_id, mandate_version
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring, SubjectCipher
from permanence.crypto.stream import decrypt_stream, encrypt_stream
from permanence.db import utcnow
from permanence.delivery import service as delivery
from permanence.mandates.schema import IsoDuration, LegalBasis, Mandate, RetentionKind
from permanence.recordings.storage import RecordingStore
from permanence.render import PARIS, render
from permanence.rights import texts
from permanence.rights.model import Download, RightsRequest
from permanence.stats.usage import MONTHS_FR
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller

if TYPE_CHECKING:
    from permanence.rights.service import Outbox

PORTABLE_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.CONTRACT})
SOURCE_FR = "vous-même, lors de vos appels"

BASIS_FR = {
    LegalBasis.CONSENT: "votre consentement (article 6(1)(a) du RGPD)",
    LegalBasis.CONTRACT: "un contrat ou des mesures précontractuelles (article 6(1)(b))",
    LegalBasis.LEGAL_OBLIGATION: "une obligation légale (article 6(1)(c))",
    LegalBasis.VITAL_INTERESTS: "la sauvegarde d'intérêts vitaux (article 6(1)(d))",
    LegalBasis.PUBLIC_TASK: "une mission d'intérêt public (article 6(1)(e))",
    LegalBasis.LEGITIMATE_INTEREST: "l'intérêt légitime du responsable (article 6(1)(f))",
}
CATEGORY_FR = {
    "identity": "identité",
    "contact": "coordonnées",
    "administrative": "informations administratives",
    "health": "données de santé",
    "financial": "informations financières",
    "free_text": "texte libre",
    "other": "autres",
}
RETENTION_FR = {
    RetentionKind.MESSAGE: "messages",
    RetentionKind.APPOINTMENT: "rendez-vous",
    RetentionKind.CALL_LOG: "journal des appels",
    RetentionKind.CONSENT: "preuves de consentement",
    RetentionKind.RECORDING: "enregistrements",
}
RIGHTS_FR = [
    "accès à vos données (article 15)",
    "rectification (article 16)",
    "effacement (article 17)",
    "limitation du traitement (article 18)",
    "portabilité (article 20)",
    "opposition (article 21)",
    "retrait du consentement à tout moment, sans effet sur les traitements antérieurs",
]
CHANNEL_FR = {
    "portal": "espace client du responsable",
    "email": "courriel",
    "webhook": "système informatique du responsable",
    "escalation_email": "personne d'astreinte (courriel)",
    "escalation_sms": "personne d'astreinte (SMS)",
    "notice_sms": "vous-même (notice d'information, SMS)",
}


def duration_fr(d: IsoDuration | None) -> str:
    if d is None:
        return "non conservé"
    parts = []
    for n, one, many in (
        (d.years, "an", "ans"),
        (d.months, "mois", "mois"),
        (d.weeks, "semaine", "semaines"),
        (d.days, "jour", "jours"),
        (d.hours, "heure", "heures"),
    ):
        if n:
            parts.append(f"{n} {one if n == 1 else many}")
    return " ".join(parts) or "0 jour"


@dataclass(frozen=True)
class Built:
    token: str  # the requester's link (the letter, by e-mail or SMS)
    expires_at: dt.datetime
    download_id: uuid.UUID
    counts: dict[str, Any]
    controller_token: str = ""  # the client's own link (API, OpenDSR results_url)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _art15(mandate: Mandate, recipients: list[dict[str, Any]]) -> dict[str, Any]:
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
                "categories": sorted({CATEGORY_FR[f.category.value] for f in p.resolved_fields}),
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
    from permanence.rights.service import records_of

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
        data, audio = _access(session, cipher, recs, outbox.recordings, you, req, now)
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


# The report speaks French (docs/rights.md): states, not codes.
STATUS_FR: dict[str, dict[str, str]] = {
    "call": {
        "ringing": "en cours",
        "in-progress": "en cours",
        "completed": "terminé",
        "busy": "occupé",
        "failed": "échoué",
        "no-answer": "sans réponse",
        "canceled": "annulé",
        "expired": "terminé (fin non reçue)",
    },
    "message": {
        "new": "nouveau",
        "acknowledged": "pris en compte",
    },
    "appointment": {"booked": "réservé", "cancelled": "annulé", "done": "honoré"},
    "recording": {
        "off": "non",
        "offered": "proposé",
        "objected": "refusé par vous",
        "recording": "en cours",
        "stored": "conservé",
        "deleted": "supprimé",
    },
    "request": {
        "received": "reçue",
        "verifying": "vérification en cours",
        "waiting_info": "en attente d'informations",
        "verified": "vérifiée",
        "completed": "terminée",
        "refused": "refusée",
        "cancelled": "annulée",
    },
}


KIND_FR = {
    "access": "accès",
    "portability": "portabilité",
    "rectification": "rectification",
    "erasure": "effacement",
    "restriction": "limitation",
    "objection": "opposition",
}


def status_fr(kind: str, code: str | None) -> str:
    if not code:
        return "—"
    return STATUS_FR.get(kind, {}).get(code, code)


def date_fr(value: str | dt.datetime | None, with_time: bool = True) -> str:
    """An ISO date-time (UTC) as French words in Paris time: "6 décembre 2026 à 09 h 21"."""
    if not value:
        return "—"
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    local = when.astimezone(PARIS)
    day = f"{local.day} {MONTHS_FR[local.month - 1]} {local.year}"
    return f"{day} à {local:%H} h {local:%M}" if with_time else day


def call_seconds(call: Any) -> int | None:
    """The call's length: the provider's figure, or from when it was answered (else started)
    to when it ended."""
    if call.duration_s is not None:
        return int(call.duration_s)
    start = call.answered_at or call.started_at
    if start is None or call.ended_at is None:
        return None
    return max(0, int((call.ended_at - start).total_seconds()))


def duration_text(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _field_labels(recs: Any, mandate_of: Any) -> dict[str, dict[str, str]]:
    """For each message and appointment (by id): field name -> the mandate's French label,
    and "" -> the purpose's French label."""
    out: dict[str, dict[str, str]] = {}
    for rec in [*recs.messages, *recs.appointments]:
        try:
            purpose = mandate_of(rec.mandate_id).purpose(rec.purpose)
        except LookupError:
            continue
        labels = {f.name: f.display_label_fr for f in purpose.resolved_fields}
        labels[""] = purpose.label_fr
        out[str(rec.id)] = labels
    return out


def _random_token(caller: Caller) -> str:
    return f"{caller.account_id}.{secrets.token_urlsafe(32)}"


def controller_token(keyring: Keyring, account_id: uuid.UUID, request_id: uuid.UUID) -> str:
    """The client's link to a request's results, derived from the master key and the request.

    Derived, not stored: status polling (OpenDSR ``results_url``) gives it again while it is
    unused, and the row is found by its hash, the primary key (no scan). Only the hash is in
    the database, as for every link; the master key is needed to compute it."""
    mac = hmac.new(
        keyring.derived_secret("rights-controller-link"), request_id.bytes, hashlib.sha256
    ).digest()
    return f"{account_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def controller_link(
    session: Session, keyring: Keyring, req: RightsRequest, now: dt.datetime
) -> Download | None:
    """The client's download row for the request while it can still be used, else None."""
    row = session.get(Download, token_hash(controller_token(keyring, req.account_id, req.id)))
    if row is None or row.request_id != req.id or row.used_at is not None or now >= row.expires_at:
        return None
    return row


def _store(
    session: Session,
    outbox: Outbox,
    cipher: SubjectCipher,
    req: RightsRequest,
    caller: Caller,
    purpose: str,
    payload: bytes,
    now: dt.datetime,
    token: str,
) -> tuple[Download, str]:
    stem = "portabilite" if purpose == "portability" else "acces"
    download = Download(
        id=uuid.uuid4(),
        account_id=caller.account_id,
        request_id=req.id,
        subject_id=caller.id,
        purpose=purpose,
        filename=f"{stem}-{req.id.hex[:8]}.zip",
        created_at=now,
        expires_at=now + _ttl(),
    )
    download.storage_key = f"{caller.account_id}/{download.id}.pmr"
    ad = file_ad(download)
    dek = cipher.dek
    download.size_bytes = outbox.files.put(
        download.storage_key, lambda fh: encrypt_stream(dek, ad, [payload], fh)
    )
    download.token_hash = token_hash(token)
    session.add(download)
    return download, token


def _ttl() -> dt.timedelta:
    from permanence.rights.service import DOWNLOAD_TTL

    return DOWNLOAD_TTL


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def file_ad(download: Download) -> bytes:
    return f"rights-download|{download.account_id}|{download.id}".encode()


def _access(
    session: Session,
    cipher: SubjectCipher,
    recs: Any,
    store: RecordingStore,
    you: dict[str, Any],
    req: RightsRequest,
    now: dt.datetime,
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
        "informations": _art15(current, recipients),
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


@dataclass(frozen=True)
class Claimed:
    filename: str
    storage_key: str
    dek: bytes
    ad: bytes


def account_of_token(token: str) -> uuid.UUID | None:
    """The account a download token belongs to (its prefix), or None for a malformed one."""
    prefix, sep, _rest = token.partition(".")
    if not sep:
        return None
    try:
        return uuid.UUID(prefix)
    except ValueError:
        return None


def claim(
    session: Session, keyring: Keyring, token: str, *, now: dt.datetime | None = None
) -> Claimed:
    """Use a download link: once, before it expires. The file is for the caller to stream and
    then delete (``purge`` removes what expired unused)."""
    from permanence.db import ctx_of
    from permanence.errors import Conflict, NotFound

    now = now or utcnow()
    row = session.get(Download, token_hash(token))
    if row is None or row.account_id != ctx_of(session).account_id:
        raise NotFound("no such download")
    if row.used_at is not None:
        raise Conflict("this link was already used")
    if now >= row.expires_at:
        raise Conflict("this link has expired")
    row.used_at = now
    if row.subject_id is None:
        raise NotFound("no such download")
    cipher = keyring.cipher(session, row.account_id, row.subject_id)
    audit.record(
        session,
        "rights.download",
        "rights_request",
        row.request_id,
        subject_id=row.subject_id,
        details={
            "purpose": row.purpose,
            "recipient": (
                "controller"
                if hmac.compare_digest(
                    token, controller_token(keyring, row.account_id, row.request_id)
                )
                else "requester"
            ),
        },
    )
    return Claimed(row.filename, row.storage_key, cipher.dek, file_ad(row))


def purge(session: Session, store: RecordingStore, now: dt.datetime) -> int:
    """Delete the files of the context's account that were downloaded or have expired."""
    from sqlalchemy import or_, select

    from permanence.db import ctx_of

    account_id = ctx_of(session).require_account()
    rows = session.scalars(
        select(Download).where(
            Download.account_id == account_id,
            or_(Download.used_at.is_not(None), Download.expires_at <= now),
        )
    ).all()
    for row in rows:
        store.delete(row.storage_key)
        session.delete(row)
    return len(rows)
