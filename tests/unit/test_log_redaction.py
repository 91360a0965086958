"""The log redactor: UUIDs stay whole, and personal data hidden by percent-encoding in a URL
is masked after decoding (issue 20, issue 25)."""

from __future__ import annotations

import io
import logging
import random
import uuid

import pytest

from permanence.pii import RedactingFilter
from permanence.pii.redaction import mask_log_text
from tests.pii_logs import find_leaks

# A delivery id the previous redactor logged as "dc071f09-dc07-44b5-[IBAN]": its tail passes
# the IBAN checksum.
IBAN_LOOKING_ID = "dc071f09-dc07-44b5-a220-91af3e9f623c"
SEEDED = ("Camille Martin", "camille.martin@exemple.fr", "+33612345678", "06 12 34 56 78")


@pytest.fixture
def access_log() -> tuple[logging.Logger, io.StringIO]:
    """A logger set up as uvicorn's access log is under ``configure_logging``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.ops.access")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_uuids_are_left_whole() -> None:
    assert mask_log_text(f"delivery {IBAN_LOOKING_ID} sent") == f"delivery {IBAN_LOOKING_ID} sent"
    rng = random.Random(25)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5000)]
    damaged = [i for i in ids if i not in mask_log_text(f"delivery {i} failed: smtp_421")]
    assert damaged == []
    # ... while personal data next to them is still masked.
    line = mask_log_text(f"call {IBAN_LOOKING_ID} from +33612345678 (FR7630006000011234567890189)")
    assert line == f"call {IBAN_LOOKING_ID} from [PHONE] ([IBAN])"


def test_percent_encoded_personal_data_in_urls_is_masked_after_decoding(
    access_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = access_log
    requests = [
        "/console/appelants?q=Camille%20Martin%20%2B33612345678&page=2",
        "/api/v1/callers/camille.martin%40exemple.fr",
        "/recherche?q=camille.martin%40exemple.fr",
        "/recherche?tel=06%2012%2034%2056%2078",
        "/recherche?tel=%2B33612345678",
        "/recherche?q=Camille+Martin",
        f"/console/appels/{IBAN_LOOKING_ID}?enregistre=1",
        "/recherche?tel=0612345678",
    ]
    for path in requests:
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5123", "GET", path, "1.1", 200)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(requests)
    # tests/pii_logs.find_leaks decodes every form a line may carry: none left.
    assert find_leaks(lines, SEEDED) == []
    assert lines[0] == '127.0.0.1:5123 - "GET /console/appelants?q=[VALUE]&page=2 HTTP/1.1" 200'
    assert lines[1] == '127.0.0.1:5123 - "GET /api/v1/callers/[EMAIL] HTTP/1.1" 200'
    assert "tel=[VALUE]" in lines[3] and "tel=[VALUE]" in lines[4]
    # A value that is one plain word is kept, and masked as what it is.
    assert "tel=[PHONE]" in lines[7]
    # Ids and codes stay readable.
    assert lines[6] == (
        f'127.0.0.1:5123 - "GET /console/appels/{IBAN_LOOKING_ID}?enregistre=1 HTTP/1.1" 200'
    )


def test_a_decoded_line_break_cannot_forge_a_log_line(
    access_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = access_log
    logger.info("GET /x%0A2026-01-01%20INFO%20forged/y HTTP/1.1")
    assert stream.getvalue().count("\n") == 1
    assert "%0A" in stream.getvalue()


def test_text_that_is_not_a_url_is_left_alone() -> None:
    assert mask_log_text("retry in 50% of cases? maybe") == "retry in 50% of cases? maybe"
