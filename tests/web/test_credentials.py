"""Changing credentials: password change and reset (e-mailed link, real SMTP server), an
administrator's reset, recovery codes, a new authenticator, the per-account lock, and the
edges (405 Allow, /docs). docs/adr/0014."""

from __future__ import annotations

import mailbox
import re
import time
import uuid

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from permanence.audit.model import AuditEntry
from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.staff import auth, credentials
from permanence.staff.credentials_model import AuthToken, RecoveryCode
from permanence.staff.model import ApiKey, AuthFailure, User
from tests.conftest import SmtpSink, cli_env, run_cli
from tests.web.conftest import PASSWORD, Person, World

NEW_PASSWORD = "une phrase de passe toute neuve"


def actions(world: World) -> list[str]:
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def login(world: World, who: Person, password: str = PASSWORD, code: str | None = None) -> int:
    r = world.client().post(
        "/api/v1/auth/login",
        json={"email": who.email, "password": password, "totp": code or who.code()},
    )
    return r.status_code


def link_in(smtp: SmtpSink, index: int = -1) -> str:
    body = smtp.bodies()[index]
    found = re.search(r"http://\S+/connexion/(reinitialiser|deverrouiller)/(\S+)", body)
    assert found, body
    return f"/connexion/{found.group(1)}/{found.group(2)}"


# -- changing one's password ----------------------------------------------------------------


def test_a_password_change_needs_the_current_one_and_signs_out_the_other_sessions(
    world: World,
) -> None:
    who = world.client_medical
    here, elsewhere = world.login(who), world.login(who)
    r = here.post(
        "/api/v1/auth/password",
        json={"current_password": "pas le mot de passe", "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 401
    r = here.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "aaaaaaaa"}
    )
    assert r.status_code == 422
    assert "repeats the same characters" in r.json()["message"]
    assert elsewhere.get("/api/v1/me").status_code == 200  # nothing changed yet
    r = here.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 204, r.text
    assert here.get("/api/v1/me").status_code == 200  # the session that changed it stays
    assert elsewhere.get("/api/v1/me").status_code == 401
    assert login(world, who) == 401
    assert login(world, who, NEW_PASSWORD) == 200
    assert actions(world).count("auth.password_changed") == 1


def test_the_page_refuses_aaaaaaaa_in_french_and_says_why(world: World) -> None:
    who = world.client_plumber
    c = world.login(who)
    page = c.get("/compte/securite")
    assert page.status_code == 200
    assert "Changer le mot de passe" in page.text
    form = {"actuel": PASSWORD, "nouveau": "aaaaaaaa", "confirmation": "aaaaaaaa"}
    r = c.post("/compte/mot-de-passe", data=form)
    assert r.status_code == 422
    assert "répète les mêmes caractères" in r.text
    form = {"actuel": PASSWORD, "nouveau": "azertyuiop", "confirmation": "azertyuiop"}
    assert "parmi les plus courants" in c.post("/compte/mot-de-passe", data=form).text
    form = {"actuel": PASSWORD, "nouveau": NEW_PASSWORD, "confirmation": NEW_PASSWORD + "x"}
    assert "diffèrent" in c.post("/compte/mot-de-passe", data=form).text
    form = {"actuel": "faux", "nouveau": NEW_PASSWORD, "confirmation": NEW_PASSWORD}
    r = c.post("/compte/mot-de-passe", data=form)
    assert r.status_code == 401
    assert "mot de passe actuel" in r.text
    form = {"actuel": PASSWORD, "nouveau": NEW_PASSWORD, "confirmation": NEW_PASSWORD}
    r = c.post("/compte/mot-de-passe", data=form, follow_redirects=False)
    assert r.status_code == 303
    assert "a été changé" in c.get(r.headers["location"]).text


