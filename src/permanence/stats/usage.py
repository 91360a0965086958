"""The usage report of one client account for one month: the basis of the invoice.

Counts and durations only (docs/statistics.md, "Usage report"); as JSON, CSV and PDF. The
same figures in every format, computed once by ``usage_report``.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from permanence import __version__
from permanence.accounts.model import Account
from permanence.calls.hours import OUTBOUND
from permanence.calls.model import Call
from permanence.db import utcnow
from permanence.errors import NotFound
from permanence.mandates.hours_words import MONTHS
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.render import paris
from permanence.stats.account import _require_account_reader
from permanence.stats.service import (
    ABANDONED,
    ANSWERED,
    CALLBACK_REQUESTED,
    EXPIRED,
    FAILED,
    TRANSFERRED,
    VOICEMAIL,
    Period,
    billed_minutes,
    count_if,
    in_period,
    sum_if,
    talk_seconds,
)

MONTHS_FR = MONTHS["fr"]


@dataclass(frozen=True)
class Usage:
    account_slug: str
    account_name: str
    month: str
    calls_received: int
    calls_answered: int
    calls_voicemail: int
    calls_abandoned: int
    calls_failed: int
    calls_expired: int
    talk_seconds: int
    billed_minutes: int
    messages: int
    appointments: int
    recordings: int
    recording_seconds: int
    calls_transferred: int = 0
    calls_outbound: int = 0
    calls_callback_request: int = 0

    # (key, French label) in report order.
    LINES = (
        ("calls_received", "Appels reçus"),
        ("calls_answered", "Appels décrochés"),
        ("calls_voicemail", "Appels vers la messagerie"),
        ("calls_abandoned", "Appels abandonnés"),
        ("talk_seconds", "Temps de conversation (secondes)"),
        ("billed_minutes", "Minutes facturées (minute entamée par appel)"),
        ("messages", "Messages pris"),
        ("appointments", "Rendez-vous pris"),
        ("recordings", "Enregistrements conservés"),
        ("recording_seconds", "Durée des enregistrements (secondes)"),
        # Added later: at the end, so existing CSV readers keep their columns.
        ("calls_failed", "Appels échoués ou occupés"),
        ("calls_expired", "Appels sans fin connue"),
        ("calls_transferred", "Appels transférés"),
        ("calls_outbound", "Rappels passés (appels sortants, inclus ci-dessus)"),
        ("calls_callback_request", "Rappels demandés dans la file d'attente"),
    )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"account": self.account_slug, "month": self.month}
        out.update({k: getattr(self, k) for k, _ in self.LINES})
        return out

    @property
    def month_fr(self) -> str:
        year, month = self.month.split("-")
        return f"{MONTHS_FR[int(month) - 1]} {year}"


def usage_report(session: Session, account_id: uuid.UUID, month: str) -> Usage:
    _require_account_reader(session, account_id)
    period = Period.month(month)
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    talk = talk_seconds(session)
    talked = and_(ANSWERED, talk.is_not(None))
    calls = session.execute(
        select(
            func.count(),
            count_if(ANSWERED),
            count_if(VOICEMAIL),
            count_if(ABANDONED),
            sum_if(talked, func.round(talk)),
            sum_if(talked, billed_minutes(session)),
            count_if(FAILED),
            count_if(EXPIRED),
            count_if(TRANSFERRED),
            count_if(Call.routing == OUTBOUND),
            count_if(CALLBACK_REQUESTED),
        ).where(in_period(account_id, period))
    ).one()

    def count(model: Any) -> int:
        q = select(func.count()).where(
            model.account_id == account_id,
            model.created_at >= period.lower,
            model.created_at < period.upper,
        )
        return int(session.scalar(q) or 0)

    rec = session.execute(
        select(func.count(), func.coalesce(func.sum(Recording.duration_s), 0)).where(
            Recording.account_id == account_id,
            Recording.created_at >= period.lower,
            Recording.created_at < period.upper,
        )
    ).one()
    return Usage(
        account_slug=account.slug,
        account_name=account.name,
        month=period.first.strftime("%Y-%m"),
        calls_received=int(calls[0]),
        calls_answered=int(calls[1]),
        calls_voicemail=int(calls[2]),
        calls_abandoned=int(calls[3]),
        calls_failed=int(calls[6]),
        calls_expired=int(calls[7]),
        calls_transferred=int(calls[8]),
        calls_outbound=int(calls[9]),
        calls_callback_request=int(calls[10]),
        talk_seconds=int(calls[4]),
        billed_minutes=int(calls[5]),
        messages=count(Message),
        appointments=count(Appointment),
        recordings=int(rec[0]),
        recording_seconds=int(rec[1] or 0),
    )


def to_csv(usage: Usage) -> str:
    """One header line and one line of figures (machine-readable; semicolon-free)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    row = usage.as_dict()
    writer.writerow(list(row))
    writer.writerow(list(row.values()))
    return buf.getvalue()


def to_pdf(usage: Usage, provider_name: str) -> bytes:
    """A one-page A4 report in French."""
    from fpdf import FPDF  # imported here: fpdf (with fontTools) would add ~0.5 s to start-up

    pdf = FPDF(format="A4")
    pdf.set_title(f"Relevé d'utilisation {usage.account_slug} {usage.month}")
    pdf.set_creator(f"Permanence {__version__}")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Relevé d'utilisation", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(
        0, 7, f"Client : {usage.account_name} ({usage.account_slug})", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.cell(0, 7, f"Période : {usage.month_fr} ({usage.month})", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 7, f"Prestataire : {provider_name}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(130, 8, "Élément", border=1)
    pdf.cell(50, 8, "Quantité", border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for key, label in usage.LINES:
        pdf.cell(130, 8, label, border=1)
        pdf.cell(
            50, 8, str(getattr(usage, key)), border=1, align="R", new_x="LMARGIN", new_y="NEXT"
        )
    pdf.ln(6)
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(
        0,
        5,
        "Chiffres agrégés, sans donnée personnelle des appelants. Définitions : "
        "docs/statistics.md. Édité le " + paris(utcnow()) + " (heure de Paris).",
    )
    return bytes(pdf.output())
