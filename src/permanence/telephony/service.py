"""The voice webhooks' use cases: the call flow in TwiML, the call lifecycle, recordings.

Flow (docs/telephony.md): the incoming call is routed by its dialled number (``To``) to the
client account; the reply says the mandate's layer-1 notice in French and, where the policy
records this call, the recording notice inside a ``<Gather>`` so the caller can press the
objection key; then the call is offered to the operators (``<Dial>``, recorded only if the
caller did not object); when nobody answers, voicemail.

Webhooks act with a SYSTEM context (``telephony:<provider>``): they are authenticated by the
provider's signature (checked by the route), and switch to the call's account once routed.
Follow-up URLs carry our account and call ids (pseudonymous, covered by the signature) so a
callback without ``To`` — the recording status callback — still finds its call under
row-level security.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import account_for_did, mandate_by_id
from permanence.audit import service as audit
from permanence.calls import outcome as outcomes
from permanence.calls import service as calls
from permanence.calls.model import EXPIRED_STATUS, TERMINAL_STATUSES, Call
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.crypto import normalize
from permanence.crypto.keyring import Keyring
from permanence.crypto.stream import encrypt_stream
from permanence.db import ctx_of, switch_account, utcnow
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.recordings import service as recordings
from permanence.recordings.model import Recording
from permanence.recordings.storage import RecordingStore, storage_key
from permanence.runtime import Runtime
from permanence.telephony import twiml
from permanence.telephony.ports import TelephonyApi

log = logging.getLogger("permanence.telephony")

_SID = re.compile(r"^[A-Za-z0-9:_\-]{2,64}$")
CALL_STATUSES = frozenset({"queued", "ringing", "in-progress", *TERMINAL_STATUSES})
PROVIDERS = ("twilio", "telnyx")

NOT_ASSIGNED_FR = "Ce numéro n'est pas attribué. Au revoir."
UNAVAILABLE_FR = (
    "Nos opératrices et opérateurs sont tous occupés. Laissez votre message après le bip, "
    "nous vous rappellerons."
)


@dataclass(frozen=True)
class Webhook:
    """One verified webhook request: its provider, form fields and query parameters."""

    provider: str
    form: Mapping[str, str]
    query: Mapping[str, str]

    def get(self, name: str) -> str | None:
        value = self.form.get(name)
        return value if value else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ValidationFailed(f"the webhook has no {name}")
        return value

    def sid(self, name: str) -> str:
        value = self.require(name)
        if not _SID.match(value):
            raise ValidationFailed(f"{name} is not a valid identifier")
        return value

    def seconds(self, name: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if not value.isdigit() or len(value) > 7:
            raise ValidationFailed(f"{name} must be a whole number of seconds")
        return int(value)

    def query_uuid(self, name: str) -> uuid.UUID:
        try:
            return uuid.UUID(self.query.get(name, ""))
        except ValueError:
            raise ValidationFailed(f"the callback URL has no valid '{name}' parameter") from None


def webhook_context(provider: str) -> AccessContext:
    return AccessContext.system(f"telephony:{provider}")


def _url(settings: Settings, hook: Webhook, name: str, **query: str) -> str:
    base = settings.public_base_url.rstrip("/")
    url = f"{base}/telephony/{hook.provider}/{name}"
    return f"{url}?{urlencode(query)}" if query else url


def _e164_or_none(raw: str | None, region: str) -> str | None:
    """The caller's number, or None when withheld or unreadable ("anonymous", "+266696687")."""
    if raw is None:
        return None
    try:
        return normalize.phone_e164(raw, region)
    except (ValueError, ValidationFailed):
        return None


def _by_sid(session: Session, account_id: uuid.UUID, sid: str) -> Call | None:
    return session.scalars(
        select(Call).where(Call.account_id == account_id, Call.provider_sid == sid)
    ).first()


def _call_from_query(session: Session, hook: Webhook) -> Call:
    """The call named by our follow-up URL, checked against the provider's CallSid."""
    account_id = hook.query_uuid("a")
    switch_account(session, account_id)
    call = session.get(Call, hook.query_uuid("c"))
    if call is None or call.account_id != account_id or call.provider_sid != hook.sid("CallSid"):
        raise NotFound("no such call")
    return call