def test_failed_current_passwords_do_not_slow_or_lock_the_sign_in(world: World) -> None:
    world.rt.settings.signin_lock_threshold = 3
    who = world.client_medical
    c = world.login(who)
    wrong = {"current_password": "toujours pas", "new_password": NEW_PASSWORD}
    codes = [c.post("/api/v1/auth/password", json=wrong).status_code for _ in range(8)]
    assert codes[:5] == [401] * 5 and 429 in codes  # the change form itself is throttled
    assert login(world, who) == 200  # the sign-in is neither slowed nor locked
    reauth = [c.post("/api/v1/auth/reauth", json={"password": "non"}).status_code for _ in range(6)]
    assert 429 in reauth
    assert login(world, who) == 200


# -- forgotten password --------------------------------------------------------------------


def test_a_forgotten_password_is_reset_once_from_the_e_mailed_link(
    world: World, smtp: SmtpSink
) -> None:
    who = world.client_medical
    signed_in = world.login(who)
    c = world.client()
    r = c.post("/api/v1/auth/password/forgotten", json={"email": "personne@nulle.part"})
    unknown = r.json()
    r = c.post("/api/v1/auth/password/forgotten", json={"email": who.email.upper()})
    assert r.status_code == 202 and r.json() == unknown  # the same answer
    assert len(smtp.messages) == 1
    assert smtp.messages[0][1] == [who.email]
    body = smtp.bodies()[0]
    assert "30 minutes" in body
    # Nothing personal: neither the address nor the name, only the link.
    assert who.email not in body and "sec" not in body.split("http")[0].lower()
    link = link_in(smtp)
    page = c.get(link)
    assert page.status_code == 200 and "Choisir un nouveau mot de passe" in page.text
    weak = c.post(link, data={"nouveau": "12345678", "confirmation": "12345678"})
    assert weak.status_code == 422 and "parmi les plus courants" in weak.text
    done = c.post(link, data={"nouveau": NEW_PASSWORD, "confirmation": NEW_PASSWORD})
    assert done.status_code == 200 and "Mot de passe changé" in done.text
    again = c.post(link, data={"nouveau": NEW_PASSWORD, "confirmation": NEW_PASSWORD})
    assert again.status_code == 404 and "Ce lien ne fonctionne pas" in again.text
    assert signed_in.get("/api/v1/me").status_code == 401  # every session closed
    notice = smtp.bodies()[-1]  # the owner is told, with nothing to follow
    assert "votre mot de passe a été changé" in notice and "http" not in notice
    assert smtp.messages[-1][1] == [who.email]
    assert login(world, who, NEW_PASSWORD) == 200
    assert {"auth.password_reset_requested", "auth.password_reset"} <= set(actions(world))


def test_a_reset_link_expires_and_only_the_latest_one_works(world: World, smtp: SmtpSink) -> None:
    who = world.client_plumber
    c = world.client()
    c.post("/api/v1/auth/password/forgotten", json={"email": who.email})
    first = link_in(smtp).rsplit("/", 1)[1]
    with world.rt.db.session(AccessContext.system("test")) as s:
        # A second request within the minute sends nothing (no mail bombing) ...
        assert credentials.request_reset(s, who.email) is None
        for row in s.scalars(select(AuthToken)):
            row.created_at = row.created_at.replace(year=2020)
    c.post("/api/v1/auth/password/forgotten", json={"email": who.email})
    second = link_in(smtp).rsplit("/", 1)[1]
    body = {"token": first, "new_password": NEW_PASSWORD}
    assert c.post("/api/v1/auth/password/reset", json=body).status_code == 404  # replaced
    with world.rt.db.session(AccessContext.system("test")) as s:
        row = s.get(AuthToken, credentials._h(second))
        assert row is not None
        row.expires_at = row.expires_at.replace(year=2020)
    body = {"token": second, "new_password": NEW_PASSWORD}
    r = c.post("/api/v1/auth/password/reset", json=body)
    assert r.status_code == 404
    assert "expired" in r.json()["message"]
    assert c.get(f"/connexion/reinitialiser/{second}").status_code == 404


# -- an administrator's reset ----------------------------------------------------------------


