"""Channels a feature prepares itself: the ledger sends them, the feature says what to send.

Most channels carry a message or a voicemail, and the worker writes their e-mail, SMS or
webhook itself (``delivery.channels``). Two belong to features that build on the ledger: the
OpenDSR status callbacks of a rights request (``rights.callbacks``) and the callers' notice by
SMS (``calls.notice_sms``). Each registers its preparer here with ``@prepares(channel)``;
``preparer`` imports the modules listed in ``CHANNEL_MODULES`` first, as the compliance checks'
registry does (``permanence.checks``), so that delivery never imports the features above it
(ADR 0033).

A preparer returns a signed request or an SMS ``(number, text)``, or raises ``SendFailed``
(the row's failure, e.g. ``call_gone``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from permanence.delivery.model import Channel, Delivery
from permanence.delivery.ports import WebhookRequest
from permanence.mandates.mandate import Mandate
from permanence.runtime import Runtime

# What a feature's channel hands back to be sent: a signed request, or an SMS (number, text).
Sending = WebhookRequest | tuple[str, str]


@dataclass(frozen=True)
class Sender:
    """What the worker read once for the pass: the account's name, the public address, and
    the row's mandate version (None for the rows that have none: OpenDSR callbacks)."""

    account_name: str
    base_url: str
    mandate: Mandate | None


Preparer = Callable[[Session, Runtime, Delivery, Sender], Sending]

_PREPARERS: dict[Channel, Preparer] = {}
# The modules that register a preparer (import path strings, imported by ``preparer``).
CHANNEL_MODULES: tuple[str, ...] = (
    "permanence.rights.callbacks",
    "permanence.calls.notice_sms",
)


def prepares(channel: Channel) -> Callable[[Preparer], Preparer]:
    """Register the preparer of ``channel`` (one per channel)."""

    def deco(fn: Preparer) -> Preparer:
        if channel in _PREPARERS and _PREPARERS[channel] is not fn:
            raise ValueError(f"channel '{channel.value}' has a preparer already")
        _PREPARERS[channel] = fn
        return fn

    return deco


def preparer(channel: Channel) -> Preparer:
    """The preparer registered for ``channel``; KeyError if no feature registers one."""
    for module in CHANNEL_MODULES:
        importlib.import_module(module)
    return _PREPARERS[channel]