def incoming(session: Session, keyring: Keyring, settings: Settings, hook: Webhook) -> str:
    """A new call: route it, say the notice, offer the objection key, or dial the operators."""
    call_sid = hook.sid("CallSid")
    dialled = _e164_or_none(hook.require("To"), keyring.region)
    reply = twiml.Response()
    try:
        if dialled is None:
            raise NotFound("the dialled number is not valid")
        account, _did = account_for_did(session, dialled)
    except NotFound:
        reply.say(NOT_ASSIGNED_FR)
        reply.hangup()
        return reply.xml()
    switch_account(session, account.id)
    call = _by_sid(session, account.id, call_sid)
    if call is None:  # a retried webhook finds the call it already opened
        opened = calls.open_call(
            session,
            keyring,
            dialled=dialled,
            caller_number=_e164_or_none(hook.get("From"), keyring.region),
            provider_sid=call_sid,
        )
        call = opened.call
        call.provider = hook.provider
        # A caller who objected to recording (Art. 21, a rights request) is never recorded.
        objected = opened.caller.recording_objected_at is not None
        call.recording_state = (
            "offered"
            if not objected and recordings.should_record(opened.mandate, call_sid, utcnow())
            else "off"
        )
        calls.mark_notice_read(session, call)
        mandate = opened.mandate
    else:
        _row, mandate = mandate_by_id(session, call.mandate_id)
    ids = {"a": str(call.account_id), "c": str(call.id)}
    if call.recording_state == "offered":
        # The notice, then the recording notice with the objection key, before any recording.
        gather = reply.gather(action=_url(settings, hook, "gather", **ids), num_digits=1)
        reply.say(mandate.notice.layer1_fr, parent=gather)
        reply.say(mandate.notice.recording_fr or "", parent=gather)
        reply.redirect(_url(settings, hook, "gather", **ids))
    else:
        reply.say(mandate.notice.layer1_fr)
        _dial(reply, settings, hook, ids, record=False)
    return reply.xml()


def _dial(
    reply: twiml.Response, settings: Settings, hook: Webhook, ids: dict[str, str], *, record: bool
) -> None:
    reply.dial(
        settings.telephony_operators,
        action=_url(settings, hook, "dial-done", **ids),
        timeout=settings.telephony_ring_seconds,
        record="record-from-answer-dual" if record else None,
        recording_callback=_url(settings, hook, "recording", **ids, k="call") if record else None,
    )


def gather(session: Session, settings: Settings, hook: Webhook) -> str:
    """After the notice: the objection key means no recording; otherwise record (if offered)."""
    call = _call_from_query(session, hook)
    _row, mandate = mandate_by_id(session, call.mandate_id)
    digits = hook.get("Digits")
    if call.recording_state == "offered":
        if digits == mandate.recording.objection_key:
            call.recording_state = "objected"
            audit.record(
                session, "call.recording_objected", "call", call.id, details={"by": "keypress"}
            )
        else:
            call.recording_state = "recording"
            audit.record(session, "call.recording_started", "call", call.id)
    ids = {"a": str(call.account_id), "c": str(call.id)}
    reply = twiml.Response()
    _dial(reply, settings, hook, ids, record=call.recording_state == "recording")
    return reply.xml()


def dial_done(session: Session, settings: Settings, hook: Webhook) -> str:
    """The operators' leg ended (the ``<Dial>`` action), or the voicemail ``<Record>`` did.

    Which one is told by our own URL (``step=voicemail``), never by ``RecordingUrl``: a
    recorded ``<Dial>`` reports its recording on the same action (docs/telephony.md).
    """
    call = _call_from_query(session, hook)
    reply = twiml.Response()
    if hook.query.get("step") == "voicemail":
        # The <Record> action: audio was left only if it has a URL and a length.
        if hook.get("RecordingUrl") is not None and (hook.seconds("RecordingDuration") or 0) > 0:
            voicemail_left(session, call)
        reply.hangup()
        return reply.xml()
    dialled = hook.get("DialCallStatus") or "failed"
    if dialled in ("completed", "answered"):
        talk = hook.seconds("DialCallDuration")
        call.talk_s = talk
        if call.answered_at is None:  # the action comes when the operator's leg ends
            call.answered_at = utcnow() - dt.timedelta(seconds=talk or 0)
        outcomes.settle(call)
        audit.record(session, "call.answered", "call", call.id, details={"talk_s": talk})
        reply.hangup()
        return reply.xml()
    call.ended_reason = dialled if dialled in CALL_STATUSES else "failed"
    caller_status = hook.get("CallStatus")
    if caller_status in TERMINAL_STATUSES:
        # The caller hung up while the operators' phones rang: no voicemail to offer.
        _final_status(call, caller_status, None)
        audit.record(
            session, "call.abandoned", "call", call.id, details={"dial": call.ended_reason}
        )
        reply.hangup()
        return reply.xml()
    audit.record(
        session, "call.voicemail_offered", "call", call.id, details={"dial": call.ended_reason}
    )
    ids = {"a": str(call.account_id), "c": str(call.id)}
    reply.say(UNAVAILABLE_FR)
    reply.record(
        max_length=settings.telephony_voicemail_seconds,
        recording_callback=_url(settings, hook, "recording", **ids, k="voicemail"),
        action=_url(settings, hook, "dial-done", **ids, step="voicemail"),
    )
    return reply.xml()


