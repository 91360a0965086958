"""The other sections of a mandate: the controller and its DPO, the layered notice, the
recipients of messages, the on-call rota, call recording, transfers, hosting and the agenda.
Each model checks its own rules; rules across sections are in `rules`.
"""

import hashlib
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

import pydantic
from pydantic import (
    AfterValidator,
    ConfigDict,
    model_validator,
)

from permanence.mandates.base import (
    _SECRET_REF,
    CountryCode,
    Email,
    HhMm,
    HttpsUrl,
    Phone,
    RecordingMode,
    RetentionKind,
    Safeguard,
    Text,
    _check,
    _Model,
    _over_maximum,
    _rights_contact,
)
from permanence.mandates.durations import IsoDuration
from permanence.mandates.errors import _reject

# Recording periods are calendar dates in France.
_PARIS = ZoneInfo("Europe/Paris")


class Dpo(_Model):
    name: Text
    email: Email
    phone: Phone | None = None


class Controller(_Model):
    """The client business: controller of the callers' data (Art. 4(7), 13(1)(a))."""

    name: Text
    address: Text
    contact_email: Email
    dpo: Dpo | None  # required: write `dpo: null` to state there is none
    rights_contact: Annotated[str, AfterValidator(_rights_contact)]
    health_data: bool = False


class Notice(_Model):
    """The layered notice (Art. 13; CNIL/WP260): layer 1 spoken, layer 2 the full text."""

    version: Text
    layer1_fr: Text
    layer1_en: Text | None = None
    layer2_url: HttpsUrl | None = None
    recording_fr: Text | None = None
    recording_en: Text | None = None
    # Keys the caller may press while the first layer is spoken (docs/telephony.md): the full
    # notice by SMS, and English (the first layer, recording notice and prompts in English).
    sms_key: (
        Annotated[str, _check(re.compile(r"[0-9*#]"), "must be one telephone key: 0-9, * or #")]
        | None
    ) = None
    english_key: (
        Annotated[str, _check(re.compile(r"[0-9*#]"), "must be one telephone key: 0-9, * or #")]
        | None
    ) = None

    @model_validator(mode="before")
    @classmethod
    def _version_as_text(cls, data: Any) -> Any:
        # `version: 3` in YAML is an int; a notice version is a label, so accept it as text.
        version = data.get("version") if isinstance(data, Mapping) else None
        if isinstance(version, int) and not isinstance(version, bool):
            return {**data, "version": str(data["version"])}
        return data


class PortalRecipient(_Model):
    kind: Literal["portal"]


class EmailNotificationRecipient(_Model):
    """An e-mail telling the client a message is waiting; never the message itself."""

    kind: Literal["email_notification"]
    to: Email
    personal_data: bool = False

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if self.personal_data:
            _reject(
                [
                    "personal_data must be false: e-mails to the client carry no personal data, "
                    "only a link to the portal"
                ]
            )
        return self


class WebhookRecipient(_Model):
    kind: Literal["webhook"]
    url: HttpsUrl
    secret_ref: Annotated[
        str,
        _check(
            _SECRET_REF,
            "must name where the signing secret is kept (env:NAME, file:/path or vault:path), "
            "never the secret itself",
        ),
    ]


Recipient = Annotated[
    PortalRecipient | EmailNotificationRecipient | WebhookRecipient,
    pydantic.Field(discriminator="kind"),
]
_RECIPIENT_KINDS = frozenset({"portal", "email_notification", "webhook"})


class OnCallContact(_Model):
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: Text
    phone: Phone
    email: Email | None = None
    from_: HhMm = pydantic.Field(alias="from")
    to: HhMm
    # The weekly rota and validity (mandates/oncall.py): the days a window may start on (all
    # when empty) and the dates it is in force, inclusive.
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = ()
    valid_from: date | None = None
    valid_until: date | None = None

    @property
    def starts(self) -> time:
        return time.fromisoformat(self.from_)

    @property
    def ends(self) -> time:
        return time.fromisoformat(self.to)

    def covers(self, moment: time) -> bool:
        """Whether `moment` is in this contact's window; windows may span midnight."""
        if self.starts < self.ends:
            return self.starts <= moment < self.ends
        return moment >= self.starts or moment < self.ends

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if self.from_ == self.to:
            _reject(["'from' and 'to' are equal; for the whole day write from 00:00 to 23:59"])
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            _reject([f"valid_until ({self.valid_until}) is before valid_from ({self.valid_from})"])
        if len(set(self.days)) != len(self.days):
            _reject(["days: a day is listed twice"])
        return self


class OnCall(_Model):
    escalation_after: IsoDuration
    contacts: tuple[OnCallContact, ...] = pydantic.Field(min_length=1)
    # Said to a caller forwarded out of hours (after_hours: forward), before the <Dial>.
    notice_fr: Text | None = None
    notice_en: Text | None = None