def test_an_administrator_resets_a_staff_member(world: World, smtp: SmtpSink) -> None:
    who = world.supervisor
    their_session = world.login(who)
    plumber = AccessContext.system("test", world.plumber.id)  # api_keys: row-level security
    with world.rt.db.session(plumber) as s:
        s.add(
            ApiKey(
                account_id=world.plumber.id,
                name="clé de test",
                secret_hash="0" * 64,
                scopes="messages:read",
                created_by=who.id,
            )
        )
    admin = world.login(world.admin)
    page = admin.get(f"/admin/utilisateurs/{who.id}/acces")
    assert page.status_code == 200 and "Réinitialiser le mot de passe" in page.text
    r = admin.post(f"/admin/utilisateurs/{who.id}/reinitialiser", data={})
    assert r.status_code == 200, r.text
    assert "Mot de passe réinitialisé" in r.text and "1 clé" in r.text
    assert their_session.get("/api/v1/me").status_code == 401
    soon = who.totp.at(int(time.time()) + 30) if who.totp else None
    assert login(world, who, code=soon) == 401  # the old password no longer works
    with world.rt.db.session(plumber, readonly=True) as s:
        [key] = s.scalars(select(ApiKey).where(ApiKey.created_by == who.id)).all()
        assert key.revoked_at is not None
    assert "24 heures" in smtp.bodies()[-1]
    link = link_in(smtp)
    c = world.client()
    assert c.post(link, data={"nouveau": NEW_PASSWORD, "confirmation": NEW_PASSWORD}).is_success
    assert login(world, who, NEW_PASSWORD, code=soon) == 200  # their authenticator still
    # Client users reset their own password: not from here.
    r = admin.post(f"/admin/utilisateurs/{world.client_medical.id}/reinitialiser", data={})
    assert r.status_code == 403
    assert "auth.password_reset_by_admin" in actions(world)


def test_the_administrators_reset_needs_a_recent_reauthentication(world: World) -> None:
    admin = world.login(world.admin)
    with world.rt.db.session(AccessContext.system("test")) as s:
        for ws in s.scalars(select(auth.WebSession)):
            ws.reauth_at = ws.reauth_at.replace(year=2020)
    admin.follow_redirects = False
    r = admin.post(f"/admin/utilisateurs/{world.operator.id}/reinitialiser", data={})
    assert r.status_code == 303 and r.headers["location"].startswith("/confirmer")
    assert login(world, world.operator) == 200  # nothing happened


def test_the_command_line_resets_and_unlocks(world: World) -> None:
    env = cli_env(world.rt.settings)
    proc = run_cli(env, "staff", "reset-password", "--email", world.dpo.email)
    assert proc.returncode == 0, proc.stderr
    # No SMTP server here: the link went to the local outbox (a Maildir), not to the terminal.
    assert "e-mailed" in proc.stdout and "/connexion/reinitialiser/" not in proc.stdout
    [mail] = mailbox.Maildir(world.rt.settings.data_dir / "outbox", create=False)
    assert mail["To"] == world.dpo.email
    token = re.search(r"/connexion/reinitialiser/(\S+)", mail.get_payload(decode=True).decode())
    assert token
    c = world.client()
    body = {"token": token.group(1), "new_password": NEW_PASSWORD}
    assert c.post("/api/v1/auth/password/reset", json=body).status_code == 204
    proc = run_cli(env, "staff", "reset-password", "--email", "personne@nulle.part")
    assert proc.returncode != 0 and "no user" in proc.stderr
    proc = run_cli(env, "staff", "unlock", "--email", world.dpo.email)
    assert proc.returncode == 0 and "was not locked" in proc.stdout
    with world.rt.db.session(AccessContext.system("test")) as s:
        s.add(AuthFailure(key_hash=auth.email_key(world.dpo.email), count=10, locked_at=utcnow()))
    assert login(world, world.dpo) == 423
    proc = run_cli(env, "staff", "unlock", "--email", world.dpo.email.upper())
    assert proc.returncode == 0 and proc.stdout.strip() == "unlocked"
    assert login(world, world.dpo, NEW_PASSWORD) == 200


# -- the per-account lock --------------------------------------------------------------------


