"""The second layer of the callers' notice (GDPR Art. 13; CNIL/EDPB WP260 layered
information), generated from one mandate version: never typed by hand, so it cannot drift
from what the answering service actually does.

`second_layer(mandate, lang, translate)` gives a plain structure the page template renders;
`notice_url(base_url, slug, version)` the public address of a version's notice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from permanence.mandates.base import LegalBasis, RecordingMode
from permanence.mandates.durations import IsoDuration
from permanence.mandates.mandate import Mandate
from permanence.mandates.sections import (
    EmailNotificationRecipient,
    PortalRecipient,
    WebhookRecipient,
)

Translate = Callable[[str], str]

# Where a caller complains (Art. 13(2)(d), 77): the French supervisory authority.
CNIL_COMPLAINT_URL = "https://www.cnil.fr/fr/adresser-une-plainte"

_UNITS = {
    # unit: (fr singular, fr plural, en singular, en plural)
    "years": ("an", "ans", "year", "years"),
    "months": ("mois", "mois", "month", "months"),
    "weeks": ("semaine", "semaines", "week", "weeks"),
    "days": ("jour", "jours", "day", "days"),
    "hours": ("heure", "heures", "hour", "hours"),
    "minutes": ("minute", "minutes", "minute", "minutes"),
    "seconds": ("seconde", "secondes", "second", "seconds"),
}


def notice_path(slug: str, version: int | None = None) -> str:
    return f"/n/{slug}" + (f"/{version}" if version is not None else "")


def notice_url(base_url: str, slug: str, version: int | None = None) -> str:
    """The public address of the second layer: `<base>/n/<slug>/<version>` (the latest
    without a version)."""
    return base_url.rstrip("/") + notice_path(slug, version)


def layer2_url(mandate: Mandate, base_url: str, version: int | None = None) -> str:
    """The address callers are given: the mandate's own `layer2_url` when it names one,
    otherwise the product's page for this version."""
    if mandate.notice.layer2_url:
        return str(mandate.notice.layer2_url)
    return notice_url(base_url, mandate.account, version or mandate.version)


def external_layer2(mandate: Mandate, base_url: str) -> bool:
    """True when the mandate points callers at a page the product does not serve (and so
    cannot check)."""
    url = mandate.notice.layer2_url
    if not url:
        return False
    own = notice_url(base_url, mandate.account)
    return not (str(url) == own or str(url).startswith(own + "/"))


def duration_words(d: IsoDuration, lang: str) -> str:
    """`P1Y2M` → "1 an et 2 mois" / "1 year and 2 months"."""
    parts = []
    for unit, words in _UNITS.items():
        n = getattr(d, unit)
        if n:
            fr1, frn, en1, enn = words
            word = (fr1 if n == 1 else frn) if lang == "fr" else (en1 if n == 1 else enn)
            parts.append(f"{n} {word}")
    joiner = " et " if lang == "fr" else " and "
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + joiner + parts[-1]


@dataclass(frozen=True)
class PurposeNotice:
    label: str
    basis: str
    interest: str | None
    art9: str | None
    data: list[str]
    required: list[str]
    optional: list[str]
    retention: list[str]


@dataclass(frozen=True)
class SecondLayer:
    """Everything Art. 13(1)-(2) asks, worded for one language."""

    lang: str
    slug: str
    version: int
    notice_version: str
    controller: str
    address: str
    contact_email: str
    dpo: str | None
    rights_contact: str
    purposes: list[PurposeNotice]
    recipients: list[str]
    transfers: list[str]
    recording: list[str]
    consent_withdrawal: bool
    portability: bool
    objection: bool
    first_layer: str
    hosting: str | None = None