def voicemail_left(session: Session, call: Call) -> None:
    """The caller left audio: the call's outcome is ``voicemail`` (once)."""
    if call.voicemail:
        return
    call.voicemail = True
    outcomes.settle(call)
    audit.record(session, "call.voicemail", "call", call.id)


def _final_status(call: Call, new: str, duration: int | None) -> None:
    call.status = new
    call.ended_at = call.ended_at or utcnow()
    if duration is not None:
        call.duration_s = duration
    call.ended_reason = call.ended_reason or new
    if call.recording_state == "offered":  # hung up during the notice: nothing recorded
        call.recording_state = "off"
    outcomes.settle(call)


def status(session: Session, keyring: Keyring, hook: Webhook) -> None:
    """Status callback: ringing → in-progress → a terminal status, with durations (the CDR).

    Statuses only move forward: a late 'ringing' after 'completed' changes nothing.
    ``in-progress`` means the provider answered the call to run our TwiML, not that an
    operator did: only the ``<Dial>`` action (or the console) records an answer.
    """
    call_sid = hook.sid("CallSid")
    new = hook.require("CallStatus")
    if new not in CALL_STATUSES:
        raise ValidationFailed("CallStatus is not a known call status")
    dialled = _e164_or_none(hook.get("To"), keyring.region)
    if dialled is None:
        raise ValidationFailed("the webhook has no valid To")
    account, _did = account_for_did(session, dialled)
    switch_account(session, account.id)
    call = _by_sid(session, account.id, call_sid)
    if call is None:
        raise NotFound("no such call")
    apply_status(session, call, new, hook.seconds("CallDuration"))


def apply_status(session: Session, call: Call, new: str, duration: int | None) -> bool:
    """One status of the provider's (callback or REST answer); False if it changed nothing."""
    if call.status in TERMINAL_STATUSES:
        return False
    if new in TERMINAL_STATUSES:
        _final_status(call, new, duration)
    elif call.status == EXPIRED_STATUS:
        return False  # a stale, non-final status does not reopen an expired call
    else:
        call.status = new
    audit.record(
        session, "call.status", "call", call.id, details={"status": new, "outcome": call.outcome}
    )
    return True


# -- recordings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    action: str  # store | discard | ignore
    recording_id: uuid.UUID
    account_id: uuid.UUID
    call_id: uuid.UUID
    caller_id: uuid.UUID | None
    mandate_id: uuid.UUID
    dek: bytes = b""
    ad: bytes = b""
    provider_delete_pending: bool = True


def _plan_recording(session: Session, keyring: Keyring, hook: Webhook) -> _Plan:
    call = _call_from_query(session, hook)
    kind = hook.query.get("k", "call")
    if kind not in ("call", "voicemail"):
        raise ValidationFailed("the callback URL has an unknown recording kind")
    sid = hook.sid("RecordingSid")
    existing = session.scalars(
        select(Recording).where(
            Recording.account_id == call.account_id, Recording.provider_sid == sid
        )
    ).first()
    base = _Plan("ignore", uuid.uuid4(), call.account_id, call.id, call.caller_id, call.mandate_id)
    if existing is not None:  # a retried callback: only the provider deletion may remain
        pending = existing.provider_deleted_at is None
        return replace(base, recording_id=existing.id, provider_delete_pending=pending)
    if hook.get("RecordingStatus") not in (None, "completed"):
        audit.record(session, "recording.absent", "call", call.id, details={"kind": kind})
        return replace(base, provider_delete_pending=False)
    if kind == "call" and call.recording_state != "recording":
        # The caller objected (keypress or the operator's stop button): the audio is
        # discarded unheard, here and at the provider.
        audit.record(
            session, "recording.discard", "call", call.id, details={"state": call.recording_state}
        )
        return replace(base, action="discard")
    if call.caller_id is None:
        raise Conflict("the call has no data subject to seal the recording for")
    cipher = keyring.cipher(session, call.account_id, call.caller_id)
    return replace(
        base,
        action="store",
        dek=cipher.dek,
        ad=cipher.ad("recordings", "audio", base.recording_id),
    )


