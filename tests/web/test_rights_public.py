"""The callers' page /droits/{account}: a code sent only to a channel on file, the same
answer for a stranger, codes single-use, expiring and limited in attempts, asking limited per
address and per identifier, the request taken in verified with its reference and due date."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from permanence.context import AccessContext
from permanence.rights import clock, desk
from permanence.rights.model import CallerCode, RightsRequest
from tests.conftest import SmtpSink
from tests.factories import make_caller
from tests.web.conftest import World
from tests.web.pages_helpers import csrf_of

PHONE, EMAIL = "06 73 44 55 66", "berenice.laforge@exemple.fr"
PAGE = "/droits/plomberie-durand"


def _browser(world: World) -> TestClient:
    return TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]


def _ask(c: TestClient, **data: str) -> tuple[int, str]:
    form = c.get(PAGE)
    assert form.status_code == 200
    r = c.post(PAGE, data={"csrf_token": csrf_of(form.text), **data})
    return r.status_code, r.text


def _token(html: str) -> str:
    found = re.search(r'name="jeton" value="([^"]+)"', html)
    assert found
    return found.group(1)


def _confirm(c: TestClient, html: str, code: str) -> tuple[int, str]:
    r = c.post(
        PAGE + "/confirmer",
        data={"csrf_token": csrf_of(html), "jeton": _token(html), "code": code},
    )
    return r.status_code, r.text


def _requests(world: World) -> list[RightsRequest]:
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        return list(s.scalars(select(RightsRequest)))


def _code(smtp: SmtpSink) -> str:
    found = re.search(r"\b(\d{6})\b", smtp.bodies()[-1])
    assert found
    return found.group(1)


def test_a_known_caller_gets_the_code_on_file_and_a_reference(world: World, smtp: SmtpSink) -> None:
    caller_id = make_caller(
        world.rt, world.plumber.id, first="Bérénice", last="Laforge", phone=PHONE, email=EMAIL
    )
    c = _browser(world)
    page = c.get(PAGE)
    assert "Vos droits sur vos données" in page.text and "Plomberie" in page.text
    status, html = _ask(c, droit="access", telephone="0673445566")  # the phone only
    assert status == 200 and "Saisissez votre code" in html
    assert [to for _f, to, _b in smtp.messages] == [[EMAIL]]  # the e-mail on file
    assert "Laforge" not in smtp.bodies()[0] and PHONE not in smtp.bodies()[0]
    assert _requests(world) == []  # nothing is taken in before the code is confirmed
    status, done = _confirm(c, html, _code(smtp))
    assert status == 200 and "Votre demande est enregistrée" in done
    [req] = _requests(world)
    assert req.subject_id == caller_id and req.source == "caller" and req.received_via == "web"
    assert req.verified_at is not None and req.verification_method == "email_code"
    assert desk.reference(req) in done
    due = clock.local_day(req.due_at)
    assert str(due.day) in done and str(due.year) in done
    assert "lien de téléchargement valable 7 jours" in done


def test_a_stranger_gets_the_same_answer_and_no_code_can_match(
    world: World, smtp: SmtpSink
) -> None:
    make_caller(world.rt, world.plumber.id, first="B", last="L", phone=PHONE, email=EMAIL)
    known = _browser(world)
    _status, known_html = _ask(known, droit="erasure", telephone=PHONE)
    stranger = _browser(world)
    status, html = _ask(stranger, droit="erasure", telephone="06 00 00 00 01")
    assert status == 200
    # The same page but for the one-time values (tokens): nothing tells the two apart.
    strip = re.compile(r'(value|content)="[^"]{20,}"')
    assert strip.sub("", html) == strip.sub("", known_html)
    assert len(smtp.messages) == 1  # only the known caller's code
    for code in ("000000", "123456", _code(smtp)):
        status, again = _confirm(stranger, html, code)
        assert status == 422 and "Ce code n&#39;est pas celui qui a été envoyé." in again
    assert _requests(world) == []


def test_a_code_goes_only_to_a_channel_on_file(world: World, smtp: SmtpSink) -> None:
    # The caller gives their phone and an e-mail address that is not the one on file: no
    # match, nothing sent to what they typed.
    make_caller(world.rt, world.plumber.id, first="B", last="L", phone=PHONE, email=EMAIL)
    status, _html = _ask(_browser(world), droit="access", telephone=PHONE, email="x@autre.fr")
    assert status == 200 and smtp.messages == []
    # On file without an e-mail and no SMS gateway: nothing can be sent; told to call.
    make_caller(world.rt, world.plumber.id, first="C", last="M", phone="0674000000", email=None)
    status, _html = _ask(_browser(world), droit="access", telephone="0674000000")
    assert status == 200 and smtp.messages == []
    told = _browser(world).get(PAGE).text
    assert "si nous n'avons pas votre adresse e-mail, appelez le numéro que vous composez" in told


def test_codes_are_single_use_expire_and_allow_five_attempts(world: World, smtp: SmtpSink) -> None:
    make_caller(world.rt, world.plumber.id, first="B", last="L", phone=PHONE, email=EMAIL)
    c = _browser(world)
    _s, html = _ask(c, droit="access", email=EMAIL)
    code = _code(smtp)
    assert _confirm(c, html, code)[0] == 200
    status, again = _confirm(c, html, code)
    assert status == 422 and "Ce code ne peut plus être utilisé" in again
    assert len(_requests(world)) == 1
    # Expired.
    _s, html = _ask(c, droit="portability", email=EMAIL)
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        s.execute(
            update(CallerCode)
            .where(CallerCode.used_at.is_(None))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    status, late = _confirm(c, html, _code(smtp))
    assert status == 422 and "Ce code a expiré" in late
    # Five wrong codes, then even the right one is refused.
    _s, html = _ask(c, droit="erasure", email=EMAIL)
    right = _code(smtp)
    wrong = "111111" if right != "111111" else "222222"
    for _ in range(5):
        assert _confirm(c, html, wrong)[0] == 422
    status, locked = _confirm(c, html, right)
    assert status == 422 and "Trop de codes erronés" in locked
    assert len(_requests(world)) == 1


def test_asking_is_limited_per_identifier_and_per_address(world: World, smtp: SmtpSink) -> None:
    make_caller(world.rt, world.plumber.id, first="B", last="L", phone=PHONE, email=EMAIL)
    c = _browser(world)
    for _ in range(3):
        assert _ask(c, droit="access", email=EMAIL)[0] == 200
    status, html = _ask(c, droit="access", email=EMAIL.upper())  # the same address
    assert status == 429 and "Trop de demandes : réessayez plus tard." in html
    assert len(smtp.messages) == 3
    # The same client address, other identifiers: 10 an hour in all (3 used above; the
    # refused one was not counted).
    statuses = [_ask(c, droit="access", telephone=f"0675{i:06d}")[0] for i in range(8)]
    assert statuses == [200] * 7 + [429]


def test_bad_input_is_refused_in_french_with_what_was_typed(world: World) -> None:
    c = _browser(world)
    status, html = _ask(c, droit="access")
    assert status == 422 and "Indiquez votre numéro de téléphone ou votre adresse e-mail." in html
    status, html = _ask(c, droit="rectification", telephone="0673445566")
    assert status == 422 and "Choisissez le droit que vous souhaitez exercer." in html
    assert 'value="0673445566"' in html
    status, html = _ask(c, droit="access", telephone="pas un numéro")
    assert status == 422 and "numéro de téléphone" in html
    no_token = c.post(PAGE, data={"droit": "access", "telephone": PHONE})
    assert no_token.status_code == 403
    assert c.get("/droits/inconnu").status_code == 404
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(CallerCode)) == 0


def test_the_page_speaks_english_when_asked(world: World) -> None:
    c = _browser(world)
    page = c.get(PAGE, headers={"accept-language": "en"})
    assert "Your rights over your data" in page.text and "Receive a code" in page.text


def test_the_daily_sweep_deletes_expired_codes(world: World, smtp: SmtpSink) -> None:
    from permanence.rights import public

    make_caller(world.rt, world.plumber.id, first="B", last="L", phone=PHONE, email=EMAIL)
    _ask(_browser(world), droit="access", email=EMAIL)
    _ask(_browser(world), droit="erasure", telephone="0600000002")  # a stranger's row too
    ctx = AccessContext.system("rights:sweep", world.plumber.id)
    with world.rt.db.session(ctx) as s:
        assert public.sweep(s, dt.datetime.now(dt.UTC)) == 0  # still valid
        later = dt.datetime.now(dt.UTC) + public.CODE_TTL + dt.timedelta(seconds=1)
        assert public.sweep(s, later) == 2
        assert s.scalar(select(func.count()).select_from(CallerCode)) == 0


def test_the_rights_sweep_command_deletes_expired_codes(world: World, smtp: SmtpSink) -> None:
    from tests.conftest import cli_env, run_cli

    _ask(_browser(world), droit="erasure", telephone="0600000003")
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        s.execute(update(CallerCode).values(expires_at=dt.datetime.now(dt.UTC)))
    done = run_cli(cli_env(world.rt.settings), "rights", "sweep")
    assert done.returncode == 0, done.stderr
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(CallerCode)) == 0


def test_with_an_sms_gateway_a_caller_without_email_gets_the_code_by_sms(world: World) -> None:
    from urllib.parse import parse_qs

    from tests.servers import HttpSink

    sink = HttpSink(default=201).start()
    try:
        world.rt.settings.sms_gateway_url = sink.url("/2010-04-01/Accounts/AC1/Messages.json")
        world.rt.settings.sms_from = "+33100000000"
        make_caller(world.rt, world.plumber.id, first="C", last="M", phone=PHONE, email=None)
        c = _browser(world)
        assert "appelez le numéro que vous composez" not in c.get(PAGE).text
        # Typed in another national form: matched by the blind index, sent to the number on
        # file (E.164), not to what was typed.
        _s, html = _ask(c, droit="restriction", telephone="+33 6 73 44 55 66")
        [sms] = sink.received
        form = {k: v[0] for k, v in parse_qs(sms.body.decode()).items()}
        assert form["To"] == "+33673445566" and "0673445566" not in form["Body"]
        code = re.search(r"\b(\d{6})\b", form["Body"])
        assert code
        assert _confirm(c, html, code.group(1))[0] == 200
        [req] = _requests(world)
        assert req.verification_method == "sms_code" and req.kind == "restriction"
    finally:
        sink.stop()
