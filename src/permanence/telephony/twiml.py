"""A small TwiML builder (TwiML, SignalWire cXML and Telnyx TeXML share it).

Only the verbs this product uses. Text goes through ElementTree, so a notice containing
``<`` or ``&`` is escaped, never interpreted as markup.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET


class Response:
    def __init__(self) -> None:
        self.root = ET.Element("Response")

    def say(self, text: str, *, language: str = "fr-FR", parent: ET.Element | None = None) -> None:
        el = ET.SubElement(self.root if parent is None else parent, "Say", language=language)
        el.text = text

    def gather(self, *, action: str, num_digits: int = 1, timeout: int = 5) -> ET.Element:
        return ET.SubElement(
            self.root,
            "Gather",
            action=action,
            method="POST",
            numDigits=str(num_digits),
            timeout=str(timeout),
            actionOnEmptyResult="true",
        )

    def redirect(self, url: str) -> None:
        ET.SubElement(self.root, "Redirect", method="POST").text = url

    def dial(
        self,
        target: str,
        *,
        action: str,
        timeout: int,
        record: str | None = None,
        recording_callback: str | None = None,
    ) -> None:
        attrs = {"action": action, "method": "POST", "timeout": str(timeout)}
        if record is not None:
            attrs["record"] = record
        if recording_callback is not None:
            attrs["recordingStatusCallback"] = recording_callback
            attrs["recordingStatusCallbackMethod"] = "POST"
            attrs["recordingStatusCallbackEvent"] = "completed absent"
        dial = ET.SubElement(self.root, "Dial", attrs)
        if target.startswith("client:"):
            ET.SubElement(dial, "Client").text = target.removeprefix("client:")
        elif target.startswith("sip:"):
            ET.SubElement(dial, "Sip").text = target
        else:
            ET.SubElement(dial, "Number").text = target

    def record(self, *, max_length: int, recording_callback: str, action: str) -> None:
        ET.SubElement(
            self.root,
            "Record",
            action=action,
            method="POST",
            maxLength=str(max_length),
            playBeep="true",
            recordingStatusCallback=recording_callback,
            recordingStatusCallbackMethod="POST",
        )

    def hangup(self) -> None:
        ET.SubElement(self.root, "Hangup")

    def xml(self) -> str:
        return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(self.root, encoding="unicode")