def recording_callback(
    rt: Runtime, api: TelephonyApi, store: RecordingStore, hook: Webhook
) -> None:
    """The provider has a recording: fetch it, encrypt it as it streams, delete it there.

    Three short transactions around the network and file work (an open transaction would
    hold SQLite's write lock while the audio downloads): plan, then record the stored file
    (its audit entry in the same transaction), then note the deletion at the provider.
    A failure before the row is written leaves no file; the provider's copy is deleted only
    once ours is committed.
    """
    ctx = webhook_context(hook.provider)
    with rt.db.session(ctx) as s:
        plan = _plan_recording(s, rt.keyring, hook)
    sid = hook.sid("RecordingSid")
    kind = hook.query.get("k", "call")
    if plan.action == "store":
        key = storage_key(plan.account_id, plan.recording_id)
        url = hook.require("RecordingUrl")

        def write(sink: object) -> int:
            with api.fetch_recording(url) as chunks:
                return encrypt_stream(plan.dek, plan.ad, chunks, sink)  # type: ignore[arg-type]

        size = store.put(key, write)
        try:
            with rt.db.session(ctx) as s:
                switch_account(s, plan.account_id)
                call = s.get(Call, plan.call_id)
                assert call is not None and plan.caller_id is not None
                s.add(
                    Recording(
                        id=plan.recording_id,
                        account_id=plan.account_id,
                        call_id=plan.call_id,
                        caller_id=plan.caller_id,
                        mandate_id=plan.mandate_id,
                        kind=kind,
                        provider_sid=sid,
                        storage_key=key,
                        size_bytes=size,
                        duration_s=hook.seconds("RecordingDuration"),
                    )
                )
                if kind == "call":
                    call.recording_state = "stored"
                else:
                    voicemail_left(s, call)
                s.flush()
                audit.record(
                    s,
                    "recording.store",
                    "recording",
                    plan.recording_id,
                    subject_id=plan.caller_id,
                    details={"call": plan.call_id, "kind": kind, "bytes": size},
                )
        except BaseException:
            store.delete(key)
            raise
    if plan.action in ("store", "discard") or plan.provider_delete_pending:
        api.delete_recording(sid)
        with rt.db.session(ctx) as s:
            switch_account(s, plan.account_id)
            rec = s.get(Recording, plan.recording_id)
            if rec is not None:
                rec.provider_deleted_at = utcnow()
            audit.record(
                s, "recording.provider_delete", "call", plan.call_id, details={"kind": kind}
            )


def object_to_recording(session: Session, call_id: uuid.UUID) -> str | None:
    """The operator's stop button: the caller objects; returns the provider's call id if a
    recording is running there (to stop it), None if nothing was being recorded."""
    ctx = ctx_of(session)
    if ctx.role not in (Role.OPERATOR, Role.SUPERVISOR):
        raise PermissionDenied("only the operator on the call can stop its recording")
    call = calls.get_call(session, call_id)
    was = call.recording_state
    if was not in ("offered", "recording"):
        return None
    call.recording_state = "objected"
    audit.record(session, "call.recording_objected", "call", call.id, details={"by": "operator"})
    return call.provider_sid if was == "recording" else None


def stop_recording(
    rt: Runtime, api: Callable[[], TelephonyApi], ctx: AccessContext, call_id: uuid.UUID
) -> bool:
    """Mark the objection first (so a recording that still arrives is discarded), then ask
    the provider to stop. Returns whether a running recording was stopped. The provider's
    API (``api()``) is only built when there is something to stop."""
    with rt.db.session(ctx) as s:
        provider_sid = object_to_recording(s, call_id)
    if provider_sid is None:
        return False
    api().stop_recording(provider_sid)
    return True
