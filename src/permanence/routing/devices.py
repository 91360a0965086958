"""Each staff member's own line: where the dispatcher rings them.

A device is ``client:IDENTITY`` (a browser or app softphone on the provider's client SDK),
``sip:user@host`` (a desk phone or softphone registered on a SIP domain), or an E.164 number
(a mobile). Set by an administrator (page or API), audited without the value.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import Role
from permanence.db import ctx_of, utcnow
from permanence.errors import NotFound, PermissionDenied, ValidationFailed
from permanence.routing.model import OperatorLine
from permanence.staff.model import User

ANSWERING = (Role.OPERATOR, Role.SUPERVISOR)
_CLIENT = re.compile(r"^client:[A-Za-z0-9_.\-]{1,100}$")
_SIP = re.compile(r"^sips?:[A-Za-z0-9_.!~*'()&=+$,;?/%\-]{1,64}@[A-Za-z0-9.\-]{1,120}(:\d{1,5})?$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DEVICE_HELP = (
    "a device is client:IDENTITY (letters, digits, _ . -), sip:user@host, "
    "or a number in international form (+33…)"
)


def normalise_device(raw: str) -> str:
    """The device in its canonical form, or ValidationFailed naming the accepted forms."""
    value = raw.strip()
    if value.lower().startswith(("client:", "sip:", "sips:")):
        scheme, _, rest = value.partition(":")
        value = f"{scheme.lower()}:{rest}"
        if _CLIENT.match(value) or _SIP.match(value):
            return value
        raise ValidationFailed(DEVICE_HELP)
    compact = re.sub(r"[\s.\-()]", "", value)
    if _E164.match(compact):
        return compact
    raise ValidationFailed(DEVICE_HELP)


def _answering_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or user.role not in ANSWERING:
        raise NotFound("no operator or supervisor with this id")
    return user


def set_device(session: Session, user_id: uuid.UUID, raw: str | None) -> OperatorLine | None:
    """An administrator sets (or, with an empty value, removes) a staff member's device."""
    if ctx_of(session).role not in (Role.ADMIN, Role.SYSTEM):
        raise PermissionDenied("only an administrator sets operators' devices")
    _answering_user(session, user_id)
    line = session.get(OperatorLine, user_id)
    if raw is None or not raw.strip():
        if line is not None:
            session.delete(line)
            session.flush()
            audit.record(session, "operator.device_removed", "user", user_id)
        return None
    device = normalise_device(raw)
    kind = device.split(":", 1)[0] if ":" in device else "number"
    if line is None:
        line = OperatorLine(user_id=user_id, device=device, updated_at=utcnow())
        session.add(line)
    else:
        line.device = device
        line.updated_at = utcnow()
    session.flush()
    # The kind of device only: a staff member's own number is not written to the log.
    audit.record(session, "operator.device_set", "user", user_id, details={"kind": kind})
    return line


def lines(session: Session) -> list[tuple[User, str | None]]:
    """Every active operator and supervisor, with their device (or None), by name."""
    rows = session.execute(
        select(User, OperatorLine.device)
        .outerjoin(OperatorLine, OperatorLine.user_id == User.id)
        .where(User.role.in_(ANSWERING), User.active.is_(True))
        .order_by(User.display_name)
    ).all()
    return [(u, d) for u, d in rows]
