"""Our webhook signature checks, against the spec's vector and twilio's own validator."""

from __future__ import annotations

import base64
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from permanence.telephony.signatures import telnyx_valid, twilio_signature, twilio_valid

URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def test_spec_test_vector() -> None:
    assert twilio_signature(URL, PARAMS.items(), "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_valid(URL, PARAMS.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "12345")


def test_a_changed_parameter_or_missing_token_is_refused() -> None:
    tampered = {**PARAMS, "Digits": "9"}
    assert not twilio_valid(URL, tampered.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "12345")
    assert not twilio_valid(URL, PARAMS.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", None)
    assert not twilio_valid(URL, PARAMS.items(), None, "12345")


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), max_size=6))
def test_agrees_with_twilios_request_validator(params: dict[str, str]) -> None:
    expected = RequestValidator("tok").compute_signature("https://p.example/t/in", params)
    assert twilio_signature("https://p.example/t/in", params.items(), "tok") == expected


def test_telnyx_ed25519_over_timestamp_and_body() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    body = b"CallSid=v3:abc&To=%2B33240000001"
    stamp = str(int(time.time()))
    sig = base64.b64encode(key.sign(stamp.encode() + b"|" + body)).decode()
    assert telnyx_valid(body, sig, stamp, public.decode())
    assert not telnyx_valid(body + b"x", sig, stamp, public.decode())
    old = str(int(time.time()) - 3600)
    old_sig = base64.b64encode(key.sign(old.encode() + b"|" + body)).decode()
    assert not telnyx_valid(body, old_sig, old, public.decode())  # replay
    assert not telnyx_valid(body, sig, stamp, None)


def test_an_unset_or_empty_token_refuses_even_a_signature_made_with_an_empty_key() -> None:
    # An attacker who guesses the token is unset signs with the empty key: still refused.
    forged = twilio_signature(URL, PARAMS.items(), "")
    assert not twilio_valid(URL, PARAMS.items(), forged, None)
    assert not twilio_valid(URL, PARAMS.items(), forged, "")


def test_telnyx_refuses_a_timestamp_from_the_future_beyond_the_tolerance() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    body = b"CallSid=v3:abc"
    now = 1_800_000_000.0

    def signed(stamp: int) -> tuple[str, str]:
        return base64.b64encode(key.sign(str(stamp).encode() + b"|" + body)).decode(), str(stamp)

    ahead, ahead_stamp = signed(int(now) + 301)
    assert not telnyx_valid(body, ahead, ahead_stamp, public.decode(), now=now)
    edge, edge_stamp = signed(int(now) + 300)
    assert telnyx_valid(body, edge, edge_stamp, public.decode(), now=now)
    late, late_stamp = signed(int(now) - 301)
    assert not telnyx_valid(body, late, late_stamp, public.decode(), now=now)


def test_telnyx_refuses_malformed_headers_without_raising() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    body = b"CallSid=v3:abc"
    stamp = str(int(time.time()))
    sig = base64.b64encode(key.sign(stamp.encode() + b"|" + body)).decode()
    assert telnyx_valid(body, sig, stamp, public.decode())
    assert not telnyx_valid(body, sig, "not-a-number", public.decode())
    assert not telnyx_valid(body, sig, stamp, "bm90IGEga2V5")  # base64, but not a 32-byte key
    assert not telnyx_valid(body, sig[:10] + "!!" + sig[10:], stamp, public.decode())
    assert not telnyx_valid(body, sig + "#", stamp, public.decode())
