"""Every API endpoint, three ways: as its owner (works), as a user of another account (404),
anonymous (401); and every object route as each staff role, asked through another account.
A route added without a row here fails the completeness test. "404" is checked by
tests/web/isolation.py: the same bytes as for an identifier that exists nowhere."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute

from permanence.stats.api import router as stats_router
from permanence.web.api import router
from tests.web.conftest import Person, World
from tests.web.isolation import hidden, refused_blind, send

MEDICAL_DID = "+33478000001"


@dataclass
class Objects:
    call: str
    message: str
    appointment: str
    consent: str
    caller: str
    api_key: str
    recording: str
    rights: dict[str, str] = field(default_factory=dict)


def _setup(world: World) -> Objects:
    op = world.login(world.operator)
    call = op.post(
        "/api/v1/calls", json={"dialled": "+33240000001", "caller_number": "0199001234"}
    ).json()
    base = f"/api/v1/accounts/{world.plumber.id}"
    msg = op.post(
        f"{base}/calls/{call['id']}/messages",
        json={
            "purpose": "intervention",
            "values": {
                "last_name": "Martin",
                "phone": "0199001234",
                "address": "1 rue A, 44000 Nantes",
                "urgency": "à planifier",
                "description": "Fuite",
            },
        },
    ).json()
    start = dt.datetime(2031, 3, 3, 9, tzinfo=dt.UTC)
    appt = op.post(
        f"{base}/calls/{call['id']}/appointments",
        json={
            "purpose": "appointment",
            "starts_at": start.isoformat(),
            "ends_at": (start + dt.timedelta(minutes=30)).isoformat(),
            "values": {
                "last_name": "Martin",
                "phone": "0199001234",
                "address": "1 rue A, 44000 Nantes",
                "preferred_slot": start.isoformat(),
            },
        },
    ).json()
    consent = op.post(
        f"{base}/calls/{call['id']}/consents",
        json={"purpose": "satisfaction", "wording_version": "2025-1", "channel": "voice"},
    ).json()
    client = world.login(world.client_plumber)
    key = client.post(f"{base}/api-keys", json={"name": "k", "scopes": ["messages:read"]}).json()
    recording = _stored_recording(world, call["id"], msg["caller_id"])
    return Objects(
        call["id"],
        msg["id"],
        appt["id"],
        consent["id"],
        msg["caller_id"],
        key["id"],
        recording,
        _rights_requests(world, client, msg["caller_id"]),
    )


def _rights_requests(world: World, client: Any, caller_id: str) -> dict[str, str]:
    """One rights request per action, each in the state the action needs."""
    from tests.factories import make_caller

    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"

    def new(kind: str, verified: bool = True, caller: str = caller_id) -> str:
        r = client.post(
            base, json={"kind": kind, "caller_id": caller, "verified_by_controller": verified}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    out = {
        a: new("access")
        for a in ("show", "information", "extend", "wait", "refuse", "execute", "cancel")
    }
    out["verify"] = new("erasure", verified=False)
    out["lift"] = new("restriction")
    assert client.post(f"{base}/{out['lift']}/execute").status_code == 200
    other = make_caller(world.rt, world.plumber.id, first="Eve", last="Autre", phone="0611223344")
    out["certificate"] = new("erasure", caller=str(other))
    assert client.post(f"{base}/{out['certificate']}/execute").status_code == 200
    return out


def _stored_recording(world: World, call_id: str, caller_id: str) -> str:
    """An encrypted recording on disk for the call, as the recording callback leaves it."""
    import uuid

    from permanence.calls.model import Call
    from permanence.context import AccessContext
    from permanence.crypto.stream import encrypt_stream
    from permanence.filestore import LocalStore, storage_key
    from permanence.recordings.model import Recording

    rt, account_id = world.rt, world.plumber.id
    rec_id = uuid.uuid4()
    key = storage_key(account_id, rec_id)
    with rt.db.session(AccessContext.system("test", account_id)) as s:
        call = s.get(Call, uuid.UUID(call_id))
        assert call is not None
        cipher = rt.keyring.cipher(s, account_id, uuid.UUID(caller_id))
        ad = cipher.ad("recordings", "audio", rec_id)
        size = LocalStore(rt.settings.recordings_dir).put(
            key, lambda fh: encrypt_stream(cipher.dek, ad, [b"RIFF audio"], fh)
        )
        s.add(
            Recording(
                id=rec_id,
                account_id=account_id,
                call_id=call.id,
                caller_id=call.caller_id,
                mandate_id=call.mandate_id,
                provider_sid=f"RE{rec_id.hex}",
                storage_key=key,
                size_bytes=size,
            )
        )
    return str(rec_id)


# (method, path, owner, json body) — {a} is the plumber's account.
def _cases(o: Objects) -> list[tuple[str, str, str, Any]]:
    slot = {"starts_at": "2031-03-03T10:00:00+00:00", "ends_at": "2031-03-03T10:30:00+00:00"}
    return [
        ("GET", "/api/v1/accounts/{a}/purposes", "client", None),
        ("GET", "/api/v1/accounts/{a}/mandate", "client", None),
        ("GET", "/api/v1/accounts/{a}/calls", "client", None),
        ("GET", f"/api/v1/accounts/{{a}}/calls/{o.call}", "operator", None),
        ("POST", f"/api/v1/accounts/{{a}}/calls/{o.call}/answer", "operator", None),
        ("POST", f"/api/v1/accounts/{{a}}/calls/{o.call}/notice-read", "operator", None),
        ("POST", f"/api/v1/accounts/{{a}}/calls/{o.call}/complete", "operator", None),
        (
            "POST",
            f"/api/v1/accounts/{{a}}/calls/{o.call}/messages",
            "operator",
            {"purpose": "satisfaction", "values": {"last_name": "Martin", "phone": "0199001234"}},
        ),
        (
            "POST",
            f"/api/v1/accounts/{{a}}/calls/{o.call}/appointments",
            "operator",
            {
                "purpose": "appointment",
                **slot,
                "values": {
                    "last_name": "Martin",
                    "phone": "0199001234",
                    "address": "1 rue A, 44000 Nantes",
                    "preferred_slot": slot["starts_at"],
                },
            },
        ),
        (
            "POST",
            f"/api/v1/accounts/{{a}}/calls/{o.call}/consents",
            "operator",
            {"purpose": "satisfaction", "wording_version": "2025-1", "channel": "voice"},
        ),
        ("GET", f"/api/v1/accounts/{{a}}/callers/{o.caller}/consents", "client", None),
        (
            "POST",
            f"/api/v1/accounts/{{a}}/callers/{o.caller}/break-glass",
            "operator",
            {"reason": "Le patient rappelle pour un résultat urgent, le médecin est absent."},
        ),
        (
            "POST",
            f"/api/v1/accounts/{{a}}/consents/{o.consent}/withdraw",
            "client",
            {"channel": "web"},
        ),
        ("GET", "/api/v1/accounts/{a}/messages", "client", None),
        ("GET", f"/api/v1/accounts/{{a}}/messages/{o.message}", "client", None),
        ("POST", f"/api/v1/accounts/{{a}}/messages/{o.message}/acknowledge", "client", None),
        ("GET", f"/api/v1/accounts/{{a}}/messages/{o.message}/deliveries", "client", None),
        ("GET", f"/api/v1/accounts/{{a}}/messages/{o.message}/recipients", "client", None),
        (
            "GET",
            "/api/v1/accounts/{a}/appointments",
            "client",
            {"params": {"start": "2031-03-01T00:00:00Z", "end": "2031-03-31T00:00:00Z"}},
        ),
        ("GET", f"/api/v1/accounts/{{a}}/appointments/{o.appointment}", "client", None),
        (
            "POST",
            f"/api/v1/accounts/{{a}}/appointments/{o.appointment}/move",
            "client",
            {"starts_at": "2031-03-03T14:00:00+00:00", "ends_at": "2031-03-03T14:30:00+00:00"},
        ),
        ("POST", f"/api/v1/accounts/{{a}}/appointments/{o.appointment}/cancel", "client", None),
        ("GET", "/api/v1/accounts/{a}/availability", "client", {"params": {"day": "2031-03-04"}}),
        ("GET", "/api/v1/accounts/{a}/calendar.ics", "client", None),
        (
            "POST",
            "/api/v1/accounts/{a}/api-keys",
            "client",
            {"name": "x", "scopes": ["messages:read"]},
        ),
        ("GET", "/api/v1/accounts/{a}/api-keys", "client", None),
        ("DELETE", f"/api/v1/accounts/{{a}}/api-keys/{o.api_key}", "client", None),
        ("GET", f"/api/v1/accounts/{{a}}/recordings/{o.recording}/audio", "client", None),
        ("POST", f"/api/v1/accounts/{{a}}/calls/{o.call}/recording/stop", "operator", None),
        ("GET", "/api/v1/accounts/{a}/stats", "client", None),
        ("GET", "/api/v1/accounts/{a}/charts/volume-by-day.svg", "client", None),
        ("GET", "/api/v1/accounts/{a}/usage/2031-03.csv", "client", None),
        ("GET", "/api/v1/accounts/{a}/usage/2031-03.pdf", "client", None),
        ("GET", "/api/v1/accounts/{a}/usage/2031-03", "client", None),
        *_rights_cases(o),
    ]


def _rights_cases(o: Objects) -> list[tuple[str, str, str, Any]]:
    r = {k: o.rights.get(k, "r") for k in ("show", "information", "extend", "wait", "refuse")}
    r.update({k: o.rights.get(k, "r") for k in ("execute", "cancel", "verify", "lift")})
    r["certificate"] = o.rights.get("certificate", "r")
    base = "/api/v1/accounts/{a}/rights/requests"
    refusal = {
        "reason": "art17_3_e_legal_claims",
        "explanation": "Litige en cours.",
        "cnil_complaint_informed": True,
        "judicial_remedy_informed": True,
    }
    return [
        ("POST", base, "client", {"kind": "access", "requester": {"phone": "0199001234"}}),
        ("GET", base, "client", None),
        ("GET", f"{base}/{r['show']}", "client", None),
        ("GET", f"{base}/{r['show']}/recipients", "client", None),
        ("POST", f"{base}/{r['verify']}/verification", "client", {"method": "callback"}),
        ("POST", f"{base}/{r['verify']}/verify", "client", {"callback_confirmed": True}),
        ("POST", f"{base}/{r['information']}/information", "client", {"phone": "0199001234"}),
        ("POST", f"{base}/{r['extend']}/extend", "client", {"reason": "complexity"}),
        ("POST", f"{base}/{r['wait']}/wait", "client", {"reason": "scope_unclear"}),
        ("POST", f"{base}/{r['refuse']}/refuse", "client", refusal),
        ("POST", f"{base}/{r['execute']}/execute", "client", None),
        ("POST", f"{base}/{r['lift']}/lift", "client", None),
        ("POST", f"{base}/{r['cancel']}/cancel", "client", None),
        ("GET", f"{base}/{r['certificate']}/certificate", "client", None),
        ("GET", f"{base}/{r['show']}/letters", "client", None),
    ]


def test_every_account_route_has_a_row() -> None:
    o = Objects(*(f"obj{i}" for i in range(7)))
    cases = [(m, p.format(a="acct")) for m, p, _, _ in _cases(o)]
    routes = [
        (method, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", r.path) + "$"))
        for r in [*router.routes, *stats_router.routes]
        if isinstance(r, APIRoute) and "{account_id}" in r.path
        for method in r.methods
    ]
    missing = [
        f"{m} {rx.pattern}"
        for m, rx in routes
        if not any(cm == m and rx.match(cp) for cm, cp in cases)
    ]
    assert missing == []
    assert len(cases) == len(routes)


@pytest.mark.gdpr("Art. 25")
def test_owner_other_account_and_anonymous(world: World) -> None:
    o = _setup(world)
    people: dict[str, Person] = {"client": world.client_plumber, "operator": world.operator}
    sessions = {k: world.login(v) for k, v in people.items()}
    outsider = world.login(world.client_medical)
    anonymous = world.client()
    failures = []
    for method, template, owner, body in _cases(o):
        path = template.format(a=world.plumber.id)
        r_anon = send(anonymous, method, path, body)
        out_problem = hidden(outsider, method, path, body)
        r_own = send(sessions[owner], method, path, body)
        if r_anon.status_code != 401:
            failures.append(f"{method} {template} anonymous -> {r_anon.status_code}")
        if out_problem is not None:
            failures.append(f"other account: {out_problem}")
        if not 200 <= r_own.status_code < 300:
            failures.append(f"{method} {template} owner -> {r_own.status_code} {r_own.text[:200]}")
    assert failures == []


# Object routes no staff role may use at all (403 before any lookup): the client's own acts.
CLIENT_ONLY = {"lift", "cancel"}
STAFF = ("operator", "supervisor", "dpo", "admin")


@pytest.mark.gdpr("Art. 25")
def test_staff_asking_through_another_account_get_the_404_of_a_missing_object(
    world: World,
) -> None:
    """Staff work for every account, so the account in the path is theirs to name: the object
    must still belong to it. Each staff role, on every object route, names the medical
    practice and an object of the plumber: the answer is a 404 indistinguishable from a
    missing object, or a 403 the role gets whatever the identifier (refused before lookup)."""
    o = _setup(world)
    staff = {role: world.login(getattr(world, role)) for role in STAFF}
    failures, reached = [], set()
    object_cases = [c for c in _cases(o) if len(re.findall(r"[0-9a-f]{8}-", c[1])) >= 1]
    assert len(object_cases) >= 30
    for method, template, _, body in object_cases:
        path = template.format(a=world.medical.id)
        for role, c in staff.items():
            problem = hidden(c, method, path, body)
            if problem is None:
                reached.add(template)
            elif not refused_blind(c, method, path, body):
                failures.append(f"{role}: {problem}")
    assert failures == []
    unreached = {t for _, t, _, _ in object_cases} - reached
    assert {t.rsplit("/", 1)[-1] for t in unreached} == CLIENT_ONLY


def test_global_routes_need_sign_in(world: World) -> None:
    anonymous = world.client()
    assert anonymous.get("/api/v1/accounts").status_code == 401
    assert anonymous.get("/api/v1/me").status_code == 401
    assert anonymous.post("/api/v1/calls", json={"dialled": MEDICAL_DID}).status_code == 401
    c = world.login(world.client_plumber)
    assert [a["slug"] for a in c.get("/api/v1/accounts").json()] == ["plomberie-durand"]
    staff = world.login(world.supervisor)
    assert len(staff.get("/api/v1/accounts").json()) == 2


def _staff_pages(account: object, o: Objects) -> list[tuple[str, str, Any]]:
    """Every staff page that names an account and one of its objects (method, path, form)."""
    console = f"/console/appels/{account}/{o.call}"
    desk = f"/dpo/droits/{account}/{o.rights['show']}"
    consent = {"motif": "satisfaction", "version": "2025-1"}
    pages: list[tuple[str, str, Any]] = [("GET", console, None), ("GET", desk, None)]
    for action in ("prendre", "mention-lue", "valider", "enregistrer", "notice-sms", "terminer"):
        pages.append(("POST", f"{console}/{action}", {}))
    pages.append(("POST", f"{console}/enregistrement/arreter", {}))
    pages.append(("POST", f"{console}/consentement", consent))
    for action in ("informations", "code", "verifier", "numero", "verification", "apercu"):
        pages.append(("POST", f"{desk}/{action}", {}))
    for action in ("executer", "prolonger", "refuser"):
        pages.append(("POST", f"{desk}/{action}", {}))
    pages.append(("POST", f"/console/messagerie-vocale/{account}/{o.recording}/traiter", {}))
    transfer = f"/console/routage/transfert/{account}/{o.call}"
    pages.append(("GET", transfer, None))
    pages.append(("POST", transfer, {"destinataire": "0"}))
    pages.append(("POST", f"/console/rappels/{account}/{o.call}", {}))
    warm = f"/console/routage/transfert-accompagne/{account}/{o.call}"
    pages.append(("POST", warm, {"destinataire": "0"}))
    pages.append(("POST", f"{warm}/relier", {}))
    pages.append(("POST", f"{warm}/reprendre", {}))
    evaluation = f"/evaluations/{account}/{o.call}"
    pages.append(("GET", evaluation, None))
    pages.append(("POST", evaluation, {}))
    return pages


def test_every_staff_object_page_has_a_row() -> None:
    from permanence.evaluations import pages as evaluation_pages
    from permanence.rights import desk_pages, request_pages
    from permanence.routing import pages as routing_pages
    from permanence.web.pages import console, console_save, voicemails

    o = Objects(*(f"{i:08d}-0000-4000-8000-000000000000" for i in range(7)))
    o.rights["show"] = "00000009-0000-4000-8000-000000000000"
    uuid_re = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    rows = {(m, re.sub(uuid_re, "{id}", p)) for m, p, _ in _staff_pages("{account}", o)}
    routes = {
        (m, re.sub(r"\{(?!account_id)[^}]+\}", "{id}", r.path).replace("_id", ""))
        for mod in (
            console,
            console_save,
            desk_pages,
            request_pages,
            voicemails,
            routing_pages,
            evaluation_pages,
        )
        for r in mod.router.routes
        if isinstance(r, APIRoute) and "{account_id}/{" in r.path
        for m in r.methods
    }
    # Signing in again to save a typed form is a sign-in, not an object page: without its own
    # cookie it refuses (403) whatever the ids, and after it the save is this matrix's console
    # "enregistrer" row (tests/web/test_console_desk.py walks it).
    routes.discard(("POST", "/console/reprise/{account}/{id}"))
    assert routes == rows


@pytest.mark.gdpr("Art. 25")
def test_staff_pages_through_another_account_answer_as_for_a_missing_object(
    world: World,
) -> None:
    """The console, the rights desk and the evaluation grids, each staff role, an object of
    the plumber named under the medical practice: a 404 page like a missing object's, or a
    blind 403."""
    from tests.web.pages_helpers import page_login

    o = _setup(world)
    failures, reached = [], set()
    for role in STAFF:
        c, csrf = page_login(world, getattr(world, role))
        for method, path, form in _staff_pages(world.medical.id, o):
            body = None if form is None else {"form": {**form, "csrf_token": csrf}}
            problem = hidden(c, method, path, body)
            if problem is None:
                reached.add(path)
            elif not refused_blind(c, method, path, body):
                failures.append(f"{role}: {problem}")
    assert failures == []
    assert reached == {p for _, p, _ in _staff_pages(world.medical.id, o)}
