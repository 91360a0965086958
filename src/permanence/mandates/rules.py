"""A mandate's rules across its sections: what no single section can check on its own.

The purposes and the field catalogue (duplicates, dangling references, Art. 9 bases,
minimisation), also run on raw input that did not validate as a whole (`parsing`); health
data, HDS hosting, the recording notice and the telephone keys; opening hours' own rules
(`hours_problems`). `Mandate` runs them after its sections have validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from permanence.mandates.base import FieldCategory, MandateKind, SpecialCategoryBasis
from permanence.mandates.errors import FieldNotInPurpose
from permanence.mandates.hours import AfterHoursAction
from permanence.mandates.purposes import Field, Purpose

if TYPE_CHECKING:
    from permanence.mandates.mandate import Mandate


def safe_resolved(purpose: Purpose) -> tuple[Field, ...]:
    try:
        return purpose.resolved_fields
    except FieldNotInPurpose:  # an unknown reference, reported on its own
        return tuple(f for f in purpose.fields if isinstance(f, Field))


@dataclass(frozen=True)
class Outline:
    """What the cross-document rules need of a purpose; built from a model or raw input."""

    index: int
    code: str
    has_art9_basis: bool
    refs: tuple[str, ...]

    @classmethod
    def of(cls, index: int, purpose: Purpose) -> Outline:
        refs = tuple(item for item in purpose.fields if isinstance(item, str))
        return cls(index, purpose.code, purpose.special_category_basis is not None, refs)


def catalogue_problems(
    purposes: Sequence[Outline],
    catalogue: Sequence[tuple[int, str, Field | None]],
    *,
    purposes_complete: bool = True,
) -> list[str]:
    """Cross-document rules on purposes and the field catalogue.

    `catalogue` holds (index, name, field or None if it did not validate). Also run on raw input
    when the document as a whole did not validate, so one pass reports every problem.
    """
    problems: list[str] = []
    by_name: dict[str, Field | None] = {}
    for i, name, field in catalogue:
        if name in by_name:
            problems.append(f"fields[{i}] ({name}): field '{name}' is declared twice")
        by_name.setdefault(name, field)
    first_code: dict[str, int] = {}
    used: set[str] = set()
    for outline in purposes:
        where = f"purposes[{outline.index}] ({outline.code})"
        if outline.code in first_code:
            problems.append(
                f"{where}: duplicate purpose code '{outline.code}' "
                f"(also purposes[{first_code[outline.code]}])"
            )
        first_code.setdefault(outline.code, outline.index)
        for ref in outline.refs:
            used.add(ref)
            if ref not in by_name:
                problems.append(
                    f"{where}: field '{ref}' is not declared: it is neither inline nor in "
                    "the top-level 'fields' catalogue"
                )
                continue
            referenced = by_name[ref]
            if (
                referenced is not None
                and referenced.special_category
                and not outline.has_art9_basis
            ):
                problems.append(
                    f"{where}: field '{ref}' is special-category data ({referenced.category}) but "
                    "the purpose has no Art. 9 basis (special_category_basis)"
                )
    if purposes_complete:
        for i, name, _ in catalogue:
            if name not in used:
                problems.append(
                    f"fields[{i}] ({name}): field '{name}' is declared but no purpose "
                    "collects it (minimisation, Art. 5(1)(c))"
                )
    return problems


def document_problems(mandate: Mandate) -> list[str]:
    """The rules across the sections of a complete mandate (hours' included)."""
    problems: list[str] = []
    seen_dids: set[str] = set()
    for i, did in enumerate(mandate.dids):
        if did in seen_dids:
            problems.append(f"dids[{i}]: {did} is listed twice")
        seen_dids.add(did)
    health = [
        (i, p, f)
        for i, p in enumerate(mandate.purposes)
        for f in safe_resolved(p)
        if f.category is FieldCategory.HEALTH
    ]
    if health and not mandate.controller.health_data:
        i, p, f = health[0]
        problems.append(
            f"controller.health_data is false but purposes[{i}] ({p.code}) collects health "
            f"data (field '{f.name}'); set it to true (HDS hosting is then required)"
        )
    for i, p in enumerate(mandate.purposes):
        if (
            p.special_category_basis is SpecialCategoryBasis.ART9_2_H
            and mandate.kind is not MandateKind.MEDICAL
        ):
            problems.append(
                f"purposes[{i}] ({p.code}): special_category_basis art9_2_h (care by a health "
                "professional bound by secrecy) requires kind: medical"
            )
    if (
        mandate.hosting is not None
        and mandate.declares_health_data
        and not mandate.hosting.hds_certified
    ):
        problems.append(
            "hosting: health data must be hosted by an HDS-certified host "
            "(Code de la santé publique L.1111-8); hds_certified is false"
        )
    rec = mandate.recording
    if rec.enabled:
        if mandate.notice.recording_fr is None:
            problems.append(
                "notice.recording_fr is missing: callers must be told at the start of the call "
                "that it may be recorded, why, and how to object"
            )
        elif rec.objection_key not in mandate.notice.recording_fr:
            problems.append(
                f"notice.recording_fr does not tell callers to press {rec.objection_key} "
                "(recording.objection_key) to object"
            )
        if mandate.declares_health_data:
            problems.append(
                "recording: calls to a mandate with health data may carry health data; "
                "recording them needs explicit consent (Art. 9(2)(a)), which a recording "
                "policy cannot collect; keep recording disabled"
            )
    problems += key_problems(mandate)
    problems += hours_problems(mandate)
    return problems


def key_problems(mandate: Mandate) -> list[str]:
    """The telephone keys the caller is told to press: distinct, and said in each language."""
    notice, problems = mandate.notice, []
    keys = {"notice.sms_key": notice.sms_key, "notice.english_key": notice.english_key}
    if mandate.recording.enabled:
        keys["recording.objection_key"] = mandate.recording.objection_key
    used = [(name, key) for name, key in keys.items() if key is not None]
    for i, (name, key) in enumerate(used):
        for other, key2 in used[i + 1 :]:
            if key == key2:
                problems.append(f"{name} and {other} are the same key ({key})")
    if notice.sms_key is not None:
        for lang, text in (("fr", notice.layer1_fr), ("en", notice.layer1_en)):
            if text is not None and notice.sms_key not in text:
                problems.append(
                    f"notice.layer1_{lang} does not tell callers to press {notice.sms_key} "
                    "(notice.sms_key) to receive the full notice by SMS"
                )
    if notice.english_key is not None:
        if notice.layer1_en is None:
            problems.append("notice.english_key offers English but notice.layer1_en is missing")
        if mandate.recording.enabled and notice.recording_en is None:
            problems.append("notice.english_key offers English but notice.recording_en is missing")
    return problems


def hours_problems(mandate: Mandate) -> list[str]:
    """The rules between ``hours``, ``after_hours`` and ``on_call`` (each names its place)."""
    problems: list[str] = []
    after = mandate.after_hours
    if after is not None and mandate.hours is None:
        problems.append(
            "after_hours: is set but 'hours' is missing; without opening hours every call is "
            "answered as in hours"
        )
    if after is not None and after.action is AfterHoursAction.FORWARD and mandate.on_call is None:
        problems.append("after_hours: forward needs the 'on_call' list of contacts to forward to")
    if mandate.notice.english_key is not None and after is not None:
        if after.greeting_fr is not None and after.greeting_en is None:
            problems.append("after_hours.greeting_en is missing: notice.english_key offers English")
        oc = mandate.on_call
        forward = after.action is AfterHoursAction.FORWARD
        if forward and oc is not None and oc.notice_fr is not None and oc.notice_en is None:
            problems.append("on_call.notice_en is missing: notice.english_key offers English")
    return problems
