"""The conference rooms of a warm transfer (ADR 0030) and the caller's hold room: their names
and TwiML. Below ``queue`` (whose <Enqueue> action puts a caller on hold while the operator
consults) and ``transfers`` (which moves the legs between rooms), so neither imports the
other back."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from permanence.config import Settings
from permanence.telephony import twiml

HOLD_FR = "Merci de patienter, nous joignons votre correspondant."
# The audio a caller hears while waiting, in the queue or on hold (served from the static files).
HOLD_AUDIO = "/static/routing/hold.wav"


def room(call_id: uuid.UUID, kind: str) -> str:
    """The conference of a warm transfer: ``hold`` (the caller's) or ``consult``."""
    return f"permanence-{kind}-{call_id}"


def conference(
    reply: twiml.Response, name: str, *, starts: bool, ends: bool, wait_url: str | None = None
) -> None:
    dial = ET.SubElement(reply.root, "Dial")
    attrs = {
        "startConferenceOnEnter": "true" if starts else "false",
        "endConferenceOnExit": "true" if ends else "false",
        "beep": "false",
    }
    if wait_url is not None:
        attrs["waitUrl"] = wait_url
        attrs["waitMethod"] = "GET"
    ET.SubElement(dial, "Conference", attrs).text = name


def hold_twiml(settings: Settings, reply: twiml.Response, call_id: uuid.UUID) -> None:
    """The caller's leg while the operator consults: the hold room, with the hold audio."""
    base = settings.public_base_url.rstrip("/")
    reply.say(HOLD_FR)
    conference(reply, room(call_id, "hold"), starts=False, ends=True, wait_url=base + HOLD_AUDIO)
