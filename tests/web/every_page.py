"""Every HTML page the app serves, each with the person who opens it and a real object of the
test world (issue 17): the language test (tests/web/test_languages.py) and the axe walk in a
browser (tests/e2e/test_every_page_browser.py) go through this one list, and
``test_every_page_route_is_walked`` fails when a GET route of ``create_app`` is in neither
this list nor ``NOT_PAGES`` — so a new page cannot be added unchecked."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from fastapi.routing import iter_route_contexts

from permanence.context import AccessContext
from tests.web.conftest import Person, World

# GET routes that are not pages: machine interfaces, files, redirects, streams.
NOT_PAGE_PREFIXES = ("/api/", "/telephony/", "/opendsr/", "/static")
NOT_PAGES = {
    "/": "redirects to the role's home page or to the sign-in page",
    "/dpo": "redirects to the DPO's first page",
    "/admin": "redirects to the administrator's first page",
    "/portail": "redirects to the client's first page",
    "/langue/{lang}": "sets the language cookie and redirects back",
    "/healthz": "liveness probe (JSON)",
    "/readyz": "readiness probe (JSON)",
    "/metrics": "Prometheus metrics (text)",
    "/openapi.json": "the API's description (JSON)",
    "/console/flux": "the queue's server-sent event stream the console reads",
    "/console/routage/etat": "the operator's presence as JSON for the console's script",
    "/admin/comptes/{account_id}/mandat.{fmt}": "the mandate as a file (YAML/JSON download)",
    "/dpo/registre-art30.{fmt}": "the Art. 30 record as a file (CSV/JSON download)",
    "/dpo/conformite.html": "the compliance report as a standalone file to keep (download)",
    "/dpo/dossier-de-preuves.zip": "the evidence pack (ZIP download)",
    "/dpo/droits/registre.csv": "the rights register (CSV download)",
    "/dpo/formation/attestations/{attestation_id}": "a training attestation (file download)",
    "/portail/contrat/v{version}.pdf": "the signed contract (PDF download)",
    "/portail/export.csv": "the client's export (CSV download)",
}


def page_routes(app: object) -> set[str]:
    """The path of every GET route of the app that is not under a machine prefix."""
    routes = set()
    for r in iter_route_contexts(app.routes):  # type: ignore[attr-defined]
        path = r.path
        if not r.methods or "GET" not in r.methods or path is None:
            continue
        if path.startswith(NOT_PAGE_PREFIXES):
            continue
        routes.add(path)
    return routes


@dataclass(frozen=True)
class Page:
    """``who`` opens ``path`` (None: nobody signed in); ``route`` is its route's template;
    ``data``: the words of that page that are the world's data, not interface; ``status``:
    what the page answers (a page saying a link is no longer valid is a 404); ``fragment``: a
    piece of HTML a page loads into itself (the browser walk sees it inside that page)."""

    who: Person | None
    route: str
    path: str
    data: frozenset[str] = field(default_factory=frozenset)
    status: int = 200
    fragment: bool = False


# The message's fields and the purpose's choices are the client's and the caller's words (the
# mandate declares its choices in French only): data, not interface.
def _message_words() -> frozenset[str]:
    from tests.web.test_languages import WORD
    from tests.web.test_pages import INTERVENTION

    words = {w.lower() for v in INTERVENTION.values() for w in WORD.findall(v)}
    return frozenset(
        words | {"urgent", "fuite", "dégât", "des", "eaux", "sous", "heures", "à", "planifier"}
    )


CONTROLLER = frozenset({"cabinet", "du", "dr", "claire", "lefèvre", "médecin", "généraliste"})
# The notice quotes the mandate's legitimate interest, written by the controller in French,
# names the CNIL by its name and links to its complaint page's address.
NOTICE = CONTROLLER | {"transmettre", "au", "les", "demandes", "de", "ses", "patients", "hors"} | {
    "des", "heures", "d'ouverture", "commission", "nationale", "l'informatique", "et",
    "libertés", "adresser", "une", "plainte",
}  # fmt: skip
# The breach's description, as the DPO wrote it (tests.web.test_pages._notified_breach).
BREACH = frozenset(
    {"compte", "d'opérateur", "utilisé", "par", "un", "tiers", "après", "hameçonnage"}
    | {"risque", "d'appels", "frauduleux", "se", "réclamant", "de", "l'entreprise"}
    | {"bloqué", "mot", "passe", "et", "totp", "renouvelés"}
)
# The mandate's holidays carry the controller's notes ("veille du jour de l'an").
HOLIDAYS = frozenset({"veille", "du", "jour", "de", "l'an", "noël"})


def _appointment(world: World) -> uuid.UUID:
    from permanence.messages import service as messages
    from tests.factories import ctx_for, make_caller

    caller = make_caller(world.rt, world.plumber.id, last="Lemoine", phone="06 12 34 56 78")
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        appt = messages.book_appointment(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="appointment",
            starts_at=start,
            ends_at=start + dt.timedelta(minutes=30),
            values={
                "last_name": "Lemoine",
                "phone": "06 12 34 56 78",
                "address": "5 rue des Lilas",
                "preferred_slot": start.isoformat(),
            },
        )
        return appt.id


def _dpia_processing(world: World) -> str:
    from permanence.dpia import service as dpias

    ctx = AccessContext.system("test", world.medical.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        return dpias.account_status(s)[0].processing


def every_page(world: World) -> list[Page]:
    """Each page route once, opened by the role it is for, on real objects of the world."""
    from tests.web.test_evaluations import _answered_recorded_call
    from tests.web.test_pages import _notified_breach, message_for_plumber, ring
    from tests.web.test_rights_pages import _request

    message = message_for_plumber(world)
    request = _request(world, world.plumber.id, "access")
    account_id, call_id = ring(world)
    evaluated = _answered_recorded_call(world)
    breach = _notified_breach(world)
    appointment = _appointment(world)
    processing = _dpia_processing(world)
    plumber, medical = str(world.plumber.id), str(world.medical.id)
    words = _message_words()
    op, sup, dpo, admin = world.operator, world.supervisor, world.dpo, world.admin
    client, doctor = world.client_plumber, world.client_medical
    bad_token = "x" * 43
    return [
        # Nobody signed in.
        Page(None, "/connexion", "/connexion"),
        Page(None, "/connexion/mot-de-passe-oublie", "/connexion/mot-de-passe-oublie"),
        Page(
            None,
            "/connexion/reinitialiser/{token}",
            f"/connexion/reinitialiser/{bad_token}",
            status=404,
        ),
        Page(
            None,
            "/connexion/deverrouiller/{token}",
            f"/connexion/deverrouiller/{bad_token}",
            status=404,
        ),
        Page(None, "/droits/{slug}", "/droits/cabinet-lefevre", CONTROLLER),
        Page(None, "/n/{slug}", "/n/cabinet-lefevre", NOTICE),
        Page(None, "/n/{slug}/{version}", "/n/cabinet-lefevre/1", NOTICE),
        # The operator.
        Page(op, "/console", "/console"),
        Page(
            op,
            "/console/appels/{account_id}/{call_id}",
            f"/console/appels/{account_id}/{call_id}?motif=intervention",
            words,
        ),
        Page(
            op,
            "/console/routage/transfert/{account_id}/{call_id}",
            f"/console/routage/transfert/{account_id}/{call_id}",
            fragment=True,
        ),
        Page(
            op, "/console/messagerie-vocale/{account_id}", f"/console/messagerie-vocale/{plumber}"
        ),
        Page(op, "/compte/securite", "/compte/securite"),
        Page(op, "/compte/authentificateur", "/compte/authentificateur"),
        Page(op, "/confirmer", "/confirmer?suite=/console"),
        Page(op, "/engagement", "/engagement"),
        # The supervisor.
        Page(sup, "/supervision", "/supervision"),
        Page(sup, "/supervision/accounts/{account_id}", f"/supervision/accounts/{plumber}"),
        Page(sup, "/evaluations", "/evaluations"),
        Page(sup, "/evaluations/{account_id}/{call_id}", f"/evaluations/{plumber}/{evaluated}"),
        # The DPO.
        Page(dpo, "/dpo/registre-art30", "/dpo/registre-art30"),
        Page(dpo, "/dpo/violations", "/dpo/violations"),
        Page(dpo, "/dpo/violations/nouvelle", "/dpo/violations/nouvelle"),
        Page(dpo, "/dpo/violations/{reference}", f"/dpo/violations/{breach}", BREACH),
        Page(
            dpo,
            "/dpo/violations/{reference}/avis/{account_id}",
            f"/dpo/violations/{breach}/avis/{plumber}",
            BREACH,
        ),
        Page(dpo, "/dpo/formation", "/dpo/formation"),
        Page(dpo, "/dpo/audits", "/dpo/audits"),
        Page(dpo, "/dpo/droits", "/dpo/droits"),
        Page(dpo, "/dpo/droits/nouvelle", "/dpo/droits/nouvelle"),
        Page(dpo, "/dpo/droits/{account_id}/{request_id}", f"/dpo/droits/{plumber}/{request}"),
        Page(dpo, "/dpo/conformite", "/dpo/conformite"),
        Page(dpo, "/dpo/journal", "/dpo/journal"),
        Page(dpo, "/dpo/contrats", "/dpo/contrats"),
        Page(dpo, "/dpo/contrats/{slug}", "/dpo/contrats/" + world.medical.slug),
        Page(dpo, "/dpo/aipd", "/dpo/aipd"),
        Page(
            dpo,
            "/dpo/aipd/{slug}/{processing}",
            f"/dpo/aipd/{world.medical.slug}/{processing}",
        ),
        # The administrator.
        Page(admin, "/admin/comptes", "/admin/comptes"),
        Page(admin, "/admin/comptes/{account_id}", f"/admin/comptes/{plumber}"),
        Page(
            admin,
            "/admin/comptes/{account_id}/mandat",
            f"/admin/comptes/{medical}/mandat",
            HOLIDAYS,
        ),
        Page(
            admin,
            "/admin/comptes/{account_id}/mandat-diff",
            f"/admin/comptes/{plumber}/mandat-diff?de=1&a=1",
        ),
        Page(admin, "/admin/utilisateurs", "/admin/utilisateurs"),
        Page(admin, "/admin/utilisateurs/{user_id}/acces", f"/admin/utilisateurs/{op.id}/acces"),
        Page(admin, "/admin/lignes", "/admin/lignes"),
        # The clients.
        Page(client, "/portail/messages", "/portail/messages"),
        Page(client, "/portail/messages/{message_id}", f"/portail/messages/{message}", words),
        Page(client, "/portail/mandat", "/portail/mandat"),
        Page(client, "/portail/violations", "/portail/violations"),
        Page(client, "/portail/violations/{reference}", f"/portail/violations/{breach}"),
        Page(
            client,
            "/portail/violations/{reference}/cnil",
            f"/portail/violations/{breach}/cnil",
        ),
        Page(client, "/portail/messagerie-vocale", "/portail/messagerie-vocale"),
        Page(client, "/portail/droits", "/portail/droits"),
        Page(client, "/portail/contrat", "/portail/contrat"),
        Page(client, "/portail/appels", "/portail/appels"),
        Page(client, "/portail/export", "/portail/export"),
        Page(
            client,
            "/portail/rendez-vous/{appointment_id}/annuler",
            f"/portail/rendez-vous/{appointment}/annuler",
        ),
        Page(doctor, "/portail/agenda", "/portail/agenda"),
        Page(doctor, "/portail/aipd", "/portail/aipd"),
    ]
