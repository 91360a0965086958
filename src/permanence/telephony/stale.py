"""Calls that never heard their end: resolve them, so none stays "ringing" for ever.

A provider's final status callback can be lost (an outage on either side, a timeout). A
call with no final status ``PERMANENCE_TELEPHONY_STALE_MINUTES`` after it started is
resolved here: the REST API of the provider the call came through (Twilio-compatible or
Telnyx TeXML) is asked for the call's status when its credentials are configured; a final
status is applied as if its callback had come; otherwise the call is marked ``expired``
(``calls.outcome.expire``). Run by the delivery loop inside ``serve`` and by
``permanence telephony resolve-stale`` (cron). Network work happens between transactions.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter

from sqlalchemy import select, tuple_

from permanence.accounts.model import Account, AccountStatus
from permanence.audit import service as audit
from permanence.calls import outcome as outcomes
from permanence.calls.model import TERMINAL_STATUSES, Call
from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.errors import PermanenceError
from permanence.runtime import Runtime
from permanence.telephony.ports import TelephonyApi, configured_apis

log = logging.getLogger("permanence.telephony")

REASON = "telephony:stale-calls"
OPEN_STATUSES = ("queued", "ringing", "in-progress")
BATCH = 200


def resolve_stale(
    rt: Runtime,
    *,
    now: dt.datetime | None = None,
    api: TelephonyApi | None = None,
) -> dict[str, int]:
    """One pass over every active account; returns counts ``resolved`` (a final status
    from the provider), ``expired``, ``still_open`` (the provider says it goes on).
    ``api``, when given, answers for every call."""
    from permanence.telephony.service import apply_status

    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=rt.settings.telephony_stale_minutes)
    apis = configured_apis(rt.settings) if api is None else {}
    counts: Counter[str] = Counter()
    with rt.db.session(AccessContext.system(REASON), readonly=True) as s:
        accounts = s.scalars(
            select(Account.id).where(Account.status == AccountStatus.ACTIVE).order_by(Account.id)
        ).all()
    for account_id in accounts:
        ctx = AccessContext.system(REASON, account_id)
        after: tuple[dt.datetime, uuid.UUID] | None = None
        while True:
            with rt.db.session(ctx, readonly=True) as s:
                q = (
                    select(Call.id, Call.provider_sid, Call.provider, Call.started_at)
                    .where(
                        Call.account_id == account_id,
                        Call.status.in_(OPEN_STATUSES),
                        Call.started_at < cutoff,
                    )
                    .order_by(Call.started_at, Call.id)
                    .limit(BATCH)
                )
                if after is not None:
                    q = q.where(tuple_(Call.started_at, Call.id) > tuple_(*after))
                rows = s.execute(q).all()
            if not rows:
                break
            after = (rows[-1][3], rows[-1][0])
            answers: dict[uuid.UUID, tuple[str, int | None] | None] = {}
            for call_id, sid, provider, _started in rows:
                port = api if api is not None else apis.get(provider or "")
                answers[call_id] = _ask(port, sid) if sid else None
            with rt.db.session(ctx) as s:
                for call_id, _sid, _p, _started in rows:
                    call = s.get(Call, call_id)
                    if call is None or call.status not in OPEN_STATUSES:
                        continue  # a callback came meanwhile
                    told = answers[call_id]
                    if told is not None and told[0] in TERMINAL_STATUSES:
                        apply_status(s, call, told[0], told[1])
                        counts["resolved"] += 1
                    elif told is not None:
                        counts["still_open"] += 1
                    else:
                        outcome = outcomes.expire(call)
                        audit.record(
                            s, "call.expired", "call", call.id, details={"outcome": outcome}
                        )
                        counts["expired"] += 1
            if len(rows) < BATCH:
                break
    return {k: counts[k] for k in ("resolved", "expired", "still_open")}


def _ask(api: TelephonyApi | None, sid: str) -> tuple[str, int | None] | None:
    """The provider's word on the call, or None (no API, or it could not say)."""
    if api is None:
        return None
    import httpx

    try:
        return api.call_status(sid)
    except (PermanenceError, httpx.HTTPError) as exc:
        log.warning("asking the provider for a stale call failed: %s", exc.__class__.__name__)
        return None
