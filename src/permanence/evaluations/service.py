"""Call evaluation grids (issue 22): a supervisor scores an answered, recorded call on five
criteria; the operator sees their own grids, supervisors and administrators all of them;
client users none (the provider's own processing). The retention sweep deletes each grid
after its mandate's ``evaluation`` period, at most 1 year (retention/service.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.context import Role
from permanence.db import ctx_of
from permanence.errors import NotFound, PermissionDenied, ValidationFailed
from permanence.evaluations.model import Evaluation
from permanence.mandates.base import LEGAL_MAXIMA, RetentionKind
from permanence.mandates.durations import IsoDuration
from permanence.mandates.mandate import Mandate
from permanence.pii import STRUCTURED_TYPES, detect
from permanence.recordings.model import Recording

# The grid's criteria, in the order the form shows them (column names of Evaluation).
CRITERIA = ("greeting", "identification", "accuracy", "courtesy", "instructions")
# 0 not acquired, 1 to improve, 2 acquired.
SCORES = (0, 1, 2)
COMMENT_MAX = 2000
EVALUATORS = frozenset({Role.SUPERVISOR})
READ_ALL = frozenset({Role.SUPERVISOR, Role.ADMIN})
# CNIL: evaluation grids are kept 1 year at most (mandates/base.py LEGAL_MAXIMA).
MAX_PERIOD: IsoDuration = LEGAL_MAXIMA[RetentionKind.EVALUATION][0]


def period(mandate: Mandate) -> IsoDuration:
    """How long a grid of a call under ``mandate`` is kept: the mandate's ``evaluation``
    period (the shortest any purpose declares), capped at 1 year; 1 year when it declares
    none (the grid is the provider's processing, not the client's)."""
    declared = mandate.retention(RetentionKind.EVALUATION)
    if declared is None or declared.exceeds(MAX_PERIOD):
        return MAX_PERIOD
    return declared


def _evaluable(session: Session, call_id: uuid.UUID) -> tuple[Call, uuid.UUID]:
    account_id = ctx_of(session).require_account()
    call = session.get(Call, call_id)
    if call is None or call.account_id != account_id:
        raise NotFound("no such call")
    recording = session.scalar(
        select(Recording.id).where(Recording.call_id == call.id, Recording.kind == "call").limit(1)
    )
    if call.answered_at is None or call.operator_id is None or recording is None:
        raise ValidationFailed(
            "only an answered call with a recording can be evaluated",
            problems=["call:not_evaluable"],
        )
    return call, recording


def evaluable_call(session: Session, call_id: uuid.UUID) -> tuple[Call, uuid.UUID]:
    """The call to evaluate and its recording (the form plays it): 403 unless an evaluator,
    404 unless a call of this account, 422 unless answered and recorded."""
    if ctx_of(session).role not in EVALUATORS:
        raise PermissionDenied("call evaluations are recorded by a supervisor")
    return _evaluable(session, call_id)


def _score(name: str, value: str | int | None) -> int:
    try:
        score = int(value) if value is not None and str(value).strip() != "" else None
    except ValueError:
        score = None
    if score not in SCORES:
        raise ValidationFailed(f"{name}: choose a score", problems=[f"{name}:required"])
    return score


def _comment(value: str) -> str | None:
    value = value.strip()
    if len(value) > COMMENT_MAX:
        raise ValidationFailed(
            f"comment is longer than {COMMENT_MAX} characters", problems=["comment:too_long"]
        )
    found = detect(value, STRUCTURED_TYPES)
    if found:
        types = ", ".join(sorted({e.type for e in found}))
        raise ValidationFailed(
            f"the comment contains personal data ({types}): describe, do not quote",
            problems=["comment:personal_data"],
        )
    return value or None


def record(
    session: Session,
    call_id: uuid.UUID,
    scores: Mapping[str, str | int | None],
    comment: str = "",
) -> Evaluation:
    """Record the grid of one call (all criteria scored), audited without its content."""
    call, _recording = evaluable_call(session, call_id)
    problems: list[str] = []
    values: dict[str, int] = {}
    for name in CRITERIA:
        try:
            values[name] = _score(name, scores.get(name))
        except ValidationFailed as exc:
            problems += exc.problems
    try:
        text = _comment(comment)
    except ValidationFailed as exc:
        problems += exc.problems
    if problems:
        raise ValidationFailed("the evaluation is not complete", problems=problems)
    evaluator = ctx_of(session).actor_id
    if evaluator is None or call.operator_id is None:
        raise PermissionDenied("an evaluation is signed by a supervisor, of an operator")
    evaluation = Evaluation(
        account_id=call.account_id,
        call_id=call.id,
        mandate_id=call.mandate_id,
        operator_id=call.operator_id,
        evaluator_id=evaluator,
        comment=text,
        **values,
    )
    session.add(evaluation)
    session.flush()
    audit.record(session, "evaluation.record", "evaluation", evaluation.id)
    return evaluation


def visible(session: Session) -> list[Evaluation]:
    """This account's grids the viewer may read, newest first: an operator's own; all of
    them for a supervisor or an administrator; none for anyone else (403)."""
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    q = select(Evaluation).where(Evaluation.account_id == account_id)
    if ctx.role == Role.OPERATOR:
        q = q.where(Evaluation.operator_id == ctx.actor_id)
    elif ctx.role not in READ_ALL:
        raise PermissionDenied("call evaluations are read by the operator, supervisors and admins")
    return list(session.scalars(q.order_by(Evaluation.created_at.desc())))


@dataclass(frozen=True)
class ToEvaluate:
    call_id: uuid.UUID
    answered_at: dt.datetime
    operator_id: uuid.UUID


def to_evaluate(session: Session, limit: int = 20) -> list[ToEvaluate]:
    """Recent answered calls of the account with a recording and no grid yet."""
    if ctx_of(session).role not in EVALUATORS:
        raise PermissionDenied("call evaluations are recorded by a supervisor")
    account_id = ctx_of(session).require_account()
    q = (
        select(Call.id, Call.answered_at, Call.operator_id)
        .where(
            Call.account_id == account_id,
            Call.answered_at.is_not(None),
            Call.operator_id.is_not(None),
            exists().where(Recording.call_id == Call.id, Recording.kind == "call"),
            ~exists().where(Evaluation.call_id == Call.id),
        )
        .order_by(Call.answered_at.desc())
        .limit(limit)
    )
    return [
        ToEvaluate(call_id, answered_at, operator_id)
        for call_id, answered_at, operator_id in session.execute(q)
        if answered_at is not None and operator_id is not None  # the query's conditions
    ]
