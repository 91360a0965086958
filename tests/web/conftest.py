"""Web fixtures: the ASGI app over the test database, signed-in clients of each kind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyotp
import pytest
from fastapi.testclient import TestClient

from permanence.accounts.model import Account
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime
from permanence.staff.service import create_user
from permanence.staff.training import record_training, sign_undertaking
from permanence.web.app import create_app
from tests.factories import make_account

PASSWORD = "un mot de passe de test"


@dataclass
class Person:
    id: uuid.UUID
    email: str
    role: Role
    totp: pyotp.TOTP | None
    account_id: uuid.UUID | None = None
    step: int = 0

    def code(self) -> str | None:
        """A fresh TOTP code (each time step is accepted once: replay protection)."""
        if self.totp is None:
            return None
        import time

        self.step += 1
        return self.totp.at(int(time.time()) + 30 * (self.step - 1))


@dataclass
class World:
    rt: Runtime
    app: object
    medical: Account
    plumber: Account
    operator: Person
    supervisor: Person
    dpo: Person
    admin: Person
    client_medical: Person
    client_plumber: Person
    sessions: dict[str, TestClient] = field(default_factory=dict)

    def client(self) -> TestClient:
        return TestClient(self.app)  # type: ignore[arg-type]

    def login(self, who: Person) -> TestClient:
        c = self.client()
        r = c.post(
            "/api/v1/auth/login",
            json={"email": who.email, "password": PASSWORD, "totp": who.code()},
        )
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c


def make_person(
    rt: Runtime, role: Role, email: str, account_id: uuid.UUID | None = None, trained: bool = True
) -> Person:
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        new = create_user(
            s,
            rt.keyring,
            email=email,
            display_name=email.split("@")[0],
            role=role,
            password=PASSWORD,
            account_id=account_id,
        )
        if trained and role != Role.CLIENT:
            record_training(s, new.user.id)
            sign_undertaking(s, new.user.id)
        uid = new.user.id
    totp = pyotp.parse_uri(new.totp_uri) if new.totp_uri else None
    return Person(uid, email, role, totp, account_id)  # type: ignore[arg-type]


@pytest.fixture
def world(rt: Runtime) -> Iterator[World]:
    medical = make_account(rt, "cabinet-lefevre")
    plumber = make_account(rt, "plomberie-durand")
    yield World(
        rt=rt,
        app=create_app(rt),
        medical=medical,
        plumber=plumber,
        operator=make_person(rt, Role.OPERATOR, "op@permanence.example"),
        supervisor=make_person(rt, Role.SUPERVISOR, "sup@permanence.example"),
        dpo=make_person(rt, Role.DPO, "dpo@permanence.example"),
        admin=make_person(rt, Role.ADMIN, "admin@permanence.example"),
        client_medical=make_person(rt, Role.CLIENT, "sec@cabinet.example", medical.id),
        client_plumber=make_person(rt, Role.CLIENT, "bureau@plomberie.example", plumber.id),
    )