class RecordingPeriod(_Model):
    start: date
    end: date

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if self.end < self.start:
            _reject(["the period ends before it starts"])
        return self


class Recording(_Model):
    """Call recording: off by default (Art. 25(2)); never permanent (CNIL)."""

    enabled: bool = False
    mode: RecordingMode | None = None
    sample_rate: float | None = pydantic.Field(default=None, gt=0, le=1)
    periods: tuple[RecordingPeriod, ...] = ()
    objection_key: Annotated[
        str, _check(re.compile(r"[0-9*#]"), "must be one telephone key: 0-9, * or #")
    ] = "9"
    purpose_fr: Text | None = None
    purpose_en: Text | None = None
    retention: IsoDuration | None = None

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems: list[str] = []
        if self.retention is not None:
            problem = _over_maximum(RetentionKind.RECORDING, self.retention, "retention")
            if problem:
                problems.append(problem)
        if self.mode is not RecordingMode.SAMPLING and self.sample_rate is not None:
            problems.append("sample_rate is only used with mode: sampling")
        if self.mode is not RecordingMode.PERIODS and self.periods:
            problems.append("periods are only used with mode: periods")
        if self.enabled:
            permanent = "permanent recording of calls is forbidden (CNIL)"
            if self.mode is None:
                problems.append(
                    f"recording is enabled without a mode: {permanent}; choose mode sampling "
                    "(with a sample_rate below 1) or periods"
                )
            elif self.mode is RecordingMode.SAMPLING and self.sample_rate is None:
                problems.append("mode sampling needs a sample_rate between 0 and 1 (exclusive)")
            elif self.mode is RecordingMode.SAMPLING and self.sample_rate == 1:
                problems.append(f"sample_rate 1.0 records every call: {permanent}")
            elif self.mode is RecordingMode.PERIODS and not self.periods:
                problems.append("mode periods needs at least one period {start, end}")
            if self.purpose_fr is None:
                problems.append(
                    "recording is enabled but 'purpose_fr' (why calls are recorded, "
                    "told to callers) is missing"
                )
            if self.retention is None:
                problems.append("recording is enabled but 'retention' (at most P6M) is missing")
        _reject(problems)
        return self

    def records(self, call_key: str, when: datetime) -> bool:
        """Whether a call falls under this recording policy.

        Sampling is decided from a hash of the provider's call id, so a retried webhook decides
        the same way; periods are calendar dates in France (inclusive). Moved here from
        ``recordings.service.should_record`` (ADR 0037): the voice webhooks ask it of the
        mandate, below the recordings.
        """
        if not self.enabled or self.mode is None:
            return False
        if self.mode is RecordingMode.SAMPLING:
            if self.sample_rate is None:
                return False
            digest = hashlib.sha256(f"sample|{call_key}".encode()).digest()
            return int.from_bytes(digest[:8], "big") / 2**64 < self.sample_rate
        today = when.astimezone(_PARIS).date()
        return any(p.start <= today <= p.end for p in self.periods)


class Transfer(_Model):
    """A transfer outside the EEA (Art. 44-49) and its safeguard."""

    country: CountryCode
    safeguard: Safeguard
    recipient: Text | None = None


class Hosting(_Model):
    provider: Text
    country: CountryCode
    hds_certified: bool = False


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _default_hours() -> dict[str, tuple[str, ...]]:
    day = ("09:00-12:00", "14:00-18:00")
    return {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day}


class Agenda(_Model):
    """When appointments may be booked: opening hours per weekday, slot length, time zone."""

    timezone: Text = "Europe/Paris"
    slot_minutes: int = pydantic.Field(default=30, ge=5, le=480)
    hours: dict[str, tuple[Text, ...]] = pydantic.Field(default_factory=_default_hours)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        problems: list[str] = []
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"unknown time zone '{self.timezone}'")
        for day, ranges in self.hours.items():
            if day not in _WEEKDAYS:
                problems.append(f"hours: '{day}' is not a weekday ({', '.join(_WEEKDAYS)})")
            for r in ranges:
                start, sep, end = r.partition("-")
                try:
                    ok = bool(sep) and time.fromisoformat(start) < time.fromisoformat(end)
                except ValueError:
                    ok = False
                if not ok:
                    problems.append(f"hours.{day}: '{r}' is not a range like 09:00-12:00")
        _reject(problems)
        return self

    def ranges(self, weekday: int) -> list[tuple[time, time]]:
        """Opening ranges for a weekday (0 = Monday)."""
        out = []
        for r in self.hours.get(_WEEKDAYS[weekday], ()):
            start, _, end = r.partition("-")
            out.append((time.fromisoformat(start), time.fromisoformat(end)))
        return out