def second_layer(mandate: Mandate, version: int, lang: str, _: Translate) -> SecondLayer:
    """The second layer of `mandate` (stored as `version`) in `lang` ("fr" or "en");
    `_` translates the fixed wording (English message ids, French from the catalog)."""
    en = lang == "en"
    basis = {
        LegalBasis.CONSENT: _("your consent (GDPR Art. 6(1)(a)), which you may withdraw"),
        LegalBasis.CONTRACT: _(
            "the performance of a contract with you or steps taken at your request "
            "(GDPR Art. 6(1)(b))"
        ),
        LegalBasis.LEGAL_OBLIGATION: _("a legal obligation (GDPR Art. 6(1)(c))"),
        LegalBasis.VITAL_INTERESTS: _("the protection of vital interests (GDPR Art. 6(1)(d))"),
        LegalBasis.PUBLIC_TASK: _("a task in the public interest (GDPR Art. 6(1)(e))"),
        LegalBasis.LEGITIMATE_INTEREST: _(
            "the controller's legitimate interest (GDPR Art. 6(1)(f))"
        ),
    }
    art9 = {
        "art9_2_a": _("your explicit consent (GDPR Art. 9(2)(a))"),
        "art9_2_b": _("obligations in employment and social security law (GDPR Art. 9(2)(b))"),
        "art9_2_c": _("vital interests (GDPR Art. 9(2)(c))"),
        "art9_2_d": _("the activities of a not-for-profit body (GDPR Art. 9(2)(d))"),
        "art9_2_e": _("data you have made public (GDPR Art. 9(2)(e))"),
        "art9_2_f": _("legal claims (GDPR Art. 9(2)(f))"),
        "art9_2_g": _("a substantial public interest (GDPR Art. 9(2)(g))"),
        "art9_2_h": _(
            "medical care by a health professional bound by professional secrecy "
            "(GDPR Art. 9(2)(h) and 9(3))"
        ),
        "art9_2_i": _("public health (GDPR Art. 9(2)(i))"),
        "art9_2_j": _("archiving, research or statistics (GDPR Art. 9(2)(j))"),
    }
    kinds = {
        "message": _("messages"),
        "appointment": _("appointment requests"),
        "call_log": _("the call log (date, time and number of the call)"),
        "consent": _("the record of your consent"),
        "recording": _("call recordings"),
        "evaluation": _("call quality evaluations"),
        "rights_request": _("the handling of your requests about your data"),
    }
    purposes = []
    for p in mandate.purposes:
        fields = p.resolved_fields
        label = (p.label_en or p.label_fr) if en else p.label_fr
        names = [f.display_label_en if en else f.display_label_fr for f in fields]
        purposes.append(
            PurposeNotice(
                label=label,
                basis=basis[p.legal_basis],
                interest=p.legitimate_interest,
                art9=art9[p.special_category_basis.value] if p.special_category_basis else None,
                data=names,
                required=[n for n, f in zip(names, fields, strict=True) if f.required],
                optional=[n for n, f in zip(names, fields, strict=True) if not f.required],
                retention=[
                    _("%(what)s: %(duration)s")
                    % {"what": kinds[k.value], "duration": duration_words(d, lang)}
                    for k, d in p.retention.items()
                ],
            )
        )
    recipients = [
        _(
            "The telephone answering service that takes your call on the controller's behalf, "
            "as its processor (GDPR Art. 28), bound by confidentiality."
        )
    ]
    for r in mandate.recipients:
        if isinstance(r, PortalRecipient):
            recipients.append(_("The controller's staff, through a secure portal."))
        elif isinstance(r, EmailNotificationRecipient):
            recipients.append(
                _("An e-mail alert to the controller, which carries no personal data.")
                if not r.personal_data
                else _("The controller, by e-mail.")
            )
        elif isinstance(r, WebhookRecipient):
            recipients.append(
                _("The controller's own information system (%(host)s).")
                % {"host": urlsplit(str(r.url)).hostname or ""}
            )
    if mandate.on_call and mandate.on_call.contacts:
        recipients.append(_("In an emergency, the controller's on-call contact, by telephone."))
    safeguards = {
        "adequacy_decision": _("an adequacy decision of the European Commission (Art. 45)"),
        "standard_contractual_clauses": _("standard contractual clauses (Art. 46(2)(c))"),
        "binding_corporate_rules": _("binding corporate rules (Art. 47)"),
        "derogation_art49": _("a derogation for a specific situation (Art. 49)"),
    }
    transfers = [
        _("To %(country)s%(recipient)s, under %(safeguard)s.")
        % {
            "country": t.country,
            "recipient": f" ({t.recipient})" if t.recipient else "",
            "safeguard": safeguards[t.safeguard.value],
        }
        for t in mandate.transfers
    ]
    rec = mandate.recording
    recording = []
    if rec.enabled:
        why = (rec.purpose_en or rec.purpose_fr) if en else rec.purpose_fr
        recording.append(_("Some calls are recorded: %(why)s.") % {"why": (why or "").rstrip(".")})
        if rec.mode is RecordingMode.SAMPLING and rec.sample_rate:
            recording.append(
                _("About %(percent)s%% of calls are recorded, never all of them.")
                % {"percent": round(rec.sample_rate * 100)}
            )
        elif rec.mode is RecordingMode.PERIODS:
            recording.append(
                _("Calls are recorded only during these periods: %(periods)s.")
                % {"periods": ", ".join(f"{p.start} – {p.end}" for p in rec.periods)}
            )
        recording.append(
            _(
                "Who listens: the answering service's supervisors, to evaluate and train the "
                "operators, and %(controller)s; never the operators themselves."
            )
            % {"controller": mandate.controller.name}
        )
        if rec.retention:
            recording.append(
                _("Recordings are kept for %(duration)s, then deleted.")
                % {"duration": duration_words(rec.retention, lang)}
            )
        recording.append(
            _(
                "You may object to the recording: press %(key)s while the recording notice is "
                "read, or tell the person who answers at any time during the call."
            )
            % {"key": rec.objection_key}
        )
    bases = {p.legal_basis for p in mandate.purposes}
    consent = LegalBasis.CONSENT in bases or any(
        p.special_category_basis and p.special_category_basis.value == "art9_2_a"
        for p in mandate.purposes
    )
    dpo = mandate.controller.dpo
    hosting = mandate.hosting
    return SecondLayer(
        lang=lang,
        slug=mandate.account,
        version=version,
        notice_version=f"{version}:{mandate.notice.version}",
        controller=mandate.controller.name,
        address=mandate.controller.address,
        contact_email=str(mandate.controller.contact_email),
        dpo=(f"{dpo.name}, {dpo.email}" + (f", {dpo.phone}" if dpo.phone else "")) if dpo else None,
        rights_contact=mandate.controller.rights_contact,
        purposes=purposes,
        recipients=recipients,
        transfers=transfers,
        recording=recording,
        consent_withdrawal=consent,
        portability=bool(bases & {LegalBasis.CONSENT, LegalBasis.CONTRACT}),
        objection=bool(bases & {LegalBasis.LEGITIMATE_INTEREST, LegalBasis.PUBLIC_TASK})
        or rec.enabled,
        first_layer=(mandate.notice.layer1_en or mandate.notice.layer1_fr)
        if en
        else mandate.notice.layer1_fr,
        hosting=f"{hosting.provider} ({hosting.country})" if hosting else None,
    )


