from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, SmallInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Evaluation(Base):
    """A supervisor's evaluation grid of one answered, recorded call (issue 22).

    The provider's own processing (staff evaluation, Art. 30(1)): it concerns the operator who
    answered, not the caller. Each criterion is scored 0 (not acquired), 1 (to improve) or
    2 (acquired); the comment is screened so that it carries no personal data about the
    caller. ``call_id`` is kept without a foreign key: the grid does not name the caller, and
    it lives its own retention (the mandate's ``evaluation`` period, at most 1 year from
    ``created_at``), whether or not the call log is still there. ``mandate_id`` is the call's
    mandate version, whose period the retention sweep applies.
    """

    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_account_created", "account_id", "created_at"),
        Index("ix_evaluations_operator", "operator_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    call_id: Mapped[uuid.UUID]
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    operator_id: Mapped[uuid.UUID]
    evaluator_id: Mapped[uuid.UUID]
    greeting: Mapped[int] = mapped_column(SmallInteger)
    identification: Mapped[int] = mapped_column(SmallInteger)
    accuracy: Mapped[int] = mapped_column(SmallInteger)
    courtesy: Mapped[int] = mapped_column(SmallInteger)
    instructions: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
