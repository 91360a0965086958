"""Test data builders: accounts with a mandate, callers, contexts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from importlib import resources

from permanence.accounts.model import Account, AccountKind
from permanence.accounts.service import create_account, import_mandate
from permanence.context import STAFF_ROLES, AccessContext, Role
from permanence.runtime import Runtime
from permanence.subjects import service as subjects

DEMO_MANDATES = {
    "cabinet-lefevre": AccountKind.MEDICAL,
    "cabinet-moreau-avocats": AccountKind.LEGAL,
    "plomberie-durand": AccountKind.TRADES,
}


def demo_mandate_text(slug: str) -> str:
    return resources.files("permanence.demo").joinpath("mandates", f"{slug}.yaml").read_text()


# A trained operator, created with the first account of each test database.
OPERATOR_ID = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


def ensure_trained_operator(rt: Runtime) -> uuid.UUID:
    from permanence.staff.model import User
    from permanence.staff.training import record_training, sign_undertaking

    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        if s.get(User, OPERATOR_ID) is None:
            s.add(
                User(
                    id=OPERATOR_ID,
                    email="operatrice.test@permanence.example",
                    display_name="Opératrice Test",
                    role=Role.OPERATOR,
                    password_hash="!",
                )
            )
            s.flush()
            record_training(s, OPERATOR_ID)
            sign_undertaking(s, OPERATOR_ID)
    return OPERATOR_ID


def make_account(
    rt: Runtime, slug: str = "cabinet-lefevre", *, with_mandate: bool = True
) -> Account:
    """An account; for a demo slug, with the demo mandate imported."""
    kind = DEMO_MANDATES.get(slug, AccountKind.OTHER)
    ensure_trained_operator(rt)
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        account = create_account(
            s, rt.keyring, slug=slug, name=slug.replace("-", " ").title(), kind=kind
        )
        if with_mandate and slug in DEMO_MANDATES:
            import_mandate(s, demo_mandate_text(slug), account_id=account.id)
    return account


def ctx_for(
    account_id: uuid.UUID,
    role: Role = Role.OPERATOR,
    reason: str = "test",
    actor_id: uuid.UUID | None = None,
) -> AccessContext:
    """A context for the account; staff act as the trained test operator unless told."""
    actor = actor_id or (OPERATOR_ID if role in STAFF_ROLES else uuid.uuid4())
    return AccessContext(role=role, reason=reason, actor_id=actor, account_id=account_id)


def make_caller(
    rt: Runtime,
    account_id: uuid.UUID,
    *,
    first: str = "Camille",
    last: str = "Martin",
    phone: str | None = "06 39 98 12 34",
    email: str | None = "camille.martin@exemple.fr",
) -> uuid.UUID:
    with rt.db.session(ctx_for(account_id)) as s:
        caller, _ = subjects.register(
            s,
            rt.keyring,
            subjects.Identity(first_name=first, last_name=last, phone=phone, email=email),
        )
        return caller.id


@dataclass(frozen=True)
class CallerRecords:
    caller_id: uuid.UUID
    call_id: uuid.UUID
    message_id: uuid.UUID
    recording_id: uuid.UUID
    recording_key: str


def caller_with_records(
    rt: Runtime,
    account_id: uuid.UUID,
    *,
    first: str,
    last: str,
    phone: str,
    email: str,
    dialled: str = "+33240000001",
) -> CallerRecords:
    """A caller of the plumber's demo mandate (dialled on its number) with a call, a message
    under the "intervention" purpose and a stored, encrypted recording (``RIFF-audio-`` and
    the last name)."""
    from permanence.calls import service as calls
    from permanence.crypto.stream import encrypt_stream
    from permanence.filestore import storage_key, store_from_settings
    from permanence.messages import service as messages
    from permanence.recordings.model import Recording

    caller_id = make_caller(rt, account_id, first=first, last=last, phone=phone, email=email)
    with rt.db.session(ctx_for(account_id)) as s:
        call = calls.open_call(s, rt.keyring, dialled=dialled, caller_number=phone).call
        assert call.caller_id == caller_id
        msg = messages.take_message(
            s,
            rt.keyring,
            caller_id=caller_id,
            purpose="intervention",
            call_id=call.id,
            values={
                "last_name": last,
                "phone": phone,
                "email": email,
                "address": "3 rue des Ormes, 44000 Nantes",
                "urgency": "à planifier",
                "description": "Robinet qui goutte",
            },
        )
        call_id, mandate_id, message_id = call.id, call.mandate_id, msg.id
    rec_id = uuid.uuid4()
    key = storage_key(account_id, rec_id)
    with rt.db.session(AccessContext.system("test", account_id)) as s:
        cipher = rt.keyring.cipher(s, account_id, caller_id)
        ad = cipher.ad("recordings", "audio", rec_id)
        size = store_from_settings(rt.settings).put(
            key, lambda fh: encrypt_stream(cipher.dek, ad, [b"RIFF-audio-" + last.encode()], fh)
        )
        s.add(
            Recording(
                id=rec_id,
                account_id=account_id,
                call_id=call_id,
                caller_id=caller_id,
                mandate_id=mandate_id,
                provider_sid=f"RE{rec_id.hex}",
                storage_key=key,
                size_bytes=size,
            )
        )
    return CallerRecords(caller_id, call_id, message_id, rec_id, key)


def signed_in_operator(
    rt: Runtime, email: str = "op.signed@permanence.example", password: str = "mot de passe du test"
) -> tuple[uuid.UUID, str, str]:
    """A trained operator, signed in with password and TOTP: (user id, session token, CSRF
    token) — for driving a real server over HTTP."""
    import pyotp

    from permanence.staff import auth
    from permanence.staff.service import create_user
    from permanence.staff.training import record_training, sign_undertaking

    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        new = create_user(
            s,
            rt.keyring,
            email=email,
            display_name="Opératrice",
            role=Role.OPERATOR,
            password=password,
        )
        record_training(s, new.user.id)
        sign_undertaking(s, new.user.id)
    assert new.totp_uri is not None
    with rt.db.session(AccessContext.system("test")) as s:
        signed = auth.sign_in(
            s,
            rt.keyring,
            email=email,
            password=password,
            totp_code=pyotp.parse_uri(new.totp_uri).now(),
        )
        assert signed is not None
    return new.user.id, signed.token, signed.csrf_token
