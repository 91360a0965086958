"""The mandate: a client's documented instructions (GDPR Art. 28(3)(a)) as validated data.

Pure module: no database, no web. `Mandate` gathers the sections (`purposes`, `sections`,
`hours`, `queueing`); each section checks its own rules, then `Mandate` runs the rules across
sections (`rules`). A `Mandate` is immutable (frozen models); a change is a new document and,
once imported, a new version. `parsing.parse_mandate` builds one from YAML or JSON.
"""

from typing import Self

import pydantic
from pydantic import model_validator

from permanence.mandates.base import FieldCategory, MandateKind, Phone, RetentionKind, Slug, _Model
from permanence.mandates.durations import IsoDuration
from permanence.mandates.errors import MandateUnversioned, PurposeNotInMandate, _reject
from permanence.mandates.hours import AfterHours, Hours
from permanence.mandates.purposes import Field, Purpose
from permanence.mandates.queueing import Queueing
from permanence.mandates.rules import Outline, catalogue_problems, document_problems, safe_resolved
from permanence.mandates.sections import (
    Agenda,
    Controller,
    Hosting,
    Notice,
    OnCall,
    Recipient,
    Recording,
    Transfer,
)


class Mandate(_Model):
    """A client's documented instructions (Art. 28(3)(a)): one version of them."""

    account: Slug
    version: int | None = pydantic.Field(default=None, ge=1)
    kind: MandateKind
    controller: Controller
    dids: tuple[Phone, ...] = ()
    notice: Notice
    fields: tuple[Field, ...] | None = None
    purposes: tuple[Purpose, ...] = pydantic.Field(min_length=1)
    recipients: tuple[Recipient, ...] = pydantic.Field(min_length=1)
    on_call: OnCall | None = None
    hours: Hours | None = None  # none: every call is answered as in hours
    after_hours: AfterHours | None = None  # with hours, voicemail when absent
    recording: Recording = Recording()
    agenda: Agenda = Agenda()
    transfers: tuple[Transfer, ...] = ()
    hosting: Hosting | None = None
    queue: Queueing = Queueing()  # permanence.mandates.queueing (routing)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems = catalogue_problems(
            [Outline.of(i, p) for i, p in enumerate(self.purposes)],
            [(i, f.name, f) for i, f in enumerate(self.fields or ())],
        )
        catalogue = self.catalogue
        for purpose in self.purposes:
            purpose._catalogue = {n: catalogue[n] for n in purpose.field_names if n in catalogue}
        problems += document_problems(self)
        _reject(problems)
        return self

    # -- helpers ---------------------------------------------------------------------------

    @property
    def catalogue(self) -> dict[str, Field]:
        """The top-level field catalogue by name (empty if there is none)."""
        return {f.name: f for f in self.fields or ()}

    def purpose(self, code: str) -> Purpose:
        """The purpose `code`; raises `PurposeNotInMandate`."""
        for candidate in self.purposes:
            if candidate.code == code:
                return candidate
        raise PurposeNotInMandate(code, self.account)

    def retention(
        self, kind: RetentionKind | str, purpose_code: str | None = None
    ) -> IsoDuration | None:
        """How long records of `kind` are kept.

        With a purpose: that purpose's period (for recordings, falling back to the recording
        policy). Without: for recordings, the recording policy's period; otherwise the
        *shortest* period any purpose declares for that kind (privacy by default, Art. 25(2)).
        None means the mandate declares no period: such records must not be kept.
        """
        kind = RetentionKind(kind)
        fallback = self.recording.retention if kind is RetentionKind.RECORDING else None
        if purpose_code is not None:
            return self.purpose(purpose_code).retention.get(kind) or fallback
        if fallback is not None:
            return fallback
        declared = [d for p in self.purposes if (d := p.retention.get(kind)) is not None]
        return min(declared, key=IsoDuration.approximate) if declared else None

    @property
    def notice_version(self) -> str:
        """`"<mandate version>:<notice version>"`, stored with each call that read it."""
        if self.version is None:
            raise MandateUnversioned(
                f"mandate of account '{self.account}' has no version yet (assigned on import)"
            )
        return f"{self.version}:{self.notice.version}"

    @property
    def declares_health_data(self) -> bool:
        return self.controller.health_data or any(
            f.category is FieldCategory.HEALTH for p in self.purposes for f in safe_resolved(p)
        )