# What the CNIL expects the spoken first layer to say (layered information, WP260 and the
# CNIL's guidance on telephone calls): who collects, why, that the caller has rights, and
# where the rest is. Checked on the words, in each language the mandate declares.
_FIRST_LAYER_CUES: dict[str, dict[str, tuple[str, ...]]] = {
    "why": {
        "fr": ("servent", "sert a", "pour ", "afin", "utilis", "finalit", "transmis", "trait"),
        "en": ("used", "use ", "for ", "so that", "purpose", "passed", "to "),
    },
    "rights": {
        "fr": ("droit", "acceder", "acces", "rectifi", "effac", "opposer", "opposition"),
        "en": ("right", "access", "correct", "rectif", "erase", "object"),
    },
    "rest": {
        "fr": ("le detail", "sms", "site", "envoy", "en savoir plus", "informations complete"),
        "en": ("full details", "more details", "text message", "sms", "website", "sent to you"),
    },
}
_WHAT = {
    "why": "why the data is collected (the purpose)",
    "rights": "that the caller has rights over the data (access, rectification, erasure...)",
    "rest": "where to find the full information (e.g. 'le détail vous est envoyé par SMS')",
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _controller_words(mandate: Mandate) -> list[str]:
    """The distinctive words of the controller's name (e.g. 'lefevre', 'plomberie')."""
    common = {"cabinet", "societe", "sarl", "associes", "avocats", "docteur", "medecin"}
    words = re.findall(r"[a-z0-9]{4,}", _fold(mandate.controller.name))
    return [w for w in words if w not in common] or words


def first_layer_problems(mandate: Mandate) -> list[str]:
    """What the spoken first layer (notice.layer1_fr, and layer1_en when given) fails to say,
    one sentence per gap; empty when it says all the CNIL expects."""
    problems = []
    names = _controller_words(mandate)
    texts = {"fr": mandate.notice.layer1_fr, "en": mandate.notice.layer1_en}
    for lang, text in texts.items():
        if text is None:
            continue
        folded = _fold(text)
        where = f"notice.layer1_{lang}"
        if names and not any(w in folded for w in names):
            problems.append(
                f"{where} does not say who collects the data: name the controller "
                f"('{mandate.controller.name}')"
            )
        for gap, cues in _FIRST_LAYER_CUES.items():
            if not any(c in folded for c in cues[lang]):
                problems.append(f"{where} does not say {_WHAT[gap]}")
    return problems
