"""webhook_auth.py: the signature matrix for WebhookVerifier; only fresh, untampered webhooks signed by the key pass."""

from __future__ import annotations

import base64

import pytest

from fixtures import new_keypair, sign
from webhook_auth import SignatureError, WebhookVerifier, load_public_key, load_public_keys

NOW = 1_800_000_000
BODY = b'{"data":{"event_type":"call.initiated","id":"e1","payload":{"call_control_id":"v3:abc"}}}'


@pytest.fixture
def verifier(keypair) -> WebhookVerifier:
    return WebhookVerifier(load_public_key(keypair[1]), tolerance_s=300, clock=lambda: NOW)


def test_authentic_webhook_passes(verifier, keypair):
    verifier.verify(BODY, sign(BODY, keypair[0], str(NOW)))


@pytest.mark.parametrize("skew", [-300, -299, 0, 299, 300])
def test_timestamps_inside_the_window_pass(verifier, keypair, skew):
    verifier.verify(BODY, sign(BODY, keypair[0], str(NOW + skew)))


@pytest.mark.parametrize("skew", [-301, 301, -86400, 10**6])
def test_stale_or_future_timestamps_fail(verifier, keypair, skew):
    with pytest.raises(SignatureError, match="window"):
        verifier.verify(BODY, sign(BODY, keypair[0], str(NOW + skew)))


def test_header_names_match_case_insensitively(verifier, keypair):
    headers = {k.upper(): v for k, v in sign(BODY, keypair[0], str(NOW)).items()}
    verifier.verify(BODY, headers)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b[:-1] + b"!",
        lambda b: b.replace(b"call.initiated", b"call.hangup"),
        lambda b: b.replace(b'"e1"', b'"e2"'),
        lambda b: b + b" ",
        lambda b: b.replace(b"v3:abc", b"v3:ab\\u0063"),
    ],
)
def test_tampered_body_fails(verifier, keypair, tamper):
    headers = sign(BODY, keypair[0], str(NOW))
    with pytest.raises(SignatureError, match="does not match"):
        verifier.verify(tamper(BODY), headers)


def test_signature_from_another_key_fails(verifier):
    other_private, _ = new_keypair()
    with pytest.raises(SignatureError, match="does not match"):
        verifier.verify(BODY, sign(BODY, other_private, str(NOW)))


def test_signature_bound_to_its_timestamp(verifier, keypair):
    headers = sign(BODY, keypair[0], str(NOW))
    headers["telnyx-timestamp"] = str(NOW + 1)
    with pytest.raises(SignatureError, match="does not match"):
        verifier.verify(BODY, headers)


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing telnyx-signature-ed25519"),
        ({"telnyx-signature-ed25519": "AAAA"}, "missing telnyx-timestamp"),
        ({"telnyx-signature-ed25519": "!!notbase64!!", "telnyx-timestamp": str(NOW)}, "not valid base64"),
        ({"telnyx-signature-ed25519": base64.b64encode(b"x" * 10).decode(), "telnyx-timestamp": str(NOW)}, "length"),
        ({"telnyx-signature-ed25519": "AAAA", "telnyx-timestamp": "yesterday"}, "unix seconds"),
        ({"telnyx-signature-ed25519": "AAAA", "telnyx-timestamp": "-5"}, "unix seconds"),
        ({"telnyx-signature-ed25519": "AAAA", "telnyx-timestamp": "١٢٣"}, "unix seconds"),
    ],
)
def test_missing_or_garbled_headers_fail(verifier, headers, message):
    with pytest.raises(SignatureError, match=message):
        verifier.verify(BODY, headers)


def test_duplicate_signature_headers_fail(verifier, keypair):
    from werkzeug.datastructures import Headers

    good = sign(BODY, keypair[0], str(NOW))
    headers = Headers(list(good.items()) + [("Telnyx-Signature-Ed25519", good["telnyx-signature-ed25519"])])
    with pytest.raises(SignatureError, match="more than one"):
        verifier.verify(BODY, headers)


@pytest.mark.parametrize("key", ["", "not base64", base64.b64encode(b"x" * 31).decode()])
def test_malformed_public_keys_are_refused(key):
    with pytest.raises(ValueError):
        load_public_key(key)


def test_during_a_rotation_either_key_verifies(keypair):
    """TELNYX_PUBLIC_KEY="old,new": webhooks signed by the old key and by the new one both pass."""
    new_private, new_public = new_keypair()
    verifier = WebhookVerifier(load_public_keys([keypair[1], new_public]), tolerance_s=300, clock=lambda: NOW)
    verifier.verify(BODY, sign(BODY, keypair[0], str(NOW)))
    verifier.verify(BODY, sign(BODY, new_private, str(NOW)))
    stranger, _ = new_keypair()
    with pytest.raises(SignatureError, match="does not match"):
        verifier.verify(BODY, sign(BODY, stranger, str(NOW)))


def test_no_keys_at_all_is_refused():
    with pytest.raises(ValueError, match="no public key"):
        load_public_keys([])