def test_repeated_failures_lock_the_account_and_the_e_mailed_link_unlocks_it(
    world: World, smtp: SmtpSink
) -> None:
    world.rt.settings.signin_lock_threshold = 3
    who = world.client_plumber
    bad = {"email": who.email, "password": "mauvais mot de passe"}
    nobody = {"email": "inconnu@nulle.part", "password": "mauvais mot de passe"}
    for body in (bad, nobody):
        codes = [world.client().post("/api/v1/auth/login", json=body).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        with world.rt.db.session(AccessContext.system("test")) as s:
            # Every test client has one address: its own throttle is not what is tested here.
            s.execute(
                delete(AuthFailure).where(AuthFailure.key_hash == auth._h("client:testclient"))
            )
    locked = world.client().post("/api/v1/auth/login", json={**bad, "password": PASSWORD})
    assert locked.status_code == 423
    unknown = world.client().post("/api/v1/auth/login", json=nobody)
    assert unknown.status_code == 423 and unknown.json() == locked.json()  # no enumeration
    page = world.client().post(
        "/connexion", data={"email": who.email, "password": PASSWORD, "csrf_token": "x"}
    )
    assert page.status_code == 403  # (no form cookie) — now with the form's own cookie:
    c = world.client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/connexion").text)
    assert token
    form = {"email": who.email, "password": PASSWORD, "csrf_token": token.group(1)}
    page = c.post("/connexion", data=form)
    assert page.status_code == 423 and "verrouillé" in page.text
    assert [to for _f, to, _r in smtp.messages] == [[who.email]]  # only the real account
    assert "verrouillé" in smtp.bodies()[0]
    link = link_in(smtp)
    assert world.client().get(link).status_code == 200  # opening it spends nothing
    assert login(world, who) == 423
    assert world.client().post(link).status_code == 200
    assert world.client().post(link).status_code == 404  # single use
    assert login(world, who) == 200
    assert {"auth.locked", "auth.unlocked"} <= set(actions(world))


def test_an_administrator_unlocks_an_account(world: World) -> None:
    world.rt.settings.signin_lock_threshold = 3
    who = world.client_medical
    for _ in range(3):
        world.client().post("/api/v1/auth/login", json={"email": who.email, "password": "non"})
    assert login(world, who) == 423
    admin = world.login(world.admin)
    page = admin.get(f"/admin/utilisateurs/{who.id}/acces")
    assert "Déverrouiller le compte" in page.text
    r = admin.post(f"/admin/utilisateurs/{who.id}/deverrouiller", follow_redirects=False)
    assert r.status_code == 303
    assert "Le compte est déverrouillé" in admin.get(r.headers["location"]).text
    assert login(world, who) == 200


# -- recovery codes and a new authenticator ---------------------------------------------------


def test_recovery_codes_are_hashed_and_each_signs_in_once(world: World) -> None:
    who = world.operator
    c = world.login(who)
    other = world.login(who)
    r = c.post("/api/v1/auth/recovery-codes")
    assert r.status_code == 201, r.text
    codes = r.json()["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert other.get("/api/v1/me").status_code == 401  # an MFA change: other sessions closed
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        stored = list(s.scalars(select(RecoveryCode.code_hash)))
    assert all(h.startswith("$argon2id$") for h in stored)
    assert not any(c.replace("-", "") in h for c in codes for h in stored)
    assert login(world, who, code=codes[3]) == 200
    assert login(world, who, code=codes[3]) == 401  # spent
    assert login(world, who, code=codes[4].upper()) == 200
    assert login(world, who, PASSWORD + "x", code=codes[5]) == 401
    page = c.get("/compte/securite")
    assert "Codes de secours inutilisés : 8." in page.text
    # A new set cancels the old one.
    new = c.post("/compte/codes-de-secours")
    assert new.status_code == 200 and "une seule fois" in new.text
    assert login(world, who, code=codes[5]) == 401
    assert actions(world).count("auth.recovery_code_used") == 2


def test_recovery_codes_need_a_recent_reauthentication_and_an_authenticator(
    world: World,
) -> None:
    c = world.login(world.client_plumber)
    r = c.post("/api/v1/auth/recovery-codes")
    assert r.status_code == 422  # a client user has no authenticator
    op = world.login(world.operator)
    with world.rt.db.session(AccessContext.system("test")) as s:
        for ws in s.scalars(select(auth.WebSession)):
            ws.reauth_at = ws.reauth_at.replace(year=2020)
    assert op.post("/api/v1/auth/recovery-codes").status_code == 403


def test_a_new_authenticator_replaces_the_old_one(world: World) -> None:
    who = world.operator
    c = world.login(who)
    other = world.login(who)
    page = c.get("/compte/authentificateur")
    assert page.status_code == 200
    secret = re.search(r'<code class="wrap" id="cle">([A-Z2-7]+)</code>', page.text)
    sealed = re.search(r'name="en_attente" value="([^"]+)"', page.text)
    assert secret and sealed
    new = pyotp.TOTP(secret.group(1))
    wrong = c.post(
        "/compte/authentificateur", data={"en_attente": sealed.group(1), "code": "000000"}
    )
    assert wrong.status_code == 401 and secret.group(1) in wrong.text  # the same key again
    forged = c.post(
        "/compte/authentificateur", data={"en_attente": "AAAA" + sealed.group(1), "code": "1"}
    )
    assert forged.status_code == 422
    r = c.post(
        "/compte/authentificateur",
        data={"en_attente": sealed.group(1), "code": new.now()},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert other.get("/api/v1/me").status_code == 401
    soon = int(time.time()) + 30
    assert login(world, who, code=who.totp.at(soon) if who.totp else None) == 401  # old key
    assert login(world, who, code=new.at(soon)) == 200
    assert "auth.mfa_reenrolled" in actions(world)


# -- the policy everywhere a password is set ---------------------------------------------------


def test_the_administrator_cannot_create_a_user_with_a_weak_password(world: World) -> None:
    admin = world.login(world.admin)
    form = {
        "email": "nouvelle@permanence.example",
        "nom": "Nouvelle",
        "role": "operator",
        "mot_de_passe": "aaaaaaaa",
    }
    r = admin.post("/admin/utilisateurs", data=form)
    assert r.status_code == 422
    assert "répète les mêmes caractères" in r.text
    form["mot_de_passe"] = "nouvelle2026"
    assert "adresse e-mail ou votre nom" in admin.post("/admin/utilisateurs", data=form).text
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        assert s.scalars(select(User).where(User.email == form["email"])).first() is None


# -- the edges -------------------------------------------------------------------------------


def test_a_405_names_the_allowed_methods(world: World) -> None:
    c = world.client()
    r = c.put("/api/v1/auth/login", json={})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = c.delete("/connexion")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}
    r = c.patch(f"/api/v1/accounts/{uuid.uuid4()}/api-keys", json={})
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}


def test_the_interactive_api_docs_are_off_unless_asked_for(world: World) -> None:
    from permanence.web.app import create_app

    c = world.client()
    assert c.get("/docs").status_code == 404
    assert c.get("/redoc").status_code == 404
    assert c.get("/openapi.json").status_code == 200
    world.rt.settings.api_docs = True
    on = TestClient(create_app(world.rt))
    assert on.get("/docs").status_code == 200


def test_the_administrators_reset_and_unlock_through_the_api(world: World) -> None:
    admin = world.login(world.admin)
    url = f"/api/v1/users/{world.operator.id}/password-reset"
    assert world.login(world.dpo).post(url, json={}).status_code == 403  # administrators only
    r = admin.post(url, json={"new_authenticator": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["emailed"] is True  # no SMTP server here: to the local outbox
    assert out["totp_uri"].startswith("otpauth://totp/")
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        user = s.get(User, world.operator.id)
        assert user is not None and not user.mfa_enabled
        tokens = list(s.scalars(select(AuthToken).where(AuthToken.user_id == user.id)))
    assert [t.purpose for t in tokens] == ["reset"]
    client_url = f"/api/v1/users/{world.client_plumber.id}/password-reset"
    assert admin.post(client_url, json={}).status_code == 403
    assert admin.post(f"/api/v1/users/{uuid.uuid4()}/unlock").status_code == 404
    assert admin.post(f"/api/v1/users/{world.client_plumber.id}/unlock").status_code == 204
