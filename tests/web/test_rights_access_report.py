"""The access report's recipients and consultations (Art. 15(1)(c)): the processor and its
sub-processors by name (CJEU C-154/21), and who consulted the person's data, when and why,
by role (CJEU C-579/21), in French with Paris times."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import zipfile

import pytest

from permanence.audit import service as audit
from permanence.context import AccessContext, Role
from permanence.contracts.model import SubProcessor
from permanence.rights.service import Outbox
from tests.conftest import SmtpSink
from tests.factories import caller_with_records, ctx_for
from tests.web.conftest import World

FIRST, LAST = "Anatole", "Ribouldingue"
PHONE, EMAIL = "06 73 45 67 01", "anatole.ribouldingue@exemple.fr"


def _report(world: World, smtp: SmtpSink) -> tuple[str, dict[str, object]]:
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    req = client.post(
        base, json={"kind": "access", "requester": {"email": EMAIL}, "verified_by_controller": True}
    )
    done = client.post(f"{base}/{req.json()['id']}/execute")
    assert done.status_code == 200, done.text
    got = world.client().get(done.json()["download_url"].split("testserver", 1)[-1])
    assert got.status_code == 200, got.text
    z = zipfile.ZipFile(io.BytesIO(got.content))
    text = re.sub(r"<[^>]+>", " ", z.read("rapport.html").decode())
    return re.sub(r"\s+", " ", html.unescape(text)), json.loads(z.read("donnees.json"))


@pytest.mark.gdpr("Art. 15")
def test_art15_1_c_access_report_names_the_processor_its_subprocessors_and_the_consultations(
    world: World, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.rt.settings.provider_name = "Permanence Atlantique SARL"
    world.rt.settings.provider_address = "12 quai de la Fosse, 44000 Nantes"
    with world.rt.db.session(AccessContext.system("t")) as s:
        s.add(
            SubProcessor(
                code="relais-smtp",
                name="Relais Courriel SAS",
                service="envoi des courriels",
                country="FR",
                safeguard="eea",
                status="active",
            )
        )
        s.add(
            SubProcessor(
                code="ancien",
                name="Ancien Prestataire",
                service="hébergement",
                country="FR",
                safeguard="eea",
                status="removed",
            )
        )
    made = caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    # The client's user reads the message at 08:05 UTC on 2 July: 10 h 05 in Paris (summer).
    read_at = dt.datetime(2026, 7, 2, 8, 5, tzinfo=dt.UTC)
    # The audit log's own clock is set to that moment (hashed body and ts column alike).
    with (
        monkeypatch.context() as m,
        world.rt.db.session(ctx_for(world.plumber.id, Role.CLIENT, reason="portal:message")) as s,
    ):
        m.setattr(audit, "utcnow", lambda: read_at)
        audit.record(s, "message.read", "message", made.message_id, subject_id=made.caller_id)
    text, data = _report(world, smtp)

    # Recipients: the processor and each active sub-processor, by name, with country.
    assert "Permanence Atlantique SARL , 12 quai de la Fosse, 44000 Nantes" in text, text
    assert "sous-traitant du responsable (article 28 du RGPD)" in text
    assert "Relais Courriel SAS envoi des courriels FR" in text
    assert "Ancien Prestataire" not in text
    info = data["informations"]
    assert isinstance(info, dict)
    assert info["sous_traitants_ulterieurs"] == [
        {"nom": "Relais Courriel SAS", "service": "envoi des courriels", "pays": "FR"}
    ]

    # Consultations: dated in Paris time, the operation, who by role (no name), the purpose.
    assert (
        "2 juillet 2026 à 10 h 05 consultation un utilisateur du responsable du traitement "
        "transmission de votre message au responsable du traitement" in text
    ), text
    # The operator who took the message wrote it: listed by role, never by name or e-mail.
    assert "enregistrement ou modification un opérateur de la permanence téléphonique" in text
    rows = data["consultations"]
    assert isinstance(rows, list) and rows
    assert all(set(r) == {"le", "operation", "par", "finalite"} for r in rows)
    assert not any("@" in r["par"] for r in rows)
    # Handling this very request is not a consultation (it is listed with the requests).
    assert not any("dsr" in r["finalite"] or "demande" in r["finalite"] for r in rows)
