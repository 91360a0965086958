"""The last guard before e-mail: personal data is refused, our own record ids are not."""

from __future__ import annotations

import uuid

import pytest

from permanence.delivery import channels as content
from permanence.errors import ValidationFailed
from permanence.mail import Mail, check_no_personal_data
from permanence.pii import STRUCTURED_TYPES, detect

# A message id whose first groups pass the IBAN detector's checksum (found by sampling ids).
UNLUCKY = uuid.UUID("fd280b9b-3356-47cd-94be-aad5b16820f8")


def _mail(message_id: uuid.UUID, extra: str = "") -> Mail:
    text = content.message_email(
        "Plomberie Durand",
        content.portal_link("https://permanence.example", message_id),
        urgent=False,
    )
    return Mail(to="contact@plomberie-durand.example", subject=text.subject, text=text.body + extra)


def test_a_message_id_that_looks_like_an_iban_does_not_block_the_notification() -> None:
    assert [e.type for e in detect(str(UNLUCKY), STRUCTURED_TYPES)] == ["IBAN"]
    check_no_personal_data(_mail(UNLUCKY))  # no error: the id is ours, not personal data


def test_personal_data_beside_an_id_is_still_refused() -> None:
    with pytest.raises(ValidationFailed, match="PHONE"):
        check_no_personal_data(_mail(UNLUCKY, "\nRappeler le 06 12 34 56 78"))
