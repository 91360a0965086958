"""One version of a DPIA (Art. 35) of one processing of one client account.

``content`` is JSON following the CNIL PIA method's structure (context, fundamental
principles, risks with severity and likelihood, measures); a version is written by the
provider's DPO (Art. 28(3)(f): the processor assists the controller), validated by the DPO with
an opinion, then the client (the controller, whose duty Art. 35 is) records its opinion.
A validated version never changes: a revision is a new version.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Dpia(Base):
    __tablename__ = "dpias"
    __table_args__ = (UniqueConstraint("account_id", "processing", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    processing: Mapped[str] = mapped_column(String(32))  # health | recording
    version: Mapped[int] = mapped_column(Integer)
    mandate_version: Mapped[int] = mapped_column(Integer)  # the instructions assessed
    content: Mapped[str] = mapped_column(Text)  # JSON, CNIL PIA structure
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]
    validated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    validated_by: Mapped[uuid.UUID | None]
    dpo_opinion: Mapped[str | None] = mapped_column(Text)
    client_opinion: Mapped[str | None] = mapped_column(Text)
    client_opinion_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
